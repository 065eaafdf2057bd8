"""The roofline: is a step of a Transformer limited by arithmetic or by memory?

A machine does at most ``P`` FLOP/s (its peak) and reads at most ``W`` bytes/s from memory. A computation that
does ``F`` FLOPs and must move ``Q`` bytes takes at least ``max(F / P, Q / W)`` seconds. Its *arithmetic
intensity* ``F / Q`` (FLOPs per byte) decides which: below the *ridge point* ``P / W`` memory is the limit, above
it arithmetic. Plotted as attainable FLOP/s ``min(P, intensity * W)`` against intensity on log-log axes, the two
limits are a slanted line and a flat one: a roof.

Decoding one token with a KV cache reads every weight once and does 2 FLOPs per weight (one multiply, one add):
an intensity of about 0.5 FLOP/byte in float32 (``2 / 4``), far below any machine's ridge (tens to hundreds), so
decoding is memory-bound. Prefilling ``T`` tokens reuses each weight ``T`` times: intensity ``~ T / 2``, so
matrix-matrix products, compute-bound once ``T`` passes the ridge. Batching decode steps raises their intensity
the same way.

- ``measure_matmul_flops``, ``measure_bandwidth``: this machine's two roofs (``last_level_cache_bytes`` tells how
  big a buffer must be to measure memory, not cache);
- ``decode_step_bytes``, ``decode_step_flops``, ``prefill_bytes``, ``prefill_flops``, ``kv_cache_bytes``,
  ``parameter_bytes``: what a step of ``helpers.model.GPT`` must read and compute;
- ``time_decode_step``, ``time_prefill``: what it takes, measured;
- ``arithmetic_intensity``, ``ridge_point``, ``roofline``, and ``GPUS``: a few accelerators' datasheet roofs.

    python benchmarks/roofline.py [--threads 2]     # this machine's roofline and the course's models on it
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from .model import GPT, KVCache

__all__ = ["GPUS", "last_level_cache_bytes", "measure_matmul_flops", "measure_bandwidth", "parameter_bytes",
           "kv_cache_bytes", "decode_step_bytes", "decode_step_flops", "prefill_bytes", "prefill_flops",
           "arithmetic_intensity", "matmul_intensity", "ridge_point", "roofline", "time_decode_step", "time_prefill"]

# Peak dense (no 2:4 sparsity) tensor-core bfloat16 FLOP/s and memory bandwidth, from the vendors' datasheets.
# NVIDIA's datasheets print the sparse figure ("with sparsity") for BF16; the dense one is half of it.
GPUS: dict[str, dict[str, float | str]] = {
    # NVIDIA H100 Tensor Core GPU datasheet, SXM5: BF16 1,979 TFLOPS with sparsity (989 dense), 3.35 TB/s HBM3
    "NVIDIA H100 SXM5": {"flops_per_s": 989e12, "bytes_per_s": 3.35e12, "precision": "bf16 dense"},
    # NVIDIA H200 Tensor Core GPU datasheet, SXM: BF16 1,979 TFLOPS with sparsity (989 dense), 4.8 TB/s HBM3e
    "NVIDIA H200 SXM": {"flops_per_s": 989e12, "bytes_per_s": 4.8e12, "precision": "bf16 dense"},
    # NVIDIA A100 Tensor Core GPU datasheet, 80GB SXM4: BF16 312 TFLOPS (624 with sparsity), 2,039 GB/s HBM2e
    "NVIDIA A100 SXM4 80GB": {"flops_per_s": 312e12, "bytes_per_s": 2.039e12, "precision": "bf16 dense"},
    # Apple's M2 announcement (June 2022): GPU "3.6 teraflops" (float32; no faster bf16 path), 100 GB/s unified
    # memory shared by CPU and GPU: a laptop
    "Apple M2 (laptop GPU)": {"flops_per_s": 3.6e12, "bytes_per_s": 100e9, "precision": "fp32"},
}


# ---------------------------------------------------------------------- validation
def _check_int(name: str, value: object, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < lo or (hi is not None and value > hi):
        span = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be an int {span}, got {value!r}")
    return value


def _check_positive(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _check_model(model: object) -> GPT:
    if not isinstance(model, GPT):
        raise TypeError(f"model must be a helpers.model.GPT, got {type(model).__name__}")
    return model


def _check_device(device: object) -> torch.device:
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device must name a torch device such as 'cpu' or 'cuda', got {device!r}") from e


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _median_seconds(fn: Callable[[], object], reps: int, device: torch.device, warmup: int = 2,
                    before: Callable[[], object] | None = None) -> float:
    """Median wall-clock seconds of ``fn()`` over ``reps`` calls after ``warmup`` untimed ones; ``before()`` runs
    untimed ahead of each call (to restore a state)."""
    times = []
    for i in range(warmup + reps):
        if before is not None:
            before()
        _sync(device)
        t = time.perf_counter()
        fn()
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return max(statistics.median(times), 1e-9)  # perf_counter ticks in ns; never report an infinite speed


# ---------------------------------------------------------------------- this machine's roofs
def last_level_cache_bytes(cpu: int = 0) -> int | None:
    """Size in bytes of CPU ``cpu``'s last-level (highest-numbered) data or unified cache, from Linux's
    ``/sys/devices/system/cpu/cpuN/cache/index*/``; None where that is not readable (macOS, Windows)."""
    _check_int("cpu", cpu, 0)
    best: tuple[int, int] | None = None  # (level, bytes)
    for d in sorted(Path(f"/sys/devices/system/cpu/cpu{cpu}/cache").glob("index*")):
        try:
            kind = (d / "type").read_text().strip()
            level = int((d / "level").read_text().strip())
            size = (d / "size").read_text().strip()
        except (OSError, ValueError):
            continue
        if kind == "Instruction" or not size:
            continue
        unit = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}.get(size[-1].upper(), 1)
        try:
            n = int(size[:-1] if unit > 1 else size) * unit
        except ValueError:
            continue
        if best is None or level > best[0]:
            best = (level, n)
    return None if best is None else best[1]


def measure_matmul_flops(n: int = 1024, dtype: torch.dtype = torch.float32, reps: int = 10,
                         device: str | torch.device = "cpu") -> float:
    """FLOP/s of an ``n x n`` by ``n x n`` matrix product in ``dtype`` (``2 n**3`` FLOPs, the count
    ``FlopCounterMode`` uses): the median of ``reps`` timed products after two warm-up ones. With threads,
    ``torch.set_num_threads`` decides how many cores take part. A practical peak: large ``n`` comes closer to the
    datasheet's."""
    _check_int("n", n, 1)
    _check_int("reps", reps, 1)
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating-point torch.dtype such as torch.float32, got {dtype!r}")
    dev = _check_device(device)
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g).to(device=dev, dtype=dtype)
    b = torch.randn(n, n, generator=g).to(device=dev, dtype=dtype)
    out = torch.empty(n, n, device=dev, dtype=dtype)
    with torch.inference_mode():
        seconds = _median_seconds(lambda: torch.mm(a, b, out=out), reps, dev)
    return 2 * n ** 3 / seconds


