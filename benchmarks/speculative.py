"""Speculative decoding on the CPU: the course's GPT checked by a 2-layer draft, against plain greedy decoding.

    python benchmarks/speculative.py [--threads 2] [--new-tokens 200] [--rounds 3] [--prompts 5]

Target: ``checkpoints/shakespeare-gpt`` (6 layers, 256 wide); draft: ``checkpoints/shakespeare-draft`` (2 layers,
128 wide, same 75-character vocabulary). Prompts are taken from the held-out validation plays
(``helpers.data.shakespeare("val")``), each starting at a speech. For every ``k`` (draft tokens proposed per
round) the table gives the acceptance rate, the new tokens per target forward pass and the speed-up over
``generate(target, idx, n, temperature=0)``. Each round runs every contender back to back on each prompt, in a
shuffled order (so background load hits all alike); a speed-up is the median over rounds and prompts of the
ratio of the two times on the same prompt. The tokens must be identical to plain greedy decoding every time:
the script stops with an error if they are not.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import torch

from helpers.data import shakespeare
from helpers.generate import generate
from helpers.model import GPT
from helpers.speculative import speculative_generate
from helpers.tokenizer import load_tokenizer

ROOT = Path(__file__).resolve().parents[1]


def val_prompts(tok, n: int, chars: int) -> list[torch.Tensor]:
    """``n`` prompts of ``chars`` characters from the validation plays, each the start of a speech, spread evenly."""
    text = shakespeare("val")
    starts, pos = [], 0
    while True:
        pos = text.find("\n\n", pos)
        if pos < 0:
            break
        pos += 2
        starts.append(pos)
    picks = [starts[int(i * (len(starts) - 1) / max(1, n - 1))] for i in range(n)]
    return [torch.tensor([tok.encode(text[s : s + chars])]) for s in picks]


def _time(fn, *args) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--new-tokens", type=int, default=200)
    p.add_argument("--prompt-chars", type=int, default=48)
    p.add_argument("--prompts", type=int, default=5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--max-k", type=int, default=8)
    p.add_argument("--target", default=str(ROOT / "checkpoints" / "shakespeare-gpt"))
    p.add_argument("--draft", default=str(ROOT / "checkpoints" / "shakespeare-draft"))
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    target = GPT.from_pretrained(args.target).eval()
    draft = GPT.from_pretrained(args.draft).eval()
    tok = load_tokenizer(args.target)
    if load_tokenizer(args.draft).chars != tok.chars:
        sys.exit("the draft's vocabulary differs from the target's")
    n = args.new_tokens
    prompts = val_prompts(tok, args.prompts, args.prompt_chars)
    ks = list(range(1, args.max_k + 1))

    refs = [generate(target, idx, n, temperature=0) for idx in prompts]  # warm-up, and the reference tokens
    contenders = {"greedy": lambda idx: (generate(target, idx, n, temperature=0), None),
                  "draft alone": lambda idx: (generate(draft, idx, n, temperature=0), None)}
    for k in ks:
        contenders[k] = lambda idx, k=k: speculative_generate(target, draft, idx, n, k=k)
    # One unit = one prompt in one round: every contender runs on it back to back, in a shuffled order, so a
    # burst of background load hits a random contender, not always the same one; each speed-up is the median
    # over units of (greedy's time / speculative's time) within the unit.
    order = random.Random(0)
    times: dict = {c: [] for c in contenders}
    stats: dict = {k: {"proposed": 0, "accepted": 0, "target_passes": 0, "draft_passes": 0} for k in ks}
    for r in range(args.rounds):
        for idx, ref in zip(prompts, refs, strict=True):
            names = list(contenders)
            order.shuffle(names)
            for c in names:
                dt, (out, st) = _time(contenders[c], idx)
                times[c].append(dt)
                if c != "draft alone" and not torch.equal(out, ref):
                    sys.exit(f"k={c}: the tokens differ from plain greedy decoding on prompt "
                             f"{tok.decode(idx[0].tolist())!r}")
                if st is not None and r == 0:
                    for key in stats[c]:
                        stats[c][key] += st[key]
    ms = {c: statistics.median(v) * 1e3 / n for c, v in times.items()}  # median ms per new token
    ratio = {c: statistics.median(g / t for g, t in zip(times["greedy"], times[c], strict=True)) for c in contenders}
    tokens = n * len(prompts)
    print(f"target: {target.num_parameters():,} parameters ({target.config.n_layer} layers, {target.config.n_embd} wide); "
          f"draft: {draft.num_parameters():,} ({draft.config.n_layer} layers, {draft.config.n_embd} wide)")
    print(f"{len(prompts)} prompts of {args.prompt_chars} characters from the validation plays, {n} new tokens each, "
          f"greedy; {args.threads} threads; medians over {args.rounds} rounds x {len(prompts)} prompts, "
          "contenders shuffled within each")
    print(f"plain greedy generate(target): {ms['greedy']:.2f} ms/token; the draft alone: {ms['draft alone']:.2f} "
          f"ms/token ({1 / ratio['draft alone']:.2f} of the target's time)")
    print()
    print("| k | acceptance rate | tokens per target pass | draft passes per token | ms per token | speed-up |")
    print("|---|---|---|---|---|---|")
    rows = {}
    for k in ks:
        s = stats[k]
        rate = s["accepted"] / s["proposed"]
        tpp = tokens / s["target_passes"]
        rows[k] = {"acceptance_rate": rate, "tokens_per_target_pass": tpp, "speedup": ratio[k]}
        print(f"| {k} | {rate:.3f} | {tpp:.2f} | {s['draft_passes'] / tokens:.2f} | {ms[k]:.2f} | {ratio[k]:.2f}x |")
    print()
    print("tokens identical to generate(target, ..., temperature=0): every prompt, every k, every round")
    return rows


if __name__ == "__main__":
    main()
