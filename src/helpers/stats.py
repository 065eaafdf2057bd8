"""Small statistics the lessons share: Wilson's interval for a proportion (lessons 13 and 15)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["wilson_interval"]


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
