"""helpers.encdec (the 2017 encoder–decoder Transformer) and helpers.attention.cross_attention against PyTorch's own:
torch.nn.Transformer (batch_first=True, post-LN and pre-LN) and nn.MultiheadAttention.

Tolerance: 1e-5 absolute in float32 on small random inputs, in eval mode (1e-10 in float64). Configurations:
a few written out (one, ``d_model=40, nhead=5, ...``, used nowhere else in the course) and more drawn at test
time from ``random.Random(seed)`` for each seed of ``SEEDS``, alternating ``norm_first``.
"""

import random
import warnings

import pytest
import torch
from torch import nn

from helpers.attention import MultiHeadAttention, cross_attention
from helpers.encdec import DecoderLayer, EncoderLayer, Transformer

ATOL = 1e-5

# (d_model, nhead, enc layers, dec layers, dim_feedforward, activation, norm_first, bias, eps, B, S, T)
CONFIGS = [
    (32, 4, 2, 2, 64, "relu", False, True, 1e-5, 2, 7, 5),
    (32, 4, 2, 2, 64, "relu", True, True, 1e-5, 2, 5, 7),
    (24, 3, 1, 3, 40, "gelu", False, True, 1e-5, 3, 9, 4),
    (24, 3, 3, 1, 40, "gelu", True, True, 1e-5, 3, 4, 9),
    (40, 5, 2, 3, 72, "gelu", True, False, 1e-6, 2, 11, 6),  # this one is used nowhere else
    (16, 1, 1, 1, 16, "relu", False, False, 1e-3, 1, 1, 3),
]
SEEDS = [3, 17, 101, 2024, 31337, 65537]


def random_config(seed: int, norm_first: bool) -> tuple:
    """A configuration drawn from ``seed`` (sizes, layers, activation, bias, eps, batch and lengths, S != T)."""
    r = random.Random(seed)
    nhead = r.choice([1, 2, 3, 4, 6, 8])
    d_model = nhead * r.choice([2, 4, 6, 8, 12])
    S = r.randint(1, 12)
    T = r.choice([t for t in range(1, 13) if t != S])
    return (d_model, nhead, r.randint(1, 3), r.randint(1, 3), r.randint(4, 96), r.choice(["relu", "gelu"]),
            norm_first, r.random() < 0.75, r.choice([1e-5, 1e-6, 1e-4]), r.randint(1, 4), S, T)


ALL_CONFIGS = CONFIGS + [random_config(s, i % 2 == 1) for i, s in enumerate(SEEDS)]
IDS = [f"C{c[0]}h{c[1]}e{c[2]}d{c[3]}ff{c[4]}-{c[5]}-{'pre' if c[6] else 'post'}LN-B{c[9]}S{c[10]}T{c[11]}"
       f"{'' if c[7] else '-nobias'}" for c in ALL_CONFIGS]


def build(cfg: tuple, seed: int = 0, dtype=torch.float32):
    """The torch model (eval mode, dropout 0.1 so that eval mode matters), ours, and inputs."""
    d, h, ne, nd, ff, act, nf, bias, eps, B, S, T = cfg
    torch.manual_seed(seed)
    with warnings.catch_warnings():  # "enable_nested_tensor is True, but ... norm_first was True"
        warnings.simplefilter("ignore")
        m = nn.Transformer(d, h, ne, nd, ff, dropout=0.1, activation=act, layer_norm_eps=eps, batch_first=True,
                           norm_first=nf, bias=bias, dtype=dtype).eval()
    with torch.no_grad():  # biases away from their zero start, so that copying them is tested too
        for p in m.parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn_like(p))
    g = torch.Generator().manual_seed(seed + 1)
    src = torch.randn(B, S, d, generator=g, dtype=dtype)
    tgt = torch.randn(B, T, d, generator=g, dtype=dtype)
    return m, Transformer.from_torch(m), src, tgt


def right_padding(B: int, L: int, g: torch.Generator) -> torch.Tensor:
    """Bool ``[B, L]``, True = padding: each row keeps a random number (>= 1) of real positions first."""
    lengths = torch.randint(1, L + 1, (B,), generator=g)
    lengths[0] = L  # one full row
    return torch.arange(L)[None, :] >= lengths[:, None]


def torch_out(m, src, tgt, **kw):
    T = tgt.shape[1]
    mask = nn.Transformer.generate_square_subsequent_mask(T, dtype=tgt.dtype)
    with warnings.catch_warnings():  # the nested-tensor path warns about the mask's deprecation
        warnings.simplefilter("ignore")
        return m(src, tgt, tgt_mask=mask, tgt_is_causal=True, **kw)


