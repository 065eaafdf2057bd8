"""Tokenizers: text to integer ids and back.

``CharTokenizer`` maps each character to an id: the simplest tokenizer, and the one the course's Shakespeare
model uses (its loss then reads directly as bits per character). It saves itself in Hugging Face's format
(``tokenizer.json`` and friends), so ``AutoTokenizer.from_pretrained`` loads it next to the model.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["CharTokenizer", "load_tokenizer", "check_ids"]


def check_ids(ids, vocab_size: int) -> list[int]:
    """``ids`` (a list, tuple or tensor of ints) as a list, each checked to lie in ``[0, vocab_size)``."""
    try:
        ids = [int(i) for i in (ids.tolist() if hasattr(ids, "tolist") else ids)]
    except (TypeError, ValueError) as e:
        raise TypeError(f"decode expects a sequence of ints, got {type(ids).__name__}") from e
    bad = [i for i in ids if not 0 <= i < vocab_size]
    if bad:
        raise ValueError(f"ids {bad[:5]} are outside the vocabulary [0, {vocab_size - 1}]")
    return ids


class CharTokenizer:
    """One id per character; the vocabulary is the sorted set of characters of the text it was built from.

    ``encode(text) -> list[int]``, ``decode(ids) -> str``; round trips are exact. A character outside the
    vocabulary is a ``ValueError`` naming it (there is no silent "unknown" token).
    """

    kind = "char"

    def __init__(self, chars: list[str] | str) -> None:
        chars = list(chars)
        if not chars:
            raise ValueError("CharTokenizer needs at least one character")
        bad = [c for c in chars if not isinstance(c, str) or len(c) != 1]
        if bad:
            raise ValueError(f"every vocabulary entry must be a single character, got {bad[:5]}")
        if len(set(chars)) != len(chars):
            raise ValueError("the vocabulary has repeated characters")
        self.chars = chars
        self.stoi = {c: i for i, c in enumerate(chars)}

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        """Build the vocabulary from every character that occurs in ``text``."""
        if not isinstance(text, str) or not text:
            raise ValueError(f"text must be a non-empty str, got {type(text).__name__} of length {len(text or '')}")
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}")
        try:
            return [self.stoi[c] for c in text]
        except KeyError as e:
            unknown = sorted({c for c in text if c not in self.stoi})
            raise ValueError(
                f"character(s) {unknown[:10]} are not in the vocabulary of {self.vocab_size} characters"
            ) from e

    def decode(self, ids) -> str:
        return "".join(self.chars[i] for i in check_ids(ids, self.vocab_size))

    def __repr__(self) -> str:
        return f"CharTokenizer(vocab_size={self.vocab_size})"

    # ------------------------------------------------------------------ Hugging Face format
    def to_hf(self):
        """This tokenizer as a ``transformers.PreTrainedTokenizerFast`` (a BPE model with no merges)."""
        from tokenizers import Tokenizer, decoders, models
        from transformers import PreTrainedTokenizerFast

        tok = Tokenizer(models.BPE(vocab=dict(self.stoi), merges=[], ignore_merges=True))
        tok.decoder = decoders.Fuse()
        return PreTrainedTokenizerFast(tokenizer_object=tok, clean_up_tokenization_spaces=False)

    def save_pretrained(self, path: str | os.PathLike) -> None:
        """Write ``tokenizer.json`` (loadable by ``AutoTokenizer``) and ``vocab_chars.json`` (our own reader)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.to_hf().save_pretrained(str(path))
        (path / "vocab_chars.json").write_text(json.dumps({"kind": "char", "chars": self.chars}), encoding="utf-8")

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> CharTokenizer:
        f = Path(path) / "vocab_chars.json"
        if not f.exists():
            raise FileNotFoundError(f"{f} not found: this folder holds no character tokenizer")
        return cls(json.loads(f.read_text(encoding="utf-8"))["chars"])


def load_tokenizer(path: str | os.PathLike):
    """The course tokenizer saved in ``path`` (character or BPE), as our own object."""
    path = Path(path)
    if (path / "vocab_chars.json").exists():
        return CharTokenizer.from_pretrained(path)
    if (path / "bpe_merges.json").exists():
        from .bpe import BPETokenizer

        return BPETokenizer.from_pretrained(path)
    raise FileNotFoundError(f"no course tokenizer in {path} (expected vocab_chars.json or bpe_merges.json)")
