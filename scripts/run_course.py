"""Execute the whole course, every notebook top to bottom, and print what each took and found.

    python scripts/run_course.py --full            # the learner's settings (COURSE_FAST=0): the real runs
    python scripts/run_course.py                   # fast mode, as the tests run it
    python scripts/run_course.py --full --only 07 10

The executed notebooks go to a scratch folder (``runs/course-full/`` or ``runs/course-fast/``, never over the
committed files); each runs with the notebooks folder as its working directory, offline, as the tests do
(except ``COURSE_FAST``). A table of wall time per notebook and its headline figures (what the notebooks pass to
``helpers.course.record``) is printed and written to ``summary.md`` in that folder. Exits non-zero if any
notebook fails; the others still run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from helpers import TEST_ENVIRONMENT

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def execute(src: Path, dst: Path, record: Path, fast: bool, timeout: int) -> tuple[bool, float, str]:
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError

    os.environ.update({**TEST_ENVIRONMENT, "COURSE_FAST": "1" if fast else "0", "COURSE_RECORD": str(record)})
    record.unlink(missing_ok=True)
    nb = nbformat.read(src, as_version=4)
    t = time.perf_counter()
    error = ""
    try:  # the kernel's own log (not the cells' output) goes to a file beside the executed notebook
        with open(dst.with_suffix(".kernel.log"), "w") as kernel_log:
            NotebookClient(nb, timeout=timeout, kernel_name="python3",
                           resources={"metadata": {"path": str(src.parent)}}).execute(stderr=kernel_log)
    except (CellExecutionError, CellTimeoutError, RuntimeError) as e:
        error = str(e).strip().splitlines()[-1][:200] if str(e).strip() else type(e).__name__
    elapsed = time.perf_counter() - t
    nbformat.write(nb, dst)
    return not error, elapsed, error


def headlines(record: Path) -> str:
    if not record.exists():
        return ""
    items = [json.loads(line) for line in record.read_text(encoding="utf-8").splitlines() if line.strip()]
    return "; ".join(f"{it['name']} {it['value']}" for it in items)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--full", action="store_true", help="the learner's settings (COURSE_FAST=0)")
    ap.add_argument("--only", nargs="+", metavar="NN", help="only the notebooks whose names start with these")
    ap.add_argument("--out", type=Path, help="scratch folder (default runs/course-full or runs/course-fast)")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per cell (default 3600)")
    ap.add_argument("--notebooks", type=Path, default=NOTEBOOKS, help=argparse.SUPPRESS)  # for the tests
    args = ap.parse_args(argv)

    nbs = sorted(args.notebooks.glob("[0-9][0-9]_*.ipynb"))
    if args.only:
        nbs = [p for p in nbs if p.name.startswith(tuple(args.only))]
        if not nbs:
            ap.error(f"no notebook starts with {args.only}")
    mode = "full" if args.full else "fast"
    out = (args.out or ROOT / "runs" / f"course-{mode}").resolve()
    if out == args.notebooks.resolve():
        ap.error("the scratch folder must not be notebooks/: the committed outputs are fast mode's")
    out.mkdir(parents=True, exist_ok=True)

    import torch

    print(f"{mode} mode, {len(nbs)} notebooks -> {out}; {os.cpu_count()} CPU cores, torch "
          f"{torch.__version__.split('+')[0]}, {platform.processor() or platform.machine()}", flush=True)
    rows, failed, total = [], [], 0.0
    for src in nbs:
        print(f"  {src.stem} ...", end=" ", flush=True)
        ok, elapsed, error = execute(src, out / src.name, out / f"{src.stem}.record.jsonl", not args.full,
                                     args.timeout)
        total += elapsed
        figures = headlines(out / f"{src.stem}.record.jsonl")
        print(f"{'ok' if ok else 'FAILED'} in {elapsed:.0f} s{'  ' + figures if figures else ''}"
              f"{'  ' + error if error else ''}", flush=True)
        rows.append((src.stem, elapsed, ok, figures if ok else f"FAILED: {error}"))
        if not ok:
            failed.append(src.stem)

    lines = [f"| notebook | wall time ({mode} mode) | headline figures |", "|---|---:|---|"]
    lines += [f"| {name} | {elapsed / 60:.1f} min | {figures.replace('|', chr(92) + '|')} |"
              for name, elapsed, ok, figures in rows]  # a verdict such as "max |difference|" must not split cells
    lines.append(f"| **all** | **{total / 60:.1f} min** | {len(rows) - len(failed)}/{len(rows)} ran clean |")
    table = "\n".join(lines)
    (out / "summary.md").write_text(table + "\n", encoding="utf-8")
    print("\n" + table)
    if failed:
        print(f"\nfailed: {', '.join(failed)} (the executed notebooks in {out} show where)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
