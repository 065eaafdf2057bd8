"""Checkers for the attention lessons (notebooks 00–02): softmax, masks, scaled dot-product attention, heads,
and the first pieces of the build thread (``check_head``, ``check_multi_head_attention``).

Each ``check_NAME(fn)`` calls the learner's ``fn`` on a few cases, compares with ``helpers.attention`` (the
reference) and prints one ✓/✗ line per case. ``backend="numpy"`` (notebook 01) hands ``fn`` NumPy arrays,
``backend="torch"`` (notebook 02) hands it tensors; the answer may be either.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from ..attention import causal_mask, scaled_dot_product_attention
from ._core import Case, CheckResult, _Forbidden, close, run_cases

__all__ = [
    "check_cosine_similarity",
    "check_softmax",
    "check_causal_mask",
    "check_padding_mask",
    "check_scaled_dot_product_attention",
    "check_split_heads",
    "check_merge_heads",
    "check_causal_self_attention",
    "check_log_softmax",
    "check_matmul_broadcast",
    "check_sliding_window_mask",
    "check_dot_products_for",
    "check_head",
    "check_multi_head_attention",
    "check_previous_token_score",
]

_BACKENDS = ("numpy", "torch")


def _backend(backend: str) -> str:
    if backend not in _BACKENDS:
        raise ValueError(f"backend must be 'numpy' or 'torch', got {backend!r}")
    return backend


def _rand(seed: int, *shape: int, scale: float = 1.0) -> torch.Tensor:
    """A reproducible float64 tensor (float64 so references are exact to well below the tolerance)."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64) * scale


def _as(x: torch.Tensor, backend: str) -> Any:
    return x.numpy().copy() if backend == "numpy" else x.clone()


def _bool_equal(expected: torch.Tensor) -> Callable[[Any], tuple[bool, str]]:
    """A predicate: the answer is a bool array/tensor equal to ``expected`` (0/1 ints are refused, by name)."""

    def pred(got: Any) -> tuple[bool, str]:
        if isinstance(got, torch.Tensor):
            g = got.detach().cpu().numpy()
        else:
            try:
                g = np.asarray(got)
            except Exception:  # noqa: BLE001
                return False, f"expected a bool array, got {type(got).__name__}"
        if g.dtype != np.bool_:
            return False, f"expected dtype bool (True = may attend), got {g.dtype}"
        e = expected.numpy()
        if g.shape != e.shape:
            return False, f"shape {g.shape}, expected {e.shape}"
        wrong = g != e
        if wrong.any():
            first = tuple(int(i) for i in np.argwhere(wrong)[0])
            return False, f"{int(wrong.sum())} entries wrong (first at {list(first)}: got {bool(g[first])})"
        return True, "matches"

    return pred


# ----------------------------------------------------------------------------------------------- similarity


def _cosine_reference(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a / a.norm(dim=-1, keepdim=True)) @ (b / b.norm(dim=-1, keepdim=True)).T


def check_cosine_similarity(fn: Callable, backend: str = "numpy") -> CheckResult:
    """Check ``fn(a [n, d], b [m, d])`` → ``[n, m]``, the cosine of the angle between every row of a and of b."""
    be = _backend(backend)
    e = torch.eye(3, dtype=torch.float64)
    specs = [
        ("orthogonal unit vectors give 0, equal ones 1", e, e),
        ("length does not matter: [2, 0] vs [5, 0]", torch.tensor([[2.0, 0.0]], dtype=torch.float64),
         torch.tensor([[5.0, 0.0], [-1.0, 0.0], [1.0, 1.0]], dtype=torch.float64)),
        ("random rows, n=4, m=6, d=8", _rand(3, 4, 8), _rand(4, 6, 8)),
    ]
    cases = [Case(name, (_as(a, be), _as(b, be)), expected=_cosine_reference(a, b)) for name, a, b in specs]
    return run_cases("cosine_similarity", fn, cases)


# ----------------------------------------------------------------------------------------------- softmax


def check_softmax(fn: Callable, backend: str = "numpy") -> CheckResult:
    """Check ``fn(x)`` = softmax over the last axis of ``x``, including inputs as large as 1e4 (stability)."""
    be = _backend(backend)
    cases = []
    for name, x in [
        ("a vector [1, 2, 3]", torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)),
        ("equal inputs give equal weights", torch.zeros(4, dtype=torch.float64)),
        ("a batch of rows [3, 5] (last axis)", _rand(0, 3, 5)),
        ("large inputs (x ~ 1e4: must not overflow)", _rand(1, 2, 6, scale=1e4)),
        ("very negative inputs (x ~ -1e4)", -_rand(2, 6).abs() * 1e4),
    ]:
        cases.append(Case(name, (_as(x, be),), expected=torch.softmax(x, dim=-1), atol=1e-6))
    with np.errstate(all="ignore"):  # a naive exp overflows on purpose: report it as ✗, not as a warning
        return run_cases("softmax", fn, cases)


# ----------------------------------------------------------------------------------------------- masks


