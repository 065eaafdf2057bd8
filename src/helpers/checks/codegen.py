"""Checkers for notebook 15 (a code model): a split by module, function headers, the closing rule, an interval."""

from __future__ import annotations

import ast
import hashlib
import math

from ..codegen import close_function, split_by_module, wilson_interval
from ._core import Case, CheckResult, run_cases

__all__ = ["check_split_by_module", "check_extract_headers", "check_close_function", "check_wilson_interval"]


def _short(x, n: int = 90) -> str:
    s = repr(x)
    return s if len(s) <= n else s[:n] + "..."


def _with_mistakes(name, args, reference, mistakes, what, normalise=lambda x: x, kwargs=None):
    """A case whose predicate compares with ``reference(*args)`` and names a mistake whose answer matches."""
    kwargs = kwargs or {}
    expected = reference(*args, **kwargs)
    wrongs = []
    for label, wrong in mistakes:
        try:
            answer = wrong(*args, **kwargs)
        except Exception:  # noqa: BLE001 - a mistake model that does not apply to this case
            continue
        if answer != expected:
            wrongs.append((label, answer))

    def pred(got):
        try:
            got = normalise(got)
        except (TypeError, ValueError, IndexError):
            return False, f"{what}: unexpected type {type(got).__name__}"
        if got == expected:
            return True, "matches"
        for label, answer in wrongs:
            if got == answer:
                return False, f"looks like {label}"
        return False, f"{what} differs from the reference: got {_short(got)}, expected {_short(expected)}"

    return Case(name, args, kwargs=kwargs or None, predicate=pred)


# ---------------------------------------------------------------------------------------------------------
# split_by_module(names, val_percent) -> (train, val)

NAMES = ["argparse", "ast", "asyncio.base_events", "asyncio.tasks", "calendar", "collections", "csv",
         "dataclasses", "email.message", "email.mime.text", "enum", "functools", "heapq", "http.client",
         "inspect", "json.decoder", "logging.handlers", "multiprocessing.pool", "os", "pathlib", "pickle",
         "queue", "random", "re._parser", "shutil", "statistics", "string", "subprocess", "tarfile", "textwrap",
         "threading", "tkinter.ttk", "typing", "unittest.mock", "urllib.parse", "warnings", "xml.dom.minidom",
         "zipfile"]


def _positional(names, val_percent):
    names = sorted(names)
    k = len(names) - round(len(names) * val_percent / 100)
    return names[:k], names[k:]


def _at_most(names, val_percent):
    val = sorted(n for n in names if int(hashlib.sha256(n.encode()).hexdigest(), 16) % 100 <= val_percent)
    return sorted(n for n in names if n not in val), val


def check_split_by_module(fn) -> CheckResult:
    """``fn(names, val_percent) -> (train, val)``: a module is in ``val`` exactly when the SHA-256 of its name
    (UTF-8), read as an integer, modulo 100 is below ``val_percent``; both lists sorted; no module in both."""

    def run(names, val_percent, grow=False):
        if not grow:
            return fn(list(names), val_percent)
        _, val_before = fn(list(names), val_percent)
        train_after, val_after = fn(list(names) + ["zz_a_new_module"], val_percent)
        moved = sorted(set(val_before) ^ (set(val_after) - {"zz_a_new_module"}))
        return moved, sorted(list(train_after) + list(val_after))

    def stable(got):
        moved, both = got
        if moved:
            return False, (f"adding one module moved {moved[:3]} across: the split must depend on each module's "
                           "own name only (a hash), not on its place among the others")
        if both != sorted(NAMES + ["zz_a_new_module"]):
            return False, "some modules are missing or repeated after adding one"
        return True, "adding a module moves no other module across"

    def disjoint(got):
        train, val = got
        if set(train) & set(val):
            return False, f"{sorted(set(train) & set(val))[:3]} are in both train and val"
        if sorted(list(train) + list(val)) != sorted(NAMES):
            return False, "train + val must hold every module exactly once"
        return True, "every module on exactly one side"

    def as_lists(got):
        train, val = got
        return list(train), list(val)

    mistakes = [
        ("a split by position (the last names in sorted order go to validation): adding a module shifts the "
         "others", _positional),
        ("`<=` instead of `<`: a module whose hash modulo 100 equals val_percent is held out too", _at_most),
        ("the lists are not sorted", lambda names, p: tuple(
            [n for n in names if n in part] for part in split_by_module(names, p))),
    ]
    ref = lambda names, p: as_lists(split_by_module(names, p))
    cases = [
        _with_mistakes("38 module names, 15% held out", (NAMES, 15), ref, mistakes, "(train, val)", as_lists),
        _with_mistakes("the same names shuffled, 50% held out", (NAMES[::-1], 50), ref, mistakes, "(train, val)",
                       as_lists),
        Case("no module in both lists, none lost", (NAMES, 15), predicate=disjoint),
        _with_mistakes("val_percent 0: nothing held out", (NAMES, 0), ref, mistakes, "(train, val)", as_lists),
        Case("adding a module moves no other module across", (NAMES, 30), kwargs={"grow": True}, predicate=stable),
    ]
    forbid = {"builtins.hash": "Python salts the hash of a str in every new process (PYTHONHASHSEED), so the "
                               "split would change from run to run: use hashlib.sha256"}
    return run_cases("split_by_module", run, cases, forbid=forbid)


