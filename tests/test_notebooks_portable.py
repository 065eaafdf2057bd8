"""Every notebook a second time, on another kernel path: PyTorch's non-vectorised CPU kernels and one thread.

The first pass (nbval over ``notebooks/``, see pyproject.toml) re-executes each notebook on this machine's
fastest kernels. A learner's laptop picks other kernels (AVX2, AVX-512, NEON...) and another thread count, and
float32 round-off changes with them. Forcing ``ATEN_CPU_CAPABILITY=default OMP_NUM_THREADS=1`` here gives a
second, different set of last digits; both passes are strict nbval against the same committed outputs, so a
notebook that prints round-off fails here. Before committing a notebook, check it the same way:

    python scripts/run_notebook.py --check notebooks/NN_name.ipynb

The environment variables must be set before torch loads in the kernel, so each notebook runs in a child
pytest (it reads the same configuration and sanitize file as the first pass).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import SECOND_KERNEL_PATH

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_every_lesson_is_covered():
    assert len(NOTEBOOKS) >= 12, f"expected the course's notebooks under {ROOT / 'notebooks'}, found {len(NOTEBOOKS)}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_on_second_kernel_path(notebook):
    env = {**os.environ, **SECOND_KERNEL_PATH}
    cmd = [sys.executable, "-m", "pytest", str(notebook.relative_to(ROOT)), "-q", "--no-header", "-p", "no:cacheprovider", "-n", "0"]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    report = (r.stdout + r.stderr)[-6000:]
    assert r.returncode == 0, (
        f"{notebook.name} does not reproduce its committed outputs with "
        f"{' '.join(f'{k}={v}' for k, v in SECOND_KERNEL_PATH.items())}:\n{report}"
    )
    assert " passed" in r.stdout, f"no cell of {notebook.name} was checked:\n{report}"
