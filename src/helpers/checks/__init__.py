"""Exercise checkers: ``check_NAME(fn)`` runs the learner's function against a reference on several cases and
prints what is right and what is wrong. One module per lesson group; all are re-exported here.
"""

from ._core import Case, CheckResult, close, run_cases

__all__ = ["Case", "CheckResult", "close", "run_cases"]

# Each lesson's checkers live in their own module (attention, model, tokenization, training, generation,
# analysis) and are re-exported below, so notebooks write ``from helpers.checks import check_softmax``.
import importlib as _importlib

for _mod in ("attention", "model", "tokenization", "training", "generation", "analysis"):
    try:
        _m = _importlib.import_module(f"{__name__}.{_mod}")
    except ModuleNotFoundError as _e:
        if _e.name != f"{__name__}.{_mod}":
            raise
        continue
    for _name in getattr(_m, "__all__", []):
        globals()[_name] = getattr(_m, _name)
        __all__.append(_name)
