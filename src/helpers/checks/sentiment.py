"""Checkers for notebook 13 (fine-tuning for classification): the LoRA forward, the merged weight, pooling at
the last real position, and Wilson's interval."""

from __future__ import annotations

import math

import torch

from ..sentiment import pool_last, wilson_interval
from ._core import Case, CheckResult, close, run_cases

__all__ = ["check_lora_forward", "check_merge_weight", "check_pool_last", "check_wilson"]


def _rand(*shape, seed):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _linear(x, W, b):
    return x @ W.T + (b if b is not None else 0)


# ---------------------------------------------------------------------------------------------------------
# lora_forward(x [..., in], W [out, in], b [out] or None, A [r, in], B [out, r], alpha, r) -> [..., out]


def _ref_lora(x, W, b, A, B, alpha, r):
    return _linear(x, W, b) + (alpha / r) * (x @ A.T @ B.T)


def _lora_cases():
    cases = []
    for i, (n_in, n_out, r, alpha, lead, bias) in enumerate(
            [(6, 4, 2, 4.0, (3,), True), (8, 10, 3, 12.0, (2, 5), True), (5, 5, 5, 2.0, (4,), True),
             (7, 3, 1, 0.5, (2,), False)]):
        x, W = _rand(*lead, n_in, seed=10 + i), _rand(n_out, n_in, seed=20 + i)
        b = _rand(n_out, seed=30 + i) if bias else None
        A, B = _rand(r, n_in, seed=40 + i), _rand(n_out, r, seed=50 + i)
        what = (f"x {tuple(x.shape)}, W {n_out}x{n_in}, r={r}, alpha={alpha:g}"
                + ("" if bias else ", no bias (b is None)") + (" (square, r = in = out)" if n_in == n_out == r else ""))
        cases.append(Case(what, (x, W, b, A, B, alpha, r), _ref_lora(x, W, b, A, B, alpha, r), atol=1e-9))
    return cases


def check_lora_forward(fn) -> CheckResult:
    """``fn(x, W, b, A, B, alpha, r)`` returns ``x Wᵀ + b + (alpha / r) · x Aᵀ Bᵀ`` (``b`` may be None)."""
    mistakes = [
        ("the adapter scaled by alpha instead of alpha / r", lambda x, W, b, A, B, a, r: _ref_lora(x, W, b, A, B, a * r, r)),
        ("the adapter scaled by r / alpha instead of alpha / r",
         lambda x, W, b, A, B, a, r: _linear(x, W, b) + (r / a) * (x @ A.T @ B.T)),
        ("the adapter not scaled at all (alpha / r missing)",
         lambda x, W, b, A, B, a, r: _linear(x, W, b) + x @ A.T @ B.T),
        ("the base layer's bias left out", lambda x, W, b, A, B, a, r: _ref_lora(x, W, None, A, B, a, r)),
        ("B and A in the wrong order: x Bᵀ Aᵀ (x goes through A first, down to r numbers, then B back up)",
         lambda x, W, b, A, B, a, r: _linear(x, W, b) + (a / r) * (x @ B.T @ A.T)),
        ("A and B without their transposes: x A B (an nn.Linear computes x Wᵀ)",
         lambda x, W, b, A, B, a, r: _linear(x, W, b) + (a / r) * (x @ A @ B)),
        ("W without its transpose: x W (an nn.Linear computes x Wᵀ)",
         lambda x, W, b, A, B, a, r: x @ W + (b if b is not None else 0) + (a / r) * (x @ A.T @ B.T)),
        ("only the adapter: the frozen base x Wᵀ + b is missing", lambda x, W, b, A, B, a, r: (a / r) * (x @ A.T @ B.T)),
    ]
    return run_cases("lora_forward", fn, _lora_cases(), mistakes=mistakes)


# ---------------------------------------------------------------------------------------------------------
# merge_weight(W [out, in], A [r, in], B [out, r], alpha, r) -> W + (alpha / r) B A


def check_merge_weight(fn) -> CheckResult:
    """``fn(W, A, B, alpha, r)`` returns a new ``W + (alpha / r) · B A`` (``[out, in]``), leaving ``W`` as it was."""
    cases = []
    for i, (n_in, n_out, r, alpha) in enumerate([(6, 4, 2, 4.0), (9, 12, 3, 1.5), (5, 5, 5, 10.0)]):
        W, A, B = _rand(n_out, n_in, seed=60 + i), _rand(r, n_in, seed=70 + i), _rand(n_out, r, seed=80 + i)
        cases.append(Case(f"W {n_out}x{n_in}, r={r}, alpha={alpha:g}" + (" (square)" if n_in == n_out else ""),
                          (W, A, B, alpha, r), W + (alpha / r) * B @ A, atol=1e-9))
    W, A, B = _rand(4, 6, seed=90), _rand(2, 6, seed=91), _rand(4, 2, seed=92)
    expected = W + 2.0 * B @ A

    def run(W_, A_, B_, alpha, r, check_input=False):
        before = W_.clone()
        got = fn(W_, A_, B_, alpha, r)
        if check_input and not torch.equal(W_, before):
            return "changed W in place"
        return got

    def input_ok(got):
        if isinstance(got, str):
            return False, "your function changed W in place: return W + ..., do not add into W (W += ...)"
        return close(got, expected, atol=1e-9)

    cases.append(Case("W itself is left unchanged", (W, A, B, 4.0, 2), kwargs={"check_input": True},
                      predicate=input_ok))
    mistakes = [
        ("the update scaled by alpha instead of alpha / r", lambda W, A, B, a, r, **_: W + a * B @ A),
        ("the update scaled by r / alpha", lambda W, A, B, a, r, **_: W + (r / a) * B @ A),
        ("the update not scaled (alpha / r missing)", lambda W, A, B, a, r, **_: W + B @ A),
        ("the update transposed: Aᵀ Bᵀ instead of B A", lambda W, A, B, a, r, **_: W + (a / r) * A.T @ B.T),
        ("the update subtracted", lambda W, A, B, a, r, **_: W - (a / r) * B @ A),
        ("only the update: W itself is missing", lambda W, A, B, a, r, **_: (a / r) * B @ A),
    ]
    return run_cases("merge_weight", run, cases, mistakes=mistakes)