# ---------------------------------------------------------------------------------------------------------
# extract_headers(source) -> list of (header, body)

SOURCE_A = '''"""A module."""
import functools


def area(width, height):
    """The area of a rectangle."""
    return width * height


def no_docstring(x):
    return x + 1


@functools.lru_cache(maxsize=None)
def fib(n):
    """The n-th Fibonacci number,
    computed slowly.
    """
    if n < 2:
        return n
    return fib(n - 1) + fib(n - 2)


def only_a_docstring():
    """Does nothing at all."""


class Stack:
    """A stack."""

    def __init__(self):
        """An empty stack."""
        self.items = []

    def push(self, item,
             times=1):
        """Push ``item`` ``times`` times."""
        # one by one
        for _ in range(times):
            self.items.append(item)
'''

SOURCE_B = '''import asyncio


async def fetch(url):
    """Pretend to fetch ``url``."""
    await asyncio.sleep(0)
    return url


def outer(x):
    """A function with a helper inside."""
    def inner(y):
        """Add x to y."""
        return x + y

    return inner(x)
'''


def _ref_extract(source, decorators=False, top_only=False, keep_empty=False, async_too=True, short_body=False):
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    kinds = (ast.FunctionDef, ast.AsyncFunctionDef) if async_too else (ast.FunctionDef,)
    nodes = tree.body if top_only else list(ast.walk(tree))
    out = []
    for node in nodes:
        if not isinstance(node, kinds):
            continue
        body = node.body
        doc = body[0]
        if not (isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str)):
            continue
        if len(body) < 2 and not keep_empty:
            continue
        first = node.decorator_list[0].lineno if decorators and node.decorator_list else node.lineno
        last = node.end_lineno - 1 if short_body else node.end_lineno
        out.append((node.lineno, "".join(lines[first - 1:doc.end_lineno]), "".join(lines[doc.end_lineno:last])))
    return [(h, b) for _, h, b in sorted(out)]


def _pairs(got) -> list[tuple[str, str]]:
    """The learner's answer as a list of (header, body): pairs, or objects with .header and .body."""
    return [(x.header, x.body) if hasattr(x, "header") else (x[0], x[1]) for x in got]


def check_extract_headers(fn) -> CheckResult:
    """``fn(source) -> list of (header, body)``: for every function (``def`` or ``async def``, at any depth)
    whose docstring is followed by at least one statement, in the order of their ``def`` lines: ``header`` from
    the start of the ``def`` line to the newline after the docstring, ``body`` the remaining lines of the
    function, each with its newline."""

    def wrong(**kw):
        return lambda source: _ref_extract(source, **kw)

    mistakes = [
        ("the header starts at the decorator, not at the def line (node.lineno is the def's line)",
         wrong(decorators=True)),
        ("only the module's top-level functions: methods and nested functions are missing (walk the tree with "
         "ast.walk)", wrong(top_only=True)),
        ("a function whose docstring is its only statement was kept: there is no body to complete",
         wrong(keep_empty=True)),
        ("async def functions are missing (ast.AsyncFunctionDef)", wrong(async_too=False)),
        ("the body stops one line early: end_lineno is the function's last line, counted from 1, so the slice is "
         "lines[docstring_end:end_lineno]", wrong(short_body=True)),
    ]
    plain = 'def f(a):\n    """Doc."""\n    return a\n'
    specs = [
        ("a module with a decorator, methods, a function without docstring and one with only a docstring",
         SOURCE_A),
        ("async def and a nested function", SOURCE_B),
        ("one small function", plain),
        ("a module without functions gives []", "x = 1\n"),
    ]
    cases = [_with_mistakes(name, (src,), _ref_extract, mistakes, "the (header, body) list", _pairs)
             for name, src in specs]
    return run_cases("extract_headers", fn, cases)


# ---------------------------------------------------------------------------------------------------------
# close_function(header, completion) -> str


