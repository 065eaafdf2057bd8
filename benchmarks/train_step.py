"""One training step (forward + backward + AdamW) of our GPT against Hugging Face's ``GPT2LMHeadModel``.

Same config (nanoGPT's CPU recipe: 4 layers, 4 heads, 128 wide, context 64, batch 12, vocab 65), same
weights (``model.to_hf()``), same batches, same optimizer settings; the two alternate round by round in one
process (A, B, A, B, ...), so a neighbour that steals the CPU slows both alike, and we compare medians.

    python benchmarks/train_step.py [--rounds 30] [--steps 3] [--threads 1]

Prints each model's median time per step and the ratio HF / ours (above 1: ours is faster), twice: by the
wall clock, and by the CPU time this process used (``time.process_time``), which a busy neighbour cannot
inflate. On a shared machine trust the CPU-time ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from helpers.model import GPT, GPTConfig


def _positive_int(s: str) -> int:
    v = int(s)
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {s}")
    return v


def main(argv: list[str] | None = None) -> float:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=_positive_int, default=30, help="A/B rounds (default 30)")
    ap.add_argument("--steps", type=_positive_int, default=3, help="training steps per model per round")
    ap.add_argument("--warmup", type=_positive_int, default=3, help="untimed steps per model first")
    ap.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        help="torch threads (default 1: on a shared CPU a second thread mostly waits)",
    )
    ap.add_argument("--batch", type=_positive_int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    config = GPTConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128, dropout=0.0)
    ours = GPT(config).train()
    hf = ours.to_hf().train()  # same weights; transformers' default attention (SDPA)

    # the two models must compute the same thing before we time them
    x = torch.randint(0, config.vocab_size, (args.batch, config.block_size))
    y = torch.randint(0, config.vocab_size, (args.batch, config.block_size))
    with torch.no_grad():
        diff = (ours(x).logits - hf(x).logits).abs().max().item()
    if diff > 1e-4:
        raise SystemExit(f"the models disagree before timing (max |Δlogits| = {diff:.3g})")

    def make_step(model, is_hf: bool):
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1, foreach=True)

        def step() -> None:
            if is_hf:
                # HF shifts labels itself: labels=idx; our targets are the shifted y. Same work either way.
                loss = model(input_ids=x, labels=x).loss
            else:
                loss = ours(x, targets=y).loss
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

        return step

    steps = {"ours": make_step(ours, False), "hf": make_step(hf, True)}
    for fn in steps.values():
        for _ in range(args.warmup):
            fn()
    times: dict[str, list[float]] = {"ours": [], "hf": []}
    cpu: dict[str, list[float]] = {"ours": [], "hf": []}
    for r in range(args.rounds):
        order = ("ours", "hf") if r % 2 == 0 else ("hf", "ours")  # alternate who goes first
        for name in order:
            t, c = time.perf_counter(), time.process_time()
            for _ in range(args.steps):
                steps[name]()
            times[name].append((time.perf_counter() - t) / args.steps)
            cpu[name].append((time.process_time() - c) / args.steps)
    med = {k: statistics.median(v) for k, v in times.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    ratio = med["hf"] / med["ours"]
    ratio_cpu = med_cpu["hf"] / med_cpu["ours"]
    print(f"config: {config}")
    print(
        f"batch {args.batch} x {config.block_size}, threads {args.threads}, {args.rounds} rounds x {args.steps} steps"
    )
    print(f"max |Δlogits| before timing: {diff:.2e}")
    print(f"{'':6}{'wall ms/step':>14}{'CPU ms/step':>14}   (medians)")
    for k, label in (("ours", "ours"), ("hf", "HF")):
        print(f"{label:6}{med[k] * 1e3:14.2f}{med_cpu[k] * 1e3:14.2f}")
    print(f"ratio HF / ours: wall {ratio:.2f}x, CPU time {ratio_cpu:.2f}x (above 1: ours is faster)")
    return ratio_cpu


if __name__ == "__main__":
    main()
