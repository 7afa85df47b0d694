"""The sketchpad, headless: strokes set from Python (as the canvas sends them), rasterised
like the dataset's images, embedded, and the three figures updated."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dml_kit import data, methods
from dml_kit.experiments.config import get_preset
from dml_kit.metrics import embed, pairwise_scores
from dml_kit.models import for_shape
from dml_kit.viz import sketch as S
from dml_kit.widgets import Sketchpad, split_cached
from dml_kit.widgets.sketchpad import (
    SketchCanvas,
    check_strokes,
    fit_image,
    ink_extent,
    prototype_probabilities,
    rasterize_strokes,
)

#: an "A" (two slanted strokes and a bar) and an "O" (a polygon circle) on the 224 canvas
A_STROKES = [[[40, 200], [112, 24], [184, 200]], [[70, 130], [154, 130]]]
O_STROKES = [[[112 + 80 * np.cos(t), 112 + 80 * np.sin(t)]
              for t in np.linspace(0, 2 * np.pi, 25)]]


@pytest.fixture(scope="module")
def protonet() -> methods.SourceModel:
    """A protonet trained briefly on 40 source classes of glyphs (a few seconds)."""
    source = split_cached("glyphs").source.select_classes(range(40))
    config = get_preset("classroom").config.replace(
        source_epochs=2, source_patience=2, episodes_per_epoch=6, query_per_class=5)
    return methods.train_source("protonet", source, config, n_way=5, k_shot=5, seed=0)


@pytest.fixture(scope="module")
def task() -> data.KShotTask:
    return data.kshot_task(split_cached("glyphs").target, n_way=5, k_shot=5, seed=0)


@pytest.fixture()
def pad(protonet, task) -> Sketchpad:
    return Sketchpad(protonet, task)


# ---- rasterising -----------------------------------------------------------------------
def test_rasterize_matches_a_hand_computed_stroke():
    # canvas = image (28 px), no supersampling: a horizontal stroke 2 px wide at y = 14
    # covers pixel rows 13 and 14 (centres 0.5 px away: coverage 1 - 0.5 + 0.5 = 1) from
    # x = 4 to 24; row 12 and 15 are 1.5 px away (coverage 0)
    img = rasterize_strokes([{"points": [[4, 14], [24, 14]], "width": 2}], canvas_px=28,
                            size=28, extent=None, supersample=1)
    expected = np.zeros((28, 28), np.float32)
    expected[13:15, 4:24] = 1.0
    # the round caps reach x = 3 and 24 at distance 0.5 + ...: pixel 3's centre is 0.5 px
    # left of the end point, at distance sqrt(0.5^2 + 0.5^2) ~ 0.707 -> coverage 0.79
    cap = np.clip(1 - np.sqrt(0.5) + 0.5, 0, 1)
    expected[13:15, 3] = expected[13:15, 24] = cap
    np.testing.assert_allclose(img, expected, atol=1e-6)


def test_rasterize_centres_and_scales_like_the_glyphs():
    img = rasterize_strokes(A_STROKES, extent=16)
    assert img.shape == (28, 28) and img.dtype == np.float32
    assert img.max() == pytest.approx(1.0) and img.min() >= 0
    ink = img > 0.3
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    assert max(rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1) in (15, 16, 17)
    # the ink box is centred: equal margins up to a pixel
    assert abs(rows[0] - (27 - rows[-1])) <= 1 and abs(cols[0] - (27 - cols[-1])) <= 1
    # the same drawing half as large with half the brush (default 20) gives the same
    # image: the ink box is fitted, whatever size the reader drew at
    half = [[[112 + (x - 112) / 2, 112 + (y - 112) / 2] for x, y in s] for s in A_STROKES]
    small = rasterize_strokes([{"points": s, "width": 10} for s in half], extent=16)
    np.testing.assert_allclose(small, img, atol=1e-5)
    thin = rasterize_strokes([{"points": s, "width": 4} for s in A_STROKES], extent=16)
    assert thin.sum() < img.sum() and np.corrcoef(thin.ravel(), img.ravel())[0, 1] > 0.8
    assert not rasterize_strokes([]).any()


def test_ink_extent_and_fit_image_follow_the_dataset(task):
    boxes = np.zeros((4, 1, 12, 12))
    boxes[0, 0, 1:5, 2:8] = 0.9          # 4 x 6: long side 6
    boxes[1, 0, 0:10, 3:5] = 0.5         # 10 x 2: 10
    boxes[2, 0, 2:10, 2:10] = 1.0        # 8 x 8: 8
    boxes[3, 0, 0:12, 0:12] = 0.2        # below the ink threshold: skipped
    assert ink_extent(boxes) == 8.0
    with pytest.raises(ValueError, match="no ink"):
        ink_extent(boxes[3:])
    image = task.query_x[0, 0]
    same = fit_image(image, size=28)
    np.testing.assert_allclose(same, image.numpy() / image.max().item(), atol=1e-6)
    fitted = fit_image(image, size=28, extent=10)
    ink = fitted > 0.3
    assert max(ink.any(1).sum(), ink.any(0).sum()) in (9, 10, 11)
    assert fit_image(np.zeros((10, 10))).max() == 0


def test_prototype_probabilities_by_hand():
    support = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 3.0], [0.0, 1.0]])
    labels = torch.tensor([0, 0, 1, 1])        # prototypes (1, 0) and (0, 2)
    query = torch.tensor([[1.0, 1.0]])         # squared distances 1 and 2
    classes, p = prototype_probabilities(query, support, labels)
    e1, e2 = np.exp(-1.0), np.exp(-2.0)
    np.testing.assert_allclose(p.numpy(), [[e1 / (e1 + e2), e2 / (e1 + e2)]], atol=1e-12)
    assert classes.tolist() == [0, 1] and p.dtype == torch.float64
    with pytest.raises(ValueError, match="query_emb"):
        prototype_probabilities(torch.tensor([[float("nan"), 0.0]]), support, labels)


# ---- the panel -------------------------------------------------------------------------
def test_a_drawing_updates_probabilities_neighbours_and_projection(pad, task):
    assert pad.error is None and pad.probabilities is None and pad.point is None
    assert pad.neighbours_figure.layout.meta["drawn"] is False
    assert "Nothing drawn" in pad.summary.value
    pad.draw_strokes(A_STROKES)
    assert pad.error is None and pad.updates == 1
    assert pad.probabilities.shape == (5,)
    assert pad.probabilities.sum() == pytest.approx(1.0, abs=1e-12)
    assert pad.prediction == int(np.argmax(pad.probabilities))
    assert pad.predicted_class in pad.summary.value
    # the figures show the same numbers
    bars = pad.probabilities_figure
    np.testing.assert_allclose(bars.layout.meta["probabilities"], pad.probabilities)
    assert bars.layout.meta["predicted"] == pad.prediction
    assert pad.neighbours_figure.layout.meta["drawn"] is True
    assert pad.neighbours_figure.layout.meta["indices"] == pad.neighbours
    assert len(pad.neighbours) == 6
    np.testing.assert_allclose(pad.projection_figure.layout.meta["drawing"], pad.point)
    # probabilities by hand: softmax of -squared distances to the class means
    emb = embed(pad.model, torch.from_numpy(pad.image)[None, None])
    s = embed(pad.model, task.support_x).double()
    protos = torch.stack([s[task.support_y == c].mean(0) for c in range(5)])
    d2 = ((emb.double() - protos) ** 2).sum(1)
    np.testing.assert_allclose(pad.probabilities, torch.softmax(-d2, 0).numpy(), atol=1e-9)
    # neighbours by hand: the nearest support embeddings, nearest first
    order = np.argsort(-pairwise_scores(emb, s, "sqeuclidean")[0].numpy(), kind="stable")
    assert pad.neighbours == [int(i) for i in order[:6]]
    # a second, different drawing moves everything
    before = (pad.probabilities.copy(), list(pad.neighbours), pad.point.copy())
    fig_before = pad.neighbours_figure.data[0].source
    pad.draw_strokes(O_STROKES)
    assert pad.updates == 2
    assert not np.allclose(pad.probabilities, before[0])
    assert not np.allclose(pad.point, before[2])
    assert pad.neighbours_figure.data[0].source != fig_before
    assert pad.probabilities.sum() == pytest.approx(1.0, abs=1e-12)


def test_the_support_layout_stays_put_and_the_drawing_is_projected_linearly(pad):
    fixed = pad.projection_figure.data[0].x
    pad.draw_strokes(A_STROKES)
    np.testing.assert_allclose(pad.projection_figure.data[0].x, fixed)
    # PCA is linear: the drawing's point is its centred embedding times the PCA map, and
    # each prototype star sits at the mean of its class's points
    emb = pad.embedding.double().numpy()
    np.testing.assert_allclose(pad.point, (emb - pad._mean) @ pad._pca_map, atol=1e-9)
    stars = pad.projection_figure.data[5]
    labels = pad.task.support_y.numpy()
    assert stars.x[2] == pytest.approx(pad.support_points[labels == 2, 0].mean())
    assert len(pad.projection_figure.data) == 5 + 2      # classes, prototypes, drawing


def test_actual_images_of_two_classes_are_predicted_as_those_classes(protonet, task, pad):
    """Two 'drawings' that are query images of two task classes, each classified right by
    the library's nearest-prototype rule, come out as those classes in the panel."""
    s, q = embed(protonet.model, task.support_x), embed(protonet.model, task.query_x)
    classes, p = prototype_probabilities(q, s, task.support_y)
    right = np.flatnonzero((classes[p.argmax(1)] == task.query_y).numpy())
    picks: dict[int, int] = {}
    for i in right:
        picks.setdefault(int(task.query_y[i]), int(i))
    assert len(picks) >= 2, "the test protonet gets fewer than two classes right"
    (c1, i1), (c2, i2) = list(picks.items())[:2]
    pad.set_image(task.query_x[i1, 0])
    assert pad.prediction == c1 and pad.predicted_class == task.class_names[c1]
    first = pad.probabilities.copy()
    pad.set_image(task.query_x[i2])                       # (1, H, W) is accepted too
    assert pad.prediction == c2 and pad.predicted_class == task.class_names[c2]
    np.testing.assert_allclose(pad.probabilities, p[i2].numpy(), atol=1e-9)
    assert not np.allclose(first, pad.probabilities)


