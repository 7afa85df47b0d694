"""Draw your own character: a canvas the reader draws on with the mouse, and what the
current embedding makes of the drawing.

* :class:`SketchCanvas`: an `anywidget <https://anywidget.dev>`_ canvas (the ESM module is
  the string :data:`CANVAS_ESM`). Pointer events draw strokes in the browser; at the end of
  each stroke the canvas sends the whole drawing to Python as its synced ``strokes``
  traitlet: a list of ``{"width": brush px, "points": [[x, y], ...]}`` in canvas pixels.
  Setting ``strokes`` from Python redraws the canvas, so both sides always show the same
  drawing.
* :func:`rasterize_strokes`: strokes -> a small grayscale image like the dataset's:
  the ink box is centred and scaled so that its long side is ``extent`` pixels (the
  median ink box of the task's support images, :func:`ink_extent`), strokes are drawn
  anti-aliased on a supersampled grid, box-filtered down and scaled so that the brightest
  pixel is 1 (the glyphs' convention: bright ink on a black background).
* :func:`fit_image`: an image (a drawing made elsewhere, a dataset image) -> the same
  format.
* :func:`prototype_probabilities`: the prototypical network's class probabilities of one
  embedding.
* :class:`Sketchpad`: the panel: canvas, brush width, *Clear*; after each stroke the
  drawing is embedded by the model and the panel shows its nearest support images, the
  class probabilities of the current n-way k-shot task and where it lands in a projection
  of the support set. :meth:`Sketchpad.draw_strokes` and :meth:`Sketchpad.set_image` set
  the drawing from Python (tests, check cells).
* :func:`default_model`: a small protonet trained on ``glyphs`` (cached on disk).
"""

from __future__ import annotations

import contextlib
import html
from collections.abc import Iterator, Sequence
from typing import Any

import anywidget
import ipywidgets as widgets
import numpy as np
import torch
import traitlets
from torch import nn

from dml_kit import data
from dml_kit._validation import check_choice, check_embeddings, check_float, check_int, check_seed
from dml_kit.data.tasks import KShotTask
from dml_kit.losses.distances import DISTANCES, class_means
from dml_kit.methods.results import RunResult, SourceModel
from dml_kit.metrics import embed, pairwise_scores
from dml_kit.models import Classifier
from dml_kit.settings import pick
from dml_kit.viz import gallery as G
from dml_kit.viz import sketch as S
from dml_kit.viz.projection import Projector, pca_2d
from dml_kit.widgets.base import _figure_widget, _Panel, _replace_figure, _status, split_cached

__all__ = ["Sketchpad", "SketchCanvas", "rasterize_strokes", "fit_image", "ink_extent",
           "check_strokes", "prototype_probabilities", "default_model", "embedder_of",
           "model_origin", "CANVAS_ESM"]

#: the canvas side in screen pixels (8 x the glyphs' 28)
CANVAS_PX = 224
#: strokes are drawn on a grid this many times finer than the output, then box-filtered
SUPERSAMPLE = 4
#: a stroke's width in output pixels is kept in this range after fitting the ink box
MIN_STROKE_PX, MAX_STROKE_PX = 1.0, 3.5
#: a pixel counts as ink above this value (ink boxes of :func:`ink_extent`)
INK_THRESHOLD = 0.3

CANVAS_ESM = r"""
function render({ model, el }) {
  const size = model.get("size");
  const canvas = document.createElement("canvas");
  canvas.width = size;
  canvas.height = size;
  canvas.className = "dml-sketch-canvas";
  canvas.style.cssText = "width:" + size + "px;height:" + size + "px;touch-action:none;" +
    "cursor:crosshair;border:1px solid #888;border-radius:4px;background:#fff;";
  el.appendChild(canvas);
  const ctx = canvas.getContext("2d");
  let current = null;
  const clamp = (v) => Math.min(size, Math.max(0, Math.round(v * 10) / 10));
  function where(event) {
    const box = canvas.getBoundingClientRect();
    return [clamp((event.clientX - box.left) * size / box.width),
            clamp((event.clientY - box.top) * size / box.height)];
  }
  function line(stroke) {
    const pts = stroke.points;
    if (!pts || !pts.length) return;
    ctx.lineWidth = stroke.width;
    ctx.lineCap = "round";
    ctx.lineJoin = "round";
    ctx.strokeStyle = "#111";
    ctx.beginPath();
    ctx.moveTo(pts[0][0], pts[0][1]);
    if (pts.length === 1) ctx.lineTo(pts[0][0] + 0.01, pts[0][1]);
    for (let i = 1; i < pts.length; i++) ctx.lineTo(pts[i][0], pts[i][1]);
    ctx.stroke();
  }
  function redraw() {
    ctx.fillStyle = "#fff";
    ctx.fillRect(0, 0, size, size);
    for (const stroke of model.get("strokes") || []) line(stroke);
    if (current) line(current);
  }
  canvas.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    canvas.setPointerCapture(event.pointerId);
    current = { width: model.get("brush"), points: [where(event)] };
    redraw();
    event.preventDefault();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!current) return;
    const p = where(event);
    const last = current.points[current.points.length - 1];
    if (Math.hypot(p[0] - last[0], p[1] - last[1]) >= 1.5) {
      current.points.push(p);
      redraw();
    }
  });
  function finish(event) {
    if (!current) return;
    const stroke = current;
    current = null;
    model.set("strokes", [...(model.get("strokes") || []), stroke]);
    model.save_changes();
    redraw();
  }
  canvas.addEventListener("pointerup", finish);
  canvas.addEventListener("pointercancel", finish);
  model.on("change:strokes", redraw);
  redraw();
  return () => model.off("change:strokes", redraw);
}
export default { render };
"""


