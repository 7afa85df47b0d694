"""Widgets driven headless: set ``.value``, press buttons, assert on the figures' data."""

from __future__ import annotations

import types

import numpy as np
import pandas as pd
import pytest

from dml_kit import widgets as W
from dml_kit.viz.figures import decode_image


def _support_count(fig) -> int:
    return sum(1 for c in fig.data[1].customdata if c[0] == "support")


# ---- TaskExplorer ----------------------------------------------------------------------
def test_task_explorer_gallery_follows_n_and_k():
    te = W.TaskExplorer("digits", n_way=3, k_shot=2, n_query=2)
    assert te.error is None
    assert _support_count(te.figure) == 3 * 2
    first = te.figure.data[0].source
    te.k_shot.value = 4
    assert _support_count(te.figure) == 3 * 4
    te.n_way.value = 5
    assert _support_count(te.figure) == 5 * 4
    assert decode_image(te.figure.data[0].source).shape[0] == 5 * 8 + 4 * 2  # 5 rows of 8 px
    assert te.figure.data[0].source != first
    te.seed.value = 7
    assert te.task.seed == 7 and te.error is None


def test_task_explorer_limits_follow_the_data():
    from dml_kit import data

    te = W.TaskExplorer("digits")
    target = W.split_cached("digits").target
    assert te.n_way.max == target.n_classes  # digits: 5 target classes
    assert te.k_shot.max == min(20, target.min_class_size - 1)
    small = data.load("digits").select_classes([0, 1, 2], name="tiny")
    # a dataset whose smallest class has 6 examples: k may go up to 5 (one query left)
    keep = np.concatenate([np.flatnonzero(small.y.numpy() == c)[:n]
                           for c, n in ((0, 6), (1, 9), (2, 9))])
    tiny = type(small)(name="tiny", x=small.x[keep], y=small.y[keep],
                       class_names=small.class_names, class_groups=small.class_groups)
    te2 = W.TaskExplorer(tiny, n_way=2, k_shot=3)
    assert te2.k_shot.max == 5 and te2.n_way.max == 3
    with pytest.raises(ValueError, match="k_shot"):
        W.TaskExplorer(tiny, n_way=2, k_shot=6)
    with pytest.raises(ValueError, match="n_way"):
        W.TaskExplorer(tiny, n_way=4)


def test_task_explorer_switching_dataset_clamps_and_redraws():
    te = W.TaskExplorer("digits", n_way=5, k_shot=20)
    te.dataset.value = "glyphs"
    assert te.error is None
    assert te.n_way.max == 20 and te.k_shot.max == 20
    assert te.figure.layout.meta["mosaic_shape"][0] == 5 * 28 + 4 * 2
    te.dataset.value = "digits"
    assert te.k_shot.value <= te.k_shot.max and te.error is None
    assert te.figure.layout.meta["mosaic_shape"][0] == 5 * 8 + 4 * 2


# ---- MethodRunner ----------------------------------------------------------------------
def test_method_runner_trains_and_updates_dashboard():
    mr = W.MethodRunner("digits", method="scratch", n_way=3, k_shot=2, epochs=1,
                        adapt_epochs=2, fps=30)
    assert mr.loss.disabled and mr.regularizer.disabled  # scratch has neither
    mr.train_button.click()
    assert mr.error is None, mr.error
    dash = mr.dashboard
    assert sum(len(t.x) for t in dash.projection_fig.data) == 3 * 2  # probe = support
    assert "target accuracy" in mr.accuracy.value
    assert 0.0 <= mr.result.accuracy <= 1.0 and len(mr.results) == 1
    assert mr.timings["click_to_first_frame"] > 0
    mr.k_shot.value = 4
    mr.train_button.click()
    assert mr.error is None, mr.error
    assert sum(len(t.x) for t in dash.projection_fig.data) == 3 * 4
    assert [r["k"] for r in mr.results] == [2, 4]


def test_method_runner_controls_and_config():
    mr = W.MethodRunner("digits", method="metric", loss="triplet", regularizer="sec",
                        weight=2.0, n_way=3, k_shot=2)
    assert not mr.loss.disabled and not mr.weight.disabled
    cfg = mr.config()
    assert (cfg.loss, cfg.regularizer, cfg.regularizer_weight) == ("triplet", "sec", 2.0)
    mr.regularizer.value = "none"
    assert mr.weight.disabled and mr.config().regularizer is None
    assert mr.k_shot.max == W.split_cached("digits").target.min_class_size - 1 or \
        mr.k_shot.max == 20
    with pytest.raises(ValueError, match="method"):
        W.MethodRunner("digits", method="nope")
    with pytest.raises(ValueError, match="n_way"):
        W.MethodRunner("digits", n_way=50)


