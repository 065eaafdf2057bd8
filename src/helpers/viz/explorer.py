"""One entry point for looking at a model's attention: ``explore(model, text, tokenizer)``.

It runs the model once on the text, keeps every layer's attention weights, and returns an
``AttentionExplorer`` with three views of them:

- **head view**: one layer, the selected heads as labelled heatmaps (query rows, key columns);
- **model view**: every layer x head as a thumbnail; the button under a thumbnail opens that head in the head
  view;
- **line view**: the token-to-token lines of the selected heads (``plot_attention_lines``).

The model is the course's ``helpers.model.GPT`` (called with ``return_attention=True``) with the tokenizer it
was trained with (``load_checkpoint`` returns both), or any Hugging Face causal language model with its own
tokenizer (called with ``output_attentions=True``; a model loaded with the fused ``"sdpa"``/flash kernels,
which return no weights, is switched to ``"eager"`` for that one call and switched back).

Where it shows:

- **Jupyter** (the explorer as a cell's last expression, or ``display(explorer)``): an ipywidgets panel (view,
  layer, one toggle per head, the model view's thumbnails) above a PNG picture of the current view. The
  picture is an ordinary output, so a saved notebook shows the default view where no kernel runs (GitHub,
  nbviewer); the panel's text form is one fixed sentence, so nbval compares stable text. The same state
  always gives the same PNG bytes.
- **Anywhere, offline**: ``explorer.save_html("attention.html")`` writes one self-contained page (no network,
  no CDN) with the same three views, driven by a small inline script (``helpers.viz.html.attention_html``).
"""

from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from .attention import (
    _is_causal,
    _png,
    _tokens,
    plot_attention,
    plot_attention_grid,
    plot_attention_lines,
    stack_attentions,
    token_labels,
)
from .html import HTML_VIEWS, attention_html

__all__ = ["explore", "AttentionExplorer", "EXPLORER_VIEWS"]

#: The explorer's views: ``"head"`` (one layer, selected heads), ``"model"`` (all layers x heads), ``"lines"``.
EXPLORER_VIEWS = tuple(HTML_VIEWS)

_THUMB_PX = 64  # model-view thumbnails in the widget: about this many pixels a side
_CACHE = 64  # pictures kept per explorer (switching back to a view shows it at once)


# ---------------------------------------------------------------------------------------------- checks
def _int(value, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} must be an int, got {type(value).__name__}")
    return int(value)


def _in_range(value, n: int, what: str) -> int:
    value = _int(value, what)
    if not 0 <= value < n:
        raise ValueError(f"{what}={value} is out of range: the model has {n} {what}s (0..{n - 1})")
    return value


def _heads(heads, n: int) -> list[int]:
    if heads is None:
        return list(range(n))
    if isinstance(heads, (int, np.integer)) and not isinstance(heads, bool):
        heads = [heads]
    if isinstance(heads, (str, bytes)) or not isinstance(heads, Sequence | range | np.ndarray):
        raise TypeError(f"heads must be an int, a list of ints or None (all heads), got {type(heads).__name__}")
    out = sorted({_in_range(h, n, "head") for h in heads})
    if not out:
        raise ValueError(f"heads is empty: pick at least one head of 0..{n - 1} (or None for all)")
    return out


def _which(heads: list[int]) -> str:
    """``"head 2"`` or ``"heads 0,2"``: for titles."""
    return f"head {heads[0]}" if len(heads) == 1 else f"heads {','.join(map(str, heads))}"


def _view(view) -> str:
    if not isinstance(view, str) or view not in EXPLORER_VIEWS:
        raise ValueError(f"view must be one of {EXPLORER_VIEWS}, got {view!r}")
    return view


def _is_hf(model) -> bool:
    """A ``transformers`` model, recognised without importing ``transformers`` (it is slow to import)."""
    return isinstance(model, torch.nn.Module) and any(
        c.__name__ == "PreTrainedModel" and c.__module__.startswith("transformers") for c in type(model).__mro__
    )


