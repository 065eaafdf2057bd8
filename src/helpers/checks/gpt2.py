"""Checkers for notebook 09 (GPT-2 through ``transformers`` and through our own code).

- ``check_hf_to_ours``: a Hugging Face ``GPT2LMHeadModel`` state dict converted for our ``GPT``, judged by
  logits parity on tiny random models (Conv1D stores ``[in, out]``, ``nn.Linear`` stores ``[out, in]``);
- ``check_score_continuation``: the log-probability a model gives a continuation of a prompt;
- ``check_distinct_ngrams``: the share of distinct n-grams, the repetition measure of the decoding table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache

import torch

from ..model import GPT, GPTConfig
from ._core import Case, CheckResult, run_cases

__all__ = ["check_hf_to_ours", "check_score_continuation", "check_distinct_ngrams", "reference_distinct_ngrams"]

_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")

# ---------------------------------------------------------------------------------------------------------
# Hugging Face's Conv1D weights -> our nn.Linear weights


def _tiny_hf(vocab: int, n_embd: int, block: int, n_layer: int, n_head: int, seed: int):
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # a tiny vocabulary makes transformers warn about GPT-2's token ids
    try:
        torch.manual_seed(seed)
        cfg = GPT2Config(vocab_size=vocab, n_positions=block, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
                         bos_token_id=0, eos_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
        hf = GPT2LMHeadModel(cfg).eval()
        with torch.no_grad():  # GPT-2's init leaves biases and LayerNorms trivial: give them values to carry
            for name, p in hf.named_parameters():
                if p.dim() == 1:
                    p.add_(0.1 * torch.randn(p.shape, generator=torch.Generator().manual_seed(len(name) + seed)))
    finally:
        hf_logging.set_verbosity(verbosity)
    return hf


_CONFIGS = {
    # vocab = n_embd = block size: a converter that transposes the embeddings too still loads (and is wrong)
    "square": dict(vocab=16, n_embd=16, block=16, n_layer=2, n_head=2, seed=1),
    "gpt2-like": dict(vocab=23, n_embd=12, block=10, n_layer=2, n_head=3, seed=2),
    "one layer, four heads": dict(vocab=9, n_embd=8, block=6, n_layer=1, n_head=4, seed=3),
}


@cache
def _tiny_hf_state(key: str) -> dict:
    return {k: v.detach().clone() for k, v in _tiny_hf(**_CONFIGS[key]).state_dict().items()}


def _logits_with(convert: Callable, key: str) -> torch.Tensor | None:
    """Convert the tiny HF model ``key``'s state dict with ``convert``, load it into our GPT, run it."""
    spec = _CONFIGS[key]
    state = {k: v.clone() for k, v in _tiny_hf_state(key).items()}  # a fresh copy: edits in place are harmless
    got = convert(state)
    if got is None:
        return None
    if not isinstance(got, Mapping):
        raise TypeError(f"expected a dict of name -> tensor, got {type(got).__name__}")
    ours = GPT(GPTConfig(vocab_size=spec["vocab"], block_size=spec["block"], n_layer=spec["n_layer"],
                         n_head=spec["n_head"], n_embd=spec["n_embd"], dropout=0.0)).eval()
    want = ours.state_dict()
    missing = [k for k in want if k not in got and k != "lm_head.weight"]  # the head is tied to wte
    extra = [k for k in got if k not in want]
    if missing or extra:
        raise KeyError(f"names do not match our GPT: missing {missing[:3]}, unexpected {extra[:3]}")
    for k, v in got.items():
        if not isinstance(v, torch.Tensor):
            raise TypeError(f"{k} is a {type(v).__name__}, not a tensor")
        if tuple(v.shape) != tuple(want[k].shape):
            raise ValueError(f"{k} has shape {tuple(v.shape)}, our GPT needs {tuple(want[k].shape)}")
    ours.load_state_dict(dict(got), strict=False)
    ids = torch.randint(0, spec["vocab"], (2, spec["block"]), generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        return ours(ids).logits


def _reference_convert(state: dict) -> dict:
    return {k: (v.t() if k.endswith(_CONV1D) else v) for k, v in state.items()}


def _transpose_all(state: dict) -> dict:
    return {k: (v.t() if v.dim() == 2 else v) for k, v in state.items()}


def _forgot_attn_proj(state: dict) -> dict:  # the square C x C matrix loads either way
    return {k: (v.t() if k.endswith(_CONV1D) and not k.endswith("attn.c_proj.weight") else v)
            for k, v in state.items()}


def _forgot_mlp_proj(state: dict) -> dict:
    return {k: (v.t() if k.endswith(_CONV1D) and not k.endswith("mlp.c_proj.weight") else v)
            for k, v in state.items()}


def check_hf_to_ours(fn: Callable[[dict], dict]) -> CheckResult:
    """``fn(hf_state: dict) -> dict``: a ``GPT2LMHeadModel`` state dict converted so that our ``GPT`` loads it
    and computes the same logits. Judged by the logits of tiny random models of three shapes."""
    if fn is None or not callable(fn):
        return run_cases("hf_to_ours", fn, [])
    cases = [Case(f"a tiny GPT-2 ({key}: vocab {s['vocab']}, n_embd {s['n_embd']}, {s['n_layer']} layers, "
                  f"{s['n_head']} heads): same logits", (key,), _logits_with(_reference_convert, key), atol=1e-5)
             for key, s in _CONFIGS.items()]
    mistakes = [
        ("every 2-D tensor transposed: the embeddings wte and wpe are [rows, n_embd] in both libraries; only "
         "the four Conv1D weights (c_attn, attn.c_proj, c_fc, mlp.c_proj) are stored [in, out]",
         lambda key: _logits_with(_transpose_all, key)),
        ("attn.c_proj.weight not transposed: it is square (n_embd x n_embd), so its shape could not warn you",
         lambda key: _logits_with(_forgot_attn_proj, key)),
        ("nothing transposed: Conv1D stores [in, out], nn.Linear stores [out, in]",
         lambda key: _logits_with(lambda s: dict(s), key)),
    ]
    return run_cases("hf_to_ours", lambda key: _logits_with(fn, key), cases, mistakes=mistakes)


# ---------------------------------------------------------------------------------------------------------
# the log-probability of a continuation


def _tiny_gpt(seed: int, vocab: int = 13) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=vocab, block_size=16, n_layer=2, n_head=2, n_embd=16, dropout=0.0)).eval()


