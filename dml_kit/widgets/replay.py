"""Panels that look again at what a trained model does, without retraining.

* :class:`EpochReplay`: a slider over the probe embeddings a run recorded, epoch by epoch;
* :class:`PrototypeExplorer`: k -> queries and prototypes of a task in a frozen embedding.

Both projections carry a :class:`~dml_kit.viz.inspector.PointInspector` (``inspector``):
hovering a point shows its image and class, clicking it its nearest neighbours under the
embedding shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets

from dml_kit import data
from dml_kit._validation import check_int, check_seed
from dml_kit.data.core import Dataset
from dml_kit.losses.distances import class_means
from dml_kit.metrics import embed, prototype_accuracy
from dml_kit.viz import figures as F
from dml_kit.viz.inspector import PointInspector
from dml_kit.viz.projection import Projector
from dml_kit.widgets.base import _figure_widget, _Panel, _replace_figure, _status

__all__ = ["EpochReplay", "PrototypeExplorer"]


class EpochReplay(_Panel):
    """Replay a finished training run epoch by epoch: a slider over the probe embeddings it
    recorded (:class:`~dml_kit.callbacks.HistoryCallback` with ``keep_probes=True``).

    Top: a 2-D projection of the probe embeddings (PCA, Procrustes-aligned frame to frame
    by :class:`~dml_kit.viz.projection.Projector`, so the clusters do not flip). Bottom:
    the distributions ``p+`` and ``p-`` of their positive and negative pair similarities
    with the histogram loss of the set (:func:`~dml_kit.viz.figures.pair_similarity_histogram`).

    Args:
        probes: ``(phase, epoch, embeddings, labels)`` tuples, as ``HistoryCallback.probes``.
        class_names: names of the probe labels (e.g. the source dataset's ``class_names``).
        phase: which phase's frames to replay (``"source"`` or ``"adapt"``).
        index: the frame shown first (default: the last).
        images: the probe images ``(P, C, H, W)`` or ``(P, H, W)``, one per probe point in
            the recorded order, for the point inspector (``None``: it shows classes only).
        neighbours: how many nearest neighbours a click shows.

    Attributes: ``epoch`` (slider labelled with the epoch numbers; its ``value`` is the
    index into ``frames``), ``frames`` (``(epoch,
    embeddings, labels)``), ``layouts`` (the 2-D points per frame), ``scatter`` and
    ``histogram`` (figures), ``inspector`` (hover: image and class; click: nearest
    neighbours under the selected epoch's embeddings).
    """

    def __init__(self, probes: Sequence[tuple[str, int, Any, Any]],
                 class_names: Sequence[str] | None = None, *, phase: str = "source",
                 seed: int = 0, index: int | None = None, images: Any = None,
                 neighbours: int = 5) -> None:
        super().__init__()
        self.frames = [(int(e), emb, y) for ph, e, emb, y in probes if ph == phase]
        if not self.frames:
            raise ValueError(f"probes hold no frame of phase {phase!r}: record them with "
                             "HistoryCallback(keep_probes=True)")
        last = len(self.frames) - 1
        projector = Projector("pca", seed=check_seed(seed))
        self.layouts = [projector.fit_transform(emb) for _, emb, _ in self.frames]
        self.class_names = None if class_names is None else list(class_names)
        # the slider's value is the frame index, its label the epoch number the titles show
        self.epoch = widgets.SelectionSlider(
            options=[(str(e), i) for i, (e, _, _) in enumerate(self.frames)],
            value=last if index is None else check_int("index", index, 0, last),
            description="epoch", continuous_update=False)
        self.scatter = _figure_widget(height=420)
        self.histogram = _figure_widget(height=340)
        self.inspector = PointInspector(k=neighbours,
                                        features_label="this epoch's probe embeddings")
        self.inspector.set_points(self.frames[0][2], self.class_names, images=images)
        self.children = [self.epoch, self.status, self.scatter, self.inspector,
                         self.histogram]
        self.epoch.observe(self._guard(lambda change: self.refresh()), names="value")
        self._guard(self.refresh)()

    def refresh(self) -> None:
        """Draw the selected frame."""
        epoch, emb, labels = self.frames[self.epoch.value]
        _replace_figure(self.scatter, F.projection_scatter(
            self.layouts[self.epoch.value], labels, self.class_names,
            title=f"Probe embeddings, epoch {epoch}",
            subtitle="hover: image · click: nearest neighbours"))
        self.inspector.attach(self.scatter)
        self.inspector.set_features(emb)
        hist = F.pair_similarity_histogram(emb, labels, title=f"Probe pairs, epoch {epoch}")
        _replace_figure(self.histogram, hist)
        meta = hist.layout.meta
        self.status.value = _status(
            f"epoch {epoch} ({self.epoch.value + 1} of {len(self.frames)} frames): mean "
            f"similarity {meta['positive_mean']:.2f} (positive pairs) vs "
            f"{meta['negative_mean']:.2f} (negative pairs)")


# ---------------------------------------------------------------------------------------
# PrototypeExplorer
# ---------------------------------------------------------------------------------------
class PrototypeExplorer(_Panel):
    """A k slider over target tasks seen through a frozen embedding: queries as dots,
    class prototypes ``c_j = (1/k) sum_{i: y_i = j} f(x_i)`` as stars, in a 2-D PCA
    (prototypical networks, Snell et al. 2017), with the nearest-prototype accuracy.

    Each k draws a new n-way k-shot task of ``target`` (same seed, ``n_query`` queries per
    class) and recomputes the prototypes; nothing is retrained.

    Args:
        target: the target :class:`~dml_kit.data.Dataset`.
        model: an embedder ``nn.Module`` (e.g. a protonet's ``SourceModel.model``).
        n_way, k_shot, n_query, seed: the task; ``max_shot`` caps the slider.

    Hovering a query shows its image and class (``inspector``); clicking it shows its
    nearest neighbours among the queries under the embedding.

    Attributes: ``k_shot`` (slider), ``figure``, ``task`` (the current task), ``accuracy``
    (``{k: nearest-prototype accuracy}`` for every k shown so far), ``inspector``.
    """

    def __init__(self, target: Dataset, model: Any, *, n_way: int = 5, k_shot: int = 1,
                 n_query: int = 15, seed: int = 0, max_shot: int = 10) -> None:
        super().__init__()
        if not isinstance(target, Dataset):
            raise ValueError(f"target must be a dml_kit.data.Dataset, got "
                             f"{type(target).__name__}")
        self.target, self.model = target, model
        self.n_way = check_int("n_way", n_way, 2, target.n_classes,
                               hint=f"{target.n_classes} target classes")
        self.n_query = check_int("n_query", n_query, 1, target.min_class_size - 1,
                                 hint=f"smallest class has {target.min_class_size}")
        self.seed = check_seed(seed)
        k_max = min(check_int("max_shot", max_shot, 1), target.min_class_size - self.n_query)
        self.k_shot = widgets.IntSlider(
            value=check_int("k_shot", k_shot, 1, k_max,
                            hint=f"{target.min_class_size} per class, {n_query} queries"),
            min=1, max=k_max, description="k (shots)", continuous_update=False)
        self.figure = _figure_widget(height=460)
        self.inspector = PointInspector(k=5, features_label="the embedding")
        self.task: Any = None
        self.accuracy: dict[int, float] = {}
        self.children = [self.k_shot, self.status, self.figure, self.inspector]
        self.k_shot.observe(self._guard(lambda change: self.refresh()), names="value")
        self._guard(self.refresh)()

    def refresh(self) -> None:
        """Draw the task for the current k."""
        k = self.k_shot.value
        self.task = t = data.kshot_task(self.target, self.n_way, k, n_query=self.n_query,
                                        seed=self.seed)
        support, query = embed(self.model, t.support_x), embed(self.model, t.query_x)
        self.accuracy[k] = prototype_accuracy(support, t.support_y, query, t.query_y)
        fig = F.prototype_scatter(query, t.query_y, class_means(support, t.support_y)[1],
                                  t.class_names, accuracy=self.accuracy[k], k_shot=k)
        _replace_figure(self.figure, fig)
        self.inspector.set_points(t.query_y, t.class_names, images=t.query_x, features=query)
        self.inspector.attach(self.figure)
        self.status.value = _status(f"{t.n_way}-way {k}-shot, {self.n_query} queries per "
                                    f"class: accuracy {self.accuracy[k]:.2f}")