# ---------------------------------------------------------------- cross-attention


@pytest.mark.parametrize("E,H,Tq,Tk,bias", [(16, 4, 5, 9, True), (24, 3, 8, 2, False), (12, 1, 1, 6, True)])
def test_cross_attention_matches_multihead_attention(E, H, Tq, Tk, bias):
    torch.manual_seed(E + Tq)
    mha = nn.MultiheadAttention(E, H, bias=bias, batch_first=True).eval()
    if bias:
        with torch.no_grad():
            mha.in_proj_bias.normal_()
            mha.out_proj.bias.normal_()
    B = 3
    g = torch.Generator().manual_seed(7)
    xq, xkv = torch.randn(B, Tq, E, generator=g), torch.randn(B, Tk, E, generator=g)
    kpm = right_padding(B, Tk, g)
    w_q, w_k, w_v = mha.in_proj_weight.chunk(3)
    b_q, b_k, b_v = mha.in_proj_bias.chunk(3) if bias else (None, None, None)
    weights = dict(b_q=b_q, b_k=b_k, b_v=b_v, b_o=mha.out_proj.bias)
    with torch.no_grad():
        for pad in (None, kpm):
            ref, ref_w = mha(xq, xkv, xkv, key_padding_mask=pad, average_attn_weights=False)
            out, w = cross_attention(xq, xkv, w_q, w_k, w_v, mha.out_proj.weight, H, **weights,
                                     key_padding_mask=pad, need_weights=True)
            assert out.shape == (B, Tq, E) and w.shape == (B, H, Tq, Tk)
            torch.testing.assert_close(out, ref, atol=ATOL, rtol=0)
            torch.testing.assert_close(w, ref_w, atol=ATOL, rtol=0)
        # an attention mask (ours: True = may attend; torch's bool attn_mask: True = may NOT attend)
        allowed = torch.rand(Tq, Tk, generator=g) < 0.6
        allowed[:, 0] = True
        ref, _ = mha(xq, xkv, xkv, attn_mask=~allowed, key_padding_mask=kpm)
        out = cross_attention(xq, xkv, w_q, w_k, w_v, mha.out_proj.weight, H, **weights, key_padding_mask=kpm,
                              mask=allowed)
        torch.testing.assert_close(out, ref, atol=ATOL, rtol=0)


def test_cross_attention_other_key_value_width():
    """``nn.MultiheadAttention(kdim=vdim=Ckv)``: queries C wide, keys and values Ckv wide."""
    torch.manual_seed(1)
    E, H, Ckv = 16, 2, 10
    mha = nn.MultiheadAttention(E, H, kdim=Ckv, vdim=Ckv, batch_first=True).eval()
    xq, xkv = torch.randn(2, 4, E), torch.randn(2, 7, Ckv)
    b_q, b_k, b_v = mha.in_proj_bias.chunk(3)
    with torch.no_grad():
        ref, _ = mha(xq, xkv, xkv)
        out = cross_attention(xq, xkv, mha.q_proj_weight, mha.k_proj_weight, mha.v_proj_weight,
                              mha.out_proj.weight, H, b_q=b_q, b_k=b_k, b_v=b_v, b_o=mha.out_proj.bias)
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=0)


def test_cross_attention_errors():
    E, H = 8, 2
    xq, xkv = torch.randn(2, 3, E), torch.randn(2, 5, E)
    w = [torch.randn(E, E) for _ in range(4)]
    with pytest.raises(TypeError, match="x_q must be a torch.Tensor"):
        cross_attention(xq.tolist(), xkv, *w, H)
    with pytest.raises(ValueError, match=r"x_kv must have shape \[B, T, C\], got \(5, 8\)"):
        cross_attention(xq, xkv[0], *w, H)
    with pytest.raises(ValueError, match="same batch size"):
        cross_attention(xq, xkv[:1], *w, H)
    with pytest.raises(TypeError, match="share one dtype"):
        cross_attention(xq, xkv.double(), *w, H)
    with pytest.raises(ValueError, match=r"w_k must have shape \(8, 8\).*got \(8, 6\)"):
        cross_attention(xq, xkv, w[0], w[1][:, :6], w[2], w[3], H)
    with pytest.raises(ValueError, match="divisible by n_head=3"):
        cross_attention(xq, xkv, *w, 3)
    with pytest.raises(ValueError, match=r"b_v must have shape \(8,\)"):
        cross_attention(xq, xkv, *w, H, b_v=torch.zeros(7))
    with pytest.raises(TypeError, match="key_padding_mask must be a bool tensor"):
        cross_attention(xq, xkv, *w, H, key_padding_mask=torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"key_padding_mask must have shape \[B, Tk\] = \(2, 5\)"):
        cross_attention(xq, xkv, *w, H, key_padding_mask=torch.zeros(2, 3, dtype=torch.bool))
    all_pad = torch.zeros(2, 5, dtype=torch.bool)
    all_pad[1] = True
    with pytest.raises(ValueError, match="every key masked"):
        cross_attention(xq, xkv, *w, H, key_padding_mask=all_pad)
    with pytest.raises(ValueError, match="does not broadcast"):
        cross_attention(xq, xkv, *w, H, mask=torch.ones(3, 4, dtype=torch.bool))


