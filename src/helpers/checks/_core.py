"""The machinery every exercise checker shares: run the learner's function on cases, compare, report.

A checker teaches as well as grades:
- ``mistakes``: known wrong versions of the reference (√d_k missing, mask inverted, ...). When the learner's
  answer is wrong but equals one of them on a case, the ✗ line names that mistake instead of a difference.
- ``forbid``: shortcuts an exercise rules out (``"torch.nn.functional.cross_entropy"`` in the loss written by
  hand); calling one fails the case with the reason.
- A ``None`` answer is "did you forget ``return``?"; a bare tensor where ``(output, weights)`` was asked says
  so; ``NotImplementedError`` is "not implemented yet" (the student edition's stubs), never a stack trace.
- The learner's warnings and stderr are captured and shown as a ✗-free note on stdout: nbgrader gives zero to
  a test cell that writes to stderr.
- ``CheckResult.score(points)`` is the number nbgrader reads as partial credit: end a graded test cell on it.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

__all__ = ["Case", "run_cases", "close", "CheckResult", "NOT_IMPLEMENTED"]

NOT_IMPLEMENTED = "not implemented yet"


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

    def __init__(self, name: str, passed: int, total: int, implemented: bool = True) -> None:
        self.name, self.passed, self.total, self.implemented = name, passed, total, implemented

    def __bool__(self) -> bool:
        return self.passed == self.total

    @property
    def fraction(self) -> float:
        """The share of cases passed, 0.0 to 1.0."""
        return self.passed / self.total if self.total else 0.0

    def score(self, points: float = 1.0) -> float:
        """``points`` × the share of cases passed: end an nbgrader test cell on it for partial credit."""
        if isinstance(points, bool) or not isinstance(points, (int, float)) or points <= 0:
            raise ValueError(f"points must be a positive number, got {points!r}")
        return round(points * self.fraction, 4)

    def __repr__(self) -> str:
        return f"CheckResult({self.name!r}, {self.passed}/{self.total})"

    def _repr_pretty_(self, p, cycle) -> None:  # keep notebook outputs clean when it ends a cell
        p.text(f"{self.passed}/{self.total} passed")


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().double().numpy()
    return np.asarray(x, dtype=float)


def close(got: Any, expected: Any, atol: float = 1e-5, rtol: float = 1e-4) -> tuple[bool, str]:
    """Compare numbers, arrays or tensors (shape first, then values); return ``(ok, explanation)``.

    A tuple ``expected`` (e.g. ``(output, weights)``) is compared element by element.
    """
    if got is None and expected is not None:
        return False, "your function returned None: did you forget `return`?"
    if isinstance(expected, tuple):
        if not isinstance(got, (tuple, list)):
            return False, (f"expected a tuple of {len(expected)} (e.g. output and weights), "
                           f"got a single {type(got).__name__}")
        if len(got) != len(expected):
            return False, f"expected a tuple of {len(expected)}, got {len(got)} values"
        for i, (g_, e_) in enumerate(zip(got, expected, strict=True)):
            ok, why = close(g_, e_, atol, rtol)
            if not ok:
                return False, f"element {i} of the tuple: {why}"
        return True, "matches"
    try:
        g, e = _to_numpy(got), _to_numpy(expected)
    except (TypeError, ValueError, RuntimeError):
        return False, f"expected something array-like, got {type(got).__name__}"
    if g.shape != e.shape:
        return False, f"shape {g.shape}, expected {e.shape}"
    if np.isnan(g).any() and not np.isnan(e).any():
        return False, "result contains NaN"
    if not np.allclose(g, e, atol=atol, rtol=rtol, equal_nan=True):
        diff = np.nanmax(np.abs(g - e)) if g.size else 0.0
        return False, f"values differ (max difference {diff:.3g}, tolerance {atol:g})"
    return True, "matches"


class _Forbidden(Exception):
    """Raised inside the learner's call when it uses a shortcut the exercise rules out."""


