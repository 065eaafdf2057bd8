"""This machine's roofline, and the course's models' decode and prefill steps on it.

    python benchmarks/roofline.py [--threads 2] [--n 2048]

Measures the two roofs (an ``n x n x n`` matrix product in float32 and bfloat16; the read bandwidth of
``x.sum()`` over a float32 buffer twice the last-level cache) and the ridge point between them. Then, for the
course's trained checkpoint (``checkpoints/shakespeare-gpt``: 6 layers, 256 wide, 19 MB, in cache) and a randomly
initialised model of GPT-2 small's shape (12 layers, 768 wide, vocabulary 50257: 124M parameters, 498 MB in
float32, bigger than the caches), it times a decode step (one token against a KV cache of a few lengths; and
batches of 8 and 32 sequences for GPT-2 small, which reuse each weight read 8 and 32 times) and a prefill of 256 tokens, and sets each against the two lower bounds:

- bandwidth bound = bytes the step must read (``decode_step_bytes``, ``prefill_bytes``) / read bandwidth,
- compute bound = its matrix FLOPs (``decode_step_flops``, ``prefill_flops``) / float32 matmul FLOP/s,

printed as ratios ``measured / bound``: near 1 for the bound that binds. All in float32, the models' dtype.
GPT-2 small's decode steps land near the bandwidth bound and its prefill near the compute bound. The small
checkpoint's 19 MB fit in the cache, so DRAM bandwidth does not strictly bound it, and a good part of each of its
decode steps is the fixed cost of some 200 small PyTorch calls (a model of the same depth and a tiny width pays it
too). Idle OpenMP threads are told to sleep (``OMP_WAIT_POLICY=PASSIVE``, as the course's tests run), which on a
busy machine makes small steps several times faster. About 30 seconds on 2 cores; other jobs on the machine show
up as noise in every number, so run it twice before reading much into a ratio.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads

import argparse  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from helpers.course import checkpoint  # noqa: E402
from helpers.model import GPT, GPTConfig  # noqa: E402
from helpers.roofline import (  # noqa: E402
    arithmetic_intensity,
    decode_step_bytes,
    decode_step_flops,
    last_level_cache_bytes,
    measure_bandwidth,
    measure_matmul_flops,
    prefill_bytes,
    prefill_flops,
    ridge_point,
    time_decode_step,
    time_prefill,
)

HEADER = (f"  {'step':<22} {'measured':>10} {'GFLOP':>8} {'MB read':>8} {'FLOP/B':>7} {'bw bound':>10} "
          f"{'cmp bound':>10} {'meas/bw':>8} {'meas/cmp':>9}")


def _row(label: str, seconds: float, flops: int, nbytes: int, flops_per_s: float, bytes_per_s: float) -> dict:
    t_bw, t_cmp = nbytes / bytes_per_s, flops / flops_per_s
    print(f"  {label:<22} {seconds * 1e3:8.2f}ms {flops / 1e9:8.3f} {nbytes / 1e6:8.1f} "
          f"{arithmetic_intensity(flops, nbytes):7.1f} {t_bw * 1e3:8.2f}ms {t_cmp * 1e3:8.2f}ms "
          f"{seconds / t_bw:8.2f} {seconds / t_cmp:9.2f}", flush=True)
    return {"seconds": seconds, "flops": flops, "bytes": nbytes, "vs_bandwidth": seconds / t_bw,
            "vs_compute": seconds / t_cmp}


def _model_rows(name: str, model: GPT, kv_lengths: list[int], batches: list[int], prefill: int, decode_reps: int,
                prefill_reps: int, flops_per_s: float, bytes_per_s: float) -> dict:
    c = model.config
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    print(f"\n{name}: {c.n_layer} layers, {c.n_embd} wide, vocabulary {c.vocab_size}, context {c.block_size}; "
          f"{model.num_parameters():,} parameters, {weights / 1e6:.1f} MB")
    print(HEADER)
    out = {}
    for kv in kv_lengths:
        for b in batches if kv == kv_lengths[0] else [1]:
            t = time_decode_step(model, kv, batch=b, reps=decode_reps)
            label = f"decode kv={kv}" + (f" batch={b}" if b > 1 else "")
            out[label] = _row(label, t, decode_step_flops(model, kv, b), decode_step_bytes(model, kv, b),
                              flops_per_s, bytes_per_s)
    t = time_prefill(model, prefill, reps=prefill_reps)
    label = f"prefill {prefill} tokens"
    out[label] = _row(label, t, prefill_flops(model, prefill), prefill_bytes(model, prefill), flops_per_s,
                      bytes_per_s)
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--n", type=int, default=2048, help="matrix size for the FLOP/s roof")
    a = p.parse_args(argv)
    start = time.perf_counter()
    torch.set_num_threads(a.threads)
    llc = last_level_cache_bytes()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), CPU kernels "
          f"{torch.backends.cpu.get_cpu_capability()}, last-level cache "
          f"{'unknown' if llc is None else f'{llc / 2 ** 20:.0f} MiB'}, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}")
    f32 = measure_matmul_flops(a.n, torch.float32)
    bf16 = measure_matmul_flops(a.n, torch.bfloat16)
    buffer_mb = max(256, math.ceil(2 * (llc or 0) / 1e6))
    bw = measure_bandwidth(megabytes=buffer_mb)  # measure_bandwidth's default: twice the last-level cache
    small_bw = measure_bandwidth(megabytes=1, reps=20)  # fits in L2: how much faster a cache is
    print(f"matmul {a.n}^3:   float32 {f32 / 1e9:8.1f} GFLOP/s   bfloat16 {bf16 / 1e9:8.1f} GFLOP/s")
    print(f"read bandwidth: {bw / 1e9:6.1f} GB/s (x.sum() over {buffer_mb} MB float32; a 1 MB one, in cache: "
          f"{small_bw / 1e9:.1f} GB/s)")
    print(f"ridge point:    float32 {ridge_point(f32, bw):6.1f} FLOP/byte   bfloat16 {ridge_point(bf16, bw):6.1f} "
          "FLOP/byte   (below it memory-bound, above it compute-bound)")
    print("bounds below: bw = bytes / read bandwidth, cmp = FLOPs / float32 matmul FLOP/s; "
          "meas/bound near 1 = that roof binds")
    results = {"matmul_float32": f32, "matmul_bfloat16": bf16, "bandwidth": bw}
    shakespeare = GPT.from_pretrained(checkpoint("shakespeare-gpt")).eval()
    results["shakespeare-gpt"] = _model_rows("shakespeare-gpt (trained)", shakespeare, [1, 128, 255], [1],
                                             256, 20, 5, f32, bw)
    torch.manual_seed(0)
    gpt2 = GPT(GPTConfig()).eval()  # GPT-2 small's shape, random weights: the speed does not depend on them
    results["gpt2-small"] = _model_rows("GPT-2-small-shaped (random weights)", gpt2, [1, 512, 1023], [1, 8, 32],
                                        256, 10, 3, f32, bw)
    print(f"\n{time.perf_counter() - start:.0f} s in all")
    return results


if __name__ == "__main__":
    main()
