"""Panels that show an embedding's decisions as images.

* :class:`RetrievalGallery`: pick a query image (index, click, or at random) and see its
  top-k neighbours under raw pixels and under an embedding, side by side, with that
  query's Recall@1 and precision@k;
* :class:`ConfusionExplorer`: method, n, k, task seed -> which classes the method
  confuses on one task (a confusion heatmap) and images of the confused pairs;
* :func:`query_predictions`: the class a method's result predicts for each query;
* :func:`click`: deliver a click on a point of a ``go.FigureWidget`` through the same
  path as the browser's (tests and the notebooks' check cells use it; it lives in
  :mod:`dml_kit.viz.inspector` with :func:`~dml_kit.viz.inspector.hover`).
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch

from dml_kit import data
from dml_kit import methods as registry
from dml_kit._validation import check_choice, check_int, check_seed
from dml_kit.compare import method_rule
from dml_kit.data.core import Dataset
from dml_kit.losses.distances import DISTANCES, class_means
from dml_kit.methods.scores import RULE_DISTANCE
from dml_kit.metrics import embed, pairwise_scores
from dml_kit.viz import figures as F
from dml_kit.viz import gallery as G
from dml_kit.viz.inspector import click
from dml_kit.widgets.base import _figure_widget, _Panel, _replace_figure, _status, task_limits

__all__ = ["RetrievalGallery", "ConfusionExplorer", "query_predictions", "click"]


def _on_cells(figure: go.FigureWidget, handler: Any) -> None:
    """Bind ``handler(customdata of the clicked image)`` to the clicks on a gallery's
    image cells (its second trace), replacing an earlier binding."""
    if len(figure.data) < 2:
        return

    def on_click(trace: Any, points: Any, state: Any) -> None:
        if points.point_inds:
            handler(list(trace.customdata[points.point_inds[0]]))

    figure.data[1].on_click(on_click, append=False)


# ---------------------------------------------------------------------------------------
# RetrievalGallery
# ---------------------------------------------------------------------------------------
class RetrievalGallery(_Panel):
    """Pick a query image and see its ``k`` nearest neighbours among all the other images
    of ``dataset``: one row under raw pixels, one under the embedding of ``model``
    (leave-one-out retrieval, cosine by default, as :func:`dml_kit.metrics.recall_at_k`),
    correct neighbours framed green, wrong ones red, and that query's Recall@1 (is the
    nearest neighbour of its class?) and precision@k (the share of the k that are).

    Pick the query by index (``query``), by clicking an image of the candidate strip
    (``candidates``: one image of each of the first classes) or any image of the gallery
    (a neighbour becomes the next query), or at random (``random_button``).

    Args:
        dataset: a :class:`~dml_kit.data.Dataset` of images (e.g. the target classes).
        model: an embedder ``nn.Module`` (``None``: pass ``embeddings``, or pixels only).
        embeddings: ``(N, D)`` embeddings of ``dataset.x`` computed earlier (instead of
            ``model``).
        query, k: the first query's index and the neighbours shown (``1 .. N - 1``; the
            slider stops at ``max_k``).
        distance: ``cosine``, ``euclidean`` or ``sqeuclidean``.
        n_candidates: images in the strip to click (one per class, first classes).
        seed: seeds the random picks.
        invert: draw ``1 - image``.

    Attributes: ``query`` (index box), ``k`` (slider), ``random_button``, ``figure`` (the
    gallery), ``candidates`` (the strip), ``summary`` (Recall@1 / precision@k label),
    ``neighbours`` (``{row: [indices]}``), ``recall_at_1`` and ``precision_at_k``
    (``{row: value}``), ``history`` (the queries shown, in order; a new k adds none).
    """

    def __init__(self, dataset: Dataset, model: Any = None, *, embeddings: Any = None,
                 query: int = 0, k: int = 5, distance: str = "cosine",
                 n_candidates: int = 12, seed: int = 0, invert: bool = False,
                 max_k: int = 12, label: str = "embedding") -> None:
        super().__init__()
        if not isinstance(dataset, Dataset):
            raise ValueError(f"dataset must be a dml_kit.data.Dataset, got "
                             f"{type(dataset).__name__}")
        if not dataset.is_image:
            raise ValueError(f"dataset {dataset.name!r} holds no images (input shape "
                             f"{tuple(dataset.input_shape)}): the gallery draws images")
        n = len(dataset.y)
        if n < 2:
            raise ValueError(f"dataset {dataset.name!r} has {n} image: need at least 2")
        self.dataset, self.invert = dataset, bool(invert)
        self.distance = check_choice("distance", distance, DISTANCES)
        self._rng = np.random.default_rng(check_seed(seed))
        self._label = str(label)
        self.features: dict[str, torch.Tensor] = {"raw pixels": dataset.x.flatten(1)}
        self._set_features(model, embeddings)
        k_max = min(check_int("max_k", max_k, 1), n - 1)
        self.query = widgets.BoundedIntText(
            value=check_int("query", query, 0, n - 1, hint=f"an index into the {n} images"),
            min=0, max=n - 1, description="query #")
        self.k = widgets.IntSlider(
            value=check_int("k", k, 1, k_max, hint=f"{n - 1} other images, slider up to "
                                                     f"max_k={max_k}"),
            min=1, max=k_max, description="k", continuous_update=False)
        self.random_button = widgets.Button(description="random query", icon="random")
        self.summary = widgets.HTML()
        self.figure = _figure_widget(height=320)
        self.candidates = _figure_widget(height=150)
        self.neighbours: dict[str, list[int]] = {}
        self.recall_at_1: dict[str, float] = {}
        self.precision_at_k: dict[str, float] = {}
        self.history: list[int] = []
        self._draw_candidates(check_int("n_candidates", n_candidates, 1, 60))
        self.children = [widgets.HBox([self.query, self.k, self.random_button]),
                         self.candidates, self.summary, self.status, self.figure]
        for control in (self.query, self.k):
            control.observe(self._guard(lambda change: self.refresh()), names="value")
        self.random_button.on_click(self._guard(self._on_random))
        self._guard(self.refresh)()

    def _set_features(self, model: Any, embeddings: Any) -> None:
        if model is not None and embeddings is not None:
            raise ValueError("pass model or embeddings, not both")
        self.features = {"raw pixels": self.features["raw pixels"]}
        if model is not None:
            self.features[self._label] = embed(model, self.dataset.x)
        elif embeddings is not None:
            emb = embeddings if isinstance(embeddings, torch.Tensor) else \
                torch.as_tensor(np.asarray(embeddings))
            if emb.ndim != 2 or emb.shape[0] != len(self.dataset.y):
                raise ValueError(f"embeddings must be (N, D) with N={len(self.dataset.y)} "
                                 f"(one per image), got {tuple(emb.shape)}")
            self.features[self._label] = emb

    def set_model(self, model: Any = None, *, embeddings: Any = None) -> None:
        """Show the neighbours under a new embedding (e.g. after more training): embed the
        dataset with ``model`` (or take ``embeddings``) and redraw."""
        self._set_features(model, embeddings)
        self._guard(self.refresh)()

    def _draw_candidates(self, count: int) -> None:
        labels = self.dataset.y.numpy()
        firsts = [int(np.flatnonzero(labels == c)[0]) for c in np.unique(labels)[:count]]
        self.candidate_indices = firsts
        imgs = F._as_images(self.dataset.x[firsts])
        if self.invert:
            imgs = 1 - imgs
        mosaic = F.gallery_mosaic([list(imgs)], gap=3)
        h, w = imgs.shape[1:3]
        names = self.dataset.class_names
        fig = go.Figure()
        fig.add_trace(go.Image(source=F._png_uri(mosaic), hoverinfo="skip", name="strip"))
        fig.add_trace(go.Scatter(
            x=[j * (w + 3) + w / 2 for j in range(len(firsts))], y=[h / 2] * len(firsts),
            mode="markers", marker=dict(size=max(w, 8), opacity=0, symbol="square"),
            customdata=[["candidate", 0, i, names[labels[i]], True] for i in firsts],
            hovertext=[f"#{i} · class {names[labels[i]]}: click to query" for i in firsts],
            hoverinfo="text", showlegend=False, name="cells"))
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        fig.update_layout(template=F.TEMPLATE, height=150, margin=dict(l=10, r=10, t=40, b=5),
                          title="click an image to make it the query")
        _replace_figure(self.candidates, fig)
        _on_cells(self.candidates, self._guard(self._on_cell))

    def _on_cell(self, cell: list[Any]) -> None:
        self.query.value = int(cell[2])   # the observer redraws

    def _on_random(self, button: Any = None) -> None:
        n = len(self.dataset.y)
        pick = int(self._rng.integers(n - 1))
        self.query.value = pick if pick < self.query.value else pick + 1  # never the same

    def refresh(self) -> None:
        """Draw the current query's neighbours."""
        q, k = self.query.value, self.k.value
        fig = G.retrieval_gallery(self.dataset.x, self.dataset.y, q, self.features, k=k,
                                  distance=self.distance,
                                  class_names=self.dataset.class_names, invert=self.invert)
        _replace_figure(self.figure, fig)
        _on_cells(self.figure, self._guard(self._on_cell))
        rows = fig.layout.meta["rows"]
        self.neighbours = {r["name"]: list(r["indices"]) for r in rows}
        self.recall_at_1 = {r["name"]: r["recall_at_1"] for r in rows}
        self.precision_at_k = {r["name"]: r["precision_at_k"] for r in rows}
        if not self.history or self.history[-1] != q:
            self.history.append(q)
        parts = [f"<b>{html.escape(r['name'])}</b>: Recall@1 = {r['recall_at_1']:.0f} "
                 f"({'right' if r['recall_at_1'] else 'wrong'} class on top), "
                 f"precision@{k} = {r['precision_at_k']:.2f}" for r in rows]
        self.summary.value = _status(
            f"query #{q} (class {html.escape(fig.layout.meta['query_class'])}) · "
            + " · ".join(parts))
        self.status.value = _status("")


