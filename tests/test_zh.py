"""The Chinese edition (中文版): every note and notebook has its twin, the twins keep the English's structure, the
Chinese notebooks' code and outputs are the English ones, and an English change without its translation fails.

The checks themselves live in ``scripts/build_zh.py`` (``check`` runs them for a maintainer); this file runs them
on the committed files, and shows on scratch copies that each one catches what it is meant to catch.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
import build_zh  # noqa: E402

NOTEBOOKS = build_zh.notebooks()
NOTES = sorted((ROOT / "lecture_notes").glob("[0-9][0-9]_*.md"))


@pytest.mark.parametrize("en", NOTEBOOKS, ids=lambda p: p.stem)
def test_each_notebook_has_a_current_chinese_twin(en):
    assert build_zh.problems(en) == []


@pytest.mark.parametrize("en", NOTEBOOKS, ids=lambda p: p.stem)
def test_chinese_code_cells_and_outputs_are_the_english_ones(en):
    a = nbformat.read(en, as_version=4)
    b = nbformat.read(ROOT / "notebooks" / "zh" / en.name, as_version=4)
    assert [c.cell_type for c in a.cells] == [c.cell_type for c in b.cells]
    for x, y in zip(a.cells, b.cells, strict=True):
        assert x.id == y.id and x.metadata == y.metadata
        if x.cell_type == "code":
            assert x == y  # source, outputs, execution count, metadata: cell for cell
        else:
            assert x.source != y.source or not re.search(r"[A-Za-z]{3}", x.source)
    assert b.metadata["kernelspec"] == a.metadata["kernelspec"]
    assert b.metadata["course_translation"]["english"] == f"../{en.name}"


@pytest.mark.parametrize("en", NOTES, ids=lambda p: p.stem)
def test_each_note_has_its_chinese_twin(en):
    assert build_zh.note_problems(en) == []
    zh = (ROOT / "lecture_notes" / "zh" / en.name).read_text(encoding="utf-8")
    assert build_zh.structure(zh)["headings"] == build_zh.structure(en.read_text(encoding="utf-8"))["headings"]


def test_the_twins_are_predominantly_chinese():
    shares = [build_zh.chinese_share((ROOT / "lecture_notes" / "zh" / en.name).read_text(encoding="utf-8"))
              for en in NOTES]
    assert min(shares) >= build_zh.MIN_SHARE_NOTE
    for en in NOTES:  # and the English notes are not, so the measure tells the two apart
        assert build_zh.chinese_share(en.read_text(encoding="utf-8")) < 0.05
    for en in NOTEBOOKS:
        nb = nbformat.read(ROOT / "notebooks" / "zh" / en.name, as_version=4)
        text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        assert build_zh.chinese_share(text) >= 0.8, en.name


def test_the_measures():
    md = "# 标题\n\n自注意力（self-attention）很重要。\n\n$$a = b$$\n\n```python\nx = 1  # English comment\n```\n" \
         "![图](../figures/a.png) 见 `code` 和 [链接](https://example.org/page)\n"
    s = build_zh.structure(md)
    assert s == {"headings": [1], "equations": ["$$a = b$$"], "images": ["../figures/a.png"]}
    assert build_zh.english_words(md) == 1  # "self-attention" is one word, and only the prose counts
    assert build_zh.chinese_share("This is English prose only.") == 0.0
    assert build_zh.rewrite_links("[n](../lecture_notes/07_training.md#x) [p](06_x.ipynb) ![f](../lecture_notes/figures/a.png) "
                                  "[r](../README.md) f(a)](x, y)") == \
        "[n](../../lecture_notes/zh/07_training.md#x) [p](06_x.ipynb) ![f](../../lecture_notes/figures/a.png) " \
        "[r](../../README.md) f(a)](x, y)"


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A copy of notebook 01, its translation and its Chinese twin, with build_zh pointed at the copy."""
    en_dir = tmp_path / "notebooks"
    (en_dir / "zh" / "translations").mkdir(parents=True)
    name = "01_attention_math"
    shutil.copy(ROOT / "notebooks" / f"{name}.ipynb", en_dir)
    shutil.copy(ROOT / "notebooks" / "zh" / f"{name}.ipynb", en_dir / "zh")
    shutil.copy(ROOT / "notebooks" / "zh" / "translations" / f"{name}.md", en_dir / "zh" / "translations")
    monkeypatch.setattr(build_zh, "EN", en_dir)
    monkeypatch.setattr(build_zh, "ZH", en_dir / "zh")
    monkeypatch.setattr(build_zh, "TRANSLATIONS", en_dir / "zh" / "translations")
    monkeypatch.setattr(build_zh, "ROOT", tmp_path)
    return en_dir / f"{name}.ipynb"


