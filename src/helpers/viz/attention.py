"""Attention heatmaps with matplotlib: tokens on both axes, a colour bar, the values written on short inputs."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["plot_attention", "as_matrix"]


def as_matrix(weights, batch: int = 0, head: int | None = None) -> np.ndarray:
    """Reduce ``[T, T]``, ``[H, T, T]`` or ``[B, H, T, T]`` attention to one ``[Tq, Tk]`` NumPy matrix."""
    if isinstance(weights, torch.Tensor):
        w = weights.detach().float().cpu().numpy()
    else:
        w = np.asarray(weights, dtype=float)
    if w.ndim == 4:
        if not 0 <= batch < w.shape[0]:
            raise ValueError(f"batch={batch} is out of range for weights of shape {w.shape}")
        w = w[batch]
    if w.ndim == 3:
        if head is None:
            raise ValueError(f"weights of shape {w.shape} have several heads: pass head=0..{w.shape[0] - 1}")
        if not 0 <= head < w.shape[0]:
            raise ValueError(f"head={head} is out of range for {w.shape[0]} heads")
        w = w[head]
    if w.ndim != 2:
        raise ValueError(f"weights must be [Tq, Tk], [H, Tq, Tk] or [B, H, Tq, Tk], got shape {w.shape}")
    return w


def plot_attention(
    weights,
    tokens: Sequence[str],
    key_tokens: Sequence[str] | None = None,
    head: int | None = None,
    batch: int = 0,
    title: str | None = None,
    ax=None,
    annotate: bool | None = None,
    cmap: str = "viridis",
    causal: bool | None = None,
):
    """Draw one attention matrix as a heatmap; return the matplotlib ``Figure``.

    ``weights``: ``[T, T]``, ``[H, T, T]`` (pick ``head``) or ``[B, H, T, T]`` (pick ``batch`` and ``head``).
    ``tokens`` label the queries (rows) and, unless ``key_tokens`` is given, the keys (columns). Values are
    written in the cells when the sequence is short (``annotate``). Masked positions above the diagonal of a
    causal matrix are drawn grey (masked), not as zeros.
    """
    w = as_matrix(weights, batch=batch, head=head)
    tokens = [str(t) for t in tokens]
    key_tokens = tokens if key_tokens is None else [str(t) for t in key_tokens]
    if len(tokens) != w.shape[0] or len(key_tokens) != w.shape[1]:
        raise ValueError(
            f"weights are {w.shape[0]} queries x {w.shape[1]} keys, but got {len(tokens)} query tokens "
            f"and {len(key_tokens)} key tokens"
        )
    Tq, Tk = w.shape
    if causal is None:
        causal = Tq == Tk and Tq > 1 and np.allclose(np.triu(w, k=1), 0.0)
    shown = np.ma.masked_where(np.triu(np.ones_like(w, dtype=bool), k=1), w) if causal else w
    if ax is None:
        size = min(12.0, max(3.5, 0.45 * max(Tq, Tk) + 2))
        fig, ax = plt.subplots(figsize=(size + 1, size))
    else:
        fig = ax.figure
    cm = plt.get_cmap(cmap).copy()
    cm.set_bad("#d9d9d9")
    im = ax.imshow(shown, cmap=cm, vmin=0.0, vmax=max(1e-9, float(np.max(w))), aspect="auto")
    step_q = max(1, Tq // 40)
    step_k = max(1, Tk // 40)
    ax.set_yticks(range(0, Tq, step_q), [tokens[i] for i in range(0, Tq, step_q)])
    ax.set_xticks(range(0, Tk, step_k), [key_tokens[i] for i in range(0, Tk, step_k)], rotation=90)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    if annotate is None:
        annotate = max(Tq, Tk) <= 12
    if annotate:
        for i in range(Tq):
            for j in range(Tk):
                if causal and j > i:
                    continue
                ax.text(j, i, f"{w[i, j]:.2f}", ha="center", va="center", fontsize=8,
                        color="white" if w[i, j] < 0.6 * np.max(w) else "black")
    if title:
        ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="attention weight")
    return fig
