"""Plotly figure builders: every chart the notebooks and widgets draw.

Each builder takes plain data (tensors, numpy arrays, lists) or a results
:class:`pandas.DataFrame` and returns a :class:`plotly.graph_objects.Figure` in the kit's
one style (the ``"dml_kit"`` template: white background, one qualitative palette, readable
titles and axis labels). Pass ``widget=True`` where offered to get a
:class:`plotly.graph_objects.FigureWidget` whose traces can be updated in place (the
live dashboard and the widgets do that).

The builders never add traces that depend on the *values* (only on the number of classes,
methods, phases), so a live view can replace trace data frame after frame without
changing the figure's structure.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from PIL import Image
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from dml_kit._validation import check_choice, check_float, check_int
from dml_kit.metrics import error_reductions
from dml_kit.stats import Bounds, check_bounds, mean_ci, metric_bounds

__all__ = [
    "TEMPLATE", "palette", "class_color", "as_numpy",
    "norm_histogram", "projection_scatter", "learning_curves", "accuracy_vs_k",
    "method_heatmap", "accuracy_vs_distance", "shift_curve_frame", "task_gallery",
    "gallery_mosaic", "decode_image", "pair_similarities", "pair_similarity_histogram",
    "prototype_scatter", "figure_fingerprint", "empty_figure", "method_bars",
    "empty_shift_curve", "class_samples", "SHIFT_SETTINGS",
]

# ---------------------------------------------------------------------------------------
# style
# ---------------------------------------------------------------------------------------
#: The qualitative palette, 12 colours. Okabe-Ito's eight colour-blind-safe colours, then
#: Paul Tol's indigo, sand, wine and a brown, chosen by maximising the smallest pairwise
#: CIE76 distance in normal vision and under simulated deuteranopia and protanopia
#: (Machado et al. 2009): for the first 10 colours the smallest distance is 26 in normal
#: vision, 17 for deuteranopes, 21 for protanopes (the Tableau oranges this replaced sat
#: 15 / 4 / 8 from Okabe-Ito's orange and vermilion). Past 12 classes, ``palette`` samples
#: a cyclic scale instead.
_BASE_PALETTE: tuple[str, ...] = (
    "#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
    "#000000", "#332288", "#DDCC77", "#882255", "#8C564B",
)

TEMPLATE = "dml_kit"
_FONT = "Inter, 'Segoe UI', 'Helvetica Neue', Helvetica, Arial, sans-serif"


def _register_template() -> None:
    base = pio.templates["plotly_white"]
    tpl = go.layout.Template(base)
    tpl.layout.update(
        colorway=list(_BASE_PALETTE),
        font=dict(family=_FONT, size=13, color="#222"),
        title=dict(font=dict(size=16), x=0.02, xanchor="left"),
        margin=dict(l=60, r=20, t=60, b=50),
        legend=dict(bgcolor="rgba(255,255,255,0.6)", borderwidth=0),
        hoverlabel=dict(font=dict(family=_FONT, size=12)),
    )
    tpl.layout.xaxis.update(showline=True, linecolor="#888", ticks="outside", zeroline=False)
    tpl.layout.yaxis.update(showline=True, linecolor="#888", ticks="outside", zeroline=False)
    pio.templates[TEMPLATE] = tpl


_register_template()


def palette(n: int) -> list[str]:
    """``n`` distinct colours: the kit's qualitative palette, or, past its length, ``n``
    evenly spaced samples of a cyclic colour scale (so 50 classes still differ)."""
    n = check_int("n", n, 0)
    if n <= len(_BASE_PALETTE):
        return list(_BASE_PALETTE[:n])
    return sample_colorscale("Phase", [i / n for i in range(n)])


def class_color(i: int, n: int) -> str:
    """Colour of class ``i`` among ``n`` classes (the same everywhere in the kit)."""
    return palette(n)[i % max(n, 1)]


def _new_figure(widget: bool, **kwargs: Any) -> go.Figure:
    fig = go.FigureWidget(**kwargs) if widget else go.Figure(**kwargs)
    fig.update_layout(template=TEMPLATE)
    return fig


def figure_fingerprint(fig: go.Figure, *, layout: bool = False) -> str:
    """A string that changes whenever what ``fig`` draws changes: its traces' data (and,
    with ``layout=True``, its layout: titles, shapes, axes). The notebooks' check cells
    compare fingerprints before and after moving a control."""
    text = str([trace.to_plotly_json() for trace in fig.data])
    return text + str(fig.layout.to_plotly_json()) if layout else text


def as_numpy(a: Any, dtype: Any = np.float64) -> np.ndarray:
    """A torch tensor, numpy array or sequence as a numpy array of ``dtype``."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=dtype)


def _class_names(labels: np.ndarray, class_names: Sequence[str] | None) -> list[str]:
    n = int(labels.max()) + 1 if labels.size else 0
    if class_names is None:
        return [str(i) for i in range(n)]
    if len(class_names) < n:
        raise ValueError(f"class_names has {len(class_names)} entries but labels reach {n - 1}")
    return [str(c) for c in class_names]


# ---------------------------------------------------------------------------------------
# embedding norms
# ---------------------------------------------------------------------------------------
def _norms(values: Any) -> np.ndarray:
    arr = as_numpy(values)
    if not np.isfinite(arr).all():
        raise ValueError(f"values holds {int((~np.isfinite(arr)).sum())} non-finite "
                         f"value(s) (NaN or inf): nothing sensible to draw")
    if arr.ndim == 2:
        return np.linalg.norm(arr, axis=1)
    if arr.ndim == 1:
        return arr
    raise ValueError(f"values must be embeddings (N, D) or norms (N,), got shape {arr.shape}")


