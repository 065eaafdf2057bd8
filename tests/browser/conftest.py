"""The notebooks here are fixtures of the browser test (tests/test_browser_jupyterlab.py), not lessons: nbval
(which the suite runs on every .ipynb it collects) must not execute them, since they are committed without outputs."""

collect_ignore_glob = ["*.ipynb"]
