"""Figures and numbers for lecture note 17 (training at scale), from the committed scaling ladder.

    python scripts/note_figures_17.py               # writes lecture_notes/figures/17_*.png, prints every number
    python scripts/note_figures_17.py --bf16-timing # instead: time float32 against bf16 training steps (a minute)

Reads ``src/helpers/scaling_ladder.csv`` (written by ``python -m helpers.scaling``; any number of seeds), averages
every point over its seeds (``helpers.scaling.mean_over_seeds``, as the notebook does), fits power laws to the means
with ``helpers.scaling.fit_power_law`` (and, with several seeds, to each seed alone, for the spread of the exponents
between seeds) and draws three figures, each point a mean with an error bar of one standard deviation over seeds:

- ``17_loss_vs_params.png``: held-out bits per character against non-embedding parameters, one colour per budget;
- ``17_loss_vs_data.png``: the same points against training characters, one colour per size;
- ``17_loss_vs_compute.png``: against training compute C = 6 N D, with the lower envelope (the frontier).

It also prints the arithmetic of the note's later sections (memory per GPU, FLOPs of GPT-3, Chinchilla's optimum),
so that every number in the note can be regenerated. Offline, CPU only, deterministic (the bootstrap is seeded),
a few seconds.
"""

from __future__ import annotations

import math
import os
import sys
from collections import defaultdict
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one thread: the same round-off every run
    os.environ.setdefault(_var, "1")

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from helpers.scaling import BUDGETS, CSV, fit_power_law, mean_over_seeds, read_csv  # noqa: E402

FIG = ROOT / "lecture_notes" / "figures"
DPI = 110
TRAIN_CHARS = 4_476_075  # len(helpers.data.shakespeare("train")), the 35 training plays
plt.rcParams.update({"font.size": 11, "axes.titlesize": 11, "legend.fontsize": 9})


def fmt_n(n: float) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e6 else f"{n / 1e3:.0f}K"


def ladder() -> tuple[list[dict], list[int], list[int], dict]:
    rows = read_csv(CSV)
    sizes = sorted({r["params_non_embedding"] for r in rows})
    budgets = sorted({r["tokens"] for r in rows})
    by = defaultdict(list)  # (N, D) -> the held-out bpc of every seed
    for r in rows:
        by[r["params_non_embedding"], r["tokens"]].append(r["val_bpc"])
    return rows, sizes, budgets, by


def sd(v) -> float:
    """The standard deviation over seeds (n - 1 in the denominator, as ``mean_over_seeds``); 0 for one seed."""
    return float(np.std(v, ddof=1)) if len(v) > 1 else 0.0


def fits(rows, sizes, budgets) -> dict:
    """L(N) at every budget and L(D) at every size, without and with a floor, fitted to the means over seeds (one
    point per (N, D), as in the notebook); with several seeds also each seed's own fits (key ``"seeds"``: a list of
    ``{False: fit, True: fit}``, one per seed)."""
    means = mean_over_seeds(rows)
    seeds = sorted({r["seed"] for r in rows})
    out = {}

    def both(pts):
        x, y = (np.array(v, dtype=float) for v in zip(*pts, strict=True))
        return {fl: fit_power_law(x, y, floor=fl) for fl in (False, True)}

    for D in budgets:
        out["N", D] = both([(r["params_non_embedding"], r["val_bpc"]) for r in means if r["tokens"] == D])
        if len(seeds) > 1:
            out["N", D]["seeds"] = [both([(r["params_non_embedding"], r["val_bpc"]) for r in rows
                                          if r["tokens"] == D and r["seed"] == s]) for s in seeds]
    for N in sizes:
        out["D", N] = both([(r["tokens"], r["val_bpc"]) for r in means if r["params_non_embedding"] == N])
        if len(seeds) > 1:
            out["D", N]["seeds"] = [both([(r["tokens"], r["val_bpc"]) for r in rows
                                          if r["params_non_embedding"] == N and r["seed"] == s]) for s in seeds]
    return out


