"""Training speed of GPT-2's block and Llama's four changes, at equal parameter counts, on this CPU.

    python benchmarks/llama_variants.py [--threads 1] [--rounds 7]

Each variant of ``helpers.llama.VARIANTS`` (the head-to-head's models: 4 layers, width 96, 0.47M parameters) takes
training steps (forward, backward, AdamW) at the head-to-head's batch shape, 16 x 128 characters. The variants
take turns, round after round, so that a slow moment of a shared machine hits all of them alike; the median step
of each is reported as tokens per second and as a ratio to GPT-2 measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from helpers.llama import BASE, VARIANTS, variant_config
from helpers.model import GPT


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=3, help="timed steps per variant and round")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    from helpers.data import shakespeare
    from helpers.tokenizer import CharTokenizer

    VOCAB = CharTokenizer.from_text(shakespeare("all")).vocab_size  # the characters of the plays, as trained
    B, T = BASE["batch_size"], BASE["block_size"]
    runs = {}
    for name in VARIANTS:
        model = GPT(variant_config(name, VOCAB)).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        runs[name] = (model, opt, [])
    x = torch.randint(0, VOCAB, (B, T))

    def step(model, opt):
        loss = model(x, targets=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for model, opt, _ in runs.values():  # warm-up
        step(model, opt)
    for _ in range(a.rounds):
        for model, opt, times in runs.values():
            for _ in range(a.steps):
                t0 = time.perf_counter()
                step(model, opt)
                times.append(time.perf_counter() - t0)
    base = statistics.median(runs["GPT-2"][2])
    print(f"torch {torch.__version__}, {a.threads} thread(s), batch {B} x {T}, {a.rounds} rounds x {a.steps} steps")
    print(f"{'variant':>10} {'parameters':>11} {'ms/step':>8} {'tokens/s':>9} {'vs GPT-2':>9}")
    for name, (model, _, times) in runs.items():
        med = statistics.median(times)
        print(f"{name:>10} {model.num_parameters():>11,} {med * 1e3:>8.1f} {B * T / med:>9,.0f} {base / med:>8.2f}x")


if __name__ == "__main__":
    main()
