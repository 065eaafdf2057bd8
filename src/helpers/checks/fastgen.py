"""Checkers for the fast-generation lesson: int8 weight quantization and the arithmetic intensity of a matmul.

Each compares the learner's function with an independent reference (the quantization written in NumPy, in
float64; the intensity counted from the matrices' sizes) and names the usual mistakes.
"""

from __future__ import annotations

import numpy as np
import torch

from ._core import Case, CheckResult, run_cases

__all__ = ["check_quantize_int8", "check_arithmetic_intensity", "check_accept_draft"]


# ---------------------------------------------------------------------------------------------------------
# quantize_int8(w [out, in]) -> (q [out, in] int8, scale [out]): scale = max|w_row| / 127, q = round(w / scale)


def _reference_int8(w: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NumPy, float64: ``(q, scale, ratio)`` with ``ratio = w / scale`` before rounding (to spot near-ties).

    Rows of zeros get ``scale = 1``; np.round rounds half to even, as torch.round does.
    """
    a = w.detach().double().numpy()
    scale = np.abs(a).max(axis=1) / 127.0
    scale = np.where(scale > 0, scale, 1.0)
    ratio = a / scale[:, None]
    return np.clip(np.round(ratio), -127, 127), scale, ratio


def _int8_predicate(w: torch.Tensor):
    """Accept ``(q, scale)`` when ``scale`` matches per row (any positive scale for a row of zeros) and ``q``
    matches exactly, except where ``w / scale`` is within 1e-4 of a half-integer: there float32 round-off may
    pick either neighbour."""
    q_ref, s_ref, ratio = _reference_int8(w)
    zero_rows = np.abs(w.detach().double().numpy()).max(axis=1) == 0
    near_tie = np.abs(np.abs(ratio - np.floor(ratio)) - 0.5) < 1e-4
    out, inp = w.shape

    def check(got) -> tuple[bool, str]:
        if not isinstance(got, (tuple, list)) or len(got) != 2:
            what = f"a tuple of {len(got)}" if isinstance(got, (tuple, list)) else f"a single {type(got).__name__}"
            return False, f"expected a tuple (q, scale), got {what}"
        q, scale = got
        if not isinstance(q, torch.Tensor) or not isinstance(scale, torch.Tensor):
            return False, f"q and scale must be tensors, got {type(q).__name__} and {type(scale).__name__}"
        if q.shape != (out, inp):
            return False, f"q must have w's shape {(out, inp)}, got {tuple(q.shape)}"
        if q.dtype != torch.int8:
            return False, f"q must be int8 (1 byte per weight), got {q.dtype}: cast it with .to(torch.int8)"
        if scale.shape != (out,):
            return False, f"scale must have shape ({out},), one per output row, got {tuple(scale.shape)}"
        if not scale.dtype.is_floating_point:
            return False, f"scale must be floating-point, got {scale.dtype}"
        s = scale.detach().double().numpy()
        if not np.isfinite(s).all():
            return False, "scale holds NaN or inf: a row of zeros must not divide 0 by 0 (give it scale 1)"
        if zero_rows.any() and not (s[zero_rows] > 0).all():
            return False, "a row of zeros got scale 0: give it a positive scale (e.g. 1), so w / scale is 0, not NaN"
        rows = ~zero_rows
        if not np.allclose(s[rows], s_ref[rows], rtol=1e-6, atol=0):
            i = int(np.argmax(np.abs(s - s_ref) * rows))
            return False, f"scale[{i}] = {s[i]:.6g}, expected max|w[{i}]| / 127 = {s_ref[i]:.6g}"
        qn = q.detach().numpy().astype(np.int64)
        wrong = (qn != q_ref) & ~(near_tie & (np.abs(qn - q_ref) <= 1))
        if wrong.any():
            i, j = map(int, np.argwhere(wrong)[0])
            return False, (f"{int(wrong.sum())} of {wrong.size} values of q differ; q[{i}, {j}] = {qn[i, j]}, "
                           f"expected round({ratio[i, j]:.4f}) = {int(q_ref[i, j])}")
        return True, "matches"

    return check


def _int8_mistake(per="row", divisor=127.0, rounding=torch.round, clamp=(-127, 127), guard=True, scalar=False):
    def f(w):
        w = w.detach().float()
        if per == "row":
            scale = w.abs().amax(dim=1) / divisor
        elif per == "column":
            scale = w.abs().amax(dim=0) / divisor
        else:
            scale = w.abs().max().expand(w.shape[0]) / divisor
        if guard:
            scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        s = scale[None, :] if per == "column" else scale[:, None]
        q = rounding(w / s)
        if clamp is not None:
            q = q.clamp(*clamp)
        if scalar:
            scale = scale[0]
        q_ref, s_ref, _ = _reference_int8(w)
        if scale.shape == s_ref.shape and np.array_equal(q.numpy(), q_ref) and np.allclose(scale.numpy(), s_ref):
            raise ValueError("this mistake makes no difference on this matrix")  # skipped: names nothing here
        return q.to(torch.int8), scale
    return f


def check_quantize_int8(fn) -> CheckResult:
    """``fn(w [out, in])`` → ``(q [out, in] int8, scale [out])``: symmetric per-output-row int8,
    ``scale = max|w_row| / 127``, ``q = round(w / scale)``, against the same recipe written in NumPy (float64)."""
    g = torch.Generator().manual_seed(1800)
    small = torch.tensor([[0.10, -0.40, 0.25, 0.05, 0.33],
                          [2.00, 1.30, -0.70, 0.01, -1.99],
                          [-0.003, 0.002, 0.0011, -0.0007, 0.0029]])
    zero_row = torch.randn(4, 6, generator=g)
    zero_row[2] = 0.0
    specs = [
        ("a small 3 x 5 matrix, rows of very different sizes", small),
        ("a 4 x 6 matrix with a row of zeros", zero_row),
        ("a random 384 x 256 matrix", torch.randn(384, 256, generator=g) * 0.02),
        ("a 16 x 64 matrix with one outlier per row", torch.randn(16, 64, generator=g)
         + torch.eye(16, 64) * 40.0),
    ]
    cases = [Case(name, (w,), _reference_int8(w)[:2], predicate=_int8_predicate(w), atol=0, rtol=1e-6)
             for name, w in specs]
    trunc = "truncating instead of rounding (.to(torch.int8) or floor cuts the fraction off: use torch.round)"
    mistakes = [
        ("one scale for the whole matrix (per-tensor), not one per output row", _int8_mistake(per="tensor")),
        ("one scale for the whole matrix (per-tensor), not one per output row",
         _int8_mistake(per="tensor", scalar=True)),
        ("a scale per input column (max over dim 0) instead of per output row (max over dim 1)",
         _int8_mistake(per="column")),
        ("dividing by 128: the largest weight becomes 128, which int8 cannot hold (it wraps to -128)",
         _int8_mistake(divisor=128.0, clamp=None)),
        ("dividing by 128 instead of 127 (the largest weight lands on 128 and is clipped)",
         _int8_mistake(divisor=128.0, clamp=(-128, 127))),
        ("dividing by 128 instead of 127 (the largest weight lands on 128 and is clipped)",
         _int8_mistake(divisor=128.0)),
        (trunc, _int8_mistake(rounding=torch.trunc)),
        (trunc, _int8_mistake(rounding=torch.floor)),
        ("no guard for a row of zeros: its scale is 0 and w / scale is 0 / 0", _int8_mistake(guard=False)),
    ]
    return run_cases("quantize_int8", fn, cases, mistakes)


# ---------------------------------------------------------------------------------------------------------
# arithmetic_intensity(m, k, n, bytes_per_value) -> FLOPs per byte moved by C[m, n] = A[m, k] @ B[k, n]


def _intensity(m, k, n, b, flops_per_mac=2, weights=1, output=True):
    moved = b * (m * k + weights * k * n + (m * n if output else 0))
    return flops_per_mac * m * k * n / moved


def check_arithmetic_intensity(fn) -> CheckResult:
    """``fn(m, k, n, bytes_per_value)``: FLOPs per byte moved by ``C[m, n] = A[m, k] @ B[k, n]``, i.e.
    ``2 m k n / (bytes_per_value (m k + k n + m n))`` (each of the ``m k n`` multiply-adds is 2 FLOPs; A and B
    are read once, C written once)."""
    specs = [
        ("a tiny product: m = 2, k = 3, n = 4, float32", (2, 3, 4, 4)),
        ("decoding one token: a matrix-vector product, m = 1, k = n = 4096, bfloat16", (1, 4096, 4096, 2)),
        ("the same decode step in float32 (4 bytes a value)", (1, 4096, 4096, 4)),
        ("prefill: 512 tokens at once, m = 512, k = 4096, n = 11008, bfloat16", (512, 4096, 11008, 2)),
        ("prefill in float32, m = 512, k = n = 4096", (512, 4096, 4096, 4)),
    ]
    cases = [Case(name, args, _intensity(*args), atol=0, rtol=1e-9) for name, args in specs]
    mistakes = [
        ("no factor 2: a multiply-add is 2 FLOPs (a multiply and an add), not 1",
         lambda m, k, n, b: _intensity(m, k, n, b, flops_per_mac=1)),
        ("the output's write left out: C[m, n] is moved too (m n values)",
         lambda m, k, n, b: _intensity(m, k, n, b, output=False)),
        ("the weights B counted twice (k n values are read once)",
         lambda m, k, n, b: _intensity(m, k, n, b, weights=2)),
        ("bytes_per_value left out (values moved, not bytes)", lambda m, k, n, b: _intensity(m, k, n, 1)),
        ("the inverse: bytes per FLOP instead of FLOPs per byte", lambda m, k, n, b: 1 / _intensity(m, k, n, b)),
    ]
    return run_cases("arithmetic_intensity", fn, cases, mistakes)



# ---------------------------------------------------------------------------------------------------------
# accept_draft(draft [k], target [k + 1]) -> (n_accepted, kept [n_accepted + 1]): speculative decoding's rule


def _accept_reference(draft, target):
    n = 0
    while n < len(draft) and int(draft[n]) == int(target[n]):
        n += 1
    return n, [int(t) for t in draft[:n]] + [int(target[n])]


def check_accept_draft(fn) -> CheckResult:
    """``fn(draft, target)``: ``draft`` is the draft model's ``k`` proposed tokens, ``target`` the target model's own
    greedy choice at each of the ``k + 1`` positions of its single verifying pass. Return ``(n, kept)``: how many
    proposals are accepted (the longest agreeing prefix) and the tokens kept this round (those ``n`` proposals,
    then the target's token at position ``n``: its correction, or the bonus token when all ``k`` agree).
    The reference is the rule written out as a loop; the cases include real proposals and choices."""

    def case(name, draft, target):
        d, t = torch.tensor(draft), torch.tensor(target)
        exp = _accept_reference(d, t)

        def predicate(got):
            try:
                n, kept = got
                kept = [int(x) for x in (kept.tolist() if isinstance(kept, torch.Tensor) else kept)]
                n = int(n)
            except (TypeError, ValueError):
                return False, f"expected a pair (n_accepted, kept tokens), got {got!r:.80}"
            if (n, kept) == exp:
                return True, "matches"
            return False, f"expected n = {exp[0]} and kept = {exp[1]}, got n = {n} and kept = {kept}"

        return Case(name, (d, t), predicate=predicate)

    cases = [case("all four proposals agree: four accepted, plus the bonus token", [5, 9, 2, 7], [5, 9, 2, 7, 3]),
             case("the first proposal is wrong: none accepted, the target's correction kept", [4, 4, 4], [8, 4, 4, 1]),
             case("agreement resumes after a miss: it does not count", [1, 2, 3, 4, 5], [1, 2, 6, 4, 5, 0]),
             case("one proposal, accepted", [11], [11, 12]),
             case("five proposals, all accepted: six tokens from one target pass", [58, 46, 43, 1, 49], [58, 46, 43, 1, 49, 47])]

    def count_matches(d, t):  # every agreeing position, not the prefix
        idx = [i for i in range(len(d)) if int(d[i]) == int(t[i])]
        return len(idx), [int(d[i]) for i in idx] + [int(t[len(d)])]

    def no_bonus(d, t):
        n, kept = _accept_reference(d, t)
        return n, kept[:-1]

    def draft_token_at_miss(d, t):
        n, kept = _accept_reference(d, t)
        return n, kept[:-1] + ([int(d[n])] if n < len(d) else [int(t[n])])

    mistakes = [("counting every agreeing position: after the first disagreement nothing is accepted", count_matches),
                ("the target's own token left out: every round keeps one more token than it accepts", no_bonus),
                ("the draft's token kept at the disagreement: keep the target's choice there", draft_token_at_miss)]
    return run_cases("accept_draft", fn, cases, mistakes)
