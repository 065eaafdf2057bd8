"""The course's reference for each piece the learner builds, with the exercise's own interface.

The build thread (issue "Build it yourself"): the learner writes ``Head`` and ``MultiHeadAttention`` (02), the
``Block`` (04), the ``GPT`` (05), ``train_step`` (07), ``sample`` (08). Each exercise states an interface
(shapes in the docstring); the reference here has the same interface and is what runs when the learner's
piece has not passed its checker (``helpers.yours.adopt``/``use``). These are thin: they reuse
``helpers.model``/``helpers.attention``/``helpers.generate``, the canonical code, wherever they can.
One module per lesson group; all are re-exported here.
"""

from .. import _reexport

__all__ = _reexport(globals(), __name__, ("attention", "gpt", "training", "sampling"))