def law(f: dict, x):
    return f["E"] + f["A"] * np.asarray(x, dtype=float) ** (-f["alpha"])


def report(rows, sizes, budgets, by, fit) -> None:
    seeds = sorted({r["seed"] for r in rows})
    print(f"{len(rows)} rows, seeds {seeds}, sizes {sizes} ({sizes[-1] / sizes[0]:.1f}x), budgets {budgets}")
    print(f"ladder: {sum(r['seconds'] for r in rows):,.0f} s of training in all, "
          f"C = 6ND summed: {sum(6 * r['params_non_embedding'] * r['tokens'] for r in rows):.3g} FLOPs")
    gf = [6 * r["params_non_embedding"] * r["tokens"] / r["seconds"] / 1e9 for r in rows]
    print(f"achieved 6ND / seconds per point: {min(gf):.0f} to {max(gf):.0f} GFLOP/s (one CPU thread); the whole ladder "
          f"on an A100 at 40% of 312 TFLOP/s: {sum(6 * r['params_non_embedding'] * r['tokens'] for r in rows) / (0.4 * 312e12):.2f} s")
    for s in seeds:
        rs = [r for r in rows if r["seed"] == s]
        g = {N: [6 * N * r["tokens"] / r["seconds"] / 1e9 for r in rs if r["params_non_embedding"] == N] for N in sizes}
        c = sum(6 * r["params_non_embedding"] * r["tokens"] for r in rs)
        print(f"  seed {s}: {sum(r['seconds'] for r in rs):,.0f} s, points {min(r['seconds'] for r in rs):.1f} to "
              f"{max(r['seconds'] for r in rs):.1f} s, GFLOP/s per size: "
              + ", ".join(f"{min(v):.0f}-{max(v):.0f}" for v in g.values())
              + f"; C summed {c:.3g} FLOPs, on an A100 at 40%: {c / (0.4 * 312e12):.2f} s")
    print("total parameters per size: " + ", ".join(
        f"{N:,} -> {next(r['params'] for r in rows if r['params_non_embedding'] == N):,}" for N in sizes))
    print("\nchars per non-embedding parameter (D/N), and epochs of the 4,476,075 training characters:")
    for D in budgets:
        print(f"  D = {D:>9,} ({D / TRAIN_CHARS:.3f} epochs; P(a character never seen) ~ exp(-{D / TRAIN_CHARS:.3f}) "
              f"= {math.exp(-D / TRAIN_CHARS):.2f}): " + ", ".join(f"{D / N:.1f}" for N in sizes))
    print("\nmean held-out bpc (rows: N, columns: D)" + (" ± std over seeds" if len(seeds) > 1 else ""))
    for N in sizes:
        cells = []
        for D in budgets:
            v = by[N, D]
            cells.append(f"{np.mean(v):.3f}" + (f" ± {sd(v):.3f}" if len(v) > 1 else ""))
        print(f"  {N:>8,}: " + "  ".join(cells))
    stds = [sd(v) for v in by.values()]
    if len(seeds) > 1:
        print(f"  std over seeds: {min(stds):.3f} to {max(stds):.3f} bits/char, median {np.median(stds):.3f}")
    print("\nfits to the means over seeds, L = E + A x^-alpha (alpha ± bootstrap std over resampled means, rmse in "
          "bits/char)" + ("; then each seed's own alpha and their std" if len(seeds) > 1 else "") + ":")
    for key, f in fit.items():
        for fl in (False, True):
            g = f[fl]
            per = ""
            if "seeds" in f:
                a = [s[fl]["alpha"] for s in f["seeds"]]
                per = f"; seeds {', '.join(f'{v:.3f}' for v in a)} (std {sd(a):.3f})"
                if fl:
                    per += ", E " + ", ".join(f"{s[fl]['E']:.2f}" for s in f["seeds"])
            print(f"  L({key[0]}) at {key[0] == 'N' and 'D' or 'N'} = {key[1]:>9,} floor={fl!s:5}: alpha = {g['alpha']:.3f} "
                  f"± {g['alpha_std']:.3f}, E = {g['E']:.2f}, A = {g['A']:.3g}, rmse = {g['rmse']:.4f}{per}")
    print("\nlog-log slope between successive budgets, per size (a power law without floor: constant):")
    for N in sizes:
        m = [np.mean(by[N, D]) for D in budgets]
        print(f"  {N:>8,}: " + ", ".join(f"{-math.log(m[i + 1] / m[i]) / math.log(budgets[i + 1] / budgets[i]):.3f}"
                                       for i in range(len(budgets) - 1)))
    print("\nlog-log slope between successive sizes, per budget:")
    for D in budgets:
        m = [np.mean(by[N, D]) for N in sizes]
        print(f"  {D:>9,}: " + ", ".join(f"{-math.log(m[i + 1] / m[i]) / math.log(sizes[i + 1] / sizes[i]):.3f}"
                                       for i in range(len(sizes) - 1)))
    print("\ncompute C = 6 N D, sorted; '*' = on the frontier (lower than every cheaper point):")
    best = math.inf
    for C, N, D in sorted((6 * N * D, N, D) for N in sizes for D in budgets):
        L = float(np.mean(by[N, D]))
        star = "*" if L < best else " "
        best = min(best, L)
        print(f"  {star} C = {C:.3g}  N = {N:>8,}  D = {D:>9,}  D/N = {D / N:6.1f}  bpc = {L:.3f} ± {sd(by[N, D]):.3f}")
    # Hoffmann et al.'s joint form, fitted to the means over seeds (helpers.scaling.fit_loss_surface)
    from helpers.scaling import compute_optimal, fit_loss_surface

    means = mean_over_seeds(rows)
    print(f"\n{len(means)} means over {len(seeds)} seed(s) for the joint fit")
    surf = fit_loss_surface([r["params_non_embedding"] for r in means], [r["tokens"] for r in means],
                            [r["val_bpc"] for r in means])
    print(f"\nL(N, D) = E + A/N^a + B/D^b: E = {surf['E']:.3f}, A = {surf['A']:.3g}, B = {surf['B']:.3g}, "
          f"a = {surf['alpha']:.3f} ± {surf['alpha_std']:.3f}, b = {surf['beta']:.3f} ± {surf['beta_std']:.3f}, "
          f"rmse = {surf['rmse']:.4f} bits/char")
    for C in (1e12, 1e13, 6 * 4_823_808 * 15_360_000):
        n, d = compute_optimal(surf, C)
        print(f"  its optimum at C = {C:.3g}: N = {float(n):,.0f}, D = {float(d):.3g} ({float(d) / TRAIN_CHARS:.1f} epochs), "
              f"D/N = {float(d / n):,.0f}")
    # what the fits say about bigger models and longer runs on this corpus
    course_n = 4_739_072  # non-embedding parameters of the course's 6-layer, 256-wide model (helpers.model)
    course_d = 2500 * 24 * 256  # its training characters
    pred = surf["E"] + surf["A"] / course_n ** surf["alpha"] + surf["B"] / course_d ** surf["beta"]
    print(f"  the surface at the course's model (N = {course_n:,}, {course_n / sizes[-1]:.1f}x the largest rung; "
          f"D = {course_d:,}, {course_d / budgets[-1]:.1f}x the largest budget, {course_d / TRAIN_CHARS:.2f} epochs): "
          f"{pred:.3f} bits/char (its model card: 1.975 on the whole validation plays)")
    f4 = fit["N", budgets[-1]]
    print(f"\nL(N) at D = {budgets[-1]:,}, N = {course_n:,}: no floor {law(f4[False], course_n):.3f}, "
          f"floor {law(f4[True], course_n):.3f} bits/char")
    big = fit["D", sizes[-1]][False]
    print(f"L(D) of N = {sizes[-1]:,} (no floor): L = {big['A']:.3g} D^-{big['alpha']:.3f}")
    for target in (2.2, 2.0):
        D = (big["A"] / target) ** (1 / big["alpha"])
        print(f"L(D) of N = {sizes[-1]:,} (no floor) reaches {target} bits/char at D = {D:.3g} characters "
              f"= {D / TRAIN_CHARS:.1f} epochs, C = 6ND = {6 * sizes[-1] * D:.3g} FLOPs")


