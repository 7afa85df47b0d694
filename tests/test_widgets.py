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


def test_figures_reach_the_browser_without_nan():
    """issue 19 (seen in 05): NaN in a figure's arrays (a confusion heatmap's blank
    diagonal) becomes None (a gap) before the widget sends it, so the message is valid JSON
    and jupyter_client prints no serialization warning into the notebook."""
    import json

    import plotly.graph_objects as go

    from dml_kit.widgets.base import _replace_figure

    z = np.array([[np.nan, 0.5], [0.25, np.inf]])
    fig = go.FigureWidget()
    _replace_figure(fig, go.Figure(go.Heatmap(z=z, x=["a", "b"], y=["a", "b"])))
    assert json.loads(json.dumps(fig.data[0].z, allow_nan=False)) == [[None, 0.5],
                                                                        [0.25, None]]
    _replace_figure(fig, go.Figure(go.Heatmap(z=np.ones((2, 2)), x=["a", "b"], y=["a", "b"])))
    np.testing.assert_array_equal(np.asarray(fig.data[0].z, dtype=float), np.ones((2, 2)))


def test_a_new_picture_is_a_new_image_trace():
    """issue 19: an image trace whose picture changes is replaced (a new uid, so plotly.js
    holds no decoded picture of the old one for it); a trace whose picture stays keeps its
    uid and is updated in place, like every other trace type."""
    import plotly.graph_objects as go

    from dml_kit.widgets.base import _replace_figure

    def gallery(source: str, title: str) -> go.Figure:
        return go.Figure([go.Image(source=source), go.Scatter(x=[1, 2], y=[3, 4])],
                         layout=dict(title=title))

    a = "data:image/png;base64,AAAA"
    b = "data:image/png;base64,BBBB"
    fig = go.FigureWidget()
    _replace_figure(fig, gallery(a, "first"))
    uids = [t.uid for t in fig.data]
    _replace_figure(fig, gallery(a, "same picture"))
    assert [t.uid for t in fig.data] == uids                  # updated in place
    assert fig.layout.title.text == "same picture"
    _replace_figure(fig, gallery(b, "new picture"))
    assert fig.data[0].source == b and fig.layout.title.text == "new picture"
    assert fig.data[0].uid != uids[0]                         # a new image trace
    assert [t.type for t in fig.data] == ["image", "scatter"]

    # the explorer's round trip digits -> glyphs -> digits ends on new traces holding the
    # digits picture again (the picture the browser must draw)
    te = W.TaskExplorer("digits", n_way=3, k_shot=2)
    digits_picture, first_uid = te.figure.data[0].source, te.figure.data[0].uid
    te.dataset.value = "glyphs"
    te.dataset.value = "digits"
    assert te.figure.data[0].source == digits_picture
    assert te.figure.data[0].uid != first_uid
    assert decode_image(te.figure.data[0].source).shape[0] == 3 * 8 + 2 * 2


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


def test_training_panels_share_controls_and_recover_from_errors(monkeypatch):
    from dml_kit import methods

    panels = [W.MethodRunner("digits", method="scratch", n_way=3, k_shot=2, epochs=1),
              W.SECExplorer("digits", n_way=3, k_shot=2, epochs=1)]
    seen = []

    def failing_run(*args, **kwargs):
        seen.append(panel.train_button.disabled)          # disabled while it runs
        raise RuntimeError("boom")

    monkeypatch.setattr(methods, "run", failing_run)
    for panel in panels:
        assert (panel.n_way.value, panel.k_shot.value, panel.epochs.value) == (3, 2, 1)
        assert panel.n_way.description == "n (classes)" and panel.seed.value == 0
        panel.train_button.click()
        assert panel.error == "RuntimeError: boom" and "boom" in panel.status.value
        assert not panel.train_button.disabled            # re-enabled after the error
    assert seen == [True, True]
    with pytest.raises(ValueError, match="k_shot"):
        W.SECExplorer("digits", k_shot=500)
    with pytest.raises(ValueError, match="dataset"):
        W.SECExplorer(42)


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
    assert {r["setting"] for r in se.results} == {"zero-shot", "few-shot"}   # the study's shape
    # the line is named for what made it (an evaluate without a label: "this panel's runs")
    assert zero.name == "this panel's runs (zero-shot)"
    assert {r["method"] for r in se.results} == {"this panel's runs"}


def test_score_rows_adapts_evaluate_scores_to_the_study_shape():
    rows = W.score_rows({"zero_shot": 0.7, "few_shot": 0.8, "k": 5}, 12.0)
    assert rows == [
        {"distance": 12.0, "method": "", "setting": "zero-shot", "k": 0, "recall@1": 0.7},
        {"distance": 12.0, "method": "", "setting": "few-shot", "k": 5, "recall@1": 0.8}]
    with pytest.raises(ValueError, match="zero_shot"):
        W.score_rows({"accuracy": 0.5}, 1.0)


