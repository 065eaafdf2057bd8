"""Build the Chinese notebooks (``notebooks/zh/``) from the English ones and one translation file per notebook.

    python scripts/build_zh.py stub 07          # write (or refresh) notebooks/zh/translations/07_training.md
    python scripts/build_zh.py build            # write notebooks/zh/*.ipynb from the English notebooks + translations
    python scripts/build_zh.py check            # exit 1 if a translation is missing or stale, a zh notebook out of date,
                                                # or a Chinese note (lecture_notes/zh/) misses a heading, equation or figure
    python scripts/build_zh.py accept 07 ab12cd34   # after updating a stale cell's Chinese: record the new English

A Chinese notebook is its English notebook with every Markdown cell's text replaced by its translation: the code
cells, their outputs and every cell's metadata are copied, never written by hand, so they cannot drift. Relative
links are rewritten for the folder one level down (``../lecture_notes/07_training.md`` becomes
``../../lecture_notes/zh/07_training.md``: the Chinese note).

A translation file is Markdown, one block per Markdown cell, in the notebook's order::

    <!-- cell ab12cd34 -->
    ````en
    The English text of the cell, as it was when it was translated.
    ````
    The Chinese text of the cell.

The English copy is what makes a stale translation visible: when an English cell changes, ``check`` fails and
prints the difference between the English that was translated and the English now; update the Chinese, then
``accept`` records the new English. ``stub`` adds a block for every new cell (with the English as a placeholder
to overwrite), keeps every existing translation, and drops blocks whose cell is gone.
"""

from __future__ import annotations

import argparse
import copy
import difflib
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
EN = ROOT / "notebooks"
ZH = EN / "zh"
TRANSLATIONS = ZH / "translations"
NOTES = ROOT / "lecture_notes"
ZH_NOTES = NOTES / "zh"
MIN_SHARE_NOTE, MIN_SHARE_CELL = 0.75, 0.6  # Chinese characters / (Chinese characters + English words), in prose
MARKER = re.compile(r"^<!-- cell ([0-9A-Za-z_-]+) -->$")
FENCE = re.compile(r"^(`{4,})en$")
_LINK = re.compile(r"(\]\(|src=\")([^)\s\"]+)")
_PATHLIKE = re.compile(r"^[\w./-]+\.(md|ipynb|png|svg|jpg|gif|html|py|json|csv|txt|cfg|toml)(#[\w-]*)?$|^[\w./-]+/$")


@dataclass
class Block:
    cell_id: str
    english: str
    chinese: str


def _outside_code(md: str) -> str:
    return re.sub(r"^(```|~~~).*?^\1", "", md, flags=re.S | re.M)


def structure(md: str) -> dict:
    """What a translation must keep: the heading levels in order, the display equations, the images."""
    text = _outside_code(md)
    return {"headings": [len(m.group(1)) for m in re.finditer(r"^(#{1,6})\s", text, flags=re.M)],
            "equations": re.findall(r"\$\$.*?\$\$", text, flags=re.S),
            "images": re.findall(r"!\[[^\]]*\]\(([^)\s]+)", text) + re.findall(r"<img [^>]*src=\"([^\"]+)", text)}


def prose(md: str) -> str:
    """The running text of Markdown: no code, math, link targets, tags or addresses."""
    md = _outside_code(md)
    md = re.sub(r"\$\$.*?\$\$", " ", md, flags=re.S)
    md = re.sub(r"\$[^$\n]+\$", " ", md)
    md = re.sub(r"`[^`\n]+`", " ", md)
    md = re.sub(r"\]\([^)]*\)", "]", md)
    md = re.sub(r"<[^>]+>", " ", md)
    return re.sub(r"https?://\S+", " ", md)


def english_words(md: str) -> int:
    return len(re.findall(r"[A-Za-z]+(?:['-][A-Za-z]+)*", prose(md)))


def chinese_share(md: str) -> float:
    """Chinese characters / (Chinese characters + English words) in the prose of ``md`` (1.0 when it has none)."""
    p = prose(md)
    zh = len(re.findall(r"[\u4e00-\u9fff]", p))
    total = zh + english_words(md)
    return zh / total if total else 1.0