# ---------------------------------------------------------------------------------------------- the model
def _context(model, kind: str) -> tuple[int, str]:
    """The longest sequence the model takes, and where that number comes from (for messages)."""
    if kind == "gpt":
        return int(model.config.block_size), "block_size"
    for name in ("n_positions", "max_position_embeddings", "n_ctx"):
        value = getattr(model.config, name, None)
        if isinstance(value, int) and value > 0:
            return value, name
    return 1 << 30, "no limit stated"


def _hf_attentions(model, idx: torch.Tensor):
    """A Hugging Face model's attentions; a fused kernel is switched to eager for this call, then back."""
    impl = getattr(model.config, "_attn_implementation", None)
    switched = impl not in (None, "eager")
    if switched:
        if not hasattr(model, "set_attn_implementation"):
            raise ValueError(
                f"{type(model).__name__} runs the {impl!r} attention kernel, which returns no weights: load it "
                "with attn_implementation='eager' (from_pretrained(..., attn_implementation='eager'))"
            )
        try:
            model.set_attn_implementation("eager")
        except Exception as e:  # a model without an eager path
            raise ValueError(
                f"{type(model).__name__} runs the {impl!r} attention kernel and could not be switched to 'eager' "
                f"({e}); load it with attn_implementation='eager' to see its attention"
            ) from e
    try:
        out = model(input_ids=idx, output_attentions=True)
    finally:
        if switched:
            model.set_attn_implementation(impl)
    atts = getattr(out, "attentions", None)
    if not atts or any(a is None for a in atts):
        raise ValueError(
            f"{type(model).__name__} returned no attention weights with output_attentions=True: load it with "
            "attn_implementation='eager' (or call model.set_attn_implementation('eager')) and try again"
        )
    return atts


def _run(model, kind: str, ids: list[int]):
    """One forward pass in eval mode (dropout would make the weights random) and without gradients."""
    params = next(iter(model.parameters()), None)
    device = params.device if params is not None else torch.device("cpu")
    idx = torch.tensor([ids], dtype=torch.long, device=device)
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            if kind == "gpt":
                return model(idx, return_attention=True).attentions
            return _hf_attentions(model, idx)
    finally:
        model.train(was_training)


