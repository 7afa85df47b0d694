"""Figure builders and the live dashboard: assertions on the figures' data."""

from __future__ import annotations

import os
import signal
import types

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch

from dml_kit import stats
from dml_kit.viz import figures as F


@pytest.fixture
def results() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for m_i, method in enumerate(["scratch", "metric", "adapted_metric"]):
        for k in (1, 5, 10):
            for n in (5, 10):
                for seed in range(3):
                    acc = min(0.99, 0.3 + 0.1 * m_i + 0.03 * k - 0.01 * n + 0.02 * rng.random())
                    rows.append(dict(method=method, k=k, n=n, seed=seed, accuracy=acc))
    return pd.DataFrame(rows)


def _task(n_way: int, k_shot: int, n_query: int = 6, size: int = 8) -> types.SimpleNamespace:
    return types.SimpleNamespace(
        support_x=torch.rand(n_way * k_shot, 1, size, size),
        support_y=torch.arange(n_way).repeat_interleave(k_shot),
        query_x=torch.rand(n_way * n_query, 1, size, size),
        query_y=torch.arange(n_way).repeat(n_query),
        class_names=[f"c{i}" for i in range(n_way)])


# ---- style -----------------------------------------------------------------------------
def test_palette_is_distinct_and_grows():
    assert len(set(F.palette(8))) == 8
    many = F.palette(40)
    assert len(many) == 40 and len(set(many)) == 40
    with pytest.raises(ValueError, match="n"):
        F.palette(-1)


def _lab(hex_colour: str, simulate: np.ndarray | None = None) -> np.ndarray:
    """CIE L*a*b* (D65) of ``#RRGGBB``, optionally after a colour-vision-deficiency
    matrix applied in linear RGB (Machado, Oliveira & Fernandes 2009, severity 1)."""
    c = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)]) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    if simulate is not None:
        lin = np.clip(simulate @ lin, 0.0, 1.0)
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                    [0.0193, 0.1192, 0.9505]]) @ lin / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


_DEUTERANOPIA = np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                          [-0.011820, 0.042940, 0.968881]])
_PROTANOPIA = np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                        [-0.003882, -0.048116, 1.051998]])


@pytest.mark.parametrize(("vision", "matrix", "floor"), [
    ("normal", None, 25.0), ("deuteranopia", _DEUTERANOPIA, 15.0),
    ("protanopia", _PROTANOPIA, 15.0)])
def test_ten_class_palette_stays_apart_for_colour_blind_readers(vision, matrix, floor):
    """A 10-class projection's colours differ by a CIE76 distance of at least ``floor``
    (10 already reads as another colour), also as a red-green colour-blind reader sees
    them. The palette before stop 25 had two Tableau oranges 15 (normal) and 4
    (deuteranopia) from Okabe-Ito's orange and vermilion."""
    colours = F.palette(10)
    labs = [_lab(c, matrix) for c in colours]
    closest = min((float(np.linalg.norm(labs[i] - labs[j])), colours[i], colours[j])
                  for i in range(10) for j in range(i + 1, 10))
    assert closest[0] >= floor, \
        f"{vision}: {closest[1]} and {closest[2]} differ by {closest[0]:.1f}"


# ---- norm histogram --------------------------------------------------------------------
def test_norm_histogram_overall_and_sec_line():
    emb = torch.randn(200, 16) * 2
    fig = F.norm_histogram(emb)
    assert len(fig.data) == 1 and isinstance(fig.data[0], go.Histogram)
    norms = emb.norm(dim=1).numpy()
    np.testing.assert_allclose(np.asarray(fig.data[0].x), norms, rtol=1e-6)
    assert fig.layout.shapes[0].x0 == pytest.approx(norms.mean(), rel=1e-6)
    assert fig.layout.meta["cv"] == pytest.approx(norms.std() / norms.mean(), rel=1e-5)
    assert "CV" in fig.layout.title.text
    fixed = F.norm_histogram(norms, sec_target=3.0)
    assert fixed.layout.shapes[0].x0 == 3.0
    assert len(F.norm_histogram(norms, sec_target=False).layout.shapes) == 0


def test_norm_histogram_per_class():
    emb = torch.randn(90, 4)
    labels = torch.arange(3).repeat(30)
    fig = F.norm_histogram(emb, labels, ["a", "b", "c"], per_class=True)
    assert [t.name for t in fig.data] == ["a", "b", "c"]
    assert sum(len(t.x) for t in fig.data) == 90
    with pytest.raises(ValueError, match="labels"):
        F.norm_histogram(emb, per_class=True)


