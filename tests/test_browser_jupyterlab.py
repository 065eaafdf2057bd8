"""The attention explorer's widget in a real JupyterLab, driven by a real browser.

The test starts ``python -m jupyterlab`` on 127.0.0.1 (a fresh server, private config/runtime/data folders, a
kernelspec that points at this interpreter, so the kernel imports ``helpers`` from this environment), opens a
copy of ``tests/browser/explorer_demo.ipynb`` in headless Chromium through Playwright (the system's Chromium:
no browser download), runs every cell, then changes the layer, switches a head on, opens the model view, clicks a
thumbnail's button, opens the line view and goes back to the head view. After each action the picture (the
last PNG output) must change and then settle; going back to a state must give back the same bytes. The browser
console must have logged no error and no request may have left 127.0.0.1. A screenshot is kept in
``$COURSE_ARTIFACTS`` (default ``tests/artifacts/``) and must not be blank.

Skipped, saying why, only where no Chromium is installed (``.ci/run`` installs Debian's ``chromium``).
Playwright for Python is a course requirement: without it this file fails instead of skipping.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright  # a requirement: without it this file fails, never skips

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "tests" / "browser" / "explorer_demo.ipynb"
ZH_NOTEBOOK = ROOT / "notebooks" / "zh" / "01_attention_math.ipynb"  # a lesson of the Chinese edition
KERNEL = "course-python"  # the private kernelspec's name: this interpreter, whatever else is installed
L, H = 2, 4  # the demo's model


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


CHROMIUM = _chromium()
pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium binary (install Debian's 'chromium' package, as .ci/run does, to run the JupyterLab test)",
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 2.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 - 127.0.0.1 only
        return json.loads(r.read().decode("utf-8"))


@pytest.fixture
def lab(tmp_path):
    """A fresh JupyterLab server on 127.0.0.1 serving a folder with the demo notebook and a Chinese lesson (outputs
    cleared); stopped afterwards."""
    root, data = tmp_path / "root", tmp_path / "data"
    root.mkdir()
    spec = data / "kernels" / KERNEL
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (course)", "language": "python",
    }), encoding="utf-8")
    for source in (DEMO, ZH_NOTEBOOK):
        nb = json.loads(source.read_text(encoding="utf-8"))
        for cell in nb["cells"]:  # never show stale widget outputs (their models are gone: a console error)
            if cell["cell_type"] == "code":
                cell["outputs"], cell["execution_count"] = [], None
        nb["metadata"]["kernelspec"] = {"name": KERNEL, "display_name": "Python 3 (course)", "language": "python"}
        (root / source.name).write_text(json.dumps(nb, ensure_ascii=False), encoding="utf-8")
    # never ask about Jupyter news (news_url=None stops the fetch, not the "get notified?" toast over the page)
    settings = tmp_path / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}), encoding="utf-8")

    token, port = secrets.token_hex(16), _free_port()
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "run"),
               JUPYTER_DATA_DIR=str(data), IPYTHONDIR=str(tmp_path / "ipython"), JUPYTER_PLATFORM_DIRS="1")
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip", "127.0.0.1", "--port", str(port),
           f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}", "--allow-root",
           "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
           f"--MappingKernelManager.default_kernel_name={KERNEL}"]
    log = open(tmp_path / "jupyterlab.log", "w")  # noqa: SIM115 - closed in the teardown
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                _get(f"{base}/api/status?token={token}")
                break
            except OSError as e:
                if proc.poll() is not None or time.monotonic() > deadline:
                    tail = (tmp_path / "jupyterlab.log").read_text()[-3000:]
                    raise RuntimeError(f"JupyterLab did not start:\n{tail}") from e
                time.sleep(0.25)
        specs = _get(f"{base}/api/kernelspecs?token={token}")
        assert specs["default"] == KERNEL, f"JupyterLab's default kernel is {specs['default']!r}, not {KERNEL!r}"
        assert specs["kernelspecs"][KERNEL]["spec"]["argv"][0] == sys.executable
        yield {"base": base, "token": token, "log": tmp_path / "jupyterlab.log"}
    finally:
        _stop(proc, base, token)
        log.close()


def _stop(proc: subprocess.Popen, base: str, token: str) -> None:
    """Shut the server down (its kernels with it), then end its process group and any kernel left."""
    import psutil

    try:
        children = psutil.Process(proc.pid).children(recursive=True)  # the kernels (their own sessions)
    except psutil.Error:
        children = []
    try:
        req = urllib.request.Request(f"{base}/api/shutdown?token={token}", method="POST")
        urllib.request.urlopen(req, timeout=5).close()  # noqa: S310 - 127.0.0.1 only
        proc.wait(timeout=15)
    except (OSError, subprocess.TimeoutExpired):
        pass
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=10)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    for child in children:  # by pid, only the processes this server started
        try:
            child.kill()
        except psutil.Error:
            pass


# ------------------------------------------------------------------------------------------------ the page
PICTURE = """() => {
  const imgs = document.querySelectorAll('.jp-OutputArea-output img');
  const img = imgs[imgs.length - 1];
  return img ? img.getAttribute('src') : null;
}"""
IDLE = """() => {
  const w = window.jupyterapp.shell.currentWidget;
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!k && k.status === 'idle';
}"""


def _picture(page) -> str | None:
    return page.evaluate(PICTURE)


def _redrawn(page, old: str | None, timeout_s: float = 60) -> str:
    """Wait until the picture differs from ``old``, the kernel is idle, and the picture is unchanged for 0.5 s."""
    page.wait_for_function(
        "(old) => { const s = (" + PICTURE + ")(); return !!s && s.startsWith('data:image/png') && s !== old; }",
        arg=old, timeout=timeout_s * 1000,
    )
    page.wait_for_function(IDLE, timeout=timeout_s * 1000)
    deadline = time.monotonic() + timeout_s
    src = _picture(page)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = _picture(page)
        if now == src:
            return src
        src = now
    raise AssertionError("the picture did not settle")


def _artifacts() -> Path:
    folder = Path(os.environ.get("COURSE_ARTIFACTS") or ROOT / "tests" / "artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _open(p, blocked: list[str], errors: list[str]):
    """Headless Chromium with one page: requests beyond 127.0.0.1 are blocked (and listed in ``blocked``), console
    errors and page errors are collected in ``errors``."""

    def route(r) -> None:
        url = r.request.url
        if url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")):
            r.continue_()
        else:
            blocked.append(url)
            r.abort()

    browser = p.chromium.launch(
        executable_path=CHROMIUM, headless=True,
        args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
    )
    context = browser.new_context(viewport={"width": 1280, "height": 1100})
    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    return browser, page


def _open_notebook(page, lab: dict, name: str) -> None:
    """Open notebook ``name`` and wait until it is ready: its context and kernel session, then an idle kernel (the
    toolbar is not enough)."""
    page.goto(f"{lab['base']}/lab/tree/{name}?token={lab['token']}&reset")
    page.wait_for_function(
        "() => { const a = window.jupyterapp; const w = a && a.shell.currentWidget;"
        " return !!(w && w.sessionContext && w.context); }", timeout=90_000)
    page.evaluate("async () => { const w = window.jupyterapp.shell.currentWidget;"
          " await w.context.ready; await w.sessionContext.ready; return true; }")
    page.wait_for_function(IDLE, timeout=90_000)


def _code_outputs(page) -> list:
    """Every code cell's outputs, as nbformat JSON, from the open notebook's model."""
    return page.evaluate("""() => {
      const cells = window.jupyterapp.shell.currentWidget.content.model.cells, out = [];
      for (let i = 0; i < cells.length; i++) {
        const c = cells.get(i);
        if (c.type === 'code') out.push(c.outputs.toJSON());
      }
      return out;
    }""")


def test_explorer_widget_in_jupyterlab(lab):
    started = time.monotonic()
    blocked: list[str] = []
    errors: list[str] = []

    with sync_playwright() as p:
        browser, page = _open(p, blocked, errors)
        try:
            _open_notebook(page, lab, DEMO.name)
            page.evaluate("async () => { await window.jupyterapp.commands.execute('notebook:run-all-cells');"
                          " return true; }")
            page.wait_for_selector(".attn-explorer", timeout=90_000)
            outputs = _code_outputs(page)
            errs = [o for cell in outputs for o in cell if o["output_type"] == "error"]
            assert not errs, f"the notebook failed in JupyterLab: {errs}"
            seen = [_redrawn(page, None)]  # the default view: layer 0, head 0

            def act(what: str, do) -> None:
                do()
                src = _redrawn(page, seen[-1])
                assert src != seen[-1], f"{what}: the picture did not change"
                seen.append(src)

            # the layer: type into the slider's readout
            def layer() -> None:
                readout = page.locator(".attn-explorer-layer .widget-readout")
                readout.click()
                page.keyboard.press("Control+A")
                page.keyboard.type("1")
                page.keyboard.press("Enter")

            act("layer 0 -> 1", layer)
            act("head 1 switched on", lambda: page.locator(".attn-explorer-head-1").click())
            assert "mod-active" in page.locator(".attn-explorer-head-1").get_attribute("class")
            act("model view", lambda: page.locator(".attn-explorer-view button", has_text="model view").click())
            thumbs = page.locator(".attn-explorer-model img")
            assert thumbs.count() == L * H and thumbs.first.is_visible()
            act("thumbnail layer 0 head 3 opened",
                lambda: page.locator(f".attn-open-L0-H{H - 1}").click())
            assert not page.locator(".attn-explorer-model").is_visible()  # back in the head view
            assert "mod-active" in page.locator(f".attn-explorer-head-{H - 1}").get_attribute("class")
            assert "mod-active" not in page.locator(".attn-explorer-head-0").get_attribute("class")
            assert page.locator(".attn-explorer-layer .widget-readout").inner_text().strip() == "0"
            act("line view", lambda: page.locator(".attn-explorer-view button", has_text="line view").click())
            act("head view again", lambda: page.locator(".attn-explorer-view button", has_text="head view").click())
            assert seen[-1] == seen[-3], "the same state (layer 0, head 3, head view) gave a different picture"
            assert len(set(seen)) == len(seen) - 1  # every other picture differs

            page.evaluate("() => document.querySelector('.attn-explorer').scrollIntoView({block: 'start'})")
            time.sleep(0.3)
            shot = _artifacts() / "jupyterlab_explorer.png"
            page.screenshot(path=str(shot))
        finally:
            browser.close()

    assert not errors, "the browser console logged errors:\n" + "\n".join(errors)
    assert not blocked, f"the page tried to reach beyond 127.0.0.1: {blocked}"
    import matplotlib.image as mpimg
    import numpy as np

    img = mpimg.imread(str(shot))[..., :3]
    assert img.shape[0] >= 1000 and img.shape[1] >= 1200
    assert float(img.var()) > 1e-3, f"the screenshot {shot} is blank"
    colours = {tuple(c) for c in np.round(img.reshape(-1, 3) * 255).astype(int)[::7].tolist()}
    assert len(colours) > 50, f"the screenshot {shot} shows almost nothing ({len(colours)} colours)"
    print(f"JupyterLab browser test: {time.monotonic() - started:.1f} s after the server answered; screenshot {shot}")


def test_a_chinese_lesson_opens_and_runs_in_jupyterlab(lab):
    """The Chinese edition's lesson 01 (``notebooks/zh/``): its Chinese text renders, and Run All runs every cell
    with no error output, no console error and no request beyond 127.0.0.1."""
    blocked: list[str] = []
    errors: list[str] = []

    with sync_playwright() as p:
        browser, page = _open(p, blocked, errors)
        try:
            _open_notebook(page, lab, ZH_NOTEBOOK.name)
            heading = page.locator(".jp-MarkdownOutput h1").first.inner_text(timeout=60_000)
            assert "注意力" in heading, f"the first heading is {heading!r}, not the Chinese title"
            # drawn, not as boxes: with no Chinese font every character is the same empty box
            differ = page.evaluate("""() => {
              const c = document.createElement('canvas'); c.width = 40; c.height = 40;
              const g = c.getContext('2d'), draw = (ch) => { g.clearRect(0, 0, 40, 40);
                g.font = '32px sans-serif'; g.fillText(ch, 2, 32); return g.getImageData(0, 0, 40, 40).data.join(); };
              return draw('注') !== draw('意');
            }""")
            assert differ, "Chinese characters are drawn as identical boxes: install a Chinese font (fonts-wqy-zenhei)"
            page.evaluate("async () => { await window.jupyterapp.commands.execute('notebook:run-all-cells');"
                          " return true; }")
            # done: every code cell has run (an execution count) and the kernel is idle
            page.wait_for_function("""() => {
              const w = window.jupyterapp.shell.currentWidget, cells = w.content.model.cells;
              for (let i = 0; i < cells.length; i++) {
                const c = cells.get(i);
                if (c.type === 'code' && !c.executionCount) return false;
              }
              const k = w.sessionContext.session && w.sessionContext.session.kernel;
              return !!k && k.status === 'idle';
            }""", timeout=300_000)
            outputs = _code_outputs(page)
            errs = [o for cell in outputs for o in cell if o["output_type"] == "error"]
            assert not errs, f"the Chinese notebook failed in JupyterLab: {errs}"
            text = "".join(o.get("text", "") for cell in outputs for o in cell if isinstance(o.get("text"), str))
            assert "4/4 passed" in text or "passed" in text, "the checkers did not run"
            shot = _artifacts() / "jupyterlab_zh_notebook.png"
            page.evaluate("() => { const w = window.jupyterapp.shell.currentWidget.content;"
                          " w.activeCellIndex = 0; w.scrollToItem(0, 'start'); }")
            time.sleep(0.5)
            page.screenshot(path=str(shot))
        finally:
            browser.close()
    assert not errors, "the browser console logged errors:\n" + "\n".join(errors)
    assert not blocked, f"the page tried to reach beyond 127.0.0.1: {blocked}"
