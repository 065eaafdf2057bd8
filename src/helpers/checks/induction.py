"""Checkers for notebook 12 (induction heads): a repeated span, its induction score, the in-context score."""

from __future__ import annotations

import torch

from ..induction import RepeatBatch, span_induction_score
from ._core import Case, CheckResult, run_cases

__all__ = ["check_repeat_span", "check_span_induction_score", "check_in_context_score"]


# ---------------------------------------------------------------------------------------------------------
# repeat_span(x [B, T], start, offset, length) -> a new [B, T] with the span written again `offset` later


def _reference_repeat(x, start, offset, length):
    out = x.clone()
    out[:, start + offset:start + offset + length] = x[:, start:start + length]
    return out


def check_repeat_span(fn) -> CheckResult:
    """``fn(x [B, T], start, offset, length)`` returns a copy of ``x`` whose tokens ``start + offset ..
    start + offset + length - 1`` repeat ``start .. start + length - 1``; the input is left unchanged; a copy
    that would overlap its source (``offset < length``) or run past the end raises ``ValueError``."""

    def run(x, start, offset, length, expect_error=False, check_input=False):
        before = x.clone()
        if not expect_error:
            got = fn(x, start, offset, length)
            if check_input and not torch.equal(x, before):
                return "changed its input"
            return got
        try:
            fn(x, start, offset, length)
        except ValueError:
            return "raised ValueError"
        except NotImplementedError:
            raise
        except Exception as exc:  # noqa: BLE001 - report what the learner raised
            return f"raised {type(exc).__name__}, not ValueError"
        return "returned without an error"

    g = torch.Generator().manual_seed(3)
    x1 = torch.randint(0, 50, (2, 20), generator=g)
    x2 = torch.randint(0, 50, (3, 16), generator=g)
    expected3 = _reference_repeat(x1, 1, 5, 4)

    def unchanged(got):
        if isinstance(got, str):
            return False, "your function changed its input x in place: work on x.clone()"
        return torch.equal(got, expected3), "input left as it was, result correct"

    def error(got):
        return got == "raised ValueError", got

    cases = [
        Case("a span of 5 at 2, repeated 8 later", (x1, 2, 8, 5), _reference_repeat(x1, 2, 8, 5)),
        Case("a span whose copy ends exactly at the last token", (x2, 3, 7, 6), _reference_repeat(x2, 3, 7, 6)),
        Case("the copy starts right after the span (offset = length)", (x2, 0, 4, 4),
             _reference_repeat(x2, 0, 4, 4)),
        Case("the input x is left unchanged", (x1, 1, 5, 4), kwargs={"check_input": True}, predicate=unchanged),
        Case("offset 3 < length 5, the copy would overwrite its own source: ValueError", (x1, 0, 3, 5),
             kwargs={"expect_error": True}, predicate=error),
        Case("the copy would run past the last position: ValueError", (x1, 10, 6, 5),
             kwargs={"expect_error": True}, predicate=error),
    ]
    mistakes = [
        ("the copy lands one position early (at start + offset - 1)",
         lambda x, s, d, n, **_: _reference_repeat(x, s, d - 1, n)),
        ("one token too few copied (length - 1)", lambda x, s, d, n, **_: _reference_repeat(x, s, d, n - 1)),
    ]
    return run_cases("repeat_span", run, cases, mistakes=mistakes)


# ---------------------------------------------------------------------------------------------------------
# span_induction_score(w [B, H, T, T], start [B], offset [B], length [B]) -> [B, H]


def _random_attention(B, H, T, seed):
    g = torch.Generator().manual_seed(seed)
    scores = torch.randn(B, H, T, T, generator=g) * 3
    scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
    return scores.softmax(-1)


def _reference_score(w, start, offset, length):
    batch = RepeatBatch(torch.zeros(w.shape[0], w.shape[-1], dtype=torch.long), start, offset, length)
    return span_induction_score(w, batch)