# ---- projection scatter ----------------------------------------------------------------
def test_projection_scatter_one_trace_per_class_with_hover():
    pts = np.random.default_rng(0).normal(size=(30, 2))
    labels = np.repeat([0, 1, 2], 10)
    fig = F.projection_scatter(pts, labels, ["alpha", "beta", "gamma"], indices=np.arange(30) + 100)
    assert [t.name for t in fig.data] == ["alpha", "beta", "gamma"]
    assert fig.data[1].customdata[0][1] == "beta"
    assert fig.data[1].customdata[0][0] == 110
    assert "class" in fig.data[0].hovertemplate and "index" in fig.data[0].hovertemplate
    thumbs = F.projection_scatter(pts, labels, thumbnails=np.random.rand(30, 1, 8, 8))
    assert len(thumbs.layout.images) == 30
    assert thumbs.layout.images[0].source.startswith("data:image/png;base64,")
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        F.projection_scatter(np.zeros((5, 3)), np.zeros(5))


# ---- learning curves -------------------------------------------------------------------
def test_learning_curves_from_history_rows():
    epochs = [{"phase": p, "epoch": e, "loss": 1 / e, "score": 0.1 * e}
              for p in ("source", "adapt") for e in range(1, 4)]
    steps = [{"phase": "source", "epoch": e, "step": s, "loss": 1.0}
             for e in range(1, 4) for s in range(5)]
    fig = F.learning_curves(epochs, steps)
    names = [t.name for t in fig.data]
    assert names == ["source step loss", "source loss", "source score", "adapt loss",
                     "adapt score"]
    assert max(fig.data[0].x) == pytest.approx(3.0)
    assert list(fig.data[2].y) == pytest.approx([0.1, 0.2, 0.3])
    assert len(F.learning_curves(pd.DataFrame(epochs)).data) == 4
    with pytest.raises(ValueError, match="epochs or steps"):
        F.learning_curves()


# ---- results figures -------------------------------------------------------------------
def test_accuracy_vs_k_mean_and_band(results):
    fig = F.accuracy_vs_k(results)
    lines = [t for t in fig.data if t.mode == "lines+markers"]
    bands = [t for t in fig.data if t.fill == "toself"]
    assert len(lines) == 6 and len(bands) == 6  # 3 methods x 2 panels (n = 5, 10)
    first = lines[0]
    expected = results[(results.method == "scratch") & (results.n == 5)].groupby("k").accuracy
    np.testing.assert_allclose(first.y, expected.mean().to_numpy())
    band = bands[0]
    # default band: the 95% t-interval of the mean, mean + t(0.975, n-1) * s / sqrt(n)
    count = expected.count().to_numpy()
    half = np.array([stats.t_quantile(int(c)) for c in count]) * expected.std().to_numpy() \
        / np.sqrt(count)
    np.testing.assert_allclose(np.asarray(band.y)[:3], expected.mean().to_numpy() + half)
    std_band = [t for t in F.accuracy_vs_k(results, spread="std").data if t.fill == "toself"]
    np.testing.assert_allclose(np.asarray(std_band[0].y)[:3],
                               expected.mean().to_numpy() + expected.std().to_numpy())
    bars = F.accuracy_vs_k(results[results.n == 5], style="errorbars")
    assert len(bars.data) == 3 and bars.data[0].error_y.array is not None
    with pytest.raises(ValueError, match="spread"):
        F.accuracy_vs_k(results, spread="iqr")
    with pytest.raises(ValueError, match="no column"):
        F.accuracy_vs_k(results, value="recall")


