"""ShiftExplorer: a slider over a ladder of class splits of growing distribution shift."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch

from dml_kit._validation import check_int
from dml_kit.data.core import Dataset
from dml_kit.experiments.shift_study import zero_shot_recall
from dml_kit.viz import figures as F
from dml_kit.viz.inspector import PointInspector
from dml_kit.viz.projection import pca_2d
from dml_kit.widgets.base import (
    _config_or_classroom,
    _disabled,
    _figure_widget,
    _Panel,
    _replace_figure,
    _status,
)

__all__ = ["ShiftExplorer", "zero_shot_evaluator", "score_rows", "split_projection"]

#: the two sides of a split: colour (Okabe-Ito blue / orange) and marker shape, so the
#: sides differ without colour too
_SIDES = (("train", "#0072B2", "circle"), ("test", "#E69F00", "diamond"))


def _split_parts(split: Any) -> tuple[tuple[int, ...], tuple[int, ...], float]:
    try:
        return (tuple(int(c) for c in split.train_classes),
                tuple(int(c) for c in split.test_classes), float(split.distance))
    except AttributeError as exc:
        raise ValueError("each ladder entry needs train_classes, test_classes and distance "
                         f"(like dml_kit.data.shift.ShiftSplit); got {type(split).__name__}"
                         ) from exc


def zero_shot_evaluator(config: Any = None, *, epochs: int = 3, batches_per_epoch: int = 20,
                        max_test_classes: int = 100, eval_draws: int = 10, seed: int = 0
                        ) -> Callable[[Dataset, Any], dict[str, float]]:
    """A quick ``evaluate(data, split)`` for :class:`ShiftExplorer`: a short training of
    :func:`dml_kit.experiments.shift_study.zero_shot_recall` (``metric`` embedding,
    ``epochs`` source epochs of ``batches_per_epoch`` batches) whose cosine Recall@1 on the
    split's test classes (mean over ``eval_draws`` draws of ``max_test_classes`` of them;
    ooDML's headline metric) comes back as ``{"zero_shot": r1}``."""
    cfg = _config_or_classroom(config).replace(source_epochs=epochs,
                                               batches_per_epoch=batches_per_epoch)

    def evaluate(data: Dataset, split: Any) -> dict[str, float]:
        n_test = len(_split_parts(split)[1])
        scores = zero_shot_recall(data, split, cfg, seed=seed, eval_draws=eval_draws,
                                  max_test_classes=min(max_test_classes, n_test))
        return {"zero_shot": scores["recall@1"]}

    # the name the panel gives this line in its curve (ShiftExplorer reads it)
    evaluate.label = (f"metric, {epochs} epoch{'s' if epochs != 1 else ''} x "  # type: ignore[attr-defined]
                      f"{batches_per_epoch} batches")
    return evaluate


def score_rows(scores: Mapping[str, float], distance: float, *, value: str = "recall@1",
               method: str = "") -> list[dict[str, Any]]:
    """The adapter at this panel's edge: an ``evaluate`` callback's ``{"zero_shot": ..,
    "few_shot": ..}`` (either key optional; ``"k"``: the few-shot shots) -> rows of the
    kit's one shift-results shape (``distance, method, setting, k, value``, as
    :func:`dml_kit.experiments.generalisation_study` returns them)."""
    rows = []
    for key, setting in (("zero_shot", "zero-shot"), ("few_shot", "few-shot")):
        score = scores.get(key, scores.get(setting))
        if score is not None:
            k = 0 if setting == "zero-shot" else int(scores.get("k", 1))
            rows.append({"distance": float(distance), "method": method, "setting": setting,
                         "k": k, value: float(score)})
    if not rows:
        raise ValueError(f"evaluate returned no zero_shot/few_shot score: {dict(scores)}")
    return rows