def measure_bandwidth(megabytes: float | None = None, reps: int = 10, device: str | torch.device = "cpu") -> float:
    """Bytes per second *read* from memory: ``x.sum()`` over a float32 tensor of ``megabytes`` MB (10**6 bytes),
    counting each byte of ``x`` once (the sum writes nothing to speak of); the median of ``reps`` sums after two
    warm-up ones. Reading is what a decode step does with its weights.

    ``megabytes=None`` sizes the buffer at twice the last-level cache (``last_level_cache_bytes``) and at least
    256 MB, so that it measures memory, not cache. A smaller buffer measures the cache it fits in (faster): that is
    the point of giving one, and the reason the default is large.
    """
    if megabytes is None:
        llc = last_level_cache_bytes() if _check_device(device).type == "cpu" else None
        megabytes = max(256, math.ceil(2 * (llc or 0) / 1e6))
    _check_positive("megabytes", megabytes)
    _check_int("reps", reps, 1)
    dev = _check_device(device)
    n = int(megabytes * 1e6) // 4
    if n < 1:
        raise ValueError(f"megabytes={megabytes!r} holds no float32 value (4 bytes)")
    x = torch.ones(n, dtype=torch.float32, device=dev)  # ones, not empty: every page really in memory
    with torch.inference_mode():
        seconds = _median_seconds(x.sum, reps, dev)
    return 4 * n / seconds


# ---------------------------------------------------------------------- what a step reads and computes
def parameter_bytes(model: GPT) -> int:
    """Bytes of the model's parameters, a shared (tied) tensor once: what one forward pass reads of its weights.

    Counts every parameter whole, though an embedding lookup reads only the rows of its tokens: with GPT-2's tied
    head the output layer reads all of ``wte`` anyway, and ``wpe`` is a small share (under 1% of GPT-2 small).
    """
    _check_model(model)
    return sum(p.numel() * p.element_size() for p in model.parameters())  # parameters() yields a shared one once


