"""The offline course site, opened in a real browser: ``scripts/build_site.py`` builds it, headless Chromium
(the system's, driven by Playwright) opens every page from the file system with the network cut off.

For every page: no failed request, no request leaving the file system, no console error or page error. Lesson
and note pages: their math typeset by KaTeX with no KaTeX error. Decks: reveal.js started, with as many slides as
the notebook's slide types ask for, and a figure on some slide. Attention views: a real mouse hover on a token
changes what is drawn. Screenshots of the index, a lesson, a note, a deck and a view go to ``tests/artifacts/``.

Skipped, saying why, only where no Chromium is installed (``.ci/run`` installs Debian's ``chromium``).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
sys.path.insert(0, str(ROOT / "scripts"))

import build_site  # noqa: E402
import mark_slides  # noqa: E402


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    return None


CHROMIUM = _chromium()
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="no Chromium binary (install Debian's 'chromium' package, as .ci/run does)")

NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_cell_has_a_slide_type(notebook):
    nb = nbformat.read(notebook, as_version=4)
    assert mark_slides.check(nb, notebook.name) == []
    kinds = [mark_slides.current(c) for c in nb.cells]
    # a deck a class can follow: sections, and not one slide per cell
    assert kinds.count("slide") >= 1 and 8 <= kinds.count("slide") + kinds.count("subslide") < len(nb.cells)


def test_slide_rules():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Title\n\nWhat you will learn."),
        nbformat.v4.new_code_cell("import torch\nfrom helpers.course import setup\n\ndevice = setup()"),
        nbformat.v4.new_markdown_cell("## 1. A section\n\nShort."),
        nbformat.v4.new_code_cell("x = 1\nprint(x)"),
        nbformat.v4.new_markdown_cell("<details><summary>Hint</summary>Look again.</details>"),
        nbformat.v4.new_markdown_cell("Long prose. " * 300),
        nbformat.v4.new_code_cell("def f():\n    ### BEGIN SOLUTION\n    pass\n    ### END SOLUTION",
                                  metadata={"nbgrader": {"solution": True, "grade_id": "a"}}),
        nbformat.v4.new_markdown_cell("**Exercise 2.** Do it."),
        nbformat.v4.new_code_cell("record('x', 1)"),
    ])
    assert mark_slides.slide_types(nb) == ["slide", "skip", "slide", "fragment", "notes", "subslide", "skip",
                                           "subslide", "skip"]
    nb.cells[3].metadata["slideshow"] = {"slide_type": "skip"}  # a teacher's choice is kept ...
    assert mark_slides.mark(nb) == len(nb.cells) - 1 and mark_slides.current(nb.cells[3]) == "skip"
    assert mark_slides.mark(nb, redo=True) == 1 and mark_slides.current(nb.cells[3]) == "fragment"  # ... unless redo
    nb.cells[6].metadata["slideshow"] = {"slide_type": "-"}
    assert "solution or test cell shown" in "\n".join(mark_slides.check(nb, "x"))


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "site"
    try:
        summary = build_site.build(out)
    except SystemExit as e:  # reveal.js and KaTeX come from the npm registry, once (then from the cache)
        if "could not download" not in str(e) or os.environ.get("COURSE_REQUIRE_NPM") == "1":
            raise
        pytest.skip(f"the site's vendored libraries are not cached and the npm registry is unreachable: {e}")
    assert summary["lessons"] == summary["decks"] == len(NOTEBOOKS)
    assert summary["notes"] == len(list((ROOT / "lecture_notes").glob("*.md")))
    return out


def test_site_has_every_page(site):
    for nb in NOTEBOOKS:
        assert (site / "lessons" / f"{nb.stem}.html").is_file()
        assert (site / "slides" / f"{nb.stem}.slides.html").is_file()
    for md in (ROOT / "lecture_notes").glob("*.md"):
        assert (site / "notes" / f"{md.stem}.html").is_file()
    index = (site / "index.html").read_text(encoding="utf-8")
    for nb in NOTEBOOKS:
        for link in (f"lessons/{nb.stem}.html", f"slides/{nb.stem}.slides.html"):
            assert f'href="{link}"' in index, link
    # no script, style sheet or import from another host (prose may name a CDN: lecture note 10 does)
    remote = re.compile(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)=[\"'](?:https?:)?//|import [^;]*from ['\"]https?:")
    for path in site.rglob("*.html"):
        m = remote.search(path.read_text(encoding="utf-8"))
        assert m is None, f"{path.relative_to(site)} loads from another host: {m.group(0)}"


@needs_chromium
def test_every_page_in_a_browser(site):
    from playwright.sync_api import sync_playwright

    pages = sorted(site.rglob("*.html"))
    problems: list[str] = []
    shots = {"index.html": "site_index.png", "lessons/01_attention_math.html": "site_lesson.png",
             "notes/01_attention_math.html": "site_note.png", "slides/01_attention_math.slides.html": "site_deck.png",
             "views/induction-2l.html": "site_view.png"}
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                  "--host-resolver-rules=MAP * ~NOTFOUND"])
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            for path in pages:
                rel = path.relative_to(site).as_posix()
                seen: list[str] = []

                def route(r, seen=seen):
                    url = r.request.url
                    if url.startswith(("file://", "data:", "blob:", "about:")):
                        r.continue_()
                    else:
                        seen.append(f"left the file system: {url}")
                        r.abort()

                page = context.new_page()
                page.route("**/*", route)
                page.on("console", lambda m, seen=seen: seen.append(f"console.{m.type}: {m.text}")
                        if m.type == "error" else None)
                page.on("pageerror", lambda e, seen=seen: seen.append(f"page error: {e}"))
                page.on("requestfailed", lambda r, seen=seen: seen.append(f"failed: {r.url} {r.failure}"))
                page.goto(path.as_uri(), wait_until="load")
                if rel.startswith(("lessons/", "notes/", "index")):
                    page.wait_for_selector("body[data-math=rendered]", timeout=30_000)
                    errors = page.locator(".katex-error").count()
                    if errors:
                        seen.append(f"{errors} KaTeX error(s): {page.locator('.katex-error').first.text_content()}")
                    if rel.startswith(("lessons/01", "notes/01")) and page.locator(".katex").count() < 10:
                        seen.append("the math was not typeset")
                if rel.startswith("slides/"):
                    page.wait_for_selector("body[data-deck=ready]", timeout=30_000)
                    stem = Path(rel).name.removesuffix(".slides.html")
                    nb = nbformat.read(ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)
                    kinds = [mark_slides.current(c) for c in nb.cells]
                    want = kinds.count("slide") + kinds.count("subslide")
                    got = page.evaluate("() => Reveal.getTotalSlides()")
                    if got != want:
                        seen.append(f"{got} slides, the notebook's slide types ask for {want}")
                    if page.locator(".reveal .slides img").count() == 0 and stem != "00_setup":
                        seen.append("no figure on any slide")
                    if page.locator(".reveal .slides .katex").count() == 0 and stem.startswith(("01", "02")):
                        seen.append("no math typeset on the slides")
                    page.keyboard.press("ArrowRight")
                    if page.evaluate("() => Reveal.getIndices().h + Reveal.getIndices().v") < 1:
                        seen.append("the arrow key did not move the deck")
                if rel.startswith("views/"):
                    page.wait_for_selector(".attn-view")
                    status = page.locator(".attn-status").first
                    before = status.text_content()
                    page.locator("g.attn-tok.q").nth(5).hover()
                    page.wait_for_timeout(200)
                    if status.text_content() == before:
                        seen.append("hovering a token changed nothing")
                if rel in shots:
                    page.screenshot(path=str(ARTIFACTS / shots[rel]))
                page.close()
                problems += [f"{rel}: {s}" for s in seen]
        finally:
            browser.close()
    assert not problems, "\n".join(problems[:40])
    assert len(pages) >= 2 * len(NOTEBOOKS) + 16


def test_build_refuses_the_repository_and_unknown_lessons(tmp_path):
    with pytest.raises(SystemExit, match="holds the repository"):
        build_site.build(ROOT)
    with pytest.raises(SystemExit, match="no lesson matches"):
        build_site.build(tmp_path / "s", only=["99"])


def test_vendored_tarballs_are_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_NPM_CACHE", str(tmp_path))
    name, (version, integrity, _) = "katex", build_site.VENDOR["katex"]
    (tmp_path / f"{name}-{version}.tgz").write_bytes(b"not the tarball")
    monkeypatch.setattr(build_site, "REGISTRY", "http://127.0.0.1:9")  # nothing listens there: offline
    with pytest.raises(SystemExit, match="could not download"):
        build_site.npm_tarball(name, version, integrity)
    assert os.environ["COURSE_NPM_CACHE"] == str(tmp_path)
