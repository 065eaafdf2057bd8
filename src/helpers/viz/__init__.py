"""Pictures: attention heatmaps, grids and line views (``attention``), the self-contained HTML head view
(``html``) and training curves (``training``), all re-exported here."""

from .. import _reexport

__all__: list[str] = _reexport(globals(), __name__, ("attention", "training", "html"))