class SketchCanvas(anywidget.AnyWidget):  # type: ignore[misc]
    """The drawing surface: a ``size`` x ``size`` canvas; pointer events draw strokes of
    ``brush`` pixels; each finished stroke is appended to the synced ``strokes`` list
    (``[{"width": w, "points": [[x, y], ...]}, ...]``, canvas pixels, origin top left)."""

    _esm = CANVAS_ESM
    strokes: traitlets.List[dict[str, Any]] = traitlets.List().tag(sync=True)
    brush = traitlets.Float(20.0).tag(sync=True)
    size = traitlets.Int(CANVAS_PX).tag(sync=True)


# ---------------------------------------------------------------------------------------
# strokes and images
# ---------------------------------------------------------------------------------------
def check_strokes(strokes: Any, canvas_px: int, *, width: float = 20.0,
                  name: str = "strokes") -> list[dict[str, Any]]:
    """Validate a drawing and return it in the canvas's format.

    ``strokes`` is a sequence of strokes; a stroke is a ``(P, 2)`` array-like of ``(x, y)``
    points in canvas pixels (``0 .. canvas_px``), drawn with ``width``, or a dict
    ``{"points": (P, 2), "width": w}``. Raises ``ValueError`` naming the stroke and what is
    wrong: not ``(P, 2)``, no point, NaN or inf, outside the canvas, a width not in
    ``(0, canvas_px]``."""
    canvas_px = check_int("canvas_px", canvas_px, 8, 4096)
    if isinstance(strokes, (str, bytes, dict)) or not isinstance(strokes, Sequence | np.ndarray):
        raise ValueError(f"{name} must be a list of strokes (each a (P, 2) list of x, y "
                         f"points), got {type(strokes).__name__}")
    out: list[dict[str, Any]] = []
    for s, stroke in enumerate(strokes):
        where = f"{name}[{s}]"
        w: Any = width
        points = stroke
        if isinstance(stroke, dict):
            if "points" not in stroke:
                raise ValueError(f"{where} is a dict without 'points'")
            points, w = stroke["points"], stroke.get("width", width)
        try:
            pts = np.asarray(points, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{where} must be a (P, 2) array of x, y points: {err}") from None
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ValueError(f"{where} must be a (P, 2) array of x, y points, got shape "
                             f"{pts.shape}")
        if pts.shape[0] == 0:
            raise ValueError(f"{where} has no point: a stroke needs at least one")
        if not np.isfinite(pts).all():
            raise ValueError(f"{where} holds {int((~np.isfinite(pts)).sum())} non-finite "
                             "values (NaN or inf)")
        if pts.min() < 0 or pts.max() > canvas_px:
            raise ValueError(f"{where} has points outside the canvas: x and y must be in "
                             f"[0, {canvas_px}], got [{pts.min():.4g}, {pts.max():.4g}]")
        w = check_float(f"{where} width", w, 0.0, float(canvas_px), low_inclusive=False)
        out.append({"width": w, "points": pts.round(2).tolist()})
    return out


def _draw_segment(ink: np.ndarray, a: np.ndarray, b: np.ndarray, radius: float) -> None:
    """Paint the round-capped segment ``a -> b`` (pixel coordinates, ``(2,)`` each) of
    half-width ``radius`` into ``ink`` ``(H, W)``: each pixel centre at distance ``d`` from
    the segment gets ``max(ink, clip(r - d + 1/2, 0, 1))`` (a one-pixel anti-aliased
    edge). Only the pixels of the segment's box widened by ``r + 1`` are computed."""
    h, w = ink.shape
    x0 = max(int(np.floor(min(a[0], b[0]) - radius - 1)), 0)
    x1 = min(int(np.ceil(max(a[0], b[0]) + radius + 1)), w)
    y0 = max(int(np.floor(min(a[1], b[1]) - radius - 1)), 0)
    y1 = min(int(np.ceil(max(a[1], b[1]) + radius + 1)), h)
    if x0 >= x1 or y0 >= y1:
        return
    px = np.arange(x0, x1) + 0.5
    py = (np.arange(y0, y1) + 0.5)[:, None]
    ab = b - a
    length2 = float(ab @ ab)
    t = np.zeros((y1 - y0, x1 - x0)) if length2 < 1e-12 else \
        np.clip(((px - a[0]) * ab[0] + (py - a[1]) * ab[1]) / length2, 0.0, 1.0)
    dist = np.hypot(px - (a[0] + t * ab[0]), py - (a[1] + t * ab[1]))
    window = ink[y0:y1, x0:x1]
    np.maximum(window, np.clip(radius - dist + 0.5, 0.0, 1.0), out=window)


def rasterize_strokes(strokes: Any, *, canvas_px: int = CANVAS_PX, size: int = 28,
                      extent: float | None = 16.0, supersample: int = SUPERSAMPLE
                      ) -> np.ndarray:
    """A drawing as a ``(size, size)`` float32 image in [0, 1], bright ink on black.

    With ``extent`` (pixels), the ink box (the points' bounding box padded by half the
    stroke width) is scaled by ``s = extent / its long side`` and centred, as the glyphs
    are rendered (ink box centred, a capital about 14-16 px tall); with ``extent=None`` the
    whole canvas maps to the image (``s = size / canvas_px``). A stroke of width ``w``
    becomes ``w * s`` pixels, kept in ``[MIN_STROKE_PX, MAX_STROKE_PX]``. Each pixel of a
    ``supersample`` times finer grid takes the coverage ``clip(w/2 - d + 1/2, 0, 1)`` (``d``:
    distance of its centre to the nearest segment); the output is the mean over each
    ``supersample`` x ``supersample`` block (a box filter), scaled so its maximum is 1.
    An empty drawing gives an all-zero image."""
    size = check_int("size", size, 4, 512)
    supersample = check_int("supersample", supersample, 1, 16)
    checked = check_strokes(strokes, canvas_px)
    out = np.zeros((size, size), dtype=np.float32)
    if not checked:
        return out
    pts = [np.asarray(s["points"], dtype=np.float64) for s in checked]
    widths = np.array([s["width"] for s in checked])
    if extent is None:
        scale = size / canvas_px
        centre = np.array([canvas_px / 2, canvas_px / 2])
    else:
        extent = check_float("extent", extent, 1.0, float(size))
        lo = np.min([p.min(0) - w / 2 for p, w in zip(pts, widths, strict=True)], axis=0)
        hi = np.max([p.max(0) + w / 2 for p, w in zip(pts, widths, strict=True)], axis=0)
        scale = extent / max(float((hi - lo).max()), 1e-6)
        centre = (lo + hi) / 2
    fine = size * supersample
    ink = np.zeros((fine, fine))
    for p, w in zip(pts, widths, strict=True):
        q = ((p - centre) * scale + size / 2) * supersample
        radius = float(np.clip(w * scale, MIN_STROKE_PX, MAX_STROKE_PX)) * supersample / 2
        kept = [0]                    # points closer than half a fine pixel add nothing
        for i in range(1, len(q)):
            if np.hypot(*(q[i] - q[kept[-1]])) >= 0.5 or i == len(q) - 1:
                kept.append(i)
        for a, b in zip(kept, kept[1:] or kept, strict=False):
            _draw_segment(ink, q[a], q[b], radius)
    img = ink.reshape(size, supersample, size, supersample).mean((1, 3))
    top = float(img.max())
    return (img / top if top > 0 else img).astype(np.float32)


def ink_extent(images: Any, threshold: float = INK_THRESHOLD) -> float:
    """The median long side, in pixels, of the ink boxes (pixels ``> threshold``) of
    ``images`` ``(N, 1, H, W)`` or ``(N, H, W)`` with bright ink: how large a drawing is
    scaled to look like them (16 for ``glyphs``, 8 for ``digits``). Images without ink are
    skipped."""
    a = np.asarray(images.detach().cpu() if hasattr(images, "detach") else images,
                   dtype=np.float64)
    if a.ndim == 4:
        a = a[:, 0]
    if a.ndim != 3:
        raise ValueError(f"images must be (N, 1, H, W) or (N, H, W), got shape {a.shape}")
    ink = a > threshold
    sides = np.maximum(ink.any(2).sum(1), ink.any(1).sum(1))
    sides = sides[sides > 0]
    if not sides.size:
        raise ValueError(f"images hold no ink above {threshold}: cannot size a drawing "
                         "like them")
    return float(np.median(sides))


def _pixels(image: Any) -> np.ndarray:
    """``image`` as a float64 ``(H, W)`` array in [0, 1], or ``ValueError`` naming it."""
    a = image.detach().cpu().numpy() if hasattr(image, "detach") else image
    try:
        a = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"image must be a 2-D array of pixel values: {err}") from None
    if a.ndim == 3 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 2 or min(a.shape) < 2:
        raise ValueError(f"image must be (H, W) or (1, H, W) with H, W >= 2, got shape "
                         f"{a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"image holds {int((~np.isfinite(a)).sum())} non-finite values "
                         "(NaN or inf)")
    if a.min() < 0 or a.max() > 1:
        raise ValueError(f"image values must be in [0, 1], got [{a.min():.4g}, "
                         f"{a.max():.4g}]")
    return a


