"""Exercise checkers: ``check_NAME(fn)`` runs the learner's function against a reference on several cases and
prints what is right and what is wrong. One module per lesson group; all are re-exported here, so notebooks
write ``from helpers.checks import check_softmax``.
"""

from .. import _reexport
from ._core import Case, CheckResult, close, run_cases

__all__ = ["Case", "CheckResult", "close", "run_cases"] + _reexport(
    globals(), __name__,
    ("attention", "model", "tokenization", "training", "generation", "gpt2", "analysis", "society",
     "induction", "sentiment", "instruct", "codegen", "llama", "scaling", "fastgen", "vision"),
)
