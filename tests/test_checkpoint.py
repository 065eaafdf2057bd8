"""The course's own model, checkpoints/shakespeare-gpt: loadable by Hugging Face, equal to ours, good enough.

It stands in for GPT-2 whenever the hub cannot be reached, so it must load through the same code path.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from helpers.data import VAL_PLAYS, play_names, shakespeare
from helpers.model import GPT
from helpers.tokenizer import load_tokenizer
from helpers.train import evaluate_text

CKPT = Path(__file__).resolve().parents[1] / "checkpoints" / "shakespeare-gpt"


@pytest.fixture(scope="module")
def hf_pair():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(CKPT, use_safetensors=True).eval()
    tok = AutoTokenizer.from_pretrained(CKPT)
    return model, tok


def test_folder_is_small_and_complete():
    files = {p.name for p in CKPT.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "README.md"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pkl")) for name in files), "no pickles in the shipped model"
    size = sum(p.stat().st_size for p in CKPT.iterdir())
    assert size < 25_000_000, f"checkpoint folder is {size / 1e6:.1f} MB, over the 25 MB limit"


def test_hf_loads_and_matches_our_model(hf_pair):
    hf, hf_tok = hf_pair
    ours = GPT.from_pretrained(CKPT)
    tok = load_tokenizer(CKPT)
    text = "ROMEO:\nBut soft, what light through yonder window breaks?\n"
    ids = tok.encode(text)
    assert hf_tok(text)["input_ids"] == ids, "AutoTokenizer and the course tokenizer disagree"
    assert hf_tok.decode(ids) == text
    x = torch.tensor([ids])
    with torch.no_grad():
        diff = (hf(x).logits - ours(x).logits).abs().max().item()
    assert diff < 1e-4, f"our GPT and GPT2LMHeadModel differ by {diff:.2e} on the shipped weights"


def test_validation_bits_per_char_under_target():
    model = GPT.from_pretrained(CKPT)
    tok = load_tokenizer(CKPT)
    val = shakespeare("val")
    train = shakespeare("train")
    for play in VAL_PLAYS:  # the held-out plays really were held out
        assert play in play_names()
    assert val[1000:1200] not in train
    result = evaluate_text(model, tok, val, max_chars=12_000)  # the first 12,000 characters of the held-out plays
    assert result["tokens"] > 10_000
    assert result["bpc"] < 2.5, f"validation bits per character {result['bpc']:.3f}, expected < 2.5"


def test_model_card_states_the_numbers():
    card = (CKPT / "README.md").read_text(encoding="utf-8")
    for needed in ("bits per character", "python -m helpers.train", "validation", "VAL_PLAYS"):
        assert needed in card, f"the model card should mention {needed!r}"
