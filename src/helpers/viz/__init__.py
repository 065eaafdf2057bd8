"""Pictures: attention heatmaps (``attention``) and training curves (``training``), re-exported here."""

import importlib as _importlib

__all__: list[str] = []
for _mod in ("attention", "training", "html"):
    try:
        _m = _importlib.import_module(f"{__name__}.{_mod}")
    except ModuleNotFoundError as _e:
        if _e.name != f"{__name__}.{_mod}":
            raise
        continue
    for _name in getattr(_m, "__all__", []):
        globals()[_name] = getattr(_m, _name)
        __all__.append(_name)
