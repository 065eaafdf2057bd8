"""Training pictures: loss curves, the learning-rate schedule, and the tokenizer's vocabulary trade-off.

Each function draws into ``ax`` when given one (and returns its figure), else makes a new figure; it always
returns the matplotlib ``Figure``, so a notebook cell ends with ``plt.show()`` and a script with ``savefig``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter, NullFormatter

__all__ = ["plot_loss_curves", "plot_lr_schedule", "plot_vocab_tradeoff"]


def _figure(ax, figsize: tuple[float, float]):
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize, layout="tight")  # tight: axis labels are never cut off
        return fig, ax
    if not hasattr(ax, "plot") or not hasattr(ax, "figure"):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}")
    return ax.figure, ax


def _history_column(history: Sequence[dict], key: str) -> np.ndarray:
    vals = []
    for i, h in enumerate(history):
        if key not in h:
            raise ValueError(f"history[{i}] has no {key!r} (keys: {sorted(h)})")
        vals.append(float(h[key]))
    return np.asarray(vals)


def plot_loss_curves(
    history: Sequence[dict],
    ax=None,
    title: str = "Loss during training",
    bits: bool = False,
    logy: bool = False,
    keys: tuple[str, ...] = ("train_loss", "val_loss"),
):
    """Training and validation loss against the step, from ``state.history`` (a list of dicts).

    Each entry needs ``"step"`` and the ``keys`` to plot (``"train_loss"``, ``"val_loss"`` by default, in nats).
    ``bits=True`` divides by ln 2 (bits per token, which is bits per character for a character model).
    The lowest validation loss is marked.
    """
    if isinstance(history, dict) or not isinstance(history, Sequence):
        raise TypeError(f"history must be a list of dicts (state.history), got {type(history).__name__}")
    if len(history) == 0:
        raise ValueError("history is empty: train for at least one evaluation interval first")
    if not all(isinstance(h, dict) for h in history):
        raise TypeError("every history entry must be a dict with 'step' and the loss keys")
    if not keys:
        raise ValueError("keys must name at least one column to plot")
    steps = _history_column(history, "step")
    fig, ax = _figure(ax, (7, 4))
    scale = 1 / math.log(2) if bits else 1.0
    styles = {"train_loss": dict(color="C0", label="train"), "val_loss": dict(color="C1", label="validation")}
    for key in keys:
        y = _history_column(history, key) * scale
        ax.plot(steps, y, marker="o", ms=3, **styles.get(key, dict(label=key)))
        if key == "val_loss":
            i = int(np.argmin(y))
            ax.scatter([steps[i]], [y[i]], s=80, facecolors="none", edgecolors="C1", zorder=3)
            ax.annotate(f"best {y[i]:.3f}", (steps[i], y[i]), textcoords="offset points", xytext=(5, 8), fontsize=8)
    ax.set_xlabel("step")
    ax.set_ylabel("loss (bits per token)" if bits else "loss (nats per token)")
    if logy:
        ax.set_yscale("log")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def plot_lr_schedule(cfg, steps: int | None = None, ax=None, title: str = "Learning rate: warm-up, then cosine decay"):
    """The learning rate ``helpers.train.lr_at`` gives at every step of ``cfg`` (a ``TrainConfig``).

    ``steps``: how far to draw (default: a little past the end of the decay, so the floor ``min_lr`` shows).
    """
    from ..train import TrainConfig, lr_at

    if not isinstance(cfg, TrainConfig):
        raise TypeError(f"cfg must be a helpers.train.TrainConfig, got {type(cfg).__name__}")
    decay = cfg.lr_decay_iters or cfg.max_iters
    if steps is None:
        steps = max(cfg.max_iters, int(decay * 1.1) + 1)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    x = np.arange(steps)
    y = np.array([lr_at(int(s), cfg) for s in x])
    fig, ax = _figure(ax, (7, 3.5))
    ax.plot(x, y, color="C2")
    if cfg.warmup_iters:
        ax.axvline(cfg.warmup_iters, color="grey", ls=":", lw=1)
        ax.text(cfg.warmup_iters, cfg.lr, " end of warm-up", va="top", fontsize=8)
    ax.axvline(decay, color="grey", ls="--", lw=1)
    ax.text(decay, cfg.lr / 2, " end of decay", fontsize=8)
    ax.axhline(cfg.min_lr, color="grey", lw=0.5)
    ax.set_xlabel("step")
    ax.set_ylabel("learning rate")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return fig


def plot_vocab_tradeoff(
    vocab_sizes: Sequence[int],
    seq_lengths: Sequence[float],
    labels: Sequence[str] | None = None,
    ax=None,
    per: str = "tokens per 1,000 characters",
    title: str = "Vocabulary size against sequence length",
):
    """One point per tokenizer: its vocabulary size (x, log scale) against the length of a text in tokens (y).

    A bigger vocabulary makes sequences shorter (more text fits in the context window) but costs a bigger
    embedding matrix and rarer tokens. ``labels`` names the points (``"chars"``, ``"BPE 512"``, ...).
    """
    v = np.asarray(vocab_sizes, dtype=float)
    n = np.asarray(seq_lengths, dtype=float)
    if v.ndim != 1 or n.ndim != 1 or len(v) != len(n) or len(v) == 0:
        raise ValueError(
            f"vocab_sizes and seq_lengths must be 1-D and of the same non-zero length, got {v.shape} and {n.shape}"
        )
    if (v <= 0).any() or (n <= 0).any() or not (np.isfinite(v).all() and np.isfinite(n).all()):
        raise ValueError("vocab_sizes and seq_lengths must be positive and finite")
    if labels is not None and len(labels) != len(v):
        raise ValueError(f"labels must have one entry per point ({len(v)}), got {len(labels)}")
    fig, ax = _figure(ax, (7, 4))
    order = np.argsort(v)
    ax.plot(v[order], n[order], color="C0", marker="o")
    for i, label in enumerate(labels or []):
        ax.annotate(str(label), (v[i], n[i]), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xscale("log")
    ax.set_xticks(np.unique(v))  # a tick at every vocabulary size shown
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))  # 1,000 rather than 10^3
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("vocabulary size (log scale)")
    ax.set_ylabel(per)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    return fig
