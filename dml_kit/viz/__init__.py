"""Plotly figures, 2-D projections and live views of training (:mod:`dml_kit.viz`).

* :mod:`dml_kit.viz.figures`: figure builders from plain data or results tables
  (``norm_histogram``, ``projection_scatter``, ``learning_curves``, ``accuracy_vs_k``,
  ``method_heatmap``, ``accuracy_vs_distance``, ``task_gallery``, ``pair_similarity_histogram``,
  ``prototype_scatter``, ``figure_fingerprint``).
* :mod:`dml_kit.viz.gallery`: the embedding's decisions as images (``retrieval_gallery``,
  ``nearest_neighbours``, ``confusion_heatmap``, ``confused_pairs_gallery``,
  ``confusion_counts``, ``confused_pairs``).
* :mod:`dml_kit.viz.projection`: ``Projector`` (PCA or UMAP, aligned frame to frame) and
  the UMAP warm-up.
* :mod:`dml_kit.viz.live`: ``LiveDashboard``, a training callback and an ipywidgets box
  (loaded on first use: it pulls in ipywidgets and plotly's FigureWidget).
* :mod:`dml_kit.viz.toy`: the cosine-gradient toy of notebook 06 (loaded on first use).

Importing this package does not import umap-learn or numba.
"""

from __future__ import annotations

import importlib
from typing import Any

from dml_kit.viz.figures import (
    TEMPLATE,
    accuracy_vs_distance,
    accuracy_vs_k,
    class_color,
    decode_image,
    figure_fingerprint,
    gallery_mosaic,
    learning_curves,
    method_heatmap,
    norm_histogram,
    pair_similarities,
    pair_similarity_histogram,
    palette,
    projection_scatter,
    prototype_scatter,
    shift_curve_frame,
    task_gallery,
)
from dml_kit.viz.gallery import (
    confused_pairs,
    confused_pairs_gallery,
    confusion_counts,
    confusion_heatmap,
    nearest_neighbours,
    retrieval_gallery,
)
from dml_kit.viz.projection import (
    Projector,
    configure_numba_cache,
    pca_2d,
    procrustes_align,
    umap_ready,
    umap_status,
    wait_for_umap,
    warm_up_umap,
)

_LAZY = {"LiveDashboard": "dml_kit.viz.live", "live": "dml_kit.viz.live",
         "toy": "dml_kit.viz.toy", "save_figure": "dml_kit.viz.export"}
_MODULES = ("live", "toy")

__all__ = [
    "TEMPLATE", "palette", "class_color", "norm_histogram", "projection_scatter",
    "learning_curves", "accuracy_vs_k", "method_heatmap", "accuracy_vs_distance",
    "shift_curve_frame", "task_gallery", "gallery_mosaic", "decode_image",
    "pair_similarities", "pair_similarity_histogram", "prototype_scatter",
    "figure_fingerprint", "Projector", "procrustes_align", "pca_2d", "configure_numba_cache",
    "warm_up_umap", "umap_ready", "umap_status", "wait_for_umap", "LiveDashboard", "toy",
    "nearest_neighbours", "retrieval_gallery", "confusion_counts", "confused_pairs",
    "confusion_heatmap", "confused_pairs_gallery", "save_figure",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = module if name in _MODULES else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dml_kit.viz' has no attribute {name!r}")
