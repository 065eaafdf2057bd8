"""helpers.ablation: the progression's stages are what they say, and a short run trains each on the same data."""

from __future__ import annotations

import math

import pytest
import torch

from helpers.ablation import STAGES, Progression, run_progression


def test_each_stage_has_its_parts():
    parts = {s: {type(m).__name__ for m in Progression(s, vocab_size=7, block_size=8, n_embd=16).modules()}
             for s in STAGES}
    assert "Head" not in parts["bigram"] and "Embedding" in parts["bigram"]
    assert "Head" in parts["head"] and "MultiHeadAttention" not in parts["head"]
    assert "MultiHeadAttention" in parts["multi-head"] and "MLP" not in parts["multi-head"]
    assert "MLP" in parts["mlp"] and "LayerNorm" not in parts["mlp"]
    assert "Block" in parts["residual-ln"] and "LayerNorm" in parts["residual-ln"]
    drop = Progression("dropout", vocab_size=7, block_size=8, n_embd=16, dropout=0.3)
    assert drop.drop.p == 0.3 and Progression("residual-ln", vocab_size=7, block_size=8, n_embd=16).drop.p == 0.0


def test_forward_is_causal_and_returns_logits_and_loss():
    for stage in STAGES:
        torch.manual_seed(0)
        m = Progression(stage, vocab_size=7, block_size=8, n_embd=16).eval()
        idx = torch.randint(0, 7, (2, 8))
        logits, loss = m(idx, idx)
        assert logits.shape == (2, 8, 7) and loss.dim() == 0
        changed = idx.clone()
        changed[:, -1] = (changed[:, -1] + 1) % 7
        assert torch.allclose(m(changed)[0][:, :-1], logits[:, :-1], atol=1e-6), stage  # no peeking ahead
        assert m(idx)[1] is None


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="stage"):
        Progression("transformer", vocab_size=7)
    with pytest.raises(ValueError, match="divisible"):
        Progression("mlp", vocab_size=7, n_embd=10, n_head=4)
    with pytest.raises(ValueError, match="unknown stages"):
        run_progression(torch.arange(100) % 7, torch.arange(100) % 7, 7, stages=["nope"])


def test_a_short_run_learns_and_reports_each_stage():
    data = torch.tensor([0, 1, 2, 3, 4, 5, 6] * 60)  # a cycle: the next character follows from the current
    rows = run_progression(data, data, vocab_size=7, steps=40, batch_size=8, block_size=8, n_embd=16, n_layer=1,
                           lr=0.1, eval_iters=2, stages=("bigram", "residual-ln"))
    assert [r["stage"] for r in rows] == ["bigram", "residual-ln"]
    for r in rows:
        assert r["val_loss"] < math.log(7) and r["val_bpc"] == pytest.approx(r["val_loss"] / math.log(2))
        assert r["params"] > 0 and r["seconds"] >= 0
