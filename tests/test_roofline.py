"""The roofline's byte and FLOP counts against independent counts, its measurements, and its validation.

No timing assertions: the measurements are checked to be positive finite numbers only (machines are noisy).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from helpers.model import GPT, GPTConfig, KVCache
from helpers.roofline import (
    GPUS,
    arithmetic_intensity,
    decode_step_bytes,
    decode_step_flops,
    kv_cache_bytes,
    last_level_cache_bytes,
    measure_bandwidth,
    measure_matmul_flops,
    parameter_bytes,
    prefill_bytes,
    prefill_flops,
    ridge_point,
    roofline,
    time_decode_step,
    time_prefill,
)
from helpers.scaling import train_flops

V, BLOCK = 70, 32
CONFIGS = {
    "gpt2": dict(),  # GELU, LayerNorm, learned positions, tied head, biases
    "llama": dict(mlp="swiglu", norm="rmsnorm", pos="rope", n_kv_head=2, bias=False, tie_embeddings=False),
}


def _model(kind: str = "gpt2", dtype: torch.dtype = torch.float32) -> GPT:
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=V, block_size=BLOCK, n_layer=2, n_head=4, n_embd=48, **CONFIGS[kind])
    return GPT(cfg).to(dtype).eval()


def _prefilled(model: GPT, tokens: int, batch: int) -> KVCache:
    cache = KVCache(model.config.n_layer)
    if tokens:
        with torch.inference_mode():
            model(torch.randint(0, V, (batch, tokens)), kv_cache=cache)
    return cache


def _weight_bytes(model: GPT) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


@pytest.mark.parametrize("kind", CONFIGS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_bytes_are_the_weights_and_a_real_cache(kind, dtype):
    model = _model(kind, dtype)
    weights = _weight_bytes(model)
    if kind == "gpt2":  # the tied head is wte, read once
        assert weights == model.num_parameters() * torch.finfo(dtype).bits // 8
    for kv, batch in [(0, 1), (1, 1), (7, 3), (BLOCK - 1, 2)]:
        cache = _prefilled(model, kv, batch)
        assert cache.length == kv
        assert kv_cache_bytes(model, kv, batch) == cache.nbytes()
        assert decode_step_bytes(model, kv, batch) == weights + cache.nbytes()
    for tokens, batch in [(1, 1), (5, 2), (BLOCK, 1)]:
        assert prefill_bytes(model, tokens, batch) == weights + _prefilled(model, tokens, batch).nbytes()
    assert parameter_bytes(model) == weights


@pytest.mark.parametrize("kind", CONFIGS)
def test_decode_flops_are_what_pytorch_counts(kind):
    model = _model(kind)
    for kv, batch in [(0, 1), (1, 2), (9, 3), (BLOCK - 1, 1)]:
        cache = _prefilled(model, kv, batch)
        with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            model(torch.randint(0, V, (batch, 1)), kv_cache=cache)  # a real decode step against the cache
        assert cache.length == kv + 1
        assert counter.get_total_flops() == decode_step_flops(model, kv, batch), (kv, batch)


@pytest.mark.parametrize("kind", CONFIGS)
def test_prefill_flops_are_what_pytorch_counts(kind):
    model = _model(kind)
    for tokens, batch in [(1, 1), (6, 2), (BLOCK, 3)]:
        cache = KVCache(model.config.n_layer)
        with torch.inference_mode(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            model(torch.randint(0, V, (batch, tokens)), kv_cache=cache)
        assert counter.get_total_flops() == prefill_flops(model, tokens, batch), (tokens, batch)
    # and a third of training's FLOPs (forward + backward = 3 forwards), as helpers.scaling counts them
    c = model.config
    if kind == "gpt2":
        assert 3 * prefill_flops(model, BLOCK, 4) == train_flops(c.n_layer, c.n_embd, BLOCK, V, 4 * BLOCK)


def test_decode_is_memory_bound_and_prefill_compute_bound_for_gpt2_small():
    with torch.device("meta"):  # GPT-2 small's shapes, no memory
        model = GPT(GPTConfig())
    assert parameter_bytes(model) == 4 * model.num_parameters() == 4 * 124_439_808
    # hand counts: 12 L C^2 weights in the blocks' matrices, C V in the head
    L, C, Vg = 12, 768, 50257
    assert decode_step_flops(model, 99) == 2 * (12 * L * C * C + C * Vg) + 4 * L * C * 100
    assert kv_cache_bytes(model, 1000, 2) == 2 * L * C * 1000 * 2 * 4
    decode = arithmetic_intensity(decode_step_flops(model, 0), decode_step_bytes(model, 0))
    assert 0.45 < decode < 0.5  # 2 FLOPs per 4-byte weight, a little under (biases, norms, wpe are read too)
    prefill = arithmetic_intensity(prefill_flops(model, 1024), prefill_bytes(model, 1024))
    for gpu in GPUS.values():
        ridge = ridge_point(gpu["flops_per_s"], gpu["bytes_per_s"])
        assert decode < ridge < prefill


def test_gpus_and_the_roof():
    assert {"NVIDIA H100 SXM5", "NVIDIA A100 SXM4 80GB"} <= set(GPUS)
    for gpu in GPUS.values():
        assert gpu["flops_per_s"] > 1e12 and gpu["bytes_per_s"] > 1e10 and isinstance(gpu["precision"], str)
    h100 = GPUS["NVIDIA H100 SXM5"]
    ridge = ridge_point(h100["flops_per_s"], h100["bytes_per_s"])
    assert ridge == pytest.approx(989e12 / 3.35e12)
    assert roofline(ridge, h100["flops_per_s"], h100["bytes_per_s"]) == pytest.approx(h100["flops_per_s"])
    assert roofline(1.0, 100.0, 10.0) == 10.0 and roofline(1000, 100.0, 10.0) == 100.0
    np.testing.assert_allclose(roofline(np.array([0.5, 5.0, 50.0]), 100.0, 10.0), [5.0, 50.0, 100.0])
    assert arithmetic_intensity(10, 4) == 2.5


def test_measurements_are_positive_and_finite():
    for value in [measure_matmul_flops(n=16, reps=2), measure_matmul_flops(n=8, dtype=torch.bfloat16, reps=1),
                  measure_bandwidth(megabytes=1, reps=2), measure_bandwidth(megabytes=0.01, reps=1)]:
        assert isinstance(value, float) and math.isfinite(value) and value > 0
    llc = last_level_cache_bytes()
    assert llc is None or (isinstance(llc, int) and llc > 0)
    model = _model("llama").train()  # the timing switches to eval, then back
    before = [p.detach().clone() for p in model.parameters()]
    for seconds in [time_decode_step(model, 0, reps=1), time_decode_step(model, 5, batch=2, reps=2),
                    time_decode_step(model, BLOCK - 1, reps=1), time_prefill(model, 4, reps=1),
                    time_prefill(model, BLOCK, reps=2, batch=2)]:
        assert isinstance(seconds, float) and math.isfinite(seconds) and seconds > 0
    assert model.training
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_validation():
    model = _model()
    with pytest.raises(TypeError, match="helpers.model.GPT"):
        decode_step_bytes(torch.nn.Linear(2, 2), 1)
    with pytest.raises(TypeError, match="helpers.model.GPT"):
        time_prefill("gpt2", 4)
    with pytest.raises(ValueError, match=r"kv_tokens must be an int in \[0, 31\]"):
        decode_step_flops(model, BLOCK)
    with pytest.raises(ValueError, match="kv_tokens must be an int"):
        decode_step_bytes(model, -1)
    with pytest.raises(ValueError, match="kv_tokens must be an int"):
        time_decode_step(model, True)
    with pytest.raises(ValueError, match="batch must be an int >= 1"):
        decode_step_flops(model, 1, batch=0)
    with pytest.raises(ValueError, match=r"tokens must be an int in \[1, 32\]"):
        prefill_flops(model, 0)
    with pytest.raises(ValueError, match="tokens must be an int"):
        prefill_bytes(model, BLOCK + 1)
    with pytest.raises(ValueError, match="tokens must be an int"):
        kv_cache_bytes(model, 2.0)
    with pytest.raises(ValueError, match="reps must be an int >= 1"):
        time_decode_step(model, 1, reps=0)
    with pytest.raises(ValueError, match="reps must be an int >= 1"):
        time_prefill(model, 1, reps=0)
    with pytest.raises(ValueError, match="n must be an int >= 1"):
        measure_matmul_flops(n=0)
    with pytest.raises(ValueError, match="dtype must be a floating-point"):
        measure_matmul_flops(n=4, dtype=torch.int32)
    with pytest.raises(ValueError, match="dtype must be a floating-point"):
        measure_matmul_flops(n=4, dtype="float32")
    with pytest.raises(ValueError, match="device must name a torch device"):
        measure_matmul_flops(n=4, device="toaster")
    for bad in [0, -1, float("nan"), float("inf"), "big", True]:
        with pytest.raises(ValueError, match="megabytes must be a positive finite number"):
            measure_bandwidth(megabytes=bad)
    with pytest.raises(ValueError, match="holds no float32 value"):
        measure_bandwidth(megabytes=1e-9)
    with pytest.raises(ValueError, match="reps must be an int >= 1"):
        measure_bandwidth(megabytes=1, reps=0)
    with pytest.raises(ValueError, match="flops must be a positive finite number"):
        arithmetic_intensity(0, 1)
    with pytest.raises(ValueError, match="bytes must be a positive finite number"):
        arithmetic_intensity(1, -5)
    with pytest.raises(ValueError, match="bytes_per_s must be a positive finite number"):
        ridge_point(1e12, 0)
    with pytest.raises(ValueError, match="flops_per_s must be a positive finite number"):
        ridge_point(None, 1e9)
    with pytest.raises(ValueError, match="intensity must be positive"):
        roofline([1.0, -1.0], 10.0, 1.0)
    with pytest.raises(ValueError, match="intensity must be a positive number"):
        roofline(True, 10.0, 1.0)
    with pytest.raises(ValueError, match="cpu must be an int"):
        last_level_cache_bytes(-1)
