"""helpers.tokenizer: the character tokenizer, its Hugging Face format, and load_tokenizer's dispatch."""

import pytest
import torch
from transformers import AutoTokenizer

from helpers.bpe import BPETokenizer
from helpers.data import shakespeare
from helpers.tokenizer import CharTokenizer, load_tokenizer


@pytest.fixture(scope="module")
def char_tok():
    return CharTokenizer.from_text(shakespeare("all"))


def test_vocabulary_is_the_sorted_characters(char_tok):
    text = shakespeare("all")
    assert char_tok.chars == sorted(set(text))
    assert char_tok.vocab_size == len(char_tok) == len(set(text))
    assert char_tok.encode("A") == [char_tok.chars.index("A")]


def test_round_trip_exact_on_all_val_text(char_tok):
    val = shakespeare("val")
    ids = char_tok.encode(val)
    assert len(ids) == len(val)
    assert char_tok.decode(ids) == val
    assert char_tok.decode(torch.tensor(ids[:100])) == val[:100]  # tensors decode too


def test_unknown_character_is_a_clear_error(char_tok):
    with pytest.raises(ValueError, match=r"\['é', '世'\] are not in the vocabulary"):
        char_tok.encode("café 世")


def test_bad_inputs(char_tok):
    with pytest.raises(TypeError, match="encode expects a str"):
        char_tok.encode(["a"])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        char_tok.decode([0, char_tok.vocab_size])
    with pytest.raises(TypeError, match="decode expects a sequence of ints"):
        char_tok.decode(["x"])
    with pytest.raises(ValueError, match="at least one character"):
        CharTokenizer([])
    with pytest.raises(ValueError, match="single character"):
        CharTokenizer(["ab", "c"])
    with pytest.raises(ValueError, match="repeated"):
        CharTokenizer("aab")
    with pytest.raises(ValueError, match="non-empty str"):
        CharTokenizer.from_text("")


def test_saved_folder_loads_with_autotokenizer_and_ours(char_tok, tmp_path):
    char_tok.save_pretrained(tmp_path)
    hf = AutoTokenizer.from_pretrained(tmp_path)
    text = shakespeare("val")[:5000]
    assert hf(text)["input_ids"] == char_tok.encode(text)
    assert hf.decode(char_tok.encode(text)) == text
    ours = load_tokenizer(tmp_path)
    assert isinstance(ours, CharTokenizer) and ours.chars == char_tok.chars


def test_load_tokenizer_dispatches(tmp_path):
    bpe = BPETokenizer.train("to be or not to be " * 50, 260)
    bpe.save_pretrained(tmp_path / "bpe")
    got = load_tokenizer(tmp_path / "bpe")
    assert isinstance(got, BPETokenizer) and got.merges == bpe.merges
    with pytest.raises(FileNotFoundError, match="no course tokenizer"):
        load_tokenizer(tmp_path)
    with pytest.raises(FileNotFoundError, match="no character tokenizer"):
        CharTokenizer.from_pretrained(tmp_path / "bpe")