def note_problems(en: Path) -> list[str]:
    """What is wrong with the Chinese twin of the lecture note ``en`` (empty when it is complete)."""
    zh = ZH_NOTES / en.name
    if not zh.is_file():
        return [f"{en.name}: no Chinese note lecture_notes/zh/{en.name}"]
    a, b = en.read_text(encoding="utf-8"), zh.read_text(encoding="utf-8")
    sa, sb = structure(a), structure(b)
    out = []
    if sa["headings"] != sb["headings"]:
        out.append(f"{en.name}: headings (levels in order) {sa['headings']} in English, {sb['headings']} in Chinese")
    if sa["equations"] != sb["equations"]:
        diff = [e for e in sa["equations"] if e not in sb["equations"]][:2]
        out.append(f"{en.name}: the display equations differ ({len(sa['equations'])} in English, "
                   f"{len(sb['equations'])} in Chinese); e.g. missing: {diff}")
    images = [(en.parent / t).resolve() for t in sa["images"]], [(zh.parent / t).resolve() for t in sb["images"]]
    if images[0] != images[1]:
        out.append(f"{en.name}: the figures differ: {sa['images']} in English, {sb['images']} in Chinese")
    for target in re.findall(r"\]\(([^)\s#]+)(?:#[^)]*)?\)", _outside_code(b)):
        if not re.match(r"[a-z]+:", target) and not (zh.parent / target).exists():
            out.append(f"lecture_notes/zh/{en.name}: the link {target} leads nowhere")
    share = chinese_share(b)
    if share < MIN_SHARE_NOTE:
        out.append(f"lecture_notes/zh/{en.name}: only {share:.0%} of its prose is Chinese (at least "
                   f"{MIN_SHARE_NOTE:.0%} expected)")
    return out


def notebooks(selection: list[str] | None = None) -> list[Path]:
    """The English lessons, all or those whose number or name is in ``selection``."""
    paths = sorted(EN.glob("[0-9][0-9]_*.ipynb"))
    if not selection:
        return paths
    chosen = [p for p in paths if p.name[:2] in selection or p.stem in selection or p.name in selection]
    unknown = [s for s in selection if not any(s in (p.name[:2], p.stem, p.name) for p in paths)]
    if unknown:
        raise SystemExit(f"no English notebook matches {unknown}; expected a lesson number such as 07 or a name "
                         f"such as {paths[0].stem}")
    return chosen


def translation_path(en: Path) -> Path:
    return TRANSLATIONS / f"{en.stem}.md"


def parse(text: str, where: str = "translation") -> list[Block]:
    """The blocks of a translation file; ValueError (naming the line) when it is malformed."""
    lines = text.split("\n")
    blocks: list[Block] = []
    i = 0
    while i < len(lines) and not MARKER.match(lines[i]):
        i += 1  # anything before the first marker is a preamble
    while i < len(lines):
        cell_id = MARKER.match(lines[i]).group(1)
        start = i + 1
        fence = FENCE.match(lines[start]) if start < len(lines) else None
        if not fence:
            raise ValueError(f"{where}: line {start + 1}: expected a line of 4 or more backticks followed by 'en' "
                             f"after the marker of cell {cell_id}, got {lines[start] if start < len(lines) else 'EOF'!r}")
        close = fence.group(1)
        j = start + 1
        while j < len(lines) and lines[j] != close:
            j += 1
        if j == len(lines):
            raise ValueError(f"{where}: the English of cell {cell_id} (line {start + 1}) is never closed by {close}")
        english = "\n".join(lines[start + 1:j])
        k = j + 1
        while k < len(lines) and not MARKER.match(lines[k]):
            k += 1
        chinese = "\n".join(lines[j + 1:k]).strip("\n")
        if any(b.cell_id == cell_id for b in blocks):
            raise ValueError(f"{where}: cell {cell_id} has two blocks")
        blocks.append(Block(cell_id, english, chinese))
        i = k
    return blocks


def render(title: str, blocks: list[Block]) -> str:
    out = [f"<!-- Chinese translation of notebooks/{title}. Edit the Chinese below each English block; "
           f"rebuild with: python scripts/build_zh.py build -->", ""]
    for b in blocks:
        longest = max((len(m) for m in re.findall(r"`+", b.english)), default=0)
        fence = "`" * max(4, longest + 1)
        out += [f"<!-- cell {b.cell_id} -->", f"{fence}en", b.english, fence, b.chinese, ""]
    return "\n".join(out)


