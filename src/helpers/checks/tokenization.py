"""Checkers for the tokenization lesson (notebook 06): character encoding, the two steps of BPE, encoding a
word with learned merges, decoding byte tokens, and bits per character from a loss per token.

References: ``helpers.tokenizer.CharTokenizer`` and ``helpers.bpe`` (``get_pair_counts``, ``merge_pair``).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

from ..bpe import get_pair_counts, merge_pair, pretokenize
from ..tokenizer import CharTokenizer
from ._core import Case, CheckResult, run_cases

__all__ = ["check_char_encode", "check_get_pair_counts", "check_merge_pair", "check_bpe_encode_word",
           "check_decode_bytes", "check_bits_per_character", "reference_bpe_encode_word",
           "reference_decode_bytes", "reference_bits_per_character"]


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


# ---------------------------------------------------------------------- encoding a word with learned merges
def reference_bpe_encode_word(ids: list[int], merges: list[tuple[int, int]]) -> list[int]:
    """Apply learned merges to one pre-token's byte ids: merge ``i`` (pair ``merges[i]``) makes id ``256 + i``,
    applied in the order learned, each to every occurrence, left to right."""
    ids = list(ids)
    for i, pair in enumerate(merges):
        ids = list(merge_pair(ids, tuple(pair), 256 + i))
    return ids


def _encode_by_frequency(ids, merges):
    """Training's rule instead of encoding's: merge the most frequent learned pair of this word first."""
    ids, rank = list(ids), {tuple(p): i for i, p in enumerate(merges)}
    while True:
        counts = Counter(p for p in zip(ids, ids[1:], strict=False) if p in rank)
        if not counts:
            return ids
        best = max(counts, key=lambda p: (counts[p], -rank[p]))
        ids = list(merge_pair(ids, best, 256 + rank[best]))


def _encode_reversed(ids, merges):
    ids = list(ids)
    for i in reversed(range(len(merges))):
        ids = list(merge_pair(ids, tuple(merges[i]), 256 + i))
    return ids


def _encode_first_only(ids, merges):
    ids = list(ids)
    for i, pair in enumerate(merges):
        for j in range(len(ids) - 1):
            if (ids[j], ids[j + 1]) == tuple(pair):
                ids = ids[:j] + [256 + i] + ids[j + 2:]
                break
    return ids


def _encode_bytes_only(ids, merges):
    ids = list(ids)
    for i, pair in enumerate(merges):
        if max(pair) < 256:
            ids = list(merge_pair(ids, tuple(pair), 256 + i))
    return ids


def _toy_merges(text: str, n: int) -> list[tuple[int, int]]:
    """``n`` merges learned on ``text`` by the hand loop of notebook 06 (byte ids, new ids from 256)."""
    words = Counter(tuple(w.encode("utf-8")) for w in pretokenize(text))
    merges = []
    for step in range(n):
        counts = get_pair_counts(words)
        best = max(sorted(counts), key=counts.get)
        merges.append(best)
        words = Counter({tuple(merge_pair(w, best, 256 + step)): c for w, c in words.items()})
    return merges


_VERSE = ("To be, or not to be, that is the question: Whether 'tis nobler in the mind to suffer The slings and "
          "arrows of outrageous fortune, Or to take arms against a sea of troubles And by opposing end them. "
          "To die: to sleep; No more; and by a sleep to say we end The heart-ache and the thousand natural shocks "
          "That flesh is heir to, 'tis a consummation Devoutly to be wish'd. To die, to sleep; To sleep: perchance "
          "to dream: ay, there's the rub; For in that sleep of death what dreams may come")


def check_bpe_encode_word(fn: Callable[[list[int], list[tuple[int, int]]], list[int]]) -> CheckResult:
    """``fn(ids, merges) -> list[int]``: one pre-token's byte ids encoded with learned merges.

    ``merges[i] = (a, b)`` is the i-th merge learned; it makes token ``256 + i``. Encoding applies the merges
    in the order they were learned (not by how often a pair occurs in the word being encoded).
    """
    a, b, c = ord("a"), ord("b"), ord("c")
    learned = _toy_merges(_VERSE, 30)
    inputs = [
        ("learned order, not frequency: 'bcabc' with merges ab, then bc", list(b"bcabc"), [(a, b), (b, c)]),
        ("overlap: 'aaaaa' with the merge aa", list(b"aaaaa"), [(a, a)]),
        ("the first learned wins an overlap: 'abc' with merges ab, then bc", list(b"abc"), [(a, b), (b, c)]),
        ("a merge of merges: ' the' with ' '+'t', 'h'+'e', ' t'+'he', 't'+'h'", list(b" the"),
         [(32, ord("t")), (ord("h"), ord("e")), (256, 257), (ord("t"), ord("h"))]),
        ("30 merges learned on Hamlet's soliloquy: ' sleep'", list(b" sleep"), learned),
        ("30 merges learned on Hamlet's soliloquy: ' thousand'", list(b" thousand"), learned),
        ("no merge applies: the bytes of '你'", list("你".encode()), learned),
        ("an empty word", [], learned),
    ]
    cases = [Case(name, (ids, merges), predicate=_equal(reference_bpe_encode_word(ids, merges)))
             for name, ids, merges in inputs]
    mistakes = [
        ("the most frequent pair of the word merged first: that is how BPE *learns*; to encode, apply the "
         "merges in the order they were learned", _encode_by_frequency),
        ("the merges applied in reverse order (the last learned first)", _encode_reversed),
        ("only the first occurrence of each pair merged (merge every occurrence, left to right)",
         _encode_first_only),
        ("merges that build on earlier merges (new ids >= 256) never applied", _encode_bytes_only),
    ]
    return run_cases("bpe_encode_word", fn, cases, mistakes=mistakes)


# ---------------------------------------------------------------------- decoding byte tokens
_DECODE_ERROR = "<UnicodeDecodeError>"


def reference_decode_bytes(ids: list[int], vocab) -> str:
    """The text of byte-level tokens: ``vocab[id]`` is a token's bytes; joined, then decoded once (� for bytes
    that do not form a character)."""
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")


def _decode_per_token(ids, vocab):
    return "".join(vocab[i].decode("utf-8", errors="replace") for i in ids)


def _decode_ignore(ids, vocab):
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="ignore")


def check_decode_bytes(fn: Callable[[list[int], dict], str]) -> CheckResult:
    """``fn(ids, vocab) -> str``: the text of byte-level tokens; ``vocab[id]`` is the token's ``bytes``.

    Join the tokens' bytes, then decode once as UTF-8 with ``errors="replace"`` (as GPT-2 does): a token can
    hold part of a character, and bytes that do not form a character become ``"\ufffd"`` (�).
    """
    vocab = {i: bytes([i]) for i in range(256)}
    extra = [b" the", b"caf\xc3", b"\xa9!", "你".encode()[:2], "你".encode()[2:] + b" ", "🌍".encode()[:2],
             "🌍".encode()[2:], b"To"]
    vocab.update({256 + i: t for i, t in enumerate(extra)})
    by = {t: i for i, t in vocab.items()}
    inputs = [
        ("ASCII tokens", [by[b"To"], by[b" the"], by[b"!"]]),
        ("'你' as its three byte tokens", list("你".encode())),
        ("a token ends inside 'é' and the next ends it: 'café!'", [by[b"caf\xc3"], by[b"\xa9!"]]),
        ("'你 🌍' in tokens that cut both characters", [by["你".encode()[:2]], by["你".encode()[2:] + b" "],
                                                     by["🌍".encode()[:2]], by["🌍".encode()[2:]]]),
        ("text cut in the middle of a character (errors='replace' gives �)", [by[b"To"], by[b"caf\xc3"]]),
        ("no tokens", []),
    ]

    def run(ids, vocab):
        try:
            return fn(ids, vocab)
        except UnicodeDecodeError:
            return _DECODE_ERROR

    mistakes = [
        ("each token decoded on its own: a character split across tokens becomes �; join the bytes, then decode",
         _decode_per_token),
        ("errors='ignore' drops a cut character silently: use errors='replace', so the reader sees �",
         _decode_ignore),
    ]

    def predicate_for(ids):
        check = _equal(b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace"), str)

        def predicate(got):
            if isinstance(got, str) and got == _DECODE_ERROR:
                return False, ("UnicodeDecodeError: a token can hold part of a character; join all the bytes "
                               "first, then decode once, with errors='replace'")
            ok, why = check(got)
            if not ok:  # strings: name the mistake here (the shared matcher compares numbers)
                why = next((f"looks like {name}" for name, wrong in mistakes if wrong(ids, vocab) == got), why)
            return ok, why

        return predicate

    cases = [Case(name, (ids, dict(vocab)), predicate=predicate_for(ids)) for name, ids in inputs]
    return run_cases("decode_bytes", run, cases)


# ---------------------------------------------------------------------- bits per character
def reference_bits_per_character(loss: float, n_tokens: int, n_chars: int) -> float:
    """Bits per character of a mean loss of ``loss`` nats per token over ``n_tokens`` tokens of ``n_chars``
    characters."""
    return loss * n_tokens / (n_chars * math.log(2))


def check_bits_per_character(fn: Callable[[float, int, int], float]) -> CheckResult:
    """``fn(loss, n_tokens, n_chars) -> float``: bits per character of a model whose mean cross-entropy on a
    text of ``n_chars`` characters, cut into ``n_tokens`` tokens, is ``loss`` nats per token.

    The total is ``loss · n_tokens`` nats; in bits, ``/ ln 2``; per character, ``/ n_chars``.
    """
    inputs = [
        ("a character model: one token per character", (1.5, 1000, 1000)),
        ("BPE 512: 549 tokens per 1,000 characters", (3.0, 549, 1000)),
        ("a word model: 240 tokens per 1,000 characters", (5.2, 240, 1000)),
        ("a uniform guess over 75 characters: log2(75) bits", (math.log(75), 60_000, 60_000)),
        ("a zero loss is zero bits", (0.0, 10, 37)),
    ]
    cases = [Case(name, args, args[0] * args[1] / (args[2] * math.log(2)), atol=1e-9, rtol=1e-6)
             for name, args in inputs]
    mistakes = [
        ("nats per character: divide by ln 2 to get bits", lambda loss, t, c: loss * t / c),
        ("bits per token: a token holds n_chars / n_tokens characters; multiply by n_tokens / n_chars",
         lambda loss, t, c: loss / math.log(2)),
        ("the ratio inverted: the total is loss × n_tokens, shared among n_chars characters",
         lambda loss, t, c: loss * c / (t * math.log(2))),
        ("log base 10 instead of 2: divide by ln 2", lambda loss, t, c: loss * t / (c * math.log(10))),
    ]
    return run_cases("bits_per_character", fn, cases, mistakes=mistakes)