def split_projection(data: Dataset, train_classes: Sequence[int],
                     test_classes: Sequence[int], *, per_class: int = 4,
                     title: str = "") -> tuple[go.Figure, np.ndarray, torch.Tensor]:
    """The first ``per_class`` examples of each listed class of ``data``, in a 2-D PCA of
    their raw inputs (pixels): one trace per side of the split (train classes: blue
    circles, test classes: orange diamonds), each point's ``customdata`` ``[row, class
    name]`` where ``row`` indexes the returned rows. Hovering names the class and side.

    Returns ``(figure, rows, features)``: the dataset indices of the points and their
    flattened inputs ``(M, D)`` (the features the neighbours are searched in)."""
    per_class = check_int("per_class", per_class, 1, 100)
    labels = data.y.numpy()
    names = data.class_names
    picks: list[np.ndarray] = []
    sides: list[int] = []
    for side, ids in enumerate((train_classes, test_classes)):
        for c in ids:
            found = np.flatnonzero(labels == int(c))[:per_class]
            picks.append(found)
            sides += [side] * len(found)
    rows = np.concatenate(picks) if picks else np.zeros(0, dtype=np.int64)
    if len(rows) < 2:
        raise ValueError("the split's shown classes hold fewer than 2 examples: nothing to "
                         "project")
    features = data.x[torch.as_tensor(rows)].flatten(1).double()
    xy = pca_2d(features.numpy())
    side_of = np.asarray(sides)
    fig = go.Figure()
    for side, (label, color, symbol) in enumerate(_SIDES):
        m = np.flatnonzero(side_of == side)
        custom = np.empty((len(m), 2), dtype=object)
        custom[:, 0] = m
        custom[:, 1] = [names[labels[rows[i]]] for i in m]
        fig.add_trace(go.Scatter(
            x=xy[m, 0], y=xy[m, 1], mode="markers", name=f"{label} classes",
            marker=dict(size=8, color=color, symbol=symbol, line=dict(width=0.5,
                                                                       color="white")),
            customdata=custom,
            hovertemplate=(f"class %{{customdata[1]}} ({label} side)<br>#%{{customdata[0]}}"
                           "<br>click: nearest neighbours<extra></extra>")))
    fig.update_layout(template=F.TEMPLATE, title=title or "the split's classes, PCA of the "
                      "raw inputs", xaxis_title="component 1", yaxis_title="component 2",
                      legend_title_text="side", height=380)
    return fig, rows, features


