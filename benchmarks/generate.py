"""How much the KV cache buys: our generate with and without it, and Hugging Face's generate, same weights.

    python benchmarks/generate.py [--new-tokens 256] [--rounds 5] [--threads 2]

A 6-layer, 384-wide GPT (6 heads, the course's character vocabulary of 65) generates greedily from a
32-token prompt. Each round times the three contenders back to back (so background load hits all three
alike); the medians over rounds are compared. The greedy tokens must be identical in all three.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from helpers.generate import generate
from helpers.model import GPT, GPTConfig


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--new-tokens", type=int, default=256)
    p.add_argument("--prompt-tokens", type=int, default=32)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n-layer", type=int, default=6)
    p.add_argument("--n-embd", type=int, default=384)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = GPTConfig(
        vocab_size=65,
        block_size=max(512, args.prompt_tokens + args.new_tokens),
        n_layer=args.n_layer,
        n_head=6,
        n_embd=args.n_embd,
    )
    model = GPT(cfg).eval()
    hf = model.to_hf().eval()
    idx = torch.randint(0, cfg.vocab_size, (1, args.prompt_tokens))
    n = args.new_tokens

    def ours_cached():
        return generate(model, idx, n, temperature=0, use_cache=True)

    def ours_uncached():
        return generate(model, idx, n, temperature=0, use_cache=False)

    def hf_generate():
        with torch.inference_mode():
            return hf.generate(
                idx,
                attention_mask=torch.ones_like(idx),
                max_new_tokens=n,
                min_new_tokens=n,
                do_sample=False,
                use_cache=True,
                pad_token_id=0,
            )

    a, b, c = ours_cached(), ours_uncached(), hf_generate()  # warm-up, and the identity check
    same_uncached, same_hf = torch.equal(a, b), torch.equal(a, c)
    times: dict[str, list[float]] = {"cached": [], "uncached": [], "hf": []}
    for _ in range(args.rounds):  # interleaved: each round runs all three
        times["cached"].append(_time(ours_cached))
        times["uncached"].append(_time(ours_uncached))
        times["hf"].append(_time(hf_generate))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(
        f"model: {cfg.n_layer} layers, {cfg.n_embd} wide, {model.num_parameters():,} parameters; "
        f"prompt {args.prompt_tokens} + {n} new tokens, greedy, {args.threads} threads, {args.rounds} rounds"
    )
    for k, label in (
        ("cached", "ours, KV cache"),
        ("uncached", "ours, no cache"),
        ("hf", "transformers generate"),
    ):
        print(f"  {label:<22} median {med[k] * 1e3:8.1f} ms  ({n / med[k]:7.1f} tokens/s)")
    print(f"speed-up of the cache over recomputation: {med['uncached'] / med['cached']:.1f}x")
    print(
        f"ours (cached) vs transformers:            {med['hf'] / med['cached']:.2f}x  (> 1 means ours is faster)"
    )
    print(f"greedy tokens identical: cached == uncached {same_uncached}, cached == transformers {same_hf}")
    return {
        "speedup_cache": med["uncached"] / med["cached"],
        "vs_hf": med["hf"] / med["cached"],
        "same_uncached": float(same_uncached),
        "same_hf": float(same_hf),
    }


if __name__ == "__main__":
    main()
