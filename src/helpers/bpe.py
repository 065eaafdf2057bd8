"""Byte-level BPE, trained by hand: GPT-2's tokenizer scheme, small enough to read in one sitting.

Byte-pair encoding (Sennrich et al., 2016; byte-level as in GPT-2, Radford et al., 2019) starts from the 256
possible bytes, so *any* text can be encoded (Chinese, emoji, anything), and then learns merges: the most
frequent adjacent pair of tokens becomes a new token, again and again, until the vocabulary is full.

Three steps, each a function you can call on its own:

1. ``pretokenize(text)``: GPT-2's regular expression cuts text into words, numbers, punctuation runs and
   spaces (a space sticks to the word after it: ``" the"``), so merges never cross word boundaries.
2. ``get_pair_counts(words)``: how often each adjacent pair of tokens occurs (each word weighted by its count).
3. ``merge_pair(tokens, pair, new_id)``: replace every occurrence of ``pair`` (left to right) by ``new_id``.

``BPETokenizer.train(text, vocab_size)`` runs the loop; ties between equally frequent pairs go to the pair
with the smaller ids, which is what the ``tokenizers`` library does, so both learn the same merges on the same
text. Token ids follow GPT-2's convention: the 256 bytes first, ordered as GPT-2 orders them (printable bytes
first), then one id per merge. ``save_pretrained`` writes ``bpe_merges.json`` (our reader) and a Hugging Face
``tokenizer.json`` that ``AutoTokenizer.from_pretrained`` loads.
"""

from __future__ import annotations

import functools
import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterable
from itertools import pairwise
from pathlib import Path

import regex

from .tokenizer import check_ids

__all__ = [
    "GPT2_SPLIT_PATTERN",
    "bytes_to_unicode",
    "pretokenize",
    "get_pair_counts",
    "merge_pair",
    "BPETokenizer",
]

#: GPT-2's pre-tokenization pattern: contractions, letters, digits, other symbols, each optionally led by one
#: space; runs of whitespace on their own. ``tokenizers.pre_tokenizers.ByteLevel`` uses the same one.
GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
_SPLIT = regex.compile(GPT2_SPLIT_PATTERN)


@functools.lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map from the 256 bytes to printable characters (a space becomes ``Ġ``, a newline ``Ċ``).

    Printable bytes map to themselves; the others (control characters, space, ...) to code points from 256 up,
    so every byte has a visible character and a token can be written in a JSON vocabulary.
    """
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


@functools.lru_cache(maxsize=1)
def _base_order() -> list[int]:
    """The 256 bytes in GPT-2's id order: by the code point of their printable character."""
    b2u = bytes_to_unicode()
    return sorted(range(256), key=lambda b: ord(b2u[b]))


def pretokenize(text: str) -> list[str]:
    """Cut ``text`` into GPT-2's pre-tokens: ``"Hello world!"`` -> ``["Hello", " world", "!"]``.

    Concatenating the pieces gives ``text`` back exactly.
    """
    if not isinstance(text, str):
        raise TypeError(f"pretokenize expects a str, got {type(text).__name__}")
    return _SPLIT.findall(text)


def get_pair_counts(words: dict[tuple[int, ...], int] | Iterable[Iterable[int]]) -> Counter:
    """Count adjacent pairs: ``{(a, b): n}`` over every word (a tuple of ids), weighted by its count.

    ``words`` is a dict ``{word: count}`` or a plain list of words (each counted once). Overlapping pairs
    count each time: ``(1, 1, 1)`` holds the pair ``(1, 1)`` twice.
    """
    items = words.items() if isinstance(words, dict) else ((w, 1) for w in words)
    counts: Counter = Counter()
    for word, n in items:
        word = tuple(word)
        for pair in pairwise(word):
            counts[pair] += n
    return counts


