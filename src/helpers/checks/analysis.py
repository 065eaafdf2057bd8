"""Checkers for notebook 10 (what trained attention heads do): per-head scores computed from attention weights.

Each ``check_NAME(fn)`` runs the learner's function on random causal attention patterns of several shapes and
on hand-made patterns whose answer is known in closed form, and compares with ``helpers.viz``'s reference.
"""

from __future__ import annotations

import math

import torch

from ..viz.attention import attention_entropy, induction_score, prev_token_score
from ._core import Case, CheckResult, run_cases

__all__ = ["check_prev_token_score", "check_attention_entropy", "check_induction_score"]


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
    return run_cases("prev_token_score", fn, cases)


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
    return run_cases("attention_entropy", fn, cases)


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
    return run_cases("induction_score", fn, cases)
