"""Give every cell of the lessons its slide type, so that each notebook is also a reveal.js deck.

    python scripts/mark_slides.py notebooks/*.ipynb            # mark cells that have no slide type yet
    python scripts/mark_slides.py --redo notebooks/01_*.ipynb  # apply the rules again, over earlier choices
    python scripts/mark_slides.py --check notebooks/*.ipynb    # every cell has a valid slide type (the tests)

``jupyter nbconvert --to slides`` reads ``metadata.slideshow.slide_type`` (JupyterLab's property inspector:
"Slide Type"); ``scripts/build_site.py`` builds every deck offline. The rules, in order:

- ``skip``: the set-up cell (imports, ``setup()``), the exercises' solution cells and locked test cells (a class
  does them; the deck shows the exercise's statement), cells that only ``record()`` a figure;
- ``notes``: hints (``<details>``), which the presenter sees with the ``s`` key;
- ``slide``: the title and every ``#``/``##`` section;
- ``subslide``: an exercise's statement, a ``###`` heading, a cell whose output is a figure (it gets the screen
  with its code), and any cell that would overflow the slide it continues (about 22 lines of text);
- ``fragment``: code that continues a slide (it appears with its output on the next key press);
- ``-``: prose that continues a slide.

Marking changes only metadata: outputs, and so the notebooks' tests, are untouched. A teacher's own choices are
kept unless ``--redo``.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

TYPES = ("slide", "subslide", "fragment", "skip", "notes", "-")
BUDGET = 22  # lines of text a 1100 x 760 slide holds at reveal.js's default font size


def _lines(text: str, width: int = 90) -> int:
    return sum(max(1, -(-len(line) // width)) for line in text.splitlines()) if text.strip() else 0


def _output_lines(cell) -> tuple[int, bool]:
    n, figure = 0, False
    for o in cell.get("outputs", []):
        data = o.get("data", {})
        if "image/png" in data or "image/svg+xml" in data:
            figure = True
        text = o.get("text") or data.get("text/plain", "")
        n += min(_lines(text if isinstance(text, str) else "".join(text)), 14)
    return n, figure


def is_setup(cell) -> bool:
    src = cell.source
    return cell.cell_type == "code" and bool(re.search(r"^\s*(?:device\s*=\s*)?setup\(", src, re.M)) and \
        bool(re.search(r"^(?:import|from) ", src, re.M))


def slide_types(nb) -> list[str]:
    """The rules' slide type for each cell of ``nb``."""
    types: list[str] = []
    used = BUDGET  # nothing on screen yet: the first cell starts a slide
    for i, cell in enumerate(nb.cells):
        src = cell.source.strip()
        grader = cell.metadata.get("nbgrader", {})
        if grader.get("solution") or grader.get("grade") or (cell.cell_type == "code" and is_setup(cell)) \
                or (cell.cell_type == "code" and all(line.startswith(("record(", "#")) or not line.strip()
                                                     for line in src.splitlines())):
            types.append("skip")
            continue
        if cell.cell_type == "markdown" and src.startswith("<details"):
            types.append("notes")
            continue
        if cell.cell_type == "markdown":
            cost = _lines(src)
            if i == 0 or re.match(r"#{1,2} ", src):
                kind, used = "slide", cost
            elif re.match(r"(### |\*\*Exercise)", src) or used + cost > BUDGET:
                kind, used = "subslide", cost
            else:
                kind, used = "-", used + cost
        else:
            out, figure = _output_lines(cell)
            cost = _lines(src) + out
            if figure:
                kind, used = "subslide", BUDGET  # the figure fills the screen: what follows starts afresh
            elif used + cost > BUDGET:
                kind, used = "subslide", cost
            else:
                kind, used = "fragment", used + cost
        types.append(kind)
    return types


def current(cell) -> str | None:
    return cell.metadata.get("slideshow", {}).get("slide_type")


def mark(nb, redo: bool = False) -> int:
    """Set the slide type of every cell that has none (every cell with ``redo``); return how many changed."""
    changed = 0
    for cell, kind in zip(nb.cells, slide_types(nb), strict=True):
        if (redo or current(cell) not in TYPES) and current(cell) != kind:
            cell.metadata.setdefault("slideshow", {})["slide_type"] = kind
            changed += 1
    return changed


def check(nb, name: str) -> list[str]:
    """What keeps ``nb`` from being a readable deck; an empty list when nothing does."""
    problems = [f"{name} cell {i}: slide type {current(c)!r} is not one of {TYPES}"
                for i, c in enumerate(nb.cells) if current(c) not in TYPES]
    if nb.cells and current(nb.cells[0]) != "slide":
        problems.append(f"{name}: the first cell must open a slide, got {current(nb.cells[0])!r}")
    for i, c in enumerate(nb.cells):
        g = c.metadata.get("nbgrader", {})
        if (g.get("solution") or g.get("grade")) and current(c) != "skip":
            problems.append(f"{name} cell {i}: an exercise's solution or test cell shown on a slide")
    return problems


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("notebooks", type=Path, nargs="+")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--check", action="store_true", help="only check; exit 1 if a cell lacks a valid slide type")
    g.add_argument("--redo", action="store_true", help="apply the rules to every cell, over earlier choices")
    a = p.parse_args(argv)
    problems = []
    for path in a.notebooks:
        nb = nbformat.read(path, as_version=4)
        if a.check:
            problems += check(nb, path.name)
            continue
        n = mark(nb, redo=a.redo)
        if n:
            nbformat.write(nb, path)
        kinds = [current(c) for c in nb.cells]
        print(f"{path.name}: {n} cell(s) marked; {kinds.count('slide')} slides, {kinds.count('subslide')} subslides, "
              f"{kinds.count('skip')} cells skipped")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    if a.check:
        print(f"{len(a.notebooks)} notebooks: every cell has a slide type")
    return 0


if __name__ == "__main__":
    sys.exit(main())