def load(en: Path) -> list[Block]:
    path = translation_path(en)
    if not path.is_file():
        return []
    return parse(path.read_text(encoding="utf-8"), str(path.relative_to(ROOT)))


def match(nb, blocks: list[Block]) -> tuple[dict[str, Block], list[Block]]:
    """Each Markdown cell's block (by cell id, else by identical English); the blocks that match no cell."""
    by_id = {b.cell_id: b for b in blocks}
    found: dict[str, Block] = {}
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        b = by_id.get(cell.id)
        if b is None:  # the English notebook was rebuilt with new ids: the same text is the same cell
            b = next((x for x in blocks if x.english == cell.source and x not in found.values()), None)
        if b is not None:
            found[cell.id] = b
    used = {id(b) for b in found.values()}
    left = [b for b in blocks if id(b) not in used]
    unmatched = [c for c in nb.cells if c.cell_type == "markdown" and c.id not in found]
    if left and len(left) == len(unmatched):  # the notebook was rebuilt with new ids AND these cells were edited:
        for cell, b in zip(unmatched, left):  # pair them in order, so that check shows each edit as a diff
            found[cell.id] = b
        left = []
    return found, left


def problems(en: Path, built: bool = True) -> list[str]:
    """What is wrong with ``en``'s translation (empty when its Chinese twin is complete and current)."""
    nb = nbformat.read(en, as_version=4)
    path = translation_path(en)
    if not path.is_file():
        return [f"{en.name}: no translation file {path.relative_to(ROOT)} (run: python scripts/build_zh.py stub "
                f"{en.name[:2]})"]
    try:
        blocks = load(en)
    except ValueError as e:
        return [str(e)]
    found, orphans = match(nb, blocks)
    out = []
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        b = found.get(cell.id)
        if b is None:
            out.append(f"{en.name}: cell {cell.id} has no translation (run: python scripts/build_zh.py stub "
                       f"{en.name[:2]})")
        elif b.english != cell.source:
            diff = "\n".join(difflib.unified_diff(b.english.split("\n"), cell.source.split("\n"),
                                                  "translated English", "English now", lineterm="", n=1))
            out.append(f"{en.name}: cell {cell.id} changed in English since it was translated; update its Chinese, "
                       f"then run: python scripts/build_zh.py accept {en.name[:2]} {cell.id}\n{diff}")
        elif not b.chinese.strip():
            out.append(f"{en.name}: cell {cell.id} has an empty translation")
        elif b.chinese == b.english and len(re.findall(r"[A-Za-z]{2,}", b.english)) >= 5:
            out.append(f"{en.name}: cell {cell.id} is not translated yet (its Chinese is the English placeholder)")
        else:
            se, sz = structure(cell.source), structure(b.chinese)
            for key in ("headings", "equations", "images"):
                if se[key] != sz[key]:
                    out.append(f"{en.name}: cell {cell.id}: its {key} differ: {se[key]} in English, {sz[key]} in "
                               f"the translation")
            if english_words(cell.source) >= 8 and chinese_share(b.chinese) < MIN_SHARE_CELL:
                out.append(f"{en.name}: cell {cell.id}: only {chinese_share(b.chinese):.0%} of its prose is Chinese")
    out += [f"{en.name}: block {b.cell_id} matches no Markdown cell (run stub to drop it)" for b in orphans]
    if built and not out:
        zh = ZH / en.name
        if not zh.is_file():
            out.append(f"{en.name}: notebooks/zh/{en.name} is missing (run: python scripts/build_zh.py build)")
        elif zh.read_text(encoding="utf-8") != nbformat.writes(build_notebook(en)) + "\n":
            out.append(f"{en.name}: notebooks/zh/{en.name} is not what the build makes (run: python "
                       f"scripts/build_zh.py build)")
    return out