def check_close_function(fn) -> CheckResult:
    """``fn(header, completion) -> header + the kept lines``: stop before the first non-blank line indented no
    deeper than the ``def``, or before an unfinished last line (no newline); keep blank lines."""
    top = 'def f(x):\n    """Double x."""\n'
    meth = '    def g(self):\n        """The answer."""\n'
    cases = [
        ("the function ends where the code comes back to the def's level",
         (top, "    y = 2 * x\n    return y\n\ndef h():\n    pass\n")),
        ("a method: a line at the def's indentation (4 spaces) ends it",
         (meth, "        return 42\n\n    def other(self):\n")),
        ("an unfinished last line (the character limit) is dropped", (top, "    y = 2 * x\n    return (y +")),
        ("blank lines and deeper lines are kept", (top, "    if x:\n\n        return 1\n    return 0\n")),
        ("a completion that dedents at once leaves the header alone", (meth, "class Next:\n    pass\n")),
        ("a completion that never dedents and ends with a newline is kept whole",
         (top, "    for i in range(3):\n        x += i\n")),
    ]

    def keep_unfinished(header, completion):
        out = close_function(header, completion)
        rest = completion[len(out) - len(header):]
        if rest and "\n" not in rest and not (rest.strip() and len(rest) - len(rest.lstrip(" ")) <= _ind(header)):
            return out + rest
        return out

    def blank_stops(header, completion):
        kept = []
        for line in completion.splitlines(keepends=True):
            if not line.strip() or _ind(line) <= _ind(header) or not line.endswith("\n"):
                break
            kept.append(line)
        return header + "".join(kept)

    def strict_less(header, completion):
        kept = []
        for line in completion.splitlines(keepends=True):
            if (line.strip() and _ind(line) < _ind(header)) or not line.endswith("\n"):
                break
            kept.append(line)
        return header + "".join(kept)

    def keep_dedent(header, completion):
        kept = []
        for line in completion.splitlines(keepends=True):
            if not line.endswith("\n"):
                break
            kept.append(line)
            if line.strip() and _ind(line) <= _ind(header):
                break
        return header + "".join(kept)

    mistakes = [
        ("the unfinished last line was kept: a line cut by the character limit may be half a statement",
         keep_unfinished),
        ("a blank line ended the function: blank lines say nothing about indentation, keep them", blank_stops),
        ("`<` instead of `<=`: a line at the def's own indentation is already outside the function", strict_less),
        ("the line that comes back to the def's level was kept: it belongs to the code after the function",
         keep_dedent),
    ]
    cases = [_with_mistakes(name, args, close_function, mistakes, "the closed function", str) for name, args in cases]
    return run_cases("close_function", fn, cases)


def _ind(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


# ---------------------------------------------------------------------------------------------------------
# wilson_interval(k, n, z=1.96) -> (low, high)


def _wald(k, n, z=1.96):
    p = k / n
    h = z * math.sqrt(p * (1 - p) / n)
    return p - h, p + h


def check_wilson_interval(fn) -> CheckResult:
    """``fn(k, n, z=1.96) -> (low, high)``: Wilson's score interval for the share ``k / n``."""
    cases = [
        Case("45 of 100", (45, 100), wilson_interval(45, 100), atol=1e-9, rtol=1e-9),
        Case("0 of 10: the interval is not empty", (0, 10), wilson_interval(0, 10), atol=1e-9, rtol=1e-9),
        Case("10 of 10", (10, 10), wilson_interval(10, 10), atol=1e-9, rtol=1e-9),
        Case("3 of 7", (3, 7), wilson_interval(3, 7), atol=1e-9, rtol=1e-9),
        Case("160 of 222, 99% (z = 2.576)", (160, 222), wilson_interval(160, 222, 2.576), kwargs={"z": 2.576},
             atol=1e-9, rtol=1e-9),
    ]

    def no_quarter(k, n, z=1.96):
        p, d = k / n, 1 + z * z / n
        c, h = (p + z * z / (2 * n)) / d, z / d * math.sqrt(p * (1 - p) / n)
        return c - h, c + h

    mistakes = [
        ("the normal (Wald) interval p ± z·sqrt(p(1-p)/n): at 0 of 10 it is empty, and it can leave [0, 1]", _wald),
        ("the z²/(4n²) term under the square root is missing", no_quarter),
        ("z is fixed at 1.96 whatever the argument says", lambda k, n, z=1.96: wilson_interval(k, n)),
        ("(high, low): return the lower bound first", lambda k, n, z=1.96: wilson_interval(k, n, z)[::-1]),
    ]
    return run_cases("wilson_interval", fn, cases, mistakes=mistakes)
