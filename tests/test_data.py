"""helpers.data: the Shakespeare corpus (clean, split by whole plays, cached) and get_batch."""

import re
import time

import pytest
import torch

from helpers import data
from helpers.data import VAL_PLAYS, clean_markdown, get_batch, play_names, play_text, shakespeare

# One famous line of each validation play, typed from the plays themselves (an independent reference).
DISTINCTIVE = {
    "twelfth-night": "If music be the food of love, play on;",
    "richard-ii": "This royal throne of kings, this scepter'd isle,",
    "julius-caesar": "Friends, Romans, countrymen, lend me your ears;",
}


def test_splits_are_plain_text_without_markdown():
    for split in ("train", "val"):
        text = shakespeare(split)
        assert len(text) > 100_000
        for ch in "#*_[]\\":
            assert ch not in text, f"{ch!r} left in the {split} split"
        assert text.isascii()
        assert re.search(r"^[A-Z][A-Z ,'.-]+:$", text, re.M), "no NAME: lines"


def test_val_plays_are_held_out():
    assert set(DISTINCTIVE) == set(VAL_PLAYS)
    train, val = shakespeare("train"), shakespeare("val")
    for play, line in DISTINCTIVE.items():
        assert line in play_text(play)
        assert line in val
        assert line not in train, f"{play} leaked into train"
    assert len(val) / (len(val) + len(train)) == pytest.approx(0.075, abs=0.03)
    assert shakespeare("all") == "\n".join(play_text(n) for n in play_names())


def test_every_play_and_its_speeches_are_present():
    names = play_names()
    assert len(names) == 38
    train, val = shakespeare("train"), shakespeare("val")
    speaker = re.compile(r"^\*\*.+\*\*\s*$", re.M)
    for name in names:
        text = play_text(name)
        assert text in (val if name in VAL_PLAYS else train)
        md = data._play_files()[name].read_text(encoding="utf-8")
        n_md = len(speaker.findall(md))
        n_txt = len(text.strip().split("\n\n"))
        # a speech made only of a stage direction is dropped; everything else stays
        assert 0.97 * n_md <= n_txt <= n_md, f"{name}: {n_txt} speeches of {n_md}"


def test_clean_markdown_small_example():
    md = (
        "# A Play\n\n## ACT I\n\n_Enter HAMLET_\n\n**HAMLET**  \nTo be, or not to be: that is _the_ question:  \n"
        "[_Aside._] Whether 'tis nobler\n\n_Exit_\n\n**FIRST LORD**  \n_[Within.]_\n"
    )
    assert clean_markdown(md) == "HAMLET:\nTo be, or not to be: that is the question:\nWhether 'tis nobler\n"
    with pytest.raises(TypeError, match="md must be a str"):
        clean_markdown(b"bytes")


def test_cache_file_is_written_and_read(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path))
    shakespeare.cache_clear()
    try:
        first = shakespeare("val")
        files = list(tmp_path.glob("shakespeare-val-*.txt"))
        assert len(files) == 1 and files[0].read_text(encoding="utf-8") == first
        t = time.perf_counter()
        assert shakespeare("val") is first  # same process: the very same string, at once
        assert time.perf_counter() - t < 0.01
        files[0].write_text("FROM THE CACHE:\nyes\n", encoding="utf-8")  # prove a new process reads the file
        shakespeare.cache_clear()
        assert shakespeare("val") == "FROM THE CACHE:\nyes\n"
    finally:
        shakespeare.cache_clear()


def test_bad_inputs():
    with pytest.raises(ValueError, match="split must be"):
        shakespeare("test")
    with pytest.raises(ValueError, match="unknown play"):
        play_text("hamlet-2")


def test_get_batch_shapes_and_shift():
    ids = torch.arange(1000, dtype=torch.int16)
    g = torch.Generator().manual_seed(0)
    x, y = get_batch(ids, 4, 16, generator=g)
    assert x.shape == y.shape == (4, 16) and x.dtype == y.dtype == torch.long
    assert torch.equal(y[:, :-1], x[:, 1:])  # the targets are the inputs shifted by one
    assert torch.equal(y, x + 1)  # with ids = positions, the next token is the next position
    x2, _ = get_batch(ids, 4, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(x, x2)  # same seed, same batch
    x3, y3 = get_batch(torch.arange(17), 50, 16)  # exactly block_size + 1 tokens: one window
    assert torch.equal(x3, torch.arange(16).expand(50, 16)) and torch.equal(y3, x3 + 1)


def test_get_batch_bad_inputs():
    ids = torch.arange(100)
    with pytest.raises(ValueError, match="1-D tensor"):
        get_batch(ids.view(10, 10), 2, 4)
    with pytest.raises(ValueError, match="1-D tensor"):
        get_batch(list(range(100)), 2, 4)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        get_batch(ids, 0, 4)
    with pytest.raises(ValueError, match="block_size must be a positive int"):
        get_batch(ids, 2, 4.0)
    with pytest.raises(ValueError, match="fewer than block_size"):
        get_batch(ids, 2, 100)