def test_zero_shot_evaluator_scores_through_the_library(monkeypatch):
    from dml_kit.widgets import shift

    seen = {}

    def fake(data, split, config, **kwargs):
        seen.update(kwargs, epochs=config.source_epochs)
        return {"recall@1": 0.42, "map@r": 0.2}

    monkeypatch.setattr(shift, "zero_shot_recall", fake)
    evaluate = W.zero_shot_evaluator(epochs=2, max_test_classes=20, eval_draws=3)
    assert evaluate(W.load_cached("digits"), _ladder()[0]) == {"zero_shot": 0.42}
    assert seen == {"seed": 0, "eval_draws": 3, "max_test_classes": 5, "epochs": 2}
    assert evaluate.label == "metric, 2 epochs x 20 batches"
    panel = W.ShiftExplorer(W.load_cached("digits"), _ladder(), evaluate=evaluate)
    panel.evaluate_button.click()
    assert panel.error is None
    assert [t.name for t in panel.curve.data] == ["metric, 2 epochs x 20 batches (zero-shot)"]


@pytest.mark.timeout(240)
def test_zero_shot_recall_is_a_mean_over_class_draws():
    from dml_kit.experiments.shift_study import zero_shot_recall

    digits, split = W.load_cached("digits"), _ladder()[0]
    cfg = W._config_or_classroom(None).replace(source_epochs=1, batches_per_epoch=3,
                                               embedding_dim=8, hidden=(16,), val_classes=2)
    one = zero_shot_recall(digits, split, cfg, max_test_classes=3, eval_draws=4)
    assert set(one) == {"recall@1", "map@r"} and 0.0 <= one["recall@1"] <= 1.0
    assert zero_shot_recall(digits, split, cfg, max_test_classes=3, eval_draws=4) == one
    with pytest.raises(ValueError, match="method"):
        zero_shot_recall(digits, split, cfg, method="scratch")


def test_method_controls_follow_the_method_registry():
    from dml_kit import methods

    # the six methods keep the controls they had when the lists were written by hand
    assert [m for m in methods.available() if W.uses_loss(m)] == ["metric", "adapted_metric"]
    assert [m for m in methods.available() if W.uses_regularizer(m)] == [
        "metric", "protonet", "adapted_metric", "adapted_protonet"]
    mr = W.MethodRunner("digits", method="protonet", n_way=3, k_shot=2)
    assert mr.loss.disabled and not mr.regularizer.disabled
    mr.method.value = "weight_transfer"
    assert mr.loss.disabled and mr.regularizer.disabled and mr.weight.disabled


def test_shift_explorer_takes_results_and_validates_ladder():
    digits = W.load_cached("digits")
    results = pd.DataFrame({"distance": [10.0, 20.0, 35.0], "setting": "zero-shot", "k": 0,
                            "recall@1": [0.9, 0.8, 0.6]})
    se = W.ShiftExplorer(digits, _ladder(), results=results)
    assert se.evaluate_button.disabled
    assert list(se.curve.data[0].y) == [0.9, 0.8, 0.6]
    with pytest.raises(ValueError, match="setting"):            # one shape of results only
        W.ShiftExplorer(digits, _ladder(), results=results.drop(columns=["setting"]))
    with pytest.raises(ValueError, match="train_classes"):
        W.ShiftExplorer(digits, [object()])
    bad = [types.SimpleNamespace(train_classes=(0, 11), test_classes=(1,), distance=1.0)]
    with pytest.raises(ValueError, match="outside"):
        W.ShiftExplorer(digits, bad)


@pytest.fixture(scope="module")
def study_frame():
    """A real dml_kit.experiments.generalisation_study result on digits (two rungs, tiny
    training): the table ShiftExplorer must take as it is."""
    from dml_kit.data.shift import ShiftSplit
    from dml_kit.experiments import generalisation_study

    ladder = [ShiftSplit(tr, te, d, i) for i, (tr, te, d) in enumerate(
        (sp.train_classes, sp.test_classes, sp.distance) for sp in _ladder()[:2])]
    frame = generalisation_study(
        W.load_cached("digits"), ladder, k_shot=2, seeds=(0,), progress=False,
        max_test_classes=5, source_epochs=1, batches_per_epoch=3, target_epochs=2,
        target_patience=1, embedding_dim=8, hidden=(16,), val_classes=2)
    return ladder, frame


