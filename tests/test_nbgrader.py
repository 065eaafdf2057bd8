"""The teacher's recipe, run for real: nbgrader releases the lessons and grades them (teaching/README.md).

In a scratch course folder made by ``scripts/nbgrader_course.py``:

- ``nbgrader generate_assignment`` releases **every** lesson, and the released notebooks are, cell by cell, the
  student edition that ``scripts/make_student_edition.py`` writes (which ``tests/test_student_edition.py``
  executes top to bottom): so every notebook nbgrader hands out runs as a student would run it.
- ``nbgrader autograde`` on lesson 01 (in fast mode, as teachers are told to grade) gives the solution notebook
  full marks, the untouched release zero, and a half-right answer the partial credit its checker reports,
  computed here independently by calling the checker on the same function; the untouched release executes with
  no error.
- ``nbgrader generate_feedback`` writes one HTML page per student holding their score.

nbgrader comes from ``requirements-teachers.txt``, which ``.ci/run`` installs (and sets
``COURSE_REQUIRE_NBGRADER=1``, so that in CI a missing nbgrader fails instead of skipping).
"""

from __future__ import annotations

import csv
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from make_student_edition import student_notebook  # noqa: E402
from nbgrader_course import make_course  # noqa: E402

if importlib.util.find_spec("nbgrader") is None:
    if os.environ.get("COURSE_REQUIRE_NBGRADER") == "1":
        raise RuntimeError("COURSE_REQUIRE_NBGRADER=1 but nbgrader is not installed: "
                           "pip install -r requirements-teachers.txt")
    pytest.skip("nbgrader is not installed (teachers: pip install -r requirements-teachers.txt)",
                allow_module_level=True)

LESSON = ROOT / "notebooks" / "01_attention_math.ipynb"
OFF_BY_ONE = "    i, j = np.arange(T)[:, None], np.arange(T)[None, :]\n    return (j <= i) & (i - j <= window)\n"


def nbgrader(root: Path, *args: str) -> str:
    # fast mode and offline, as teachers are told to grade; the learners' saved pieces in the course folder
    env = dict(os.environ, COURSE_FAST="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               COURSE_WORKDIR=str(root / "pieces"), OMP_NUM_THREADS="1",
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("COURSE_RECORD", None)
    p = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=root, env=env, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, f"nbgrader {' '.join(args)} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    assert "[ERROR]" not in p.stderr and "| ERROR]" not in p.stderr, p.stderr[-3000:]
    return p.stdout + p.stderr


def off_by_one(nb):
    """The released notebook with one answer filled in wrongly: the sliding window lets window + 1 keys in."""
    nb = nbformat.from_dict(nb)
    [cell] = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "nb01-sliding-window-mask"]
    stub = "    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    assert stub in cell.source, cell.source
    cell.source = cell.source.replace(stub, OFF_BY_ONE)
    return nb


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    root = tmp_path_factory.mktemp("course")
    make_course(root, "lessons", sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")))
    make_course(root, "ps1", [LESSON])
    nbgrader(root, "generate_assignment", "lessons")
    nbgrader(root, "generate_assignment", "ps1")
    released = nbformat.read(root / "release" / "ps1" / LESSON.name, as_version=4)
    submissions = {"solution": nbformat.read(LESSON, as_version=4), "untouched": released,
                   "partial": off_by_one(released)}
    for student, nb in submissions.items():
        nbgrader(root, "db", "student", "add", student)
        folder = root / "submitted" / student / "ps1"
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / LESSON.name)
    nbgrader(root, "autograde", "ps1")
    nbgrader(root, "export", "--to", str(root / "grades.csv"))
    nbgrader(root, "generate_feedback", "ps1")
    return root


def test_every_lesson_is_released_as_the_student_edition(course):
    lessons = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    released = sorted((course / "release" / "lessons").glob("*.ipynb"))
    assert [p.name for p in released] == [p.name for p in lessons]
    for lesson, out in zip(lessons, released, strict=True):
        ours = student_notebook(nbformat.read(lesson, as_version=4))
        theirs = nbformat.read(out, as_version=4)
        assert [(c.cell_type, c.source) for c in theirs.cells] == [(c.cell_type, c.source) for c in ours.cells], (
            f"{lesson.name}: nbgrader's release differs from scripts/make_student_edition.py's")
        assert not any(c.get("outputs") for c in theirs.cells), f"{lesson.name}: released with outputs"
        graded = [c for c in theirs.cells if c.metadata.get("nbgrader", {}).get("grade")]
        assert len(graded) >= 3 and all(c.metadata["nbgrader"]["locked"] for c in graded), lesson.name


def test_autograde_full_marks_zero_and_partial_credit(course):
    from nbgrader.api import Gradebook

    from helpers.checks import check_sliding_window_mask

    source = nbformat.read(LESSON, as_version=4)
    tests = {c.metadata.nbgrader.grade_id: c.metadata.nbgrader.points for c in source.cells
             if c.metadata.get("nbgrader", {}).get("grade")}
    assert len(tests) >= 3
    # The partial answer's credit, from the checker itself: the fraction of its cases passed, times the points.
    namespace = {"np": np}
    exec("def sliding_window_mask(T, window):\n" + OFF_BY_ONE, namespace)
    result = check_sliding_window_mask(namespace["sliding_window_mask"])
    assert 0 < result.passed < result.total
    partial = tests["nb01-sliding-window-mask-test"] * result.passed / result.total

    expected = {"solution": dict(tests), "untouched": dict.fromkeys(tests, 0.0),
                "partial": dict(dict.fromkeys(tests, 0.0), **{"nb01-sliding-window-mask-test": partial})}
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}", course_id="transformers-by-hand") as gb:
        for student, scores in expected.items():
            for grade_id, score in scores.items():
                grade = gb.find_grade(grade_id, LESSON.stem, "ps1", student)
                assert grade.score == pytest.approx(score, abs=1e-9), (student, grade_id, grade.score, score)
    rows = {r["student_id"]: r for r in csv.DictReader(open(course / "grades.csv", encoding="utf-8"))}
    total = sum(tests.values())
    assert float(rows["solution"]["score"]) == total and float(rows["solution"]["max_score"]) == total
    assert float(rows["untouched"]["score"]) == 0
    assert float(rows["partial"]["score"]) == pytest.approx(partial)

    # The untouched release ran top to bottom as a student's would: no cell raised.
    autograded = nbformat.read(course / "autograded" / "untouched" / "ps1" / LESSON.name, as_version=4)
    errors = [o for c in autograded.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, [f"{e.ename}: {e.evalue}" for e in errors]
    assert any("not implemented yet" in o.get("text", "") for c in autograded.cells if c.cell_type == "code"
               for o in c.outputs), "the checkers should say the stubs are not implemented yet"


def test_feedback_pages(course):
    total = sum(c.metadata.nbgrader.points for c in nbformat.read(LESSON, as_version=4).cells
                if c.metadata.get("nbgrader", {}).get("grade"))
    # the partial answer: 2 points x 2/5 cases (the checker's own count is asserted in the autograde test)
    for student, score in [("solution", total), ("untouched", 0), ("partial", 0.8)]:
        page = course / "feedback" / student / "ps1" / f"{LESSON.stem}.html"
        assert page.is_file(), f"no feedback for {student}: {sorted((course / 'feedback').rglob('*'))}"
        text = page.read_text(encoding="utf-8")
        assert f"(Score: {float(score)} / {float(total)})" in text, (student, re.findall(r"\(Score: [^)]*\)", text)[:3])
        assert "sliding_window_mask" in text