def test_clear_button_brush_and_canvas_round_trip(pad):
    pad.brush.value = 30
    assert pad.canvas.brush == 30.0
    pad.draw_strokes(A_STROKES)
    assert [s["width"] for s in pad.canvas.strokes] == [30.0, 30.0]
    pad.draw_strokes(O_STROKES, append=True, width=5)
    assert len(pad.canvas.strokes) == 3 and pad.canvas.strokes[2]["width"] == 5.0
    # the browser sends the whole list after each stroke: the same path
    pad.canvas.strokes = pad.canvas.strokes[:1]
    assert pad.error is None and pad.updates == 3
    pad.clear_button.click()
    assert pad.canvas.strokes == [] and pad.probabilities is None and pad.image is None
    assert pad.neighbours_figure.layout.meta["drawn"] is False
    assert pad.probabilities_figure.layout.meta["predicted"] is None
    assert pad.projection_figure.layout.meta["drawing"] is None
    canvas = SketchCanvas()
    assert {"strokes", "brush", "size"} <= set(canvas.keys)
    assert "export default" in canvas._esm and "pointerdown" in canvas._esm


@pytest.mark.parametrize("strokes,message", [
    ([[[10, 10, 3]]], r"strokes\[0\] must be a \(P, 2\) array"),
    ([[]], r"must be a \(P, 2\) array|has no point"),
    ([np.zeros((0, 2))], r"strokes\[0\] has no point"),
    ([[[10, 10], [float("nan"), 5]]], r"strokes\[0\] holds 1 non-finite"),
    ([[[10, 10]], [[10, np.inf]]], r"strokes\[1\] holds 1 non-finite"),
    ([[[10, 10], [300, 5]]], r"outside the canvas: x and y must be in \[0, 224\]"),
    ([{"points": [[1, 1]], "width": 0}], r"strokes\[0\] width"),
    ("abc", "must be a list of strokes"),
])
def test_bad_strokes_are_refused_by_name(pad, strokes, message):
    pad.draw_strokes(A_STROKES)
    before = pad.probabilities.copy()
    with pytest.raises(ValueError, match=message):
        pad.draw_strokes(strokes)
    np.testing.assert_allclose(pad.probabilities, before)  # the drawing stays as it was
    assert len(pad.canvas.strokes) == 2