def norm_histogram(values: Any, labels: Any = None, class_names: Sequence[str] | None = None,
                   *, per_class: bool = False, sec_target: bool | float = True,
                   nbins: int = 30, title: str | None = None, widget: bool = False
                   ) -> go.Figure:
    """Histogram of embedding norms ``||f_i||``, overall or one overlaid histogram per class.

    Args:
        values: embeddings ``(N, D)`` (their L2 norms are taken) or norms ``(N,)``.
        labels: ``(N,)`` class ids; needed for ``per_class=True``.
        class_names: names for the legend (default: the ids).
        per_class: one trace per class instead of one overall trace.
        sec_target: mark SEC's target radius as a dashed vertical line: ``True`` uses the
            mean norm (SEC pulls every norm towards the batch mean; Zhang et al. 2020),
            a float marks that value, ``False`` draws no line.
        nbins: approximate number of bins.
        title: figure title (default states the mean and coefficient of variation).
        widget: return a ``FigureWidget`` (for in-place updates).

    The figure's traces hold the norms in ``x`` (one trace, or one per class), the line is
    ``layout.shapes[0]`` and ``layout.meta`` holds ``{"mean", "std", "cv"}``.
    """
    norms = _norms(values)
    if norms.size == 0:
        raise ValueError("values is empty: nothing to draw")
    nbins = check_int("nbins", nbins, 1, 500)
    fig = _new_figure(widget)
    mean, std = float(norms.mean()), float(norms.std())
    cv = std / mean if mean > 0 else float("nan")
    if per_class:
        if labels is None:
            raise ValueError("per_class=True needs labels")
        lab = as_numpy(labels, np.int64)
        if lab.shape != norms.shape:
            raise ValueError(f"labels must be (N,) with N={norms.size}, got {lab.shape}")
        names = _class_names(lab, class_names)
        present = np.unique(lab)
        colors = palette(len(names))
        for c in present:
            fig.add_trace(go.Histogram(
                x=norms[lab == c], name=names[c], nbinsx=nbins, opacity=0.55,
                marker_color=colors[c],
                hovertemplate=f"{names[c]}<br>norm %{{x}}<br>count %{{y}}<extra></extra>"))
        fig.update_layout(barmode="overlay")
    else:
        fig.add_trace(go.Histogram(x=norms, name="all", nbinsx=nbins,
                                   marker_color=_BASE_PALETTE[0], opacity=0.85,
                                   hovertemplate="norm %{x}<br>count %{y}<extra></extra>"))
        fig.update_layout(showlegend=False)
    target = None
    if sec_target is True:
        target = mean
    elif sec_target is not False and sec_target is not None:
        target = float(sec_target)
    if target is not None:
        fig.add_shape(type="line", x0=target, x1=target, y0=0, y1=1, yref="paper",
                      line=dict(color="#444", dash="dash", width=2), name="sec_target")
        fig.add_annotation(x=target, y=1, yref="paper", text=f"SEC target {target:.3g}",
                           showarrow=False, yanchor="bottom", font=dict(size=11))
    fig.update_layout(
        title=title if title is not None else
        f"Embedding norms: mean {mean:.3g}, CV {cv:.3f}",
        xaxis_title="‖f(x)‖₂", yaxis_title="count", bargap=0.05,
        meta={"mean": mean, "std": std, "cv": cv})
    return fig


# ---------------------------------------------------------------------------------------
# 2-D projection scatter
# ---------------------------------------------------------------------------------------
def _png_uri(rgb: np.ndarray) -> str:
    """A ``data:image/png;base64,...`` URI of a ``(H, W, 3)`` uint8 image."""

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb)).save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def decode_image(source: str) -> np.ndarray:
    """The ``(H, W, 3)`` uint8 pixels of a ``data:image/png;base64,...`` URI (e.g. a
    gallery's ``fig.data[0].source``)."""

    if not source.startswith("data:image/png;base64,"):
        raise ValueError("source must be a data:image/png;base64 URI")
    raw = base64.b64decode(source.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))


def _thumbnail_uri(img: np.ndarray) -> str:

    a = np.asarray(img, dtype=np.float64)
    if a.ndim == 3 and a.shape[0] in (1, 3):
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    a = np.clip(a, 0.0, 1.0)
    pil = Image.fromarray((a * 255).astype(np.uint8))
    buf = io.BytesIO()
    pil.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def projection_scatter(points: Any, labels: Any, class_names: Sequence[str] | None = None,
                       *, indices: Any = None, thumbnails: Any = None,
                       max_thumbnails: int = 150, marker_size: int = 7,
                       title: str = "Embedding projection", subtitle: str | None = None,
                       widget: bool = False) -> go.Figure:
    """Scatter of 2-D points (a PCA/UMAP projection), one trace per class.

    Hovering a point shows its class name and its index (``indices``, default
    ``0..N-1``). With ``thumbnails`` (images ``(N, C, H, W)`` or ``(N, H, W)`` in
    ``[0, 1]``), up to ``max_thumbnails`` of them are drawn as small images at their
    points. Each trace's ``customdata`` holds ``[[index, class name], ...]``; traces are
    created for every class id ``0..max(labels)`` (empty if absent), so a live view can
    keep the same traces from frame to frame.
    """
    pts = as_numpy(points)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points must be (N, 2), got shape {pts.shape}")
    lab = as_numpy(labels, np.int64)
    if lab.shape != (pts.shape[0],):
        raise ValueError(f"labels must be (N,) with N={pts.shape[0]}, got {lab.shape}")
    idx = np.arange(pts.shape[0]) if indices is None else as_numpy(indices, np.int64)
    names = _class_names(lab, class_names)
    # colour the classes that are present with the qualitative palette, in order, so a
    # probe set of 10 classes out of 600 still gets 10 clearly different colours
    present = np.unique(lab)
    rank = {int(c): i for i, c in enumerate(present)}
    shades = palette(len(present))
    fig = _new_figure(widget)
    for c, name in enumerate(names[: int(lab.max()) + 1 if lab.size else 0]):
        m = lab == c
        color = shades[rank[c]] if c in rank else "#bbbbbb"
        custom = np.empty((int(m.sum()), 2), dtype=object)
        custom[:, 0] = idx[m]
        custom[:, 1] = name
        fig.add_trace(go.Scatter(
            x=pts[m, 0], y=pts[m, 1], mode="markers", name=name,
            marker=dict(size=marker_size, color=color, line=dict(width=0.5, color="white")),
            customdata=custom,
            hovertemplate="class %{customdata[1]}<br>index %{customdata[0]}<extra></extra>"))
    if thumbnails is not None:
        imgs = as_numpy(thumbnails)
        if imgs.shape[0] != pts.shape[0]:
            raise ValueError(f"thumbnails must have one image per point ({pts.shape[0]}), "
                             f"got {imgs.shape[0]}")
        span = float(np.ptp(pts, axis=0).max()) if pts.shape[0] > 1 else 1.0
        size = 0.06 * (span or 1.0)
        step = max(1, int(np.ceil(pts.shape[0] / max_thumbnails)))
        fig.update_layout(images=[
            dict(source=_thumbnail_uri(imgs[i]), x=float(pts[i, 0]), y=float(pts[i, 1]),
                 xref="x", yref="y", sizex=size, sizey=size, xanchor="center",
                 yanchor="middle", layer="above", opacity=0.9)
            for i in range(0, pts.shape[0], step)])
    full_title = title if not subtitle else f"{title}<br><sup>{subtitle}</sup>"
    fig.update_layout(title=full_title, xaxis_title="component 1", yaxis_title="component 2",
                      legend_title_text="class", legend=dict(itemsizing="constant"))
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return fig


