"""The hands-on Transformer course's canonical code: what the notebooks build, later notebooks import.

Modules by concept: ``attention``, ``model``, ``generate``, ``data``, ``tokenizer``, ``train``, ``viz``,
``checks``. Import them directly (``from helpers.model import GPT``); this package imports nothing heavy.
"""

__version__ = "0.1.0"


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
