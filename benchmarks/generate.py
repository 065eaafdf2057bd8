"""The course's generate against transformers' generate, same weights, same prompt, same greedy tokens.

    python benchmarks/generate.py [--new-tokens 256] [--rounds 5] [--threads 2] [--k 4]
    python benchmarks/generate.py --model random            # the older setting: a random 6-layer, 384-wide GPT

By default the model is the course's trained checkpoint (``checkpoints/shakespeare-gpt``: 6 layers, 256 wide) and
the prompt a speech from the held-out validation plays. Contenders, each timed once per round, back to back (so
background load hits all alike; medians over rounds are compared):

- ours with the KV cache (``helpers.generate.generate``), and without it;
- ``transformers``' ``generate`` on the same weights (``GPT.to_hf()``), greedy;
- ours with speculative decoding (``helpers.speculative``): the 2-layer draft ``checkpoints/shakespeare-draft``
  proposes ``k`` tokens, the model checks them in one pass;
- ``transformers``' own assisted generation with the same draft (``assistant_model=``), for a fair comparison.

Every contender's greedy tokens must equal ours: the script stops if they do not. The ratios printed are
``transformers.generate`` time / contender time (> 1: faster than ``transformers``).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from helpers.generate import generate
from helpers.model import GPT, GPTConfig
from helpers.speculative import speculative_generate

ROOT = Path(__file__).resolve().parents[1]


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _prompt(tok, chars: int) -> torch.Tensor:
    from helpers.data import shakespeare

    text = shakespeare("val")
    start = text.find("\n\n", len(text) // 3) + 2  # a speech a third of the way into the held-out plays
    return torch.tensor([tok.encode(text[start:start + chars])])


def main(argv: list[str] | None = None) -> dict[str, float]:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(ROOT / "checkpoints" / "shakespeare-gpt"),
                   help="a checkpoint folder, or 'random' for a random 6-layer, 384-wide GPT")
    p.add_argument("--draft", default=str(ROOT / "checkpoints" / "shakespeare-draft"), help="a checkpoint, or 'none'")
    p.add_argument("--k", type=int, default=4, help="draft tokens per round (speculative decoding)")
    p.add_argument("--new-tokens", type=int, default=200)
    p.add_argument("--prompt-tokens", type=int, default=32)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    draft = None
    if args.model == "random":
        cfg = GPTConfig(vocab_size=65, block_size=max(512, args.prompt_tokens + args.new_tokens), n_layer=6, n_head=6,
                        n_embd=384)
        model = GPT(cfg).eval()
        idx = torch.randint(0, cfg.vocab_size, (1, args.prompt_tokens))
        about = "random weights"
    else:
        from helpers.train import load_checkpoint

        model, tok, _ = load_checkpoint(args.model)
        idx = _prompt(tok, args.prompt_tokens)
        about = f"{Path(args.model).name}, prompt from the validation plays"
        if args.draft != "none":
            draft, draft_tok, _ = load_checkpoint(args.draft)
            if draft_tok.encode("To be, or not") != tok.encode("To be, or not"):
                sys.exit("the draft's vocabulary is not the model's")
            draft.eval()
    model.eval()
    hf = model.to_hf().eval()
    hf_draft = draft.to_hf().eval() if draft is not None else None
    n, mask = args.new_tokens, torch.ones_like(idx)

    def hf_kwargs(**extra):
        return dict(attention_mask=mask, max_new_tokens=n, min_new_tokens=n, do_sample=False, use_cache=True,
                    pad_token_id=0, **extra)

    contenders = {
        "cached": ("ours, KV cache", lambda: generate(model, idx, n, temperature=0, use_cache=True)),
        "uncached": ("ours, no cache", lambda: generate(model, idx, n, temperature=0, use_cache=False)),
        "hf": ("transformers generate", lambda: _hf(hf, idx, hf_kwargs())),
    }
    if draft is not None:
        contenders["spec"] = (f"ours, speculative (k={args.k})",
                              lambda: speculative_generate(model, draft, idx, n, k=args.k)[0])
        contenders["hf_assisted"] = ("transformers, assisted", lambda: _hf(hf, idx, hf_kwargs(assistant_model=hf_draft)))
    reference = contenders["cached"][1]()
    for key, (label, fn) in contenders.items():  # warm-up, and the identity check
        try:
            out = fn()
        except Exception as e:  # noqa: BLE001 - a transformers feature this version lacks: say so, go on
            print(f"  {label}: skipped ({type(e).__name__}: {str(e).splitlines()[0][:100]})")
            contenders[key] = None
            continue
        if not torch.equal(out, reference):
            sys.exit(f"{label} gave different greedy tokens from ours: the comparison would be meaningless")
    contenders = {k: v for k, v in contenders.items() if v is not None}
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(args.rounds):
        for key, (_, fn) in contenders.items():
            times[key].append(_time(fn))
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"model: {model.config.n_layer} layers, {model.config.n_embd} wide, {model.num_parameters():,} parameters "
          f"({about}); prompt {idx.shape[1]} + {n} new tokens, greedy, {args.threads} threads, {args.rounds} rounds")
    for key, (label, _) in contenders.items():
        print(f"  {label:<28} median {med[key] * 1e3:8.1f} ms  ({n / med[key]:7.1f} tokens/s)  "
              f"{med['hf'] / med[key]:5.2f}x transformers' generate")
    print(f"the KV cache over recomputation: {med['uncached'] / med['cached']:.1f}x; every contender's greedy tokens "
          "are identical to ours")
    return {k: med["hf"] / v for k, v in med.items()}


def _hf(hf, idx, kwargs):
    with torch.inference_mode():
        return hf.generate(idx, **kwargs)


if __name__ == "__main__":
    main()
