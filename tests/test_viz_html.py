"""The self-contained attention view in a real browser: headless Chromium opens the saved page (offline), which
must show the tokens and react to a hover and a layer change; a screenshot must not be blank.

Chromium is Debian's ``chromium`` package (``.ci/run`` installs it); where it is missing the test is skipped
and says why. The page's own script runs a self-test when its address ends in ``#selftest`` and writes what
changed into the ``data-selftest`` attribute, which ``--dump-dom`` hands back.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest
import torch

from helpers.model import GPT, GPTConfig
from helpers.viz import save_attention_html

TOKENS = ["To", " be", ",", " or", " not", " to", " be", ":", " that", " is"]
L, H = 3, 4


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium not found (install Debian's 'chromium' package to run the browser test of the HTML view)",
)


def _run(args: list[str], tmp_path) -> subprocess.CompletedProcess:
    """Headless Chromium with everything that would reach the network switched off (the machine is offline)."""
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'profile'}", *args,
    ]
    env = dict(os.environ, HOME=str(tmp_path))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=90, env=env)


@pytest.fixture(scope="module")
def attentions():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=40, block_size=32, n_layer=L, n_head=H, n_embd=32)).eval()
    with torch.no_grad():
        # sharpen the random model's attention a little so that the picture has strong lines
        for block in model.transformer.h:
            block.attn.c_attn.weight.mul_(8.0)
        return model(torch.randint(0, 40, (1, len(TOKENS))), return_attention=True).attentions


def test_page_renders_tokens_and_reacts_to_hover(tmp_path, attentions):
    page = save_attention_html(tmp_path / "view.html", attentions, TOKENS)
    res = _run(["--dump-dom", page.resolve().as_uri() + "#selftest"], tmp_path)
    dom = res.stdout
    assert res.returncode == 0 and "attn-view" in dom, f"chromium failed: {res.stderr[-2000:]}"
    # the tokens are rendered (spaces shown as ␣)
    texts = re.findall(r'<g class="attn-tok q[^"]*" data-idx="\d+">.*?<text[^>]*>(.*?)</text>', dom)
    assert [html.unescape(t) for t in texts] == [t.replace(" ", "␣") for t in TOKENS]
    # the script ran, and the hover changed the DOM
    m = re.search(r'data-selftest="([^"]*)"', dom)
    assert m, "the page's self-test did not run (no data-selftest attribute): the script failed"
    st = json.loads(html.unescape(m.group(1)))
    n = len(TOKENS)
    assert st["tokens"] == n
    assert st["hover"] == f"q{n - 1}" and st["active"] is True
    assert 0 < st["lines_hover"] < st["lines_all"]  # only the hovered query's lines remain
    assert st["keys_lit"] >= 1  # the keys it attends to are shaded
    assert st["lines_after"] == st["lines_all"]  # leaving restores the full view
    assert st["layer"] == L - 1  # the layer menu switches the layer
    assert st["heads_after_click"] == list(range(1, H))  # clicking head 0 switches it off
    assert f"query {json.dumps(TOKENS[-1])} ({n - 1})" in st["status"]
    # the state after the self-test: last layer, heads 1..H-1
    a = np.rint(attentions[L - 1][0, 1:].numpy() * 255) / 255
    assert int(re.search(r'data-lines="(\d+)"', dom).group(1)) == int((a >= 0.02).sum())


def test_screenshot_is_not_blank(tmp_path, attentions):
    page = save_attention_html(tmp_path / "view.html", attentions, TOKENS)
    shot = tmp_path / "shot.png"
    res = _run([f"--screenshot={shot}", "--window-size=700,500", page.resolve().as_uri()], tmp_path)
    assert shot.exists(), f"no screenshot: {res.stderr[-2000:]}"
    import matplotlib.image as mpimg

    img = mpimg.imread(str(shot))[..., :3]
    assert img.shape[0] >= 400 and img.shape[1] >= 600
    assert float(img.var()) > 1e-3  # not a blank page
    colours = {tuple(c) for c in np.round(img.reshape(-1, 3) * 255).astype(int)[::7].tolist()}
    assert len(colours) > 20  # lines in the heads' colours, text, controls