# ---------------------------------------------------------------- the whole model against nn.Transformer


@pytest.mark.parametrize("cfg", ALL_CONFIGS, ids=IDS)
def test_from_torch_matches_nn_transformer(cfg):
    m, ours, src, tgt = build(cfg, seed=cfg[0] + cfg[11])
    B, S, T = cfg[9:]
    assert not ours.training and ours.norm_first == cfg[6]
    with torch.no_grad():
        ref, out = torch_out(m, src, tgt), ours(src, tgt)
    assert out.shape == (B, T, cfg[0])
    diff = (out - ref).abs().max().item()
    assert diff <= ATOL, f"max |ours - torch| = {diff:.2e}"

    # with padding masks: the source's both in the encoder and for the decoder's memory (torch's post-LN
    # encoder then runs its nested-tensor path); the target right-padded, so every causal row keeps a key
    g = torch.Generator().manual_seed(cfg[10])
    spm, tpm = right_padding(B, S, g), right_padding(B, T, g)
    with torch.no_grad():
        ref = torch_out(m, src, tgt, src_key_padding_mask=spm, tgt_key_padding_mask=tpm, memory_key_padding_mask=spm)
        out = ours(src, tgt, src_key_padding_mask=spm, tgt_key_padding_mask=tpm, memory_key_padding_mask=spm)
    diff = (out - ref).abs().max().item()
    assert diff <= ATOL, f"with padding masks: max |ours - torch| = {diff:.2e}"


@pytest.mark.parametrize("norm_first", [False, True])
def test_encode_decode_and_gradients_match(norm_first):
    """``encode``/``decode`` = ``m.encoder``/``m.decoder``; with autograd on (torch's slow path), in train mode
    with dropout 0, the outputs and every weight's gradient match too."""
    cfg = (24, 4, 2, 2, 36, "gelu", norm_first, True, 1e-5, 2, 6, 4)
    m, ours, src, tgt = build(cfg, seed=5)
    with torch.no_grad():
        mem = ours.encode(src)
        torch.testing.assert_close(mem, m.encoder(src), atol=ATOL, rtol=0)
        causal = nn.Transformer.generate_square_subsequent_mask(tgt.shape[1])
        torch.testing.assert_close(ours.decode(tgt, mem), m.decoder(tgt, mem, tgt_mask=causal, tgt_is_causal=True),
                                   atol=ATOL, rtol=0)
    for d in [*m.modules(), *ours.modules()]:  # no dropout anywhere (attention keeps its p as a float)
        if isinstance(d, nn.Dropout):
            d.p = 0.0
        elif isinstance(d, (nn.MultiheadAttention, MultiHeadAttention)):
            d.dropout = 0.0
    m.train(), ours.train()
    ref, out = torch_out(m, src, tgt), ours(src, tgt)
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=0)
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(0))
    (ref * w).sum().backward()
    (out * w).sum().backward()
    ours_grads = dict(ours.named_parameters())
    for name, p in m.named_parameters():
        prefix, _, leaf = name.rpartition(".")
        if leaf.startswith("in_proj_"):
            kind = leaf.rpartition("_")[2]
            g = torch.cat([ours_grads[f"{prefix}.{x}_proj.{kind}"].grad for x in "qkv"])
        else:
            g = ours_grads[name].grad
        torch.testing.assert_close(g, p.grad, atol=1e-4, rtol=1e-4, msg=f"gradient of {name}")


def test_float64_and_state():
    cfg = (16, 2, 1, 2, 24, "relu", False, True, 1e-5, 2, 5, 3)
    m, ours, src, tgt = build(cfg, seed=9, dtype=torch.float64)
    assert next(ours.parameters()).dtype == torch.float64
    with torch.no_grad():
        torch.testing.assert_close(ours(src, tgt), torch_out(m, src, tgt), atol=1e-10, rtol=0)
    # a copy, not a view: changing ours leaves m alone
    with torch.no_grad():
        ours.encoder.layers[0].self_attn.q_proj.weight.zero_()
    assert m.encoder.layers[0].self_attn.in_proj_weight.abs().sum() > 0
    n_ours = sum(p.numel() for p in ours.parameters())
    assert n_ours == sum(p.numel() for p in m.parameters())


