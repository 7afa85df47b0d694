"""``PointInspector``: the image of the point under the mouse, and its nearest neighbours.

One component, attached to every 2-D projection of the kit (the live dashboard, the epoch
replay, the prototype explorer, the shift explorer, the SEC comparison)::

    inspector = PointInspector(k=5)
    inspector.set_points(labels, class_names, images=x, features=embeddings)
    inspector.attach(figure_widget)          # any go.FigureWidget of such points
    widgets.VBox([figure_widget, inspector])

**What it reads.** The figure's traces carry each point's row index in ``customdata``
(a number, or a list whose first entry is the index, as
:func:`~dml_kit.viz.figures.projection_scatter` writes ``[index, class name]``). Traces
without ``customdata`` (e.g. prototype stars) are ignored.

**What it shows.** Hovering a point shows its image and class in the image pane;
clicking it also fills the neighbours strip: its ``k`` nearest *other* points under the
current features (leave-one-out, cosine by default: the retrieval of Recall@K,
:func:`~dml_kit.viz.gallery.nearest_neighbours`), nearest first, each with its class,
framed green and marked "same class" when it shares the clicked point's class, red and
"other class" when not (colour and words, for colour-blind readers). When the features
change (a new training frame) the strip of the clicked point is recomputed.

**How.** Plotly's ``FigureWidget`` sends clicks and hovers to the kernel through the
widget's comm (its ``on_click`` / ``on_hover`` trace callbacks), so this works wherever
the figure is live: JupyterLab, Notebook 7, Voila. The panes are ``ipywidgets.HTML``
holding small PNG data URIs, encoded once per point and cached, so hovering costs one
string assignment and never touches the figure (the live view is not slowed).

:func:`click` and :func:`hover` deliver a click or hover on a figure's point through the
same message path as the browser's: the tests and the notebooks' check cells use them.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go

from dml_kit._validation import check_choice, check_int
from dml_kit.losses.distances import DISTANCES
from dml_kit.viz.figures import _as_images, _png_uri, as_numpy
from dml_kit.viz.gallery import CORRECT_COLOR, WRONG_COLOR, nearest_neighbours

__all__ = ["PointInspector", "click", "hover", "point_index"]

_HINT = "hover a point to see its image and class; click it for its nearest neighbours"


def _send_points(figure: go.FigureWidget, event_type: str, trace: int, point: int) -> None:
    t = figure.data[check_int("trace", trace, 0, len(figure.data) - 1,
                              hint=f"the figure has {len(figure.data)} traces")]
    xs = list(t.x) if t.x is not None else []
    ys = list(t.y) if t.y is not None else []
    point = check_int("point", point, 0, max(len(xs) - 1, 0),
                      hint=f"trace {trace} has {len(xs)} points")
    figure._js2py_pointsCallback = {
        "event_type": event_type,
        "points": {"trace_indexes": [trace], "point_indexes": [point],
                   "xs": [xs[point]], "ys": [ys[point]]}}


def click(figure: go.FigureWidget, trace: int, point: int) -> None:
    """Click point ``point`` of trace ``trace`` of ``figure`` as the browser would: the
    message goes through the widget's ``_js2py_pointsCallback`` trait, so every
    ``on_click`` handler of the figure runs exactly as it does for a reader's click."""
    _send_points(figure, "plotly_click", trace, point)


def hover(figure: go.FigureWidget, trace: int, point: int) -> None:
    """Hover point ``point`` of trace ``trace`` of ``figure`` as the browser would (the
    ``on_hover`` handlers run; see :func:`click`)."""
    _send_points(figure, "plotly_hover", trace, point)


def point_index(trace: Any, point: int) -> int | None:
    """The row index a trace's point stands for: its ``customdata`` (a number, or a
    sequence whose first entry is the index), or ``None`` when the trace carries none."""
    custom = trace.customdata
    if custom is None or point >= len(custom):
        return None
    entry = custom[point]
    if isinstance(entry, (list, tuple, np.ndarray)):
        if len(entry) == 0:
            return None
        entry = entry[0]
    try:
        return int(entry)
    except (TypeError, ValueError):
        return None