class ShiftExplorer(_Panel):
    """A slider over a ladder of class splits of growing distribution shift (ooDML).

    Assumes each ladder entry has ``train_classes`` and ``test_classes`` (class ids of
    ``data``) and ``distance`` (the Fréchet distance between the two sides), as
    :class:`dml_kit.data.shift.ShiftSplit` from :func:`dml_kit.data.shift_splits` does.

    Shows, for the selected split: its distance and class counts, sample images of its
    train classes (top row) and test classes (bottom row), and the shift curve
    (``value`` against distance, zero-shot solid, few-shot dashed) with the selected split
    marked. Curve points come from ``results`` (the kit's one shape of shift results, the
    table :func:`dml_kit.experiments.generalisation_study` returns: ``distance``,
    ``setting``, ``k``, ``value``) and from the ``Evaluate`` button, which calls
    ``evaluate(data, split) -> {"zero_shot": .., "few_shot": ..}`` (e.g.
    :func:`zero_shot_evaluator`; :func:`score_rows` turns the scores into rows of that
    shape); without ``evaluate`` the button is disabled.

    Below the samples, ``projection`` shows a few images of each shown class in a 2-D
    PCA of their raw pixels (:func:`split_projection`; train side blue circles, test side
    orange diamonds): hovering a point shows its image and class in ``inspector``,
    clicking it its nearest neighbours under raw pixels (same class marked), so one sees
    which train classes a test class sits among.

    Attributes: ``split`` (slider: index into the ladder), ``evaluate_button``,
    ``samples`` (sample-image figure), ``projection`` and ``inspector``,
    ``projection_rows`` (the dataset indices of the projected points), ``curve`` (shift
    curve), ``results`` (rows so far, in the study's shape).
    """

    def __init__(self, data: Dataset, ladder: Sequence[Any], *, results: Any = None,
                 evaluate: Callable[[Dataset, Any], dict[str, float]] | None = None,
                 value: str = "recall@1", max_classes: int = 12, index: int = 0) -> None:
        super().__init__()
        if not isinstance(data, Dataset):
            raise ValueError(f"data must be a dml_kit.data.Dataset, got {type(data).__name__}")
        if len(ladder) < 1:
            raise ValueError("ladder must hold at least one split")
        self.data, self.ladder = data, list(ladder)
        self._parts = [_split_parts(s) for s in self.ladder]
        for i, (tr, te, _) in enumerate(self._parts):
            bad = [c for c in tr + te if not 0 <= c < data.n_classes]
            if bad:
                raise ValueError(f"ladder[{i}] names classes {bad[:5]} outside 0.."
                                 f"{data.n_classes - 1} of {data.name!r}")
        self.value = value
        self.max_classes = check_int("max_classes", max_classes, 1, 50)
        self._evaluate = evaluate
        self.results: list[dict[str, Any]] = []
        if results is not None:
            F.shift_curve_frame(results, value=value)      # refuse an unreadable table now
            self.results = (results.to_dict("records") if hasattr(results, "to_dict")
                            else [dict(r) for r in results])
        self.split = widgets.IntSlider(value=check_int("index", index, 0, len(ladder) - 1),
                                       min=0, max=len(ladder) - 1, description="split",
                                       continuous_update=False)
        self.evaluate_button = widgets.Button(description="Evaluate this split",
                                              disabled=evaluate is None, icon="play",
                                              layout=widgets.Layout(width="auto"))
        #: the curve's name for this panel's own runs (``evaluate.label`` when it has one)
        self.evaluate_label = str(getattr(evaluate, "label", "this panel's runs"))
        self.samples = _figure_widget(height=240)
        self.projection = _figure_widget(height=380)
        self.inspector = PointInspector(k=5, features_label="raw pixels")
        self.projection_rows = np.zeros(0, dtype=np.int64)
        self.curve = _figure_widget(height=360)
        self.children = [widgets.HBox([self.split, self.evaluate_button]), self.status,
                         self.samples, self.projection, self.inspector, self.curve]
        self.split.observe(self._guard(lambda change: self.refresh()), names="value")
        self.evaluate_button.on_click(self._guard(self._on_evaluate))
        self._guard(self.refresh)()

    @property
    def selected(self) -> Any:
        """The selected ladder entry."""
        return self.ladder[self.split.value]

    def _sample_figure(self) -> go.Figure:
        train_ids, test_ids, fd = self._parts[self.split.value]
        return F.class_samples(self.data, train_ids, test_ids, max_classes=self.max_classes,
                               title=f"split {self.split.value}: FD {fd:.3g} - one image per "
                                     f"class (first {self.max_classes})")

    def _curve_figure(self) -> go.Figure:
        fd = self._parts[self.split.value][2]
        marks: dict[str, Any] = dict(marker=(fd, f"split {self.split.value}"),
                     ticks=[p[2] for p in self._parts])
        fig = (F.accuracy_vs_distance(self.results, value=self.value, **marks) if self.results
               else F.empty_shift_curve(value=self.value, **marks))
        fig.update_layout(height=360)
        return fig

    def refresh(self) -> None:
        """Redraw for the selected split."""
        train_ids, test_ids, fd = self._parts[self.split.value]
        _replace_figure(self.samples, self._sample_figure())
        self._draw_projection()
        _replace_figure(self.curve, self._curve_figure())
        self.status.value = _status(
            f"split {self.split.value} of {len(self.ladder)}: Fréchet distance {fd:.3g}, "
            f"{len(train_ids)} train / {len(test_ids)} test classes")

    def _draw_projection(self) -> None:
        train_ids, test_ids, fd = self._parts[self.split.value]
        fig, rows, features = split_projection(
            self.data, train_ids[:self.max_classes], test_ids[:self.max_classes],
            title=f"split {self.split.value}: the shown classes, PCA of raw pixels<br><sup>"
                  "hover: image · click: nearest neighbours</sup>")
        _replace_figure(self.projection, fig)
        self.projection_rows = rows
        idx = torch.as_tensor(rows)
        self.inspector.set_points(self.data.y[idx], self.data.class_names,
                                  images=self.data.x[idx] if self.data.is_image else None,
                                  features=features)
        self.inspector.attach(self.projection)

    def _on_evaluate(self, button: Any = None) -> None:
        if self._evaluate is None:
            raise ValueError("no evaluate function was given to ShiftExplorer")
        self.status.value = _status(f"evaluating split {self.split.value} ...")
        with _disabled(self.evaluate_button):
            scores = dict(self._evaluate(self.data, self.selected))
        _, _, fd = self._parts[self.split.value]
        label = self.evaluate_label
        self.results = [r for r in self.results
                        if not (r.get("distance") == fd and r.get("method", "") == label)]
        self.results += score_rows(scores, fd, value=self.value, method=label)
        self.refresh()