def test_an_english_change_without_its_translation_fails(scratch):
    assert build_zh.problems(scratch) == []
    nb = nbformat.read(scratch, as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "markdown" and "softmax" in c.source)
    cell.source = cell.source.replace("softmax", "soft-max", 1)
    nbformat.write(nb, scratch)
    found = build_zh.problems(scratch)
    assert len(found) == 1 and f"cell {cell.id} changed in English" in found[0] and "+" in found[0]
    with pytest.raises(ValueError, match="no current translation"):
        build_zh.build_notebook(scratch)
    # the translator updates the Chinese, then records the English it now translates
    blocks = build_zh.load(scratch)
    next(b for b in blocks if b.cell_id == cell.id).chinese += "\n\n（已按新的英文更新。）"
    build_zh.translation_path(scratch).write_text(build_zh.render(scratch.name, blocks), encoding="utf-8")
    build_zh.accept(scratch, cell.id)
    assert build_zh.problems(scratch) == [f"{scratch.name}: notebooks/zh/{scratch.name} is not what the build makes "
                                          f"(run: python scripts/build_zh.py build)"]
    assert build_zh.main(["build", "01"]) == 0 and build_zh.problems(scratch) == []


def test_a_new_english_cell_and_an_edited_twin_fail(scratch):
    zh = scratch.parent / "zh" / scratch.name
    twin = nbformat.read(zh, as_version=4)
    code = next(c for c in twin.cells if c.cell_type == "code")
    code.source += "\n# edited by hand"
    nbformat.write(twin, zh)
    assert any("not what the build makes" in p for p in build_zh.problems(scratch))

    nb = nbformat.read(scratch, as_version=4)
    new = nbformat.v4.new_markdown_cell("A new paragraph of English prose, not translated yet.")
    nb.cells.insert(2, new)
    nbformat.write(nb, scratch)
    assert any(f"cell {new.id} has no translation" in p for p in build_zh.problems(scratch))
    build_zh.stub(scratch)  # adds the cell with its English as the placeholder: still not done
    assert any(f"cell {new.id} is not translated yet" in p for p in build_zh.problems(scratch))
    blocks = build_zh.load(scratch)
    next(b for b in blocks if b.cell_id == new.id).chinese = "一段新的中文，已经翻译好了，讲的是同一件事情。"
    build_zh.translation_path(scratch).write_text(build_zh.render(scratch.name, blocks), encoding="utf-8")
    assert build_zh.main(["build", "01"]) == 0 and build_zh.problems(scratch) == []


def test_a_translation_that_drops_an_equation_or_a_heading_fails(scratch):
    blocks = build_zh.load(scratch)
    b = next(b for b in blocks if "$$" in b.english)
    b.chinese = re.sub(r"\$\$.*?\$\$", "（公式）", b.chinese, count=1, flags=re.S)
    h = next(x for x in blocks if x.english.startswith("#") and x is not b)
    h.chinese = h.chinese.lstrip("#").lstrip()
    build_zh.translation_path(scratch).write_text(build_zh.render(scratch.name, blocks), encoding="utf-8")
    found = "\n".join(build_zh.problems(scratch))
    assert "its equations differ" in found and "its headings differ" in found


def test_note_checks_catch_a_missing_figure_and_english_prose(tmp_path, monkeypatch):
    notes = tmp_path / "lecture_notes"
    (notes / "zh").mkdir(parents=True)
    (notes / "figures").mkdir()
    (notes / "figures" / "a.png").write_bytes(b"")
    (notes / "01_x.md").write_text("# One\n\nSome English prose about attention.\n\n$$x$$\n\n![a](figures/a.png)\n")
    monkeypatch.setattr(build_zh, "ZH_NOTES", notes / "zh")
    (notes / "zh" / "01_x.md").write_text("# 一\n\n关于注意力的一段中文。\n\n$$x$$\n\n![图](../figures/a.png)\n")
    assert build_zh.note_problems(notes / "01_x.md") == []
    (notes / "zh" / "01_x.md").write_text("# 一\n\nSome English prose about attention, left as it was.\n\n$$x$$\n")
    found = "\n".join(build_zh.note_problems(notes / "01_x.md"))
    assert "the figures differ" in found and "of its prose is Chinese" in found


def test_glossary():
    text = (ROOT / "lecture_notes" / "zh" / "glossary.md").read_text(encoding="utf-8")
    rows = [r for r in text.splitlines() if r.startswith("|") and not re.match(r"\|\s*[-:]", r)]
    terms = [r.split("|")[1].strip() for r in rows if re.search(r"[\u4e00-\u9fff]", r.split("|")[2])]
    assert len(terms) >= 120, len(terms)
    for term in ["attention", "tokenizer", "perplexity", "fine-tuning", "KV cache"]:
        assert any(term.lower() in t.lower() for t in terms), term
    for target in re.findall(r"\]\(([^)#\s]+)", text):  # every lesson it names is a Chinese note that exists
        assert (ROOT / "lecture_notes" / "zh" / target).is_file(), target


def test_a_rebuilt_notebook_with_new_ids_shows_its_edits_as_diffs(scratch):
    """Notebooks rebuilt by a script get new cell ids: unchanged cells are found by their text, and edited ones by
    their order, so an edit shows as a diff to translate, not as a lost translation."""
    nb = nbformat.read(scratch, as_version=4)
    for c in nb.cells:
        c.id = "x" + c.id[1:]  # every id new
    cell = next(c for c in nb.cells if c.cell_type == "markdown" and "softmax" in c.source)
    cell.source = cell.source.replace("softmax", "soft-max", 1)
    nbformat.write(nb, scratch)
    found = build_zh.problems(scratch)
    assert len(found) == 1 and f"cell {cell.id} changed in English" in found[0]
    build_zh.stub(scratch)  # keeps every translation, under the new ids
    assert all(b.cell_id.startswith("x") for b in build_zh.load(scratch))
