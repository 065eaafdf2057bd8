"""Checkers for the attention lessons (notebooks 00–02): softmax, masks, scaled dot-product attention, heads.

Each ``check_NAME(fn)`` calls the learner's ``fn`` on a few cases, compares with ``helpers.attention`` (the
reference) and prints one ✓/✗ line per case. ``backend="numpy"`` (notebook 01) hands ``fn`` NumPy arrays,
``backend="torch"`` (notebook 02) hands it tensors; the answer may be either.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..attention import causal_mask, scaled_dot_product_attention
from ._core import Case, CheckResult, close, run_cases

__all__ = [
    "check_cosine_similarity",
    "check_softmax",
    "check_causal_mask",
    "check_padding_mask",
    "check_scaled_dot_product_attention",
    "check_split_heads",
    "check_merge_heads",
    "check_causal_self_attention",
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
    with np.errstate(all="ignore"):
        return run_cases("scaled_dot_product_attention", fn, cases)


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

