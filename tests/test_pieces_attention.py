"""The build thread's attention references (helpers.pieces.attention): the exercise interfaces, checked."""

import pytest
import torch
from torch.nn import functional as F

from helpers import pieces
from helpers.attention import scaled_dot_product_attention
from helpers.model import CausalSelfAttention, GPTConfig
from helpers.pieces import Head, MultiHeadAttention, merge_heads, split_heads


def cfg(**kw):
    base = dict(vocab_size=16, block_size=8, n_layer=1, n_head=4, n_embd=16, dropout=0.0, bias=True)
    return GPTConfig(**{**base, **kw})


def test_exported():
    for name in ("Head", "MultiHeadAttention", "split_heads", "merge_heads"):
        assert name in pieces.__all__


def test_head_is_causal_attention_of_its_projections():
    torch.manual_seed(0)
    h = Head(12, 4, block_size=8).eval()
    assert sorted(n for n, _ in h.named_parameters()) == ["key.weight", "query.weight", "value.weight"]
    x = torch.randn(3, 5, 12)
    out, w = h(x)
    assert out.shape == (3, 5, 4) and w.shape == (3, 5, 5)
    ref_out, ref_w = scaled_dot_product_attention(h.query(x), h.key(x), h.value(x), mask=torch.ones(5, 5).tril().bool())
    torch.testing.assert_close(out, ref_out)
    torch.testing.assert_close(w, ref_w)
    assert (w.triu(1) == 0).all()
    out1, w1 = h(x[:, :1])  # T = 1: the only key is itself
    assert torch.equal(w1, torch.ones(3, 1, 1))


def test_head_dropout_only_in_training():
    torch.manual_seed(0)
    h = Head(8, 4, block_size=6, dropout=0.5)
    x = torch.randn(2, 6, 8)
    h.eval()
    a, _ = h(x)
    b, _ = h(x)
    assert torch.equal(a, b)
    h.train()
    _, w = h(x)
    assert (w == 0).sum() > (torch.ones(6, 6).triu(1) == 1).sum() * 2  # more zeros than the mask alone


def test_mha_matches_the_models_attention_name_for_name():
    torch.manual_seed(0)
    mine, model = MultiHeadAttention(cfg()).eval(), CausalSelfAttention(cfg()).eval()
    assert mine.state_dict().keys() == model.state_dict().keys()
    model.load_state_dict(mine.state_dict())
    x = torch.randn(2, 7, 16)
    torch.testing.assert_close(mine(x), model(x)[0])


def test_mha_dropout_path_shape_and_causality():
    torch.manual_seed(0)
    m = MultiHeadAttention(cfg(dropout=0.3))
    x = torch.randn(2, 6, 16)
    m.train()
    y = m(x)
    assert y.shape == (2, 6, 16)
    m.attn_dropout.p = 0.0  # no attention dropout: the fused path; resid dropout off via eval
    m.eval()
    a = m(x)
    x2 = x.clone()
    x2[:, -1] += 1.0
    torch.testing.assert_close(m(x2)[:, :-1], a[:, :-1])


def test_split_merge_roundtrip():
    t = torch.randn(2, 5, 12)
    h = split_heads(t, 3)
    assert h.shape == (2, 3, 5, 4) and torch.equal(h[:, 1], t[..., 4:8])
    assert torch.equal(merge_heads(h), t)


def test_mha_fused_equals_explicit():
    torch.manual_seed(1)
    m = MultiHeadAttention(cfg(n_head=2)).eval()
    x = torch.randn(1, 5, 16)
    q, k, v = (split_heads(t, 2) for t in m.c_attn(x).split(16, dim=-1))
    y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(m(x), m.c_proj(merge_heads(y)))


def test_bad_inputs():
    with pytest.raises(ValueError, match="head_size must be a positive int"):
        Head(8, 0, 4)
    with pytest.raises(ValueError, match="dropout must be a float in"):
        Head(8, 4, 4, dropout=1.0)
    with pytest.raises(ValueError, match="more than its block_size=4"):
        Head(8, 4, 4)(torch.randn(1, 5, 8))
    with pytest.raises(ValueError, match=r"expects x of shape \[B, T, 8\]"):
        Head(8, 4, 4)(torch.randn(1, 3, 7))
    with pytest.raises(TypeError, match="expects a torch.Tensor"):
        MultiHeadAttention(cfg())([[1.0]])
    with pytest.raises(TypeError, match="needs a GPTConfig"):
        MultiHeadAttention({"n_embd": 16})