class PointInspector(widgets.VBox):
    """An image pane and a neighbours strip that follow the mouse on projection figures.

    Args:
        k: neighbours shown on a click (capped by the number of other points).
        distance: ``cosine`` (default), ``euclidean`` or ``sqeuclidean``.
        invert: draw ``1 - image`` (white strokes on black become black on white).
        image_px: the displayed size of the hovered image (pixels).
        neighbour_px: the displayed size of each neighbour.
        features_label: what the features are, for the strip's title ("the embedding").

    Attributes (what it shows now, for tests and check cells): ``image_pane`` and
    ``neighbours_pane`` (``ipywidgets.HTML``), ``index`` (the shown point or ``None``),
    ``class_name``, ``selected`` (the clicked point or ``None``), ``neighbours`` (its
    neighbours' indices, nearest first), ``correct`` (whether each shares its class),
    ``events`` (how many hovers and clicks were handled).
    """

    def __init__(self, *, k: int = 5, distance: str = "cosine", invert: bool = False,
                 image_px: int = 96, neighbour_px: int = 56,
                 features_label: str = "the embedding") -> None:
        self.k = check_int("k", k, 1, 50)
        self.distance = check_choice("distance", distance, DISTANCES)
        self.invert = bool(invert)
        self.image_px = check_int("image_px", image_px, 16, 400)
        self.neighbour_px = check_int("neighbour_px", neighbour_px, 16, 400)
        self.features_label = str(features_label)
        self.image_pane = widgets.HTML(value=self._hint_html())
        self.neighbours_pane = widgets.HTML(value="")
        self._labels = np.zeros(0, dtype=np.int64)
        self._names: list[str] = []
        self._images: np.ndarray | None = None
        self._images_source: Any = None
        self._features: Any = None
        self._uris: dict[int, str] = {}
        self._bound: set[tuple[int, str]] = set()
        self.index: int | None = None
        self.class_name: str | None = None
        self.selected: int | None = None
        self.neighbours: list[int] = []
        self.correct: list[bool] = []
        self.events = 0
        super().__init__(children=[self.image_pane, self.neighbours_pane])

    # ---- data --------------------------------------------------------------------------
    def set_points(self, labels: Any, class_names: Sequence[str] | None = None, *,
                   images: Any = None, features: Any = None) -> None:
        """The points the attached figures show: ``labels`` ``(N,)`` class ids (row ``i``
        is the point whose ``customdata`` index is ``i``), their ``class_names``, their
        ``images`` (``(N, C, H, W)`` or ``(N, H, W)`` in [0, 1]; ``None`` or non-image
        inputs: the panes show the class only) and ``features`` ``(N, D)`` for the
        neighbours (``None``: no neighbours until :meth:`set_features`).

        The same ``images`` object keeps its cached thumbnails; a new set clears the
        panes."""
        lab = as_numpy(labels, np.int64).reshape(-1)
        n = lab.shape[0]
        names = [str(c) for c in class_names] if class_names is not None else []
        if lab.size and len(names) <= int(lab.max()):
            names = names + [str(c) for c in range(len(names), int(lab.max()) + 1)]
        same_images = images is not None and images is self._images_source
        if not same_images:
            self._uris = {}
            self._images_source = images
            self._images = self._to_images(images, n)
        changed = (n != self._labels.shape[0] or not np.array_equal(lab, self._labels)
                   or not same_images)
        self._labels, self._names = lab, names
        self._features = None
        if changed:
            self.clear()
        if features is not None:
            self.set_features(features)

    @staticmethod
    def _to_images(images: Any, n: int) -> np.ndarray | None:
        if images is None:
            return None
        shape = tuple(getattr(images, "shape", ()))
        if len(shape) not in (3, 4) or (len(shape) == 4 and shape[1] not in (1, 3)):
            return None  # not images (e.g. feature vectors): show the class only
        if shape[0] != n:
            raise ValueError(f"images must hold one image per point ({n}), got {shape[0]}")
        return _as_images(images)

    def set_features(self, features: Any) -> None:
        """The current features ``(N, D)`` (e.g. this frame's embeddings). Keeps a
        reference; when a point is clicked, its neighbours are recomputed under them."""
        if features is not None:
            shape = tuple(getattr(features, "shape", np.shape(features)))
            if len(shape) != 2 or shape[0] != self._labels.shape[0]:
                raise ValueError(f"features must be (N, D) with N={self._labels.shape[0]} "
                                 f"(one row per point), got shape {shape}")
        self._features = features
        if self.selected is not None and features is not None:
            self._show_neighbours(self.selected)

    def clear(self) -> None:
        """Empty both panes (nothing hovered or clicked)."""
        self.index = self.class_name = self.selected = None
        self.neighbours, self.correct = [], []
        self.image_pane.value = self._hint_html()
        self.neighbours_pane.value = ""

    @property
    def n_points(self) -> int:
        """How many points the inspector knows."""
        return int(self._labels.shape[0])

    # ---- figures -----------------------------------------------------------------------
    def attach(self, figure: go.FigureWidget) -> PointInspector:
        """Follow hovers and clicks on every trace of ``figure`` (call again after its
        traces were replaced: traces already followed are skipped)."""
        if not isinstance(figure, go.FigureWidget):
            raise ValueError(f"figure must be a plotly go.FigureWidget (clicks reach the "
                             f"kernel only from a widget), got {type(figure).__name__}")
        for trace in figure.data:
            key = (id(figure), str(trace.uid))
            if key in self._bound:
                continue
            trace.on_hover(self._on_hover, append=True)
            trace.on_click(self._on_click, append=True)
            self._bound.add(key)
        return self

    def _point(self, trace: Any, points: Any) -> int | None:
        inds = getattr(points, "point_inds", None)
        if not inds:
            return None
        i = point_index(trace, inds[0])
        return i if i is not None and 0 <= i < self.n_points else None

    def _on_hover(self, trace: Any, points: Any, state: Any) -> None:
        i = self._point(trace, points)
        if i is not None:
            self.events += 1
            self.show(i)

    def _on_click(self, trace: Any, points: Any, state: Any) -> None:
        i = self._point(trace, points)
        if i is not None:
            self.events += 1
            self.show(i, neighbours=True)

    # ---- drawing -----------------------------------------------------------------------
    def _uri(self, i: int) -> str | None:
        if self._images is None:
            return None
        uri = self._uris.get(i)
        if uri is None:
            img = self._images[i]
            if self.invert:
                img = 1 - img
            uri = self._uris[i] = _png_uri((img * 255).round().astype(np.uint8))
        return uri

    def _name(self, i: int) -> str:
        return self._names[int(self._labels[i])]

    def _img_tag(self, i: int, px: int, color: str) -> str:
        uri = self._uri(i)
        if uri is None:
            return (f"<div style='width:{px}px;height:{px}px;border:3px solid {color};"
                    "display:flex;align-items:center;justify-content:center;"
                    "font-size:11px;color:#666'>no image</div>")
        return (f"<img src='{uri}' width='{px}' height='{px}' alt='#{i}' "
                f"style='image-rendering:pixelated;border:3px solid {color};"
                "background:#fff'>")

    def _hint_html(self) -> str:
        return (f"<div class='dml-inspector-hint' style='font-size:12px;color:#555'>"
                f"{_HINT}</div>")

    def show(self, index: int, *, neighbours: bool = False) -> None:
        """Show point ``index``'s image and class; with ``neighbours`` also select it and
        fill the neighbours strip (what a click does; a hover shows the image only)."""
        if self.n_points == 0:
            raise ValueError("the inspector holds no points: call set_points first")
        index = check_int("index", index, 0, self.n_points - 1,
                          hint=f"the inspector holds {self.n_points} points")
        self.index, self.class_name = index, self._name(index)
        what = "clicked" if neighbours else "hovered"
        self.image_pane.value = (
            f"<div class='dml-inspector-point' data-index='{index}' "
            "style='display:flex;align-items:center;gap:10px;font-size:13px'>"
            f"{self._img_tag(index, self.image_px, '#888')}"
            f"<div>{what} point #{index}<br>class <b class='dml-inspector-class'>"
            f"{html.escape(self.class_name)}</b></div></div>")
        if neighbours:
            self.selected = index
            self._show_neighbours(index)

    def _show_neighbours(self, index: int) -> None:
        n = self.n_points
        if self._features is None or n < 2:
            self.neighbours, self.correct = [], []
            self.neighbours_pane.value = ("<div style='font-size:12px;color:#555'>no "
                                          "features yet: neighbours appear once the points "
                                          "are embedded</div>")
            return
        k = min(self.k, n - 1)
        idx, _ = nearest_neighbours(self._features, index, k, distance=self.distance)
        mine = int(self._labels[index])
        self.neighbours = idx
        self.correct = [int(self._labels[j]) == mine for j in idx]
        cells = []
        for rank, (j, ok) in enumerate(zip(idx, self.correct, strict=True), start=1):
            color = CORRECT_COLOR if ok else WRONG_COLOR
            mark = "✓ same class" if ok else "✗ other class"
            cells.append(
                f"<div class='dml-inspector-neighbour' data-index='{j}' "
                f"data-correct='{int(ok)}' style='text-align:center;font-size:11px;"
                f"line-height:1.25;width:{max(self.neighbour_px + 16, 84)}px'>"
                f"{self._img_tag(j, self.neighbour_px, color)}"
                f"<div>{rank}. #{j} · {html.escape(self._name(j))}</div>"
                f"<div style='color:{color}'>{mark}</div></div>")
        same = sum(self.correct)
        self.neighbours_pane.value = (
            f"<div class='dml-inspector-strip' data-index='{index}' style='font-size:12px'>"
            f"<div>{k} nearest neighbours of #{index} (class "
            f"{html.escape(self._name(index))}) under {html.escape(self.features_label)} "
            f"({self.distance}): {same} of {k} same class</div>"
            "<div style='display:flex;flex-wrap:wrap;gap:6px;margin-top:4px'>"
            + "".join(cells) + "</div></div>")
