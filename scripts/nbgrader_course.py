"""Set up an nbgrader course folder holding lessons of this course as one assignment.

    python scripts/nbgrader_course.py ~/course ps1 notebooks/01_attention_math.ipynb notebooks/02_multi_head_attention.ipynb
    cd ~/course && nbgrader generate_assignment ps1

writes ``~/course/nbgrader_config.py`` (the course id, a per-cell timeout long enough for the lessons, the
exchange folder inside the course folder) unless one is there already, and copies the notebooks into
``~/course/source/ps1/`` (refusing to overwrite a notebook that differs, unless ``--force``). The notebooks must
pass ``scripts/make_student_edition.py --lint`` (every solution in a solution cell, every checker in a locked,
graded test cell). The rest of the recipe is in ``teaching/README.md``; ``tests/test_nbgrader.py`` runs it.
"""

from __future__ import annotations

import argparse
import filecmp
import re
import shutil
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from make_student_edition import lint  # noqa: E402

CONFIG = '''\
# nbgrader's configuration for a course built from "Transformers by hand" (scripts/nbgrader_course.py).
c = get_config()  # noqa: F821
c.CourseDirectory.course_id = {course_id!r}
c.CourseDirectory.root = {root!r}
# Lessons train and generate: a cell may run for minutes at full settings (nbgrader's default is 30 s).
# Grading with COURSE_FAST=1 in the environment shrinks those cells to seconds.
c.ExecutePreprocessor.timeout = 600
c.Exchange.root = {exchange!r}
'''

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def make_course(root: Path, assignment: str, notebooks: list[Path], course_id: str = "transformers-by-hand",
                force: bool = False) -> Path:
    """Write the course folder ``root`` with ``notebooks`` as assignment ``assignment``; return its source folder."""
    if not NAME.match(assignment):
        raise ValueError(f"assignment name must be letters, digits, '-' or '_' (nbgrader uses it as a folder), "
                         f"got {assignment!r}")
    if not notebooks:
        raise ValueError("give at least one notebook")
    problems = []
    for nb in notebooks:
        if nb.suffix != ".ipynb" or not nb.is_file():
            raise FileNotFoundError(f"not a notebook file: {nb}")
        problems += lint(nbformat.read(nb, as_version=4), nb.name)
    if problems:
        raise ValueError("these notebooks cannot be released by nbgrader:\n  " + "\n  ".join(problems))
    root = root.expanduser().resolve()
    source = root / "source" / assignment
    source.mkdir(parents=True, exist_ok=True)
    (root / "exchange").mkdir(exist_ok=True)
    config = root / "nbgrader_config.py"
    if not config.exists():
        config.write_text(CONFIG.format(course_id=course_id, root=str(root), exchange=str(root / "exchange")))
    for nb in notebooks:
        target = source / nb.name
        if target.exists() and not force and not filecmp.cmp(nb, target, shallow=False):
            raise FileExistsError(f"{target} exists and differs from {nb}; pass --force to replace it")
        shutil.copyfile(nb, target)
    return source


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("root", type=Path, help="the course folder (created if missing)")
    p.add_argument("assignment", help="the assignment's name, e.g. ps1")
    p.add_argument("notebooks", type=Path, nargs="+", help="lesson notebooks (with their solutions)")
    p.add_argument("--course-id", default="transformers-by-hand")
    p.add_argument("--force", action="store_true", help="replace notebooks already in source/ASSIGNMENT")
    a = p.parse_args(argv)
    try:
        source = make_course(a.root, a.assignment, a.notebooks, a.course_id, a.force)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{len(a.notebooks)} notebook(s) in {source}\nnext: cd {a.root} && nbgrader generate_assignment {a.assignment}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
