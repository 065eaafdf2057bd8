"""Execute notebooks top to bottom, as the tests will (offline, COURSE_FAST=1), and save their outputs.

    python scripts/run_notebook.py notebooks/01_attention_math.ipynb [more.ipynb ...]
    python scripts/run_notebook.py --check notebooks/01_attention_math.ipynb     # then prove it portable

Run it on a notebook after editing it. ``--check`` then re-executes the saved notebook with strict nbval on
three kernel paths: this machine's own, ``ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1`` (the tests' second
pass) and ``ATEN_CPU_CAPABILITY=avx2`` (x86 only). A notebook that passes all three will very likely reproduce
on a learner's laptop; one that fails prints round-off somewhere: print a verdict against a tolerance
(``helpers.course.agree``) or fewer digits. ``--check-only`` skips the execution and only checks.
Set ``COURSE_FAST=0`` yourself to run the learner's full version (do not commit those outputs; for the full
course use ``scripts/run_course.py --full``).
"""

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from helpers import (  # as the tests have it (conftest.py)
    OTHER_KERNEL_PATHS,
    SECOND_KERNEL_PATH,
    TEST_ENVIRONMENT,
)

ROOT = Path(__file__).resolve().parents[1]

# COURSE_FAST may be set to 0 by hand to run the learner's full version; the rest is as the tests have it.
os.environ.update({k: v for k, v in TEST_ENVIRONMENT.items() if k != "COURSE_FAST"})
os.environ.setdefault("COURSE_FAST", "1")
os.environ["HF_HUB_CACHE"] = tempfile.mkdtemp(prefix="course-hf-cache-")  # as conftest.py: no GPT-2 cached
os.environ.setdefault("COURSE_WORKDIR", tempfile.mkdtemp(prefix="course-yours-"))  # the learner's cache untouched

import nbformat  # noqa: E402
from nbclient import NotebookClient  # noqa: E402


def run(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    t = time.time()
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(nb, path)
    print(f"{path}: executed in {time.time() - t:.1f} s")


def kernel_paths() -> list[dict[str, str]]:
    paths = [{}, SECOND_KERNEL_PATH]
    if platform.machine().lower() in ("x86_64", "amd64"):
        paths += list(OTHER_KERNEL_PATHS)
    return paths


def check(path: Path) -> bool:
    """Strict nbval on every kernel path; True when all pass."""
    ok = True
    for extra in kernel_paths():
        label = " ".join(f"{k}={v}" for k, v in extra.items()) or "this machine's kernels"
        t = time.time()
        r = subprocess.run([sys.executable, "-m", "pytest", str(path.resolve()), "-q", "--no-header",
                            "-p", "no:cacheprovider", "-n", "0"], cwd=ROOT, env={**os.environ, **extra},
                           capture_output=True, text=True)
        verdict = "reproduces" if r.returncode == 0 else "FAILS"
        print(f"  {path.name} on {label}: {verdict} ({time.time() - t:.0f} s)")
        if r.returncode != 0:
            ok = False
            print("\n".join("    " + line for line in (r.stdout + r.stderr)[-4000:].splitlines()))
    return ok


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("notebooks", nargs="+", type=Path)
    ap.add_argument("--check", action="store_true", help="after executing, check on three kernel paths")
    ap.add_argument("--check-only", action="store_true", help="only check, do not execute")
    args = ap.parse_args()
    failed = []
    for p in args.notebooks:
        if not p.exists():
            sys.exit(f"no such notebook: {p}")
        if not args.check_only:
            run(p)
        if (args.check or args.check_only) and not check(p):
            failed.append(p.name)
    if failed:
        sys.exit(f"not portable: {', '.join(failed)}")
