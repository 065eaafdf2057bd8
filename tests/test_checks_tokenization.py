"""The tokenization checkers: correct versions pass, each named mistake gets its hint, stubs score 0."""

import math

import pytest

from helpers.checks import (
    check_bits_per_character,
    check_bpe_encode_word,
    check_char_encode,
    check_decode_bytes,
    check_get_pair_counts,
    check_merge_pair,
    reference_bpe_encode_word,
)
from helpers.checks import tokenization as T


def learner_encode(ids, merges):
    # a learner's version: the lowest-ranked pair present first, as GPT-2's encoder does
    ids, rank = list(ids), {p: i for i, p in enumerate(merges)}
    while len(ids) > 1:
        pair = min(zip(ids, ids[1:], strict=False), key=lambda p: rank.get(p, math.inf))
        if pair not in rank:
            break
        out, i = [], 0
        while i < len(ids):
            if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
                out.append(256 + rank[pair])
                i += 2
            else:
                out.append(ids[i])
                i += 1
        ids = out
    return ids


def good_decode(ids, vocab):
    return b"".join(vocab[i] for i in ids).decode("utf-8", errors="replace")


def good_bpc(loss, n_tokens, n_chars):
    return loss * n_tokens / n_chars / math.log(2)


def stub(*args):
    raise NotImplementedError()


def test_correct_versions_pass(capsys):
    assert check_bpe_encode_word(reference_bpe_encode_word)
    assert check_bpe_encode_word(learner_encode)
    assert check_decode_bytes(good_decode)
    assert check_bits_per_character(good_bpc)
    assert check_char_encode(lambda text, chars: [chars.index(c) for c in text] if set(text) <= set(chars)
                             else (_ for _ in ()).throw(ValueError("missing")))
    assert check_get_pair_counts(lambda ids: {p: list(zip(ids, ids[1:], strict=False)).count(p) for p in zip(ids, ids[1:], strict=False)})
    assert check_merge_pair(lambda ids, pair, new: T.merge_pair(ids, pair, new))
    assert "✗" not in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (T._encode_by_frequency, "most frequent pair of the word merged first"),
    (T._encode_reversed, "reverse order"),
    (T._encode_first_only, "only the first occurrence"),
    (T._encode_bytes_only, "merges that build on earlier merges"),
])
def test_bpe_encode_mistakes_named(capsys, wrong, hint):
    assert not check_bpe_encode_word(wrong)
    assert hint in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (T._decode_per_token, "each token decoded on its own"),
    (T._decode_ignore, "errors='ignore'"),
    (lambda ids, vocab: "".join(vocab[i].decode() for i in ids), "UnicodeDecodeError: a token can hold part"),
    (lambda ids, vocab: b"".join(vocab[i] for i in ids).decode(), "UnicodeDecodeError"),
])
def test_decode_mistakes_named(capsys, wrong, hint):
    assert not check_decode_bytes(wrong)
    assert hint in capsys.readouterr().out


@pytest.mark.parametrize("wrong, hint", [
    (lambda loss, t, c: loss * t / c, "nats per character"),
    (lambda loss, t, c: loss / math.log(2), "bits per token"),
    (lambda loss, t, c: loss * c / (t * math.log(2)), "the ratio inverted"),
    (lambda loss, t, c: loss * t / (c * math.log(10)), "log base 10"),
])
def test_bpc_mistakes_named(capsys, wrong, hint):
    assert not check_bits_per_character(wrong)
    assert hint in capsys.readouterr().out


@pytest.mark.parametrize("check", [check_bpe_encode_word, check_decode_bytes, check_bits_per_character])
def test_none_and_not_implemented(capsys, check):
    result = check(stub)
    assert result.score(2) == 0.0 and "not implemented yet" in capsys.readouterr().out
    assert not check(lambda *a: None)
    assert "did you forget `return`" in capsys.readouterr().out
    assert check(None).score(1) == 0.0