def _value_bytes(model: GPT) -> int:
    """Bytes per value of the model's activations (and so of its KV cache): its parameters' dtype."""
    return model.transformer.wte.weight.element_size()


def kv_cache_bytes(model: GPT, tokens: int, batch: int = 1) -> int:
    """Bytes of a KV cache holding ``tokens`` positions of ``batch`` sequences: keys and values (2) of every
    layer, ``kv_heads`` heads of ``head_dim`` values each, in the model's dtype. Equals ``KVCache.nbytes()``."""
    _check_model(model)
    c = model.config
    _check_int("tokens", tokens, 0, c.block_size)
    _check_int("batch", batch, 1)
    return 2 * c.n_layer * c.kv_heads * c.head_dim * tokens * batch * _value_bytes(model)


def _matrix_weights(model: GPT) -> int:
    """Weights of every matrix product of a forward pass, per token: the blocks' linear layers and the output
    layer (each ``nn.Linear``'s weight once; the tied head counts as the head, the embedding lookups as none)."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def _attention_flops(model: GPT, queries: int, keys: int, batch: int) -> int:
    """Scores ``q k^T`` and the weighted sum of values: ``2 * 2 * head_dim`` FLOPs per (query, key) per head."""
    c = model.config
    return 4 * c.n_layer * c.n_embd * queries * keys * batch


def decode_step_bytes(model: GPT, kv_tokens: int, batch: int = 1) -> int:
    """Bytes one decode step (one new token per sequence, ``kv_tokens`` positions already cached) must read at
    least: every parameter once (``parameter_bytes``) and the KV cache of ``kv_tokens`` positions
    (``2 * n_layer * kv_heads * head_dim * kv_tokens * batch * bytes_per_value``). The activations, a few vectors
    of ``n_embd`` per sequence, are left out."""
    _check_model(model)
    _check_int("kv_tokens", kv_tokens, 0, model.config.block_size - 1)
    return parameter_bytes(model) + kv_cache_bytes(model, kv_tokens, batch)


def decode_step_flops(model: GPT, kv_tokens: int, batch: int = 1) -> int:
    """Matrix-multiply FLOPs of one decode step with ``kv_tokens`` positions cached: 2 per weight of the blocks'
    matrices and of the output layer, per sequence, plus the attention of the new query to ``kv_tokens + 1`` keys
    (the cached ones and its own): ``4 * n_layer * n_embd * (kv_tokens + 1) * batch``. What
    ``torch.utils.flop_counter.FlopCounterMode`` counts (``tests/test_roofline.py``)."""
    _check_model(model)
    _check_int("kv_tokens", kv_tokens, 0, model.config.block_size - 1)
    _check_int("batch", batch, 1)
    return 2 * _matrix_weights(model) * batch + _attention_flops(model, 1, kv_tokens + 1, batch)


def prefill_bytes(model: GPT, tokens: int, batch: int = 1) -> int:
    """Bytes a prefill of ``tokens`` tokens per sequence must move at least: every parameter read once and the KV
    cache it writes (``kv_cache_bytes(model, tokens, batch)``). Activations (the ``[T, vocab]`` logits among them)
    come on top, so this is a lower bound."""
    _check_model(model)
    _check_int("tokens", tokens, 1, model.config.block_size)
    return parameter_bytes(model) + kv_cache_bytes(model, tokens, batch)


def prefill_flops(model: GPT, tokens: int, batch: int = 1) -> int:
    """Matrix-multiply FLOPs of a prefill (the model's forward pass over ``tokens`` tokens, empty cache): 2 per
    matrix weight per token (``GPT.forward`` computes the logits of every position) plus the attention, the full
    ``T x T`` scores and weighted sums as PyTorch's math kernel computes them: ``4 * n_layer * n_embd * T**2 *
    batch`` (a causal flash kernel skips about half). Per token as ``helpers.scaling.train_flops``' forward."""
    _check_model(model)
    _check_int("tokens", tokens, 1, model.config.block_size)
    _check_int("batch", batch, 1)
    return 2 * _matrix_weights(model) * tokens * batch + _attention_flops(model, tokens, tokens, batch)


def arithmetic_intensity(flops: float, bytes: float) -> float:
    """FLOPs per byte moved: where a computation sits on the roofline's horizontal axis."""
    return _check_positive("flops", flops) / _check_positive("bytes", bytes)


def matmul_intensity(m: int, k: int, n: int, bytes_per_value: int = 4) -> float:
    """FLOPs per byte of ``C[m, n] = A[m, k] @ B[k, n]`` with every element of ``A``, ``B`` and ``C`` read or written
    once: ``2 m k n / (bytes_per_value (m k + k n + m n))``. A decode step (``m = 1``) stays below ``2 / bytes_per_value``
    whatever the width; ``m`` tokens at once approach ``2 k n / (bytes_per_value (k + n))``."""
    for name, v in [("m", m), ("k", k), ("n", n), ("bytes_per_value", bytes_per_value)]:
        _check_int(name, v, 1)
    return 2 * m * k * n / (bytes_per_value * (m * k + k * n + m * n))


def ridge_point(flops_per_s: float, bytes_per_s: float) -> float:
    """The arithmetic intensity (FLOP/byte) where the roofline bends: below it a computation is memory-bound,
    above it compute-bound."""
    return _check_positive("flops_per_s", flops_per_s) / _check_positive("bytes_per_s", bytes_per_s)


def roofline(intensity, flops_per_s: float, bytes_per_s: float):
    """Attainable FLOP/s at arithmetic ``intensity`` (a number or an array of them): ``min(flops_per_s,
    intensity * bytes_per_s)``, the roof itself, to plot."""
    import numpy as np

    peak, bw = _check_positive("flops_per_s", flops_per_s), _check_positive("bytes_per_s", bytes_per_s)
    if isinstance(intensity, bool):
        raise ValueError(f"intensity must be a positive number or array, got {intensity!r}")
    x = np.asarray(intensity, dtype=np.float64)
    if x.size == 0 or not np.isfinite(x).all() or (x <= 0).any():
        raise ValueError("intensity must be positive finite number(s)")
    out = np.minimum(peak, x * bw)
    return float(out) if out.ndim == 0 else out


# ---------------------------------------------------------------------- what a step takes
def _device_of(model: GPT) -> torch.device:
    return model.transformer.wte.weight.device


def time_decode_step(model: GPT, kv_tokens: int, batch: int = 1, reps: int = 20) -> float:
    """Seconds one decode step takes (the model's forward pass for one new token per sequence, with a real
    ``KVCache`` already holding ``kv_tokens`` positions): the median of ``reps`` steps after two warm-up ones, each
    from the same cached state (restored, untimed, between steps). No sampling; the model runs in eval mode and
    on its own device and dtype, and is left in the mode it was in."""
    _check_model(model)
    _check_int("kv_tokens", kv_tokens, 0, model.config.block_size - 1)
    _check_int("batch", batch, 1)
    _check_int("reps", reps, 1)
    dev, L = _device_of(model), model.config.n_layer
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (batch, kv_tokens + 1), generator=g).to(dev)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            keys = values = None
            if kv_tokens:
                prefilled = KVCache(L, capacity=kv_tokens)
                model(ids[:, :kv_tokens], kv_cache=prefilled)
                keys, values = list(prefilled.keys), list(prefilled.values)
            state = {}

            def restore() -> None:  # a cache holding exactly the kv_tokens prefilled positions, room for one more
                cache = KVCache(L, capacity=kv_tokens + 1)
                if keys is not None:
                    for i in range(L):
                        cache.update(i, keys[i], values[i])
                state["cache"] = cache

            step = ids[:, kv_tokens:]
            return _median_seconds(lambda: model(step, kv_cache=state["cache"]), reps, dev, before=restore)
    finally:
        model.train(was_training)


def time_prefill(model: GPT, tokens: int, reps: int = 5, batch: int = 1) -> float:
    """Seconds a prefill takes: the model's forward pass over ``tokens`` tokens per sequence into an empty
    ``KVCache`` (written as generation writes it), the median of ``reps`` after one warm-up; in eval mode, the
    model's mode restored after."""
    _check_model(model)
    _check_int("tokens", tokens, 1, model.config.block_size)
    _check_int("reps", reps, 1)
    _check_int("batch", batch, 1)
    dev, L = _device_of(model), model.config.n_layer
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, model.config.vocab_size, (batch, tokens), generator=g).to(dev)
    cache = KVCache(L, capacity=tokens)
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            return _median_seconds(lambda: model(ids, kv_cache=cache), reps, dev, warmup=1, before=cache.reset)
    finally:
        model.train(was_training)