def test_method_heatmap_accuracy_and_error_reduction(results):
    fig = F.method_heatmap(results)
    z = np.asarray(fig.data[0].z)
    assert z.shape == (3, 6)
    assert list(fig.data[0].y) == ["scratch", "metric", "adapted_metric"]
    assert fig.data[0].x[0] == "k=1, n=5"
    mean = results[(results.method == "metric") & (results.k == 1) & (results.n == 5)]
    assert z[1, 0] == pytest.approx(mean.accuracy.mean())
    er = F.method_heatmap(results, value="error_reduction", baseline="scratch")
    zr = np.asarray(er.data[0].z)
    np.testing.assert_allclose(zr[0], 0.0)
    assert (zr[2] > 0).all()  # adapted_metric is better than scratch everywhere here
    with pytest.raises(ValueError, match="baseline"):
        F.method_heatmap(results, value="error_reduction")
    # colour limits are explicit either way: the accuracy scale spans the accuracies, the
    # diverging one is symmetric about 0 (a widget switching between them keeps neither)
    assert fig.data[0].zauto is False and er.data[0].zauto is False
    assert (fig.data[0].zmin, fig.data[0].zmax) == pytest.approx((np.nanmin(z), np.nanmax(z)))
    assert er.data[0].zmin == pytest.approx(-np.nanmax(np.abs(zr))) == -er.data[0].zmax


def test_accuracy_vs_distance_draws_settings_per_method():
    rows = pd.DataFrame([dict(method=m, distance=d, setting=st, k=k, **{"recall@1": 0.9 - d / 100})
                         for m in ("a", "b") for d in (10, 30, 60)
                         for st, k in (("zero-shot", 0), ("few-shot", 5))])
    fig = F.accuracy_vs_distance(rows, marker=(30, "split 1"), ticks=[10, 30, 60])
    assert [t.name for t in fig.data] == ["a (zero-shot)", "a (5-shot)", "b (zero-shot)",
                                          "b (5-shot)"]
    assert list(fig.data[0].x) == [10, 30, 60]
    assert fig.data[1].line.dash == "dash"
    assert fig.layout.shapes[0].x0 == 30 and list(fig.layout.xaxis.tickvals) == [10, 30, 60]
    empty = F.empty_shift_curve(marker=(10, "split 0"), ticks=[10, 30])
    assert not empty.data and empty.layout.shapes[0].x0 == 10


# ---- task gallery ----------------------------------------------------------------------
@pytest.mark.parametrize("n_way,k_shot", [(3, 2), (5, 4)])
def test_task_gallery_shows_n_by_k_support(n_way, k_shot):
    fig = F.task_gallery(_task(n_way, k_shot), n_query=3)
    image, cells = fig.data
    assert isinstance(image, go.Image)
    pixels = F.decode_image(image.source)
    roles = [c[0] for c in cells.customdata]
    assert roles.count("support") == n_way * k_shot
    assert roles.count("query") == n_way * 3
    h = pixels.shape[0]
    assert h == n_way * 8 + (n_way - 1) * 2  # n rows of 8-px images with 2-px gaps
    assert fig.layout.meta["n_way"] == n_way and fig.layout.meta["k_shot"] == k_shot
    assert list(fig.layout.yaxis.ticktext) == [f"c{i}" for i in range(n_way)]


def test_task_gallery_places_each_support_image():
    task = _task(2, 2, size=4)
    task.support_x = torch.stack([torch.full((1, 4, 4), v) for v in (0.0, 0.25, 0.5, 1.0)])
    z = F.decode_image(F.task_gallery(task, n_query=0).data[0].source)
    assert z[1, 1, 0] == 0 and z[1, 4 + 2 + 1, 0] == 64  # class 0: shots 1, 2
    assert z[4 + 2 + 1, 1, 0] == 128 and z[4 + 2 + 1, 7, 0] == 255  # class 1


# ---- live dashboard --------------------------------------------------------------------
def _toy_training(dash, *, epochs: int = 3, interrupt_at: int | None = None):
    from dml_kit.training import TrainConfig, fit

    torch.manual_seed(0)
    y = torch.arange(4).repeat(40)
    x = torch.randn(160, 12) + torch.nn.functional.one_hot(y, 12).float() * 3
    embedder = torch.nn.Sequential(torch.nn.Linear(12, 32), torch.nn.ReLU(),
                                   torch.nn.Linear(32, 8))
    model = torch.nn.Sequential(embedder, torch.nn.Linear(8, 4))
    calls = {"n": 0}

    def batches(epoch):
        perm = torch.randperm(160, generator=torch.Generator().manual_seed(epoch))
        return [(x[perm[i:i + 20]], y[perm[i:i + 20]]) for i in range(0, 160, 20)]

    def step_loss(batch):
        calls["n"] += 1
        if interrupt_at is not None and calls["n"] == interrupt_at:
            raise KeyboardInterrupt
        return torch.nn.functional.cross_entropy(model(batch[0]), batch[1])

    def validate():
        return float((model(x).argmax(1) == y).float().mean())

    return fit(model, batches, step_loss, TrainConfig(max_epochs=epochs, patience=None),
               validate=validate, callbacks=[dash], probe=(x[:80], y[:80]), embedder=embedder)


