"""Plotly figures, 2-D projections and live views of training (:mod:`dml_kit.viz`).

* :mod:`dml_kit.viz.figures`: figure builders from plain data or results tables
  (``norm_histogram``, ``projection_scatter``, ``learning_curves``, ``accuracy_vs_k``,
  ``method_heatmap``, ``accuracy_vs_distance``, ``task_gallery``).
* :mod:`dml_kit.viz.projection`: ``Projector`` (PCA or UMAP, aligned frame to frame) and
  the UMAP warm-up.
* :mod:`dml_kit.viz.live`: ``LiveDashboard``, a training callback and an ipywidgets box
  (loaded on first use: it pulls in ipywidgets and plotly's FigureWidget).

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
    gallery_mosaic,
    learning_curves,
    method_heatmap,
    norm_histogram,
    palette,
    projection_scatter,
    task_gallery,
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

_LAZY = {"LiveDashboard": "dml_kit.viz.live", "live": "dml_kit.viz.live"}

__all__ = [
    "TEMPLATE", "palette", "class_color", "norm_histogram", "projection_scatter",
    "learning_curves", "accuracy_vs_k", "method_heatmap", "accuracy_vs_distance",
    "task_gallery", "gallery_mosaic", "decode_image", "Projector", "procrustes_align",
    "pca_2d", "configure_numba_cache",
    "warm_up_umap", "umap_ready", "umap_status", "wait_for_umap", "LiveDashboard",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        value = module if name == "live" else getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'dml_kit.viz' has no attribute {name!r}")