# ---- SECExplorer -----------------------------------------------------------------------
@pytest.mark.timeout(240)
def test_sec_explorer_narrows_the_norm_spread():
    se = W.SECExplorer("digits", loss="triplet", weight=5.0, n_way=3, k_shot=3, epochs=2,
                       batches_per_epoch=10)
    se.train_button.click()
    assert se.error is None, se.error
    without, with_sec = (np.concatenate([np.asarray(t.x) for t in f.data])
                         for f in se.figures)
    cv = [float(n.std() / n.mean()) for n in (without, with_sec)]
    assert cv[1] < cv[0]  # the histogram is narrower with SEC on
    assert se.cv["with"] == pytest.approx(cv[1]) and se.cv["without"] == pytest.approx(cv[0])
    assert se.figures[1].layout.shapes[0].x0 == pytest.approx(with_sec.mean())
    assert "CV" in se.figures[0].layout.title.text
    assert len(without) == len(with_sec) > 0


# ---- ShiftExplorer ---------------------------------------------------------------------
def _ladder():
    mk = types.SimpleNamespace
    return [mk(train_classes=(0, 1, 2, 3, 4), test_classes=(5, 6, 7, 8, 9), distance=10.0),
            mk(train_classes=(0, 1, 2, 5, 6), test_classes=(3, 4, 7, 8, 9), distance=20.0),
            mk(train_classes=(0, 5, 6, 7, 8), test_classes=(1, 2, 3, 4, 9), distance=35.0)]


def test_shift_explorer_slider_moves_samples_and_marker():
    digits = W.load_cached("digits")
    calls = []

    def evaluate(data, split):
        calls.append(split.distance)
        return {"zero_shot": 1.0 - split.distance / 100, "few_shot": 1.0 - split.distance / 200}

    se = W.ShiftExplorer(digits, _ladder(), evaluate=evaluate)
    assert se.error is None
    assert se.samples.layout.meta["test"] == [5, 6, 7, 8, 9]
    assert se.curve.layout.shapes[0].x0 == 10.0
    se.split.value = 2
    assert se.samples.layout.meta["test"] == [1, 2, 3, 4, 9]
    assert se.curve.layout.shapes[0].x0 == 35.0
    se.evaluate_button.click()
    se.split.value = 0
    se.evaluate_button.click()
    assert se.error is None and calls == [35.0, 10.0]
    zero = next(t for t in se.curve.data if "zero-shot" in t.name)
    assert list(zero.x) == [10.0, 35.0]
    assert list(zero.y) == pytest.approx([0.9, 0.65])
    assert any("shot" in t.name and t.line.dash == "dash" for t in se.curve.data)


def test_shift_explorer_takes_results_and_validates_ladder():
    digits = W.load_cached("digits")
    results = pd.DataFrame({"distance": [10.0, 20.0, 35.0], "recall@1": [0.9, 0.8, 0.6]})
    se = W.ShiftExplorer(digits, _ladder(), results=results)
    assert se.evaluate_button.disabled
    assert list(se.curve.data[0].y) == [0.9, 0.8, 0.6]
    with pytest.raises(ValueError, match="train_classes"):
        W.ShiftExplorer(digits, [object()])
    bad = [types.SimpleNamespace(train_classes=(0, 11), test_classes=(1,), distance=1.0)]
    with pytest.raises(ValueError, match="outside"):
        W.ShiftExplorer(digits, bad)


# ---- GridBrowser -----------------------------------------------------------------------
@pytest.fixture
def frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = [dict(dataset="glyphs", method=m, k=k, n=n, seed=s,
                 accuracy=0.4 + 0.1 * i + 0.02 * k + 0.01 * rng.random(), m_norm_cv=0.1 * i)
            for i, m in enumerate(["scratch", "metric", "adapted_metric"])
            for k in (1, 5) for n in (5, 10) for s in range(2)]
    return pd.DataFrame(rows)


def test_grid_browser_filters_drive_heatmap_and_curves(frame):
    gb = W.GridBrowser(frame)
    assert np.asarray(gb.heatmap.data[0].z).shape == (3, 4)
    gb.methods.value = ("metric", "adapted_metric")
    assert list(gb.heatmap.data[0].y) == ["metric", "adapted_metric"]
    gb.n_values.value = (5,)
    assert np.asarray(gb.heatmap.data[0].z).shape == (2, 2)
    assert len([t for t in gb.curves.data if t.mode == "lines+markers"]) == 2
    gb.metric.value = "m_norm_cv"
    assert np.asarray(gb.heatmap.data[0].z)[0, 0] == pytest.approx(0.1)
    gb.methods.value = ("scratch", "metric", "adapted_metric")
    gb.metric.value = "accuracy"
    gb.baseline.value = "scratch"
    gb.mode.value = "error reduction"
    z = np.asarray(gb.heatmap.data[0].z)
    np.testing.assert_allclose(z[0], 0.0)
    assert (z[1:] > 0).all() and gb.error is None
    gb.methods.value = ()
    assert "no runs" in gb.heatmap.layout.title.text


def test_grid_browser_rejects_bad_frames(frame):
    with pytest.raises(ValueError, match="lacks columns"):
        W.GridBrowser(frame.drop(columns=["k"]))
    with pytest.raises(ValueError, match="empty"):
        W.GridBrowser(frame.iloc[:0])