# ---------------------------------------------------------------------------------------
# ConfusionExplorer
# ---------------------------------------------------------------------------------------
def _rule_of(method: str) -> str | None:
    """How ``method`` classifies: ``"1nn"``, ``"prototype"`` or ``None`` (a classifier's
    argmax)."""
    entry = registry.get(method)
    if not entry.embedding:
        return None
    family = registry.get(entry.parent) if entry.parent else entry
    return "prototype" if family.loss == "prototypical" else "1nn"


def query_predictions(result: Any, task: Any, *, rule: str | None = None) -> torch.Tensor:
    """The class id a method's :class:`~dml_kit.methods.RunResult` predicts for each query
    of ``task`` (the task it was run on), by the method's own rule: a classifier's argmax
    (scratch, weight transfer), the cosine nearest support example (metric and its hybrid)
    or the nearest prototype (protonet and its hybrid). ``rule`` (``"1nn"``,
    ``"prototype"`` or ``"classifier"``) overrides it, e.g. for a metric run configured
    with ``classify="prototype"``. ``mean(predictions == task.query_y)`` is the run's
    accuracy."""
    model = getattr(result, "model", None)
    if model is None:
        raise ValueError("result carries no model: pass the RunResult of "
                         "dml_kit.methods.run")
    if rule is None:
        found = _rule_of(result.method)
        rule = "classifier" if found is None else found
    check_choice("rule", rule, ["1nn", "prototype", "classifier"])
    if rule == "classifier":
        return embed(model, task.query_x).argmax(1)
    s, q = embed(model, task.support_x), embed(model, task.query_x)
    if rule == "1nn":
        nearest = pairwise_scores(q, s, RULE_DISTANCE["1nn"]).topk(1, dim=1).indices[:, 0]
        return task.support_y[nearest]
    classes, protos = class_means(s.double(), task.support_y)
    return classes[pairwise_scores(q, protos, RULE_DISTANCE["prototype"]).argmax(1)]


