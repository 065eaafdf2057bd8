"""Figures for lecture note 19 (beyond text: images as tokens, and the encoder–decoder), from data, formulas and
numbers measured once and written here.

    python scripts/note_figures_19.py        # writes lecture_notes/figures/19_*.png (a few seconds, offline, CPU)

Nothing is trained when this runs. The digit comes from ``helpers.vision.load_digits()`` (scikit-learn's copy of
the data, read offline); the costs are formulas; the accuracies are constants, with the command that produced
them, so the figures are the same on every machine and every run.

- ``19_patches_and_tokens.png``: one training digit (``digit_split()[0][7]``, a 7) cut into 16 patches of 2 × 2,
  and the sequence the ViT reads: a class token, then the 16 patch vectors of 4 pixels in reading order, with the
  shape of every step up to the 17 × 64 input of the encoder (``helpers.vision.patchify``, ``ViTConfig()``).
- ``19_prefix_vs_cross.png``: attention scores per forward pass against the number of image tokens, for a
  32-layer language model reading a 100-token question: image tokens as a prefix, L (T + n)^2, or read by a
  cross-attention layer every 4th layer, L T^2 + (L / 4) T n (the formulas of the notebook's section 8), with
  LLaVA-1.5's 576 tokens and Flamingo's 64 marked.
- ``19_cv_intervals.png``: left, the three models' accuracy with 95 % Wilson intervals on the one fixed split
  (359 held-out digits) and out of fold in five-fold cross-validation (1,797 digits); right, the paired-bootstrap
  intervals of the ViT's lead over each baseline, on the split and in cross-validation.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

from helpers.stats import wilson_interval  # noqa: E402
from helpers.vision import ViTConfig, digit_split, load_digits, patchify  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FIG = ROOT / "lecture_notes" / "figures"
DPI = 110
plt.rcParams.update({"font.size": 10, "axes.titlesize": 10.5, "legend.fontsize": 8.5})

# ---------------------------------------------------------------------------------------------------------------
# Measured: notebooks/19_beyond_text.ipynb, section 4, with the committed checkpoint checkpoints/digits-vit (trained
# by `python -m helpers.vision`, 1,500 steps) and the two baselines fitted in the notebook (fit_logistic; fit_mlp,
# 1,500 steps, seed 0, float64). Correct answers out of the 359 held-out digits of digit_split():
SPLIT_N = 359
SPLIT_CORRECT = {"logistic regression": 348, "MLP (128 hidden)": 350, "ViT": 354}
# Five-fold cross-validation: the out-of-fold predictions in src/helpers/digits_cv.csv, written by
# `python -m helpers.vision --cv` (5 folds x 3 models, 1,500 steps each, seed 0; read by helpers.vision.load_cv).
CV_N = 1797
CV_CORRECT = {"logistic regression": 1720, "MLP (128 hidden)": 1749, "ViT": 1757}
# helpers.stats.paired_difference(vit_correct, other_correct) (10,000 resamples, seed 0): (difference, low, high)
# in points; the same cells of the notebook.
PAIRED = {
    ("one split, 359", "ViT − logistic regression"): (1.6713, 0.0000, 3.3426),
    ("one split, 359", "ViT − MLP"): (1.1142, -0.2786, 2.7855),
    ("5-fold CV, 1,797", "ViT − logistic regression"): (2.0590, 1.1686, 2.9494),
    ("5-fold CV, 1,797", "ViT − MLP"): (0.4452, -0.2782, 1.1686),
}

# ---------------------------------------------------------------------------------------------------------------
# The cost comparison of the notebook's section 8: a 32-layer language model, a 100-token question, and either
# n image tokens put in front of the text (LLaVA) or n image tokens read by cross-attention layers inserted every
# 4th layer (Flamingo's design). Scores counted as full T x T per layer, as the notebook does (a causal mask
# computes about half of them).
LAYERS, TEXT, EVERY = 32, 100, 4
LLAVA15_TOKENS = (336 // 14) ** 2  # CLIP ViT-L/14 at 336 x 336: 24 x 24 = 576 patch tokens
FLAMINGO_TOKENS = 64  # the Perceiver resampler's latents
LLAVA_TOKENS = (224 // 14) ** 2  # the original LLaVA: CLIP ViT-L/14 at 224 x 224, 16 x 16 = 256


def prefix_scores(n):
    """Attention scores of one forward pass with n image tokens in front of the text: L (T + n)^2."""
    return LAYERS * (TEXT + np.asarray(n, dtype=float)) ** 2


def cross_scores(n):
    """Self-attention over the text alone in every layer, plus a T x n cross-attention every EVERY-th layer."""
    return LAYERS * TEXT ** 2 + (LAYERS // EVERY) * TEXT * np.asarray(n, dtype=float)


def patches_figure() -> None:
    images, labels = load_digits()
    train_idx, _ = digit_split()
    img, label = images[train_idx[7]], int(labels[train_idx[7]])
    cfg = ViTConfig()
    p = cfg.patch_size
    tokens = patchify(img[None], p)[0]  # [16, 4]
    n, k = tokens.shape

    fig = plt.figure(figsize=(12.5, 4.6), layout="constrained")
    gs = fig.add_gridspec(2, 2, width_ratios=[1, 3.1], height_ratios=[3.2, 1])
    ax0 = fig.add_subplot(gs[0, 0])
    ax0.imshow(img, cmap="gray", vmin=0, vmax=1)
    for b in range(1, img.shape[0] // p):
        ax0.axhline(p * b - 0.5, color="tab:orange", lw=1.5)
        ax0.axvline(p * b - 0.5, color="tab:orange", lw=1.5)
    for i in range(n):
        r, c = divmod(i, img.shape[1] // p)
        ax0.text(p * c - 0.38, p * r - 0.38, str(i + 1), color="white", fontsize=7.5, ha="left", va="top",
                 bbox={"boxstyle": "square,pad=0.12", "facecolor": "tab:orange", "edgecolor": "none"})
    ax0.set_xticks([]), ax0.set_yticks([])
    ax0.set_title(f"a {label}: 8 x 8 pixels, 16 patches of {p} x {p}")

    ax1 = fig.add_subplot(gs[0, 1])
    seq = np.full((k, n + 1), np.nan)
    seq[:, 1:] = tokens.T.numpy()
    ax1.imshow(seq, cmap="gray", vmin=0, vmax=1, aspect="auto")
    ax1.add_patch(Rectangle((-0.5, -0.5), 1, k, facecolor="tab:blue", alpha=0.85, edgecolor="k"))
    ax1.text(0, (k - 1) / 2, "class token: learned,\njoins after the embedding", color="white", ha="center",
             va="center", fontsize=8, rotation=90)
    for j in range(1, n + 1):
        ax1.axvline(j - 0.5, color="tab:orange", lw=0.8)
    ax1.set_xticks(range(n + 1), ["cls"] + [str(i) for i in range(1, n + 1)])
    ax1.set_yticks(range(k), ["top left", "top right", "bottom left", "bottom right"])  # row by row (p = 2)
    ax1.set_xlabel("position in the sequence (0: class token; 1-16: patches in reading order)")
    ax1.set_title(f"the sequence the encoder reads: 1 + {n} tokens; each patch is {k} numbers before the embedding")

    ax2 = fig.add_subplot(gs[1, :])
    ax2.axis("off")
    steps = [("image", "[8, 8]"), ("patchify, p = 2", f"[{n}, {k}]"), (f"linear W_E: {k} -> {cfg.d_model}",
                                                                          f"[{n}, {cfg.d_model}]"),
             ("class token in front", f"[{n + 1}, {cfg.d_model}]"), ("+ learned positions", f"[{n + 1}, {cfg.d_model}]"),
             (f"{cfg.n_layer} encoder layers, no mask", f"[{n + 1}, {cfg.d_model}]"),
             ("class token -> head", f"[{cfg.n_classes}] scores")]
    xs = np.linspace(0.06, 0.94, len(steps))
    for i, (x, (what, shape)) in enumerate(zip(xs, steps, strict=True)):
        ax2.text(x, 0.62, shape, ha="center", va="center", fontsize=10, family="monospace",
                 bbox={"boxstyle": "round", "facecolor": "#eef3fb", "edgecolor": "tab:blue"})
        ax2.text(x, 0.12, what, ha="center", va="center", fontsize=8.5, color="dimgrey")
        if i:
            ax2.annotate("", xy=(x - 0.045, 0.62), xytext=(xs[i - 1] + 0.045, 0.62), xycoords="axes fraction",
                         arrowprops={"arrowstyle": "->", "color": "grey"})
    fig.savefig(FIG / "19_patches_and_tokens.png", dpi=DPI)
    plt.close(fig)


def prefix_vs_cross_figure() -> None:
    fig, ax = plt.subplots(figsize=(8.5, 4.8), layout="constrained")
    n = np.geomspace(16, 2304, 300)
    ax.plot(n, prefix_scores(n) / 1e6, "C3-", lw=1.8,
            label=f"prefix (LLaVA): {LAYERS} (T + n)^2")
    ax.plot(n, cross_scores(n) / 1e6, "C0-", lw=1.8,
            label=f"cross-attention every {EVERY}th layer (Flamingo's design): {LAYERS} T^2 + {LAYERS // EVERY} T n")
    ax.axhline(LAYERS * TEXT ** 2 / 1e6, color="grey", lw=0.9, ls=":", label=f"the {TEXT}-token question alone")
    for tokens, name, fn, color in ((LLAVA15_TOKENS, "LLaVA-1.5: 576", prefix_scores, "C3"),
                                    (LLAVA_TOKENS, "LLaVA: 256", prefix_scores, "C3"),
                                    (FLAMINGO_TOKENS, "Flamingo: 64", cross_scores, "C0")):
        y = float(fn(tokens)) / 1e6
        ax.plot(tokens, y, "o", color=color, ms=8, mec="k", mew=0.6)
        below = fn is cross_scores
        ax.annotate(f"{name}: {y:.2f} M" if y < 1 else f"{name}: {y:.1f} M", (tokens, y),
                    xytext=(6, -14) if below else (-8, 8), textcoords="offset points", fontsize=8.5,
                    color=color, ha="left" if below else "right")
    ax.set(xscale="log", yscale="log", xlim=(16, 2304), ylim=(0.2, 200),
           xlabel="image tokens n", ylabel="attention scores per forward pass (millions)",
           title=f"{LAYERS} layers, a question of T = {TEXT} tokens: every layer pays for a prefix, "
                 f"only {LAYERS // EVERY} layers for cross-attention")
    ax.set_xticks([16, 64, 256, 576, 1024, 2304], ["16", "64", "256", "576", "1,024", "2,304"])
    ax.legend(loc="upper left", fontsize=8.5)
    fig.savefig(FIG / "19_prefix_vs_cross.png", dpi=DPI)
    plt.close(fig)


def cv_figure() -> None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12.5, 3.9), layout="constrained",
                                   gridspec_kw={"width_ratios": [1.1, 1]})
    names = list(SPLIT_CORRECT)
    for i, name in enumerate(names):
        for dy, (k, n, color, label) in ((0.14, (SPLIT_CORRECT[name], SPLIT_N, "C1", f"one split, {SPLIT_N} digits")),
                                         (-0.14, (CV_CORRECT[name], CV_N, "C0", f"5-fold CV, {CV_N:,} digits"))):
            lo, hi = wilson_interval(k, n)
            acc = k / n
            ax1.errorbar(100 * acc, i + dy, xerr=[[100 * (acc - lo)], [100 * (hi - acc)]], fmt="o", color=color,
                         capsize=4, label=label if i == 0 else None)
            ax1.text(100 * hi + 0.15, i + dy, f"{100 * acc:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]", va="center",
                     fontsize=8, color=color)
    ax1.set_yticks(range(len(names)), names)
    ax1.set_xlim(94, 101.4)
    ax1.set_ylim(-0.5, len(names) - 0.3)
    ax1.set_xlabel("accuracy, % (95 % Wilson interval)")
    ax1.set_title("accuracy of each model: the intervals overlap on one split")
    ax1.legend(loc="lower right", fontsize=8)

    pairs = ["ViT − logistic regression", "ViT − MLP"]
    for i, pair in enumerate(pairs):
        for dy, (setting, color) in ((0.14, ("one split, 359", "C1")), (-0.14, ("5-fold CV, 1,797", "C0"))):
            d, lo, hi = PAIRED[(setting, pair)]
            ax2.errorbar(d, i + dy, xerr=[[d - lo], [hi - d]], fmt="o", color=color, capsize=4,
                         label=setting + " digits" if i == 0 else None)
            ax2.text(hi + 0.1, i + dy, f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}]", va="center", fontsize=8, color=color)
    ax2.axvline(0, color="k", lw=0.9)
    ax2.set_yticks(range(len(pairs)), pairs)
    ax2.set_xlim(-1, 5)
    ax2.set_ylim(-0.5, len(pairs) - 0.3)
    ax2.set_xlabel("difference in accuracy, points (95 % paired-bootstrap interval)")
    ax2.set_title("the ViT's lead: settled against logistic regression only in CV")
    ax2.legend(loc="lower right", fontsize=8)
    fig.savefig(FIG / "19_cv_intervals.png", dpi=DPI)
    plt.close(fig)


def main() -> None:
    FIG.mkdir(parents=True, exist_ok=True)
    patches_figure()
    prefix_vs_cross_figure()
    cv_figure()
    for label, counts, n in (("one split", SPLIT_CORRECT, SPLIT_N), ("5-fold CV", CV_CORRECT, CV_N)):
        for name, k in counts.items():
            lo, hi = wilson_interval(k, n)
            print(f"{label:>9}  {name:<20} {k:>5,} / {n:,} = {100 * k / n:5.1f} %  [{100 * lo:.1f}, {100 * hi:.1f}]  "
                  f"({n - k} wrong)")
    for tokens, name in ((FLAMINGO_TOKENS, "Flamingo"), (LLAVA_TOKENS, "LLaVA"), (LLAVA15_TOKENS, "LLaVA-1.5")):
        print(f"{name:<10} n = {tokens:>3}: prefix {prefix_scores(tokens) / 1e6:6.2f} M scores, "
              f"cross-attention {cross_scores(tokens) / 1e6:5.2f} M (text alone {LAYERS * TEXT ** 2 / 1e6:.2f} M)")


if __name__ == "__main__":
    main()
