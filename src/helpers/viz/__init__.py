"""Pictures: attention heatmaps, grids and line views (``attention``), the self-contained HTML views
(``html``), ``explore(model, text, tokenizer)``'s head/model/line explorer for Jupyter and for an offline page
(``explorer``) and training curves (``training``), all re-exported here."""

from .. import _reexport

__all__: list[str] = _reexport(globals(), __name__, ("attention", "training", "html", "explorer"))