class ConfusionExplorer(_Panel):
    """Which classes a method confuses on one n-way k-shot task of ``target``: a method
    picker, n and k sliders and the task's seed; each setting runs the method (with the
    shared source models, so only its target phase trains; results are kept, so going back
    is instant) and draws the confusion matrix of its query predictions
    (:func:`~dml_kit.viz.gallery.confusion_heatmap`) and images of its most frequent
    confusions (:func:`~dml_kit.viz.gallery.confused_pairs_gallery`): the queries of
    class A taken for B beside support images of A and of B.

    Args:
        target: the target :class:`~dml_kit.data.Dataset`.
        sources: ``{source kind: SourceModel}`` as for
            :class:`~dml_kit.widgets.MethodComparison` (a method whose kind is missing
            trains its own source model on every change: slow).
        config: the :class:`~dml_kit.methods.MethodConfig` of the target phase.
        methods: the methods offered (default: all); ``method`` the first one shown.
        n_way, k_shot, seed, n_query: the task (``n_query=None``: every remaining image of
            the smallest class).
        max_pairs: confused pairs shown.

    Attributes: ``method`` (dropdown), ``n_way``, ``k_shot`` (sliders), ``seed`` (box),
    ``heatmap`` and ``pairs`` (figures), ``task``, ``result`` (the RunResult),
    ``predictions`` (``(Q,)``), ``confusions`` (``[(true, predicted, count)]``, most
    frequent first), ``runs`` (results by ``(method, n, k, seed)``).
    """

    def __init__(self, target: Dataset, sources: Mapping[str, Any], config: Any = None, *,
                 methods: Sequence[str] | None = None, method: str | None = None,
                 n_way: int = 5, k_shot: int = 5, seed: int = 0, n_query: int | None = 10,
                 max_pairs: int = 4, max_way: int = 20, max_shot: int = 20,
                 invert: bool = False) -> None:
        super().__init__()
        if not isinstance(target, Dataset):
            raise ValueError(f"target must be a dml_kit.data.Dataset, got "
                             f"{type(target).__name__}")
        if not target.is_image:
            raise ValueError(f"target {target.name!r} holds no images: the pairs are drawn "
                             "as images")
        names = list(registry.available() if methods is None else methods)
        if not names:
            raise ValueError("methods must name at least one method")
        for name in names:
            check_choice("methods", name, registry.available())
        first = names[0] if method is None else check_choice("method", method, names)
        self.target, self.sources, self.config = target, dict(sources), config
        self.n_query = None if n_query is None else check_int(
            "n_query", n_query, 1, target.min_class_size - 1,
            hint=f"smallest class has {target.min_class_size}")
        self.max_pairs = check_int("max_pairs", max_pairs, 1, 20)
        self.invert = bool(invert)
        n_max, k_max = task_limits(target, max_way=max_way, max_shot=max_shot,
                                   min_query=self.n_query or 1)
        self.method = widgets.Dropdown(options=names, value=first, description="method")
        self.n_way = widgets.IntSlider(value=check_int("n_way", n_way, 2, n_max), min=2,
                                       max=n_max, description="n (classes)",
                                       continuous_update=False)
        self.k_shot = widgets.IntSlider(
            value=check_int("k_shot", k_shot, 1, k_max,
                            hint=f"smallest class has {target.min_class_size}, "
                                 f"n_query={self.n_query}"),
            min=1, max=k_max, description="k (shots)", continuous_update=False)
        self.seed = widgets.BoundedIntText(value=check_seed(seed), min=0, max=2**31 - 1,
                                           description="task seed")
        self.heatmap = _figure_widget(height=420)
        self.pairs = _figure_widget(height=300)
        self.task: Any = None
        self.result: Any = None
        self.predictions: torch.Tensor | None = None
        self.confusions: list[tuple[int, int, int]] = []
        self.runs: dict[tuple[str, int, int, int], tuple[Any, Any, torch.Tensor]] = {}
        self.children = [widgets.HBox([self.method, self.seed]),
                         widgets.HBox([self.n_way, self.k_shot]), self.status,
                         widgets.HBox([self.heatmap]), self.pairs]
        for control in (self.method, self.n_way, self.k_shot, self.seed):
            control.observe(self._guard(lambda change: self.refresh()), names="value")
        self._guard(self.refresh)()

    def _run(self, key: tuple[str, int, int, int]) -> tuple[Any, Any, torch.Tensor]:
        if key not in self.runs:
            name, n, k, seed = key
            task = data.kshot_task(self.target, n, k, n_query=self.n_query, seed=seed)
            source = self.sources.get(registry.get(name).source_kind or "")
            result = method_rule(name, source, self.config)(task)
            self.runs[key] = (task, result, query_predictions(result, task))
        return self.runs[key]

    def refresh(self) -> None:
        """Run (or recall) the current method on the current task and redraw."""
        key = (self.method.value, self.n_way.value, self.k_shot.value, self.seed.value)
        name, n, k, _ = key
        self.status.value = _status(f"running {html.escape(name)} on a {n}-way {k}-shot "
                                    "task ...")
        self.task, self.result, self.predictions = self._run(key)
        t = self.task
        heat = G.confusion_heatmap(t.query_y, self.predictions, t.class_names,
                                   title=f"{name} on a {n}-way {k}-shot task: "
                                         f"accuracy {self.result.accuracy:.2f}")
        self.confusions = G.confused_pairs(G.confusion_counts(t.query_y, self.predictions,
                                                              t.n_way))
        _replace_figure(self.heatmap, heat)
        _replace_figure(self.pairs, G.confused_pairs_gallery(
            t, self.predictions, max_pairs=self.max_pairs, shots=min(k, 2),
            invert=self.invert))
        names = t.class_names
        top = (", ".join(f"{html.escape(names[a])} → {html.escape(names[b])} ({c}×)"
                         for a, b, c in self.confusions[:3]) or "none")
        wrong = int((self.predictions != t.query_y).sum())
        self.status.value = _status(
            f"{name}: {wrong} of {len(t.query_y)} queries wrong (accuracy "
            f"{self.result.accuracy:.2f}); most frequent confusions: {top}")