def anchors() -> None:
    """Two reference points on the ladder's own held-out characters (256 windows of 128 of the validation plays)."""
    import torch

    from helpers.data import shakespeare
    from helpers.train import load_checkpoint

    torch.set_num_threads(1)
    train, val = shakespeare("train"), shakespeare("val")
    T, W = 128, 256
    ev = val[: W * T + 1]
    chars = sorted(set(train) | set(val))
    ix = {c: i for i, c in enumerate(chars)}
    t = np.array([ix[c] for c in train])
    e = np.array([ix[c] for c in ev])
    big = np.ones((len(chars), len(chars)))  # add-one smoothing
    np.add.at(big, (t[:-1], t[1:]), 1)
    big /= big.sum(1, keepdims=True)
    print(f"\nbigram table (add-one, fitted on the {len(train):,} training characters) on the ladder's held-out "
          f"characters: {-np.mean(np.log2(big[e[:-1], e[1:]])):.3f} bits/char")
    ckpt = ROOT / "checkpoints" / "shakespeare-gpt"
    if ckpt.is_dir():
        model, tok, _ = load_checkpoint(ckpt)
        ids = torch.tensor(tok.encode(ev))
        x, y = ids[: W * T].view(W, T), ids[1: W * T + 1].view(W, T)
        model.eval()
        with torch.no_grad():
            tot = sum(model(x[i:i + 32], targets=y[i:i + 32]).loss.item() * len(x[i:i + 32]) for i in range(0, W, 32))
        print(f"the course's model (checkpoints/shakespeare-gpt) on the same windows: {tot / W / math.log(2):.3f} bits/char")


