"""Small statistics the lessons share: Wilson's interval for a proportion (lessons 13, 15 and 19) and a paired
bootstrap interval for the difference of two accuracies on the same examples (lesson 19)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["wilson_interval", "paired_difference"]


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson's score interval for a proportion ``k / n`` (95% for ``z = 1.96``): ``(low, high)`` in [0, 1].

    Unlike ``p ± z·sqrt(p(1-p)/n)`` it stays inside [0, 1], is not empty when ``k`` is 0 or ``n``, and keeps its
    coverage near 0 and 1.
    """
    for name, v in (("k", k), ("n", n)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
    if n < 1 or not 0 <= k <= n:
        raise ValueError(f"need 0 <= k <= n and n >= 1, got k={k}, n={n}")
    if isinstance(z, bool) or not isinstance(z, (int, float)) or not z > 0:
        raise ValueError(f"z must be a positive number, got {z!r}")
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)  # clip round-off at k = 0 and k = n


def paired_difference(correct_a, correct_b, n_boot: int = 10_000, seed: int = 0,
                      level: float = 0.95) -> tuple[float, float, float]:
    """``(difference, low, high)``: accuracy of A minus accuracy of B on the same examples, with a percentile
    bootstrap interval that resamples the examples (so both models are judged on each resample's same items).

    ``correct_a`` and ``correct_b``: one bool (or 0/1) per example, whether each model got it right. Pairing is
    what makes the interval narrow: the examples both get right or both get wrong cancel.
    """
    a = np.asarray(correct_a, dtype=float).ravel()
    b = np.asarray(correct_b, dtype=float).ravel()
    if a.shape != b.shape or a.size == 0:
        raise ValueError(f"correct_a and correct_b must be two non-empty sequences of one length, got "
                         f"{a.size} and {b.size}")
    if not (np.isin(a, (0.0, 1.0)).all() and np.isin(b, (0.0, 1.0)).all()):
        raise ValueError("correct_a and correct_b must hold booleans or 0/1, one per example")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 100:
        raise ValueError(f"n_boot must be an int >= 100, got {n_boot!r}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    d = a - b
    idx = np.random.default_rng(seed).integers(0, d.size, size=(n_boot, d.size))
    boots = d[idx].mean(axis=1)
    lo, hi = np.quantile(boots, [(1 - level) / 2, (1 + level) / 2])
    return float(d.mean()), float(lo), float(hi)
