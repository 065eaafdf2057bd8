"""Checkers for notebook 10 (what trained attention heads do): per-head scores computed from attention weights.

Each ``check_NAME(fn)`` runs the learner's function on random causal attention patterns of several shapes and
on hand-made patterns whose answer is known in closed form, and compares with ``helpers.viz``'s reference.
"""

from __future__ import annotations

import math

import torch

from ..viz.attention import attention_entropy, induction_score, prev_token_score
from ._core import Case, CheckResult, run_cases

__all__ = ["check_prev_token_score", "check_attention_entropy", "check_induction_score",
           "check_mean_ablate_head", "reference_mean_ablate_head"]


def _random_attention(*shape: int, seed: int, sharp: float = 3.0) -> torch.Tensor:
    """Causal softmax attention ``[*shape, T, T]`` (the last number of ``shape`` is ``T``), rows sum to 1."""
    *lead, T = shape
    g = torch.Generator().manual_seed(seed)
    scores = sharp * torch.randn(*lead, T, T, generator=g)
    mask = torch.ones(T, T, dtype=torch.bool).tril()
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)


def _shifted(T: int, shift: int) -> torch.Tensor:
    """One-hot attention: query ``t`` looks only at ``t - shift`` (at 0 when that is before the start)."""
    w = torch.zeros(T, T)
    for t in range(T):
        w[t, max(0, t - shift)] = 1.0
    return w


def _uniform_causal(T: int) -> torch.Tensor:
    mask = torch.ones(T, T).tril()
    return mask / mask.sum(-1, keepdim=True)


def _diag_mean(w: torch.Tensor, offset: int) -> torch.Tensor:
    return w.diagonal(offset=offset, dim1=-2, dim2=-1).mean(-1)


_PREV_MISTAKES = [
    ("the main diagonal w[t, t] (the token itself), not the one below it: use offset=-1",
     lambda w: _diag_mean(w, 0)),
    ("the diagonal above the main one (offset=+1): that is the future, masked to 0; the previous token is "
     "offset=-1", lambda w: _diag_mean(w, 1)),
    ("an average over all T queries: query 0 has no previous token, so average over the T - 1 others",
     lambda w: w.diagonal(offset=-1, dim1=-2, dim2=-1).sum(-1) / w.shape[-1]),
    ("w[t, t-2]: two steps back, an off-by-one in the offset", lambda w: _diag_mean(w, -2)),
]


def check_prev_token_score(fn) -> CheckResult:
    """``fn(weights [..., T, T]) -> [...]``: the mean over ``t = 1..T-1`` of ``weights[..., t, t-1]``."""
    a = _random_attention(2, 3, 7, seed=10)
    b = _random_attention(3, 2, 4, 9, seed=11)
    cases = [
        Case("a perfect previous-token head [T, T] scores 1", (_shifted(6, 1),), torch.tensor(1.0)),
        Case("uniform causal attention [T, T]: mean of 1/(t+1)", (_uniform_causal(5),),
             torch.tensor(sum(1 / (t + 1) for t in range(1, 5)) / 4)),
        Case("random heads [B, H, T, T] -> [B, H]", (a,), prev_token_score(a)),
        Case("stacked layers [L, B, H, T, T] -> [L, B, H]", (b,), prev_token_score(b)),
        Case("query 0 is left out (it has no previous token)", (_shifted(4, 0),), torch.tensor(0.0)),
    ]
    return run_cases("prev_token_score", fn, cases, mistakes=_PREV_MISTAKES)


def _plogp(w: torch.Tensor) -> torch.Tensor:
    return torch.where(w > 0, w * w.clamp_min(1e-30).log(), torch.zeros_like(w))


_ENTROPY_MISTAKES = [
    ("bits (log2), not nats (the natural log)", lambda w: -(_plogp(w) / math.log(2)).sum(-1).mean(-1)),
    ("a sum over queries, not the mean", lambda w: -_plogp(w).sum(-1).sum(-1)),
    ("the sign: entropy is -Σ w log w (it is never negative)", lambda w: _plogp(w).sum(-1).mean(-1)),
    ("a mean over the keys: a row's entropy is the SUM over its keys of -w log w (then average over queries)",
     lambda w: -_plogp(w).mean(-1).mean(-1)),
]