@contextlib.contextmanager
def _forbidding(forbid: dict[str, str]):
    """Replace each dotted attribute (``"torch.nn.functional.cross_entropy"``) by a trap for the duration."""
    saved = []
    try:
        for dotted, reason in forbid.items():
            mod_name, attr = dotted.rsplit(".", 1)
            mod = importlib.import_module(mod_name)

            def trap(*a, _name=dotted, _reason=reason, **k):
                raise _Forbidden(f"this exercise asks you not to call {_name}: {_reason}")

            saved.append((mod, attr, getattr(mod, attr)))
            setattr(mod, attr, trap)
        yield
    finally:
        for mod, attr, original in reversed(saved):
            setattr(mod, attr, original)


def _call(fn: Callable, case: Case, forbid: dict[str, str]) -> tuple[Any, BaseException | None, str]:
    """Run the learner's function on one case; return (result, exception, captured warnings/stderr)."""
    err = io.StringIO()
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(err), _forbidding(forbid):
        warnings.simplefilter("always")
        try:
            got = fn(*_fresh(case.args), **(case.kwargs or {}))
        except BaseException as exc:  # noqa: BLE001 - a learner's bug is reported, never crashes the notebook
            if isinstance(exc, KeyboardInterrupt):
                raise
            return None, exc, _noise(caught, err)
    return got, None, _noise(caught, err)


def _fresh(args: tuple) -> tuple:
    """Copies of tensor/array arguments, so a learner's in-place edit cannot change the next comparison."""
    return tuple(a.clone() if isinstance(a, torch.Tensor) else a.copy() if isinstance(a, np.ndarray) else a
                 for a in args)


def _noise(caught, err: io.StringIO) -> str:
    msgs = [f"{w.category.__name__}: {w.message}" for w in caught] + err.getvalue().strip().splitlines()
    return "; ".join(dict.fromkeys(m for m in msgs if m))[:300]


def run_cases(
    title: str,
    fn: Callable,
    cases: Iterable[Case],
    mistakes: Sequence[tuple[str, Callable]] = (),
    forbid: dict[str, str] | None = None,
) -> CheckResult:
    """Run ``fn`` on every case, print one ✓/✗ line per case and a verdict, return a ``CheckResult``.

    ``mistakes``: ``(name, wrong_fn)`` pairs; ``wrong_fn`` takes the case's arguments and returns what that
    mistake would give. ``forbid``: ``{"module.attr": why}`` shortcuts that fail the case when called.
    """
    if fn is None:
        print(f"Checking {title}: there is nothing to check yet (got None): define your function, then run "
              "this cell again.")
        return CheckResult(title, 0, 1, implemented=False)
    if not callable(fn):
        raise TypeError(f"the checker needs your function or class, got {type(fn).__name__}")
    cases = list(cases)
    forbid = dict(forbid or {})
    passed, not_implemented = 0, 0
    print(f"Checking {title}:")
    for case in cases:
        got, exc, noise = _call(fn, case, forbid)
        if isinstance(exc, NotImplementedError):
            ok, why = False, NOT_IMPLEMENTED
            not_implemented += 1
        elif isinstance(exc, _Forbidden):
            ok, why = False, str(exc)
        elif exc is not None:
            ok, why = False, f"raised {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        else:
            if case.predicate is not None:
                ok, why = case.predicate(got) if got is not None else close(None, 0)
            else:
                ok, why = close(got, case.expected, case.atol, case.rtol)
            if not ok and got is not None:
                why = _name_the_mistake(got, case, mistakes) or why
        if noise:
            why += f" (it also warned: {noise})"
        passed += ok
        print(f"  {'✓' if ok else '✗'} {case.name}: {why}")
    if not_implemented == len(cases):
        print(f"0/{len(cases)} passed: {NOT_IMPLEMENTED}. Write your code in the cell above, run it, then this one.")
    else:
        verdict = "all correct, well done!" if passed == len(cases) else "not yet: look at the ✗ lines above."
        print(f"{passed}/{len(cases)} passed: {verdict}")
    return CheckResult(title, passed, len(cases), implemented=not_implemented < len(cases))


def _name_the_mistake(got: Any, case: Case, mistakes: Sequence[tuple[str, Callable]]) -> str | None:
    for name, wrong in mistakes:
        try:
            wrong_answer = wrong(*_fresh(case.args), **(case.kwargs or {}))
        except Exception:  # noqa: BLE001 - a mistake model that does not apply to this case
            continue
        if close(got, wrong_answer, case.atol, case.rtol)[0]:
            return f"looks like {name}"
    return None
