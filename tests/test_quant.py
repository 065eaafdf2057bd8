"""helpers.quant: int8 round trips within half a step, Int8Linear equals the dequantized matmul (and PyTorch's own
int8 kernel), a quantized GPT stays close to the float one and generates, and the bytes are what the shapes say."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from helpers.generate import generate
from helpers.model import GPT, GPTConfig
from helpers.quant import Int8Linear, dequantize_int8, quantize_int8, quantize_model, weight_bytes

HAS_KERNEL = hasattr(torch, "_weight_int8pack_mm")


def small_gpt(**kw) -> GPT:
    torch.manual_seed(0)
    cfg = dict(vocab_size=97, block_size=64, n_layer=3, n_head=4, n_embd=64)
    cfg.update(kw)
    return GPT(GPTConfig(**cfg)).eval()


def rel_err(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got.float() - want.float()).norm() / want.float().norm())


# ---------------------------------------------------------------------- quantize / dequantize
@pytest.mark.parametrize("shape,std", [((5, 7), 1.0), ((128, 300), 0.02), ((1, 1), 3.0), ((64, 33), 100.0)])
def test_round_trip_within_half_a_step(shape, std):
    g = torch.Generator().manual_seed(1)
    w = torch.randn(*shape, generator=g) * std
    q, scale = quantize_int8(w)
    assert q.dtype == torch.int8 and q.shape == w.shape
    assert scale.dtype == torch.float32 and scale.shape == (shape[0],)
    assert torch.allclose(scale, w.abs().amax(dim=1) / 127)
    assert int(q.abs().max()) == 127  # each row's largest weight lands on +-127
    err = (dequantize_int8(q, scale) - w).abs()
    assert (err <= scale[:, None] / 2 * (1 + 1e-5) + 1e-12).all()


def test_rounding_and_clamping():
    w = torch.tensor([[127.0, 63.5, 62.5, -0.5, 0.49, -127.0]])  # scale 1: round half to even, as torch.round
    q, scale = quantize_int8(w)
    assert scale.tolist() == [1.0]
    assert q.tolist() == [[127, 64, 62, 0, 0, -127]]


def test_rows_of_zeros():
    w = torch.randn(4, 9)
    w[1] = 0.0
    w[3] = 0.0
    q, scale = quantize_int8(w)
    assert torch.isfinite(scale).all() and (scale > 0).all()
    assert (q[1] == 0).all() and (q[3] == 0).all()
    assert (dequantize_int8(q, scale)[[1, 3]] == 0).all()
    q0, s0 = quantize_int8(torch.zeros(3, 5))
    assert (q0 == 0).all() and torch.isfinite(s0).all()


def test_other_float_dtypes_and_no_grad():
    w = torch.randn(6, 10, requires_grad=True)
    q, scale = quantize_int8(w)
    assert not scale.requires_grad
    for dt in (torch.float64, torch.bfloat16, torch.float16):
        q2, s2 = quantize_int8(w.detach().to(dt))
        assert q2.dtype == torch.int8 and s2.dtype == torch.float32
    assert (quantize_int8(w.detach().double())[0] == q).all()


def test_quantize_rejects_bad_inputs():
    with pytest.raises(TypeError, match="torch.Tensor"):
        quantize_int8([[1.0, 2.0]])
    with pytest.raises(TypeError, match="floating-point.*int64"):
        quantize_int8(torch.ones(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"2-D \[out, in\].*\(6,\)"):
        quantize_int8(torch.ones(6))
    with pytest.raises(ValueError, match="empty"):
        quantize_int8(torch.ones(3, 0))
    with pytest.raises(ValueError, match="NaN or inf"):
        quantize_int8(torch.tensor([[1.0, float("nan")]]))
    q, scale = quantize_int8(torch.randn(3, 4))
    with pytest.raises(TypeError, match="int8"):
        dequantize_int8(q.float(), scale)
    with pytest.raises(ValueError, match=r"scale must have shape \[out\] = \(3,\).*\(4,\)"):
        dequantize_int8(q, torch.ones(4))
    with pytest.raises(TypeError, match="scale must be a floating-point"):
        dequantize_int8(q, torch.ones(3, dtype=torch.int32))


# ---------------------------------------------------------------------- Int8Linear
@pytest.mark.parametrize("bias", [True, False])
def test_int8_linear_equals_dequantized_matmul(bias):
    torch.manual_seed(2)
    lin = nn.Linear(96, 40, bias=bias)
    layer = Int8Linear.from_linear(lin)
    assert layer.q.dtype == torch.int8 and layer.scale.dtype == torch.float32
    assert (layer.bias is None) == (not bias)
    w = dequantize_int8(layer.q, layer.scale)
    for shape in [(5, 96), (2, 7, 96), (1, 1, 96), (96,)]:
        x = torch.randn(*shape)
        with torch.no_grad():
            y = layer(x)
            want = x @ w.T + (lin.bias if bias else 0)
        assert y.shape == shape[:-1] + (40,) and y.dtype == torch.float32
        assert float((y - want).abs().max()) <= 1e-4 * float(want.abs().max())
        # and within quantization error of the float layer
        with torch.no_grad():
            assert rel_err(y, lin(x)) < 0.02


@pytest.mark.skipif(not HAS_KERNEL, reason="this torch has no torch._weight_int8pack_mm")
def test_int8_linear_uses_pytorchs_kernel():
    torch.manual_seed(3)
    lin = nn.Linear(64, 48, bias=False)
    layer = Int8Linear.from_linear(lin)
    x = torch.randn(3, 5, 64)
    with torch.no_grad():
        y = layer(x)
    want = torch._weight_int8pack_mm(x.reshape(-1, 64), layer.q, layer.scale).reshape(3, 5, 48)
    assert torch.equal(y, want)


def test_int8_linear_reference_path_gradients_and_bf16():
    torch.manual_seed(4)
    lin = nn.Linear(32, 16)
    layer = Int8Linear.from_linear(lin)
    w = dequantize_int8(layer.q, layer.scale)
    x = torch.randn(4, 32, requires_grad=True)
    y = layer(x)  # needs a gradient: the dequantizing path
    y.sum().backward()
    assert torch.allclose(x.grad, w.sum(0).expand(4, 32), atol=1e-5)
    xb = torch.randn(2, 3, 32).bfloat16()
    with torch.no_grad():
        yb = layer(xb)
    assert yb.dtype == torch.bfloat16 and yb.shape == (2, 3, 16)
    assert rel_err(yb, xb.float() @ w.T + lin.bias.detach()) < 1e-2


def test_int8_linear_rejects_bad_inputs():
    layer = Int8Linear.from_linear(nn.Linear(8, 4))
    with pytest.raises(ValueError, match=r"\[\.\.\., 8\].*\(2, 5\)"):
        layer(torch.randn(2, 5))
    with pytest.raises(TypeError, match="floating-point"):
        layer(torch.ones(2, 8, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.nn.Linear.*Embedding"):
        Int8Linear.from_linear(nn.Embedding(3, 4))
    q, scale = quantize_int8(torch.randn(4, 8))
    with pytest.raises(ValueError, match=r"bias must have shape \(4,\)"):
        Int8Linear(q, scale, torch.zeros(5))
    with pytest.raises(TypeError, match="int8"):
        Int8Linear(q.float(), scale)


# ---------------------------------------------------------------------- whole models
def test_int8_gpt_is_close_to_float_and_generates():
    model = small_gpt()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    qmodel = quantize_model(model, "int8")
    assert isinstance(qmodel, GPT) and qmodel is not model
    linears = [m for m in qmodel.transformer.h.modules() if isinstance(m, nn.Linear)]
    assert linears == []
    assert sum(isinstance(m, Int8Linear) for m in qmodel.modules()) == 4 * model.config.n_layer
    assert qmodel.lm_head.weight is qmodel.transformer.wte.weight  # still tied, still float32
    assert qmodel.transformer.wte.weight.dtype == torch.float32
    idx = torch.randint(0, 97, (2, 24), generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        ref, got = model(idx).logits, qmodel(idx).logits
    assert got.dtype == torch.float32
    assert rel_err(got, ref) < 0.02
    out = generate(qmodel, idx[:, :4], 20, temperature=0)
    assert out.shape == (2, 24) and torch.equal(out[:, :4], idx[:, :4])
    assert torch.equal(out, generate(qmodel, idx[:, :4], 20, temperature=0, use_cache=False))
    # the input model is untouched
    after = model.state_dict()
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    assert all(isinstance(m, nn.Linear) for m in (model.transformer.h[0].attn.c_attn, model.transformer.h[0].mlp.c_fc))


def test_int8_gpt_is_exactly_the_dequantized_model():
    """The only change int8 makes is rounding the weights: the float model holding the dequantized weights
    gives the same logits."""
    model = small_gpt()
    qmodel = quantize_model(model, "int8")
    deq = copy.deepcopy(model)
    with torch.no_grad():
        for m, qm in zip(deq.transformer.h.modules(), qmodel.transformer.h.modules(), strict=True):
            if isinstance(m, nn.Linear):
                m.weight.copy_(dequantize_int8(qm.q, qm.scale))
        idx = torch.randint(0, 97, (2, 16), generator=torch.Generator().manual_seed(6))
        a, b = qmodel(idx).logits, deq(idx).logits
    assert float((a - b).abs().max()) <= 1e-4 * float(b.abs().max())


def test_llama_shaped_gpt_quantizes():
    model = small_gpt(norm="rmsnorm", pos="rope", mlp="swiglu", n_kv_head=2, bias=False, tie_embeddings=False)
    idx = torch.randint(0, 97, (1, 12), generator=torch.Generator().manual_seed(7))
    for dtype, tol in (("int8", 0.02), ("bf16", 0.02)):
        qmodel = quantize_model(model, dtype)
        with torch.no_grad():
            assert rel_err(qmodel(idx).logits, model(idx).logits) < tol
        assert generate(qmodel, idx, 5, temperature=0).shape == (1, 17)
    q8 = quantize_model(model, "int8")
    assert isinstance(q8.lm_head, nn.Linear) and q8.lm_head.weight.dtype == torch.float32  # untied head: float


def test_bf16_gpt():
    model = small_gpt()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    bmodel = quantize_model(model, "bf16")
    assert all(p.dtype == torch.bfloat16 for p in bmodel.parameters())
    assert bmodel.lm_head.weight is bmodel.transformer.wte.weight
    idx = torch.randint(0, 97, (2, 20), generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        logits = bmodel(idx).logits
    assert logits.dtype == torch.bfloat16
    assert rel_err(logits, model(idx).logits.detach()) < 0.02
    assert generate(bmodel, idx[:, :3], 20, temperature=0).shape == (2, 23)
    assert all(torch.equal(before[k], v) and v.dtype == torch.float32 for k, v in model.state_dict().items())
    assert weight_bytes(bmodel) * 2 == weight_bytes(model)


def test_weight_bytes_from_the_shapes():
    model = small_gpt()
    c = model.config
    C, V, T, L = c.n_embd, c.vocab_size, c.block_size, c.n_layer
    assert weight_bytes(model) == 4 * model.num_parameters()  # the tied head counted once
    linears = [(3 * C, C), (C, C), (4 * C, C), (C, 4 * C)]  # c_attn, attn.c_proj, c_fc, mlp.c_proj: [out, in]
    block_float = 4 * L * sum(o * i + o for o, i in linears)  # weights and biases
    block_int8 = L * sum(o * i * 1 + o * 4 + o * 4 for o, i in linears)  # int8 q, float32 scale and bias
    rest = 4 * (V * C + T * C + L * 4 * C + 2 * C)  # wte (= head), wpe, ln_1 and ln_2, ln_f
    assert weight_bytes(model) == block_float + rest
    qmodel = quantize_model(model, "int8")
    assert weight_bytes(qmodel) == block_int8 + rest
    weights_only = 4 * L * sum(o * i for o, i in linears)
    scales = 4 * L * sum(o for o, _ in linears)
    # 4 bytes -> 1 per weight, plus one float32 scale per output row
    assert weight_bytes(model) - weight_bytes(qmodel) == weights_only * 3 // 4 - scales
    assert 0.25 < block_int8 / block_float < 0.29  # about a quarter (the scales and biases stay 4 bytes)


def test_weight_bytes_counts_shared_tensors_once():
    a = nn.Linear(10, 10, bias=False)
    seq = nn.Sequential(a, a)
    assert weight_bytes(seq) == 400
    m = nn.Module()
    m.register_buffer("x", torch.zeros(3, dtype=torch.int8))
    m.register_buffer("y", torch.zeros(2, dtype=torch.float64))
    assert weight_bytes(m) == 3 + 16
    with pytest.raises(TypeError, match="torch.nn.Module.*Tensor"):
        weight_bytes(torch.zeros(3))


def test_quantize_model_rejects_bad_inputs():
    model = small_gpt(n_layer=1)
    with pytest.raises(TypeError, match="helpers.model.GPT.*Linear"):
        quantize_model(nn.Linear(3, 3), "int8")
    with pytest.raises(ValueError, match=r"\('int8', 'bf16'\).*'int4'"):
        quantize_model(model, "int4")
    with pytest.raises(TypeError, match="dtype must be one of"):
        quantize_model(model, torch.int8)