class NaNInResult(ValueError):
    """The learner's entropy came back with NaN in it (0 · log 0)."""


def _no_nan(fn):
    if fn is None or not callable(fn):
        return fn

    def wrapped(w):
        out = fn(w)
        if isinstance(out, torch.Tensor) and out.is_floating_point() and torch.isnan(out).any():
            raise NaNInResult("your result contains NaN: the masked weights are exact zeros and 0 * log(0) is "
                              "nan in floating point; count 0 · log 0 as 0 (torch.where, or clamp w before the log)")
        return out

    return wrapped


def check_attention_entropy(fn) -> CheckResult:
    """``fn(weights [..., T, T]) -> [...]``: the mean over queries of ``-sum_j w log w`` (nats, ``0 log 0 = 0``)."""
    a = _random_attention(2, 3, 6, seed=20)
    b = _random_attention(2, 1, 2, 8, seed=21, sharp=1.0)
    T = 6
    cases = [
        Case("one-hot rows have entropy 0 (and no NaN from 0 log 0)", (_shifted(T, 1),), torch.tensor(0.0)),
        Case("uniform causal rows: mean of log(t+1)", (_uniform_causal(T),),
             torch.tensor(sum(math.log(t + 1) for t in range(T)) / T)),
        Case("random heads [B, H, T, T] -> [B, H]", (a,), attention_entropy(a)),
        Case("stacked layers [L, B, H, T, T] -> [L, B, H]", (b,), attention_entropy(b)),
    ]
    return run_cases("attention_entropy", _no_nan(fn), cases, mistakes=_ENTROPY_MISTAKES)


_INDUCTION_MISTAKES = [
    ("w[t, t - P]: the previous occurrence of the same token (a duplicate-token head); an induction head "
     "looks one step right of it, at t - P + 1", lambda w, p: _diag_mean(w, -p)),
    ("the first copy's last query t = P - 1 included: the mean runs over t = P..T-1 only",
     lambda w, p: _diag_mean(w, -(p - 1))),
    ("w[t, t - P + 2]: one step too far right", lambda w, p: w.diagonal(offset=-(p - 2), dim1=-2, dim2=-1)
     [..., 2:].mean(-1)),
]


def check_induction_score(fn) -> CheckResult:
    """``fn(weights [..., T, T], period) -> [...]``: the mean over ``t = period..T-1`` of
    ``weights[..., t, t - period + 1]`` (the token after the previous occurrence)."""
    P = 5
    perfect = torch.zeros(2 * P, 2 * P)
    perfect[:P] = _uniform_causal(2 * P)[:P]
    for t in range(P, 2 * P):
        perfect[t, t - P + 1] = 1.0
    a = _random_attention(2, 4, 12, seed=30)
    b = _random_attention(2, 2, 3, 9, seed=31)
    cases = [
        Case("a perfect induction head on a sequence repeated with period 5 scores 1", (perfect, P),
             torch.tensor(1.0)),
        Case("a previous-token head is not an induction head (period 5)", (_shifted(2 * P, 1), P),
             torch.tensor(0.0)),
        Case("random heads [B, H, T, T], period 6", (a, 6), induction_score(a, 6)),
        Case("stacked layers [L, B, H, T, T], period 4", (b, 4), induction_score(b, 4)),
        Case("period 1: every token repeats its predecessor, the score reads the diagonal",
             (_shifted(5, 0), 1), torch.tensor(1.0)),
    ]
    return run_cases("induction_score", fn, cases, mistakes=_INDUCTION_MISTAKES)


# ---------------------------------------------------------------------------------------------------------
# ablation by hook: replace one head's output by its mean over positions


def _mean_ablation_hook(layer_head_slice, over=(1,), zero=False):
    lo, hi = layer_head_slice

    def hook(module, inputs):
        (y,) = inputs  # [B, T, C]
        y = y.clone()
        part = y[..., lo:hi]
        y[..., lo:hi] = 0.0 if zero else part.mean(dim=over, keepdim=True).expand_as(part)
        return (y,)

    return hook


