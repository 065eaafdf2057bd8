"""Figures for lecture note 18 (fast generation), from formulas and from numbers measured once and written here.

    python scripts/note_figures_18.py        # writes lecture_notes/figures/18_*.png (a few seconds, offline, CPU)

Nothing is re-measured when this runs: every measured number below is a constant, with the command that produced
it, so the figures are the same on every machine and every run. The measurements were taken on the course's
shared 2-core CPU (an Intel Xeon under KVM, PyTorch 2.13.0+cpu, 2 threads), where other jobs ran at the same time:
rerun the commands to get your own machine's numbers, and expect them to move by tens of percent between runs.

- ``18_roofline.png``: left, this CPU's roofline (``benchmarks/roofline.py``) with the decode and prefill steps of
  the course's model and of a GPT-2-small-shaped model placed on it; right, the datasheet roofs of three
  accelerators (``helpers.roofline.GPUS``) and where a decode step lands on them.
- ``18_speculative.png``: left, expected tokens per target pass (1 - a^(k+1)) / (1 - a) against k for several
  acceptance rates a, with the measured points of ``benchmarks/speculative.py``; right, the speed-up that formula
  predicts with the measured a and draft cost c, against the measured speed-up.
- ``18_bytes_per_token.png``: the bytes a decode step reads per generated token, weights shared by the batch plus
  each sequence's own KV cache, for Llama-3-8B's shape in bfloat16, against the context length.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIG = ROOT / "lecture_notes" / "figures"
DPI = 110
plt.rcParams.update({"font.size": 10, "axes.titlesize": 10.5, "legend.fontsize": 8.5})

# ---------------------------------------------------------------------------------------------------------------
# Measured: `python benchmarks/roofline.py` (2 threads, OMP_WAIT_POLICY=PASSIVE), the run of 19:24 UTC on a quiet
# spell of the shared machine (the run just before it gave 319.9 GFLOP/s, 1,541.6 and 21.0 GB/s; one under heavy
# load from other jobs gave 82.4, 474.2 and 7.2).
CPU_F32 = 305.1e9  # FLOP/s, a 2048^3 float32 matrix product (measure_matmul_flops)
CPU_BF16 = 1608.3e9  # FLOP/s, the same in bfloat16 (AMX)
CPU_BW = 20.2e9  # bytes/s read, x.sum() over a 1,007 MB float32 buffer (measure_bandwidth)
# (label, FLOPs, bytes, measured seconds): FLOPs and bytes are helpers.roofline's counts (decode_step_flops,
# decode_step_bytes, prefill_flops, prefill_bytes), the seconds the same run's time_decode_step / time_prefill.
CPU_POINTS = [
    ("course model, decode (KV 128)", 10_268_160, 20_868_096, 5.67e-3, "C0", "o"),
    ("course model, prefill 256", 2_828_402_688, 22_440_960, 30.10e-3, "C0", "s"),
    ("GPT-2-small shape, decode B=1", 247_137_792, 497_832_960, 34.05e-3, "C1", "o"),
    ("GPT-2-small shape, decode B=8", 1_977_102_336, 498_349_056, 77.75e-3, "C1", "^"),
    ("GPT-2-small shape, decode B=32", 7_908_409_344, 500_118_528, 94.20e-3, "C1", "v"),
    ("GPT-2-small shape, prefill 256", 65_664_319_488, 516_633_600, 301.24e-3, "C1", "s"),
]
# The course model's decode step (KV 128) with OMP_WAIT_POLICY=ACTIVE instead (the threads spin, not sleep,
# between operations): 2.16 to 2.29 ms in three runs of time_decode_step(model, 128, reps=30) on 2 threads.
COURSE_DECODE_ACTIVE = 2.19e-3

# ---------------------------------------------------------------------------------------------------------------
# Datasheets (helpers.roofline.GPUS): dense bfloat16 tensor-core FLOP/s and memory bandwidth; the M2's GPU is
# 3.6 TFLOP/s float32 and 100 GB/s of unified memory (Apple's M2 announcement, June 2022).
GPUS = [("NVIDIA H100 SXM5", 989e12, 3.35e12, "C3"), ("NVIDIA A100 SXM4 80GB", 312e12, 2.039e12, "C2"),
        ("Apple M2 (laptop GPU)", 3.6e12, 100e9, "C4")]

# ---------------------------------------------------------------------------------------------------------------
# Measured: `python benchmarks/speculative.py` (target checkpoints/shakespeare-gpt, draft checkpoints/
# shakespeare-draft; 5 validation prompts of 48 characters, 200 new tokens, greedy, 2 threads, 3 rounds). The
# acceptance counts are deterministic (greedy) and were identical in both runs; the times are from the run of
# 19:25 UTC on a quiet spell (plain greedy 2.26 ms/token, the draft alone 0.54 ms/token: c = 0.23).
SPEC_K = [1, 2, 3, 4, 5, 6, 7, 8]
SPEC_ACCEPT = [0.700, 0.607, 0.557, 0.465, 0.405, 0.361, 0.336, 0.298]  # accepted / proposed
SPEC_TOKENS_PER_PASS = [1.70, 2.21, 2.67, 2.85, 3.00, 3.13, 3.32, 3.34]  # new tokens / target passes
SPEC_SPEEDUP = [1.12, 1.27, 1.26, 1.11, 1.15, 1.07, 0.97, 0.96]  # median of greedy time / speculative time
SPEC_C = 0.54 / 2.26  # the draft's time per token / the target's


def tokens_per_round(alpha, k):
    """Leviathan et al. (2023), eq. 1: expected tokens per target pass with i.i.d. acceptance alpha."""
    alpha = np.asarray(alpha, dtype=float)
    return (1 - alpha ** (k + 1)) / (1 - alpha)


def predicted_speedup(alpha, k, c):
    """Leviathan et al. (2023), theorem 3.8: expected wall-time improvement with a draft of relative cost c."""
    return tokens_per_round(alpha, k) / (k * c + 1)


# ---------------------------------------------------------------------------------------------------------------
# Llama-3-8B's shape (note 16): 8,030,261,248 parameters; 32 layers, 8 key/value heads of 128; bfloat16.
LLAMA3_8B_WEIGHT_BYTES = 8_030_261_248 * 2
LLAMA3_8B_KV_PER_TOKEN = 2 * 32 * 8 * 128 * 2  # keys and values, layers, KV heads, head size, bytes: 128 KiB


def roofline_figure() -> None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 4.8), layout="constrained")
    I = np.geomspace(0.1, 3000, 400)
    ax1.plot(I, np.minimum(CPU_F32, I * CPU_BW) / 1e9, "k-", lw=1.6, label="this CPU, float32 roof")
    ax1.plot(I, np.minimum(CPU_BF16, I * CPU_BW) / 1e9, "k:", lw=1.2, label="this CPU, bfloat16 roof")
    for label, flops, nbytes, sec, color, marker in CPU_POINTS:
        ax1.plot(flops / nbytes, flops / sec / 1e9, marker, color=color, ms=8, mec="k", mew=0.5, label=label)
    _, f, b, _, _, _ = CPU_POINTS[0]
    ax1.plot(f / b, f / COURSE_DECODE_ACTIVE / 1e9, "o", mfc="none", mec="C0", ms=9, mew=1.5,
             label="course model, decode, OMP_WAIT_POLICY=ACTIVE")
    ridge = CPU_F32 / CPU_BW
    ax1.axvline(ridge, color="grey", lw=0.8, ls="--")
    ax1.text(ridge / 1.1, 900, f"float32 ridge\n{ridge:.0f} FLOP/byte", fontsize=8, color="grey", ha="right")
    ax1.set(xscale="log", yscale="log", xlim=(0.1, 3000), ylim=(0.1, 3000),
            xlabel="arithmetic intensity (FLOPs per byte read)", ylabel="GFLOP/s achieved",
            title=f"This CPU (2 threads): {CPU_F32 / 1e9:.0f} GFLOP/s float32, {CPU_BW / 1e9:.1f} GB/s read")
    ax1.legend(loc="lower right", fontsize=7.5)

    I = np.geomspace(0.1, 3000, 400)
    for name, peak, bw, color in GPUS:
        ax2.plot(I, np.minimum(peak, I * bw) / 1e12, color=color, lw=1.6,
                 label=f"{name}: ridge {peak / bw:.0f} FLOP/byte")
    ax2.plot(I, np.minimum(CPU_BF16, I * CPU_BW) / 1e12, "k:", lw=1.2, label="this CPU, bfloat16 (measured)")
    for x, text in ((1.0, "decode,\n1 sequence"), (64.0, "decode,\n64 sequences"),
                    (1000.0, "prefill,\n2,048 tokens")):
        ax2.axvline(x, color="grey", lw=0.8, ls="--")
        ax2.text(x * 1.12 if x < 500 else x / 1.12, 1.3e-2, text, fontsize=7.5, color="dimgrey",
                 ha="left" if x < 500 else "right",
                 bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
    ax2.set(xscale="log", yscale="log", xlim=(0.1, 3000), ylim=(8e-3, 2000),
            xlabel="arithmetic intensity (FLOPs per byte read)", ylabel="attainable TFLOP/s",
            title="Datasheet roofs (dense bf16; the M2's GPU float32)")
    ax2.legend(loc="upper left", fontsize=7.5)
    fig.savefig(FIG / "18_roofline.png", dpi=DPI)
    plt.close(fig)


def speculative_figure() -> None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.4), layout="constrained")
    ks = np.arange(1, 11)
    for alpha, color in ((0.5, "C7"), (0.6, "C2"), (0.7, "C0"), (0.8, "C1"), (0.9, "C3")):
        ax1.plot(ks, tokens_per_round(alpha, ks), "-", color=color, lw=1.3, label=f"a = {alpha}")
        ax1.plot(ks, np.full(len(ks), 1 / (1 - alpha)), ":", color=color, lw=0.8)
    ax1.plot(SPEC_K, SPEC_TOKENS_PER_PASS, "ko", ms=6, label="measured (draft 2x128, target 6x256)")
    ax1.set(xlabel="k, draft tokens proposed per round", ylabel="new tokens per target pass",
            title="(1 - a^(k+1)) / (1 - a); dotted: the limit 1 / (1 - a)", ylim=(0.8, 10.5))
    ax1.legend(fontsize=8, ncol=2)

    alpha = SPEC_ACCEPT[0]  # at k = 1 the acceptance rate is the per-token probability itself
    ax2.plot(ks, predicted_speedup(alpha, ks, SPEC_C), "C0-", lw=1.3,
             label=f"formula: a = {alpha:.2f}, c = {SPEC_C:.2f}")
    measured_tpp = np.array(SPEC_TOKENS_PER_PASS)
    ax2.plot(SPEC_K, measured_tpp / (np.array(SPEC_K) * SPEC_C + 1), "C0--", lw=1,
             label="measured tokens per pass / (k c + 1)")
    ax2.plot(SPEC_K, SPEC_SPEEDUP, "ko", ms=6, label="measured speed-up (median)")
    ax2.axhline(1, color="grey", lw=0.8)
    ax2.set(xlabel="k, draft tokens proposed per round", ylabel="speed-up over plain greedy decoding",
            title="Speed-up: predicted from a and c, and measured", ylim=(0.8, 1.7))
    ax2.legend(fontsize=8)
    fig.savefig(FIG / "18_speculative.png", dpi=DPI)
    plt.close(fig)


def bytes_per_token_figure() -> None:
    fig, ax = plt.subplots(figsize=(7.5, 4.3), layout="constrained")
    T = np.linspace(0, 8192, 200)
    for B, color in ((1, "C0"), (8, "C1"), (64, "C3")):
        weights = LLAMA3_8B_WEIGHT_BYTES / B
        ax.plot(T, (weights + T * LLAMA3_8B_KV_PER_TOKEN) / 2**30, color=color, lw=1.6,
                label=f"batch {B}: weights / {B} + own KV cache")
        ax.axhline(weights / 2**30, color=color, lw=0.8, ls=":")
    ax.set(yscale="log", xlabel="tokens in each sequence's KV cache",
           ylabel="GiB read per generated token",
           title="Llama-3-8B in bf16: what one decode step reads, per token it makes")
    ax.text(2500, LLAMA3_8B_WEIGHT_BYTES / 64 / 2**30 * 1.08, "dotted: the weights' share alone", fontsize=8,
            color="grey")
    ax.legend(fontsize=8.5)
    fig.savefig(FIG / "18_bytes_per_token.png", dpi=DPI)
    plt.close(fig)


def main() -> None:
    FIG.mkdir(parents=True, exist_ok=True)
    roofline_figure()
    speculative_figure()
    bytes_per_token_figure()
    print("ridge points: this CPU", f"{CPU_F32 / CPU_BW:.1f} (float32), {CPU_BF16 / CPU_BW:.1f} (bf16);",
          ", ".join(f"{n} {p / b:.0f}" for n, p, b, _ in GPUS))
    for label, flops, nbytes, sec, *_ in CPU_POINTS:
        print(f"{label:<34} intensity {flops / nbytes:7.2f}  achieved {flops / sec / 1e9:7.2f} GFLOP/s  "
              f"bandwidth bound {nbytes / CPU_BW * 1e3:7.2f} ms  compute bound {flops / CPU_F32 * 1e3:7.2f} ms  "
              f"measured {sec * 1e3:7.2f} ms")
    a = SPEC_ACCEPT[0]
    for k, tpp, s in zip(SPEC_K, SPEC_TOKENS_PER_PASS, SPEC_SPEEDUP, strict=True):
        print(f"k={k}: tokens/pass measured {tpp:.2f}, formula {float(tokens_per_round(a, k)):.2f}; speed-up "
              f"measured {s:.2f}, formula {float(predicted_speedup(a, k, SPEC_C)):.2f}")
    print(f"Llama-3-8B bf16: weights {LLAMA3_8B_WEIGHT_BYTES / 2**30:.2f} GiB, KV {LLAMA3_8B_KV_PER_TOKEN / 1024:.0f} "
          f"KiB/token; KV of 8,192 tokens = {8192 * LLAMA3_8B_KV_PER_TOKEN / 2**30:.2f} GiB")


if __name__ == "__main__":
    main()