def test_live_dashboard_updates_figures_in_place():
    from dml_kit.viz.live import LiveDashboard

    dash = LiveDashboard(fps=30, max_draw_share=1.0, class_names=list("ABCD"))
    curves_traces = tuple(dash.curves.data)
    result = _toy_training(dash, epochs=3)
    assert result.epochs == 3
    assert tuple(dash.curves.data) == curves_traces  # same trace objects, data replaced
    assert list(dash.curves.data[1].x) == [1, 2, 3]  # epoch losses
    assert len(dash.curves.data[2].y) == 3  # validation scores
    assert len(dash.curves.data[0].x) == 24  # every step loss (8 steps x 3 epochs)
    assert [t.name for t in dash.projection_fig.data] == list("ABCD")
    assert sum(len(t.x) for t in dash.projection_fig.data) == 80
    assert dash.norms_fig.layout.shapes[0].x0 == pytest.approx(
        dash.norms_fig.layout.meta["mean"])
    assert len(dash.norms_fig.data[0].x) == 80
    stats = dash.stats()
    assert stats["frames"] >= 2 and 0 < stats["draw_share"] < 1
    assert "done" in dash.header.value


def test_live_dashboard_throttles_frames():
    from dml_kit.viz.live import LiveDashboard

    dash = LiveDashboard(fps=0.2)  # at most one frame per 5 s, plus first and last
    _toy_training(dash, epochs=2)
    assert dash.stats()["frames"] <= 3
    assert len(dash.curves.data[0].x) == 16  # the last frame shows everything


def test_live_dashboard_after_interrupt_is_consistent():
    from dml_kit.viz.live import LiveDashboard

    dash = LiveDashboard(fps=30, max_draw_share=1.0)
    result = _toy_training(dash, epochs=3, interrupt_at=13)  # during epoch 2
    assert result.interrupted and dash.interrupted
    assert "interrupted" in dash.header.value
    c = dash.curves.data
    assert len(c[0].x) == len(c[0].y) == 12 and list(c[1].x) == [1]
    for trace in dash.projection_fig.data:
        assert len(trace.x) == len(trace.y) == len(trace.customdata)


def test_atomic_section_defers_keyboard_interrupt():
    from dml_kit.viz.live import atomic_section

    finished = []
    with pytest.raises(KeyboardInterrupt):
        with atomic_section():
            os.kill(os.getpid(), signal.SIGINT)
            finished.append(True)  # still runs: the interrupt waits for the section's end
    assert finished == [True]


def test_live_dashboard_validates_arguments():
    from dml_kit.viz.live import LiveDashboard

    with pytest.raises(ValueError, match="fps"):
        LiveDashboard(fps=0)
    with pytest.raises(ValueError, match="projection"):
        LiveDashboard(projection="tsne")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_live_dashboard_umap_replaces_pca_when_ready():
    """Needs umap-learn's numba kernels (compiled once per machine, then cached)."""
    from dml_kit.viz.live import LiveDashboard
    from dml_kit.viz.projection import wait_for_umap

    dash = LiveDashboard(fps=30, max_draw_share=1.0, projection="umap")
    assert wait_for_umap(timeout=280)
    _toy_training(dash, epochs=2)
    dash.wait_for_projection(timeout=120)
    dash.draw(force=True)
    assert dash.projection_fig.layout.meta["method"] == "UMAP"
    assert sum(len(t.x) for t in dash.projection_fig.data) == 80
    assert dash.stats()["umap_layouts"] >= 1


# ---- pair similarities, prototypes, fingerprints -------------------------------------------
def test_pair_similarities_by_hand():
    emb = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    labels = torch.tensor([0, 0, 1, 1])
    pos, neg = F.pair_similarities(emb, labels)
    # positive pairs (0,1): same direction; (2,3): 45 degrees
    np.testing.assert_allclose(sorted(pos), sorted([1.0, np.sqrt(0.5)]), rtol=1e-6)
    # negative pairs (0,2), (0,3), (1,2), (1,3): 0, cos 45, 0, cos 45
    np.testing.assert_allclose(sorted(neg), [0, 0, np.sqrt(0.5), np.sqrt(0.5)], atol=1e-7)
    with pytest.raises(ValueError, match="labels"):
        F.pair_similarities(emb, labels[:3])