def rewrite_links(markdown: str) -> str:
    """Rewrite the relative links of a cell written for ``notebooks/`` so they work from ``notebooks/zh/``."""

    def fix(m: re.Match) -> str:
        target = m.group(2)
        if not _PATHLIKE.match(target) or target.startswith("/"):
            return m.group(0)
        note = re.fullmatch(r"\.\./lecture_notes/(\d\d_[\w-]+\.md)(#[\w-]*)?", target)
        if note:
            return m.group(1) + f"../../lecture_notes/zh/{note.group(1)}{note.group(2) or ''}"
        if re.fullmatch(r"\d\d_[\w-]+\.ipynb(#[\w-]*)?", target):
            return m.group(0)  # a lesson: its Chinese twin sits beside this notebook
        return m.group(1) + "../" + target

    return _LINK.sub(fix, markdown)


def build_notebook(en: Path):
    """The Chinese twin of ``en`` as a notebook (ValueError if a Markdown cell has no current translation)."""
    nb = nbformat.read(en, as_version=4)
    found, _ = match(nb, load(en))
    zh = copy.deepcopy(nb)
    for cell in zh.cells:
        if cell.cell_type != "markdown":
            continue
        b = found.get(cell.id)
        if b is None or b.english != cell.source:
            raise ValueError(f"{en.name}: cell {cell.id} has no current translation; run: python "
                             f"scripts/build_zh.py check")
        cell.source = rewrite_links(b.chinese)
    zh.metadata["course_translation"] = {"language": "zh-CN", "english": f"../{en.name}",
                                         "translation": f"translations/{en.stem}.md"}
    return zh


def stub(en: Path) -> str:
    """Write or refresh ``en``'s translation file; return a one-line summary."""
    nb = nbformat.read(en, as_version=4)
    old = load(en)
    found, orphans = match(nb, old)
    blocks, new = [], 0
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        b = found.get(cell.id)
        if b is None:
            b, new = Block(cell.id, cell.source, cell.source), new + 1
        else:
            b = Block(cell.id, b.english, b.chinese)
        blocks.append(b)
    TRANSLATIONS.mkdir(parents=True, exist_ok=True)
    translation_path(en).write_text(render(en.name, blocks), encoding="utf-8")
    return (f"{translation_path(en).relative_to(ROOT)}: {len(blocks)} cells, {new} new (English placeholders to "
            f"translate), {len(orphans)} dropped")


def accept(en: Path, cell_id: str) -> None:
    nb = nbformat.read(en, as_version=4)
    blocks = load(en)
    found, _ = match(nb, blocks)
    cell = next((c for c in nb.cells if c.get("id") == cell_id and c.cell_type == "markdown"), None)
    if cell is None or cell_id not in found:
        raise SystemExit(f"{en.name} has no translated Markdown cell {cell_id!r}")
    found[cell_id].english = cell.source
    found[cell_id].cell_id = cell_id
    translation_path(en).write_text(render(en.name, blocks), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python scripts/build_zh.py", description=__doc__.split("\n\n")[0])
    p.add_argument("command", choices=["stub", "build", "check", "accept"])
    p.add_argument("args", nargs="*", help="lesson numbers (stub, build, check) or NN CELL_ID (accept)")
    a = p.parse_args(argv)
    if a.command == "accept":
        if len(a.args) != 2:
            p.error("accept takes a lesson number and a cell id")
        accept(notebooks([a.args[0]])[0], a.args[1])
        print(f"accepted {a.args[1]}")
        return 0
    paths = notebooks(a.args)
    if a.command == "stub":
        for en in paths:
            print(stub(en))
        return 0
    if a.command == "build":
        bad = [msg for en in paths for msg in problems(en, built=False)]
        if bad:
            print("\n".join(bad), file=sys.stderr)
            return 1
        ZH.mkdir(parents=True, exist_ok=True)
        for en in paths:
            nbformat.write(build_notebook(en), ZH / en.name)
        print(f"built {len(paths)} Chinese notebooks in notebooks/zh/")
        return 0
    bad = [msg for en in paths for msg in problems(en)]
    if not a.args:
        bad += [msg for en in sorted(NOTES.glob("[0-9][0-9]_*.md")) for msg in note_problems(en)]
    print("\n".join(bad) if bad else f"{len(paths)} Chinese notebooks complete and current" +
          ("" if a.args else ", and every lecture note has its Chinese twin"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