def check_causal_mask(fn: Callable) -> CheckResult:
    """Check ``fn(T)`` → bool ``[T, T]``, True where query ``i`` may attend to key ``j`` (``j <= i``)."""
    cases = [Case(f"T = {T}", (T,), predicate=_bool_equal(causal_mask(T))) for T in (1, 3, 6)]
    return run_cases("causal_mask", fn, cases)


def _padding_reference(lengths: list[int], T: int) -> torch.Tensor:
    return torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]


def check_padding_mask(fn: Callable) -> CheckResult:
    """Check ``fn(lengths, T)`` → bool ``[B, T]``, True at the real tokens (position < length), False at padding."""
    cases = [
        Case(f"lengths={lengths}, T={T}", (lengths, T), predicate=_bool_equal(_padding_reference(lengths, T)))
        for lengths, T in [([3], 3), ([2, 4], 4), ([1, 5, 3], 6)]
    ]
    return run_cases("padding_mask", fn, cases)


# ----------------------------------------------------------------------------------------------- attention


def _sdpa_predicate(q, k, v, mask) -> Callable[[Any], tuple[bool, str]]:
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask)

    def pred(got: Any) -> tuple[bool, str]:
        if isinstance(got, tuple):
            if len(got) != 2:
                return False, f"expected output or (output, weights), got a tuple of {len(got)}"
            ok, why = close(got[1], weights, atol=1e-6)
            if not ok:
                return False, f"weights: {why}"
            got = got[0]
        ok, why = close(got, out, atol=1e-6)
        return ok, why if ok else f"output: {why}"

    return pred


def check_scaled_dot_product_attention(fn: Callable, backend: str = "numpy") -> CheckResult:
    """Check ``fn(q, k, v, mask=None)`` → output ``[..., Tq, Dv]`` or ``(output, weights)``.

    ``mask`` is bool, True where a query may attend. Cases: self-attention, cross-attention (Tq ≠ Tk, Dv ≠ D),
    a causal mask, a padding mask that broadcasts, a batch, and large d_k (where forgetting √d_k shows).
    """
    be = _backend(backend)
    specs = [
        ("self-attention, T=3, d_k=4", _rand(10, 3, 4), _rand(11, 3, 4), _rand(12, 3, 4), None),
        ("cross-attention, Tq=2, Tk=5, Dv=3", _rand(13, 2, 4), _rand(14, 5, 4), _rand(15, 5, 3), None),
        ("causal mask, T=4", _rand(16, 4, 8), _rand(17, 4, 8), _rand(18, 4, 8), causal_mask(4)),
        ("padding mask [2, 1, 5] on a batch of 2", _rand(19, 2, 5, 4), _rand(20, 2, 5, 4), _rand(21, 2, 5, 4),
         _padding_reference([3, 5], 5)[:, None, :]),
        ("large d_k = 256 (is the √d_k there?)", _rand(22, 3, 256), _rand(23, 3, 256), _rand(24, 3, 2), None),
    ]
    cases = []
    for name, q, k, v, mask in specs:
        args = (_as(q, be), _as(k, be), _as(v, be))
        kwargs = None if mask is None else {"mask": _as(mask, be)}
        cases.append(Case(name, args, kwargs=kwargs, predicate=_sdpa_predicate(q, k, v, mask)))
    with _quiet():
        return run_cases("scaled_dot_product_attention", fn, cases, mistakes=_sdpa_mistakes())


def _sdpa_variant(q, k, v, mask=None, *, scale=True, invert=False, axis=-1):
    q, k, v = (torch.as_tensor(t) for t in (q, k, v))
    scores = q @ k.transpose(-2, -1) / (math.sqrt(q.shape[-1]) if scale else 1.0)
    if mask is not None:
        m = torch.as_tensor(mask)
        scores = scores.masked_fill(m if invert else ~m, float("-inf"))
    w = torch.softmax(scores, dim=axis)
    return w @ v, w


def _sdpa_mistakes() -> list[tuple[str, Callable]]:
    """Each mistake twice: as ``(output, weights)`` and as the output alone (both answers are accepted)."""
    models = [
        ("√d_k is missing (divide the scores by √d_k before the softmax)", {"scale": False}),
        ("the mask inverted (True means *may* attend: mask out where it is False)", {"invert": True}),
        ("the softmax over the wrong axis (it runs over the keys, the last axis)", {"axis": -2}),
    ]
    out = []
    for name, kw in models:
        out.append((name, lambda *a, _kw=kw, **k: _sdpa_variant(*a, **k, **_kw)))
        out.append((name, lambda *a, _kw=kw, **k: _sdpa_variant(*a, **k, **_kw)[0]))
    return out


# ----------------------------------------------------------------------------------------------- heads


