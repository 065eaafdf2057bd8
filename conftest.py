"""Test-wide set-up: offline, fast mode, and nbval's known traps handled once for every notebook.

The variables are set at import time, before nbval starts any kernel, so the notebook kernels
(started with --nbval-current-env) inherit them.
"""

import os
import tempfile

import pytest

from helpers import TEST_ENVIRONMENT  # the package's __init__ imports nothing heavy (no torch yet)

os.environ.update(TEST_ENVIRONMENT)
# Pieces the notebooks' solutions adopt (helpers.yours) go to a folder of this test session, never to the
# learner's own ~/.cache; child pytest runs (the second kernel path) inherit it.
os.environ.setdefault("COURSE_WORKDIR", tempfile.mkdtemp(prefix="course-yours-"))
# An empty Hugging Face cache: a machine that downloaded GPT-2 before would otherwise run the hub's model where
# the committed outputs (made offline) show the course's fallback.
os.environ["HF_HUB_CACHE"] = tempfile.mkdtemp(prefix="course-hf-cache-")


def pytest_collectstart(collector):
    # SVG output differs on every run (random ids); images are never compared by nbval anyway.
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += ("image/svg+xml",)


# Files whose tests run for minutes in all (notebooks executed, sites built, browsers driven, trainings resumed).
# Collected first, they are handed out first, so the two workers finish together instead of one waiting while the
# other runs a long file that came last (longest first is the classic rule for sharing jobs between machines).
_LONG_FIRST = ("tests/test_notebooks_portable.py", "tests/test_student_edition.py", "notebooks/", "tests/test_nbgrader.py",
               "tests/test_site.py", "tests/test_browser", "tests/test_train.py", "tests/test_distributed.py")


def _long_first(item) -> int:
    path = item.nodeid.split("::", 1)[0]
    return next((i for i, prefix in enumerate(_LONG_FIRST) if path.startswith(prefix)), len(_LONG_FIRST))


def pytest_collection_modifyitems(items):
    # nbval waits only 5 s (hard-coded) for a cell's output messages after the cell finished; on a loaded 2-core
    # machine a cell with a progress bar or a large figure has missed that. 60 s changes nothing when all is well.
    for item in items:
        if hasattr(item, "output_timeout"):
            item.output_timeout = 60
    items.sort(key=_long_first)  # stable: the cells of a notebook and the tests of a file keep their order


# The tests that execute one whole notebook each (the second kernel path, the student edition) are the suite's
# longest items. Under ``--dist loadfile`` (pyproject.toml) a file is one unit of work, so each of those two files
# ran every notebook in a row on one worker and set the suite's tail. Here each of their notebooks is its own
# unit, and xdist hands them out to whichever worker is free; every other file still stays on one worker.
_PER_NOTEBOOK = ("::test_notebook_on_second_kernel_path[", "::test_student_notebook_runs_top_to_bottom[")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadFileScheduling

    class NotebookPerUnit(LoadFileScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return nodeid if any(marker in nodeid for marker in _PER_NOTEBOOK) else super()._split_scope(nodeid)

    return NotebookPerUnit(config, log)