def merge_pair(tokens: Iterable[int], pair: tuple[int, int], new_id: int) -> tuple[int, ...]:
    """Replace every occurrence of ``pair`` in ``tokens`` by ``new_id``, scanning left to right.

    ``merge_pair((1, 1, 1), (1, 1), 9) == (9, 1)``: occurrences do not overlap.
    """
    tokens = tuple(tokens)
    if not (isinstance(pair, tuple) and len(pair) == 2):
        raise ValueError(f"pair must be a tuple of two ids, got {pair!r}")
    out, i, a, b = [], 0, pair[0], pair[1]
    while i < len(tokens):
        if i + 1 < len(tokens) and tokens[i] == a and tokens[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(tokens[i])
            i += 1
    return tuple(out)


class BPETokenizer:
    """Byte-level BPE: ``encode(text) -> list[int]``, ``decode(ids) -> str``, exact round trips for any text.

    ``vocab[id]`` is the token's bytes; ``merges`` lists the learned pairs ``(id_a, id_b)`` in the order they were
    learned (their rank); merge ``i`` produced the token ``merge_ids[i]``.
    """

    kind = "bpe"

    def __init__(self, merges: Iterable[tuple[int, int]]) -> None:
        order = _base_order()
        self.vocab: list[bytes] = [bytes([b]) for b in order]
        self.token_to_id: dict[bytes, int] = {t: i for i, t in enumerate(self.vocab)}
        self.merges: list[tuple[int, int]] = []
        self.merge_ids: list[int] = []
        for pair in merges:
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                raise ValueError(f"each merge must be a pair of ids, got {pair!r}")
            a, b = int(pair[0]), int(pair[1])
            if not (0 <= a < len(self.vocab) and 0 <= b < len(self.vocab)):
                raise ValueError(f"merge {pair!r} refers to ids outside the {len(self.vocab)} tokens known so far")
            self._add_merge(a, b)
        self.ranks: dict[tuple[int, int], int] = {p: r for r, p in enumerate(self.merges)}
        self._cache: dict[str, tuple[int, ...]] = {}
        self._byte_id = [0] * 256
        for i, b in enumerate(order):
            self._byte_id[b] = i

    def _add_merge(self, a: int, b: int) -> int:
        token = self.vocab[a] + self.vocab[b]
        new_id = self.token_to_id.get(token)
        if new_id is None:  # two different merges may spell the same token: they share one id
            new_id = len(self.vocab)
            self.vocab.append(token)
            self.token_to_id[token] = new_id
        self.merges.append((a, b))
        self.merge_ids.append(new_id)
        return new_id

    # ------------------------------------------------------------------ training
    @classmethod
    def train(cls, text: str, vocab_size: int, verbose: int = 0) -> BPETokenizer:
        """Learn merges on ``text`` until the vocabulary holds ``vocab_size`` tokens (256 bytes + merges).

        The loop: count pairs, take the most frequent (ties: the smaller ids), merge it everywhere, repeat.
        Only the words that contain the chosen pair are touched, so each step is fast; ``verbose=n`` prints the
        first ``n`` merges.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if not text:
            raise ValueError("text must not be empty")
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 256:
            raise ValueError(f"vocab_size must be an int >= 256 (the bytes), got {vocab_size!r}")
        tok = cls([])
        # 1. pre-tokenize and count distinct words; each word becomes a list of byte ids
        word_counts = Counter(pretokenize(text))
        words = [list(tok._bytes_ids(w)) for w in word_counts]
        counts = list(word_counts.values())
        # 2. pair counts, and which words hold each pair
        pair_counts: Counter = Counter()
        where: dict[tuple[int, int], set[int]] = defaultdict(set)
        for wi, (w, n) in enumerate(zip(words, counts, strict=True)):
            for pair in pairwise(w):
                pair_counts[pair] += n
                where[pair].add(wi)
        # 3. the merge loop
        while len(tok.vocab) < vocab_size and pair_counts:
            best = max(pair_counts.items(), key=lambda kv: (kv[1], -kv[0][0], -kv[0][1]))
            pair, n_best = best
            if n_best <= 0:
                break
            new_id = tok._add_merge(*pair)
            if verbose and len(tok.merges) <= verbose:
                a, b = (tok.vocab[i].decode("utf-8", "replace") for i in pair)
                print(f"merge {len(tok.merges):>3}: {a!r} + {b!r} -> {a + b!r}  (count {n_best})")
            for wi in where.pop(pair):
                w, n = words[wi], counts[wi]
                for p in pairwise(w):  # forget the word's old pairs ...
                    pair_counts[p] -= n
                w = list(merge_pair(w, pair, new_id))
                words[wi] = w
                for p in pairwise(w):  # ... and count its new ones
                    pair_counts[p] += n
                    where[p].add(wi)
            pair_counts = +pair_counts  # drop pairs whose count fell to zero
        tok.ranks = {p: r for r, p in enumerate(tok.merges)}
        return tok

    # ------------------------------------------------------------------ encoding
    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def __len__(self) -> int:
        return len(self.vocab)

    def _bytes_ids(self, piece: str) -> tuple[int, ...]:
        return tuple(self._byte_id[b] for b in piece.encode("utf-8"))

    def _encode_piece(self, piece: str) -> tuple[int, ...]:
        ids = self._cache.get(piece)
        if ids is not None:
            return ids
        ids = self._bytes_ids(piece)
        while len(ids) > 1:  # apply the earliest-learned merge present, until none applies
            pair = min(pairwise(ids), key=lambda p: self.ranks.get(p, float("inf")))
            rank = self.ranks.get(pair)
            if rank is None:
                break
            ids = merge_pair(ids, pair, self.merge_ids[rank])
        if len(self._cache) < 200_000:
            self._cache[piece] = ids
        return ids

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text``: pre-tokenize, turn each piece into bytes, apply the merges in learned order."""
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        out: list[int] = []
        for piece in pretokenize(text):
            out.extend(self._encode_piece(piece))
        return out

    def decode(self, ids) -> str:
        """Text of ``ids``: concatenate the tokens' bytes and decode UTF-8 (invalid bytes become U+FFFD)."""
        return b"".join(self.vocab[i] for i in check_ids(ids, self.vocab_size)).decode("utf-8", errors="replace")

    def token_str(self, i: int) -> str:
        """Token ``i`` written as GPT-2 writes it in its vocabulary (``Ġ`` for a space, ``Ċ`` for a newline)."""
        b2u = bytes_to_unicode()
        return "".join(b2u[b] for b in self.vocab[i])

    def __repr__(self) -> str:
        return f"BPETokenizer(vocab_size={self.vocab_size}, merges={len(self.merges)})"

    # ------------------------------------------------------------------ Hugging Face format
    def to_tokenizers(self):
        """The same tokenizer as a ``tokenizers.Tokenizer`` (GPT-2's byte-level pipeline)."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

        vocab = {self.token_str(i): i for i in range(self.vocab_size)}
        merges = [(self.token_str(a), self.token_str(b)) for a, b in self.merges]
        tok = Tokenizer(models.BPE(vocab=vocab, merges=merges))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
        return tok

    def to_hf(self):
        """This tokenizer as a ``transformers.PreTrainedTokenizerFast``."""
        from transformers import PreTrainedTokenizerFast

        return PreTrainedTokenizerFast(tokenizer_object=self.to_tokenizers(), clean_up_tokenization_spaces=False)

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """Write ``tokenizer.json`` (+ config, loadable by ``AutoTokenizer``) and ``bpe_merges.json`` to ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.to_hf().save_pretrained(str(path))
        data = {"kind": "bpe", "merges": [list(p) for p in self.merges]}
        (path / "bpe_merges.json").write_text(json.dumps(data), encoding="utf-8")

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> BPETokenizer:
        """Read the ``bpe_merges.json`` that ``save_pretrained`` wrote."""
        f = Path(path) / "bpe_merges.json"
        if not f.exists():
            raise FileNotFoundError(f"{f} not found: this folder holds no BPE tokenizer")
        data = json.loads(f.read_text(encoding="utf-8"))
        if data.get("kind") != "bpe" or not isinstance(data.get("merges"), list):
            raise ValueError(f"{f} is not a BPE merges file (expected kind 'bpe' and a list of merges)")
        return cls([tuple(p) for p in data["merges"]])