# ---------------------------------------------------------------------------------------------------------
# pool_last(h [B, T, C], lengths [B]) -> [B, C]


def check_pool_last(fn) -> CheckResult:
    """``fn(h, lengths)`` returns ``[B, C]``: ``h[b, lengths[b] - 1]``, the last real position of each sequence."""
    h1 = _rand(4, 7, 5, seed=100)
    l1 = torch.tensor([7, 3, 1, 5])
    h2 = _rand(3, 10, 8, seed=101)
    l2 = torch.tensor([10, 10, 10])
    h3 = _rand(6, 12, 4, seed=102)
    l3 = torch.tensor([2, 12, 9, 4, 11, 1])
    h4 = _rand(3, 9, 6, seed=103)
    l4 = torch.tensor([4, 8, 2])
    cases = [
        Case("4 sequences of lengths 7, 3, 1, 5 padded to T = 7", (h1, l1), pool_last(h1, l1), atol=1e-12),
        Case("3 sequences with no padding (every length = T)", (h2, l2), pool_last(h2, l2), atol=1e-12),
        Case("6 sequences of mixed lengths", (h3, l3), pool_last(h3, l3), atol=1e-12),
        Case("3 sequences all shorter than T = 9", (h4, l4), pool_last(h4, l4), atol=1e-12),
    ]

    def mean_real(h, lengths):
        mask = torch.arange(h.shape[1])[None, :] < lengths[:, None]
        return (h * mask[..., None]).sum(1) / lengths[:, None]

    mistakes = [
        ("h[:, -1]: the last position is a padding position for every sequence shorter than T",
         lambda h, lengths: h[:, -1]),
        ("h[b, lengths[b]]: one past the last real position (positions count from 0)",
         lambda h, lengths: h[torch.arange(h.shape[0]), lengths.clamp(max=h.shape[1] - 1)]),
        ("h[:, 0]: the first position has read only the first character", lambda h, lengths: h[:, 0]),
        ("the mean over the real positions (a valid pooling, but not the one asked for)", mean_real),
        ("the mean over all positions, padding included", lambda h, lengths: h.mean(1)),
    ]
    return run_cases("pool_last", fn, cases, mistakes=mistakes)


# ---------------------------------------------------------------------------------------------------------
# wilson_interval(k, n, z=1.96) -> (low, high)


def check_wilson(fn) -> CheckResult:
    """``fn(k, n, z=1.96)`` returns Wilson's score interval ``(low, high)`` for ``k`` successes out of ``n``."""
    cases = []
    for k, n, z in [(430, 694, 1.96), (7, 10, 1.96), (0, 20, 1.96), (50, 50, 1.96), (30, 120, 2.576)]:
        what = f"{k} right out of {n}" + (f", z = {z}" if z != 1.96 else "")
        cases.append(Case(what, (k, n, z), wilson_interval(k, n, z), atol=1e-9))

    def wald(k, n, z):
        p = k / n
        half = z * math.sqrt(p * (1 - p) / n)
        return (p - half, p + half)

    def no_denominator(k, n, z):
        p = k / n
        centre, half = p + z * z / (2 * n), z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        return (centre - half, centre + half)

    mistakes = [
        ("the normal (Wald) interval p ± z·sqrt(p(1-p)/n), not Wilson's", wald),
        ("the whole interval not divided by 1 + z²/n", no_denominator),
        ("z = 1.645 (a 90% interval) instead of the z you were given", lambda k, n, z: wilson_interval(k, n, 1.645)),
        ("the interval centred on k/n: Wilson's centre moves towards 1/2",
         lambda k, n, z: tuple(v - (wilson_interval(k, n, z)[0] + wilson_interval(k, n, z)[1]) / 2 + k / n
                               for v in wilson_interval(k, n, z))),
    ]

    def call(k, n, z):
        got = fn(k, n, z)
        return tuple(float(v) for v in got) if isinstance(got, (tuple, list)) else got

    return run_cases("wilson_interval", call, cases, mistakes=mistakes)