def explore(
    model,
    text: str,
    tokenizer=None,
    *,
    layer: int = 0,
    heads: int | Sequence[int] | None = 0,
    view: str = "head",
    max_tokens: int = 64,
    title: str | None = None,
) -> AttentionExplorer:
    """Run ``model`` on ``text`` and return an ``AttentionExplorer`` of its attention (head, model, line views).

    ``model``: the course's ``helpers.model.GPT`` or a Hugging Face causal LM (e.g. ``GPT2LMHeadModel``).
    ``tokenizer``: the model's own, with ``encode(str) -> list[int]`` and ``decode(list[int]) -> str`` (a course
    ``CharTokenizer``/``BPETokenizer``, or a Hugging Face tokenizer); required. ``layer``, ``heads`` (an int, a
    list, or None for all) and ``view`` (``"head"``, ``"model"`` or ``"lines"``) are what is shown first.
    ``max_tokens``: longer texts are refused (the pictures would be unreadable); the model's own context is a
    hard limit. ``title``: the HTML page's title. The model is run once, in eval mode, without gradients, and
    left as it was (train/eval mode, attention implementation).

        model, tok, _ = load_checkpoint("../checkpoints/shakespeare-gpt")
        explore(model, "To be, or not to be", tok, layer=5)        # in a notebook cell: the widget
        explore(model, "To be", tok).save_html("attention.html")   # one page, works offline
    """
    from ..model import GPT

    if isinstance(model, GPT):
        kind = "gpt"
    elif _is_hf(model):
        kind = "hf"
    else:
        raise TypeError(
            "model must be the course's helpers.model.GPT or a Hugging Face causal language model (a transformers "
            f"PreTrainedModel such as GPT2LMHeadModel), got {type(model).__module__}.{type(model).__name__}"
        )
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    if not text:
        raise ValueError("text is empty: pass the text whose attention you want to see")
    if tokenizer is None:
        where = ("the one load_checkpoint returns with the model" if kind == "gpt"
                 else "AutoTokenizer.from_pretrained with the model's name")
        raise TypeError(f"explore needs the model's tokenizer (an object with encode and decode): pass {where}")
    if not callable(getattr(tokenizer, "encode", None)) or not callable(getattr(tokenizer, "decode", None)):
        raise TypeError(f"tokenizer must have encode(str) and decode(ids) methods, got {type(tokenizer).__name__}")
    max_tokens = _int(max_tokens, "max_tokens")
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be at least 1, got {max_tokens}")

    ids = tokenizer.encode(text)
    if isinstance(ids, torch.Tensor | np.ndarray):
        ids = ids.reshape(-1).tolist()
    if not isinstance(ids, (list, tuple)) or not all(isinstance(i, (int, np.integer)) for i in ids):
        raise TypeError(f"tokenizer.encode(text) must return a list of int ids, got {type(ids).__name__}")
    ids = [int(i) for i in ids]
    if not ids:
        raise ValueError(f"the tokenizer turned text={text!r} into no tokens: pass a longer text")
    context, source = _context(model, kind)
    if len(ids) > context:
        raise ValueError(
            f"the text is {len(ids)} tokens long but the model's context is {context} tokens ({source}): "
            "pass a shorter text"
        )
    if len(ids) > max_tokens:
        raise ValueError(
            f"the text is {len(ids)} tokens long, more than max_tokens={max_tokens} (pictures of longer texts are "
            "hard to read): pass a shorter text, or raise max_tokens"
        )
    vocab = model.config.vocab_size
    bad = [i for i in ids if not 0 <= i < vocab]
    if bad:
        raise ValueError(
            f"the tokenizer gave ids {bad[:5]} outside the model's vocabulary [0, {vocab - 1}]: "
            "pass the tokenizer the model was trained with"
        )
    atts = _run(model, kind, ids)
    return AttentionExplorer(atts, token_labels(tokenizer, ids), layer=layer, heads=heads, view=view,
                             max_tokens=max_tokens, title=title)


# ---------------------------------------------------------------------------------------------- pictures
def _thumbnail_png(w: np.ndarray, causal: bool, px: int = _THUMB_PX) -> bytes:
    """One head as a small PNG straight from the weights (viridis, 0..1, causal mask grey): no axes, fast."""
    n = w.shape[0]
    rgba = plt.get_cmap("viridis")(np.clip(w, 0.0, 1.0))
    if causal:
        rgba[np.triu(np.ones((n, n), dtype=bool), k=1)] = (217 / 255, 217 / 255, 217 / 255, 1.0)
    s = max(1, math.ceil(px / n))
    img = np.repeat(np.repeat(rgba, s, axis=0), s, axis=1)
    buf = io.BytesIO()
    plt.imsave(buf, img, format="png")
    return buf.getvalue()


def _message_png(text: str) -> bytes:
    fig, ax = plt.subplots(figsize=(4.0, 1.0))
    ax.axis("off")
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=11, color="#555555")
    return _png(fig)