@pytest.mark.timeout(240)
def test_shift_explorer_takes_the_study_output_as_it_is(study_frame):
    ladder, frame = study_frame
    assert {"setting", "k", "recall@1"} <= set(frame.columns) and "shots" not in frame
    se = W.ShiftExplorer(W.load_cached("digits"), ladder, results=frame)
    assert se.error is None, se.error
    names = [t.name for t in se.curve.data]
    assert names == ["metric (zero-shot)", "adapted_metric (2-shot)"]
    zero, few = se.curve.data
    assert zero.line.dash == "solid" and few.line.dash == "dash"
    want = frame.pivot_table(index="distance", columns="setting", values="recall@1")
    assert list(zero.x) == list(want.index) == [10.0, 20.0]
    assert list(zero.y) == pytest.approx(want["zero-shot"].tolist())
    assert list(few.y) == pytest.approx(want["few-shot"].tolist())
    se.split.value = 1                                    # the marker moves, curves stay
    assert se.curve.layout.shapes[0].x0 == 20.0 and len(se.curve.data) == 2
    with pytest.raises(ValueError, match="recall@1"):
        W.ShiftExplorer(W.load_cached("digits"), ladder,
                        results=frame.drop(columns=["recall@1"]))


# ---- EpochReplay, PrototypeExplorer, MethodComparison, CosineGradientExplorer -----------
def test_epoch_replay_slider_redraws_both_figures():
    import torch

    from dml_kit.viz.figures import pair_similarities

    g = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat(6)
    centres = torch.randn(3, 8, generator=g)
    probes = [("source", e, centres[labels] * e + torch.randn(18, 8, generator=g), labels)
              for e in (1, 2, 3)] + [("adapt", 1, torch.randn(4, 8), torch.arange(4))]
    replay = W.EpochReplay(probes, ["a", "b", "c"])
    assert replay.error is None and len(replay.frames) == 3   # the adapt frame left out
    assert replay.epoch.value == 2 and "epoch 3" in replay.scatter.layout.title.text
    assert replay.epoch.label == "3"          # the slider shows the epoch the title names
    replay.epoch.value = 0
    assert replay.epoch.label == "1"
    assert replay.error is None
    assert "epoch 1" in replay.scatter.layout.title.text
    assert replay.histogram.layout.title.text.startswith("Probe pairs, epoch 1")
    pos, _ = pair_similarities(probes[0][2], labels)
    np.testing.assert_allclose(np.asarray(replay.histogram.data[0].x), pos, rtol=1e-6)
    assert [t.name for t in replay.scatter.data] == ["a", "b", "c"]
    np.testing.assert_allclose(np.asarray(replay.scatter.data[0].x),
                               replay.layouts[0][labels.numpy() == 0, 0])
    with pytest.raises(ValueError, match="keep_probes"):
        W.EpochReplay(probes, phase="nothing")


def test_prototype_explorer_follows_k():
    import torch

    from dml_kit import metrics

    target = W.split_cached("digits").target
    model = torch.nn.Flatten()
    view = W.PrototypeExplorer(target, model, n_way=4, k_shot=1, n_query=10)
    assert view.error is None and set(view.accuracy) == {1}
    assert len(view.figure.data) == 4 + 1 and view.figure.data[-1].name == "prototypes"
    view.k_shot.value = 5
    t = view.task
    assert t.k_shot == 5 and "5-shot" in view.figure.layout.title.text
    by_hand = metrics.prototype_accuracy(t.support_x.flatten(1), t.support_y,
                                         t.query_x.flatten(1), t.query_y)
    assert view.accuracy[5] == pytest.approx(by_hand)
    assert sum(len(tr.x) for tr in view.figure.data[:-1]) == 4 * 10
    assert view.k_shot.max == 10
    with pytest.raises(ValueError, match="n_query"):
        W.PrototypeExplorer(target, model, n_query=10_000)


def test_method_comparison_runs_its_rules_and_draws_bars():
    target = W.split_cached("digits").target
    mc = W.MethodComparison(target, {}, methods=["scratch", "metric"], n_way=3, k_shot=2)
    assert mc.last is None and mc.run_button.description == "Run all 2"
    calls = []

    def fake(value):
        def rule(task):
            calls.append((task.n_way, task.k_shot))
            return value
        return rule

    mc.rules = {"scratch": fake(0.4), "metric": fake(0.9)}   # no training in this test
    mc.run_button.click()
    assert mc.error is None, mc.error
    assert calls == [(3, 2), (3, 2)]
    bars = mc.figure.data[0]
    assert list(bars.x) == ["scratch", "metric"] and list(bars.y) == [0.4, 0.9]
    assert mc.figure.layout.shapes[0].y0 == pytest.approx(1 / 3)    # chance line
    mc.n_way.value, mc.k_shot.value = 4, 3
    mc.run_button.click()
    assert calls[-1] == (4, 3) and "4-way 3-shot" in mc.figure.layout.title.text
    assert mc.last.loc["metric", "accuracy"] == 0.9
    with pytest.raises(ValueError, match="n_way"):
        W.MethodComparison(target, {}, n_way=99)