def test_decoder_is_causal():
    """Output position t does not change when target positions after t change; it does when t' <= t does."""
    cfg = (32, 4, 2, 2, 48, "relu", False, True, 1e-5, 2, 6, 8)
    _, ours, src, tgt = build(cfg, seed=11)
    with torch.no_grad():
        base = ours(src, tgt)
        for t in (0, 3, 6):
            changed = tgt.clone()
            changed[:, t + 1:] = torch.randn_like(changed[:, t + 1:])
            out = ours(src, changed)
            torch.testing.assert_close(out[:, : t + 1], base[:, : t + 1], atol=1e-6, rtol=0)
            assert (out[:, t + 1:] - base[:, t + 1:]).abs().max() > 1e-3
        changed = tgt.clone()
        changed[:, 3] += 1.0
        assert (ours(src, changed)[:, 3:] - base[:, 3:]).abs().amin(dim=-1).min() > 0


def test_train_mode_dropout():
    cfg = (16, 2, 1, 1, 32, "relu", True, True, 1e-5, 2, 4, 4)
    m, ours, src, tgt = build(cfg, seed=2)
    assert ours.dropout == 0.1 and ours.encoder.layers[0].self_attn.dropout == 0.1
    ours.train()
    with torch.no_grad():
        a, b = ours(src, tgt), ours(src, tgt)
        assert not torch.allclose(a, b)
        ours.eval()
        torch.testing.assert_close(ours(src, tgt), ours(src, tgt), atol=0, rtol=0)
    m.train()
    assert Transformer.from_torch(m).training


def test_fresh_model_and_layers():
    model = Transformer(16, 4, 2, 1, 32, activation="gelu", norm_first=True)
    src, tgt = torch.randn(2, 5, 16), torch.randn(2, 3, 16)
    assert model(src, tgt).shape == (2, 3, 16)
    assert len(model.encoder.layers) == 2 and len(model.decoder.layers) == 1
    enc, dec = EncoderLayer(16, 2, 24), DecoderLayer(16, 2, 24, activation=torch.tanh)
    assert enc(src).shape == src.shape and dec(tgt, src).shape == tgt.shape


# ---------------------------------------------------------------- errors


def test_errors():
    model = Transformer(16, 4, 1, 1, 32)
    src, tgt = torch.randn(2, 5, 16), torch.randn(2, 3, 16)
    with pytest.raises(ValueError, match=r"src must have shape \[B, L, d_model=16\].*got \(2, 5, 12\)"):
        model(torch.randn(2, 5, 12), tgt)
    with pytest.raises(ValueError, match=r"tgt must have shape.*got \(3, 16\)"):
        model(src, tgt[0])
    with pytest.raises(ValueError, match="same batch size"):
        model(src, tgt[:1])
    with pytest.raises(TypeError, match="src has dtype torch.float64, the model's weights torch.float32"):
        model(src.double(), tgt)
    with pytest.raises(TypeError, match="src must be a torch.Tensor"):
        model(src.tolist(), tgt)
    with pytest.raises(TypeError, match="src_key_padding_mask must be a bool tensor"):
        model(src, tgt, src_key_padding_mask=torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"tgt_key_padding_mask must have shape \[B, L\] = \(2, 3\)"):
        model(src, tgt, tgt_key_padding_mask=torch.zeros(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="d_model must be divisible by nhead"):
        Transformer(16, 3)
    with pytest.raises(ValueError, match="activation must be one of"):
        Transformer(16, 4, activation="swish")
    with pytest.raises(ValueError, match="num_decoder_layers must be a positive int"):
        Transformer(16, 4, 1, 0)
    with pytest.raises(ValueError, match="dropout must be a float in"):
        Transformer(16, 4, dropout=1.0)
    with pytest.raises(TypeError, match="norm_first must be a bool"):
        Transformer(16, 4, norm_first=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seq_first = nn.Transformer(16, 4, 1, 1, 32)
        ok = nn.Transformer(16, 4, 1, 1, 32, batch_first=True)
    with pytest.raises(ValueError, match="batch_first=True"):
        Transformer.from_torch(seq_first)
    with pytest.raises(TypeError, match="must be a torch.nn.Transformer, got TransformerEncoder"):
        Transformer.from_torch(ok.encoder)
    ok.decoder.layers[0].linear1 = nn.Linear(16, 8)  # one layer altered: refused, not half-copied
    with pytest.raises(ValueError, match="layer 1 differs"):
        Transformer.from_torch(ok)
