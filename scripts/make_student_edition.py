"""Write the student edition of the course: every solution replaced by a stub, outputs cleared.

    python scripts/make_student_edition.py student/          # then: jupyter lab student/
    python scripts/make_student_edition.py --lint             # only check the notebooks' exercise cells

It follows nbgrader's own rule (``nbgrader generate_assignment``): in a cell marked as a solution cell
(``metadata.nbgrader.solution``), the code between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` becomes
``# YOUR CODE HERE`` / ``raise NotImplementedError()`` at the same indentation (in Markdown: ``YOUR ANSWER
HERE``). Every output is cleared. The student notebooks run top to bottom with no error: each solution
region sits inside a function body, so the stub raises only when a checker calls it, and the checker reports
"not implemented yet" (and ``helpers.yours`` falls back to the course's version).

The lint checks what nbgrader and the student edition need: solution markers only in solution cells, regions
inside a function body, every checker in its own locked graded test cell with points and a unique grade id,
ending on ``.score(points)`` (nbgrader reads that number as partial credit).

Write the edition next to ``notebooks/`` (the default ``student/``, ignored by git) so that the notebooks'
relative paths (``../checkpoints``) still resolve.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
_SCORE = re.compile(r"\.score\(\s*[0-9.]+\s*\)\s*$")


def _nbg(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {}) or {}


def stub_source(source: str, markdown: bool = False) -> str:
    """Replace every solution region of one cell's source by nbgrader's stub; raise ValueError if malformed."""
    out: list[str] = []
    inside = False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"{BEGIN} inside another solution region")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            if markdown:
                out.append("YOUR ANSWER HERE")
            else:
                out += [f"{indent}# YOUR CODE HERE", f"{indent}raise NotImplementedError()"]
        elif stripped == END:
            if not inside:
                raise ValueError(f"{END} without {BEGIN}")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{BEGIN} without {END}")
    return "\n".join(out) + ("\n" if source.endswith("\n") else "")


def _checker_names() -> set[str]:
    """The exercise checkers (``helpers.checks``' ``check_*``): a call to one of them is a graded test."""
    import helpers.checks

    return {n for n in helpers.checks.__all__ if n.startswith("check_")}


def lint(nb, name: str) -> list[str]:
    """What stops this notebook from being released and graded; an empty list when nothing does."""
    problems: list[str] = []
    checkers = _checker_names()
    call = re.compile(r"^\s*(?:\w+\s*=\s*)?(check_\w+)\(", re.M)  # `checks.check_x(...)`: a demonstration
    ids: set[str] = set()
    for i, cell in enumerate(nb.cells):
        src, meta = cell.source, _nbg(cell)
        where = f"{name} cell {i}"
        if meta.get("grade_id"):
            if meta["grade_id"] in ids:
                problems.append(f"{where}: grade_id {meta['grade_id']!r} is used twice")
            ids.add(meta["grade_id"])
        # nbgrader's own delimiters are "BEGIN SOLUTION" / "END SOLUTION" anywhere in a line, prose included
        if "BEGIN SOLUTION" in src or "END SOLUTION" in src:
            if not meta.get("solution"):
                problems.append(f"{where}: a solution region in a cell without nbgrader solution metadata")
            try:
                stub_source(src, markdown=cell.cell_type == "markdown")
            except ValueError as e:
                problems.append(f"{where}: {e}")
            if cell.cell_type == "code":
                for line in src.splitlines():
                    if line.strip() == BEGIN and not line.startswith((" ", "\t")):
                        problems.append(f"{where}: a solution region at the top level; put it inside a function "
                                        "body so the student edition runs top to bottom")
            if re.search(r"\bcheck_\w+\(", src.split(END)[-1]):
                problems.append(f"{where}: a checker call in the solution cell; give it its own test cell")
        if cell.cell_type == "code" and any(m in checkers for m in call.findall(src)):
            if not (meta.get("grade") and meta.get("locked") and meta.get("points")):
                problems.append(f"{where}: a checker cell that is not a locked, graded test cell with points")
            elif not _SCORE.search(src.strip()):
                problems.append(f"{where}: a graded test cell must end on `.score({meta['points']})`")
        if meta and meta.get("schema_version") != 3:
            problems.append(f"{where}: nbgrader metadata without schema_version 3")
    return problems


def student_notebook(nb):
    """A copy of ``nb`` with every solution stubbed and every output cleared."""
    nb = nbformat.from_dict(nb)  # a copy
    for cell in nb.cells:
        if _nbg(cell).get("solution"):
            cell.source = stub_source(cell.source, markdown=cell.cell_type == "markdown")
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out_dir", nargs="?", type=Path, help="where to write the student notebooks (e.g. student/)")
    ap.add_argument("--lint", action="store_true", help="only check the notebooks, write nothing")
    ap.add_argument("--notebooks", type=Path, default=ROOT / "notebooks", help="the teacher's notebooks")
    args = ap.parse_args(argv)
    if not args.lint and args.out_dir is None:
        ap.error("give an output folder (e.g. student/), or --lint")
    nbs = sorted(args.notebooks.glob("[0-9][0-9]_*.ipynb"))
    if not nbs:
        ap.error(f"no notebooks in {args.notebooks}")
    problems = [p for path in nbs for p in lint(nbformat.read(path, as_version=4), path.name)]
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    if args.lint:
        print(f"{len(nbs)} notebooks: every exercise can be released and graded")
        return 0
    out = args.out_dir.resolve()
    if out == args.notebooks.resolve():
        ap.error("the student edition must not overwrite the teacher's notebooks")
    out.mkdir(parents=True, exist_ok=True)
    for path in nbs:
        nbformat.write(student_notebook(nbformat.read(path, as_version=4)), out / path.name)
    print(f"{len(nbs)} student notebooks written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
