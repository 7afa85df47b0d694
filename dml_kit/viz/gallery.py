"""Figures that show the embedding's decisions as images: what it retrieves and what it
confuses.

* :func:`nearest_neighbours`: the ``k`` nearest *other* rows of a set to one query row
  (leave-one-out retrieval, as :func:`dml_kit.metrics.recall_at_k` counts it);
* :func:`retrieval_gallery`: a query image and its top-k neighbours under several
  representations (raw pixels, an embedding), one row each, correct neighbours framed
  green and wrong ones red, with the query's Recall@1 and precision@k per row;
* :func:`confusion_counts`, :func:`confused_pairs`: the confusion matrix of one task's
  predictions and its most frequent off-diagonal (true, predicted) pairs;
* :func:`confusion_heatmap`: that matrix as a heatmap (off-diagonal cells coloured by the
  share of a class's queries given to another class);
* :func:`confused_pairs_gallery`: one row per confused pair: the mistaken queries, then
  support images of their true class and of the class they were taken for.

Images are ``(N, C, H, W)`` or ``(N, H, W)`` in ``[0, 1]``; every gallery is one
``go.Image`` trace (a PNG of the mosaic, :func:`~dml_kit.viz.figures.decode_image` reads
it back) plus an invisible ``go.Scatter`` trace with one point per image whose
``customdata`` says what the image is (widgets bind clicks to it). ``layout.meta`` holds
the numbers a test or a check cell reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch

from dml_kit._validation import check_choice, check_int
from dml_kit.losses.distances import DISTANCES, pairwise_scores
from dml_kit.viz.figures import _as_images, _new_figure, _png_uri, as_numpy, gallery_mosaic

__all__ = ["nearest_neighbours", "retrieval_gallery", "confusion_counts", "confused_pairs",
           "confusion_heatmap", "confused_pairs_gallery", "CORRECT_COLOR", "WRONG_COLOR",
           "QUERY_COLOR"]

#: frame colours (Okabe-Ito bluish green / vermillion / blue: distinguishable for the
#: common colour-vision deficiencies; the hover text and ``layout.meta`` say it in words)
CORRECT_COLOR = "#009E73"
WRONG_COLOR = "#D55E00"
QUERY_COLOR = "#0072B2"


def _rgb(color: str) -> np.ndarray:
    c = color.lstrip("#")
    return np.array([int(c[i:i + 2], 16) / 255 for i in (0, 2, 4)], dtype=np.float32)


def _framed(img: np.ndarray, color: str | None, border: int) -> np.ndarray:
    """``img`` (``(H, W, 3)`` float) inside a ``border``-pixel frame of ``color``
    (``None``: white)."""
    h, w = img.shape[:2]
    out = np.empty((h + 2 * border, w + 2 * border, 3), dtype=np.float32)
    out[:] = 1.0 if color is None else _rgb(color)
    out[border:border + h, border:border + w] = img
    return out


def _features(name: str, features: Any) -> torch.Tensor:
    if isinstance(features, np.ndarray):
        features = torch.from_numpy(features)
    if not isinstance(features, torch.Tensor):
        raise ValueError(f"{name} must be a tensor or array of shape (N, D), got "
                         f"{type(features).__name__}")
    if features.ndim < 2:
        raise ValueError(f"{name} must have shape (N, D), got {tuple(features.shape)}")
    f = features.flatten(1).double()
    if not torch.isfinite(f).all():
        raise ValueError(f"{name} holds non-finite values (NaN or inf)")
    return f


def nearest_neighbours(features: Any, query: int, k: int, *,
                       distance: str = "cosine") -> tuple[list[int], list[float]]:
    """The ``k`` rows of ``features`` nearest to row ``query``, itself excluded (the
    leave-one-out retrieval of Recall@K), nearest first, and their scores (higher =
    closer: :func:`dml_kit.losses.distances.pairwise_scores`). Ties go to the lower
    index.

    Raises ``ValueError`` naming ``query`` (not a row index) or ``k`` (more neighbours
    than the other rows)."""
    f = _features("features", features)
    n = f.shape[0]
    query = check_int("query", query, 0, n - 1, hint=f"an index into the {n} rows")
    k = check_int("k", k, 1, n - 1, hint=f"the gallery holds {n - 1} other rows")
    check_choice("distance", distance, DISTANCES)
    scores = pairwise_scores(f[query:query + 1], f, distance=distance)[0]
    scores[query] = -float("inf")
    # stable ordering: sort by score descending, ties by index ascending
    order = np.lexsort((np.arange(n), -scores.numpy()))[:k]
    return [int(i) for i in order], [float(scores[i]) for i in order]


def _hover_points(cells: list[tuple[float, float, list[Any], str]], size: float) -> go.Scatter:
    return go.Scatter(x=[c[0] for c in cells], y=[c[1] for c in cells], mode="markers",
                      marker=dict(size=size, opacity=0, symbol="square"),
                      customdata=[c[2] for c in cells], hovertext=[c[3] for c in cells],
                      hoverinfo="text", showlegend=False, name="cells")


def _image_axes(fig: go.Figure, xticks: tuple[list[float], list[str]],
                yticks: tuple[list[float], list[str]]) -> None:
    fig.update_xaxes(tickvals=xticks[0], ticktext=xticks[1], showgrid=False, showline=False,
                     ticks="", side="top", zeroline=False)
    fig.update_yaxes(tickvals=yticks[0], ticktext=yticks[1], showgrid=False, showline=False,
                     ticks="", zeroline=False)


# ---------------------------------------------------------------------------------------
# retrieval gallery
# ---------------------------------------------------------------------------------------
def retrieval_gallery(images: Any, labels: Any, query: int, features: Mapping[str, Any], *,
                      k: int = 5, distance: str = "cosine",
                      class_names: Sequence[str] | None = None, invert: bool = False,
                      title: str | None = None, cell_px: int = 56) -> go.Figure:
    """A query image and its ``k`` nearest neighbours in the set under each representation
    of ``features`` (e.g. ``{"raw pixels": x.flatten(1), "embedding": embed(model, x)}``),
    one row per representation: the query (blue frame), a gap, then the neighbours,
    nearest first, framed green when they share the query's class and red when not.

    Each row's label gives the query's **Recall@1** (1 when its nearest neighbour has its
    class, else 0: averaged over all queries this is :func:`dml_kit.metrics.recall_at_k`)
    and **precision@k** (the share of the ``k`` neighbours of its class).

    Args:
        images: ``(N, C, H, W)`` or ``(N, H, W)`` in [0, 1], the images of the set.
        labels: ``(N,)`` class ids.
        query: the index of the query image.
        features: ``{row name: (N, D) features}``, in row order.
        k: neighbours shown per row, ``1 .. N - 1``.
        distance: ``cosine`` (default), ``euclidean`` or ``sqeuclidean``.
        class_names: names of the class ids (default: the ids).
        invert: draw ``1 - image`` (white strokes on black become black on white).

    ``layout.meta`` holds ``query``, ``query_class``, ``k`` and per row (``rows``) its
    ``name``, ``indices``, ``correct``, ``recall_at_1`` and ``precision_at_k``; the second
    trace's ``customdata`` is ``[row name, rank (0 = the query), index, class name,
    correct]`` per image.
    """
    imgs = _as_images(images)
    lab = as_numpy(labels, np.int64)
    n = imgs.shape[0]
    if lab.shape != (n,):
        raise ValueError(f"labels must be (N,) with N={n} (one per image), got {lab.shape}")
    if not features:
        raise ValueError("features must name at least one representation")
    query = check_int("query", query, 0, n - 1, hint=f"an index into the {n} images")
    k = check_int("k", k, 1, n - 1, hint=f"the gallery holds {n - 1} other images")
    cell_px = check_int("cell_px", cell_px, 8, 400)
    names = [str(c) for c in class_names] if class_names is not None else \
        [str(c) for c in range(int(lab.max()) + 1)]
    if len(names) <= int(lab.max()):
        raise ValueError(f"class_names has {len(names)} entries but labels reach {lab.max()}")
    if invert:
        imgs = 1 - imgs
    border = max(1, round(imgs.shape[1] / 12))
    rows: list[list[np.ndarray | None]] = []
    meta_rows: list[dict[str, Any]] = []
    for row_name, feats in features.items():
        f = _features(f"features[{row_name!r}]", feats)
        if f.shape[0] != n:
            raise ValueError(f"features[{row_name!r}] has {f.shape[0]} rows, images {n}")
        idx, scores = nearest_neighbours(f, query, k, distance=distance)
        correct = [bool(lab[i] == lab[query]) for i in idx]
        images_row: list[np.ndarray | None] = [_framed(imgs[query], QUERY_COLOR, border)]
        images_row += [_framed(imgs[i], CORRECT_COLOR if ok else WRONG_COLOR, border)
                       for i, ok in zip(idx, correct, strict=True)]
        rows.append(images_row)
        meta_rows.append({"name": str(row_name), "indices": idx, "scores": scores,
                          "correct": correct, "recall_at_1": float(correct[0]),
                          "precision_at_k": sum(correct) / k})
    gap, bgap = 3, 14
    mosaic = gallery_mosaic(rows, gap=gap, block_gaps=[1], block_gap=bgap)
    h, w = rows[0][0].shape[:2]  # type: ignore[union-attr]
    col_x = [0.0] + [w + bgap + j * (w + gap) for j in range(k)]
    cells: list[tuple[float, float, list[Any], str]] = []
    for r, row in enumerate(meta_rows):
        yc = r * (h + gap) + h / 2
        cells.append((w / 2, yc, [row["name"], 0, query, names[lab[query]], True],
                      f"query #{query} · class {names[lab[query]]}"))
        for j, (i, ok) in enumerate(zip(row["indices"], row["correct"], strict=True)):
            cells.append((col_x[j + 1] + w / 2, yc, [row["name"], j + 1, i, names[lab[i]], ok],
                          f"{row['name']} · neighbour {j + 1}: #{i} · class {names[lab[i]]}"
                          f" · {'same class' if ok else 'another class'}"))
    fig = _new_figure(False)
    fig.add_trace(go.Image(source=_png_uri(mosaic), hoverinfo="skip", name="gallery"))
    fig.add_trace(_hover_points(cells, max(w, 8)))
    ylabels = [f"<b>{m['name']}</b><br>R@1 {m['recall_at_1']:.0f} · P@{k} "
               f"{m['precision_at_k']:.2f}" for m in meta_rows]
    _image_axes(fig, ([w / 2] + [col_x[j + 1] + w / 2 for j in range(k)],
                      ["query"] + [str(j + 1) for j in range(k)]),
                ([r * (h + gap) + h / 2 for r in range(len(rows))], ylabels))
    scale = cell_px / w
    fig.update_layout(
        title=title or (f"query #{query} (class {names[lab[query]]}): its {k} nearest "
                        f"neighbours<br><sup>green frame: same class as the query; red: "
                        f"another class</sup>"),
        height=int(mosaic.shape[0] * scale) + 130,
        width=min(1200, int(mosaic.shape[1] * scale) + 190),
        margin=dict(l=170, r=20, t=100, b=10),
        meta={"query": query, "query_class": names[lab[query]], "k": k,
              "distance": distance, "rows": meta_rows})
    return fig


# ---------------------------------------------------------------------------------------
# confusions
# ---------------------------------------------------------------------------------------
def confusion_counts(true: Any, predicted: Any, n_classes: int | None = None) -> np.ndarray:
    """The ``(C, C)`` confusion matrix: ``m[a, b]`` counts the queries of class ``a``
    predicted as ``b`` (rows: true class, columns: predicted class)."""
    t, p = as_numpy(true, np.int64), as_numpy(predicted, np.int64)
    if t.shape != p.shape or t.ndim != 1:
        raise ValueError(f"true and predicted must be (N,) of the same length, got "
                         f"{t.shape} and {p.shape}")
    top = int(max(t.max(initial=-1), p.max(initial=-1))) + 1
    c = top if n_classes is None else check_int("n_classes", n_classes, max(top, 1))
    if t.size and min(t.min(), p.min()) < 0:
        raise ValueError("true and predicted must be class ids >= 0")
    m = np.zeros((c, c), dtype=np.int64)
    np.add.at(m, (t, p), 1)
    return m


def confused_pairs(matrix: Any, *, top: int | None = None) -> list[tuple[int, int, int]]:
    """The off-diagonal cells of a confusion matrix with a count above 0, as ``(true,
    predicted, count)``, most frequent first (ties: by true, then predicted class);
    the first ``top`` of them (``None``: all)."""
    m = as_numpy(matrix, np.int64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"matrix must be square (C, C), got shape {m.shape}")
    pairs = [(a, b, int(m[a, b])) for a in range(m.shape[0]) for b in range(m.shape[1])
             if a != b and m[a, b] > 0]
    pairs.sort(key=lambda p: (-p[2], p[0], p[1]))
    return pairs if top is None else pairs[:check_int("top", top, 0)]


def confusion_heatmap(true: Any, predicted: Any, class_names: Sequence[str], *,
                      title: str | None = None) -> go.Figure:
    """The confusion matrix of one task's query predictions: rows are the true classes,
    columns the predicted ones. Off-diagonal cells are coloured by the share of the row's
    queries given to that column's class (the diagonal, the correct ones, is left white
    and only labelled, so that the confusions carry the colour scale); every cell shows
    its count.

    ``layout.meta`` holds ``matrix`` (counts), ``accuracy`` and ``pairs`` (the
    :func:`confused_pairs`)."""
    names = [str(c) for c in class_names]
    m = confusion_counts(true, predicted, len(names))
    if m.shape[0] != len(names):
        raise ValueError(f"class_names has {len(names)} entries but the labels reach "
                         f"{m.shape[0] - 1}")
    per_row = np.maximum(m.sum(1, keepdims=True), 1)
    share = m / per_row
    z = np.where(np.eye(len(names), dtype=bool), np.nan, share)
    text = [[str(v) if v else "" for v in row] for row in m]
    hover = [[f"true {names[a]}, predicted {names[b]}: {m[a, b]} of {int(m[a].sum())} "
              f"queries" for b in range(len(names))] for a in range(len(names))]
    total = int(m.sum())
    accuracy = float(np.trace(m) / total) if total else 0.0
    fig = _new_figure(False)
    fig.add_trace(go.Heatmap(
        z=z, x=names, y=names, text=text, texttemplate="%{text}", customdata=hover,
        hovertemplate="%{customdata}<extra></extra>", colorscale="Reds", zmin=0,
        zmax=max(float(np.nanmax(z, initial=0.0)), 1e-9) if len(names) > 1 else 1.0,
        colorbar=dict(title="share of<br>the row"), xgap=1, ygap=1, name="confusions"))
    side = min(720, max(300, 34 * len(names) + 160))
    fig.update_layout(
        title=title or f"confusions: accuracy {accuracy:.2f} on {total} queries",
        height=side, width=side + 80, xaxis_title="predicted class",
        yaxis_title="true class", margin=dict(l=110, r=20, t=60, b=100),
        meta={"matrix": m.tolist(), "accuracy": accuracy, "pairs": confused_pairs(m)})
    fig.update_yaxes(autorange="reversed", showline=False, ticks="")
    fig.update_xaxes(showline=False, ticks="", tickangle=-45 if len(names) > 6 else 0)
    return fig


def confused_pairs_gallery(task: Any, predicted: Any, *, max_pairs: int = 4,
                           examples: int = 4, shots: int = 2, invert: bool = False,
                           title: str | None = None, cell_px: int = 44) -> go.Figure:
    """Images of the most frequent confusions of one task's predictions: one row per
    (true A, predicted B) pair, most frequent first, holding up to ``examples`` queries of
    A that were taken for B, a gap, up to ``shots`` support images of A (what they should
    have matched), a gap, and up to ``shots`` support images of B (what they were taken
    for).

    ``task`` is a :class:`~dml_kit.data.KShotTask` (or has ``support_x``, ``support_y``,
    ``query_x``, ``query_y`` and ``class_names``); ``predicted`` is ``(Q,)``, one class id
    per query. With no mistake the figure has no image and says so in its title.
    ``layout.meta['pairs']`` lists the rows shown as ``(true, predicted, count)``; the
    second trace's ``customdata`` is ``[role, pair row, index into its set, class id]``
    with role ``"query"``, ``"support of true"`` or ``"support of predicted"``.
    """
    max_pairs = check_int("max_pairs", max_pairs, 1, 50)
    examples = check_int("examples", examples, 1, 50)
    shots = check_int("shots", shots, 1, 50)
    qy, sy = as_numpy(task.query_y, np.int64), as_numpy(task.support_y, np.int64)
    pred = as_numpy(predicted, np.int64)
    if pred.shape != qy.shape:
        raise ValueError(f"predicted must hold one class id per query ({qy.shape[0]}), got "
                         f"shape {pred.shape}")
    names = [str(c) for c in task.class_names]
    pairs = confused_pairs(confusion_counts(qy, pred, len(names)), top=max_pairs)
    fig = _new_figure(False)
    if not pairs:
        fig.add_trace(go.Image(z=np.full((1, 1, 3), 255, dtype=np.uint8), hoverinfo="skip",
                               name="gallery"))
        fig.add_trace(_hover_points([], 8))
        fig.update_layout(title=title or "no confusions: every query was classified right",
                          height=160, meta={"pairs": []})
        return fig
    qx, sx = _as_images(task.query_x), _as_images(task.support_x)
    if invert:
        qx, sx = 1 - qx, 1 - sx
    grid: list[list[np.ndarray | None]] = []
    roles: list[list[tuple[str, int, int]]] = []
    for a, b, _ in pairs:
        wrong = np.flatnonzero((qy == a) & (pred == b))[:examples]
        sa, sb = np.flatnonzero(sy == a)[:shots], np.flatnonzero(sy == b)[:shots]
        row_roles = ([("query", int(i), a) for i in wrong]
                     + [("", -1, -1)] * (examples - len(wrong))
                     + [("support of true", int(i), a) for i in sa]
                     + [("", -1, -1)] * (shots - len(sa))
                     + [("support of predicted", int(i), b) for i in sb]
                     + [("", -1, -1)] * (shots - len(sb)))
        roles.append(row_roles)
        grid.append([None if role == "" else (qx[i] if role == "query" else sx[i])
                     for role, i, _ in row_roles])
    width_wrong = min(examples, max(p[2] for p in pairs))
    # drop the query columns no row fills
    for r in range(len(grid)):
        del grid[r][width_wrong:examples]
        del roles[r][width_wrong:examples]
    gap, bgap = 2, 12
    blocks = [width_wrong, width_wrong + shots]
    mosaic = gallery_mosaic(grid, gap=gap, block_gaps=blocks, block_gap=bgap)
    h, w = qx.shape[1:3]
    col_x: list[float] = []
    x = 0.0
    for c in range(width_wrong + 2 * shots):
        if c in blocks:
            x += bgap - gap
        col_x.append(x)
        x += w + gap
    cells: list[tuple[float, float, list[Any], str]] = []
    for r, ((a, b, _), row_roles) in enumerate(zip(pairs, roles, strict=True)):
        for c, (role, i, cls) in enumerate(row_roles):
            if role:
                what = (f"query #{i}: a {names[a]} taken for {names[b]}" if role == "query"
                        else f"{role} ({names[cls]}) #{i}")
                cells.append((col_x[c] + w / 2, r * (h + gap) + h / 2, [role, r, i, cls],
                              what))

    def centre(first: int, count: int) -> float:
        return (col_x[first] + col_x[first + count - 1] + w) / 2

    fig.add_trace(go.Image(source=_png_uri(mosaic), hoverinfo="skip", name="gallery"))
    fig.add_trace(_hover_points(cells, max(w, 8)))
    _image_axes(fig, ([centre(0, width_wrong), centre(width_wrong, shots),
                       centre(width_wrong + shots, shots)],
                      ["queries of A taken for B", "support of A", "support of B"]),
                ([r * (h + gap) + h / 2 for r in range(len(pairs))],
                 [f"{names[a]} → {names[b]} ({c}×)" for a, b, c in pairs]))
    fig.update_layout(
        title=title or f"the {len(pairs)} most frequent confusions (A → B: a query of "
                       f"class A predicted as B)",
        height=min(900, max(200, cell_px * len(pairs) + 120)),
        width=min(1100, max(420, int(mosaic.shape[1] * cell_px / w) + 220)),
        margin=dict(l=200, r=20, t=90, b=10), meta={"pairs": pairs})
    return fig
