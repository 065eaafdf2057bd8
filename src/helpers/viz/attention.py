"""Attention pictures with matplotlib, for our ``GPT`` and for any Hugging Face model.

Where the weights come from:

- our ``GPT``: ``model(idx, return_attention=True).attentions``, a tuple of ``[B, H, T, T]``, one per layer;
- a Hugging Face model: ``model(ids, output_attentions=True).attentions``, the same tuple (load the model with
  ``attn_implementation="eager"``: the fused kernels return no weights).

Every function here takes such a tuple (or the model output itself, or one stacked tensor), picks a batch row
with ``batch=``, and labels the axes with ``tokens`` (a list of strings, or one string for a character model).
Every figure is a matplotlib ``Figure``: ``fig.savefig("name.png")`` or ``"name.svg"`` saves it.

- ``plot_attention``: one head as a labelled heatmap (causal positions drawn grey and hatched, not as zeros);
- ``plot_attention_grid``: every layer x head at a glance;
- ``plot_attention_lines``: the token-to-token line view (bertviz's "head view") as a static figure;
- ``plot_attention_diff``: two models (or two inputs) compared, a diverging map centred at 0;
- ``plot_head_map``: one number per head (a score, an entropy, a loss change) as a layer x head map;
- ``show_attention``: layer/head sliders in Jupyter, above a PNG that also shows where no kernel runs;
- per-head statistics: ``prev_token_score``, ``first_token_score``, ``attention_entropy``, ``induction_score``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.collections import LineCollection
from matplotlib.patches import Patch, Polygon

__all__ = [
    "plot_attention",
    "as_matrix",
    "stack_attentions",
    "token_labels",
    "plot_attention_grid",
    "plot_attention_lines",
    "plot_attention_diff",
    "plot_head_map",
    "show_attention",
    "prev_token_score",
    "first_token_score",
    "attention_entropy",
    "induction_score",
    "HEAD_COLORS",
]

# matplotlib's tab10: one colour per head in the line views (HTML view too), repeated past ten heads.
HEAD_COLORS = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)
_MASKED = "#d9d9d9"  # colour of causally masked cells


# ---------------------------------------------------------------------------------------------- inputs
def _to_numpy(x, what: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().float().cpu().numpy()
    if isinstance(x, np.ndarray):
        return x.astype(float, copy=False)
    raise TypeError(f"{what} must be a torch.Tensor or a NumPy array, got {type(x).__name__}")


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


def stack_attentions(attentions, batch: int = 0) -> np.ndarray:
    """All layers' attention for one batch row as a NumPy array ``[L, H, Tq, Tk]``.

    ``attentions`` may be: a model output with an ``.attentions`` field (ours or Hugging Face's); a tuple or
    list of per-layer ``[B, H, Tq, Tk]`` (or ``[H, Tq, Tk]``) tensors; or one tensor ``[L, B, H, Tq, Tk]``,
    ``[B, H, Tq, Tk]`` (one layer), ``[H, Tq, Tk]`` (one layer, one row) or ``[Tq, Tk]`` (one head).
    """
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)):
        raise TypeError(f"batch must be an int, got {type(batch).__name__}")
    if hasattr(attentions, "attentions") and not isinstance(attentions, (torch.Tensor, np.ndarray)):
        attentions = attentions.attentions
        if attentions is None:
            raise ValueError(
                "the model output holds no attention weights: call our GPT with return_attention=True, "
                "or a Hugging Face model with output_attentions=True"
            )
    if isinstance(attentions, (tuple, list)):
        if len(attentions) == 0:
            raise ValueError(
                "got no attention weights (an empty tuple): a Hugging Face model returns them only with the "
                "eager implementation; load it with attn_implementation='eager' or call "
                "model.set_attn_implementation('eager')"
            )
        layers = []
        for i, a in enumerate(attentions):
            if a is None:
                raise ValueError(f"layer {i} has no attention weights (None): ask the model for them")
            a = _to_numpy(a, f"attentions[{i}]")
            if a.ndim == 3:
                a = a[None]
            if a.ndim != 4:
                raise ValueError(f"attentions[{i}] must be [B, H, Tq, Tk] or [H, Tq, Tk], got shape {a.shape}")
            if layers and a.shape != layers[0].shape:
                raise ValueError(f"attentions[{i}] has shape {a.shape} but attentions[0] has {layers[0].shape}")
            layers.append(a)
        a = np.stack(layers)  # [L, B, H, Tq, Tk]
    else:
        a = _to_numpy(attentions, "attentions")
        if a.ndim == 2:
            a = a[None, None, None]
        elif a.ndim == 3:
            a = a[None, None]
        elif a.ndim == 4:
            a = a[None]
        elif a.ndim != 5:
            raise ValueError(
                f"attentions must be [L, B, H, Tq, Tk], [B, H, Tq, Tk], [H, Tq, Tk] or [Tq, Tk], got shape {a.shape}"
            )
    if not 0 <= batch < a.shape[1]:
        raise ValueError(f"batch={batch} is out of range: the attentions hold a batch of {a.shape[1]}")
    if a.shape[-1] == 0 or a.shape[-2] == 0:
        raise ValueError(f"the attentions cover no tokens (shape {a.shape})")
    return a[:, batch]


def _tokens(tokens, n: int, shape: tuple, what: str = "tokens") -> list[str]:
    """Tokens as a list of strings, checked against ``n`` positions (a str is split into characters)."""
    if isinstance(tokens, str):
        tokens = list(tokens)
    elif isinstance(tokens, torch.Tensor | np.ndarray) or not isinstance(tokens, Sequence):
        raise TypeError(
            f"{what} must be a list of strings (or one str of characters), got {type(tokens).__name__}; "
            "turn ids into strings with token_labels(tokenizer, ids)"
        )
    tokens = [str(t) for t in tokens]
    if len(tokens) != n:
        raise ValueError(
            f"got {len(tokens)} {what} but the attention weights cover {n} positions (shape {tuple(shape)}): "
            "pass one token string per position"
        )
    return tokens


def _visible(tok: str) -> str:
    """A label a reader can see: spaces as ␣, newlines as ↵, tabs as →, the empty string as ∅."""
    if tok == "":
        return "∅"
    return tok.replace(" ", "␣").replace("\n", "↵").replace("\t", "→").replace("\r", "")


def _window(window, n: int) -> tuple[int, int]:
    if window is None:
        return 0, n
    if not isinstance(window, (tuple, list)) or len(window) != 2:
        raise TypeError(f"window must be a (start, end) pair of ints, got {window!r}")
    start, end = (int(v) for v in window)
    if not 0 <= start < end <= n:
        raise ValueError(f"window=({start}, {end}) must satisfy 0 <= start < end <= {n} (the number of tokens)")
    return start, end


def _index(value, n: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    if not 0 <= value < n:
        raise ValueError(f"{what}={value} is out of range: there are {n} (0..{n - 1})")
    return int(value)


def _is_causal(w: np.ndarray) -> bool:
    """True when a square matrix (or stack of them) has nothing above the diagonal."""
    return w.shape[-1] == w.shape[-2] and w.shape[-1] > 1 and bool(np.allclose(np.triu(w, k=1), 0.0))


def _ticks(ax, labels_q: list[str], labels_k: list[str], max_labels: int) -> None:
    """Tick labels on both axes, thinned to at most ``max_labels`` so that long sequences stay readable."""
    if isinstance(max_labels, bool) or not isinstance(max_labels, int) or max_labels < 1:
        raise ValueError(f"max_labels must be a positive int, got {max_labels!r}")
    sq = max(1, math.ceil(len(labels_q) / max_labels))
    sk = max(1, math.ceil(len(labels_k) / max_labels))
    ax.set_yticks(range(0, len(labels_q), sq), [_visible(labels_q[i]) for i in range(0, len(labels_q), sq)])
    ax.set_xticks(range(0, len(labels_k), sk), [_visible(labels_k[i]) for i in range(0, len(labels_k), sk)],
                  rotation=90)


def _hatch_upper(ax, n: int) -> None:
    """Hatch the strictly upper triangle of an ``n x n`` image (the future, which a causal query cannot see)."""
    if n < 2:
        return
    pts = [(0.5, -0.5), (n - 0.5, -0.5), (n - 0.5, n - 1.5)]
    for i in range(n - 2, -1, -1):
        pts += [(i + 0.5, i + 0.5), (i + 0.5, i - 0.5)]
    ax.add_patch(Polygon(pts, closed=True, fill=False, hatch="///", edgecolor="#a6a6a6", linewidth=0))


# ---------------------------------------------------------------------------------------------- heatmaps
def plot_attention(
    weights,
    tokens: Sequence[str] | str,
    key_tokens: Sequence[str] | str | None = None,
    head: int | None = None,
    batch: int = 0,
    title: str | None = None,
    ax=None,
    annotate: bool | None = None,
    cmap: str = "viridis",
    causal: bool | None = None,
    window: tuple[int, int] | None = None,
    max_labels: int = 40,
    hatch: bool = True,
    colorbar: bool = True,
):
    """Draw one attention matrix as a heatmap; return the matplotlib ``Figure``.

    ``weights``: ``[T, T]``, ``[H, T, T]`` (pick ``head``) or ``[B, H, T, T]`` (pick ``batch`` and ``head``).
    ``tokens`` label the queries (rows) and, unless ``key_tokens`` is given, the keys (columns). Values are
    written in the cells when the sequence is short (``annotate``). Masked positions above the diagonal of a
    causal matrix are drawn grey and hatched (masked), not as zeros. ``window=(start, end)`` shows only those
    tokens (queries and keys); at most ``max_labels`` tick labels are written per axis.
    """
    w = as_matrix(weights, batch=batch, head=head)
    tokens = _tokens(tokens, w.shape[0], w.shape, "query tokens")
    key_tokens = tokens if key_tokens is None else _tokens(key_tokens, w.shape[1], w.shape, "key tokens")
    if window is not None:
        if w.shape[0] != w.shape[1]:
            raise ValueError(f"window needs square self-attention weights, got shape {w.shape}")
        s, e = _window(window, w.shape[0])
        w, tokens, key_tokens = w[s:e, s:e], tokens[s:e], key_tokens[s:e]
    Tq, Tk = w.shape
    if causal is None:
        causal = _is_causal(w)
    shown = np.ma.masked_where(np.triu(np.ones_like(w, dtype=bool), k=1), w) if causal else w
    if ax is None:
        size = min(12.0, max(3.5, 0.3 * min(max(Tq, Tk), max_labels) + 2))
        fig, ax = plt.subplots(figsize=(size + 1, size))
    else:
        fig = ax.figure
    cm = plt.get_cmap(cmap).with_extremes(bad=_MASKED)
    im = ax.imshow(shown, cmap=cm, vmin=0.0, vmax=max(1e-9, float(np.max(w))), aspect="auto",
                   interpolation="nearest")
    if causal and hatch:
        _hatch_upper(ax, Tq)
    _ticks(ax, tokens, key_tokens, max_labels)
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
    if colorbar:
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="attention weight")
    return fig


def _pick(values, n: int, what: str) -> list[int]:
    if values is None:
        return list(range(n))
    if isinstance(values, (int, np.integer)) and not isinstance(values, bool):
        values = [values]
    values = list(values)
    if not values:
        raise ValueError(f"{what} is empty: pick at least one of 0..{n - 1}")
    return [_index(v, n, what[:-1] if what.endswith("s") else what) for v in values]


def plot_attention_grid(
    attentions,
    tokens: Sequence[str] | str,
    layers: Sequence[int] | None = None,
    heads: Sequence[int] | None = None,
    batch: int = 0,
    window: tuple[int, int] | None = None,
    cmap: str = "viridis",
    title: str | None = None,
    cell_size: float = 1.7,
):
    """Every layer x head as small heatmaps (rows: layers, columns: heads), on one shared 0..1 colour scale.

    ``attentions``: per-layer ``[B, H, T, T]`` tuple (or anything ``stack_attentions`` takes); ``tokens``:
    ``T`` strings. Token labels are written on the outer axes when the (windowed) sequence is short.
    """
    a = stack_attentions(attentions, batch)  # [L, H, T, T]
    tokens = _tokens(tokens, a.shape[-2], a.shape, "tokens")
    if a.shape[-1] != a.shape[-2]:
        raise ValueError(f"plot_attention_grid needs self-attention (square) weights, got shape {a.shape}")
    layers = _pick(layers, a.shape[0], "layers")
    heads = _pick(heads, a.shape[1], "heads")
    s, e = _window(window, a.shape[-1])
    a, tokens = a[..., s:e, s:e], tokens[s:e]
    n = e - s
    causal = _is_causal(a)
    upper = np.triu(np.ones((n, n), dtype=bool), k=1)
    cm = plt.get_cmap(cmap).with_extremes(bad=_MASKED)
    fig, axes = plt.subplots(len(layers), len(heads), figsize=(cell_size * len(heads) + 1.2,
                                                              cell_size * len(layers) + 0.8), squeeze=False)
    labelled = n <= 12
    im = None
    for r, layer in enumerate(layers):
        for c, head in enumerate(heads):
            ax = axes[r, c]
            w = a[layer, head]
            im = ax.imshow(np.ma.masked_where(upper, w) if causal else w, cmap=cm, vmin=0.0, vmax=1.0,
                           interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if labelled and c == 0:
                ax.set_yticks(range(n), [_visible(t) for t in tokens], fontsize=7)
            if labelled and r == len(layers) - 1:
                ax.set_xticks(range(n), [_visible(t) for t in tokens], fontsize=7, rotation=90)
            if r == 0:
                ax.set_title(f"head {head}", fontsize=9)
            if c == 0:
                ax.set_ylabel(f"layer {layer}", fontsize=9)
    fig.colorbar(im, ax=axes.ravel().tolist(), fraction=0.02, pad=0.02, label="attention weight")
    if title:
        fig.suptitle(title)
    return fig


def plot_attention_lines(
    attentions,
    tokens: Sequence[str] | str,
    layer: int = 0,
    head: int | Sequence[int] | None = None,
    batch: int = 0,
    query: int | None = None,
    window: tuple[int, int] | None = None,
    min_weight: float = 0.02,
    ax=None,
    title: str | None = None,
    max_labels: int = 80,
):
    """The token-to-token line view (bertviz's head view) as a static figure; return the ``Figure``.

    Queries on the left, keys on the right; a line from query ``i`` to key ``j`` is drawn with opacity and
    width proportional to the weight (weights below ``min_weight`` are not drawn). ``head``: one head, a list
    of heads (one colour each, as ``HEAD_COLORS``) or None for all heads. ``query``: draw only that query's
    lines (its keys shaded by the head-averaged weight). ``attentions`` may also be a single ``[T, T]``,
    ``[H, T, T]`` or ``[B, H, T, T]`` weight tensor (one layer: ``layer=0``).
    """
    a = stack_attentions(attentions, batch)
    tokens = _tokens(tokens, a.shape[-2], a.shape, "tokens")
    if a.shape[-1] != a.shape[-2]:
        raise ValueError(f"plot_attention_lines needs self-attention (square) weights, got shape {a.shape}")
    layer = _index(layer, a.shape[0], "layer")
    heads = _pick(head, a.shape[1], "heads")
    if not 0.0 <= float(min_weight) < 1.0:
        raise ValueError(f"min_weight must be in [0, 1), got {min_weight!r}")
    s, e = _window(window, a.shape[-1])
    w = a[layer][:, s:e, s:e]  # [H, n, n]
    tokens = tokens[s:e]
    n = e - s
    if query is not None:
        query = _index(query, n, "query (an index into the window)")
    if ax is None:
        fig, ax = plt.subplots(figsize=(5.0, max(2.5, 0.22 * n + 1.0)))
    else:
        fig = ax.figure
    x_left, x_right = 0.0, 1.0
    segments, colors, widths = [], [], []
    for h in heads:
        rgb = plt.matplotlib.colors.to_rgb(HEAD_COLORS[h % len(HEAD_COLORS)])
        rows = [query] if query is not None else range(n)
        for i in rows:
            for j in range(n):
                v = float(w[h, i, j])
                if v < min_weight:
                    continue
                segments.append([(x_left, -i), (x_right, -j)])
                colors.append((*rgb, min(1.0, 0.15 + 0.85 * v) if len(heads) == 1 else min(1.0, v)))
                widths.append(0.4 + 3.0 * v)
    ax.add_collection(LineCollection(segments, colors=colors, linewidths=widths))
    step = max(1, math.ceil(n / max_labels))
    fs = 10 if n <= 30 else 8
    shade = w[heads].mean(axis=0)[query] if query is not None else None
    for i in range(0, n, step):
        bold = query is not None and i == query
        ax.text(x_left - 0.03, -i, _visible(tokens[i]), ha="right", va="center", fontsize=fs, family="monospace",
                fontweight="bold" if bold else "normal")
        box = None
        if shade is not None and shade[i] > 0:
            box = dict(boxstyle="square,pad=0.15", facecolor="#ff9800", alpha=float(min(1.0, shade[i])),
                       edgecolor="none")
        ax.text(x_right + 0.03, -i, _visible(tokens[i]), ha="left", va="center", fontsize=fs, family="monospace",
                bbox=box)
    top = 0.75  # the column captions sit just above the first row
    ax.set_xlim(-0.45, 1.45)
    ax.set_ylim(-n + 0.3, top + 1.0)
    ax.axis("off")
    ax.text(x_left - 0.03, top, "query", ha="right", va="bottom", fontsize=9, color="#555555")
    ax.text(x_right + 0.03, top, "key", ha="left", va="bottom", fontsize=9, color="#555555")
    if len(heads) > 1:
        ax.legend(handles=[Patch(color=HEAD_COLORS[h % len(HEAD_COLORS)], label=f"head {h}") for h in heads],
                  loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(6, len(heads)), fontsize=8,
                  frameon=False)
    if title is None:
        title = f"layer {layer}, " + (f"head {heads[0]}" if len(heads) == 1 else f"{len(heads)} heads")
    ax.set_title(title)
    return fig


def plot_attention_diff(
    a,
    b,
    tokens: Sequence[str] | str,
    layer: int | None = None,
    head: int | None = None,
    batch: int = 0,
    window: tuple[int, int] | None = None,
    labels: tuple[str, str] = ("A", "B"),
    title: str | None = None,
    ax=None,
    max_labels: int = 40,
    cmap: str = "RdBu_r",
):
    """Heatmap of ``a - b`` for one layer and head, on a diverging colour scale centred at 0.

    ``a`` and ``b``: two models' (or two inputs') attentions in any form ``stack_attentions`` takes, with the
    same shape; ``layer``/``head`` may be left out only where there is a single one. Red: ``a`` attends more,
    blue: ``b`` attends more; the causal mask is grey and hatched.
    """
    A, B = stack_attentions(a, batch), stack_attentions(b, batch)
    if A.shape != B.shape:
        raise ValueError(f"a and b must have the same shape: a is {A.shape[1:]} per layer x {A.shape[0]} layers, "
                         f"b is {B.shape[1:]} per layer x {B.shape[0]} layers")
    tokens = _tokens(tokens, A.shape[-2], A.shape, "tokens")
    for name, val, n in (("layer", layer, A.shape[0]), ("head", head, A.shape[1])):
        if val is None and n > 1:
            raise ValueError(f"the attentions have {n} {name}s: pass {name}=0..{n - 1}")
    layer = _index(0 if layer is None else layer, A.shape[0], "layer")
    head = _index(0 if head is None else head, A.shape[1], "head")
    wa, wb = A[layer, head], B[layer, head]
    if window is not None:
        s, e = _window(window, wa.shape[0])
        wa, wb, tokens = wa[s:e, s:e], wb[s:e, s:e], tokens[s:e]
    d = wa - wb
    causal = _is_causal(wa) and _is_causal(wb)
    shown = np.ma.masked_where(np.triu(np.ones_like(d, dtype=bool), k=1), d) if causal else d
    m = max(1e-9, float(np.abs(d).max()))
    if ax is None:
        size = min(12.0, max(3.5, 0.3 * min(d.shape[0], max_labels) + 2))
        fig, ax = plt.subplots(figsize=(size + 1, size))
    else:
        fig = ax.figure
    cm = plt.get_cmap(cmap).with_extremes(bad=_MASKED)
    im = ax.imshow(shown, cmap=cm, vmin=-m, vmax=m, aspect="auto", interpolation="nearest")
    if causal:
        _hatch_upper(ax, d.shape[0])
    _ticks(ax, tokens, tokens, max_labels)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.set_title(title or f"{labels[0]} − {labels[1]}, layer {layer} head {head}")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=f"{labels[0]} − {labels[1]}")
    return fig


def plot_head_map(
    scores,
    title: str | None = None,
    label: str = "score",
    ax=None,
    cmap: str | None = None,
    center: float | None = None,
    annotate: bool | None = None,
    fmt: str = ".2f",
):
    """One number per head as a layer x head heatmap (rows: layers, columns: heads); return the ``Figure``.

    ``scores``: ``[L, H]`` (a tensor or array). ``center``: a diverging colour scale symmetric around this
    value (for changes, e.g. a loss difference, use ``center=0``).
    """
    s = _to_numpy(scores, "scores") if isinstance(scores, (torch.Tensor, np.ndarray)) else np.asarray(scores, float)
    if s.ndim != 2 or s.size == 0:
        raise ValueError(f"scores must be a non-empty [L, H] matrix (layers x heads), got shape {s.shape}")
    L, H = s.shape
    if ax is None:
        fig, ax = plt.subplots(figsize=(min(12.0, 0.75 * H + 2.2), min(10.0, 0.6 * L + 1.4)))
    else:
        fig = ax.figure
    if center is None:
        im = ax.imshow(s, cmap=cmap or "viridis", aspect="auto", interpolation="nearest")
    else:
        m = max(1e-12, float(np.abs(s - center).max()))
        im = ax.imshow(s, cmap=cmap or "RdBu_r", vmin=center - m, vmax=center + m, aspect="auto",
                       interpolation="nearest")
    ax.set_xticks(range(H), [str(h) for h in range(H)])
    ax.set_yticks(range(L), [str(layer) for layer in range(L)])
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    if annotate is None:
        annotate = L * H <= 144
    if annotate:
        lo, hi = im.get_clim()
        for i in range(L):
            for j in range(H):
                frac = (s[i, j] - lo) / (hi - lo) if hi > lo else 0.5
                dark = frac < 0.5 if center is None else abs(frac - 0.5) > 0.3
                ax.text(j, i, format(s[i, j], fmt), ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")
    if title:
        ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label=label)
    return fig


def token_labels(tokenizer, ids) -> list[str]:
    """One string per token id (``tokenizer.decode([id])``), to label attention plots.

    Works with the course's ``CharTokenizer`` and with Hugging Face tokenizers. ``ids``: ``[T]`` or ``[1, T]``.
    """
    if not hasattr(tokenizer, "decode"):
        raise TypeError(f"tokenizer must have a decode method, got {type(tokenizer).__name__}")
    if isinstance(ids, torch.Tensor | np.ndarray):
        ids = ids.tolist()
    if isinstance(ids, (list, tuple)) and len(ids) == 1 and isinstance(ids[0], (list, tuple)):
        ids = ids[0]
    if not isinstance(ids, (list, tuple)) or not all(isinstance(i, (int, np.integer)) for i in ids):
        raise TypeError("ids must be a flat sequence of int token ids ([T] or [1, T])")
    return [tokenizer.decode([int(i)]) for i in ids]


# ---------------------------------------------------------------------------------------------- interactive
def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def show_attention(
    attentions,
    tokens: Sequence[str] | str,
    batch: int = 0,
    layer: int = 0,
    head: int = 0,
    kind: str = "heatmap",
    window: tuple[int, int] | None = None,
) -> None:
    """In Jupyter: layer and head sliders (and heatmap/lines) above a picture of the chosen head.

    The picture is a PNG of the default view (``layer``, ``head``, ``kind``), displayed as an ordinary
    output, so a saved notebook shows it where no kernel runs (GitHub, nbviewer); moving a slider in a live
    kernel redraws it in place. Without ipywidgets (or outside IPython) only the picture is shown.
    Returns None (nothing is displayed twice).
    """
    a = stack_attentions(attentions, batch)
    tokens = _tokens(tokens, a.shape[-2], a.shape, "tokens")
    L, H = a.shape[0], a.shape[1]
    layer, head = _index(layer, L, "layer"), _index(head, H, "head")
    if kind not in ("heatmap", "lines"):
        raise ValueError(f"kind must be 'heatmap' or 'lines', got {kind!r}")
    _window(window, a.shape[-1])

    def render(layer_: int, head_: int, kind_: str) -> bytes:
        t = f"layer {layer_}, head {head_}"
        if kind_ == "heatmap":
            return _png(plot_attention(a[layer_], tokens, head=head_, title=t, window=window))
        return _png(plot_attention_lines(a[:, None], tokens, layer=layer_, head=head_, window=window, title=t))

    from IPython.display import Image, display

    controls = None
    try:
        import ipywidgets as widgets
        from IPython import get_ipython

        shell = get_ipython()
        if shell is not None and getattr(shell, "kernel", None) is not None:
            style = {"description_width": "initial"}
            controls = (
                widgets.IntSlider(value=layer, min=0, max=L - 1, description="layer", continuous_update=False,
                                  style=style),
                widgets.IntSlider(value=head, min=0, max=H - 1, description="head", continuous_update=False,
                                  style=style),
                widgets.ToggleButtons(options=["heatmap", "lines"], value=kind, style=style),
            )
            bundle = widgets.HBox(list(controls))._repr_mimebundle_()
            # nbval compares text/plain: keep it one fixed sentence instead of the widgets' own repr
            bundle["text/plain"] = (
                f"[attention controls: layer 0-{L - 1}, head 0-{H - 1}, heatmap/lines; they need a live "
                "Jupyter kernel, the picture below is the default view]"
            )
            display(bundle, raw=True)
    except ImportError:  # pragma: no cover - ipywidgets is a course requirement
        controls = None
    handle = display(Image(data=render(layer, head, kind), format="png"), display_id=True)
    if controls is not None:
        def update(_change) -> None:
            handle.update(Image(data=render(controls[0].value, controls[1].value, controls[2].value),
                                format="png"))

        for w in controls:
            w.observe(update, names="value")


# ---------------------------------------------------------------------------------------------- head statistics
def _weights(weights, what: str = "weights", min_t: int = 1) -> torch.Tensor:
    if isinstance(weights, np.ndarray):
        weights = torch.from_numpy(weights)
    if not isinstance(weights, torch.Tensor):
        raise TypeError(f"{what} must be a torch.Tensor [..., T, T], got {type(weights).__name__}")
    if weights.dim() < 2 or weights.shape[-1] != weights.shape[-2]:
        raise ValueError(f"{what} must be square attention [..., T, T], got shape {tuple(weights.shape)}")
    if weights.shape[-1] < min_t:
        raise ValueError(f"{what} need at least {min_t} positions, got shape {tuple(weights.shape)}")
    return weights.float() if not weights.is_floating_point() else weights


def prev_token_score(weights: torch.Tensor) -> torch.Tensor:
    """How much each query attends to the token just before it: mean over ``t = 1..T-1`` of ``A[t, t-1]``.

    ``weights [..., T, T]`` → ``[...]`` (e.g. ``torch.stack(out.attentions)`` ``[L, B, H, T, T]`` → ``[L, B, H]``).
    1 for a perfect previous-token head.
    """
    w = _weights(weights, min_t=2)
    return w.diagonal(offset=-1, dim1=-2, dim2=-1).mean(-1)


def first_token_score(weights: torch.Tensor) -> torch.Tensor:
    """How much each query attends to position 0: mean over ``t = 1..T-1`` of ``A[t, 0]``.

    ``weights [..., T, T]`` → ``[...]``. Position 0 itself is left out (a causal query 0 can only see itself).
    """
    w = _weights(weights, min_t=2)
    return w[..., 1:, 0].mean(-1)


def attention_entropy(weights: torch.Tensor) -> torch.Tensor:
    """Mean entropy (nats) of the attention rows: ``-sum_j A[t, j] log A[t, j]`` averaged over queries ``t``.

    ``weights [..., T, T]`` → ``[...]``; ``0 log 0 = 0``. Low: each query looks at one place; high (up to
    ``log(t + 1)`` for a causal row ``t``): it spreads its attention.
    """
    w = _weights(weights).double()
    plogp = torch.where(w > 0, w * torch.log(w.clamp_min(1e-300)), torch.zeros_like(w))
    return (-plogp.sum(-1)).mean(-1).to(torch.float32)


def induction_score(weights: torch.Tensor, period: int) -> torch.Tensor:
    """Induction score on a sequence that repeats with ``period``: mean over ``t = period..T-1`` of
    ``A[t, t - period + 1]``.

    On ``x = r + r`` (random tokens ``r`` of length ``period``, written twice), an induction head at query
    ``t`` in the second copy attends to the token that *followed* the previous occurrence of ``x[t]``, at
    ``t - period + 1``. ``weights [..., T, T]`` → ``[...]``; needs ``1 <= period < T``.
    """
    w = _weights(weights, min_t=2)
    T = w.shape[-1]
    if isinstance(period, bool) or not isinstance(period, (int, np.integer)):
        raise TypeError(f"period must be an int, got {type(period).__name__}")
    if not 1 <= period < T:
        raise ValueError(f"period must satisfy 1 <= period < T = {T}, got {period}")
    # diagonal offset -(period - 1) holds A[t, t - period + 1] for t = period - 1 .. T - 1; drop the first
    return w.diagonal(offset=-(int(period) - 1), dim1=-2, dim2=-1)[..., 1:].mean(-1)
