"""Figures of the sketchpad (:class:`dml_kit.widgets.Sketchpad`): what a drawing looks like
to the model, which support images it is nearest to, how the task's classes share it, and
where it lands among the support set.

* :func:`sketch_neighbours`: the drawing as the model sees it (resampled to the dataset's
  image size) followed by its nearest support images, each framed in its class colour;
  with no drawing, one support image per class ("draw one of these");
* :func:`class_probability_bars`: one horizontal bar per class of the task, the
  prototypical network's ``p(y = j | drawing)``, the most probable class outlined;
* :func:`sketch_projection`: a 2-D projection of the support set (one trace per class),
  its prototypes (stars) and the drawing (a large black-ringed marker).

Every builder keeps its trace list fixed whatever the values (an empty drawing gives empty
traces, not fewer), so a panel's ``FigureWidget`` is updated in place. Class colours are
:func:`~dml_kit.viz.figures.class_color` ``(j, n)`` in all three figures. ``layout.meta``
holds the numbers a test or a check cell reads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from dml_kit._validation import check_int
from dml_kit.viz.figures import (
    _as_images,
    _new_figure,
    _png_uri,
    as_numpy,
    class_color,
    gallery_mosaic,
    projection_scatter,
)
from dml_kit.viz.gallery import QUERY_COLOR

__all__ = ["sketch_neighbours", "class_probability_bars", "sketch_projection",
           "DRAWING_COLOR"]

#: the drawing's colour in the projection (its frame in the gallery is the query blue)
DRAWING_COLOR = "#000000"


def _hex_rgb(color: str) -> np.ndarray:
    c = color.lstrip("#")
    return np.array([int(c[i:i + 2], 16) / 255 for i in (0, 2, 4)], dtype=np.float32)


def _in_frame(img: np.ndarray, color: str, border: int) -> np.ndarray:
    """``img`` (``(H, W, 3)`` float in [0, 1]) inside a ``border``-pixel frame of
    ``color``."""
    h, w = img.shape[:2]
    out = np.empty((h + 2 * border, w + 2 * border, 3), dtype=np.float32)
    out[:] = _hex_rgb(color)
    out[border:border + h, border:border + w] = img
    return out


def _names(class_names: Sequence[str] | None, n: int) -> list[str]:
    names = [str(c) for c in class_names] if class_names is not None else \
        [str(c) for c in range(n)]
    if len(names) < n:
        raise ValueError(f"class_names has {len(names)} entries but the labels need {n}")
    return names


def sketch_neighbours(drawing: Any, images: Any, labels: Any, indices: Sequence[int],
                      class_names: Sequence[str] | None = None, *,
                      scores: Sequence[float] | None = None, invert: bool = False,
                      title: str | None = None, cell_px: int = 64) -> go.Figure:
    """The drawing as the model sees it, then the support images ``indices`` (its nearest
    neighbours, nearest first), each framed in the colour of its class.

    Args:
        drawing: the resampled drawing ``(H, W)`` or ``(1, H, W)`` in [0, 1], or ``None``
            (nothing drawn yet: only the support images are shown, e.g. one per class).
        images: the support images ``(N, C, H, W)`` or ``(N, H, W)`` in [0, 1].
        labels: ``(N,)`` class ids ``0 .. n-1`` of the task.
        indices: which support images to show, in order.
        class_names: names of the class ids.
        scores: the neighbours' similarity scores (higher = closer), shown on hover.
        invert: draw ``1 - image`` (bright strokes on black become dark on white).

    ``layout.meta`` holds ``indices``, ``classes`` (class id per shown image) and
    ``drawn`` (whether a drawing is shown); the second trace's ``customdata`` is
    ``[role, rank, support index, class name]`` per cell (role ``"drawing"`` or
    ``"support"``, rank 0 for the drawing).
    """
    imgs = _as_images(images)
    lab = as_numpy(labels, np.int64)
    n = imgs.shape[0]
    if lab.shape != (n,):
        raise ValueError(f"labels must be (N,) with N={n} (one per image), got {lab.shape}")
    idx = [check_int("indices[]", i, 0, n - 1, hint=f"an index into the {n} support images")
           for i in indices]
    n_classes = int(lab.max()) + 1 if n else 0
    names = _names(class_names, n_classes)
    cell_px = check_int("cell_px", cell_px, 8, 400)
    if scores is not None and len(scores) != len(idx):
        raise ValueError(f"scores must have one value per index ({len(idx)}), got "
                         f"{len(scores)}")
    if invert:
        imgs = 1 - imgs
    h, w = imgs.shape[1:3]
    border = max(1, round(h / 12))
    row: list[np.ndarray | None] = []
    cells: list[tuple[list[Any], str]] = []
    drawn = drawing is not None
    if drawn:
        d = _as_images(as_numpy(drawing, np.float32).reshape(1, h, w))[0]
        row.append(_in_frame(1 - d if invert else d, QUERY_COLOR, border))
        cells.append((["drawing", 0, -1, ""], "your drawing, as the model sees it"))
    for rank, i in enumerate(idx, start=1):
        row.append(_in_frame(imgs[i], class_color(int(lab[i]), n_classes), border))
        score = f" · score {scores[rank - 1]:.3g}" if scores is not None else ""
        what = f"neighbour {rank}: " if drawn else ""
        cells.append((["support", rank, i, names[lab[i]]],
                      f"{what}support #{i} · class {names[lab[i]]}{score}"))
    fig = _new_figure(False)
    gap, bgap = 3, 16
    if row:
        mosaic = gallery_mosaic([row], gap=gap, block_gaps=[1] if drawn else [],
                                block_gap=bgap)
        fig.add_trace(go.Image(source=_png_uri(mosaic), hoverinfo="skip", name="gallery"))
    else:
        fig.add_trace(go.Image(z=np.full((1, 1, 3), 255, dtype=np.uint8), hoverinfo="skip",
                               name="gallery"))
    fw = w + 2 * border
    xs: list[float] = []
    x = 0.0
    for c in range(len(row)):
        if drawn and c == 1:
            x += bgap - gap
        xs.append(x + fw / 2)
        x += fw + gap
    fig.add_trace(go.Scatter(
        x=xs, y=[(h + 2 * border) / 2] * len(xs), mode="markers",
        marker=dict(size=max(fw, 8), opacity=0, symbol="square"),
        customdata=[c[0] for c in cells], hovertext=[c[1] for c in cells],
        hoverinfo="text", showlegend=False, name="cells"))
    ticks = (["drawing"] if drawn else []) + [
        f"{r}: {names[lab[i]][:10]}" if drawn else names[lab[i]][:10]
        for r, i in enumerate(idx, start=1)]
    fig.update_xaxes(tickvals=xs, ticktext=ticks, showgrid=False, showline=False, ticks="",
                     zeroline=False, side="bottom")
    fig.update_yaxes(visible=False)
    scale = cell_px / fw
    width = int((x - gap) * scale) + 60 if row else 300
    fig.update_layout(
        title=title or ("your drawing (as the model sees it) and its nearest support images"
                        if drawn else "the task's classes: draw one of these"),
        height=int((h + 2 * border) * scale) + 110, width=min(1100, max(360, width)),
        margin=dict(l=20, r=20, t=60, b=40),
        meta={"indices": idx, "classes": [int(lab[i]) for i in idx], "drawn": drawn})
    return fig


def class_probability_bars(probabilities: Any, class_names: Sequence[str], *,
                           title: str | None = None, height: int = 320,
                           width: int | None = 430) -> go.Figure:
    """One horizontal bar per class of the task: ``p(y = j | x)`` in percent, in the class
    colours, the most probable class outlined in black. ``probabilities`` is ``(n,)``
    (finite, each in [0, 1], summing to 1) or ``None`` (nothing drawn: empty bars).

    ``layout.meta`` holds ``probabilities`` (a list, or ``None``) and ``predicted`` (the
    most probable class id, or ``None``)."""
    names = [str(c) for c in class_names]
    n = len(names)
    if n < 1:
        raise ValueError("class_names must name at least one class")
    if probabilities is None:
        p = np.zeros(n)
        predicted = None
    else:
        p = as_numpy(probabilities)
        if p.shape != (n,):
            raise ValueError(f"probabilities must be (n,) with n={n} (one per class), got "
                             f"{p.shape}")
        if not np.isfinite(p).all() or (p < 0).any() or (p > 1 + 1e-9).any():
            raise ValueError("probabilities must be finite values in [0, 1]")
        if abs(float(p.sum()) - 1.0) > 1e-6:
            raise ValueError(f"probabilities must sum to 1, got {float(p.sum()):.6g}")
        predicted = int(np.argmax(p))
    colors = [class_color(j, n) for j in range(n)]
    outline = [3 if j == predicted else 0 for j in range(n)]
    fig = _new_figure(False)
    fig.add_trace(go.Bar(
        x=p * 100, y=names, orientation="h", marker=dict(
            color=colors, line=dict(color="#000000", width=outline)),
        text=[f"{v * 100:.0f}%" if probabilities is not None else "" for v in p],
        textposition="outside", cliponaxis=False, customdata=list(range(n)),
        hovertemplate="%{y}: %{x:.1f}%<extra></extra>", name="p(class | drawing)"))
    if title is None:
        title = ("p(class | drawing) = softmax<sub>j</sub>(−‖f(x) − c<sub>j</sub>‖²)"
                 if predicted is not None else "draw to see the class probabilities")
    fig.update_layout(title=title, height=height, width=width, xaxis=dict(range=[0, 115],
                                                             title="probability (%)"),
                      yaxis=dict(autorange="reversed"), margin=dict(l=110, r=20, t=60, b=45),
                      showlegend=False,
                      meta={"probabilities": None if probabilities is None else p.tolist(),
                            "predicted": predicted})
    return fig


def sketch_projection(points: Any, labels: Any, class_names: Sequence[str], *,
                      prototypes: Any = None, drawing: Any = None,
                      title: str | None = None, subtitle: str | None = None,
                      height: int = 360, width: int | None = 460) -> go.Figure:
    """The support set in 2-D (one trace per class, as
    :func:`~dml_kit.viz.figures.projection_scatter`), then a trace of the prototypes
    (stars, ``(n, 2)`` or ``None``) and a trace of the drawing (``(2,)`` or ``None``: empty).

    ``layout.meta`` holds ``drawing`` (its point or ``None``) and ``n_support``."""
    pts = as_numpy(points)
    lab = as_numpy(labels, np.int64)
    names = [str(c) for c in class_names]
    n = len(names)
    if pts.ndim != 2 or pts.shape[1] != 2 or lab.shape != (pts.shape[0],):
        raise ValueError(f"points must be (N, 2) and labels (N,), got {pts.shape} and "
                         f"{lab.shape}")
    if lab.size and int(lab.max()) >= n:
        raise ValueError(f"class_names has {n} entries but labels reach {int(lab.max())}")
    fig = projection_scatter(pts, lab, names, marker_size=9, title=title or
                             "where your drawing lands",
                             subtitle=subtitle)
    # projection_scatter makes one trace per class present up to the largest label
    while len(fig.data) < n:
        fig.add_trace(go.Scatter(x=[], y=[], mode="markers", name=names[len(fig.data)]))
    proto = np.empty((0, 2)) if prototypes is None else as_numpy(prototypes)
    if proto.ndim != 2 or proto.shape[1] != 2 or proto.shape[0] not in (0, n):
        raise ValueError(f"prototypes must be (n, 2) with n={n}, got {proto.shape}")
    fig.add_trace(go.Scatter(
        x=proto[:, 0], y=proto[:, 1], mode="markers", name="prototypes",
        marker=dict(symbol="star", size=16, color=[class_color(j, n) for j in
                                                   range(proto.shape[0])],
                    line=dict(width=1, color="#000000")),
        customdata=names[:proto.shape[0]],
        hovertemplate="prototype of %{customdata}<extra></extra>"))
    point = None if drawing is None else as_numpy(drawing).reshape(-1)
    if point is not None and (point.shape != (2,) or not np.isfinite(point).all()):
        raise ValueError(f"drawing must be a finite (2,) point, got {point}")
    fig.add_trace(go.Scatter(
        x=[] if point is None else [float(point[0])],
        y=[] if point is None else [float(point[1])], mode="markers", name="your drawing",
        marker=dict(symbol="circle", size=20, color="rgba(255,255,255,0.6)",
                    line=dict(width=4, color=DRAWING_COLOR)),
        hovertemplate="your drawing<extra></extra>"))
    fig.update_layout(height=height, width=width, margin=dict(l=50, r=20, t=70, b=45),
                      meta={"drawing": None if point is None else point.tolist(),
                            "n_support": int(pts.shape[0])})
    return fig