def _split_reference(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    B, T, C = x.shape
    return x.view(B, T, n_heads, C // n_heads).transpose(1, 2)


def check_split_heads(fn: Callable) -> CheckResult:
    """Check ``fn(x [B, T, C], n_heads)`` → ``[B, n_heads, T, C // n_heads]`` (head h gets features h*Dh…)."""
    cases = []
    for B, T, C, H in [(1, 2, 4, 2), (2, 5, 12, 3), (3, 4, 16, 4)]:
        x = _rand(30 + B, B, T, C)
        cases.append(Case(f"[{B}, {T}, {C}] into {H} heads", (x.clone(), H), expected=_split_reference(x, H)))
    return run_cases("split_heads", fn, cases)


def check_merge_heads(fn: Callable) -> CheckResult:
    """Check ``fn(x [B, H, T, Dh])`` → ``[B, T, H * Dh]``, the inverse of ``split_heads``."""
    cases = []
    for B, T, C, H in [(1, 2, 4, 2), (2, 5, 12, 3), (3, 4, 16, 4)]:
        x = _rand(40 + B, B, T, C)
        h = _split_reference(x, H).contiguous()
        cases.append(Case(f"[{B}, {H}, {T}, {C // H}] back to [{B}, {T}, {C}]", (h.clone(),), expected=x))
    return run_cases("merge_heads", fn, cases)


def _causal_self_attention_reference(x, w_qkv, w_out, n_heads):
    B, T, C = x.shape
    q, k, v = (x @ w_qkv).split(C, dim=-1)
    q, k, v = (_split_reference(t, n_heads) for t in (q, k, v))
    y, _ = scaled_dot_product_attention(q, k, v, mask=causal_mask(T))
    return y.transpose(1, 2).reshape(B, T, C) @ w_out


def check_causal_self_attention(fn: Callable) -> CheckResult:
    """Check ``fn(x [B, T, C], w_qkv [C, 3C], w_out [C, C], n_heads)`` → ``[B, T, C]``.

    Causal multi-head self-attention without biases: ``q, k, v = split(x @ w_qkv)``, heads, causal attention,
    merge, ``@ w_out``.
    """
    cases = []
    for B, T, C, H in [(1, 3, 4, 1), (2, 5, 8, 2), (2, 6, 12, 4)]:
        x, w_qkv, w_out = _rand(50 + T, B, T, C), _rand(60 + T, C, 3 * C) / C**0.5, _rand(70 + T, C, C) / C**0.5
        cases.append(
            Case(
                f"B={B}, T={T}, C={C}, {H} head{'s' if H > 1 else ''}",
                (x.clone(), w_qkv.clone(), w_out.clone(), H),
                expected=_causal_self_attention_reference(x, w_qkv, w_out, H),
            )
        )
    return run_cases("causal_self_attention", fn, cases)



# ======================================================================= notebook 00: warm-ups


def check_log_softmax(fn: Callable, backend: str = "numpy") -> CheckResult:
    """Check ``fn(x)`` = log-softmax over the last axis, finite even where a weight underflows (gaps of 800)."""
    be = _backend(backend)
    cases = []
    for name, x in [
        ("a vector [1, 2, 3]", torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)),
        ("a batch of rows [3, 5] (last axis)", _rand(5, 3, 5)),
        ("large inputs (x ~ 1e4: must not overflow)", _rand(6, 2, 6, scale=1e4)),
        ("a gap of 800: log(e^-800) is -800, not -inf", torch.tensor([[0.0, -800.0, -5.0]], dtype=torch.float64)),
    ]:
        cases.append(Case(name, (_as(x, be),), expected=torch.log_softmax(x, dim=-1), atol=1e-6))

    def log_of_softmax(x):
        x = torch.as_tensor(x)
        return torch.log(torch.softmax(x, dim=-1))

    def max_not_put_back(x):
        x = torch.as_tensor(x)
        m = x.amax(dim=-1, keepdim=True)
        return x - torch.log(torch.exp(x - m).sum(dim=-1, keepdim=True))

    def no_max(x):
        x = torch.as_tensor(x)
        return x - torch.log(torch.exp(x).sum(dim=-1, keepdim=True))

    mistakes = [
        ("the log of the softmax: a weight that underflows to 0 gives log 0 = -inf (work in logs throughout)",
         log_of_softmax),
        ("the maximum taken out of the sum but not put back (log Σ e^x = m + log Σ e^(x - m))", max_not_put_back),
        ("e^x without subtracting the maximum first: it overflows", no_max),
    ]
    with _quiet():
        return run_cases("log_softmax", fn, cases, mistakes=mistakes)


_MATMUL = np.matmul  # the ufunc itself (the checker replaces the module attribute while the learner's code runs)


class _NoMatmul(np.ndarray):
    """An array that refuses ``@``/``np.matmul``/``.dot`` (the exercise asks for broadcasting and a sum)."""

    _WHY = "this exercise asks you not to use @, np.matmul or .dot: multiply with broadcasting, then sum"

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if ufunc is _MATMUL:
            raise _Forbidden(self._WHY)
        inputs = tuple(i.view(np.ndarray) if isinstance(i, _NoMatmul) else i for i in inputs)
        if "out" in kwargs:
            kwargs["out"] = tuple(o.view(np.ndarray) if isinstance(o, _NoMatmul) else o for o in kwargs["out"])
        result = getattr(ufunc, method)(*inputs, **kwargs)
        return result.view(_NoMatmul) if isinstance(result, np.ndarray) else result

    def dot(self, *args, **kwargs):  # noqa: D102
        raise _Forbidden(self._WHY)


def check_matmul_broadcast(fn: Callable) -> CheckResult:
    """Check ``fn(A [..., n, k], B [..., k, m])`` = ``A @ B`` computed with broadcasting and ``.sum`` only.

    ``@``, ``np.matmul``, ``np.dot``, ``np.einsum``, ``np.tensordot``, ``np.inner`` are refused.
    """
    specs = [
        ("[2, 3] @ [3, 4]", _rand(80, 2, 3), _rand(81, 3, 4)),
        ("[1, 1] @ [1, 1]", _rand(82, 1, 1), _rand(83, 1, 1)),
        ("a batch: [2, 3, 4] @ [2, 4, 5]", _rand(84, 2, 3, 4), _rand(85, 2, 4, 5)),
        ("broadcast batch: [3, 4] @ [2, 4, 5]", _rand(86, 3, 4), _rand(87, 2, 4, 5)),
    ]
    cases = [Case(name, (a.numpy().copy().view(_NoMatmul), b.numpy().copy().view(_NoMatmul)),
                  expected=(a @ b), atol=1e-9) for name, a, b in specs]
    why = "this exercise asks for broadcasting and a sum, not a library's matrix product"
    forbid = {f"numpy.{f}": why for f in ("matmul", "dot", "einsum", "tensordot", "inner")}
    forbid["torch.matmul"] = why

    def wrong_axis(a, b):
        a, b = np.asarray(a), np.asarray(b)
        return (a[..., :, None, :] * np.swapaxes(b, -1, -2)[..., None, :, :]).sum(axis=-1).swapaxes(-1, -2)

    def elementwise(a, b):
        return np.asarray(a) * np.asarray(b)

    mistakes = [("the result transposed (row i of A meets column j of B at [i, j], not [j, i])", wrong_axis),
                ("an element-wise product, not a matrix product", elementwise)]
    with _quiet():
        return run_cases("matmul_broadcast", fn, cases, mistakes=mistakes, forbid=forbid)


# ======================================================================= notebook 01


def _sliding_reference(T: int, window: int) -> torch.Tensor:
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    return (j <= i) & (i - j < window)


def check_sliding_window_mask(fn: Callable) -> CheckResult:
    """Check ``fn(T, window)`` → bool ``[T, T]``, True where ``0 <= i - j < window`` (the last ``window`` tokens)."""
    specs = [(1, 1), (5, 1), (5, 2), (7, 3), (4, 10)]
    cases = [Case(f"T = {T}, window = {w}" + (" (window ≥ T: plain causal)" if w >= T else ""), (T, w),
                  predicate=_bool_equal(_sliding_reference(T, w))) for T, w in specs]

    def idx(T):
        return np.arange(T)[:, None], np.arange(T)[None, :]

    def off_by_one(T, w):
        i, j = idx(T)
        return (j <= i) & (i - j <= w)

    def not_causal(T, w):
        i, j = idx(T)
        return np.abs(i - j) < w

    def inverted(T, w):
        return ~_sliding_reference(T, w).numpy()

    def causal_only(T, w):
        i, j = idx(T)
        return j <= i

    mistakes = [
        ("the window off by one: i - j <= window lets window + 1 tokens in (a query sees itself and the "
         "window - 1 before it)", off_by_one),
        ("a window in both directions: |i - j| < window also lets the future in", not_causal),
        ("the mask inverted (True = may attend)", inverted),
        ("the plain causal mask: the window is missing", causal_only),
    ]
    with _quiet():
        return run_cases("sliding_window_mask", fn, cases, mistakes=mistakes)


def _dot_products_predicate(weights: torch.Tensor, d_k: int) -> Callable[[Any], tuple[bool, str]]:
    def soft(s):
        return torch.softmax(s, dim=-1)

    def pred(got: Any) -> tuple[bool, str]:
        try:
            g = torch.as_tensor(np.asarray(got, dtype=float) if not isinstance(got, torch.Tensor) else got,
                                dtype=torch.float64)
        except (TypeError, ValueError):
            return False, f"expected an array of scores, got {type(got).__name__}"
        if g.shape != weights.shape:
            return False, f"shape {tuple(g.shape)}, expected {tuple(weights.shape)}"
        if not torch.isfinite(g).all():
            return False, "your dot products contain inf or NaN (every weight here is positive: finite scores exist)"
        if close(soft(g / math.sqrt(d_k)), weights, atol=1e-6)[0]:
            return True, "softmax(your dot products / √d_k) gives the weights"
        if close(g, weights, atol=1e-9)[0]:
            return False, "you returned the weights themselves: which scores does the softmax turn into them?"
        if d_k > 1 and close(soft(g), weights, atol=1e-6)[0]:
            return False, ("softmax(your numbers) gives the weights: they are the scaled scores; the dot products "
                           "are √d_k times larger")
        if d_k > 1 and close(soft(g / d_k), weights, atol=1e-6)[0]:
            return False, "you scaled by d_k, not by √d_k"
        if d_k > 1 and close(soft(g * math.sqrt(d_k)), weights, atol=1e-6)[0]:
            return False, "you divided by √d_k: the dot products are larger than the scaled scores, not smaller"
        return False, "softmax(your dot products / √d_k) is not the weights"

    return pred


def check_dot_products_for(fn: Callable) -> CheckResult:
    """Check ``fn(weights [..., T], d_k)`` → dot products ``s [..., T]`` with ``softmax(s / √d_k) = weights``.

    The weights are positive and sum to 1 along the last axis; any answer that works is accepted.
    """
    w1 = torch.tensor([0.7, 0.2, 0.1], dtype=torch.float64)
    w2 = torch.softmax(_rand(90, 3, 5, scale=2.0), dim=-1)
    w3 = torch.tensor([0.25, 0.25, 0.25, 0.25], dtype=torch.float64)
    w4 = torch.tensor([1 - 2e-6, 1e-6, 1e-6], dtype=torch.float64)
    specs = [("[0.7, 0.2, 0.1], d_k = 4", w1, 4), ("a batch of 3 rows of 5 keys, d_k = 64", w2, 64),
             ("uniform weights, d_k = 16", w3, 16), ("[0.7, 0.2, 0.1], d_k = 1", w1, 1),
             ("one key takes almost everything (1e-6 for the others), d_k = 16", w4, 16)]
    cases = [Case(name, (w.numpy().copy(), d), predicate=_dot_products_predicate(w, d)) for name, w, d in specs]
    with _quiet():
        return run_cases("dot_products_for", fn, cases)


# ======================================================================= notebook 02: the build thread starts


class ParametersDiffer(Exception):
    """The learner's module does not have the parameter names and shapes the exercise asks for."""


def _load_reference_weights(mine: Any, ref: nn.Module, label: str, layout: str) -> None:
    """Copy ``ref``'s parameters into the learner's module by name, or say clearly what differs."""
    if not isinstance(mine, nn.Module):
        raise TypeError(f"your {label} must be an nn.Module (class {label}(nn.Module)), got {type(mine).__name__}")
    want = {n: tuple(p.shape) for n, p in ref.named_parameters()}
    have = {n: tuple(p.shape) for n, p in mine.named_parameters()}
    missing = [f"{n} {list(s)}" for n, s in want.items() if n not in have]
    extra = [f"{n} {list(s)}" for n, s in have.items() if n not in want]
    wrong = [f"{n} is {list(have[n])}, expected {list(s)}" for n, s in want.items() if n in have and have[n] != s]
    if missing or extra or wrong:
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + (
            [f"unexpected {', '.join(extra)}"] if extra else []) + wrong
        raise ParametersDiffer(f"your {label}'s parameters differ: {'; '.join(parts)}. Expected: {layout}")
    params = dict(mine.named_parameters())
    with torch.no_grad():
        for n, p in ref.named_parameters():
            params[n].copy_(p)


def _reinit(module: nn.Module, seed: int) -> nn.Module:
    """Deterministic weights (std 1/√fan_in), so a case means the same on every machine and run."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(module.named_parameters()):
            fan_in = p.shape[-1] if p.dim() > 1 else p.shape[0]
            p.copy_(torch.randn(p.shape, generator=g) / math.sqrt(fan_in))
    return module


def _first(result: Any) -> Any:
    return result[0] if isinstance(result, (tuple, list)) and len(result) > 0 else result


def _future_changed(T: int) -> Callable[[Any], tuple[bool, str]]:
    """A predicate on ``(outputs on x, outputs on x with its last token changed)``: earlier outputs unchanged."""

    def pred(got: Any) -> tuple[bool, str]:
        a, b = (_first(g) for g in got)
        if a is None:
            return close(None, 0)
        if not isinstance(a, torch.Tensor) or a.dim() < 2:
            return False, f"expected a tensor [B, T, ...], got {type(a).__name__}"
        if torch.isnan(a).any():
            return False, "the output contains NaN (is a whole row masked?)"
        ok = torch.allclose(a[:, : T - 1], b[:, : T - 1], atol=1e-6)
        if ok:
            return True, "changing the last token leaves every earlier output unchanged"
        return False, ("changing the last token changed the outputs at earlier positions: the future leaks in "
                       "(is the causal mask there, and the right way round?)")

    return pred


def _dropout_acts(got: Any) -> tuple[bool, str]:
    a, b = (_first(g) for g in got)
    if a is None:
        return close(None, 0)
    if not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor) or a.shape != b.shape:
        return False, "expected the same output shape in training and in eval mode"
    if torch.allclose(a, b):
        return False, ("with dropout = 0.5 in training mode the output did not change: apply attn_dropout to the "
                       "weights and resid_dropout to the output (nn.Dropout is active only in training mode)")
    return True, "dropout acts in training mode (and, by the other cases, not in eval mode)"


def _module_runner(cls: Any, build: Callable, label: str, layout: str) -> Callable:
    """``run(spec..., mode)``: build the learner's module, load the reference's weights, run one case's mode."""

    def run(*args):
        *spec, mode = args
        ref, x = build(*spec)
        with torch.random.fork_rng(devices=[]):  # the learner's init and dropout leave the notebook's RNG alone
            torch.manual_seed(0)
            mine = cls(*_ctor_args(ref))
            _load_reference_weights(mine, ref, label, layout)
            return _modes(mine, x, mode)

    return run


def _ctor_args(ref: nn.Module) -> tuple:
    return ref._checker_ctor  # set by the builders below


def _modes(module: Any, x: torch.Tensor, mode: str) -> Any:
    """What a case compares: the forward pass in eval mode, its causality, or dropout in training mode."""
    with torch.no_grad():
        if mode == "eval":
            module.eval()
            return module(x.clone())
        if mode == "causal":
            module.eval()
            x2 = x.clone()
            x2[:, -1] = -3.0 * x2[:, -1] + 1.0
            return module(x.clone()), module(x2)
        if mode == "train":
            module.train()
            a = module(x.clone())
            module.eval()
            return a, module(x.clone())
    raise ValueError(mode)


class _Variant:
    """A mistake model: the reference's weights, a wrong forward; called like the learner's runner."""

    def __init__(self, build: Callable, forward: Callable) -> None:
        self.build, self.forward = build, forward

    def __call__(self, *args):
        *spec, mode = args
        ref, x = self.build(*spec)
        ref.eval()
        if mode == "eval":
            return self.forward(ref, x)
        if mode == "causal":
            x2 = x.clone()
            x2[:, -1] = -3.0 * x2[:, -1] + 1.0
            return self.forward(ref, x), self.forward(ref, x2)
        raise ValueError("no mistake model for this mode")


def _attend(q, k, v, *, scale, mask="causal", axis=-1, swap=False):
    """Scores, mask, softmax, weighted sum, with the knobs each mistake model turns."""
    T = q.shape[-2]
    scores = (k @ q.transpose(-2, -1) if swap else q @ k.transpose(-2, -1)) / scale
    tril = torch.ones(T, T, dtype=torch.bool).tril()
    if mask == "causal":
        scores = scores.masked_fill(~tril, float("-inf"))
    elif mask == "inverted":  # masked_fill(tril, -inf): the past hidden, the last row entirely (NaN)
        scores = scores.masked_fill(tril, float("-inf"))
    elif mask == "future":  # the upper triangle kept: j >= i
        scores = scores.masked_fill(~tril.T, float("-inf"))
    w = torch.softmax(scores, dim=axis)
    return w @ v, w


_MASK_INVERTED = "the mask inverted: it attends to the future (keep j <= i, the lower triangle: torch.tril)"
_NO_MASK = "no causal mask: every token sees the future"
_WRONG_AXIS = "the softmax over the wrong axis (it must run over the keys, the last axis: dim=-1)"
_NO_SQRT = "√d_k is missing (divide the scores by √head_size before the softmax)"

_HEAD_LAYOUT = ("three nn.Linear(n_embd, head_size, bias=False) named query, key and value (no other parameters; "
                "a mask is a buffer or computed in forward)")


def _head_build(n_embd, head_size, block_size, dropout, B, T, seed):
    from ..pieces.attention import Head

    with torch.random.fork_rng(devices=[]):
        ref = _reinit(Head(n_embd, head_size, block_size, dropout), seed)
    ref._checker_ctor = (n_embd, head_size, block_size, dropout)
    x = torch.randn(B, T, n_embd, generator=torch.Generator().manual_seed(seed + 1))
    return ref, x


def _head_forward(**kw):
    def forward(ref, x):
        with torch.no_grad():
            q, k, v = ref.query(x), ref.key(x), ref.value(x)
            opts = {"scale": math.sqrt(ref.head_size), **kw}
            return _attend(q, k, v, **opts)

    return forward


def _head_cases() -> list[Case]:
    specs = [  # (description, n_embd, head_size, block_size, dropout, B, T, seed, mode)
        ("T = 1: the first token sees only itself", 8, 4, 8, 0.0, 1, 1, 100, "eval"),
        ("B = 2, T = 5 (odd), n_embd 12, head_size 4", 12, 4, 8, 0.0, 2, 5, 101, "eval"),
        ("B = 3, T = 8 = block_size, head_size 8", 16, 8, 8, 0.0, 3, 8, 102, "eval"),
        ("B = 2, T = 7, n_embd 32, head_size 16", 32, 16, 16, 0.0, 2, 7, 103, "eval"),
        ("dropout = 0.2 in eval mode changes nothing", 16, 8, 16, 0.2, 2, 6, 104, "eval"),
        ("causal: the last token changes no earlier output", 16, 8, 16, 0.0, 2, 6, 105, "causal"),
    ]
    cases = []
    for name, *spec, mode in specs:
        ref, x = _head_build(*spec)
        with torch.no_grad():
            expected = _modes(ref, x, mode)
        T = spec[-2]
        if mode == "causal":
            cases.append(Case(name, (*spec, mode), predicate=_future_changed(T)))
        else:
            cases.append(Case(name, (*spec, mode), expected=tuple(t.detach() for t in expected)))
    return cases


def check_head(cls: Any) -> CheckResult:
    """Check a class ``Head(n_embd, head_size, block_size, dropout=0.0)``, an ``nn.Module`` with three
    ``nn.Linear(n_embd, head_size, bias=False)`` named ``query``, ``key``, ``value``, whose
    ``forward(x [B, T, n_embd])`` returns ``(out [B, T, head_size], weights [B, T, T])``: causal, scores divided
    by √head_size.

    The checker builds your Head, copies in the reference's weights (``helpers.pieces.Head``) and compares both
    outputs on several cases (T = 1, odd T, batch sizes 1–3, head sizes 4–16, dropout in eval mode, causality).
    """
    if cls is not None and not isinstance(cls, type):
        raise TypeError(f"check_head needs your class Head itself (check_head(Head), not an instance), "
                        f"got {type(cls).__name__}")
    b = _head_build
    mistakes = [
        (_NO_SQRT, _Variant(b, _head_forward(scale=1.0))),
        ("the scores divided by √n_embd instead of √head_size (d_k is the size of a query: head_size)",
         _Variant(b, lambda ref, x: _head_forward(scale=math.sqrt(ref.n_embd))(ref, x))),
        (_MASK_INVERTED, _Variant(b, _head_forward(mask="inverted"))),
        (_MASK_INVERTED, _Variant(b, _head_forward(mask="future"))),
        (_NO_MASK, _Variant(b, _head_forward(mask=None))),
        (_WRONG_AXIS, _Variant(b, _head_forward(axis=-2))),
        ("queries and keys swapped (k @ qᵀ: row i must hold query i's scores, q @ kᵀ)",
         _Variant(b, _head_forward(swap=True))),
    ]
    fn = None if cls is None else _module_runner(cls, b, "Head", _HEAD_LAYOUT)
    with _quiet():
        return run_cases("Head", fn, _head_cases(), mistakes=mistakes,
                         forbid={"torch.nn.functional.scaled_dot_product_attention":
                                 "the exercise is to write the four steps of attention yourself"})


_MHA_LAYOUT = ("GPT-2's names: c_attn = nn.Linear(n_embd, 3 * n_embd) and c_proj = nn.Linear(n_embd, n_embd), "
               "both with bias=config.bias; dropouts have no parameters")


def _mha_build(C, H, bias, dropout, B, T, seed):
    from ..model import GPTConfig
    from ..pieces.attention import MultiHeadAttention

    config = GPTConfig(vocab_size=16, block_size=max(T, 1), n_layer=1, n_head=H, n_embd=C, dropout=dropout,
                       bias=bias)
    with torch.random.fork_rng(devices=[]):
        ref = _reinit(MultiHeadAttention(config), seed)
    ref._checker_ctor = (config,)
    x = torch.randn(B, T, C, generator=torch.Generator().manual_seed(seed + 1))
    return ref, x


def _mha_forward(*, split_t=True, merge_t=True, proj=True, weights=False, **kw):
    def forward(ref, x):
        B, T, C = x.shape
        H = ref.n_head
        Dh = C // H
        with torch.no_grad():
            q, k, v = ref.c_attn(x).split(C, dim=-1)
            if split_t:
                q, k, v = (t.view(B, T, H, Dh).transpose(1, 2) for t in (q, k, v))
            else:
                q, k, v = (t.reshape(B, H, T, Dh) for t in (q, k, v))
            opts = {"scale": math.sqrt(Dh), **kw}
            y, w = _attend(q, k, v, **opts)
            y = y.transpose(1, 2).reshape(B, T, C) if merge_t else y.reshape(B, T, C)
            out = ref.c_proj(y) if proj else y
        return (out, w) if weights else out

    return forward


def _mha_cases() -> list[Case]:
    specs = [  # (description, C, H, bias, dropout, B, T, seed, mode)
        ("T = 1, 2 heads", 8, 2, True, 0.0, 1, 1, 200, "eval"),
        ("B = 2, T = 5 (odd), C = 12, 3 heads", 12, 3, True, 0.0, 2, 5, 201, "eval"),
        ("B = 3, T = 8, C = 16, 4 heads", 16, 4, True, 0.0, 3, 8, 202, "eval"),
        ("B = 2, T = 7, C = 16, 1 head", 16, 1, True, 0.0, 2, 7, 203, "eval"),
        ("B = 1, T = 6, C = 24, 6 heads, bias=False", 24, 6, False, 0.0, 1, 6, 204, "eval"),
        ("dropout = 0.2 in eval mode changes nothing", 16, 4, True, 0.2, 2, 6, 205, "eval"),
        ("causal: the last token changes no earlier output", 16, 4, True, 0.0, 2, 6, 206, "causal"),
        ("dropout = 0.5 in training mode: is it there?", 16, 4, True, 0.5, 2, 6, 207, "train"),
    ]
    cases = []
    for name, *spec, mode in specs:
        T = spec[-2]
        if mode == "causal":
            cases.append(Case(name, (*spec, mode), predicate=_future_changed(T)))
        elif mode == "train":
            cases.append(Case(name, (*spec, mode), predicate=_dropout_acts))
        else:
            ref, x = _mha_build(*spec)
            with torch.no_grad():
                expected = _modes(ref, x, mode)
            cases.append(Case(name, (*spec, mode), expected=expected.detach()))
    return cases


def check_multi_head_attention(cls: Any) -> CheckResult:
    """Check a class ``MultiHeadAttention(config)`` with GPT-2's names (``c_attn``: ``nn.Linear(C, 3C)``,
    ``c_proj``: ``nn.Linear(C, C)``, bias=config.bias, ``attn_dropout``, ``resid_dropout``) whose
    ``forward(x [B, T, C])`` returns ``[B, T, C]``: causal, ``config.n_head`` heads.

    The checker builds yours from a ``GPTConfig``, copies in the reference's weights
    (``helpers.pieces.MultiHeadAttention``) and compares on several cases (T = 1, odd T, 1–6 heads, batch sizes
    1–3, bias or not, dropout in eval and training mode, causality).
    """
    if cls is not None and not isinstance(cls, type):
        raise TypeError(f"check_multi_head_attention needs your class itself (check_multi_head_attention("
                        f"MultiHeadAttention), not an instance), got {type(cls).__name__}")
    b = _mha_build
    mistakes = [
        (_NO_SQRT.replace("head_size", "head_size = n_embd // n_head"), _Variant(b, _mha_forward(scale=1.0))),
        ("the scores divided by √n_embd instead of √(n_embd // n_head): d_k is one head's size",
         _Variant(b, lambda ref, x: _mha_forward(scale=math.sqrt(ref.n_embd))(ref, x))),
        (_MASK_INVERTED, _Variant(b, _mha_forward(mask="inverted"))),
        (_MASK_INVERTED, _Variant(b, _mha_forward(mask="future"))),
        (_NO_MASK, _Variant(b, _mha_forward(mask=None))),
        (_WRONG_AXIS, _Variant(b, _mha_forward(axis=-2))),
        (_WRONG_AXIS + " (dim=1 is the heads)", _Variant(b, _mha_forward(axis=1))),
        ("heads merged in the wrong order: the transpose back to [B, T, H, Dh] is missing before the reshape to "
         "[B, T, C]", _Variant(b, _mha_forward(merge_t=False))),
        ("heads split without the transpose: view(B, H, T, Dh) has the right shape but mixes tokens and features "
         "(view(B, T, H, Dh), then transpose(1, 2))", _Variant(b, _mha_forward(split_t=False))),
        ("c_proj is missing: the merged heads go through the output projection", _Variant(b, _mha_forward(
            proj=False))),
        ("queries and keys swapped (k @ qᵀ, or k, q, v taken from c_attn: GPT-2's order is q, k, v)",
         _Variant(b, _mha_forward(swap=True))),
        ("(output, weights) returned: MultiHeadAttention returns the output [B, T, C] only",
         _Variant(b, _mha_forward(weights=True))),
    ]
    fn = None if cls is None else _module_runner(cls, b, "MultiHeadAttention", _MHA_LAYOUT)
    with _quiet():
        return run_cases("MultiHeadAttention", fn, _mha_cases(), mistakes=mistakes)


@contextlib.contextmanager
def _quiet():
    """Floating-point warnings off during a check (a NaN the learner makes is reported as a ✗ line, and a
    graded cell must write nothing to stderr)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def _prev_reference(w: torch.Tensor) -> torch.Tensor:
    return torch.diagonal(w, offset=-1, dim1=-2, dim2=-1).mean(dim=(0, -1))


def _causal_weights(seed: int, B: int, H: int, T: int, scale: float = 1.0) -> torch.Tensor:
    s = _rand(seed, B, H, T, T, scale=scale).masked_fill(~causal_mask(T), float("-inf"))
    return torch.softmax(s, dim=-1)


def check_previous_token_score(fn: Callable) -> CheckResult:
    """Check ``fn(weights [B, H, T, T])`` → ``[H]``: per head, the mean weight a query ``i >= 1`` gives to key
    ``i - 1``, over the batch and the ``T - 1`` queries that have a previous token.
    """
    perfect = torch.zeros(1, 1, 5, 5, dtype=torch.float64)
    perfect[0, 0, 0, 0] = 1.0
    for i in range(1, 5):
        perfect[0, 0, i, i - 1] = 1.0
    specs = [
        ("a perfect previous-token head (score 1), T = 5", perfect),
        ("B = 2, H = 3, T = 5, random causal weights", _causal_weights(110, 2, 3, 5, scale=2.0)),
        ("B = 1, H = 4, T = 9", _causal_weights(111, 1, 4, 9, scale=3.0)),
        ("T = 2: one query has a previous token", _causal_weights(112, 3, 2, 2)),
    ]
    cases = [Case(name, (w.clone(),), expected=_prev_reference(w), atol=1e-9) for name, w in specs]

    def with_row0(w):
        w = torch.as_tensor(w)
        d = torch.diagonal(w, offset=-1, dim1=-2, dim2=-1)
        return d.sum(dim=-1).mean(dim=0) / w.shape[-1]

    def offset(k):
        return lambda w: torch.diagonal(torch.as_tensor(w), offset=k, dim1=-2, dim2=-1).mean(dim=(0, -1))

    def over_heads_too(w):
        return _prev_reference(torch.as_tensor(w)).mean()

    mistakes = [
        ("the mean over T queries, not the T - 1 that have a previous token (query 0 has none)", with_row0),
        ("the next token (offset +1): under a causal mask that weight is always 0", offset(1)),
        ("the diagonal (offset 0): that is the weight a token gives itself", offset(0)),
        ("the heads averaged too: return one score per head, [H]", over_heads_too),
    ]
    with _quiet():
        return run_cases("previous_token_score", fn, cases, mistakes=mistakes)
