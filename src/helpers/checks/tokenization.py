"""Checkers for the tokenization lesson (notebook 06): character encoding and the two steps of BPE.

References: ``helpers.tokenizer.CharTokenizer`` and ``helpers.bpe`` (``get_pair_counts``, ``merge_pair``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..bpe import get_pair_counts, merge_pair
from ..tokenizer import CharTokenizer
from ._core import Case, CheckResult, run_cases

__all__ = ["check_char_encode", "check_get_pair_counts", "check_merge_pair"]


def _equal(expected: Any, kind: type = list) -> Callable[[Any], tuple[bool, str]]:
    def predicate(got: Any) -> tuple[bool, str]:
        try:
            got_norm = kind(got)
        except (TypeError, ValueError):
            return False, f"expected a {kind.__name__}, got {type(got).__name__}"
        if kind is list:
            got_norm = [int(x) for x in got_norm]
        if got_norm == expected:
            return True, "matches"
        shown = str(got_norm)
        return False, f"got {shown[:80]}{'...' if len(shown) > 80 else ''}, expected {str(expected)[:80]}"

    return predicate


def check_char_encode(fn: Callable[[str, str], list[int]]) -> CheckResult:
    """``fn(text, chars) -> list[int]``: the index in ``chars`` (the vocabulary) of every character of ``text``;
    a character missing from ``chars`` raises ``ValueError``.
    """

    def run(text: str, chars: str, expect_error: bool = False) -> Any:
        if not expect_error:
            return fn(text, chars)
        try:
            fn(text, chars)
        except ValueError:
            return "raised ValueError"
        except Exception as exc:  # noqa: BLE001 - report what the learner raised
            return f"raised {type(exc).__name__}, not ValueError"
        return "returned without an error"

    texts = [("one word", "To"), ("a line of verse", "To be, or not to be: that is the question?"),
             ("newlines and spaces", "ROMEO:\n  Ha!\n"), ("empty text", "")]
    vocab = "".join(sorted(set("".join(t for _, t in texts))))  # sorted, as CharTokenizer.from_text builds it
    ref = CharTokenizer(list(vocab))
    cases = [Case(name, (text, vocab), predicate=_equal(ref.encode(text))) for name, text in texts]
    cases.append(Case("'z' is not in the vocabulary: ValueError", ("zebra", vocab), kwargs={"expect_error": True},
                      predicate=lambda got: (got == "raised ValueError", got)))
    return run_cases("char_encode", run, cases)


def check_get_pair_counts(fn: Callable[[list[int]], dict]) -> CheckResult:
    """``fn(ids) -> dict``: how often each adjacent pair ``(a, b)`` occurs in the list ``ids``."""
    inputs = [
        ("the textbook example", [1, 2, 3, 1, 2]),
        ("overlapping pairs count twice", [7, 7, 7]),
        ("one token: no pairs", [5]),
        ("empty", []),
        ("bytes of 'hello'", list(b"hello hello")),
    ]
    cases = [Case(name, (list(ids),), predicate=_equal(dict(get_pair_counts([ids])), dict)) for name, ids in inputs]
    return run_cases("get_pair_counts", fn, cases)


def check_merge_pair(fn: Callable[[list[int], tuple[int, int], int], list[int]]) -> CheckResult:
    """``fn(ids, pair, new_id) -> list[int]``: every occurrence of ``pair`` replaced by ``new_id``, left to right."""
    inputs = [
        ("two occurrences", [1, 2, 3, 1, 2], (1, 2), 99),
        ("no occurrence", [1, 3, 2], (1, 2), 99),
        ("overlap: left to right", [7, 7, 7], (7, 7), 50),
        ("four in a row", [7, 7, 7, 7], (7, 7), 50),
        ("at the end", [4, 5, 6], (5, 6), 256),
        ("empty", [], (1, 2), 3),
    ]
    cases = [
        Case(name, (list(ids), pair, new), predicate=_equal(list(merge_pair(ids, pair, new))))
        for name, ids, pair, new in inputs
    ]
    return run_cases("merge_pair", fn, cases)