def test_pair_similarity_histogram_traces_and_loss():
    apart = torch.tensor([[1.0, 0.0], [1.0, 0.01], [-1.0, 0.0], [-1.0, 0.01]])
    fig = F.pair_similarity_histogram(apart, torch.tensor([0, 0, 1, 1]), title="apart")
    assert [t.name for t in fig.data] == ["positive pairs s+", "negative pairs s-"]
    assert all(t.histnorm == "probability" and t.xbins.start == -1 for t in fig.data)
    assert len(fig.data[0].x) == 2 and len(fig.data[1].x) == 4
    meta = fig.layout.meta
    assert meta["n_positive"] == 2 and meta["n_negative"] == 4
    assert meta["positive_mean"] == pytest.approx(1.0, abs=1e-3)
    assert meta["negative_mean"] == pytest.approx(-1.0, abs=1e-3)
    assert meta["histogram_loss"] == pytest.approx(0.0, abs=1e-6)   # no overlap
    assert fig.layout.title.text == "apart: histogram loss 0.000"
    # every positive pair opposite, some negatives identical: a negative always wins
    swapped = F.pair_similarity_histogram(apart, torch.tensor([0, 1, 0, 1]))
    assert swapped.layout.meta["histogram_loss"] > 0.4
    plain = F.pair_similarity_histogram(apart, torch.tensor([0, 0, 1, 1]),
                                        histogram_loss=False, title="t")
    assert plain.layout.title.text == "t" and plain.layout.meta["histogram_loss"] is None


def test_prototype_scatter_takes_prototypes_and_accuracy():
    from dml_kit import metrics

    support = torch.tensor([[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [10.0, 0.0, 1.0],
                            [10.0, 2.0, 1.0]])
    support_y = torch.tensor([0, 0, 1, 1])
    prototypes = torch.tensor([[1.0, 0.0, 0.0], [10.0, 1.0, 1.0]])   # the class means
    query = torch.tensor([[1.0, 1.0, 0.0], [9.0, 1.0, 0.0], [6.0, 0.0, 0.0],
                          [4.0, 0.0, 0.0]])
    query_y = torch.tensor([0, 1, 0, 1])            # the last two: 6 is nearer c_1, 4 c_0
    accuracy = metrics.prototype_accuracy(support, support_y, query, query_y)
    assert accuracy == pytest.approx(0.5)
    fig = F.prototype_scatter(query, query_y, prototypes, ["a", "b"], accuracy=accuracy,
                              k_shot=2)
    assert fig.layout.meta == {"accuracy": 0.5, "k_shot": 2, "n_way": 2}
    assert "2-shot" in fig.layout.title.text and "0.50" in fig.layout.title.text
    assert [t.name for t in fig.data] == ["a", "b", "prototypes"]
    stars = fig.data[-1]
    assert stars.marker.symbol == "star" and len(stars.x) == 2
    # the 2-D layout is a PCA of queries + prototypes: distances along the main axis keep
    # their order (c_1 is furthest from query 0)
    xs = np.concatenate([fig.data[0].x, fig.data[1].x])
    assert abs(stars.x[1] - stars.x[0]) > abs(xs.max() - xs.min()) * 0.7
    bare = F.prototype_scatter(query, query_y, prototypes)   # numbers only label the figure
    assert bare.layout.meta["accuracy"] is None and "accuracy" not in bare.layout.title.text
    with pytest.raises(ValueError, match="query_y"):
        F.prototype_scatter(query, torch.tensor([0, 0, 2, 2]), prototypes)
    with pytest.raises(ValueError, match="same D"):
        F.prototype_scatter(query, query_y, prototypes[:, :2])


def test_figure_fingerprint_tracks_data_and_optionally_layout():
    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4]))
    before, before_all = F.figure_fingerprint(fig), F.figure_fingerprint(fig, layout=True)
    fig.update_layout(title="new title")
    assert F.figure_fingerprint(fig) == before
    assert F.figure_fingerprint(fig, layout=True) != before_all
    fig.data[0].y = [3, 5]
    assert F.figure_fingerprint(fig) != before


