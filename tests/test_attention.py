"""helpers.attention against PyTorch's own: F.scaled_dot_product_attention and nn.MultiheadAttention.

Tolerance: 1e-5 absolute in float32 on small random inputs (float64 where stated).
"""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from helpers.attention import MultiHeadAttention, causal_mask, scaled_dot_product_attention, softmax

ATOL = 1e-5


def random_mask(shape, generator, p_keep=0.6):
    """A random bool mask (True = may attend) with at least one True in every row."""
    m = torch.rand(shape, generator=generator) < p_keep
    first = torch.zeros(shape, dtype=torch.bool)
    idx = torch.randint(0, shape[-1], shape[:-1] + (1,), generator=generator)
    first.scatter_(-1, idx, True)
    return m | first


# ---------------------------------------------------------------- softmax


@pytest.mark.parametrize("shape,dim", [((5,), -1), ((3, 7), -1), ((3, 7), 0), ((2, 3, 4), 1)])
def test_softmax_matches_torch(shape, dim):
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(softmax(x, dim=dim), torch.softmax(x, dim=dim), atol=ATOL, rtol=1e-5)


def test_softmax_stable_at_large_inputs():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 10, generator=g) * 1e4  # exp(1e4) overflows float32 and float64 alike
    naive = torch.exp(x) / torch.exp(x).sum(-1, keepdim=True)
    assert not torch.isfinite(naive).all()  # the naive formula breaks here ...
    out = softmax(x)
    assert torch.isfinite(out).all()  # ... ours does not
    torch.testing.assert_close(out, torch.softmax(x, dim=-1), atol=ATOL, rtol=1e-5)
    torch.testing.assert_close(softmax(-x), torch.softmax(-x, dim=-1), atol=ATOL, rtol=1e-5)


def test_softmax_minus_inf_gets_zero():
    x = torch.tensor([[0.0, float("-inf"), 1.0]])
    torch.testing.assert_close(softmax(x), torch.softmax(x, dim=-1))
    assert softmax(x)[0, 1].item() == 0.0


def test_softmax_bad_inputs():
    with pytest.raises(TypeError, match="torch.Tensor"):
        softmax([1.0, 2.0])
    with pytest.raises(TypeError, match="floating-point"):
        softmax(torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="0-d"):
        softmax(torch.tensor(1.0))
    with pytest.raises(ValueError, match="out of range"):
        softmax(torch.zeros(2, 3), dim=2)
    with pytest.raises(TypeError, match="dim must be an int"):
        softmax(torch.zeros(2, 3), dim=1.0)
    with pytest.raises(ValueError, match="every entry is -inf"):
        softmax(torch.tensor([[0.0, 1.0], [float("-inf"), float("-inf")]]))
    with pytest.raises(ValueError, match=r"\+inf"):
        softmax(torch.tensor([0.0, float("inf")]))
    with pytest.raises(ValueError, match="at least one entry"):
        softmax(torch.zeros(2, 0))


# ---------------------------------------------------------------- causal_mask


@pytest.mark.parametrize("T", [1, 2, 5])
def test_causal_mask(T):
    m = causal_mask(T)
    assert m.dtype == torch.bool and m.shape == (T, T)
    for i in range(T):
        for j in range(T):
            assert m[i, j].item() == (j <= i)


def test_causal_mask_bad_inputs():
    with pytest.raises(TypeError, match="T must be an int, got float"):
        causal_mask(3.0)
    with pytest.raises(TypeError, match="got bool"):
        causal_mask(True)
    with pytest.raises(ValueError, match="at least 1, got 0"):
        causal_mask(0)


# ---------------------------------------------------------------- scaled_dot_product_attention

SDPA_SHAPES = [
    # (q shape, k shape, v shape, mask shape or None)
    ((3, 4), (3, 4), (3, 4), None),  # one unbatched sequence
    ((2, 5, 8), (2, 5, 8), (2, 5, 8), (2, 5, 5)),  # batched self-attention
    ((2, 3, 6, 16), (2, 3, 6, 16), (2, 3, 6, 16), (6, 6)),  # heads, a [T, T] mask broadcast
    ((2, 3, 4, 8), (2, 3, 7, 8), (2, 3, 7, 5), (2, 1, 1, 7)),  # cross-attention, padding mask, Dv != D
    ((1, 2, 1, 8), (1, 2, 9, 8), (1, 2, 9, 8), (2, 1, 9)),  # one query, mask broadcast over batch
]


@pytest.mark.parametrize("qs,ks,vs,ms", SDPA_SHAPES)
def test_sdpa_matches_torch(qs, ks, vs, ms):
    g = torch.Generator().manual_seed(sum(qs) + sum(ks))
    q, k, v = (torch.randn(s, generator=g) for s in (qs, ks, vs))
    mask = None if ms is None else random_mask(ms, g)
    out, weights = scaled_dot_product_attention(q, k, v, mask=mask)
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    torch.testing.assert_close(out, ref, atol=ATOL, rtol=1e-5)
    # the weights: rows sum to 1, zero where masked, and they reproduce the output
    assert weights.shape == torch.broadcast_shapes(qs[:-2], ks[:-2]) + (qs[-2], ks[-2])
    torch.testing.assert_close(weights.sum(-1), torch.ones(weights.shape[:-1]), atol=ATOL, rtol=0)
    if mask is not None:
        assert (weights.masked_select(~mask.expand_as(weights)) == 0).all()
    torch.testing.assert_close(weights @ v, out)


