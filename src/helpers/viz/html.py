"""Interactive attention views as one self-contained HTML page: no network, no CDN, nothing to install.

``attention_html(attentions, tokens)`` returns the page as a string: the weights (quantised to bytes, base64),
an inline SVG drawing of the line view (so it shows something even where scripts do not run, such as a
notebook on GitHub), inline styles, and a small inline script that adds the interaction. Three views, chosen by
the tabs at the top (``view=`` picks the first one shown):

- **head view**: one layer, the selected heads as heatmaps (query rows, key columns, 0..1 viridis scale; hover
  a cell to read its weight);
- **model view**: every layer x head as a small heatmap; click one to open that layer and head in the head view;
- **line view**: queries on the left, keys on the right, one line per weight in each head's colour; hover a
  token to see what it attends to (left column) or what attends to it (right column).

The layer menu and the head chips (click to switch a head on or off) drive the head and line views.

In a notebook: ``IPython.display.HTML(attention_html(..., full_page=False))``. Element ids are derived from a
hash of the content, so the same input gives the same text (nbval compares HTML outputs as text).
``save_attention_html(path, ...)`` writes the full page; open it in any browser, offline.

When the page's address ends in ``#selftest``, the script hovers one token, switches the layer, toggles a head,
opens the model view and clicks a thumbnail, and writes what changed into the ``data-selftest`` attribute of
the view (the browser tests read it back); it then puts the model-view state back, so the page ends on the line
view of the last layer with head 0 switched off.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .attention import HEAD_COLORS, _index, _is_causal, _pick, _tokens, _visible, _window, stack_attentions

__all__ = ["attention_html", "save_attention_html", "HTML_VIEWS"]

#: The views of the page, in the order of its tabs, with the names the tabs show.
HTML_VIEWS = {"head": "head view", "model": "model view", "lines": "line view"}

_ROW = 18  # px per token row
_GAP = 220  # px between the two columns of tokens
_PAD = 28  # px above the first row (column captions)
_VIRIDIS: str | None = None  # the colour scale as 256 hex RGB triples, made once from matplotlib's viridis


def _viridis() -> str:
    global _VIRIDIS
    if _VIRIDIS is None:
        import matplotlib

        rgb = np.rint(matplotlib.colormaps["viridis"](np.linspace(0.0, 1.0, 256))[:, :3] * 255).astype(np.uint8)
        _VIRIDIS = rgb.tobytes().hex()
    return _VIRIDIS

_CSS = """
#{id} {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; font-size: 13px; color: #222;
  border: 1px solid #ddd; border-radius: 6px; padding: 8px 10px; display: inline-block; background: #fff; }}
#{id} .attn-title {{ font-weight: 600; margin-bottom: 4px; }}
#{id} .attn-controls {{ display: flex; flex-wrap: wrap; gap: 6px; align-items: center; margin-bottom: 6px; }}
#{id} .attn-head {{ display: inline-block; min-width: 18px; padding: 1px 4px; border-radius: 3px; color: #fff;
  text-align: center; cursor: pointer; user-select: none; font-size: 12px; border: 1px solid transparent; }}
#{id} .attn-head.off {{ opacity: 0.25; }}
#{id} .attn-hint {{ color: #777; font-size: 12px; }}
#{id} .attn-status {{ color: #555; font-size: 12px; min-height: 1.3em; }}
#{id} g.attn-tok {{ cursor: default; }}
#{id} g.attn-tok.active text {{ font-weight: 700; }}
#{id} .attn-tabs {{ display: flex; gap: 2px; margin-bottom: 6px; border-bottom: 1px solid #ccc; }}
#{id} .attn-tab {{ padding: 2px 10px; border: 1px solid #ccc; border-bottom: none; border-radius: 4px 4px 0 0;
  cursor: pointer; user-select: none; background: #f4f4f4; color: #444; }}
