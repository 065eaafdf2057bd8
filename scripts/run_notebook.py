"""Execute notebooks top to bottom, as the tests will (offline, COURSE_FAST=1), and save their outputs.

    python scripts/run_notebook.py notebooks/01_attention_math.ipynb [more.ipynb ...]

Run it on a notebook after editing it, then check it with ``python -m pytest notebooks/NN_name.ipynb``.
Set ``COURSE_FAST=0`` yourself to run the learner's full version (do not commit those outputs).
"""

import os
import sys
import time
from pathlib import Path

from helpers import TEST_ENVIRONMENT  # the same environment as the tests (see conftest.py)

# COURSE_FAST may be set to 0 by hand to run the learner's full version; the rest is as the tests have it.
os.environ.update({k: v for k, v in TEST_ENVIRONMENT.items() if k != "COURSE_FAST"})
os.environ.setdefault("COURSE_FAST", "1")

import nbformat  # noqa: E402
from nbclient import NotebookClient  # noqa: E402


def run(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    t = time.time()
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(nb, path)
    print(f"{path}: executed in {time.time() - t:.1f} s")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for p in sys.argv[1:]:
        run(Path(p))
