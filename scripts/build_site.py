"""Build the course as an offline website: lessons, lecture notes, slide decks and attention views.

    python scripts/build_site.py            # writes site/; open site/index.html (no server, no network needed)
    python scripts/build_site.py --out /tmp/site --only 01 02

``site/`` holds:

- ``index.html``: the course's map (the README's), with a row per lesson linking its four forms;
- ``lessons/NN_name.html``: each notebook rendered with its committed outputs (nbconvert, the lab template);
- ``notes/NN_name.html``: each lecture note with its math and figures;
- ``slides/NN_name.slides.html``: each notebook as a reveal.js deck (the cells' slide types, see
  ``scripts/mark_slides.py``); keys: arrows, ``s`` speaker notes, ``Esc`` overview, ``f`` full screen;
- ``views/*.html``: self-contained interactive attention views of the course's shipped models;
- ``_vendor/``: reveal.js and KaTeX, downloaded once from the npm registry (their published tarballs, checked
  against the sha512 the registry publishes, pinned below) and cached in ``~/.cache/transformers-by-hand``.

Nothing in the site loads from a CDN: nbconvert's templates load require.js, jQuery, MathJax and reveal.js from
CDNs, so the pages use the templates in ``scripts/site_templates/`` instead (math by KaTeX). The build needs no
network once the two tarballs are cached (``COURSE_NPM_CACHE`` names another cache folder).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import io
import json
import os
import re
import shutil
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "scripts" / "site_templates"

# (package, version, sha512 integrity as the npm registry publishes it, files to keep: tarball path -> site path)
VENDOR = {
    "reveal.js": ("4.6.1", "sha512-1CW0auaXNPmwmvQ7TwpszwVxMi2Xr5cTS3J3EBC/HHgbPF32Dn7aiu/LKWDOGjMbaDwKQiGmfqcoGQ74HUHCMw==",
                  {"dist/": "dist/", "plugin/notes/": "plugin/notes/", "LICENSE": "LICENSE"}),
    "katex": ("0.19.1", "sha512-jG8uKntjSEcm2EpQOh0XturpPuuC9r3Sq5HLHdsFdWZT27E672SF19QEi+of0/YeOy15lDgRhKvr5614uRrEfA==",
              {"dist/katex.min.css": "katex.min.css", "dist/katex.min.js": "katex.min.js",
               "dist/contrib/auto-render.min.js": "contrib/auto-render.min.js", "dist/fonts/": "fonts/",
               "LICENSE": "LICENSE"}),
}
REGISTRY = "https://registry.npmjs.org"


def cache_dir() -> Path:
    return Path(os.environ.get("COURSE_NPM_CACHE") or Path.home() / ".cache" / "transformers-by-hand" / "npm")


def npm_tarball(name: str, version: str, integrity: str) -> bytes:
    """The package's published tarball, from the cache or the npm registry, checked against ``integrity``."""
    algo, _, want = integrity.partition("-")
    path = cache_dir() / f"{name}-{version}.tgz"

    def ok(data: bytes) -> bool:
        return base64.b64encode(hashlib.new(algo, data).digest()).decode() == want

    if path.is_file():
        data = path.read_bytes()
        if ok(data):
            return data
        print(f"  {path} does not match its pinned {algo}: downloading it again")
    url = f"{REGISTRY}/{name}/-/{name.split('/')[-1]}-{version}.tgz"
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            data = r.read()
    except OSError as e:
        raise SystemExit(f"could not download {url} ({e}).\nThe site vendors {name} {version} from the npm registry "
                         f"once; offline, put that tarball at {path} (e.g. `npm pack {name}@{version}`).") from None
    if not ok(data):
        raise SystemExit(f"{url}: the download does not match the pinned {integrity}; refusing to use it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return data


def vendor(out: Path) -> None:
    for name, (version, integrity, keep) in VENDOR.items():
        target = out / "_vendor" / name
        with tarfile.open(fileobj=io.BytesIO(npm_tarball(name, version, integrity)), mode="r:gz") as tar:
            for member in tar.getmembers():
                inner = member.name.split("/", 1)[-1]  # npm tarballs hold package/...
                if not member.isfile():
                    continue
                for src, dst in keep.items():
                    if inner == src or (src.endswith("/") and inner.startswith(src)):
                        path = target / (dst + inner[len(src):]) if src.endswith("/") else target / dst
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.write_bytes(tar.extractfile(member).read())
        print(f"  _vendor/{name}: {name} {version} from the npm registry")


def lessons() -> list[Path]:
    return sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def title_of(nb) -> str:
    first = next((c.source for c in nb.cells if c.cell_type == "markdown"), "")
    m = re.match(r"#\s+(.+)", first.strip())
    return m.group(1).strip() if m else "Untitled"


def nav(stem: str, depth: str = "..") -> list[tuple[str, str]]:
    items = [("Course index", f"{depth}/index.html"), ("Lesson", f"{depth}/lessons/{stem}.html")]
    if (ROOT / "lecture_notes" / f"{stem}.md").is_file():
        items.append(("Lecture note", f"{depth}/notes/{stem}.html"))
    items.append(("Slides", f"{depth}/slides/{stem}.slides.html"))
    return items


def rewrite_links(text: str, depth: str = "..") -> str:
    """Links between the repository's files, made links between the site's pages. A link to a repository file
    that is not on the site (a script, the README) keeps its text and names the file, without a dead link."""
    def fix(m: re.Match) -> str:
        url = m.group(1)
        if re.match(r"[a-z]+:|#|figures/", url) or url.split("#")[0].endswith((".html", ".css", ".js", ".png")):
            return m.group(0)  # elsewhere, or already one of the site's own files
        path, _, anchor = url.partition("#")
        name = Path(path).name
        if name.endswith(".ipynb"):
            new = f"{depth}/lessons/{Path(name).stem}.html"
        elif name.endswith(".md") and (ROOT / "lecture_notes" / name).is_file():
            new = f"{depth}/notes/{Path(name).stem}.html"
        else:
            return f'title="in the repository: {html.escape(path)}"'
        return f'href="{new}{"#" + anchor if anchor else ""}"'

    return re.sub(r'href="([^"]+)"', fix, text)


def page(title: str, body: str, vendor_prefix: str, nav_items: list[tuple[str, str]]) -> str:
    links = "".join(f'<a href="{h}">{html.escape(label)}</a>' for label, h in nav_items)
    katex = (TEMPLATES / "katex_head.html.j2").read_text(encoding="utf-8")
    katex = re.sub(r"\{#.*?#\}", "", katex, flags=re.S).replace("{{ resources.site.vendor }}", vendor_prefix)
    from pygments.formatters import HtmlFormatter

    css = HtmlFormatter(style="default").get_style_defs(".highlight")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
{katex}
<style>
body {{ margin: 0; font: 17px/1.6 system-ui, -apple-system, "Segoe UI", sans-serif; color: #222; }}
main {{ max-width: 50em; margin: 1.5em auto 4em; padding: 0 1em; }}
pre {{ background: #f6f8fa; padding: .8em; overflow-x: auto; font-size: 14px; line-height: 1.4; }}
code {{ font-size: 90%; }}
img {{ max-width: 100%; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ddd; padding: .3em .6em; vertical-align: top; }}
{css}
</style></head>
<body><nav class="course-nav">{links}</nav><main>
{body}
</main></body></html>
"""


def render_markdown(text: str) -> str:
    """Markdown with its math left for KaTeX (nbconvert's own renderer: the one the lessons' prose goes through)."""
    from nbconvert.filters.markdown_mistune import markdown2html_mistune

    return markdown2html_mistune(text)


def build_notes(out: Path, only: set[str] | None) -> int:
    n = 0
    src = ROOT / "lecture_notes"
    if (src / "figures").is_dir():
        shutil.copytree(src / "figures", out / "notes" / "figures", dirs_exist_ok=True)
    for md in sorted(src.glob("*.md")):
        if only and md.stem[:2] not in only and md.stem != "00_overview":
            continue
        text = md.read_text(encoding="utf-8")
        m = re.match(r"#\s+(.+)", text.strip())
        title = m.group(1) if m else md.stem
        items = nav(md.stem) if (ROOT / "notebooks" / f"{md.stem}.ipynb").is_file() else \
            [("Course index", "../index.html")]
        body = rewrite_links(render_markdown(text))
        (out / "notes" / f"{md.stem}.html").write_text(page(title, body, "../_vendor", items), encoding="utf-8")
        n += 1
    return n


def build_notebooks(out: Path, paths: list[Path]) -> list[dict]:
    import nbformat
    from nbconvert import HTMLExporter, SlidesExporter

    common = dict(extra_template_basedirs=[str(TEMPLATES)], extra_template_paths=[str(TEMPLATES)])
    lesson_exporter = HTMLExporter(template_name="course_lab", **common)
    slide_exporter = SlidesExporter(template_name="course_reveal", reveal_url_prefix="../_vendor/reveal.js",
                                    reveal_theme="white", reveal_transition="none", **common)
    rows = []
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        stem = path.stem
        for exporter, folder, name in [(lesson_exporter, "lessons", f"{stem}.html"),
                                       (slide_exporter, "slides", f"{stem}.slides.html")]:
            resources = {"metadata": {"name": title_of(nb)},
                         "site": {"vendor": "../_vendor", "nav": nav(stem)}}
            body, _ = exporter.from_notebook_node(nb, resources=resources)
            (out / folder / name).write_text(rewrite_links(body), encoding="utf-8")
        kinds = [c.metadata.get("slideshow", {}).get("slide_type") for c in nb.cells]
        rows.append({"stem": stem, "title": title_of(nb), "slides": kinds.count("slide") + kinds.count("subslide")})
        print(f"  {stem}: lesson, deck of {rows[-1]['slides']} slides")
    return rows


def build_views(out: Path) -> list[tuple[str, str]]:
    """Interactive attention views (the page ``helpers.viz.save_attention_html`` writes) of the shipped models."""
    import torch

    from helpers.course import checkpoint
    from helpers.model import GPT
    from helpers.train import load_checkpoint
    from helpers.viz import save_attention_html

    views = []
    model, tok, _ = load_checkpoint(checkpoint("shakespeare-gpt"))
    text = "To be, or not to be, that is the question."
    ids = torch.tensor([tok.encode(text)])
    with torch.no_grad():
        att = model.eval()(ids, return_attention=True).attentions
    save_attention_html(out / "views" / "shakespeare-gpt.html", att, [tok.decode([i]) for i in ids[0].tolist()],
                        title="The course's Shakespeare model (characters): every layer and head")
    views.append(("shakespeare-gpt.html", f"The course's Shakespeare model reading “{text}”, character by character"))

    model = GPT.from_pretrained(str(checkpoint("induction-2l"))).eval()
    g = torch.Generator().manual_seed(0)
    span = torch.randint(0, model.config.vocab_size, (12,), generator=g)
    ids = torch.cat([span, span])[None]
    with torch.no_grad():
        att = model(ids, return_attention=True).attentions
    save_attention_html(out / "views" / "induction-2l.html", att, [f"t{i}" for i in ids[0].tolist()], layer=1,
                        title="Induction heads: 12 random tokens, then the same 12 again")
    views.append(("induction-2l.html", "The induction model on 12 random tokens repeated: layer 1's heads look back "
                                       "to the token after the earlier copy"))
    return views


def build_index(out: Path, rows: list[dict], views: list[tuple[str, str]]) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"^## The notebooks\n(.*?)(?=^## )", readme, re.S | re.M)
    course_map = render_markdown(m.group(1)) if m else ""
    table = ["<table><tr><th>Lesson</th><th>Notebook</th><th>Lecture note</th><th>Slides</th></tr>"]
    for r in rows:
        stem = r["stem"]
        note = f'<a href="notes/{stem}.html">note</a>' if (out / "notes" / f"{stem}.html").is_file() else ""
        table.append(f'<tr><td>{html.escape(r["title"])}</td><td><a href="lessons/{stem}.html">lesson</a></td>'
                     f'<td>{note}</td><td><a href="slides/{stem}.slides.html">{r["slides"]} slides</a></td></tr>')
    table.append("</table>")
    view_list = "".join(f'<li><a href="views/{f}">{html.escape(d)}</a></li>' for f, d in views)
    overview = '<p><a href="notes/00_overview.html">Overview of the course</a></p>' \
        if (out / "notes" / "00_overview.html").is_file() else ""
    body = f"""<h1>Transformers by hand</h1>
<p>From the math of attention to GPT-2, by hand in PyTorch. This site is the course rendered offline: each
lesson with its outputs, its lecture note, its slides, and interactive attention views. To run the lessons and
do the exercises, open the notebooks in JupyterLab (see the README).</p>
{overview}
<h2>Lessons</h2>
{"".join(table)}
<h2>Attention views</h2>
<p>Hover a token to see where it attends; pick a layer and heads.</p>
<ul>{view_list}</ul>
<h2>The course's map</h2>
{rewrite_links(course_map, depth=".")}
<p class="nomath">Built {time.strftime("%Y-%m-%d")} by <code>python scripts/build_site.py</code>.</p>
"""
    (out / "index.html").write_text(page("Transformers by hand", body, "_vendor", []), encoding="utf-8")


def build(out: Path, only: list[str] | None = None) -> dict:
    t0 = time.perf_counter()
    out = out.resolve()
    if out == ROOT or ROOT.is_relative_to(out):
        raise SystemExit(f"refusing to build into {out}: it holds the repository")
    if out.exists():
        shutil.rmtree(out)
    for folder in ["lessons", "notes", "slides", "views"]:
        (out / folder).mkdir(parents=True)
    chosen = set(only) if only else None
    paths = [p for p in lessons() if chosen is None or p.stem[:2] in chosen]
    if chosen and not paths:
        raise SystemExit(f"no lesson matches --only {' '.join(sorted(chosen))}")
    print(f"building {out}")
    vendor(out)
    rows = build_notebooks(out, paths)
    n_notes = build_notes(out, chosen)
    views = build_views(out)
    build_index(out, rows, views)
    summary = {"lessons": len(rows), "decks": len(rows), "notes": n_notes, "views": len(views),
               "seconds": round(time.perf_counter() - t0, 1)}
    (out / "site.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20
    print(f"{len(rows)} lessons, {len(rows)} decks, {n_notes} notes, {len(views)} views, {size:.0f} MiB in "
          f"{summary['seconds']} s: open {out / 'index.html'}")
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "site", help="where to write the site (default: site/)")
    p.add_argument("--only", nargs="+", metavar="NN", help="only these lessons (by number), e.g. --only 01 02")
    a = p.parse_args(argv)
    build(a.out, a.only)
    return 0


if __name__ == "__main__":
    sys.exit(main())
