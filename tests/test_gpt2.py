"""helpers.gpt2.load: a local folder loads as itself; no hub means one line and the course's model instead."""

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from helpers import gpt2
from helpers.model import GPT
from helpers.tokenizer import CharTokenizer


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A tiny random GPT-2 and a character tokenizer, saved as a Hugging Face folder."""
    path = tmp_path_factory.mktemp("tiny-gpt2")
    tok = CharTokenizer.from_text("abcdefghijklmnopqrstuvwxyz ,.!?\n")
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=tok.vocab_size, n_positions=32, n_embd=16, n_layer=2, n_head=2)
    hf = GPT2LMHeadModel(cfg).eval()
    hf.save_pretrained(path)
    tok.save_pretrained(path)
    return path, hf


def test_local_folder_is_loaded_not_a_fallback(tiny_dir, monkeypatch, capsys):
    path, ref = tiny_dir
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # a folder needs no hub
    model, tok, info = gpt2.load(path, fallback=None)
    assert info == gpt2.GPT2Info(name=str(path), is_fallback=False, reason=None)
    assert capsys.readouterr().out == ""
    ids = torch.tensor([tok.encode("hello world")])
    torch.testing.assert_close(model(ids).logits, ref(ids).logits, rtol=1e-6, atol=1e-6)
    assert tok.decode(ids[0]) == "hello world"
    # and it goes into our own GPT with the same numbers
    torch.testing.assert_close(GPT.from_hf(model).eval()(ids).logits, ref(ids).logits, rtol=1e-5, atol=1e-5)


def test_offline_falls_back_with_one_line(tiny_dir, monkeypatch, capsys):
    path, _ = tiny_dir
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tok, info = gpt2.load("gpt2", fallback=path)
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and "HF_HUB_OFFLINE" in out and "course's own model" in out
    assert info.is_fallback and info.name == str(path) and "HF_HUB_OFFLINE" in info.reason
    assert model.config.n_layer == 2 and tok.decode(tok.encode("abc")) == "abc"


def test_connection_error_falls_back(tiny_dir, monkeypatch, capsys):
    path, _ = tiny_dir
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    real = gpt2._load_pair

    def no_network(name):
        if name == "gpt2":
            raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")
        return real(name)

    monkeypatch.setattr(gpt2, "_load_pair", no_network)
    _, _, info = gpt2.load("gpt2", fallback=path)
    assert info.is_fallback and "OSError" in info.reason
    assert capsys.readouterr().out.count("\n") == 1


def test_default_fallback_is_the_course_checkpoint(monkeypatch):
    ckpt = gpt2.REPO_ROOT / gpt2.DEFAULT_FALLBACK
    if not (ckpt / "config.json").exists():
        pytest.skip("the course checkpoint has not been trained yet")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tok, info = gpt2.load()
    assert info.is_fallback and info.name == gpt2.DEFAULT_FALLBACK
    assert model.config.model_type == "gpt2" and len(tok.encode("To be")) == 5


def test_bad_inputs(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(TypeError, match="name"):
        gpt2.load(3)
    with pytest.raises(TypeError, match="fallback"):
        gpt2.load("gpt2", fallback=3)
    with pytest.raises(FileNotFoundError, match="holds no model"):
        gpt2.load("gpt2", fallback=tmp_path / "nothing")
    with pytest.raises(OSError, match="no fallback"):
        gpt2.load("gpt2", fallback=None)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        gpt2.load("./no/such/folder")