class AttentionExplorer:
    """Every layer's attention for one text, with a head view, a model view and a line view.

    Made by ``explore(model, text, tokenizer)``; or directly from weights: ``AttentionExplorer(attentions,
    tokens)``, where ``attentions`` is anything ``stack_attentions`` takes (a model output, a per-layer tuple of
    ``[B, H, T, T]``, or one ``[L, B, H, T, T]`` tensor: a 4-D one is read as a single layer) and ``tokens`` is
    one string per position.

    State: ``layer``, ``heads`` (a sorted list), ``view``; change it with ``select(layer=, heads=, view=)`` or
    ``open(layer, head)`` (what a model-view thumbnail's button does). ``png()`` is the current view's picture
    (the same state gives the same bytes); ``thumbnail_png(layer, head)`` one model-view thumbnail; ``widget()``
    the ipywidgets panel; ``to_html()`` / ``save_html(path)`` the self-contained page. ``attentions`` holds the
    weights, ``[L, H, T, T]`` float32.
    """

    def __init__(
        self,
        attentions,
        tokens: Sequence[str] | str,
        *,
        layer: int = 0,
        heads: int | Sequence[int] | None = 0,
        view: str = "head",
        batch: int = 0,
        max_tokens: int = 64,
        title: str | None = None,
    ) -> None:
        a = stack_attentions(attentions, batch).astype(np.float32)
        if a.shape[-1] != a.shape[-2]:
            raise ValueError(f"the explorer needs self-attention (square) weights, got shape {a.shape}")
        max_tokens = _int(max_tokens, "max_tokens")
        if a.shape[-1] > max_tokens:
            raise ValueError(f"{a.shape[-1]} tokens are more than max_tokens={max_tokens}: pass a shorter text")
        if title is not None and not isinstance(title, str):
            raise TypeError(f"title must be a str or None, got {type(title).__name__}")
        self.attentions = a
        self.tokens = _tokens(tokens, a.shape[-2], a.shape, "tokens")
        self.n_layer, self.n_head, self.n_tokens = a.shape[0], a.shape[1], a.shape[-1]
        self.title = title
        self._causal = _is_causal(a)
        self._layer = _in_range(layer, self.n_layer, "layer")
        self._heads = _heads(heads, self.n_head)
        self._view = _view(view)
        self._cache: dict[tuple, bytes] = {}
        self._thumbs: dict[tuple[int, int], bytes] = {}
        self._widget = None
        self._controls: dict = {}
        self._handles: list = []
        self._syncing = False

    # ------------------------------------------------------------------ state
    @property
    def layer(self) -> int:
        return self._layer

    @property
    def heads(self) -> list[int]:
        return list(self._heads)

    @property
    def view(self) -> str:
        return self._view

    def select(self, layer: int | None = None, heads: int | Sequence[int] | None = None,
               view: str | None = None) -> AttentionExplorer:
        """Change what is shown (arguments left out stay as they are); redraw a displayed picture; return self."""
        new_layer = self._layer if layer is None else _in_range(layer, self.n_layer, "layer")
        new_heads = self._heads if heads is None else _heads(heads, self.n_head)
        new_view = self._view if view is None else _view(view)
        self._layer, self._heads, self._view = new_layer, list(new_heads), new_view
        self._refresh()
        return self

    def open(self, layer: int, head: int) -> AttentionExplorer:
        """Open one layer and head in the head view (what a model-view thumbnail's button does)."""
        return self.select(layer=layer, heads=[_in_range(head, self.n_head, "head")], view="head")

    # ------------------------------------------------------------------ pictures
    def _figure(self, view: str, layer: int, heads: list[int]):
        a, tokens, n = self.attentions, self.tokens, self.n_tokens
        if view == "model":
            cell = min(1.7, max(0.8, 10.0 / max(self.n_layer, self.n_head)))
            fig = plot_attention_grid(a[:, None], tokens, cell_size=cell,
                                      title=f"model view: {self.n_layer} layers x {self.n_head} heads "
                                            f"(framed: layer {layer}, {_which(heads)})")
            for h in heads:  # frame the selection (axes are made row by row; the colour bar comes last)
                for spine in fig.axes[layer * self.n_head + h].spines.values():
                    spine.set_edgecolor("#d62728")
                    spine.set_linewidth(2.5)
            return fig
        if view == "lines":
            return plot_attention_lines(a[:, None], tokens, layer=layer, head=heads,
                                        title=f"line view: layer {layer}, {_which(heads)}")
        if len(heads) == 1:
            return plot_attention(a[layer], tokens, head=heads[0], title=f"head view: layer {layer}, head {heads[0]}")
        cols = min(len(heads), 4)
        rows = math.ceil(len(heads) / cols)
        size = min(5.0, max(2.6, 0.14 * min(n, 30) + 1.6))
        fig, axes = plt.subplots(rows, cols, figsize=(cols * size + 0.4, rows * size + 0.4), squeeze=False)
        for k, ax in enumerate(axes.ravel()):
            if k >= len(heads):
                ax.axis("off")
                continue
            plot_attention(a[layer], tokens, head=heads[k], ax=ax, title=f"head {heads[k]}", colorbar=False,
                           annotate=n <= 6, max_labels=20)
        fig.suptitle(f"head view: layer {layer}, {_which(heads)}")
        fig.tight_layout()
        return fig

    def png(self, view: str | None = None, layer: int | None = None, heads: int | Sequence[int] | None = None) -> bytes:
        """The picture (PNG bytes) of a view, by default the current one; the same state, the same bytes."""
        view = self._view if view is None else _view(view)
        layer = self._layer if layer is None else _in_range(layer, self.n_layer, "layer")
        heads = self._heads if heads is None else _heads(heads, self.n_head)
        key = (view, layer, tuple(heads))
        if key not in self._cache:
            if len(self._cache) >= _CACHE:
                self._cache.pop(next(iter(self._cache)))
            if not heads:  # only the widget's toggles can switch every head off
                self._cache[key] = _message_png("no head selected: switch one on")
            else:
                self._cache[key] = _png(self._figure(view, layer, list(heads)))
        return self._cache[key]

    def thumbnail_png(self, layer: int, head: int) -> bytes:
        """One model-view thumbnail (PNG bytes): the head's weights on the 0..1 viridis scale, no axes."""
        key = (_in_range(layer, self.n_layer, "layer"), _in_range(head, self.n_head, "head"))
        if key not in self._thumbs:
            self._thumbs[key] = _thumbnail_png(self.attentions[key[0], key[1]], self._causal)
        return self._thumbs[key]

    # ------------------------------------------------------------------ HTML
    def to_html(self, full_page: bool = True) -> str:
        """The self-contained page (or a fragment, ``full_page=False``) with the same three views and state."""
        return attention_html(self.attentions[:, None], self.tokens, layer=self._layer,
                              heads=self._heads or None, view=self._view,
                              title=self.title or "Attention: head, model and line views",
                              max_tokens=max(256, self.n_tokens), full_page=full_page)

    def save_html(self, path: str | os.PathLike) -> Path:
        """Write ``to_html()`` to ``path`` (folders are made); return the path. Open it in any browser, offline."""
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_html(), encoding="utf-8")
        return path

    # ------------------------------------------------------------------ Jupyter
    def sentence(self) -> str:
        """The panel's text form: one fixed sentence (what nbval compares, what a plain-text viewer shows)."""
        return (
            f"[attention explorer: {self.n_layer} layers x {self.n_head} heads over {self.n_tokens} tokens, "
            "with head, model and line views; the controls need a live Jupyter kernel, the picture below is the "
            f"{HTML_VIEWS[self._view]} of layer {self._layer}, {_which(self._heads) if self._heads else 'no head'}]"
        )

    def __repr__(self) -> str:
        return (f"AttentionExplorer({self.n_layer} layers x {self.n_head} heads, {self.n_tokens} tokens, "
                f"view={self._view!r}, layer={self._layer}, heads={self._heads})")

    def widget(self):
        """The ipywidgets panel (built once): view buttons, a layer slider, one toggle per head, and the model
        view's thumbnails, each with a button under it that opens that head. The picture is displayed apart."""
        if self._widget is not None:
            return self._widget
        import ipywidgets as widgets

        style = {"description_width": "initial"}
        view = widgets.ToggleButtons(
            options=[(HTML_VIEWS[v], v) for v in EXPLORER_VIEWS], value=self._view, description="view",
            style=style, tooltips=["one layer, the selected heads as heatmaps",
                                   "every layer x head: click a thumbnail's button to open it",
                                   "token-to-token lines of the selected heads"],
        )
        view.add_class("attn-explorer-view")
        layer = widgets.IntSlider(value=self._layer, min=0, max=max(0, self.n_layer - 1), description="layer",
                                  continuous_update=False, disabled=self.n_layer == 1, style=style)
        layer.add_class("attn-explorer-layer")
        toggles = []
        for h in range(self.n_head):
            t = widgets.ToggleButton(value=h in self._heads, description=str(h), tooltip=f"head {h}: on/off",
                                     layout=widgets.Layout(width="38px"))
            t.add_class("attn-explorer-head")
            t.add_class(f"attn-explorer-head-{h}")
            toggles.append(t)
        heads = widgets.HBox([widgets.Label("heads"), *toggles])
        heads.add_class("attn-explorer-heads")
        model = widgets.GridBox([], layout=widgets.Layout(display="none"))
        model.add_class("attn-explorer-model")
        box = widgets.VBox([view, widgets.HBox([layer, heads]), model])
        box.add_class("attn-explorer")
        self._controls = {"view": view, "layer": layer, "toggles": toggles, "model": model, "buttons": {}}

        def on_view(change) -> None:
            if not self._syncing:
                self.select(view=change["new"])

        def on_layer(change) -> None:
            if not self._syncing:
                self.select(layer=change["new"])

        def on_toggle(_change) -> None:
            if not self._syncing:
                self._heads = [h for h, t in enumerate(toggles) if t.value]
                self._refresh()

        view.observe(on_view, names="value")
        layer.observe(on_layer, names="value")
        for t in toggles:
            t.observe(on_toggle, names="value")
        self._widget = box
        self._sync_controls()
        return box

    def _build_model_view(self) -> None:
        """The thumbnails and their buttons, made the first time the model view is shown."""
        import ipywidgets as widgets

        c = self._controls
        px = max(_THUMB_PX, math.ceil(_THUMB_PX / self.n_tokens) * self.n_tokens)
        children = [widgets.Label("")]
        children += [widgets.Label(f"head {h}") for h in range(self.n_head)]
        for layer in range(self.n_layer):
            children.append(widgets.Label(f"layer {layer}"))
            for h in range(self.n_head):
                img = widgets.Image(value=self.thumbnail_png(layer, h), format="png",
                                    layout=widgets.Layout(width=f"{px}px", height=f"{px}px"))
                button = widgets.Button(description=f"L{layer} H{h}", tooltip=f"open layer {layer}, head {h}",
                                        layout=widgets.Layout(width=f"{px}px"))
                button.add_class("attn-explorer-open")
                button.add_class(f"attn-open-L{layer}-H{h}")
                button.on_click(lambda _b, layer=layer, h=h: self.open(layer, h))
                c["buttons"][(layer, h)] = button
                children.append(widgets.VBox([img, button], layout=widgets.Layout(align_items="center")))
        c["model"].children = children
        c["model"].layout.grid_template_columns = f"max-content repeat({self.n_head}, {px + 8}px)"
        c["model"].layout.grid_gap = "4px"
        c["model"].layout.justify_content = "flex-start"
        c["model"].layout.align_items = "center"

    def _sync_controls(self) -> None:
        c = self._controls
        if not c:
            return
        self._syncing = True
        try:
            c["view"].value = self._view
            c["layer"].value = self._layer
            for h, t in enumerate(c["toggles"]):
                t.value = h in self._heads
            if self._view == "model" and not c["buttons"]:
                self._build_model_view()
            c["model"].layout.display = "grid" if self._view == "model" else "none"
            for (layer, h), b in c["buttons"].items():
                b.button_style = "info" if layer == self._layer and h in self._heads else ""
        finally:
            self._syncing = False

    def _refresh(self) -> None:
        self._sync_controls()
        if self._handles:
            from IPython.display import Image

            png = self.png()
            for handle in self._handles:
                handle.update(Image(data=png, format="png"))

    def _ipython_display_(self) -> None:
        from IPython.display import Image, display

        panel = None
        try:
            from IPython import get_ipython

            shell = get_ipython()
            if shell is not None and getattr(shell, "kernel", None) is not None:
                panel = self.widget()
        except ImportError:  # pragma: no cover - ipywidgets is a course requirement
            panel = None
        if panel is not None:
            bundle = panel._repr_mimebundle_()
            bundle["text/plain"] = self.sentence()  # nbval compares text/plain: one fixed sentence
            display(bundle, raw=True)
        handle = display(Image(data=self.png(), format="png"), display_id=True)
        if panel is not None and handle is not None:
            self._handles.append(handle)