def test_accuracy_vs_k_draws_the_chance_line(results):
    fig = F.accuracy_vs_k(results, chance=0.2)
    assert fig.layout.shapes[0].y0 == fig.layout.shapes[0].y1 == 0.2
    assert fig.layout.shapes[0].line.dash == "dot"
    assert not F.accuracy_vs_k(results).layout.shapes
    with pytest.raises(ValueError, match="chance"):
        F.accuracy_vs_k(results, chance=1.5)


# ---- shift curves in the study's own format --------------------------------------------------
def _study_frame() -> pd.DataFrame:
    """Rows as dml_kit.experiments.generalisation_study returns them (its COLUMNS)."""
    from dml_kit.experiments.shift_study import COLUMNS

    rows = []
    for split, distance in enumerate((10.0, 30.0)):
        for seed in (0, 1):
            for setting, method, k, r1 in (("zero-shot", "metric", 0, 0.8 - distance / 100),
                                           ("few-shot", "adapted_metric", 5, 0.9 - distance / 100)):
                rows.append(dict(split=split, distance=distance, seed=seed, setting=setting,
                                 method=method, k=k, n_test_classes=20,
                                 **{"recall@1": r1 + 0.01 * seed, "map@r": r1 / 2},
                                 train_classes=20, seconds=1.0, loss="histogram",
                                 adaptation=None if setting == "zero-shot" else "full"))
    frame = pd.DataFrame(rows)
    assert list(frame.columns) == COLUMNS
    return frame


def test_accuracy_vs_distance_reads_the_study_frame():
    fig = F.accuracy_vs_distance(_study_frame())
    assert [t.name for t in fig.data] == ["metric (zero-shot)", "adapted_metric (5-shot)"]
    zero, few = fig.data
    assert list(zero.x) == [10.0, 30.0] and zero.line.dash == "solid"
    assert list(zero.y) == pytest.approx([0.705, 0.505])          # mean over the two seeds
    assert list(few.y) == pytest.approx([0.805, 0.605]) and few.line.dash == "dash"
    by_map = F.accuracy_vs_distance(_study_frame(), value="map@r")
    assert list(by_map.data[0].y) == pytest.approx([0.35, 0.25])


def test_shift_curve_frame_reads_the_one_shape_and_names_errors():
    study = _study_frame().to_dict("records")
    few_without_k = {"distance": 20.0, "setting": "few-shot", "recall@1": 0.75}
    long = F.shift_curve_frame(study + [few_without_k])
    assert list(long.columns) == ["distance", "method", "shots", "recall@1"]
    assert sorted(set(long["shots"])) == [0, 1, 5]
    assert long[long["method"] == ""]["recall@1"].tolist() == [0.75]
    with pytest.raises(ValueError, match="setting"):
        F.shift_curve_frame([{"distance": 1.0, "setting": "one-shot", "recall@1": 0.5}])
    with pytest.raises(ValueError, match="setting"):      # the old wide/long shapes: refused
        F.shift_curve_frame([{"distance": 1.0, "recall@1": 0.5}])
    with pytest.raises(ValueError, match="recall@1"):
        F.shift_curve_frame(pd.DataFrame({"distance": [1.0], "accuracy": [0.5]}))
    with pytest.raises(ValueError, match="empty"):
        F.shift_curve_frame(pd.DataFrame())


def test_method_bars_class_samples_and_empty_figure():
    from dml_kit import data

    bars = F.method_bars({"scratch": 0.4, "metric": 0.9}, chance=0.25, title="t")
    assert list(bars.data[0].x) == ["scratch", "metric"] and list(bars.data[0].y) == [0.4, 0.9]
    assert bars.layout.shapes[0].y0 == 0.25 and bars.layout.title.text == "t"
    digits = data.load("digits")
    fig = F.class_samples(digits, [0, 1, 2], [7, 8], max_classes=2)
    assert fig.layout.meta == {"train": [0, 1], "test": [7, 8]}
    assert F.decode_image(fig.data[0].source).shape[:2] == (2 * 8 + 3, 2 * 8 + 3)
    assert F.empty_figure("nothing").layout.title.text == "nothing"


