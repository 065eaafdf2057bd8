"""helpers.viz.explore: the attention explorer on our GPT and on a Hugging Face GPT-2 (tiny, random, offline).

The weights it shows are the model's own (checked against a second forward pass, max |difference| <= 1e-6);
the widget's controls change the picture and the same state gives the same PNG bytes; a model-view
thumbnail's button opens that layer and head; the HTML page is self-contained and, in headless Chromium,
its model view opens a head when a thumbnail is clicked; bad inputs are refused by name.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from helpers.course import agree  # noqa: E402
from helpers.model import GPT, GPTConfig  # noqa: E402
from helpers.tokenizer import CharTokenizer  # noqa: E402
from helpers.viz import AttentionExplorer, explore  # noqa: E402

TEXT = "to be or not to be"
L, H = 2, 3
TOL = 1e-6  # the explorer's weights and a second forward pass: the same computation, float32


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    assert not plt.get_fignums(), "the explorer left a matplotlib figure open"


@pytest.fixture(scope="module")
def tok():
    return CharTokenizer.from_text(TEXT + "!?")


@pytest.fixture(scope="module")
def gpt(tok):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=24, n_layer=L, n_head=H, n_embd=24))
    with torch.no_grad():  # sharper attention than at initialisation: heads and layers look different
        for block in model.transformer.h:
            block.attn.c_attn.weight.mul_(10.0)
    return model.eval()


@pytest.fixture(scope="module")
def hf(gpt):
    """A random Hugging Face GPT-2 of the same tiny config (our weights), left on its default 'sdpa' kernel."""
    model = gpt.to_hf().eval()
    assert model.config._attn_implementation == "sdpa"
    return model


@pytest.fixture(scope="module")
def ex(gpt, tok):
    return explore(gpt, TEXT, tok)


# ------------------------------------------------------------------------------------------------ weights
def test_gpt_weights_are_the_models_own(gpt, tok, ex):
    gpt.train()  # the explorer runs in eval mode and puts the mode back
    try:
        e = explore(gpt, TEXT, tok)
        assert gpt.training
    finally:
        gpt.eval()
    with torch.no_grad():
        ref = gpt(torch.tensor([tok.encode(TEXT)]), return_attention=True).attentions
    assert e.attentions.shape == (L, H, len(TEXT), len(TEXT))
    print("explorer vs GPT:", agree(e.attentions, torch.stack(ref)[:, 0], TOL))
    assert e.tokens == list(TEXT)
    assert (e.layer, e.heads, e.view) == (0, [0], "head")


def test_hf_weights_are_the_models_own(hf, gpt, tok):
    hf_tok = tok.to_hf()  # a Hugging Face tokenizer (PreTrainedTokenizerFast)
    e = explore(hf, TEXT, hf_tok, layer=1, heads=None, view="lines")
    assert hf.config._attn_implementation == "sdpa"  # switched to eager for the call, then back
    hf.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            ref = hf(torch.tensor([hf_tok.encode(TEXT)]), output_attentions=True).attentions
    finally:
        hf.set_attn_implementation("sdpa")
    print("explorer vs Hugging Face:", agree(e.attentions, torch.stack(ref)[:, 0], TOL))
    # the same weights in both models: the same attention
    print("HF vs our GPT:", agree(e.attentions, explore(gpt, TEXT, tok).attentions, 1e-5))
    assert (e.layer, e.heads, e.view) == (1, list(range(H)), "lines")


# ------------------------------------------------------------------------------------------------ widget
def test_controls_change_the_picture(ex):
    w = ex.widget()
    c = ex._controls
    assert w is ex.widget()  # built once
    first = ex.png()
    assert first.startswith(b"\x89PNG")
    c["layer"].value = 1
    assert ex.layer == 1
    by_layer = ex.png()
    c["toggles"][2].value = True  # a head switched on
    assert ex.heads == [0, 2]
    by_head = ex.png()
    c["view"].value = "lines"
    assert ex.view == "lines"
    lines = ex.png()
    assert len({first, by_layer, by_head, lines}) == 4  # every change redrew the picture
    # the same state gives the same bytes, also from a fresh explorer (no cache involved)
    fresh = AttentionExplorer(ex.attentions[:, None], ex.tokens, layer=1, heads=[0, 2], view="lines")
    assert fresh.png() == lines
    c["toggles"][0].value = False
    c["toggles"][2].value = False  # every head off: a message, not an error
    assert ex.heads == [] and ex.png() != lines
    ex.select(layer=0, heads=0, view="head")
    assert ex.png() == first
    assert (c["layer"].value, [t.value for t in c["toggles"]], c["view"].value) == (0, [True, False, False], "head")


def test_model_view_thumbnail_opens_that_head(ex):
    ex.widget()
    c = ex._controls
    assert not c["buttons"] and c["model"].layout.display == "none"  # built the first time it is shown
    before = ex.png()
    c["view"].value = "model"
    assert ex.view == "model" and c["model"].layout.display == "grid"
    assert set(c["buttons"]) == {(layer, h) for layer in range(L) for h in range(H)}
    assert ex.png() != before
    thumbs = [ex.thumbnail_png(layer, h) for layer in range(L) for h in range(H)]
    assert all(t.startswith(b"\x89PNG") for t in thumbs) and len(set(thumbs)) == L * H
    model_png = ex.png()
    c["buttons"][(1, 2)].click()
    assert (ex.view, ex.layer, ex.heads) == ("head", 1, [2])
    assert c["model"].layout.display == "none" and c["view"].value == "head" and c["layer"].value == 1
    assert [t.value for t in c["toggles"]] == [False, False, True]
    assert c["buttons"][(1, 2)].button_style == "info" and c["buttons"][(0, 0)].button_style == ""
    assert ex.png() not in (before, model_png)
    ex.select(layer=0, heads=0, view="head")


def test_display_outside_a_kernel_shows_the_picture(ex, capsys):
    ex._ipython_display_()
    assert "Image" in capsys.readouterr().out  # IPython's display prints the text form outside a kernel
    s = ex.sentence()
    assert s == ex.sentence() and s.startswith("[attention explorer: 2 layers x 3 heads over 18 tokens")
    assert "AttentionExplorer(2 layers x 3 heads, 18 tokens" in repr(ex)


# ------------------------------------------------------------------------------------------------ HTML
def test_html_is_self_contained_and_deterministic(ex, tmp_path):
    page = ex.to_html()
    assert page.startswith("<!DOCTYPE html>")
    assert "http" not in page.replace("http://www.w3.org/2000/svg", "")  # only the SVG namespace
    assert "<link" not in page and "url(" not in page and not re.search(r"<script[^>]*\bsrc", page)
    fresh = AttentionExplorer(ex.attentions[:, None], ex.tokens)
    assert fresh.to_html() == page  # same input, same text (ids from a content hash)
    for v in ("head", "model", "lines"):
        assert f'data-view="{v}"' in page
    data = json.loads(re.search(r'class="attn-data">(.*?)</script>', page, re.S).group(1))
    assert (data["L"], data["H"], data["n"], data["view"]) == (L, H, len(TEXT), "head")
    assert ex.select(view="model").to_html() != page
    ex.select(view="head")
    path = ex.save_html(tmp_path / "sub" / "explorer.html")
    assert path.read_text(encoding="utf-8") == page
    frag = ex.to_html(full_page=False)
    assert frag.startswith('<div class="attn-view"') and frag in page


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.mark.skipif(_chromium() is None, reason="Chromium not found (install Debian's 'chromium' package)")
def test_html_model_view_in_chromium(gpt, tok, tmp_path):
    """The page's self-test (``#selftest``) clicks a model-view thumbnail: that layer and head open."""
    page = explore(gpt, TEXT, tok, view="model", heads=None).save_html(tmp_path / "view.html")
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page.resolve().as_uri() + "#selftest"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=90, env={"HOME": str(tmp_path), "PATH": ""})
    m = re.search(r'data-selftest="([^"]*)"', res.stdout)
    assert m, f"the page's self-test did not run: {res.stderr[-2000:]}"
    st = json.loads(html.unescape(m.group(1)))
    n = len(TEXT)
    assert st["tokens"] == n and st["layer"] == L - 1 and st["heads_after_click"] == list(range(1, H))
    assert st["model_view"] == "model" and st["model_visible"] is True
    assert st["thumbs"] == L * H and st["thumbs_painted"] == L * H  # every thumbnail drawn, every pixel
    assert st["thumb_click"] == {"view": "head", "layer": 0, "heads": [H - 1], "select": 0, "heatmaps": 1,
                                 "painted": n * n, "head_visible": True}
    assert 'data-view="lines"' in res.stdout  # the self-test ends on the line view