def test_cosine_gradient_explorer_follows_the_norm():
    import torch

    ex = W.CosineGradientExplorer(torch.tensor([0.6, 0.8]), torch.tensor([1.0, 0.0]))
    assert ex.error is None and ex.gradient == pytest.approx(0.8, rel=1e-5)  # sin / 1
    title = ex.figure.layout.title.text
    ex.norm.value = 0.5
    assert ex.figure.data[2].y[0] == pytest.approx(1.6, rel=1e-5)         # sin / 0.5
    assert ex.figure.data[2].x == (0.5,) and ex.figure.layout.title.text != title
    assert ex.turn > 3.5 * W.CosineGradientExplorer(
        torch.tensor([0.6, 0.8]), torch.tensor([1.0, 0.0])).turn
    with pytest.raises(ValueError, match="norm"):
        W.CosineGradientExplorer(torch.tensor([0.6, 0.8]), torch.tensor([1.0, 0.0]), norm=9)


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
    fresh = W.GridBrowser(frame)
    for control in ("methods", "n_values", "metric", "baseline"):
        getattr(fresh, control).value = getattr(gb, control).value
    gb.mode.value = "value"  # back from the diverging scale: nothing of it may linger
    assert gb.heatmap.to_json() == fresh.heatmap.to_json()
    gb.methods.value = ()
    assert "no runs" in gb.heatmap.layout.title.text


def test_grid_browser_shows_a_metric_over_the_runs_that_report_it(frame):
    """issue 19 (seen in 05): a metric that some methods do not report (NaN, e.g.
    ``m_acc_1nn`` of a classifier) is drawn over the runs that have it, with a note,
    instead of the panel failing on the non-finite values; a metric nobody reports is
    not offered."""
    frame = frame.assign(m_acc_1nn=np.where(frame["method"] == "scratch", np.nan, 0.5),
                         m_never=np.nan)
    gb = W.GridBrowser(frame)
    assert "m_acc_1nn" in gb.metric.options and "m_never" not in gb.metric.options
    gb.metric.value = "m_acc_1nn"
    assert gb.error is None, gb.error
    assert list(gb.heatmap.data[0].y) == ["metric", "adapted_metric"]
    assert set(gb.filtered["method"]) == {"metric", "adapted_metric"}
    assert "8 selected runs without m_acc_1nn left out" in gb.status.value
    gb.methods.value = ("scratch",)
    assert gb.error is None and "no selected run reports m_acc_1nn" in gb.status.value
    gb.metric.value = "accuracy"
    assert gb.error is None and len(gb.filtered) == 8 and "left out" not in gb.status.value


def test_grid_browser_rejects_bad_frames(frame):
    with pytest.raises(ValueError, match="lacks columns"):
        W.GridBrowser(frame.drop(columns=["k"]))
    with pytest.raises(ValueError, match="empty"):
        W.GridBrowser(frame.iloc[:0])


def test_invalid_control_values_name_the_control():
    """Setting a control to an invalid value from Python raises TraitError naming the
    panel attribute, its label and what it accepts; bounded controls refuse (not clamp)
    values out of range; valid values still work."""
    from traitlets import TraitError

    panel = W.TaskExplorer("digits", n_way=3, k_shot=2)
    with pytest.raises(TraitError, match=r"TaskExplorer.dataset.*one of: 'digits'"):
        panel.dataset.value = "mnist"
    k_max = panel.k_shot.max
    with pytest.raises(TraitError, match=rf"k_shot \('k \(shots\)'\).*between 1 and {k_max}"):
        panel.k_shot.value = k_max + 50
    assert panel.k_shot.value == 2
    with pytest.raises(TraitError, match=r"n_way \('n \(classes\)'\)"):
        panel.n_way.value = "two"
    with pytest.raises(TraitError, match=r"TaskExplorer.seed.*between 0"):
        panel.seed.value = -5
    panel.k_shot.value = 3
    assert panel.k_shot.value == 3 and panel.error is None


def test_cosine_gradient_explorer_names_a_length_mismatch():
    import torch

    with pytest.raises(ValueError, match="direction and partner must have the same length"):
        W.CosineGradientExplorer(torch.randn(3), torch.randn(2))