#{id} .attn-tab.on {{ background: #fff; color: #000; font-weight: 600; }}
#{id} [hidden] {{ display: none !important; }}
#{id} .attn-heads-grid {{ display: flex; flex-wrap: wrap; gap: 12px; }}
#{id} .attn-fig {{ display: inline-flex; flex-direction: column; align-items: center; gap: 2px; font-size: 12px; }}
#{id} canvas.attn-heat, #{id} canvas.attn-thumb {{ image-rendering: pixelated; border: 1px solid #ccc; }}
#{id} canvas.attn-heat {{ cursor: crosshair; }}
#{id} .attn-model {{ display: inline-grid; gap: 4px; align-items: center; justify-items: center; }}
#{id} canvas.attn-thumb {{ cursor: pointer; }}
#{id} canvas.attn-thumb.sel {{ outline: 2px solid #d62728; outline-offset: 1px; }}
#{id} .attn-cap {{ font-size: 11px; color: #555; white-space: nowrap; }}
"""

# The interaction. Plain ES5, no libraries; it finds its own view (the element that contains the script).
_JS = r"""
(function () {
  var script = document.currentScript;
  var root = (script && script.closest && script.closest('.attn-view')) || document.getElementById('{id}');
  if (!root || root.getAttribute('data-ready')) return;
  root.setAttribute('data-ready', '1');
  var D = JSON.parse(root.querySelector('script.attn-data').textContent);
  var n = D.n, H = D.H, L = D.L, raw = atob(D.weights), W = new Uint8Array(raw.length);
  for (var b = 0; b < raw.length; b++) W[b] = raw.charCodeAt(b);
  function w(l, h, i, j) { return W[((l * H + h) * n + i) * n + j] / 255; }
  var LUT = [];
  for (var c = 0; c < 256; c++) LUT.push([0, 2, 4].map(function (o) { return parseInt(D.cmap.substr(6 * c + o, 2), 16); }));
  var NS = 'http://www.w3.org/2000/svg';
  var svg = root.querySelector('svg.attn-svg'), edges = svg.querySelector('g.attn-edges');
  var select = root.querySelector('select.attn-layer'), status = root.querySelector('.attn-status');
  var heads = root.querySelectorAll('.attn-head'), tabs = root.querySelectorAll('.attn-tab');
  var panels = {head: root.querySelector('.attn-panel-head'), model: root.querySelector('.attn-panel-model'),
                lines: root.querySelector('.attn-panel-lines')};
  var state = {layer: D.layer, heads: D.heads.slice(), side: null, idx: -1, view: D.view, cell: '', count: 0};
  function y(i) { return D.pad + i * D.row + D.row / 2; }
  function tokens(side) { return svg.querySelectorAll('g.attn-tok.' + side); }
  function paint(canvas, l, h) {  // one head's n x n weights, one pixel per cell (CSS scales it up)
    canvas.width = n; canvas.height = n;
    var ctx = canvas.getContext('2d'), img = ctx.createImageData(n, n), p = img.data;
    for (var i = 0; i < n; i++) {
      for (var j = 0; j < n; j++) {
        var o = 4 * (i * n + j), rgb = D.causal && j > i ? [217, 217, 217] : LUT[W[((l * H + h) * n + i) * n + j]];
        p[o] = rgb[0]; p[o + 1] = rgb[1]; p[o + 2] = rgb[2]; p[o + 3] = 255;
      }
    }
    ctx.putImageData(img, 0, 0);
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function drawLines() {
    while (edges.firstChild) edges.removeChild(edges.firstChild);
    var shade = [], count = 0, i, j, k;
    for (j = 0; j < n; j++) shade.push(0);
    for (k = 0; k < state.heads.length; k++) {
      var h = state.heads[k], color = D.colors[h % D.colors.length];
      for (i = 0; i < n; i++) {
        if (state.side === 'q' && i !== state.idx) continue;
        for (j = 0; j < n; j++) {
          if (state.side === 'k' && j !== state.idx) continue;
          var v = w(state.layer, h, i, j);
          if (state.side === 'q') shade[j] += v / state.heads.length;
          if (state.side === 'k') shade[i] += v / state.heads.length;
          if (v < D.min_weight) continue;
          var line = document.createElementNS(NS, 'line');
          line.setAttribute('x1', D.x1); line.setAttribute('y1', y(i));
          line.setAttribute('x2', D.x2); line.setAttribute('y2', y(j));
          line.setAttribute('stroke', color);
          line.setAttribute('stroke-opacity', Math.min(1, (state.heads.length === 1 ? 0.15 : 0) + v).toFixed(3));
          line.setAttribute('stroke-width', (0.5 + 2.5 * v).toFixed(2));
          edges.appendChild(line);
          count++;
        }
      }
    }
    var sides = ['q', 'k'];
    for (var s = 0; s < 2; s++) {
      var toks = tokens(sides[s]);
      for (i = 0; i < toks.length; i++) {
        var idx = +toks[i].getAttribute('data-idx');
        var lit = state.side !== null && state.side !== sides[s] ? shade[idx] : 0;
        toks[i].querySelector('rect').setAttribute('fill-opacity', Math.min(1, lit).toFixed(3));
        toks[i].classList.toggle('active', state.side === sides[s] && idx === state.idx);
      }
    }
    state.count = count;
  }
  function drawHeads() {  // the head view: the selected heads of the layer, one heatmap each
    var panel = panels.head;
    while (panel.firstChild) panel.removeChild(panel.firstChild);
    var grid = el('div', 'attn-heads-grid');
    for (var k = 0; k < state.heads.length; k++) {
      var h = state.heads[k], fig = el('div', 'attn-fig'), cap = el('span', 'attn-cap', 'head ' + h);
      cap.style.color = D.colors[h % D.colors.length];
      cap.style.fontWeight = '600';
      var cv = el('canvas', 'attn-heat');
      cv.setAttribute('data-head', h);
      cv.style.width = cv.style.height = D.heat + 'px';
      paint(cv, state.layer, h);
      fig.appendChild(cap); fig.appendChild(cv);
      grid.appendChild(fig);
    }
    if (!state.heads.length) grid.appendChild(el('span', 'attn-hint', 'no head selected: click a head above'));
    panel.appendChild(grid);
  }
  var thumbs = null;
  function drawModel() {  // the model view: every layer x head, built once; the selection is outlined
    if (!thumbs) {
      thumbs = [];
      var grid = el('div', 'attn-model');
      grid.style.gridTemplateColumns = 'auto repeat(' + H + ', ' + (D.thumb + 6) + 'px)';
      grid.appendChild(el('span', 'attn-cap', ''));
      for (var h = 0; h < H; h++) grid.appendChild(el('span', 'attn-cap', 'head ' + h));
      for (var l = 0; l < L; l++) {
        grid.appendChild(el('span', 'attn-cap', 'layer ' + l));
        for (h = 0; h < H; h++) {
          var cv = el('canvas', 'attn-thumb');
          cv.setAttribute('data-layer', l); cv.setAttribute('data-head', h);
          cv.title = 'layer ' + l + ', head ' + h + ': click to open it in the head view';
          cv.style.width = cv.style.height = D.thumb + 'px';
          paint(cv, l, h);
          cv.addEventListener('click', function (e) {
            state.layer = +e.currentTarget.getAttribute('data-layer');
            state.heads = [+e.currentTarget.getAttribute('data-head')];
            select.value = String(state.layer);
            state.view = 'head';
            render();
          });
          grid.appendChild(cv);
          thumbs.push(cv);
        }
      }
      panels.model.appendChild(grid);
    }
    for (var t = 0; t < thumbs.length; t++) {
      var on = +thumbs[t].getAttribute('data-layer') === state.layer &&
        state.heads.indexOf(+thumbs[t].getAttribute('data-head')) >= 0;
      thumbs[t].classList.toggle('sel', on);
    }
  }
  function showStatus() {
    var what;
    if (state.view === 'lines') {
      what = (state.side === null ? 'hover a token' :
        (state.side === 'q' ? 'query ' : 'key ') + JSON.stringify(D.tokens[state.idx]) + ' (' + state.idx + ')') +
        ' \u00b7 ' + state.count + ' lines';
    } else if (state.view === 'head') {
      what = state.cell || 'hover a cell: row = query, column = key';
    } else {
      what = L + ' layers \u00d7 ' + H + ' heads \u00b7 click one to open it';
    }
    status.textContent = D.names[state.view] + ' \u00b7 layer ' + state.layer + ' \u00b7 heads ' +
      (state.heads.join(',') || 'none') + ' \u00b7 ' + what;
  }
  function render() {
    drawLines();
    for (var k = 0; k < heads.length; k++) {
      var hh = +heads[k].getAttribute('data-head');
      heads[k].classList.toggle('off', state.heads.indexOf(hh) < 0);
    }
    for (k = 0; k < tabs.length; k++) tabs[k].classList.toggle('on', tabs[k].getAttribute('data-view') === state.view);
    for (var v in panels) panels[v].hidden = v !== state.view;
    if (state.view === 'head') drawHeads();
    if (state.view === 'model') drawModel();
    showStatus();
    root.setAttribute('data-lines', state.count);
    root.setAttribute('data-layer', state.layer);
    root.setAttribute('data-heads', state.heads.join(','));
    root.setAttribute('data-view', state.view);
    root.setAttribute('data-hover', state.side === null ? '' : state.side + state.idx);
  }
  svg.addEventListener('mouseover', function (e) {
    var g = e.target.closest ? e.target.closest('g.attn-tok') : null;
    if (!g) return;
    state.side = g.classList.contains('q') ? 'q' : 'k';
    state.idx = +g.getAttribute('data-idx');
    render();
  });
  svg.addEventListener('mouseleave', function () { state.side = null; state.idx = -1; render(); });
  panels.head.addEventListener('mousemove', function (e) {
    var cv = e.target;
    if (!cv.classList || !cv.classList.contains('attn-heat')) return;
    var r = cv.getBoundingClientRect(), h = +cv.getAttribute('data-head');
    var i = Math.max(0, Math.min(n - 1, Math.floor((e.clientY - r.top) / r.height * n)));
    var j = Math.max(0, Math.min(n - 1, Math.floor((e.clientX - r.left) / r.width * n)));
    state.cell = 'head ' + h + ': query ' + JSON.stringify(D.tokens[i]) + ' (' + i + ') \u2192 key ' +
      JSON.stringify(D.tokens[j]) + ' (' + j + ') = ' + (D.causal && j > i ? 'masked' : w(state.layer, h, i, j).toFixed(2));
    showStatus();
  });
  panels.head.addEventListener('mouseleave', function () { state.cell = ''; showStatus(); });
  select.addEventListener('change', function () { state.layer = +select.value; render(); });
  for (var k = 0; k < heads.length; k++) {
    heads[k].addEventListener('click', function (e) {
      var h = +e.currentTarget.getAttribute('data-head'), at = state.heads.indexOf(h);
      if (at < 0) { state.heads.push(h); state.heads.sort(function (a, b) { return a - b; }); }
      else state.heads.splice(at, 1);
      render();
    });
  }
  for (k = 0; k < tabs.length; k++) {
    tabs[k].addEventListener('click', function (e) { state.view = e.currentTarget.getAttribute('data-view'); render(); });
  }
  root.querySelector('.attn-tabs').hidden = false;
  render();
  if (window.location.hash === '#selftest') {
    state.view = 'lines'; render();
    var out = {tokens: tokens('q').length, lines_all: +root.getAttribute('data-lines')};
    var last = tokens('q')[n - 1];
    last.querySelector('text').dispatchEvent(new MouseEvent('mouseover', {bubbles: true}));
    out.hover = root.getAttribute('data-hover');
    out.lines_hover = +root.getAttribute('data-lines');
    out.active = last.classList.contains('active');
    var lit = 0, keys = tokens('k');
    for (var q = 0; q < keys.length; q++) lit += +keys[q].querySelector('rect').getAttribute('fill-opacity') > 0;
    out.keys_lit = lit;
    out.status = status.textContent;
    svg.dispatchEvent(new MouseEvent('mouseleave'));
    out.lines_after = +root.getAttribute('data-lines');
    select.value = String(D.L - 1);
    select.dispatchEvent(new Event('change'));
    out.layer = +root.getAttribute('data-layer');
    heads[0].dispatchEvent(new MouseEvent('click', {bubbles: true}));
    out.heads_after_click = state.heads.slice();
    // the model view: every thumbnail painted; a click opens that layer and head in the head view
    var after = {layer: state.layer, heads: state.heads.slice()};
    function opaque(cv) {
      var px = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data, m = 0;
      for (var o = 3; o < px.length; o += 4) m += px[o] === 255;
      return m;
    }
    root.querySelector('.attn-tab[data-view="model"]').dispatchEvent(new MouseEvent('click', {bubbles: true}));
    out.model_view = root.getAttribute('data-view');
    out.model_visible = !panels.model.hidden && panels.lines.hidden && panels.head.hidden;
    var all = panels.model.querySelectorAll('canvas.attn-thumb');
    out.thumbs = all.length;
    out.thumbs_painted = 0;
    for (var t = 0; t < all.length; t++) out.thumbs_painted += opaque(all[t]) === n * n;
    var pick = panels.model.querySelector('canvas.attn-thumb[data-layer="0"][data-head="' + (H - 1) + '"]');
    pick.dispatchEvent(new MouseEvent('click', {bubbles: true}));
    var heat = panels.head.querySelectorAll('canvas.attn-heat');
    out.thumb_click = {view: root.getAttribute('data-view'), layer: state.layer, heads: state.heads.slice(),
                       select: +select.value, heatmaps: heat.length, painted: heat.length ? opaque(heat[0]) : 0,
                       head_visible: !panels.head.hidden && panels.model.hidden};
    state.layer = after.layer; state.heads = after.heads; select.value = String(after.layer);
    state.view = 'lines';
    render();
    root.setAttribute('data-selftest', JSON.stringify(out));
  }
})();
"""


def _static_svg(a: np.ndarray, tokens: list[str], layer: int, heads: list[int], geo: dict, vid: str) -> str:
    """The default view drawn in Python: presentation attributes only, so it reads even without the styles."""
    n = len(tokens)
    y = lambda i: geo["pad"] + i * geo["row"] + geo["row"] / 2
    parts = [
        f'<svg class="attn-svg" width="{geo["width"]}" height="{geo["height"]}" '
        f'viewBox="0 0 {geo["width"]} {geo["height"]}" role="img" aria-label="attention lines {vid}">',
        f'<text x="{geo["x1"] - 6}" y="14" text-anchor="end" font-size="11" fill="#777">query</text>',
        f'<text x="{geo["x2"] + 6}" y="14" text-anchor="start" font-size="11" fill="#777">key</text>',
        '<g class="attn-edges">',
    ]
    for h in heads:  # one <path> per head and weight step (0.05): compact, whatever the number of lines
        color = HEAD_COLORS[h % len(HEAD_COLORS)]
        steps: dict[int, list[str]] = {}
        for i in range(n):
            for j in range(n):
                v = a[layer, h, i, j] / 255.0
                if v >= geo["min_weight"]:
                    steps.setdefault(int(round(v * 20)), []).append(f"M{geo['x1']} {y(i):g}L{geo['x2']} {y(j):g}")
        for k in sorted(steps):
            v = k / 20
            op = min(1.0, (0.15 if len(heads) == 1 else 0.0) + v)
            parts.append(
                f'<path d="{"".join(steps[k])}" fill="none" stroke="{color}" stroke-opacity="{op:.2f}" '
                f'stroke-width="{0.5 + 2.5 * v:.2f}"></path>'
            )
    parts.append("</g>")
    for side, x, anchor in (("q", geo["x1"] - 6, "end"), ("k", geo["x2"] + 6, "start")):
        rx = geo["x1"] - geo["label"] if side == "q" else geo["x2"] + 2
        for i, t in enumerate(tokens):
            parts.append(
                f'<g class="attn-tok {side}" data-idx="{i}"><rect x="{rx}" y="{geo["pad"] + i * geo["row"]}" '
                f'width="{geo["label"] - 2}" height="{geo["row"] - 2}" fill="#ff9800" fill-opacity="0"></rect>'
                f'<text x="{x}" y="{y(i) + 4:g}" text-anchor="{anchor}" font-family="monospace" font-size="13">'
                f"{html.escape(_visible(t))}</text></g>"
            )
    parts.append("</svg>")
    return "".join(parts)


def attention_html(
    attentions,
    tokens: Sequence[str] | str,
    batch: int = 0,
    layer: int = 0,
    heads: Sequence[int] | None = None,
    window: tuple[int, int] | None = None,
    title: str | None = "Attention head view",
    min_weight: float = 0.02,
    max_tokens: int = 256,
    full_page: bool = True,
    view: str = "lines",
) -> str:
    """The interactive attention views as one self-contained HTML string (a whole page, or a fragment).

    ``attentions``: per-layer ``[B, H, T, T]`` tuple (our ``GPT`` with ``return_attention=True``, or Hugging
    Face with ``output_attentions=True``), or anything ``stack_attentions`` takes; ``tokens``: ``T`` strings.
    ``layer``, ``heads`` (default: all) and ``view`` (``"head"``: heatmaps of the selected heads, ``"model"``:
    every layer x head, click one to open it, ``"lines"``: the token-to-token lines) are what is shown first;
    ``window=(start, end)`` keeps those tokens. Weights are stored to 1/255; lines below ``min_weight`` are not
    drawn. Longer than ``max_tokens``: an error (use a window). Same input, same string: ids come from a hash
    of the content. Without scripts (a notebook on GitHub) the line view of ``layer``/``heads`` is shown.
    """
    a = stack_attentions(attentions, batch)
    tokens = _tokens(tokens, a.shape[-2], a.shape, "tokens")
    if a.shape[-1] != a.shape[-2]:
        raise ValueError(f"attention_html needs self-attention (square) weights, got shape {a.shape}")
    L, H = a.shape[0], a.shape[1]
    layer = _index(layer, L, "layer")
    heads = _pick(heads, H, "heads")
    s, e = _window(window, a.shape[-1])
    a, tokens = a[..., s:e, s:e], tokens[s:e]
    n = e - s
    if n > max_tokens:
        raise ValueError(f"{n} tokens are too many for one view (max_tokens={max_tokens}): pass window=(start, end)")
    if not 0.0 <= float(min_weight) < 1.0:
        raise ValueError(f"min_weight must be in [0, 1), got {min_weight!r}")
    if title is not None and not isinstance(title, str):
        raise TypeError(f"title must be a str or None, got {type(title).__name__}")
    if not isinstance(view, str) or view not in HTML_VIEWS:
        raise ValueError(f"view must be one of {tuple(HTML_VIEWS)}, got {view!r}")

    q = np.rint(np.clip(np.nan_to_num(a, nan=0.0), 0.0, 1.0) * 255).astype(np.uint8)  # [L, H, n, n]
    label = int(min(160, max(40, 8 * max(len(_visible(t)) for t in tokens) + 14)))
    geo = {"row": _ROW, "pad": _PAD, "label": label, "x1": label, "x2": label + _GAP,
           "width": 2 * label + _GAP, "height": _PAD + n * _ROW + 6, "min_weight": float(min_weight)}
    data = {
        "L": L, "H": H, "n": n, "tokens": tokens, "layer": layer, "heads": heads,
        "colors": list(HEAD_COLORS), "weights": base64.b64encode(q.tobytes()).decode("ascii"),
        "row": geo["row"], "pad": geo["pad"], "x1": geo["x1"], "x2": geo["x2"], "min_weight": geo["min_weight"],
        "view": view, "names": HTML_VIEWS, "causal": _is_causal(a), "cmap": _viridis(),
        "thumb": int(min(96, max(40, 3 * n))), "heat": int(min(360, max(140, 10 * n))),
    }
    payload = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    vid = "attn-" + hashlib.sha1(f"{payload}|{title}".encode()).hexdigest()[:12]
    payload = payload.replace("</", "<\\/")  # never close the data script early

    options = "".join(f'<option value="{i}"{" selected" if i == layer else ""}>{i}</option>' for i in range(L))
    chips = "".join(
        f'<span class="attn-head{"" if h in heads else " off"}" data-head="{h}" title="head {h}: click to toggle" '
        f'style="background:{HEAD_COLORS[h % len(HEAD_COLORS)]}">{h}</span>'
        for h in range(H)
    )
    tabs = "".join(
        f'<span class="attn-tab{" on" if v == "lines" else ""}" data-view="{v}">{name}</span>'
        for v, name in HTML_VIEWS.items()
    )
    body = (
        f'<div class="attn-view" id="{vid}" data-view="lines">'
        f"<style>{_CSS.format(id=vid)}</style>"
        + (f'<div class="attn-title">{html.escape(title)}</div>' if title else "")
        + f'<div class="attn-tabs" hidden>{tabs}</div>'  # shown by the script (without it only lines are drawn)
        + f'<div class="attn-controls"><label>layer <select class="attn-layer">{options}</select></label>'
        f"<span>heads {chips}</span>"
        '<span class="attn-hint">line view: hover a token (left = what it attends to, right = what attends to '
        "it); model view: click a head to open it</span>"
        "</div>"
        '<div class="attn-panel attn-panel-head" hidden></div>'
        '<div class="attn-panel attn-panel-model" hidden></div>'
        '<div class="attn-panel attn-panel-lines">'
        + _static_svg(q, tokens, layer, heads, geo, vid)
        + "</div>"
        + f'<div class="attn-status">line view · layer {layer} · heads {",".join(map(str, heads))} '
        "(static picture: the script adds the interaction)</div>"
        f'<script type="application/json" class="attn-data">{payload}</script>'
        f"<script>{_JS.replace('{id}', vid)}</script>"
        "</div>"
    )
    if not full_page:
        return body
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title or 'Attention')}</title>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def save_attention_html(path: str | os.PathLike, attentions, tokens: Sequence[str] | str, **kwargs) -> Path:
    """Write ``attention_html(attentions, tokens, **kwargs)`` as a whole page to ``path``; return the path."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    kwargs["full_page"] = True
    page = attention_html(attentions, tokens, **kwargs)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