def arithmetic() -> None:
    print("\n--- the arithmetic of sections 3 and 5 ---")
    G = 1e9
    for name, psi in (("7B", 7e9), ("70B", 70e9)):
        P = 8
        rows = {"DDP": 16 * psi, "ZeRO-1": 4 * psi + 12 * psi / P, "ZeRO-2": 2 * psi + 14 * psi / P,
                "ZeRO-3/FSDP": 16 * psi / P}
        print(f"{name} on {P} GPUs, GB per GPU: " + ", ".join(f"{k} {v / G:,.1f}" for k, v in rows.items()))
    psi, nd = 7.5e9, 64  # the ZeRO paper's Figure 1
    print(f"ZeRO paper check (7.5B, 64 GPUs): {16 * psi / G:.1f}, {(4 * psi + 12 * psi / nd) / G:.1f}, "
          f"{(2 * psi + 14 * psi / nd) / G:.1f}, {16 * psi / nd / G:.2f} GB")
    for n, label in ((811_136, "default TrainConfig, 2 processes"), (124_439_808, "GPT-2 124M, 8 processes")):
        P = 2 if "2 proc" in label else 8
        print(f"ring all-reduce of fp32 gradients, {label}: {4 * n / 1e6:.2f} MB of gradients, each process sends "
              f"{2 * (P - 1) / P * 4 * n / 1e6:.2f} MB per step")
    C = 6 * 175e9 * 300e9
    from helpers.scaling import train_flops as _tf

    print(f"GPT-3: 6 x 175e9 x 300e9 = {C:.3g} FLOPs; helpers.scaling.train_flops(96, 12288, 2048, 50257, 300e9) = "
          f"{_tf(96, 12288, 2048, 50257, 300_000_000_000):.3g}")
    for gpu, peak in (("A100", 312e12), ("H100 SXM", 989e12)):
        eff = 0.4 * peak
        day = eff * 86400
        print(f"  {gpu} at 40%: {C / eff / 86400:,.0f} GPU-days ({C / eff / 86400 / 365:.1f} GPU-years); one GPU-day = "
              f"{day:.3g} FLOPs = {day / (6 * 124.4e6) / 1e9:.1f}B tokens for GPT-2 124M (N total)")
    # Chinchilla (Hoffmann et al. 2022), L(N, D) = E + A / N^a + B / D^b, and the 20-tokens-per-parameter rule
    E, A, B, a, b = 1.69, 406.4, 410.7, 0.34, 0.28
    G_ = (a * A / (b * B)) ** (1 / (a + b))
    n3 = G_ * (C / 6) ** (b / (a + b))
    n20 = math.sqrt(C / 120)
    L = lambda n, d: E + A / n ** a + B / d ** b  # noqa: E731
    print(f"  Chinchilla optimum for C = {C:.3g}: 20 tokens/param N = {n20 / 1e9:.1f}B, D = {20 * n20 / 1e12:.2f}T; "
          f"fitted law (approach 3) N = {n3 / 1e9:.1f}B, D = {C / 6 / n3 / 1e12:.2f}T "
          f"(exponents {b / (a + b):.2f}, {a / (a + b):.2f})")
    print(f"  Chinchilla's law: GPT-3 shape {L(175e9, 300e9):.3f}, 20 tok/param {L(n20, 20 * n20):.3f}, "
          f"approach-3 optimum {L(n3, C / 6 / n3):.3f} nats/token")
    n_course, d_course = 4_823_808, 2500 * 24 * 256
    Cc = 6 * n_course * d_course
    print(f"course model: 6 x {n_course:,} x {d_course:,} = {Cc:.3g} FLOPs; in 90 minutes = "
          f"{Cc / 5400 / 1e9:.0f} GFLOP/s; D/N = {d_course / n_course:.1f}, epochs {d_course / TRAIN_CHARS:.2f}; "
          f"attention term 2 n_layer n_ctx d per token forward = {2 * 6 * 256 * 256:,} vs 2N = {2 * n_course:,}")
    from helpers.scaling import train_flops

    exact = train_flops(6, 256, 256, 75, d_course)
    print(f"  helpers.scaling.train_flops (matrix products incl. attention, = FlopCounterMode): {exact:.3g} FLOPs "
          f"= {exact / Cc:.3f} x 6ND; 6 x (12 L C^2 + C V) x D = {6 * (12 * 6 * 256**2 + 256 * 75) * d_course:.3g}")
    print(f"  the course model on an A100 at 40%: {Cc / (0.4 * 312e12):.1f} s")
    print(f"  one A100-day at 40% / course model C = {0.4 * 312e12 * 86400 / Cc:,.0f} course models")
    import torch

    for dt in (torch.float32, torch.float16, torch.bfloat16):
        fi = torch.finfo(dt)
        print(f"{str(dt):15} bits {fi.bits}, eps {fi.eps:.3g}, max {fi.max:.4g}, smallest normal {fi.tiny:.3g}")