# ---- the cosine-gradient toy -----------------------------------------------------------------
def test_cosine_gradient_matches_eq_1():
    from dml_kit.viz import toy

    gen = torch.Generator().manual_seed(0)
    for _ in range(5):
        f, g = torch.randn(4, generator=gen), torch.randn(4, generator=gen)
        fh, gh = f / f.norm(), g / g.norm()
        cos = float(fh @ gh)
        grad = toy.cosine_gradient(f, g)
        torch.testing.assert_close(grad, (gh - cos * fh) / f.norm(), rtol=1e-5, atol=1e-6)
        assert float(grad @ f) == pytest.approx(0.0, abs=1e-5)        # orthogonal to f
        assert float(grad.norm()) == pytest.approx(np.sqrt(1 - cos**2) / float(f.norm()),
                                                   rel=1e-4)
    with pytest.raises(ValueError, match="f must be"):
        toy.cosine_gradient(torch.zeros(2), torch.ones(2))


def test_sgd_turn_and_gradient_figure():
    from dml_kit.viz import toy

    d, g = torch.tensor([0.6, 0.8]), torch.tensor([1.0, 0.0])       # sin(theta) = 0.8
    small = toy.sgd_turn_degrees(2.0 * d, g, lr=0.01)
    assert small == pytest.approx(np.degrees(0.01 * 0.8 / 4), rel=1e-2)   # lr sin / |f|^2
    assert toy.sgd_turn_degrees(0.5 * d, g) > 3.5 * toy.sgd_turn_degrees(d, g)
    fig = toy.cosine_gradient_figure(d, g, lr=0.1, norms=[0.5, 1.0, 2.0], marker=2.0)
    assert len(fig.data) == 4
    assert list(fig.data[0].y) == pytest.approx([1.6, 0.8, 0.4], rel=1e-5)  # sin / |f|
    assert fig.data[2].x == (2.0,) and fig.data[2].y[0] == pytest.approx(0.4, rel=1e-5)
    assert fig.data[3].y[0] == pytest.approx(fig.layout.meta["turn"])
    assert "‖f‖ = 2.0" in fig.layout.title.text
    with pytest.raises(ValueError, match="lr"):
        toy.sgd_turn_degrees(d, g, lr=-1.0)
    with pytest.raises(ValueError, match="norms"):
        toy.cosine_gradient_figure(d, g, norms=[0.0, 1.0])


def test_log_ticks_label_1_2_5_within_the_data():
    from dml_kit.viz import toy

    assert toy.log_ticks([0.2, 4.0]) == pytest.approx([0.2, 0.5, 1.0, 2.0, 5.0])
    assert toy.log_ticks([0.17, 17.7]) == pytest.approx([0.2, 0.5, 1, 2, 5, 10, 20])
    assert toy.log_ticks([0.0, -1.0]) == []
    fig = toy.cosine_gradient_figure(torch.tensor([0.6, 0.8]), torch.tensor([1.0, 0.0]))
    grads = fig.data[0].y
    ticks = fig.layout.yaxis.tickvals
    assert min(ticks) <= 1.5 * min(grads) and max(ticks) >= max(grads) / 1.5
    assert fig.layout.yaxis2.tickvals and fig.layout.yaxis2.showgrid is False


def test_live_projection_colours_only_the_probe_classes_distinctly():
    """A probe of 4 classes out of 60 names: 4 palette colours (the first four of the
    qualitative palette), the other 56 traces grey and out of the legend."""
    from dml_kit.callbacks import TrainBegin
    from dml_kit.viz.figures import palette
    from dml_kit.viz.live import LiveDashboard

    names = [f"c{i}" for i in range(60)]
    dash = LiveDashboard(class_names=names)
    labels = torch.tensor([3, 17, 42, 59] * 5)
    dash.on_train_begin(TrainBegin(phase="source", max_epochs=1, probe_labels=labels))
    traces = dash.projection_fig.data
    assert len(traces) == 60
    shown = [t for t in traces if t.showlegend is not False]
    assert [t.name for t in shown] == ["c3", "c17", "c42", "c59"]
    assert [t.marker.color for t in shown] == palette(4)
    assert {t.marker.color for t in traces if t.showlegend is False} == {"#bbbbbb"}
    # a phase starts with empty traces under a title that says it waits (not a stale epoch)
    assert dash.projection_fig.layout.title.text == ("Probe embeddings (source: waiting for "
                                                     "the first epoch)")


# ---- intervals of bounded metrics: drawn inside the metric's range, flagged -------------
def _two_seeds(low: float = 0.2, high: float = 0.95) -> pd.DataFrame:
    """Two replications per point, far apart: the t-interval (t = 12.7) leaves [0, 1]."""
    return pd.DataFrame([dict(method=m, k=k, n=5, seed=s, accuracy=(low, high)[s])
                         for m in ("a", "b") for k in (1, 5) for s in (0, 1)])


