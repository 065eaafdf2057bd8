"""Checkers for notebooks 08-09 (generation): temperature, top-k, top-p, a KV-cache step, its memory, log-probs.

Each ``check_NAME(fn)`` calls the learner's ``fn`` on several cases, compares with the reference in
``helpers.generate`` / plain PyTorch, prints ✓/✗ per case and returns a ``CheckResult``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from ..generate import top_k_filter, top_p_filter
from ._core import Case, CheckResult, close, run_cases

__all__ = [
    "check_temperature_softmax",
    "check_top_k_filter",
    "check_top_p_filter",
    "check_kv_cache_step",
    "check_kv_cache_bytes",
    "check_continuation_log_prob",
]


def _logits(shape: tuple[int, ...], seed: int, scale: float = 2.0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * scale


def check_temperature_softmax(fn: Callable) -> CheckResult:
    """``fn(logits [..., V], temperature > 0) -> probabilities [..., V]`` = softmax(logits / temperature)."""
    cases = []
    for name, logits, t in [
        ("T = 1 is the plain softmax", _logits((6,), 0), 1.0),
        ("T = 0.5 sharpens", _logits((6,), 1), 0.5),
        ("T = 2 flattens", _logits((2, 6), 2), 2.0),
        ("large logits stay finite (subtract the max)", torch.tensor([1000.0, 999.0, 990.0]), 0.7),
    ]:
        cases.append(Case(name, (logits.clone(), t), torch.softmax(logits.double() / t, dim=-1).float(), atol=1e-6))
    return run_cases("temperature_softmax", fn, cases)


def _same_filter(expected: torch.Tensor):
    def predicate(got) -> tuple[bool, str]:
        if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
            return False, f"expected a tensor of shape {tuple(expected.shape)}, got {getattr(got, 'shape', got)!r}"
        kept, want = torch.isfinite(got), torch.isfinite(expected)
        if not torch.equal(kept, want):
            return False, f"kept {int(kept.sum())} tokens where the answer keeps {int(want.sum())} (or other ones)"
        if bool((got[~kept] > 0).any()):
            return False, "dropped tokens must be -inf, not +inf"
        return close(got[kept], expected[want])

    return predicate


def check_top_k_filter(fn: Callable) -> CheckResult:
    """``fn(logits [..., V], k) -> logits`` with all but the k largest of each row set to ``-inf``."""
    cases = []
    for name, logits, k in [
        ("k = 3 of 8", _logits((8,), 3), 3),
        ("k = 1 keeps only the argmax", _logits((8,), 4), 1),
        ("k = V keeps everything", _logits((8,), 5), 8),
        ("a batch of rows, each filtered on its own", _logits((3, 10), 6), 4),
    ]:
        cases.append(Case(name, (logits.clone(), k), predicate=_same_filter(top_k_filter(logits, k))))
    return run_cases("top_k_filter", fn, cases)


def check_top_p_filter(fn: Callable) -> CheckResult:
    """``fn(logits [..., V], p) -> logits`` keeping the fewest most likely tokens whose probability reaches p."""
    peaked = torch.tensor([5.0, 1.0, 0.5, 0.0, -1.0, -3.0])
    cases = []
    for name, logits, p in [
        ("p = 0.9", _logits((10,), 7), 0.9),
        ("p = 0.5", _logits((10,), 8), 0.5),
        ("a peaked distribution: one token already covers p", peaked, 0.9),
        ("p = 1.0 keeps everything", _logits((10,), 9), 1.0),
        ("a batch of rows", _logits((3, 12), 10), 0.7),
    ]:
        cases.append(Case(name, (logits.clone(), p), predicate=_same_filter(top_p_filter(logits, p))))
    return run_cases("top_p_filter", fn, cases)


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
    return w @ v


def check_kv_cache_step(fn: Callable) -> CheckResult:
    """``fn(q_new, k_new, v_new, k_cache, v_cache) -> (out, k_cache, v_cache)``: one decoding step with a cache.

    ``q_new, k_new, v_new`` are ``[B, H, 1, D]`` (the new token), the caches ``[B, H, T, D]`` (the past, or
    ``T = 0``). Append the new key and value to the caches, then let the new query attend to every cached
    position (no mask needed: the past is all visible). Returns ``out [B, H, 1, D]`` and the caches
    ``[B, H, T + 1, D]``.
    """
    cases = []
    for name, (B, H, T, D), seed in [
        ("first token (empty cache)", (1, 2, 0, 4), 11),
        ("one head, 5 cached positions", (1, 1, 5, 8), 12),
        ("batch 2, 3 heads, 7 cached positions", (2, 3, 7, 4), 13),
    ]:
        g = torch.Generator().manual_seed(seed)
        q, k, v = (torch.randn(B, H, 1, D, generator=g) for _ in range(3))
        kc, vc = torch.randn(B, H, T, D, generator=g), torch.randn(B, H, T, D, generator=g)
        k_all, v_all = torch.cat([kc, k], dim=-2), torch.cat([vc, v], dim=-2)
        want = (_attend(q, k_all, v_all), k_all, v_all)

        def predicate(got, want=want) -> tuple[bool, str]:
            if not isinstance(got, (tuple, list)) or len(got) != 3:
                return False, "return a tuple (out, k_cache, v_cache)"
            for label, g_, w_ in zip(("out", "k_cache", "v_cache"), got, want, strict=True):
                ok, why = close(g_, w_)
                if not ok:
                    return False, f"{label}: {why}"
            return True, "matches (the cache grew by one and the new query saw every position)"

        cases.append(Case(name, (q, k, v, kc, vc), predicate=predicate))
    return run_cases("kv_cache_step", fn, cases)


def check_kv_cache_bytes(fn: Callable) -> CheckResult:
    """``fn(n_layer, n_head, d_head, T, bytes_per_value) -> int``: bytes of one sequence's KV cache.

    Keys and values (2) for every layer, head, head dimension and position: ``2·L·H·d·T·bytes``.
    """
    cases = []
    for name, args in [
        ("GPT-2 small, 1024 positions, fp16", (12, 12, 64, 1024, 2)),
        ("GPT-2 XL, 1024 positions, fp32", (48, 25, 64, 1024, 4)),
        ("a tiny model, one position", (2, 4, 8, 1, 4)),
    ]:
        L, H, d, T, b = args
        cases.append(Case(name, args, 2 * L * H * d * T * b, atol=0.5, rtol=0.0))
    return run_cases("kv_cache_bytes", fn, cases)


def check_continuation_log_prob(fn: Callable) -> CheckResult:
    """``fn(logits [T, V], ids [T], start) -> float``: ``sum_{t >= start} log softmax(logits[t-1])[ids[t]]``.

    ``logits[t]`` is the model's prediction for the token *after* position ``t``; ``start >= 1``.
    """
    cases = []
    for name, (T, V, start), seed in [
        ("the last token only", (5, 7, 4), 21),
        ("a continuation of 6 tokens", (10, 12, 4), 22),
        ("everything after the first token", (8, 5, 1), 23),
        ("large logits (use log_softmax)", (6, 9, 2), 24),
    ]:
        logits = _logits((T, V), seed, scale=400.0 if "large" in name else 2.0)
        ids = torch.randint(0, V, (T,), generator=torch.Generator().manual_seed(seed + 100))
        logp = torch.log_softmax(logits.double(), dim=-1)
        want = sum(float(logp[t - 1, ids[t]]) for t in range(start, T))
        cases.append(Case(name, (logits.clone(), ids.clone(), start), want, atol=1e-3, rtol=1e-5))
    return run_cases("continuation_log_prob", fn, cases)