def test_sdpa_causal_matches_is_causal():
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 4, 6, 8, generator=g, dtype=torch.float64) for _ in range(3))
    out, w = scaled_dot_product_attention(q, k, v, mask=causal_mask(6))
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=1e-12)
    assert (w.triu(diagonal=1) == 0).all()
    torch.testing.assert_close(w[..., 0, 0], torch.ones(2, 4, dtype=torch.float64))  # the first token sees itself


def test_sdpa_dropout_keeps_expectation_shape():
    g = torch.Generator().manual_seed(4)
    q, k, v = (torch.randn(2, 5, 8, generator=g) for _ in range(3))
    torch.manual_seed(0)
    out, w = scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    assert out.shape == (2, 5, 8) and w.shape == (2, 5, 5)
    assert (w == 0).any()  # some weights were dropped ...
    torch.testing.assert_close(w @ v, out)  # ... and the output uses the dropped weights


def test_sdpa_gradients_flow():
    g = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(3, 4, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    assert torch.autograd.gradcheck(lambda a, b, c: scaled_dot_product_attention(a, b, c)[0], (q, k, v))


def test_sdpa_qk_feature_mismatch():
    with pytest.raises(ValueError, match=r"same feature size D: q is \(2, 3, 4\) \(D=4\), k is \(2, 3, 5\) \(D=5\)"):
        scaled_dot_product_attention(torch.randn(2, 3, 4), torch.randn(2, 3, 5), torch.randn(2, 3, 4))


def test_sdpa_kv_length_mismatch():
    with pytest.raises(ValueError, match="same number of keys Tk"):
        scaled_dot_product_attention(torch.randn(3, 4), torch.randn(5, 4), torch.randn(6, 4))


def test_sdpa_mask_does_not_broadcast():
    q = k = v = torch.randn(2, 5, 4)
    with pytest.raises(ValueError, match=r"mask of shape \(4, 4\) does not broadcast to the scores' shape \(2, 5, 5\)"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="does not broadcast"):  # more leading dims than the scores
        scaled_dot_product_attention(q, k, v, mask=torch.ones(3, 2, 5, 5, dtype=torch.bool))


def test_sdpa_all_masked_row_is_an_error_not_nan():
    q = k = v = torch.randn(1, 3, 4)
    mask = torch.ones(3, 3, dtype=torch.bool)
    mask[1] = False
    with pytest.raises(ValueError, match="every key masked"):
        scaled_dot_product_attention(q, k, v, mask=mask)
    pad = torch.tensor([[False, False, False]])[:, None, :]  # a padding mask hiding every key of a sequence
    with pytest.raises(ValueError, match="every key masked"):
        scaled_dot_product_attention(q, k, v, mask=pad)
    with pytest.raises(ValueError, match="single False"):
        scaled_dot_product_attention(q, k, v, mask=torch.tensor(False))


def test_sdpa_non_bool_mask():
    q = k = v = torch.randn(3, 4)
    with pytest.raises(TypeError, match=r"mask must be a bool tensor .*got dtype torch.float32"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(3, 3))
    with pytest.raises(TypeError, match="got dtype torch.int64"):
        scaled_dot_product_attention(q, k, v, mask=torch.ones(3, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="mask must be a torch.Tensor, got list"):
        scaled_dot_product_attention(q, k, v, mask=[[True] * 3] * 3)


def test_sdpa_other_bad_inputs():
    x = torch.randn(3, 4)
    with pytest.raises(TypeError, match="q must be a torch.Tensor, got ndarray"):
        scaled_dot_product_attention(x.numpy(), x, x)
    with pytest.raises(ValueError, match=r"at least 2 dimensions .* got shape \(4,\)"):
        scaled_dot_product_attention(x, torch.randn(4), x)
    with pytest.raises(TypeError, match="floating point, got dtype torch.int64"):
        scaled_dot_product_attention(x, x, torch.ones(3, 4, dtype=torch.long))
    with pytest.raises(TypeError, match="share one dtype"):
        scaled_dot_product_attention(x, x.double(), x)
    with pytest.raises(ValueError, match="do not broadcast together"):
        scaled_dot_product_attention(torch.randn(2, 3, 4), torch.randn(3, 3, 4), torch.randn(3, 3, 4))
    with pytest.raises(ValueError, match="at least one key"):
        scaled_dot_product_attention(x, torch.randn(0, 4), torch.randn(0, 4))
    with pytest.raises(ValueError, match="dropout_p must be a float in \\[0, 1\\), got 1.0"):
        scaled_dot_product_attention(x, x, x, dropout_p=1.0)


# ---------------------------------------------------------------- MultiHeadAttention


def torch_mha_like(mha: MultiHeadAttention) -> nn.MultiheadAttention:
    """An nn.MultiheadAttention holding the same weights (in_proj_weight = cat(q, k, v))."""
    ref = nn.MultiheadAttention(mha.d_model, mha.n_heads, bias=mha.q_proj.bias is not None, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(torch.cat([mha.q_proj.weight, mha.k_proj.weight, mha.v_proj.weight]))
        ref.out_proj.weight.copy_(mha.out_proj.weight)
        if mha.q_proj.bias is not None:
            ref.in_proj_bias.copy_(torch.cat([mha.q_proj.bias, mha.k_proj.bias, mha.v_proj.bias]))
            ref.out_proj.bias.copy_(mha.out_proj.bias)
    return ref.eval()


@pytest.mark.parametrize(
    "B,T,d_model,n_heads,bias,mask_kind",
    [
        (2, 5, 16, 4, True, None),
        (1, 7, 12, 3, False, "causal"),
        (3, 6, 32, 8, True, "random"),
        (2, 4, 8, 1, True, "padding"),
    ],
)
def test_mha_matches_torch(B, T, d_model, n_heads, bias, mask_kind):
    torch.manual_seed(B * 100 + T)
    g = torch.Generator().manual_seed(T)
    mha = MultiHeadAttention(d_model, n_heads, bias=bias).eval()
    ref = torch_mha_like(mha)
    x = torch.randn(B, T, d_model, generator=g)
    if mask_kind is None:
        mask = None
    elif mask_kind == "causal":
        mask = causal_mask(T)  # [T, T]
    elif mask_kind == "random":
        mask = random_mask((B, 1, T, T), g)  # one mask per sequence, shared by the heads
    else:
        mask = random_mask((B, 1, 1, T), g)  # key padding: [B, 1, 1, Tk]
    out, w = mha(x, mask=mask, need_weights=True)
    assert out.shape == (B, T, d_model) and w.shape == (B, n_heads, T, T)
    torch.testing.assert_close(mha(x, mask=mask), out)  # need_weights=False returns the output only

    # nn.MultiheadAttention's bool mask is the opposite: True means *not* allowed; 3-D masks are [B*H, T, T].
    attn_mask = None if mask is None else (~mask).expand(B, n_heads, T, T).reshape(B * n_heads, T, T)
    with torch.no_grad():
        ref_out, ref_w = ref(x, x, x, attn_mask=attn_mask, need_weights=True, average_attn_weights=False)
    torch.testing.assert_close(out, ref_out, atol=ATOL, rtol=1e-5)
    torch.testing.assert_close(w, ref_w, atol=ATOL, rtol=1e-5)


def test_mha_split_merge_roundtrip():
    mha = MultiHeadAttention(12, 3)
    x = torch.randn(2, 5, 12)
    h = mha.split_heads(x)
    assert h.shape == (2, 3, 5, 4)
    torch.testing.assert_close(h[:, 1], x[..., 4:8])  # head 1 owns features 4..7
    torch.testing.assert_close(mha.merge_heads(h), x)


def test_mha_dropout_only_in_training():
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4, dropout=0.5)
    x = torch.randn(2, 6, 16)
    mha.eval()
    torch.testing.assert_close(mha(x), mha(x))  # deterministic in eval mode
    mha.train()
    _, w = mha(x, need_weights=True)
    assert (w == 0).any()


def test_mha_bad_inputs():
    with pytest.raises(ValueError, match="d_model must be divisible by n_heads: got d_model=10, n_heads=4"):
        MultiHeadAttention(10, 4)
    with pytest.raises(ValueError, match="n_heads must be a positive int, got 0"):
        MultiHeadAttention(8, 0)
    with pytest.raises(ValueError, match="d_model must be a positive int, got 8.0"):
        MultiHeadAttention(8.0, 2)
    with pytest.raises(ValueError, match="dropout must be a float in \\[0, 1\\), got 1.5"):
        MultiHeadAttention(8, 2, dropout=1.5)
    with pytest.raises(TypeError, match="bias must be a bool, got str"):
        MultiHeadAttention(8, 2, bias="yes")
    mha = MultiHeadAttention(8, 2)
    with pytest.raises(ValueError, match=r"x must have shape \[B, T, d_model=8\], got \(2, 5, 6\)"):
        mha(torch.randn(2, 5, 6))
    with pytest.raises(ValueError, match="got \\(5, 8\\)"):
        mha(torch.randn(5, 8))
    with pytest.raises(ValueError, match="does not broadcast"):
        mha(torch.randn(2, 5, 8), mask=causal_mask(4))
    with pytest.raises(TypeError, match="mask must be a bool tensor"):
        mha(torch.randn(2, 5, 8), mask=causal_mask(5).float())
    with pytest.raises(TypeError, match="need_weights must be a bool"):
        mha(torch.randn(2, 5, 8), need_weights=1)
    with pytest.raises(ValueError, match="split_heads expects"):
        mha.split_heads(torch.randn(2, 5, 6))
    with pytest.raises(ValueError, match="merge_heads expects"):
        mha.merge_heads(torch.randn(2, 3, 5, 4))