def _shifted_score(shift, first=0, last=-1):
    """The same mean at key q - offset + 1 + shift over queries [s + d + first, s + d + n - 1 + last]."""
    def wrong(w, start, offset, length):
        rows = []
        for b, (s, d, n) in enumerate(zip(start.tolist(), offset.tolist(), length.tolist(), strict=True)):
            q = torch.arange(s + d + first, s + d + n + last)
            rows.append(w[b, :, q, q - d + 1 + shift].mean(-1))
        return torch.stack(rows)
    return wrong


def check_span_induction_score(fn) -> CheckResult:
    """``fn(w [B, H, T, T], start [B], offset [B], length [B]) -> [B, H]``: per sequence, the mean over the
    queries ``q = start + offset .. start + offset + length - 2`` of ``w[b, :, q, q - offset + 1]``."""
    T = 16
    perfect = torch.zeros(1, 2, T, T)
    perfect[:] = torch.ones(T, T).tril() / torch.arange(1, T + 1)[:, None]
    s, d, n = 2, 7, 5
    for q in range(s + d, s + d + n - 1):
        perfect[0, 0, q] = 0.0
        perfect[0, 0, q, q - d + 1] = 1.0
    one = (torch.tensor([s]), torch.tensor([d]), torch.tensor([n]))
    w = _random_attention(3, 4, 20, seed=5)
    starts, offsets, lengths = torch.tensor([0, 3, 5]), torch.tensor([8, 6, 10]), torch.tensor([6, 4, 5])
    cases = [
        Case("a perfect induction head (head 0) scores 1, a uniform one (head 1) its mean", (perfect, *one),
             _reference_score(perfect, *one)),
        Case("random heads, 3 sequences with their own start, offset and length", (w, starts, offsets, lengths),
             _reference_score(w, starts, offsets, lengths)),
        Case("spans of length 2: one query each", (w, starts, offsets, torch.tensor([2, 2, 2])),
             _reference_score(w, starts, offsets, torch.tensor([2, 2, 2]))),
    ]
    mistakes = [
        ("you read w[q, q - offset], the previous occurrence itself (a duplicate-token head), not the token "
         "after it", _shifted_score(-1)),
        ("one query too many: the last token of the second occurrence predicts a token that was never repeated",
         _shifted_score(0, last=0)),
        ("the queries start one early, at start + offset - 1, before the repeat begins", _shifted_score(0, first=-1, last=-2)),
    ]
    return run_cases("span_induction_score", fn, cases, mistakes=mistakes)


# ---------------------------------------------------------------------------------------------------------
# in_context_score(losses [B, N], early (lo, hi), late (lo, hi)) -> float


def check_in_context_score(fn) -> CheckResult:
    """``fn(losses [B, N], early, late) -> float``: the mean loss over positions ``late = (lo, hi)`` minus the
    mean over ``early`` (``[lo, hi)`` ranges); negative when later tokens are easier."""
    g = torch.Generator().manual_seed(8)
    losses = torch.rand(4, 30, generator=g) * 5
    falling = torch.linspace(5, 1, 30).repeat(2, 1)

    def ref(x, e, la):
        return (x[:, la[0]:la[1]].mean() - x[:, e[0]:e[1]].mean()).item()

    cases = [
        Case("a loss that falls along the context: negative", (falling, (0, 5), (20, 30)),
             ref(falling, (0, 5), (20, 30))),
        Case("random losses, ranges of different sizes", (losses, (2, 10), (25, 30)),
             ref(losses, (2, 10), (25, 30))),
        Case("the same range twice gives 0", (losses, (3, 9), (3, 9)), 0.0),
    ]
    mistakes = [
        ("the sign is reversed: late minus early, not early minus late", lambda x, e, la: -ref(x, e, la)),
        ("the ranges include their end (hi): Python ranges [lo, hi) stop before it",
         lambda x, e, la: (x[:, la[0]:la[1] + 1].mean() - x[:, e[0]:e[1] + 1].mean()).item()),
    ]
    return run_cases("in_context_score", fn, cases, mistakes=mistakes)
