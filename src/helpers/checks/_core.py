"""The machinery every exercise checker shares: run the learner's function on cases, compare, report."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["Case", "run_cases", "close", "CheckResult"]


@dataclass
class Case:
    """One test case: a description, the arguments, and the expected value (or a predicate on the result)."""

    name: str
    args: tuple
    expected: Any = None
    kwargs: dict | None = None
    predicate: Callable[[Any], tuple[bool, str]] | None = None  # returns (ok, explanation)
    atol: float = 1e-5
    rtol: float = 1e-4


class CheckResult:
    """What a checker returns: ``bool(result)`` is True when every case passed. Displays as nothing."""

    def __init__(self, name: str, passed: int, total: int) -> None:
        self.name, self.passed, self.total = name, passed, total

    def __bool__(self) -> bool:
        return self.passed == self.total

    def __repr__(self) -> str:
        return f"CheckResult({self.name!r}, {self.passed}/{self.total})"

    def _repr_pretty_(self, p, cycle) -> None:  # keep notebook outputs clean when it ends a cell
        p.text(f"{self.passed}/{self.total} passed")


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=float)


def close(got: Any, expected: Any, atol: float = 1e-5, rtol: float = 1e-4) -> tuple[bool, str]:
    """Compare numbers, arrays or tensors (shape first, then values); return ``(ok, explanation)``."""
    try:
        g, e = _to_numpy(got), _to_numpy(expected)
    except (TypeError, ValueError):
        return False, f"expected something array-like, got {type(got).__name__}"
    if g.shape != e.shape:
        return False, f"shape {g.shape}, expected {e.shape}"
    if np.isnan(g).any() and not np.isnan(e).any():
        return False, "result contains NaN"
    if not np.allclose(g, e, atol=atol, rtol=rtol, equal_nan=True):
        diff = np.nanmax(np.abs(g - e)) if g.size else 0.0
        return False, f"values differ (max difference {diff:.3g}, tolerance {atol:g})"
    return True, "matches"


def run_cases(title: str, fn: Callable, cases: Iterable[Case]) -> CheckResult:
    """Run ``fn`` on every case, print one ✓/✗ line per case and a verdict, return a ``CheckResult``."""
    if not callable(fn):
        raise TypeError(f"the checker needs your function, got {type(fn).__name__}")
    cases = list(cases)
    passed = 0
    print(f"Checking {title}:")
    for case in cases:
        try:
            got = fn(*case.args, **(case.kwargs or {}))
        except NotImplementedError:
            ok, why = False, "not implemented yet"
        except Exception as exc:  # a learner's bug: report it, don't crash the notebook
            ok, why = False, f"raised {type(exc).__name__}: {exc}"
        else:
            if case.predicate is not None:
                ok, why = case.predicate(got)
            else:
                ok, why = close(got, case.expected, case.atol, case.rtol)
        passed += ok
        print(f"  {'✓' if ok else '✗'} {case.name}: {why}")
    verdict = "all correct, well done!" if passed == len(cases) else "not yet: look at the ✗ lines above."
    print(f"{passed}/{len(cases)} passed: {verdict}")
    return CheckResult(title, passed, len(cases))
