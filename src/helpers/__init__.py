"""The hands-on Transformer course's canonical code: what the notebooks build, later notebooks import.

Modules by concept: ``attention``, ``model``, ``generate``, ``data``, ``tokenizer``, ``train``, ``viz``,
``checks``. Import them directly (``from helpers.model import GPT``); this package imports nothing heavy.
"""

__version__ = "0.1.0"

#: How the tests run every notebook, in one place (``conftest.py`` and ``scripts/run_notebook.py`` apply it):
#: offline, fast mode, quiet libraries. ``OMP_WAIT_POLICY=PASSIVE`` lets idle OpenMP threads sleep instead of
#: spinning, which on a busy 2-core machine made notebooks 20-40x slower; it must be set before torch loads.
TEST_ENVIRONMENT: dict[str, str] = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "COURSE_FAST": "1",
    "OMP_WAIT_POLICY": "PASSIVE",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TOKENIZERS_PARALLELISM": "false",
}

#: The second kernel path every notebook is executed on by the tests (tests/test_notebooks_portable.py):
#: PyTorch's non-vectorised CPU kernels and one thread. Float32 sums change in their last digits, so a
#: notebook that prints round-off fails here; ``scripts/run_notebook.py --check`` runs both before a commit.
SECOND_KERNEL_PATH: dict[str, str] = {"ATEN_CPU_CAPABILITY": "default", "OMP_NUM_THREADS": "1"}

#: Further kernel paths ``scripts/run_notebook.py --check`` tries (not in CI, to keep the suite short).
OTHER_KERNEL_PATHS: tuple[dict[str, str], ...] = ({"ATEN_CPU_CAPABILITY": "avx2"},)


def _reexport(namespace: dict, package: str, modules: tuple[str, ...]) -> list[str]:
    """Copy each present submodule's ``__all__`` names into a package's namespace; return the names.

    Lets ``helpers.checks`` and ``helpers.viz`` keep one module per lesson while notebooks import from the
    package (``from helpers.viz import plot_attention``). A module that does not exist is skipped.
    """
    import importlib

    names: list[str] = []
    for mod in modules:
        try:
            m = importlib.import_module(f"{package}.{mod}")
        except ModuleNotFoundError as e:
            if e.name != f"{package}.{mod}":
                raise
            continue
        for name in getattr(m, "__all__", []):
            namespace[name] = getattr(m, name)
            names.append(name)
    return names