# ------------------------------------------------------------------------------------------------ errors
class _BadTok:
    def encode(self, text):
        return [999] * len(text)

    def decode(self, ids):
        return "?"


def test_bad_inputs_are_refused_by_name(gpt, tok, hf, monkeypatch):
    with pytest.raises(TypeError, match=r"helpers.model.GPT or a Hugging Face.*got torch.nn.modules.linear.Linear"):
        explore(torch.nn.Linear(2, 2), TEXT, tok)
    with pytest.raises(TypeError, match="text must be a str, got list"):
        explore(gpt, ["to"], tok)
    with pytest.raises(ValueError, match="text is empty"):
        explore(gpt, "", tok)
    with pytest.raises(TypeError, match="needs the model's tokenizer.*load_checkpoint"):
        explore(gpt, TEXT)
    with pytest.raises(TypeError, match="encode.*decode.*got str"):
        explore(gpt, TEXT, "chars")
    with pytest.raises(ValueError, match=r"30 tokens long but the model's context is 24 tokens \(block_size\)"):
        explore(gpt, "to be " * 5, tok)
    with pytest.raises(ValueError, match=r"18 tokens long, more than max_tokens=10"):
        explore(gpt, TEXT, tok, max_tokens=10)
    with pytest.raises(ValueError, match=r"ids \[999, 999.*outside the model's vocabulary \[0, 8\]"):
        explore(gpt, TEXT, _BadTok())
    with pytest.raises(ValueError, match=r"layer=2 is out of range: the model has 2 layers \(0..1\)"):
        explore(gpt, TEXT, tok, layer=2)
    with pytest.raises(ValueError, match=r"head=3 is out of range: the model has 3 heads"):
        explore(gpt, TEXT, tok, heads=[0, 3])
    with pytest.raises(ValueError, match="heads is empty"):
        explore(gpt, TEXT, tok, heads=[])
    with pytest.raises(ValueError, match=r"view must be one of \('head', 'model', 'lines'\), got 'grid'"):
        explore(gpt, TEXT, tok, view="grid")
    with pytest.raises(TypeError, match="layer must be an int, got float"):
        explore(gpt, TEXT, tok, layer=1.0)
    e = explore(gpt, TEXT, tok)
    with pytest.raises(ValueError, match="layer=5 is out of range"):
        e.select(layer=5)
    with pytest.raises(ValueError, match="head=7 is out of range"):
        e.open(0, 7)
    with pytest.raises(TypeError, match="path must be"):
        e.save_html(3)
    # a Hugging Face model that cannot give its weights (here: switching to eager does nothing)
    monkeypatch.setattr(hf, "set_attn_implementation", lambda impl: None)
    with pytest.raises(ValueError, match=r"returned no attention weights.*attn_implementation='eager'"):
        explore(hf, TEXT, tok.to_hf())