def _score(model, prompt, cont, shift: int = 0, skip_last: bool = False, mean: bool = False,
           whole: bool = False) -> float:
    ids = torch.cat([prompt, cont])[None]
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0].double(), dim=-1)  # [T, V]
    t0 = 1 if whole else len(prompt)
    targets = range(t0, ids.shape[1] - (1 if skip_last else 0))
    vals = [float(logp[t - 1 + shift, ids[0, t]]) for t in targets if 0 <= t - 1 + shift < ids.shape[1]]
    return sum(vals) / len(vals) if mean else sum(vals)


def check_score_continuation(fn: Callable) -> CheckResult:
    """``fn(model, prompt_ids [T0], cont_ids [T1]) -> float``: ``log p(cont | prompt)``, the sum over the
    continuation's tokens of ``log p(token | everything before it)``, in nats, from one forward pass of
    ``model`` (our ``GPT``; ``model(ids [1, T]).logits`` is ``[1, T, V]``, row ``t`` predicts token ``t + 1``)."""
    cases = []
    for name, seed, T0, T1 in [("a prompt of 4 tokens, a continuation of 5", 1, 4, 5),
                               ("a one-token prompt", 2, 1, 6),
                               ("a one-token continuation", 3, 7, 1),
                               ("another model, 10 + 6 tokens", 4, 10, 6)]:
        g = torch.Generator().manual_seed(seed + 50)
        model = _tiny_gpt(seed)
        prompt = torch.randint(0, 13, (T0,), generator=g)
        cont = torch.randint(0, 13, (T1,), generator=g)
        cases.append(Case(name, (model, prompt, cont), _score(model, prompt, cont), atol=1e-4, rtol=1e-5))
    mistakes = [
        ("an off-by-one: row t of the logits predicts token t + 1, so token t is scored by row t - 1",
         lambda m, p, c: _score(m, p, c, shift=1)),
        ("the prompt's tokens scored too: only the continuation counts", lambda m, p, c: _score(m, p, c, whole=True)),
        ("the mean over tokens, not the sum (log p of the whole continuation is a sum)",
         lambda m, p, c: _score(m, p, c, mean=True)),
        ("the last continuation token is missing (the model must see prompt + continuation)",
         lambda m, p, c: _score(m, p, c, skip_last=True)),
    ]
    return run_cases("score_continuation", fn, cases, mistakes=mistakes)


# ---------------------------------------------------------------------------------------------------------
# the share of distinct n-grams


def reference_distinct_ngrams(ids, n: int = 4) -> float:
    """The number of distinct n-grams of ``ids`` divided by the number of n-grams, ``len(ids) - n + 1``
    (1.0 when there is no n-gram: nothing repeats). Low values mean repetitive text."""
    ids = list(ids)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int, got {n!r}")
    grams = [tuple(ids[i:i + n]) for i in range(len(ids) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 1.0


def _distinct_variant(ids, n, last=True, denom_len=False, tokens=False):
    ids = list(ids)
    stop = len(ids) - n + (1 if last else 0)
    grams = [tuple(ids[i:i + n]) for i in range(stop)]
    if tokens:
        return len(set(ids)) / len(ids)
    if denom_len:
        return len(set(grams)) / len(ids)
    return len(set(grams)) / len(grams)


def check_distinct_ngrams(fn: Callable) -> CheckResult:
    """``fn(ids: list[int], n) -> float``: distinct n-grams / all n-grams (1.0 when there is none)."""
    loop = [5, 6, 7, 8] * 5  # a loop of period 4
    text = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4, 6, 2, 6, 4, 3, 3, 8, 3, 2, 7]
    cases = [
        Case("no repetition at all: 1.0", (list(range(12)), 4), 1.0),
        Case("a loop of period 4 repeated 5 times, n = 4", (loop, 4), reference_distinct_ngrams(loop, 4)),
        Case("digits of pi, n = 2", (text, 2), reference_distinct_ngrams(text, 2)),
        Case("one token repeated, n = 3", ([7] * 9, 3), 1 / 7),
        Case("a sequence exactly n long has one n-gram", ([1, 1, 1], 3), 1.0),
        Case("shorter than n: no n-gram, nothing repeats: 1.0", ([1, 2], 4), 1.0),
    ]
    mistakes = [
        ("an off-by-one: a sequence of length T has T - n + 1 n-grams (the last starts at T - n)",
         lambda i, n: _distinct_variant(i, n, last=False)),
        ("divided by the number of tokens instead of the number of n-grams",
         lambda i, n: _distinct_variant(i, n, denom_len=True)),
        ("distinct tokens, not distinct n-grams (n is ignored)", lambda i, n: _distinct_variant(i, n, tokens=True)),
    ]
    return run_cases("distinct_ngrams", fn, cases, mistakes=mistakes)