def test_accuracy_bands_and_error_bars_never_leave_zero_one():
    frame = _two_seeds()
    raw = stats.mean_ci([0.2, 0.95])
    assert raw.low < 0 and raw.high > 1                    # what used to be drawn
    fig = F.accuracy_vs_k(frame)
    bands = [t for t in fig.data if t.fill == "toself"]
    for band in bands:
        assert min(band.y) == 0.0 and max(band.y) == 1.0
    line = [t for t in fig.data if t.mode == "lines+markers"][0]
    assert list(line.customdata[0][:3]) == [2, 0.0, 1.0] and "clipped" in line.customdata[0][3]
    assert "n = %{customdata[0]}" in line.hovertemplate
    assert "n = 2 replication(s)" in fig.layout.title.text and "clipped" in fig.layout.title.text
    bars = F.accuracy_vs_k(frame, style="errorbars")
    for t in bars.data:
        y = np.asarray(t.y)
        assert (y - np.asarray(t.error_y.arrayminus) >= 0).all()
        assert (y + np.asarray(t.error_y.array) <= 1).all()
    # bounds=False draws the raw interval; narrow intervals carry no caption
    unclipped = [t for t in F.accuracy_vs_k(frame, bounds=False).data if t.fill == "toself"]
    assert min(unclipped[0].y) == pytest.approx(raw.low)
    assert "clipped" not in F.accuracy_vs_k(_two_seeds(0.80, 0.81)).layout.title.text
    with pytest.raises(ValueError, match="bounds"):      # accuracies in percent
        F.accuracy_vs_k(frame.assign(accuracy=100 * frame["accuracy"]))


def test_recall_error_bars_along_the_ladder_stay_in_zero_one():
    rows = pd.DataFrame([dict(method="m", distance=d, setting="zero-shot", k=0, seed=s,
                              **{"recall@1": (0.1, 0.9)[s], "fd": (0.1, 0.9)[s]})
                         for d in (10, 30) for s in (0, 1)])
    fig = F.accuracy_vs_distance(rows)
    t = fig.data[0]
    y = np.asarray(t.y)
    assert (y - np.asarray(t.error_y.arrayminus) >= 0).all()
    assert (y + np.asarray(t.error_y.array) <= 1).all()
    assert t.customdata[0][0] == 2 and "clipped" in t.customdata[0][1]
    assert "clipped" in fig.layout.title.text
    # a quantity without a range (here a distance-like column) is drawn as computed
    fd = F.accuracy_vs_distance(rows, value="fd").data[0]
    assert (np.asarray(fd.y) - np.asarray(fd.error_y.arrayminus) < 0).all()


def test_study_figures_clip_bounded_intervals_and_keep_labels_off_the_error_bars():
    from dml_kit.viz import studies

    table = pd.DataFrame([
        dict(loss="triplet", score="recall@1", seeds=2, gain_mean=0.5, gain_low=-1.4,
             gain_high=2.4, verdict=stats.UNRESOLVED),
        dict(loss="cosface", score="recall@1", seeds=2, gain_mean=0.02, gain_low=0.01,
             gain_high=0.03, verdict=stats.HOLDS)])
    fig = studies.sec_gain_bars(table)
    bar = fig.data[0]
    y = np.asarray(bar.y)
    assert (y - np.asarray(bar.error_y.arrayminus) >= -1).all()
    assert (y + np.asarray(bar.error_y.array) <= 1).all()
    assert bar.text is None                         # no label drawn on the bar and its error bar
    assert list(fig.layout.xaxis.ticktext) == ["triplet<br><i>not resolved (n = 2)</i>",
                                               "cosface<br><i>holds</i>"]
    assert "clipped" in fig.layout.title.text
    ladder = pd.DataFrame([dict(loss="a", split=i, distance=d, seeds=2,
                                **{"zero-shot": "0.631 [-0.657, 1.918]"}) for i, d in
                           enumerate((10.0, 30.0))])
    t = studies.oodml_ladder(ladder).data[0]
    np.testing.assert_allclose(np.asarray(t.error_y.arrayminus), 0.631)
    np.testing.assert_allclose(np.asarray(t.error_y.array), 1 - 0.631)
    assert "clipped" in t.customdata[0][1]