def _reference_mean_ablate(model, layer, head, over=(1,), zero=False, slice_by_heads=False):
    C, H = model.config.n_embd, model.config.n_head
    D = H if slice_by_heads else C // H
    hook = _mean_ablation_hook((head * D, (head + 1) * D), over=over, zero=zero)
    return model.transformer.h[layer].attn.c_proj.register_forward_pre_hook(hook)


def reference_mean_ablate_head(model, layer: int, head: int):
    """Replace head ``head`` of block ``layer`` by its mean over the positions of each sequence (a forward
    pre-hook on ``attn.c_proj``); returns the hook's handle (``handle.remove()`` undoes it)."""
    n_layer, n_head = len(model.transformer.h), model.config.n_head
    if not (isinstance(layer, int) and 0 <= layer < n_layer and isinstance(head, int) and 0 <= head < n_head):
        raise ValueError(f"layer must be in [0, {n_layer}) and head in [0, {n_head}), got {layer!r}, {head!r}")
    return _reference_mean_ablate(model, layer, head)


_ABLATION_CASES = {
    "layer 0, head 1 of a 2-layer, 4-head model": (0, 0, 1),
    "layer 1, head 3 (the last head: its slice ends at n_embd)": (0, 1, 3),
    "layer 2, head 0 of another model": (1, 2, 0),
}


def _ablation_model(seed: int):
    from ..model import GPT, GPTConfig

    torch.manual_seed(seed)
    n_layer = 2 if seed == 0 else 3
    return GPT(GPTConfig(vocab_size=11, block_size=12, n_layer=n_layer, n_head=4, n_embd=24, dropout=0.0)).eval()


def _ablated_logits(ablate, key: str):
    seed, layer, head = _ABLATION_CASES[key]
    model = _ablation_model(seed)
    ids = torch.randint(0, 11, (3, 12), generator=torch.Generator().manual_seed(seed + 5))
    with torch.no_grad():
        clean = model(ids).logits
        handle = ablate(model, layer, head)
        if handle is None:
            return None
        if not hasattr(handle, "remove"):
            raise TypeError(f"return the hook's handle (what register_forward_pre_hook returns), got "
                            f"{type(handle).__name__}")
        try:
            out = model(ids).logits
        finally:
            handle.remove()
        if not torch.equal(model(ids).logits, clean):
            raise RuntimeError("the model stays changed after handle.remove(): change the activations in a hook, "
                               "not the weights")
    return out


def check_mean_ablate_head(fn) -> CheckResult:
    """``fn(model, layer, head) -> handle``: a forward pre-hook on ``model.transformer.h[layer].attn.c_proj``
    that replaces head ``head``'s channels (``head·D .. (head+1)·D``, ``D = n_embd / n_head``) of its input
    ``[B, T, C]`` by their mean over the positions of each sequence; returns the hook's handle. Judged by the
    logits of tiny GPTs (and by the model being itself again after ``handle.remove()``)."""
    if fn is None or not callable(fn):
        return run_cases("mean_ablate_head", fn, [])
    cases = [Case(name, (key,), _ablated_logits(_reference_mean_ablate, key)) for name, key in
             ((k, k) for k in _ABLATION_CASES)]
    mistakes = [
        ("zeroed, not replaced by its mean over positions (that is section 10's ablate_head)",
         lambda key: _ablated_logits(lambda m, l, h: _reference_mean_ablate(m, l, h, zero=True), key)),
        ("a mean over the batch as well: average over the positions of each sequence only (dim=1)",
         lambda key: _ablated_logits(lambda m, l, h: _reference_mean_ablate(m, l, h, over=(0, 1)), key)),
        ("a mean over the batch (dim=0), not over the positions (dim=1)",
         lambda key: _ablated_logits(lambda m, l, h: _reference_mean_ablate(m, l, h, over=(0,)), key)),
        ("the wrong channels: head h owns h·D .. (h+1)·D with D = n_embd // n_head (the head size), not n_head",
         lambda key: _ablated_logits(lambda m, l, h: _reference_mean_ablate(m, l, h, slice_by_heads=True), key)),
    ]
    return run_cases("mean_ablate_head", lambda key: _ablated_logits(fn, key), cases, mistakes=mistakes)