def fit_image(image: Any, *, size: int = 28, extent: float | None = None) -> np.ndarray:
    """An image ``(H, W)`` (or ``(1, H, W)``) in [0, 1], bright ink on black, resampled to
    ``(size, size)``: with ``extent=None`` the whole image is resized (bilinear, antialiased);
    with ``extent`` its ink box is cropped, scaled so its long side is ``extent`` and
    centred, as :func:`rasterize_strokes` does. The result is scaled so its maximum is 1
    (an image without ink stays all zero). Raises ``ValueError`` naming ``image`` for
    another shape, NaN or inf, or values outside [0, 1]."""
    size = check_int("size", size, 4, 512)
    a = _pixels(image)
    t = torch.from_numpy(a)[None, None]
    if extent is not None and (a > INK_THRESHOLD * a.max()).any() and a.max() > 0:
        extent = check_float("extent", extent, 1.0, float(size))
        rows = np.flatnonzero((a > INK_THRESHOLD * a.max()).any(1))
        cols = np.flatnonzero((a > INK_THRESHOLD * a.max()).any(0))
        crop = t[..., rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
        h, w = crop.shape[-2:]
        scale = extent / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        small = torch.nn.functional.interpolate(crop, size=(nh, nw), mode="bilinear",
                                                antialias=True, align_corners=False)
        out_t = torch.zeros(1, 1, size, size, dtype=small.dtype)
        top, left = (size - nh) // 2, (size - nw) // 2
        out_t[..., top:top + nh, left:left + nw] = small
    elif a.shape != (size, size):
        out_t = torch.nn.functional.interpolate(t, size=(size, size), mode="bilinear",
                                                antialias=True, align_corners=False)
    else:
        out_t = t
    out = out_t[0, 0].clamp(0, 1).numpy()
    top_value = float(out.max())
    return (out / top_value if top_value > 0 else out).astype(np.float32)


# ---------------------------------------------------------------------------------------
# models and probabilities
# ---------------------------------------------------------------------------------------
def prototype_probabilities(query_emb: torch.Tensor, support_emb: torch.Tensor,
                            support_y: torch.Tensor, distance: str = "sqeuclidean"
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """The prototypical network's class probabilities (Snell, Swersky & Zemel, NeurIPS
    2017): prototypes ``c_j`` = mean support embedding of class ``j``
    (:func:`dml_kit.losses.distances.class_means`) and

        p(y = j | x) = exp(-d(f(x), c_j)) / sum_j' exp(-d(f(x), c_j'))

    with ``d`` the squared Euclidean distance (``distance="sqeuclidean"``, the paper's;
    the scores are :func:`dml_kit.metrics.pairwise_scores`, the kit's one geometry).
    Returns ``(classes (C,), probabilities (Q, C))`` in float64; each row sums to 1 and its
    argmax is the nearest-prototype rule of :func:`dml_kit.metrics.prototype_accuracy`."""
    check_embeddings("query_emb", query_emb)
    check_embeddings("support_emb", support_emb)
    check_choice("distance", distance, DISTANCES)
    if support_emb.shape[1] != query_emb.shape[1]:
        raise ValueError(f"support_emb and query_emb must have the same embedding "
                         f"dimension, got shapes {tuple(support_emb.shape)} and "
                         f"{tuple(query_emb.shape)}")
    classes, protos = class_means(support_emb.double(), support_y)
    return classes, torch.softmax(pairwise_scores(query_emb, protos, distance), dim=1)


def embedder_of(model: Any) -> nn.Module:
    """The embedding network of ``model``: a :class:`~dml_kit.methods.RunResult` (its
    ``model``), a :class:`~dml_kit.methods.SourceModel` (its ``model``), a
    :class:`~dml_kit.models.Classifier` (its ``embedder``: the features before the head)
    or any ``nn.Module`` (itself)."""
    if isinstance(model, RunResult):
        if model.model is None:
            raise ValueError("model is a RunResult without a model (a result loaded from a "
                             "store): pass a trained network")
        model = model.model
    if isinstance(model, SourceModel):
        model = model.model
    if isinstance(model, Classifier):
        model = model.embedder
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be an nn.Module, a SourceModel or a RunResult, got "
                         f"{type(model).__name__}")
    return model


def default_model(dataset: str = "glyphs", *, seed: int = 0, cache: bool = True,
                  callbacks: Any = None) -> SourceModel:
    """A small protonet for the sketchpad: trained on the source classes of the cached
    domain split of ``dataset`` (the first 150 classes, 4 epochs of 30 5-way 5-shot
    episodes; under ``DML_KIT_FAST=1``: 40 classes, 2 x 6 episodes), the settings of
    notebook 04. With ``cache=True`` it goes through the disk cache of source models
    (``train_source(..., cache=True)``), so only the first call trains (glyphs: 15 s at load
    1, 28 s at load 7, measured on a shared 2-core machine).

    ``callbacks`` watch that training (:mod:`dml_kit.callbacks`), e.g. a
    :class:`~dml_kit.viz.live.LiveDashboard` (given the source class names when it has
    none); when the model comes from the cache they get one ``on_model_loaded`` instead,
    and a dashboard says so. The model's ``info["cache"]`` says ``"hit"`` or ``"miss"``."""
    from dml_kit import methods  # noqa: PLC0415 (keep importing this module light)
    from dml_kit.callbacks import as_callback_list  # noqa: PLC0415
    from dml_kit.experiments.config import get_preset  # noqa: PLC0415

    split = split_cached(dataset, seed=check_seed(seed))
    classes = min(pick(150, 40), split.source.n_classes)
    source = split.source.select_classes(range(classes))
    config = get_preset("classroom").config.replace(
        source_epochs=pick(4, 2), source_patience=4, episodes_per_epoch=pick(30, 6),
        query_per_class=5)
    cbs = as_callback_list(callbacks)
    for cb in cbs.callbacks:
        if hasattr(cb, "set_class_names") and getattr(cb, "class_names", None) is None:
            cb.set_class_names(source.class_names)
    return methods.train_source("protonet", source, config, n_way=5, k_shot=5, seed=seed,
                                cache=cache, callbacks=cbs)


def model_origin(model: Any) -> str:
    """Where a sketchpad's model came from, in words: ``"loaded from the model cache"``,
    ``"trained now"``, ``"interrupted while training"`` (a source model whose training the
    stop button ended: best weights so far) or ``"given"`` (any other model)."""
    if not isinstance(model, SourceModel):
        return "given"
    if model.interrupted:
        return "interrupted while training"
    return "loaded from the model cache" if model.info.get("cache") == "hit" else "trained now"


# ---------------------------------------------------------------------------------------
# the panel
# ---------------------------------------------------------------------------------------
class Sketchpad(_Panel):
    """Draw a character with the mouse and see what the embedding makes of it.

    After each stroke (or :meth:`draw_strokes` / :meth:`set_image` from Python) the
    drawing is resampled to the task's image size like the dataset's images
    (:func:`rasterize_strokes`: ink box centred and scaled to the support images' median
    ink box, bright ink on black), embedded by the model and shown with

    * its ``k_neighbours`` nearest support images (``distance``; the drawing first, as the
      model sees it): :func:`~dml_kit.viz.sketch.sketch_neighbours`;
    * the class probabilities of the n-way k-shot task, softmax over the negative squared
      distances to the prototypes, as prototypical networks classify
      (:func:`prototype_probabilities`): :func:`~dml_kit.viz.sketch.class_probability_bars`;
    * where it lands in a 2-D projection of the support set and its prototypes:
      ``projection="pca"`` fits the support set once (:func:`~dml_kit.viz.projection.pca_2d`)
      and maps the drawing with the same linear map, so the support points stay put;
      ``"umap"`` refits :class:`~dml_kit.viz.projection.Projector` on the support set and
      the drawing at each stroke, aligned to the previous layout (UMAP is not linear: its
      stars are the means of each class's 2-D points, not projected prototypes).

    Args:
        model: the embedder: a :class:`~dml_kit.methods.RunResult` of
            :func:`dml_kit.methods.run`, a :class:`~dml_kit.methods.SourceModel`, a
            classifier (its features are used) or an ``nn.Module``; ``None``:
            :func:`default_model` (a small protonet on glyphs, cached on disk).
        callbacks: watch the default model's training, e.g. a
            :class:`~dml_kit.viz.live.LiveDashboard` displayed before the panel is built
            (the training runs while the panel is constructed); when the model comes from
            the cache they are told so (``on_model_loaded``) instead. Ignored with a
            ``model``.
        task: the :class:`~dml_kit.data.KShotTask` whose support set the drawing is compared
            with; ``None``: ``kshot_task(target of dataset, n_way, k_shot, seed)``.
        dataset: the dataset of the default task and model (``"glyphs"`` or ``"digits"``).
        n_way, k_shot, seed: the default task.
        distance: ``sqeuclidean`` (prototypical networks), ``euclidean`` or ``cosine``.
        k_neighbours: support images shown.
        projection: ``"pca"`` or ``"umap"``.
        brush: the first brush width in canvas pixels; canvas_px: the canvas side.

    Attributes: ``canvas`` (:class:`SketchCanvas`), ``brush`` (slider), ``clear_button``,
    ``summary`` (the prediction, in words), ``neighbours_figure``, ``probabilities_figure``,
    ``projection_figure`` (FigureWidgets); after a drawing: ``image`` (``(H, W)`` as the
    model sees it), ``embedding`` (``(D,)``), ``probabilities`` (``(n,)`` float64, summing
    to 1), ``prediction`` (class id) and ``predicted_class`` (name), ``neighbours``
    (support indices, nearest first), ``point`` (the drawing's 2-D point); all ``None``
    (``neighbours`` empty) while nothing is drawn. ``updates`` counts the drawings
    embedded. ``origin`` says where the model came from (:func:`model_origin`: trained
    now, loaded from the model cache, interrupted while training, or given).
    """

    def __init__(self, model: Any = None, task: KShotTask | None = None, *,
                 dataset: str = "glyphs", n_way: int = 5, k_shot: int = 5, seed: int = 0,
                 distance: str = "sqeuclidean", k_neighbours: int = 6,
                 projection: str = "pca", brush: int = 20,
                 canvas_px: int = CANVAS_PX, callbacks: Any = None) -> None:
        super().__init__()
        self.distance = check_choice("distance", distance, DISTANCES)
        self.projection = check_choice("projection", projection, ("pca", "umap"))
        self.canvas_px = check_int("canvas_px", canvas_px, 64, 1024)
        if task is None:
            task = data.kshot_task(split_cached(dataset).target, n_way=n_way,
                                   k_shot=k_shot, seed=check_seed(seed))
        self.k_neighbours = check_int("k_neighbours", k_neighbours, 1, 30)
        if model is None:
            model = default_model(dataset, callbacks=callbacks)
        self.origin = model_origin(model)
        self.model: nn.Module = embedder_of(model)
        self.canvas = SketchCanvas(size=self.canvas_px, brush=float(brush))
        self.brush = widgets.IntSlider(value=check_int("brush", brush, 2, 60), min=2, max=60,
                                       description="brush", continuous_update=False)
        traitlets.dlink((self.brush, "value"), (self.canvas, "brush"), float)
        self.clear_button = widgets.Button(description="Clear", icon="eraser")
        self.summary = widgets.HTML()
        self.summary.add_class("dml-sketch-prediction")
        self.neighbours_figure = _figure_widget(height=200)
        self.probabilities_figure = _figure_widget(height=320, width=430)
        self.projection_figure = _figure_widget(height=360, width=460)
        self.updates = 0
        self._drawing: np.ndarray | None = None
        self._silent = False
        self._projector: Projector | None = None
        self._clear_state()
        self.set_task(task)
        controls = widgets.VBox(
            [widgets.HTML("<b>Draw a character</b> (hold the left mouse button)"),
             self.brush, self.clear_button, self.summary],
            layout=widgets.Layout(margin="0 0 0 16px"))
        self.children = [widgets.HBox([self.canvas, controls]), self.status,
                         self.neighbours_figure,
                         widgets.HBox([self.probabilities_figure, self.projection_figure],
                                      layout=widgets.Layout(flex_flow="row wrap"))]
        self.canvas.observe(self._guard(self._on_strokes), names="strokes")
        self.clear_button.on_click(self._guard(lambda button: self.clear()))

    # --- state ---------------------------------------------------------------------------
    def _clear_state(self) -> None:
        self.image: np.ndarray | None = None
        self.embedding: torch.Tensor | None = None
        self.probabilities: np.ndarray | None = None
        self.prediction: int | None = None
        self.predicted_class: str | None = None
        self.neighbours: list[int] = []
        self._scores: list[float] = []
        self.point: np.ndarray | None = None

    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        """Change the canvas without the observer re-embedding it."""
        self._silent = True
        try:
            yield
        finally:
            self._silent = False

    def set_task(self, task: KShotTask) -> None:
        """Compare the drawing with another task's support set (and redraw): the strokes
        are rasterised again at the task's image size."""
        if not isinstance(task, KShotTask):
            raise ValueError(f"task must be a dml_kit.data.KShotTask, got "
                             f"{type(task).__name__}")
        shape = tuple(task.support_x.shape[1:])
        if len(shape) != 3 or shape[0] != 1:
            raise ValueError(f"task must hold grayscale images (1, H, W), got support "
                             f"images of shape {shape}: the sketchpad draws one channel")
        if task.support_x.shape[0] < 3:
            raise ValueError(f"the projection needs at least 3 support images, the task has "
                             f"{task.support_x.shape[0]} (n_way x k_shot)")
        self.task = task
        self.image_size = int(shape[1]), int(shape[2])
        sx = task.support_x.numpy()
        border = np.concatenate([sx[:, 0, 0], sx[:, 0, -1], sx[:, 0, :, 0], sx[:, 0, :, -1]], 1)
        #: the dataset's polarity: True when the support images are dark ink on white
        self.dark_ink = bool(np.median(border) > 0.5)
        self.extent = ink_extent(1 - sx if self.dark_ink else sx)
        self._embed_support()

    def set_model(self, model: Any) -> None:
        """Embed with another model (e.g. after more training): the support set and the
        current drawing are embedded again and every figure redrawn."""
        self.model = embedder_of(model)
        self.origin = model_origin(model)
        self._embed_support()

    def _embed_support(self) -> None:
        self.support_emb = embed(self.model, self.task.support_x)
        check_embeddings("support embeddings", self.support_emb)
        classes, self.prototypes = class_means(self.support_emb.double(), self.task.support_y)
        if classes.tolist() != list(range(self.task.n_way)):
            raise ValueError(f"task support labels must be 0 .. n_way-1, got "
                             f"{classes.tolist()}")
        emb = self.support_emb.double().numpy()
        self._mean = emb.mean(0)
        if self.projection == "pca":
            self.support_points = pca_2d(emb)
            # the PCA map itself: scores = (X - mean) W, W recovered exactly (least squares:
            # W's columns lie in the row space of X - mean), to place new points
            self._pca_map = np.linalg.lstsq(emb - self._mean, self.support_points,
                                            rcond=None)[0]
        else:
            self._projector = Projector("umap", seed=0)
            self.support_points = self._projector.fit_transform(emb)
        # the current drawing, seen by the new model or compared with the new task
        if self.canvas.strokes:
            self._on_strokes({"new": self.canvas.strokes})
        elif self._drawing is not None and self._drawing.shape == self.image_size:
            self._show(self._drawing)
        else:
            self._show(None)

    # --- input ---------------------------------------------------------------------------
    def draw_strokes(self, strokes: Any, *, width: float | None = None,
                     append: bool = False) -> None:
        """Set the drawing from Python, as if drawn on the canvas: ``strokes`` is a list of
        ``(P, 2)`` point lists (x, y in canvas pixels, ``0 .. canvas_px``, origin top
        left) or of ``{"points": ..., "width": ...}`` dicts; ``width`` defaults to the
        brush. ``append=True`` adds them to the current drawing. Bad input raises
        ``ValueError`` (see :func:`check_strokes`) and leaves the drawing as it was."""
        w = float(self.brush.value) if width is None else width
        new = check_strokes(strokes, self.canvas_px, width=w)
        self.canvas.strokes = (list(self.canvas.strokes) if append else []) + new
        if self.error is not None:
            raise RuntimeError(self.error)

    def set_image(self, image: Any, *, fit: bool = False) -> None:
        """Set the drawing to an image ``(H, W)`` in [0, 1] in the task's polarity (e.g. one
        of its dataset's images): resized to the task's image size (:func:`fit_image`;
        ``fit=True`` also centres its ink box and scales it like a drawn one). The canvas
        is cleared.
        Raises ``ValueError`` naming ``image`` for a bad shape, NaN/inf or values outside
        [0, 1]."""
        h, w = self.image_size
        if h != w:
            raise ValueError(f"set_image needs square task images, got {h}x{w}")
        if self.dark_ink:
            image = 1 - _pixels(image)
        img = fit_image(image, size=h, extent=self.extent if fit else None)
        with self._quiet():
            self.canvas.strokes = []
        self._show(img if img.max() > 0 else None)

    def clear(self) -> None:
        """Clear the canvas and the results (what the *Clear* button does)."""
        with self._quiet():
            self.canvas.strokes = []
        self._show(None)

    def _on_strokes(self, change: dict[str, Any]) -> None:
        if self._silent:
            return
        strokes = check_strokes(change["new"], self.canvas_px, name="canvas strokes")
        if not strokes:
            self._show(None)
            return
        h, w = self.image_size
        if h != w:
            raise ValueError(f"the sketchpad needs square task images, got {h}x{w}")
        self._show(rasterize_strokes(strokes, canvas_px=self.canvas_px, size=h,
                                     extent=self.extent))

    # --- output --------------------------------------------------------------------------
    def _show(self, image: np.ndarray | None) -> None:
        """Embed ``image`` (bright ink, the task's size; ``None``: nothing drawn) and
        redraw."""
        self._clear_state()
        self._drawing = image
        if image is not None:
            self.image = (1 - image if self.dark_ink else image).astype(np.float32)
            x = torch.from_numpy(np.ascontiguousarray(self.image))[None, None]
            self.embedding = embed(self.model, x)[0]
            check_embeddings("the drawing's embedding", self.embedding[None])
            classes, probs = prototype_probabilities(self.embedding[None], self.support_emb,
                                                     self.task.support_y, self.distance)
            self.probabilities = probs[0].numpy()
            self.prediction = int(classes[int(np.argmax(self.probabilities))])
            self.predicted_class = str(self.task.class_names[self.prediction])
            feats = torch.cat([self.support_emb, self.embedding[None]])
            self.neighbours, self._scores = G.nearest_neighbours(
                feats, feats.shape[0] - 1, min(self.k_neighbours, feats.shape[0] - 1),
                distance=self.distance)
            self.point = self._project(self.embedding.double().numpy())
            self.updates += 1
        self._refresh()

    def _project(self, emb: np.ndarray) -> np.ndarray:
        if self.projection == "pca":
            return np.asarray((emb - self._mean) @ self._pca_map)
        assert self._projector is not None
        both = np.vstack([self.support_emb.double().numpy(), emb[None]])
        layout = self._projector.fit_transform(both)
        self.support_points = layout[:-1]
        return np.asarray(layout[-1])

    def _refresh(self) -> None:
        t = self.task
        names = [str(c) for c in t.class_names]
        labels = t.support_y.numpy()
        if self.image is None:
            firsts = [int(np.flatnonzero(labels == c)[0]) for c in range(t.n_way)]
            gallery = S.sketch_neighbours(None, t.support_x, labels, firsts, names)
        else:
            gallery = S.sketch_neighbours(self.image, t.support_x, labels, self.neighbours,
                                          names, scores=self._scores)
        _replace_figure(self.neighbours_figure, gallery)
        _replace_figure(self.probabilities_figure,
                        S.class_probability_bars(self.probabilities, names))
        protos = np.stack([labels == c for c in range(t.n_way)]).astype(float)
        proto_points = (protos @ self.support_points) / protos.sum(1, keepdims=True)
        _replace_figure(self.projection_figure, S.sketch_projection(
            self.support_points, labels, names, prototypes=proto_points, drawing=self.point,
            subtitle=f"{self.projection.upper()} of the {len(labels)} support embeddings; "
                     "stars: prototypes; ring: your drawing"))
        if self.probabilities is None:
            self.summary.value = _status("Nothing drawn yet: draw one of the characters "
                                         "shown below.")
        else:
            p = float(self.probabilities[self.prediction or 0])
            runner = np.sort(self.probabilities)[-2] if len(self.probabilities) > 1 else 0.0
            self.summary.value = _status(
                f"prediction: <b>{html.escape(self.predicted_class or '')}</b> "
                f"(p = {p:.1%}; runner-up {float(runner):.1%})")
        self.status.value = _status(
            "" if self.origin != "interrupted while training" else
            "The model's training was interrupted: it uses its best weights so far and was "
            "not cached. Run the cell again to train it fully.")