# ---------------------------------------------------------------------------------------
# pair similarities and prototypes
# ---------------------------------------------------------------------------------------
def pair_similarities(embeddings: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Cosine similarities ``s_ij = f_i . f_j / (||f_i|| ||f_j||)`` of all positive pairs
    (same label) and all negative pairs (different labels) of a set, each unordered pair
    ``i < j`` once: the samples whose distributions ``p+`` and ``p-`` the histogram loss
    (Ustinova & Lempitsky, NeurIPS 2016) compares. Returns ``(positive, negative)``."""
    emb = as_numpy(embeddings)
    lab = as_numpy(labels, np.int64)
    if emb.ndim != 2 or lab.shape != (emb.shape[0],):
        raise ValueError(f"embeddings must be (N, D) and labels (N,); got {emb.shape} and "
                         f"{lab.shape}")
    if not np.isfinite(emb).all():
        raise ValueError(f"embeddings hold {int((~np.isfinite(emb)).sum())} non-finite "
                         f"value(s) (NaN or inf)")
    unit = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    sim = unit @ unit.T
    i, j = np.triu_indices(len(lab), k=1)
    same = lab[i] == lab[j]
    return sim[i[same], j[same]], sim[i[~same], j[~same]]


def pair_similarity_histogram(embeddings: Any, labels: Any, *, title: str = "Pair similarities",
                              nbins: int = 50, histogram_loss: bool = True,
                              widget: bool = False) -> go.Figure:
    """The two distributions the histogram loss (Ustinova & Lempitsky, NeurIPS 2016) pulls
    apart: overlaid histograms (probability per bin) of the cosine similarities ``s+`` of
    positive pairs and ``s-`` of negative pairs (:func:`pair_similarities`).

    With ``histogram_loss=True`` the title carries the loss of the set,
    ``L = sum_r p-_r Phi+_r`` with ``Phi+_r = sum_{q <= r} p+_q`` (the probability that a
    random negative pair is more similar than a random positive one), computed by
    ``dml_kit.losses.get("histogram")``. Both traces use the same fixed bins on
    ``[-1, 1]``, so figures of different epochs compare; ``layout.meta`` holds
    ``positive_mean``, ``negative_mean``, ``n_positive``, ``n_negative`` and
    ``histogram_loss`` (or ``None``).
    """
    nbins = check_int("nbins", nbins, 2, 1000)
    pos, neg = pair_similarities(embeddings, labels)
    loss = None
    if histogram_loss:
        import torch  # noqa: PLC0415 (torch only for the loss value a caller asks for)

        from dml_kit import losses  # noqa: PLC0415 (as above)

        loss = float(losses.get("histogram")(torch.as_tensor(as_numpy(embeddings, np.float32)),
                                             torch.as_tensor(as_numpy(labels, np.int64))))
    bins = dict(start=-1.0, end=1.0, size=2.0 / nbins)
    fig = _new_figure(widget)
    for x, name in ((pos, "positive pairs s+"), (neg, "negative pairs s-")):
        fig.add_trace(go.Histogram(x=x, name=name, histnorm="probability", xbins=bins,
                                   autobinx=False, opacity=0.6))
    fig.update_layout(
        barmode="overlay", xaxis_title="cosine similarity", yaxis_title="fraction of pairs",
        title=f"{title}: histogram loss {loss:.3f}" if loss is not None else title,
        meta={"positive_mean": float(pos.mean()) if pos.size else None,
              "negative_mean": float(neg.mean()) if neg.size else None,
              "n_positive": int(pos.size), "n_negative": int(neg.size),
              "histogram_loss": loss})
    return fig


def prototype_scatter(query_emb: Any, query_y: Any, prototypes: Any,
                      class_names: Sequence[str] | None = None, *,
                      accuracy: float | None = None, k_shot: int | None = None,
                      title: str | None = None, widget: bool = False) -> go.Figure:
    """Queries (dots, one trace per class) and class prototypes (stars, the last trace) of a
    k-shot task in a 2-D PCA of the embedding (prototypical networks, Snell et al. 2017).

    Numbers in, figure out: ``prototypes`` is ``(n_way, D)``, row ``j`` the prototype
    ``c_j = (1/k) sum_{i: y_i = j} f(x_i)`` of class ``j``; ``accuracy`` (the queries'
    nearest-prototype accuracy, e.g. :func:`dml_kit.metrics.prototype_accuracy`) and
    ``k_shot`` only label the figure. The PCA is fitted on the queries and the prototypes
    together. ``layout.meta`` holds ``accuracy``, ``k_shot`` and ``n_way``; the default
    title shows the first two.
    """
    from dml_kit.viz.projection import pca_2d  # noqa: PLC0415 (projection imports umap's warm-up thread)

    q, protos = as_numpy(query_emb), as_numpy(prototypes)
    qy = as_numpy(query_y, np.int64)
    if q.ndim != 2 or protos.ndim != 2 or q.shape[1] != protos.shape[1]:
        raise ValueError(f"query_emb and prototypes must be (N, D) with the same D; got "
                         f"{q.shape} and {protos.shape}")
    n_way = len(protos)
    if len(qy) and not set(np.unique(qy)) <= set(range(n_way)):
        raise ValueError(f"query_y must hold classes 0..{n_way - 1} (one prototype each)")
    shots = "" if k_shot is None else f"{k_shot}-shot "
    scored = "" if accuracy is None else f": accuracy {accuracy:.2f}"
    xy = pca_2d(np.concatenate([q, protos]))
    fig = projection_scatter(xy[: len(q)], qy, class_names, widget=widget,
                             title=title or f"{shots}prototypes (stars){scored}")
    star_names = _class_names(np.arange(n_way), class_names)
    fig.add_trace(go.Scatter(x=xy[len(q):, 0], y=xy[len(q):, 1], mode="markers",
                             name="prototypes", marker=dict(
                                 symbol="star", size=18, color=palette(n_way),
                                 line=dict(width=1, color="#222")),
                             hovertext=[f"prototype of class {star_names[j]}"
                                        for j in range(n_way)], hoverinfo="text"))
    fig.update_layout(meta={"accuracy": accuracy, "k_shot": k_shot, "n_way": n_way})
    return fig


def empty_figure(title: str = "", **layout: Any) -> go.Figure:
    """A figure with no traces in the kit's template: what a panel shows before its first
    result or when its filters match nothing (``layout``: more ``update_layout`` keys)."""
    fig = _new_figure(False)
    fig.update_layout(title=title, **layout)
    return fig


def method_bars(values: Mapping[str, float], *, chance: float | None = None,
                value: str = "query accuracy", title: str | None = None,
                height: int = 360) -> go.Figure:
    """One bar per method (``values``: ``{method: score in [0, 1]}``, in display order),
    labelled in percent, with an optional dotted ``chance`` line (e.g. ``1 / n``)."""
    names, scores = [str(m) for m in values], [float(v) for v in values.values()]
    if not names:
        raise ValueError("values must hold at least one method")
    fig = _new_figure(False)
    fig.add_trace(go.Bar(x=names, y=scores, text=[f"{a:.0%}" for a in scores],
                         textposition="outside", marker_color=palette(len(names))))
    if chance is not None:
        fig.add_hline(y=check_float("chance", chance, 0.0, 1.0),
                      line=dict(dash="dot", color="#666"), annotation_text="chance")
    fig.update_layout(height=height, title=title or f"{value} by method",
                      yaxis=dict(title=value, range=[0, 1.05]))
    return fig


# ---------------------------------------------------------------------------------------
# learning curves
# ---------------------------------------------------------------------------------------
def _records(data: Any) -> list[dict[str, Any]]:
    if data is None:
        return []
    if hasattr(data, "to_dict") and hasattr(data, "columns"):
        return data.to_dict("records")
    return [dict(r) for r in data]


def learning_curves(epochs: Any = None, steps: Any = None, *,
                    title: str = "Learning curves", widget: bool = False) -> go.Figure:
    """Training loss (top) and validation score (bottom) against the epoch.

    Args:
        epochs: per-epoch rows (dicts or a DataFrame) with ``epoch``, ``loss`` and
            optionally ``score`` and ``phase`` (e.g. :attr:`HistoryCallback.epochs`).
        steps: optional per-step rows with ``step``, ``epoch``, ``loss`` (and ``phase``);
            drawn as a thin line at fractional epochs.

    One trace per phase and curve (``"<phase> step loss"``, ``"<phase> loss"``,
    ``"<phase> score"``).
    """
    ep_rows, st_rows = _records(epochs), _records(steps)
    if not ep_rows and not st_rows:
        raise ValueError("learning_curves needs epochs or steps rows")
    phases = list(dict.fromkeys([r.get("phase", "") for r in ep_rows + st_rows]))
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("training loss", "validation score"))
    if widget:
        fig = go.FigureWidget(fig)
    fig.update_layout(template=TEMPLATE)
    colors = palette(max(len(phases), 1))
    for p_i, phase in enumerate(phases):
        label = phase or "train"
        srows = [r for r in st_rows if r.get("phase", "") == phase]
        if srows:
            # spread each epoch's steps evenly over (epoch - 1, epoch]
            per_epoch: dict[int, int] = {}
            for r in srows:
                per_epoch[int(r["epoch"])] = per_epoch.get(int(r["epoch"]), 0) + 1
            seen: dict[int, int] = {}
            xs = []
            for r in srows:
                e = int(r["epoch"])
                seen[e] = seen.get(e, 0) + 1
                xs.append(e - 1 + seen[e] / per_epoch[e])
            fig.add_trace(go.Scatter(x=xs, y=[r["loss"] for r in srows], mode="lines",
                                     name=f"{label} step loss", opacity=0.35,
                                     line=dict(width=1, color=colors[p_i])), row=1, col=1)
        erows = [r for r in ep_rows if r.get("phase", "") == phase]
        if erows:
            fig.add_trace(go.Scatter(x=[r["epoch"] for r in erows],
                                     y=[r["loss"] for r in erows], mode="lines+markers",
                                     name=f"{label} loss", line=dict(color=colors[p_i])),
                          row=1, col=1)
            scored = [r for r in erows if r.get("score") is not None
                      and not (isinstance(r.get("score"), float) and np.isnan(r["score"]))]
            fig.add_trace(go.Scatter(x=[r["epoch"] for r in scored],
                                     y=[r["score"] for r in scored], mode="lines+markers",
                                     name=f"{label} score",
                                     line=dict(color=colors[p_i], dash="dot")), row=2, col=1)
    fig.update_xaxes(title_text="epoch", row=2, col=1)
    fig.update_yaxes(title_text="loss", row=1, col=1)
    fig.update_yaxes(title_text="score", row=2, col=1)
    fig.update_layout(title=title, height=480)
    return fig


# ---------------------------------------------------------------------------------------
# results tables
# ---------------------------------------------------------------------------------------
def _frame(df: Any) -> Any:
    """``df`` as a pandas DataFrame: a DataFrame as it is, a list of row dicts or a dict of
    columns converted; anything else raises ``ValueError`` naming ``df``."""
    import pandas as pd  # noqa: PLC0415 (pandas loads only for results tables)

    if isinstance(df, pd.DataFrame):
        return df
    if isinstance(df, (list, tuple, dict)):
        try:
            return pd.DataFrame(df)
        except (ValueError, TypeError) as err:
            raise ValueError(f"df must be a results table (pandas DataFrame or a list of "
                             f"row dicts): {err}") from None
    raise ValueError(f"df must be a results table (pandas DataFrame or a list of row "
                     f"dicts), got {type(df).__name__}")


def _col(df: Any, name: str, *alternatives: str) -> str:
    for c in (name, *alternatives):
        if c in df.columns:
            return c
    raise ValueError(f"the results table has no column {name!r} "
                     f"(columns: {', '.join(map(str, df.columns))})")


def _value_bounds(value: str, bounds: Bounds | None | bool,
                  values: Any = None) -> Bounds | None:
    """The range a figure clips ``value``'s intervals to: ``bounds`` when given, none for
    ``False``, else the metric's own (:func:`dml_kit.stats.metric_bounds`: ``[0, 1]`` for
    accuracy, Recall@k, MAP@R; none for distances and norms). ``values`` outside it
    (e.g. accuracies in percent) raise ``ValueError`` naming ``bounds``."""
    if bounds is False:
        return None
    rng = metric_bounds(value) if bounds is None or bounds is True else check_bounds(bounds)
    if rng is not None and values is not None:
        arr = np.asarray(values, dtype=float)
        out = arr[(arr < rng[0]) | (arr > rng[1])]
        if out.size:
            raise ValueError(f"{value!r} holds values outside its range bounds=[{rng[0]:g}, "
                             f"{rng[1]:g}] (e.g. {out[0]:g}): pass bounds=(0, 100) for "
                             "percent, the right range, or bounds=False for none")
    return rng


def _clip(x: float, bounds: Bounds | None) -> float:
    return x if bounds is None or np.isnan(x) else min(max(x, bounds[0]), bounds[1])


def _spread(values: np.ndarray, spread: str, bounds: Bounds | None = None
            ) -> tuple[float, float, float, bool]:
    """``(mean, low, high, clipped)`` of ``values`` for display: the spread's ends clipped
    to ``bounds`` (the metric's range), ``clipped`` when they had to be (the interval is
    computed unclipped, :func:`dml_kit.stats.mean_ci`)."""
    mean = float(values.mean())
    if values.size < 2:
        return mean, mean, mean, False
    if spread == "std":
        s = float(values.std(ddof=1))
        low, high = mean - s, mean + s
    elif spread in ("ci95", "sem95"):        # the kit's 95% interval (dml_kit.stats.mean_ci)
        est = mean_ci(values)
        mean, low, high = est.mean, est.low, est.high
    else:
        low, high = float(values.min()), float(values.max())
    shown = _clip(low, bounds), _clip(high, bounds)
    return mean, shown[0], shown[1], shown != (low, high)


def _clip_note(bounds: Bounds | None, n_min: int | None) -> str:
    """The caption line of a figure whose intervals were clipped to ``bounds``
    (``n_min``: the fewest replications of a clipped 95% interval; ``None`` for another
    spread, which more replications would not narrow)."""
    rng = "" if bounds is None else f" the metric's range [{bounds[0]:g}, {bounds[1]:g}]"
    if n_min is None:
        return f"<br><sup>bands clipped to{rng}</sup>"
    return (f"<br><sup>n = {n_min} replication(s) at a point: its 95% interval reaches past"
            f"{rng} and is shown clipped; more seeds or tasks needed</sup>")


def accuracy_vs_k(df: Any, *, value: str = "accuracy", method: str = "method", k: str = "k",
                  n: str | None = "n", spread: str = "ci95", style: str = "band",
                  log_x: bool = True, chance: float | None = None,
                  title: str | None = None, bounds: Bounds | None | bool = None) -> go.Figure:
    """Accuracy against k, one line per method (mean over replications) with its 95%
    interval (or another spread).

    Args:
        df: results table with columns ``method``, ``k`` (or ``k_shot``), ``value``, and
            optionally ``n`` (or ``n_way``): several values of n give one panel per n.
        spread: ``"ci95"`` (default: the 95% interval of the mean over the
            replications, :func:`dml_kit.stats.mean_ci`; ``"sem95"`` is an old name for
            it), ``"std"`` (mean ± one standard deviation) or ``"minmax"``.
        style: ``"band"`` (shaded band) or ``"errorbars"``.
        chance: draw the chance level (e.g. ``1 / n`` for n-way accuracy) as a dotted
            line across every panel (the figure's first layout shape).
        bounds: the range of ``value`` that bands and error bars are clipped to (default
            :func:`dml_kit.stats.metric_bounds`: ``[0, 1]`` for an accuracy; ``False``:
            none). With 2 or 3 replications a t-interval can reach past the range; the
            figure then clips it, says so in a caption under the title, and every
            point's hover gives its interval and ``n``.
    """
    check_choice("spread", spread, ("ci95", "sem95", "std", "minmax"))
    if chance is not None:
        check_float("chance", chance, 0.0, 1.0)
    check_choice("style", style, ("band", "errorbars"))
    df = _frame(df)
    if len(df) == 0:
        raise ValueError("the results table is empty")
    kc, mc, vc = _col(df, k, "k_shot"), _col(df, method), _col(df, value)
    rng = _value_bounds(value, bounds, df[vc])
    interval = spread in ("ci95", "sem95")
    clipped_n: list[int] = []
    nc = None
    if n is not None:
        for cand in (n, "n_way"):
            if cand in df.columns and df[cand].nunique() > 1:
                nc = cand
                break
    n_values = sorted(df[nc].unique()) if nc else [None]
    fig = make_subplots(rows=1, cols=len(n_values), shared_yaxes=True,
                        subplot_titles=[f"n = {v}" for v in n_values] if nc else None)
    fig.update_layout(template=TEMPLATE)
    methods = list(dict.fromkeys(df[mc]))
    colors = palette(len(methods))
    for col_i, nv in enumerate(n_values, start=1):
        sub = df if nc is None else df[df[nc] == nv]
        for m_i, m in enumerate(methods):
            rows = sub[sub[mc] == m]
            if len(rows) == 0:
                continue
            ks = sorted(rows[kc].unique())
            groups = [rows[rows[kc] == kv][vc].to_numpy(dtype=float) for kv in ks]
            stats = [_spread(g, spread, rng) for g in groups]
            mean = [s[0] for s in stats]
            lo = [s[1] for s in stats]
            hi = [s[2] for s in stats]
            clipped_n += [g.size for g, s in zip(groups, stats, strict=True) if s[3]]
            note = (" (clipped to the metric's range: too few replications)" if interval
                    else " (clipped to the metric's range)")
            hover = [[g.size, a, b, note if s[3] else ""]
                     for g, a, b, s in zip(groups, lo, hi, stats, strict=True)]
            color = colors[m_i]
            if style == "band":
                rgb = _hex_to_rgb(color)
                fig.add_trace(go.Scatter(
                    x=list(ks) + list(ks)[::-1], y=hi + lo[::-1], fill="toself", mode="lines",
                    fillcolor=f"rgba({rgb[0]},{rgb[1]},{rgb[2]},0.18)",
                    line=dict(width=0), hoverinfo="skip", showlegend=False,
                    legendgroup=str(m), name=f"{m} spread"), row=1, col=col_i)
                err = None
            else:
                err = dict(type="data", symmetric=False,
                           array=[h - a for h, a in zip(hi, mean, strict=True)],
                           arrayminus=[a - lo_ for a, lo_ in zip(mean, lo, strict=True)])
            fig.add_trace(go.Scatter(
                x=ks, y=mean, mode="lines+markers", name=str(m), legendgroup=str(m),
                showlegend=col_i == 1, line=dict(color=color), error_y=err,
                customdata=hover,
                hovertemplate=(f"{m}<br>k=%{{x}}<br>{value} %{{y:.3f}} "
                               f"[%{{customdata[1]:.3f}}, %{{customdata[2]:.3f}}]"
                               f"<br>n = %{{customdata[0]}}%{{customdata[3]}}<extra></extra>")),
                row=1, col=col_i)
    all_k = sorted(df[kc].unique())
    fig.update_xaxes(title_text="k (labelled examples per class)",
                     type="log" if log_x else "linear", tickvals=all_k,
                     ticktext=[str(v) for v in all_k])
    fig.update_yaxes(title_text=value, col=1)
    if chance is not None:
        fig.add_hline(y=chance, line=dict(dash="dot", color="#666"),
                      annotation_text="chance", annotation_position="bottom right")
    caption = _clip_note(rng, min(clipped_n) if interval else None) if clipped_n else ""
    fig.update_layout(title=(title or f"{value} vs k (mean over seeds, band: {spread})")
                      + caption, legend_title_text="method")
    if caption:
        fig.update_layout(margin=dict(t=80))
    return fig


def _hex_to_rgb(color: str) -> tuple[int, int, int]:
    if color.startswith("#") and len(color) == 7:
        return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)
    if color.startswith("rgb"):
        parts = color[color.index("(") + 1: color.index(")")].split(",")
        return int(float(parts[0])), int(float(parts[1])), int(float(parts[2]))
    raise ValueError(f"cannot parse colour {color!r}")


def method_heatmap(df: Any, *, value: str = "accuracy", method: str = "method", k: str = "k",
                   n: str = "n", baseline: str | None = None, methods: Sequence[str] | None = None,
                   title: str | None = None) -> go.Figure:
    """Heatmap: methods (rows) x conditions ``(k, n)`` (columns), mean over seeds.

    Args:
        value: the metric column, or ``"error_reduction"``: per condition
            ``(err_B - err_A) / err_B`` with ``err = 1 - accuracy`` of the mean accuracies,
            method A against ``baseline`` B (Adapted Deep Embeddings' measure).
        baseline: the baseline method's name (required for ``"error_reduction"``).
        methods: row order (default: order of first appearance).

    The heatmap's ``z`` is ``(n_methods, n_conditions)``; ``x`` holds ``"k=.., n=.."`` labels.
    """
    df = _frame(df)
    if len(df) == 0:
        raise ValueError("the results table is empty")
    mc, kc = _col(df, method), _col(df, k, "k_shot")
    nc = _col(df, n, "n_way") if (n in df.columns or "n_way" in df.columns) else None
    keys = [kc] + ([nc] if nc else [])
    metric = "accuracy" if value == "error_reduction" else value
    vc = _col(df, metric)
    table = df.groupby([mc, *keys])[vc].mean()
    conds = sorted({key[1:] for key in table.index})
    rows = list(methods) if methods is not None else list(dict.fromkeys(df[mc]))
    z = np.full((len(rows), len(conds)), np.nan)
    for i, m in enumerate(rows):
        for j, cond in enumerate(conds):
            if (m, *cond) in table.index:
                z[i, j] = table[(m, *cond)]
    if value == "error_reduction":
        if baseline is None:
            raise ValueError("value='error_reduction' needs baseline= (a method name); "
                             f"choose one of: {', '.join(map(str, rows))}")
        check_choice("baseline", baseline, [str(r) for r in rows])
        b = z[[str(r) for r in rows].index(baseline)]
        known = ~np.isnan(z) & ~np.isnan(b)
        z = np.where(known, error_reductions(np.where(known, b, 0.0), np.where(known, z, 0.0)),
                     np.nan)
    labels = [", ".join(f"{name}={v}" for name, v in zip(["k", "n"], cond, strict=False))
              for cond in conds]
    fig = _new_figure(False)
    diverging = value == "error_reduction"
    finite = np.isfinite(z).any()
    # explicit colour limits (zauto off) in both cases: a figure widget that showed the
    # diverging scale before must not keep its -max..max range in the browser
    if diverging:
        zmax = float(np.nanmax(np.abs(z))) if finite else 1.0
        zmin = -zmax
    else:
        zmin, zmax = ((float(np.nanmin(z)), float(np.nanmax(z))) if finite else (0.0, 1.0))
        if zmax - zmin < 1e-9:
            zmin, zmax = zmin - 0.01, zmax + 0.01
    fig.add_trace(go.Heatmap(
        z=z, x=labels, y=[str(r) for r in rows], texttemplate="%{z:.2f}",
        colorscale="RdBu" if diverging else "Viridis",
        zmid=0 if diverging else None, zauto=False, zmin=zmin, zmax=zmax,
        colorbar=dict(title=dict(text="error red." if diverging else value)),
        hovertemplate="%{y}<br>%{x}<br>%{z:.3f}<extra></extra>"))
    fig.update_layout(
        title=title or (f"Error reduction vs {baseline}" if diverging
                        else f"{value} by method and condition"),
        xaxis_title="condition", yaxis_title="method", yaxis_autorange="reversed",
        height=max(300, 60 + 32 * len(rows)))
    return fig


#: the ``setting`` values of a shift-study table (:data:`dml_kit.experiments.shift_study.SETTINGS`)
SHIFT_SETTINGS = ("zero-shot", "few-shot")


def _present(v: Any) -> bool:

    return v is not None and not (np.isscalar(v) and pd.isna(v))


def shift_curve_frame(df: Any, *, value: str = "recall@1", distance: str = "distance",
                      method: str = "method") -> Any:
    """A shift-study results table -> the long table :func:`accuracy_vs_distance` draws,
    columns ``distance, method, shots, value`` (``shots`` 0 = zero-shot).

    The kit's one shape of shift results is the study's own long table
    (:func:`dml_kit.experiments.generalisation_study`): one row per score with
    ``distance``, ``setting`` (``"zero-shot"`` or ``"few-shot"``), ``k`` (labelled images
    per test class; a few-shot row without it counts as 1 shot), the ``value`` column and
    optionally ``method`` (missing: ``""``); other columns are ignored. ``df`` is a
    DataFrame or a sequence of dicts. Rows without a ``value`` are skipped; a table in
    which no row has one is refused, naming the column.
    """

    records = df.to_dict("records") if hasattr(df, "to_dict") else [dict(r) for r in df]
    if not records:
        raise ValueError("the results table is empty")
    rows: list[dict[str, Any]] = []
    for r in records:
        if not _present(r.get(distance)):
            raise ValueError(f"every result needs a {distance!r} value; got {r}")
        if not _present(r.get(value)):
            continue
        setting = check_choice("setting", r.get("setting"), SHIFT_SETTINGS)
        k = int(r["k"]) if _present(r.get("k")) and r["k"] else 1
        name = r.get(method)
        rows.append({distance: float(r[distance]), method: name if _present(name) else "",
                     "shots": 0 if setting == "zero-shot" else k, value: float(r[value])})
    if not rows:
        raise ValueError(f"no result holds a {value!r} value; "
                         f"keys: {', '.join(map(str, records[0]))}")
    return pd.DataFrame(rows, columns=[distance, method, "shots", value])


def accuracy_vs_distance(df: Any, *, value: str = "recall@1", distance: str = "distance",
                         method: str = "method", title: str | None = None,
                         marker: tuple[float, str] | None = None,
                         ticks: Sequence[float] | None = None,
                         bounds: Bounds | None | bool = None) -> go.Figure:
    """The shift ladder (ooDML, Milbich et al. 2021): ``value`` (e.g. Recall@1) against the
    Fréchet distance of each split, zero-shot as solid lines, few-shot (``shots > 0``)
    dashed, per method.

    ``df`` is a shift-study table (:func:`dml_kit.experiments.generalisation_study`'s
    shape: ``distance``, ``setting``, ``k``, the value; :func:`shift_curve_frame` reads
    it). Several rows per point (seeds, episodes) are averaged, with a bar for the 95%
    interval of the mean
    (:func:`dml_kit.stats.mean_ci`: ``mean +- t_{0.975, n-1} s / sqrt(n)``; none for a
    single row). ``marker = (distance, label)`` marks one rung with a dotted line;
    ``ticks`` puts the x ticks at the ladder's distances (and the x range around them).
    ``bounds``: the range the bars are clipped to (default
    :func:`dml_kit.stats.metric_bounds` of ``value``: ``[0, 1]`` for Recall@1 and MAP@R;
    ``False``: none); a clipped bar is said so in its hover and in a caption.
    """

    shots = "shots"
    df = shift_curve_frame(df, value=value, distance=distance, method=method)

    dc, vc = distance, value
    rng = _value_bounds(value, bounds, df[vc])
    clipped_n: list[int] = []
    methods = list(dict.fromkeys(df[method]))
    colors = palette(len(methods))
    fig = _new_figure(False)
    for m_i, m in enumerate(methods):
        for s in sorted(df[shots].unique()):
            rows = df[(df[method] == m) & (df[shots] == s)]
            if len(rows) == 0:
                continue
            est = {d: mean_ci(part[vc].to_numpy(), bounds=rng) for d, part in rows.groupby(dc)}
            note = " (clipped to the metric's range: too few seeds)"
            g = pd.DataFrame([{dc: d, "mean": e.mean, "up": e.shown_high - e.mean,
                               "down": e.mean - e.shown_low, "n": e.n,
                               "note": note if e.clipped else ""}
                              for d, e in est.items()]).sort_values(dc)
            clipped_n += [e.n for e in est.values() if e.clipped]
            kind = "zero-shot" if s == 0 else f"{s}-shot"
            name = f"{m} ({kind})" if m != "" else kind
            fig.add_trace(go.Scatter(
                x=g[dc], y=g["mean"], mode="lines+markers", name=name,
                error_y=dict(type="data", array=g["up"].fillna(0),
                             arrayminus=g["down"].fillna(0)) if pd.notna(g["up"]).any()
                else None,
                line=dict(color=colors[m_i], dash="solid" if s == 0 else "dash"),
                marker=dict(symbol="circle" if s == 0 else "diamond"),
                customdata=g[["n", "note"]].to_numpy().tolist(),
                hovertemplate=(f"{name}<br>FD %{{x:.3g}}<br>{value} %{{y:.3f}}"
                               "<br>n = %{customdata[0]}%{customdata[1]}<extra></extra>")))
    caption = _clip_note(rng, min(clipped_n)) if clipped_n else ""
    fig.update_layout(title=(title or f"{value} along the shift ladder") + caption,
                      xaxis_title="Fréchet distance between train and test classes",
                      yaxis_title=value, legend_title_text="method")
    if caption:
        fig.update_layout(margin=dict(t=80))
    _mark_ladder(fig, marker, ticks)
    return fig


def _mark_ladder(fig: go.Figure, marker: tuple[float, str] | None,
                 ticks: Sequence[float] | None) -> None:
    """A dotted line and label at ``marker = (distance, label)``; x ticks at ``ticks``."""
    if marker is not None:
        at, label = float(marker[0]), str(marker[1])
        fig.add_vline(x=at, line=dict(color="#444", dash="dot", width=2))
        fig.add_annotation(x=at, y=1, yref="paper", text=label, showarrow=False,
                           yanchor="bottom")
    if ticks:
        ds = [float(d) for d in ticks]
        span = max(ds) - min(ds) or 1.0
        fig.update_xaxes(range=[min(ds) - 0.05 * span, max(ds) + 0.05 * span],
                         tickvals=ds, ticktext=[f"{d:.3g}" for d in ds])


def empty_shift_curve(*, value: str = "recall@1", marker: tuple[float, str] | None = None,
                      ticks: Sequence[float] | None = None) -> go.Figure:
    """The axes of :func:`accuracy_vs_distance` before any result (same marker, ticks)."""
    fig = empty_figure(f"{value} along the shift ladder (no results yet)",
                       xaxis_title="Fréchet distance", yaxis_title=value)
    _mark_ladder(fig, marker, ticks)
    return fig


# ---------------------------------------------------------------------------------------
# task gallery
# ---------------------------------------------------------------------------------------
def _as_images(x: Any) -> np.ndarray:
    """``(N, C, H, W)``/``(N, H, W)`` images in [0, 1] -> ``(N, H, W, 3)`` float."""
    a = as_numpy(x, np.float32)
    if a.ndim == 4:
        if a.shape[1] == 1:
            a = a[:, 0]
        elif a.shape[1] == 3:
            return np.clip(np.moveaxis(a, 1, -1), 0, 1)
        else:
            raise ValueError(f"images must have 1 or 3 channels, got {a.shape[1]}")
    if a.ndim != 3:
        raise ValueError(f"images must be (N, C, H, W) or (N, H, W), got shape {a.shape}")
    a = np.clip(a, 0, 1)
    return np.repeat(a[..., None], 3, axis=-1)


def gallery_mosaic(rows: Sequence[Sequence[np.ndarray | None]], *, gap: int = 2,
                   block_gaps: Sequence[int] = (), block_gap: int = 8,
                   background: float = 1.0) -> np.ndarray:
    """Tile images ``rows[r][c]`` (each ``(H, W, 3)``, or ``None`` for an empty cell) into
    one ``(R*H + gaps, C*W + gaps, 3)`` uint8 mosaic; ``block_gaps`` lists column indices
    before which a wider gap is left (e.g. between support and queries)."""
    first = next((im for row in rows for im in row if im is not None), None)
    if first is None:
        raise ValueError("rows holds no image")
    h, w = first.shape[:2]
    n_rows, n_cols = len(rows), max(len(r) for r in rows)
    col_x = []
    x = 0
    for c in range(n_cols):
        if c in block_gaps:
            x += block_gap - gap
        col_x.append(x)
        x += w + gap
    width = x - gap
    height = n_rows * (h + gap) - gap
    out = np.full((height, width, 3), background, dtype=np.float32)
    for r, row in enumerate(rows):
        for c, im in enumerate(row):
            if im is not None:
                out[r * (h + gap): r * (h + gap) + h, col_x[c]: col_x[c] + w] = im
    return (out * 255).round().astype(np.uint8)


def class_samples(data: Any, train_classes: Sequence[int], test_classes: Sequence[int], *,
                  max_classes: int = 12, title: str | None = None,
                  height: int = 240) -> go.Figure:
    """One image per class (its first example) of the first ``max_classes`` classes of
    each side of a class split: train classes in the top row, test classes in the bottom
    row, each row labelled with its class count. ``data`` is a
    :class:`~dml_kit.data.Dataset`; for non-image data the figure has no image.
    ``layout.meta`` holds the class ids shown (``train``, ``test``)."""
    max_classes = check_int("max_classes", max_classes, 1)
    labels = as_numpy(data.y, np.int64)
    rows: list[list[np.ndarray | None]] = []
    shown: list[list[int]] = []
    for ids in (train_classes, test_classes):
        ids = [int(c) for c in list(ids)[:max_classes]]
        row: list[np.ndarray | None] = []
        for c in ids:
            i = int(np.flatnonzero(labels == c)[0])
            row.append(_as_images(data.x[i:i + 1])[0] if data.is_image else None)
        rows.append(row + [None] * (max_classes - len(row)))
        shown.append(ids)
    fig = _new_figure(False)
    if data.is_image:
        fig.add_trace(go.Image(source=_png_uri(gallery_mosaic(rows, gap=3)),
                               hoverinfo="skip"))
        h = data.input_shape[-2]
        fig.update_yaxes(tickvals=[h / 2, h + 3 + h / 2],
                         ticktext=[f"train ({len(train_classes)})",
                                   f"test ({len(test_classes)})"],
                         showgrid=False, showline=False)
        fig.update_xaxes(showticklabels=False, showgrid=False, showline=False)
    fig.update_layout(
        title=title or f"one image per class (first {max_classes})", height=height,
        margin=dict(l=90, r=20, t=50, b=10), meta={"train": shown[0], "test": shown[1]})
    return fig


def task_gallery(task: Any, *, n_query: int = 3, invert: bool = False,
                 title: str | None = None, cell_px: int = 44) -> go.Figure:
    """A k-shot task as an image grid: one row per class (``n`` rows), its ``k`` support
    images, a gap, then up to ``n_query`` of its query images.

    ``task`` is a :class:`dml_kit.data.KShotTask` or anything with ``support_x``,
    ``support_y``, ``query_x``, ``query_y`` (image tensors and 0-based labels) and
    ``class_names``. The images form one ``go.Image`` trace whose ``source`` is a PNG of
    the mosaic (:func:`gallery_mosaic`; cheap to build and send; :func:`decode_image`
    reads it back);
    a second, invisible ``go.Scatter`` trace has one point per shown image with hover
    text (role, class, index) and ``customdata`` ``[role, class id, index]``, so
    ``sum(cd[0] == "support")`` counts the support images shown (``n * k``).
    """
    n_query = check_int("n_query", n_query, 0, 100)
    sx, sy = _as_images(task.support_x), as_numpy(task.support_y, np.int64)
    qx, qy = _as_images(task.query_x), as_numpy(task.query_y, np.int64)
    if invert:
        sx, qx = 1 - sx, 1 - qx
    names = [str(c) for c in getattr(task, "class_names", [])] or \
        [str(c) for c in range(int(sy.max()) + 1)]
    n_way = len(names)
    support_idx = [np.flatnonzero(sy == c) for c in range(n_way)]
    query_idx = [np.flatnonzero(qy == c)[:n_query] for c in range(n_way)]
    k = max(len(s) for s in support_idx)
    q = max((len(s) for s in query_idx), default=0)
    grid: list[list[np.ndarray | None]] = []
    for c in range(n_way):
        row: list[np.ndarray | None] = [sx[i] for i in support_idx[c]]
        row += [None] * (k - len(support_idx[c]))
        row += [qx[i] for i in query_idx[c]] + [None] * (q - len(query_idx[c]))
        grid.append(row)
    gap, bgap = 2, 10
    mosaic = gallery_mosaic(grid, gap=gap, block_gaps=[k] if q else [], block_gap=bgap)
    h, w = sx.shape[1:3]
    # cell centres for hover points and ticks
    xs, ys, custom, text = [], [], [], []
    col_x = [c * (w + gap) + (bgap - gap if q and c >= k else 0) for c in range(k + q)]
    for c in range(n_way):
        yc = c * (h + gap) + h / 2
        for j, i in enumerate(support_idx[c]):
            xs.append(col_x[j] + w / 2)
            ys.append(yc)
            custom.append(["support", c, int(i)])
            text.append(f"support · {names[c]} · shot {j + 1} (#{int(i)})")
        for j, i in enumerate(query_idx[c]):
            xs.append(col_x[k + j] + w / 2)
            ys.append(yc)
            custom.append(["query", c, int(i)])
            text.append(f"query · {names[c]} (#{int(i)})")
    fig = _new_figure(False)
    # one PNG (a few kB) instead of a per-pixel array: cheap to build and to send
    fig.add_trace(go.Image(source=_png_uri(mosaic), hoverinfo="skip", name="gallery"))
    fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", marker=dict(size=max(w, 8), opacity=0),
                             customdata=custom, hovertext=text, hoverinfo="text",
                             showlegend=False, name="cells"))
    fig.update_xaxes(showticklabels=True, tickvals=[col_x[0] + w / 2 * k + gap * (k - 1) / 2]
                     + ([col_x[k] + (w * q + gap * (q - 1)) / 2] if q else []),
                     ticktext=[f"support (k = {k})"] + ([f"queries ({q} shown)"] if q else []),
                     showgrid=False, showline=False, ticks="", side="top")
    fig.update_yaxes(tickvals=[c * (h + gap) + h / 2 for c in range(n_way)], ticktext=names,
                     showgrid=False, showline=False, ticks="")
    height_px = min(900, max(220, cell_px * n_way + 110))
    width_px = min(1100, max(320, cell_px * (k + q) + 160))
    fig.update_layout(title=title or f"{n_way}-way {k}-shot task",
                      height=height_px, width=width_px, margin=dict(l=90, r=20, t=80, b=20),
                      meta={"n_way": n_way, "k_shot": k, "n_query_shown": q,
                            "mosaic_shape": list(mosaic.shape)})
    return fig

