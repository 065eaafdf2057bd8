"""Test-wide set-up: offline, fast mode, and nbval's known traps handled once for every notebook.

The variables are set at import time, before nbval starts any kernel, so the notebook kernels
(started with --nbval-current-env) inherit them.
"""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["COURSE_FAST"] = "1"
# Idle OpenMP threads sleep instead of spinning: on a busy 2-core machine spinning workers starve each other.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collectstart(collector):
    # SVG output differs on every run (random ids); images are never compared by nbval anyway.
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += ("image/svg+xml",)