def test_bad_images_and_bad_canvas_messages(pad):
    for image, message in [(np.zeros(28), r"\(H, W\)"), (np.zeros((3, 28, 28)), r"\(H, W\)"),
                           (np.full((28, 28), np.nan), "784 non-finite"),
                           (np.full((28, 28), 2.0), r"in \[0, 1\]"),
                           ("x", "2-D array")]:
        with pytest.raises(ValueError, match=message):
            pad.set_image(image)
    pad.set_image(np.zeros((28, 28)))                         # a blank image: nothing drawn
    assert pad.probabilities is None
    # junk from the browser side lands in the status line, not in the kernel log
    pad.canvas.strokes = [{"width": 5, "points": [[1, float("nan")]]}]
    assert pad.error is not None and "canvas strokes[0]" in pad.error
    assert "non-finite" in pad.status.value
    with pytest.raises(ValueError, match="model must be"):
        Sketchpad("not a model", pad.task)
    with pytest.raises(ValueError, match="distance"):
        Sketchpad(pad.model, pad.task, distance="manhattan")


def test_any_model_and_another_dataset(protonet, task):
    run = methods.run("protonet", task, protonet)
    pad = Sketchpad(run, task)                              # a RunResult's model
    pad.draw_strokes(A_STROKES)
    by_source = Sketchpad(protonet, task)
    by_source.draw_strokes(A_STROKES)
    np.testing.assert_allclose(pad.probabilities, by_source.probabilities, atol=1e-9)
    torch.manual_seed(0)
    other = for_shape((1, 28, 28), 32)
    updates = pad.updates
    pad.set_model(other)                      # the drawing is embedded again by the new one
    assert pad.error is None and pad.updates == updates + 1
    assert not np.allclose(pad.probabilities, by_source.probabilities)
    np.testing.assert_allclose(pad.image, by_source.image)  # the same drawing
    pad.set_task(data.kshot_task(split_cached("glyphs").target, n_way=3, k_shot=2, seed=4))
    assert pad.probabilities.shape == (3,) and len(pad.projection_figure.data) == 3 + 2
    # digits: 8 x 8 images, an MLP; the drawing follows the task's image size and ink size
    torch.manual_seed(0)
    small = Sketchpad(for_shape((1, 8, 8), 16), dataset="digits", n_way=3, k_shot=2)
    small.draw_strokes(A_STROKES)
    assert small.image.shape == (8, 8) and small.extent == 8.0
    assert small.probabilities.shape == (3,) and small.error is None


def test_figure_builders_refuse_bad_numbers():
    with pytest.raises(ValueError, match="sum to 1"):
        S.class_probability_bars([0.5, 0.2], ["a", "b"])
    with pytest.raises(ValueError, match=r"\(n,\) with n=2"):
        S.class_probability_bars([1.0], ["a", "b"])
    with pytest.raises(ValueError, match="finite"):
        S.class_probability_bars([np.nan, 1.0], ["a", "b"])
    fig = S.sketch_projection(np.zeros((3, 2)), [0, 1, 1], ["a", "b"], drawing=None)
    assert len(fig.data) == 2 + 2 and fig.layout.meta["drawing"] is None
    with pytest.raises(ValueError, match="drawing must be a finite"):
        S.sketch_projection(np.zeros((3, 2)), [0, 1, 1], ["a", "b"], drawing=[np.inf, 0])
    assert check_strokes([], 224) == []
