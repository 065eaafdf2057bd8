"""The student edition: every exercise releasable and gradable, and every student notebook runs top to bottom.

``scripts/make_student_edition.py`` stubs each solution as nbgrader does; here each student notebook is
executed in a fresh kernel (no ``allow_errors``), offline and in fast mode, with an empty work folder (so no
piece a solution adopted elsewhere leaks in), and every graded test cell must report "not implemented yet"
and score 0.
"""

import importlib.util
import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))

_spec = importlib.util.spec_from_file_location("make_student_edition", ROOT / "scripts" / "make_student_edition.py")
mse = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mse)


def test_stub_source_follows_nbgrader():
    src = "def f(x):\n    '''doc'''\n    ### BEGIN SOLUTION\n    return x + 1\n    ### END SOLUTION\n"
    assert mse.stub_source(src) == "def f(x):\n    '''doc'''\n    # YOUR CODE HERE\n    raise NotImplementedError()\n"
    assert mse.stub_source("### BEGIN SOLUTION\nan answer\n### END SOLUTION", markdown=True) == "YOUR ANSWER HERE"
    with pytest.raises(ValueError, match="without"):
        mse.stub_source("def f():\n    ### BEGIN SOLUTION\n    return 1\n")


def test_lint_names_what_nbgrader_would_refuse():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n"),
        nbformat.v4.new_code_cell("### BEGIN SOLUTION\ny = 1\n### END SOLUTION",
                                  metadata={"nbgrader": {"solution": True, "grade_id": "a", "schema_version": 3}}),
        nbformat.v4.new_code_cell("result = check_softmax(f)"),
        # nbgrader matches its delimiters anywhere in a line: prose that names them stops the release
        nbformat.v4.new_markdown_cell("Write your code between `BEGIN SOLUTION` and `END SOLUTION`."),
    ])
    problems = "\n".join(mse.lint(nb, "x.ipynb"))
    assert "cell 0: a solution region in a cell without nbgrader solution metadata" in problems
    assert "cell 1: a solution region at the top level" in problems
    assert "cell 2: a checker cell that is not a locked, graded test cell" in problems
    assert "cell 3: a solution region in a cell without nbgrader solution metadata" in problems


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_can_be_released_and_graded(notebook):
    nb = nbformat.read(notebook, as_version=4)
    assert mse.lint(nb, notebook.name) == []
    graded = [c for c in nb.cells if mse._nbg(c).get("grade")]
    solutions = [c for c in nb.cells if mse._nbg(c).get("solution")]
    assert len(graded) >= 3 and solutions, f"{notebook.name}: expected at least 3 checked exercises"


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory):
    """The student edition, beside links to what the notebooks read through relative paths."""
    top = tmp_path_factory.mktemp("student-course")
    for name in ("checkpoints", "lecture_notes", "requirements.txt", "src"):
        (top / name).symlink_to(ROOT / name)
    assert mse.main([str(top / "notebooks")]) == 0
    return top / "notebooks"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_student_notebook_runs_top_to_bottom(notebook, student_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_WORKDIR", str(tmp_path / "yours"))  # nothing adopted before: a new student
    # One thread per kernel: the outputs are not compared here, and the other test worker has the second core
    # (two threads each on two cores made token-by-token generation wait on each other).
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    path = student_dir / notebook.name
    nb = nbformat.read(path, as_version=4)
    assert "### BEGIN SOLUTION" not in "".join(c.source for c in nb.cells)
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(student_dir)}}
                   ).execute()  # raises CellExecutionError on the first error: Run All must not stop
    for i, cell in enumerate(nb.cells):
        if not mse._nbg(cell).get("grade") or cell.cell_type != "code":
            continue
        text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
        results = [o["data"]["text/plain"] for o in cell.outputs if o.output_type == "execute_result"]
        stderr = [o for o in cell.outputs if o.output_type == "stream" and o.name == "stderr"]
        assert "not implemented yet" in text, f"{notebook.name} cell {i}: the checker did not say so:\n{text}"
        assert results == ["0.0"], f"{notebook.name} cell {i}: an unsolved exercise must score 0, got {results}"
        assert not stderr, f"{notebook.name} cell {i} wrote to stderr (nbgrader would give 0 for it)"
    assert not os.listdir(tmp_path / "yours") if (tmp_path / "yours").exists() else True