def figures(rows, sizes, budgets, by, fit) -> None:
    FIG.mkdir(parents=True, exist_ok=True)
    n_seeds = len({r["seed"] for r in rows})
    # every point is the mean over seeds; its bar, one standard deviation over seeds
    seeds_note = f"\n(means over {n_seeds} seeds, bars: ± one standard deviation)" if n_seeds > 1 else ""
    b_col = {D: f"C{i}" for i, D in enumerate(budgets)}
    s_col = {N: plt.get_cmap("viridis")(i / max(1, len(sizes) - 1) * 0.9) for i, N in enumerate(sizes)}

    # 1. L(N) per budget
    fig, ax = plt.subplots(figsize=(7.2, 4.8), layout="constrained")
    xs = np.geomspace(sizes[0] / 1.3, sizes[-1] * 1.3, 100)
    for D in budgets:
        c = b_col[D]
        ax.errorbar(sizes, [np.mean(by[N, D]) for N in sizes], yerr=[sd(by[N, D]) for N in sizes], fmt="o",
                    color=c, ms=6, capsize=3, elinewidth=1.2,
                    label=f"D = {D / 2**20:.0f}M chars: α = {fit['N', D][False]['alpha']:.3f} (line), "
                          f"{fit['N', D][True]['alpha']:.2f} with floor E = {fit['N', D][True]['E']:.2f} (dashes)")
        ax.plot(xs, law(fit["N", D][False], xs), "-", color=c, lw=1.2)
        ax.plot(xs, law(fit["N", D][True], xs), "--", color=c, lw=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_yticks([2.4, 2.6, 2.8, 3.0, 3.2, 3.4, 3.6], ["2.4", "2.6", "2.8", "3.0", "3.2", "3.4", "3.6"])
    ax.minorticks_off()
    ax.set_xticks(sizes, [fmt_n(n) for n in sizes])
    ax.set(xlabel="non-embedding parameters N (log scale)", ylabel="held-out bits per character (log scale)",
           title="the ladder: loss against size, one line per training budget" + seeds_note)
    ax.legend(loc="lower left", fontsize=8.5)
    fig.savefig(FIG / "17_loss_vs_params.png", dpi=DPI)
    plt.close(fig)

    # 2. L(D) per size
    fig, ax = plt.subplots(figsize=(7.2, 4.8), layout="constrained")
    xd = np.geomspace(budgets[0] / 1.15, budgets[-1] * 1.15, 50)
    for N in sizes:
        c = s_col[N]
        ax.errorbar(budgets, [np.mean(by[N, D]) for D in budgets], yerr=[sd(by[N, D]) for D in budgets], fmt="o",
                    color=c, ms=6, capsize=3, elinewidth=1.2, label=f"N = {fmt_n(N)}: α_D = {fit['D', N][False]['alpha']:.3f}")
        ax.plot(xd, law(fit["D", N][False], xd), "-", color=c, lw=1.2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_yticks([2.4, 2.6, 2.8, 3.0, 3.2, 3.4, 3.6], ["2.4", "2.6", "2.8", "3.0", "3.2", "3.4", "3.6"])
    ax.minorticks_off()
    ax.set_xticks(budgets, [f"{D / 2**20:.0f}M\n({D / TRAIN_CHARS:.2f} epochs)" for D in budgets])
    ax.set(xlabel="training characters D (log scale)", ylabel="held-out bits per character (log scale)",
           title="the same points against data: one line per size (no-floor fits)" + seeds_note)
    ax.legend(loc="lower left", fontsize=9)
    fig.savefig(FIG / "17_loss_vs_data.png", dpi=DPI)
    plt.close(fig)

    # 3. L(C), C = 6 N D, with the frontier
    fig, ax = plt.subplots(figsize=(7.2, 4.8), layout="constrained")
    for N in sizes:
        ax.errorbar([6 * N * D for D in budgets], [np.mean(by[N, D]) for D in budgets],
                    yerr=[sd(by[N, D]) for D in budgets], fmt="o-", color=s_col[N], ms=5, capsize=3, label=f"N = {fmt_n(N)}")
    pts = sorted((6 * N * D, float(np.mean(by[N, D])), N, D) for N in sizes for D in budgets)
    front, best = [], math.inf
    for C, L, N, D in pts:
        if L < best:
            front.append((C, L, N, D))
            best = L
    ax.plot([p[0] for p in front], [p[1] for p in front], "-", color="k", lw=2.5, alpha=0.25, zorder=0,
            label="frontier (lowest loss so far)")
    for C, L, N, D in front:
        ax.annotate(f"{D / N:.0f}" if D / N >= 20 else f"{D / N:.1f}", (C, L), textcoords="offset points",
                    xytext=(5, -13), fontsize=8, color="0.25")
    ax.set_xscale("log")
    ax.set(xlabel="training compute C = 6 N D (FLOPs, log scale)", ylabel="held-out bits per character",
           title="loss against compute; numbers: characters per parameter on the frontier" + seeds_note)
    ax.legend(loc="lower left", fontsize=9)
    fig.savefig(FIG / "17_loss_vs_compute.png", dpi=DPI)
    plt.close(fig)


def bf16_timing(rounds: int = 8, steps: int = 15) -> None:
    """Seconds per training step of the 4-layer, 128-wide model, float32 against bfloat16 autocast, one thread,
    interleaved (a block of float32 steps, then a block of bfloat16 steps, ``rounds`` times) so that a change in the
    machine's load hits both alike. A measurement, not deterministic: only with ``--bf16-timing``."""
    import copy
    import statistics
    import time

    import torch

    from helpers.data import get_batch
    from helpers.model import GPT
    from helpers.train import TrainConfig, _autocast, configure_optimizer

    torch.set_num_threads(1)
    cfg = TrainConfig(n_layer=4, n_head=4, n_embd=128, block_size=128, batch_size=16, device="cpu", seed=0)
    torch.manual_seed(0)
    base, ids = GPT(cfg.model_config(75)), torch.randint(0, 75, (200_000,))
    runs = {}
    for bf16 in (False, True):
        m = copy.deepcopy(base)
        runs[bf16] = (m, configure_optimizer(m, cfg), torch.Generator().manual_seed(0))

    def block(bf16: bool, n: int) -> float:
        m, opt, g = runs[bf16]
        t = time.perf_counter()
        for _ in range(n):
            x, y = get_batch(ids, 16, 128, generator=g)
            opt.zero_grad(set_to_none=True)
            with _autocast(torch.device("cpu"), bf16):
                loss = m(x, y).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
            opt.step()
        return (time.perf_counter() - t) / n

    def matmul_rate(m: int, k: int, n: int, dtype) -> float:  # FLOP/s, the best of three 1-second loops
        a, b = torch.randn(m, k).to(dtype), torch.randn(k, n).to(dtype)
        for _ in range(5):
            a @ b
        best = 0.0
        for _ in range(3):
            t, c = time.perf_counter(), 0
            while time.perf_counter() - t < 1.0:
                a @ b
                c += 1
            best = max(best, 2 * m * k * n * c / (time.perf_counter() - t))
        return best

    for shape in ((1024, 1024, 1024), (2048, 128, 512)):
        f, h = matmul_rate(*shape, torch.float32), matmul_rate(*shape, torch.bfloat16)
        print(f"matmul {shape}: float32 {f / 1e9:.0f} GFLOP/s, bf16 {h / 1e9:.0f} GFLOP/s, {h / f:.1f}x")

    block(False, 3), block(True, 3)  # warm up both
    from torch.profiler import ProfilerActivity, profile

    for bf16 in (False, True):  # where the time of 10 steps goes
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            block(bf16, 10)
        ev = {e.key: e.self_cpu_time_total / 1e3 for e in prof.key_averages()}
        attn = "aten::_scaled_dot_product_flash_attention_for_cpu_backward"
        print(f"{'bf16' if bf16 else 'float32'}, 10 steps: linear products (mm + addmm) "
              f"{ev.get('aten::mm', 0) + ev.get('aten::addmm', 0):.0f} ms, attention backward {ev.get(attn, 0):.0f} ms, "
              f"all {sum(ev.values()):.0f} ms")
    ratios = []
    for r in range(rounds):
        a, b = block(False, steps), block(True, steps)
        ratios.append(b / a)
        print(f"round {r}: float32 {a * 1e3:.0f} ms/step, bf16 {b * 1e3:.0f} ms/step, ratio {b / a:.2f}")
    print(f"bf16 time / float32 time: median {statistics.median(ratios):.2f} "
          f"(min {min(ratios):.2f}, max {max(ratios):.2f}), torch {torch.__version__}")


def main() -> None:
    if "--bf16-timing" in sys.argv[1:]:
        bf16_timing()
        return
    rows, sizes, budgets, by = ladder()
    if budgets != sorted(BUDGETS):
        print(f"note: the CSV's budgets {budgets} differ from helpers.scaling.BUDGETS {BUDGETS}")
    fit = fits(rows, sizes, budgets)
    report(rows, sizes, budgets, by, fit)
    anchors()
    arithmetic()
    figures(rows, sizes, budgets, by, fit)
    print("\nwrote " + ", ".join(p.name for p in sorted(FIG.glob("17_*.png"))))


if __name__ == "__main__":
    main()
