"""Live views and progress where the course trains in loops or panels (issue 19): the
``progress=`` hook of the comparison loops and the SEC study, the sketchpad's first
training, the SEC explorer's two runs. Progress and live views never change a number; the
stop button ends a loop without returning (or storing) a half-trained run."""

from __future__ import annotations

import types

import pandas as pd
import pytest
import torch
from test_compare import _lines  # the same small image set as the comparison tests

from dml_kit import compare, data, methods
from dml_kit.experiments import sec_study
from dml_kit.experiments.store import ResultsStore
from dml_kit.methods.config import MethodConfig
from dml_kit.metrics import embed, norm_stats
from dml_kit.viz import progress as P
from dml_kit.viz.live import LiveDashboard


class Hook:
    """A progress hook that records its calls (and a stop)."""

    def __init__(self) -> None:
        self.calls: list[tuple[list, int, int]] = []
        self.stopped: str | None = None

    def __call__(self, records, done, total):
        self.calls.append((list(records), done, total))

    def stop(self, reason):
        self.stopped = reason


@pytest.fixture(scope="module")
def digits():
    return data.domain_split(data.load("digits"), seed=0)


TINY = MethodConfig(source_epochs=1, batches_per_epoch=2, loss="triplet")


# ---- compare_on_tasks ---------------------------------------------------------------------
def test_compare_on_tasks_reports_once_per_task_with_its_rows():
    hook = Hook()
    rules = {"pixels": compare.pixel_1nn, "half": lambda task: 0.5}
    frame = compare.compare_on_tasks(_lines(), rules, k_values=[1, 3], seeds=[0, 1], n_way=3,
                                     progress=hook)
    assert hook.calls[0] == ([], 0, 8)                        # before the first task
    assert len(hook.calls) == 1 + 2 * 2                       # then once per (k, seed)
    for i, (rows, done, total) in enumerate(hook.calls[1:], start=1):
        assert (done, total) == (2 * i, 8)
        assert [r["method"] for r in rows] == ["pixels", "half"]
        assert len({(r["k"], r["seed"]) for r in rows}) == 1  # one task's rows
    sent = pd.DataFrame([r for rows, _, _ in hook.calls for r in rows])
    pd.testing.assert_frame_equal(sent, frame)                # the running results are the rows
    assert hook.stopped is None


def test_compare_on_tasks_same_numbers_with_and_without_progress(digits):
    rule = compare.method_rule("scratch", target_epochs=2, target_patience=2)
    rules = {"scratch": rule, "pixels": compare.pixel_1nn}
    kw = dict(k_values=[1], seeds=[0, 1], n_way=3)
    quiet = compare.compare_on_tasks(digits.target, rules, progress=False, **kw)
    tracker = P.GridProgress(condition=("k",), min_interval=0.0)
    shown = compare.compare_on_tasks(digits.target, rules, progress=tracker, **kw)
    pd.testing.assert_frame_equal(quiet, shown)
    assert tracker.done == tracker.total == 4 and "4 of 4 runs" in tracker.label.value
    means = shown.groupby("method")["accuracy"].mean()
    assert tracker.table.loc["scratch", "k=1"] == pytest.approx(means["scratch"])


def test_an_interrupted_run_ends_the_loop_and_tells_the_hook():
    hook, calls = Hook(), []

    def stopped_at_second_task(task):
        calls.append(task.seed)
        return types.SimpleNamespace(accuracy=0.4, notes="", interrupted=task.seed == 1)

    with pytest.raises(KeyboardInterrupt, match="interrupted"):
        compare.compare_on_tasks(_lines(), {"run": stopped_at_second_task}, k_values=[1],
                                 seeds=[0, 1, 2], n_way=3, progress=hook)
    assert calls == [0, 1]                                    # no third task
    assert [done for _, done, _ in hook.calls] == [0, 1]      # the interrupted row never sent
    assert hook.stopped == "interrupted"


def test_the_stop_button_inside_a_rule_stops_the_bar():
    def rule(task):
        raise KeyboardInterrupt

    tracker = P.GridProgress()
    with pytest.raises(KeyboardInterrupt):
        compare.compare_on_tasks(_lines(), {"r": rule}, k_values=[1], n_way=3,
                                 progress=tracker)
    assert "interrupted after 0 of 1 runs" in tracker.label.value


# ---- what progress= means where ------------------------------------------------------------
def test_auto_shows_nothing_outside_a_notebook_true_a_text_bar():
    assert not P.in_notebook()                               # pytest is no notebook cell
    assert P.progress_hook("auto", "t") is None
    assert P.progress_hook(False, "t") is None and P.progress_hook(None, "t") is None
    assert isinstance(P.progress_hook(True, "t"), P.TextProgress)
    hook = Hook()
    assert P.progress_hook(hook, "t") is hook
    with pytest.raises(ValueError, match="progress"):
        P.progress_hook("yes", "t")


def test_auto_in_a_notebook_displays_a_bar_with_a_table(monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(P, "in_notebook", lambda: True)
    monkeypatch.setattr(IPython.display, "display", shown.append)
    frame = compare.compare_on_tasks(_lines(), {"pixels": compare.pixel_1nn}, k_values=[1, 3],
                                     seeds=[0, 1], n_way=3)
    (tracker,) = shown
    assert isinstance(tracker, P.GridProgress) and tracker.done == tracker.total == 4
    assert list(tracker.table.columns) == ["k=1", "k=3", "runs"]
    assert tracker.table.loc["pixels", "k=3"] == pytest.approx(
        frame.query("k == 3")["accuracy"].mean())


def test_in_notebook_is_true_only_for_a_cell(monkeypatch):
    import sys

    parent = {"header": {"msg_type": "execute_request"}}
    kernel = types.SimpleNamespace(get_parent=lambda channel=None: parent)
    fake = types.SimpleNamespace(get_ipython=lambda: types.SimpleNamespace(kernel=kernel))
    monkeypatch.setitem(sys.modules, "IPython", fake)
    assert P.in_notebook()
    parent["header"]["msg_type"] = "comm_msg"                 # a widget's button callback
    assert not P.in_notebook()
    fake.get_ipython = lambda: None                           # a plain interpreter
    assert not P.in_notebook()


def test_text_bar_counts_and_closes():
    bar = P.TextProgress("demo", condition=("k",))
    bar([], 0, 3)
    bar([{"method": "m", "k": 1, "accuracy": 0.5}] * 2, 2, 3)
    assert bar.bar.n == 2 and "m k=1 accuracy=0.500" in bar.bar.postfix
    assert not bar.bar.disable                                # still open
    bar([{"method": "m", "k": 1, "accuracy": 0.5}], 3, 3)
    assert bar.bar.n == 3 and bar.bar.disable                 # closed (tqdm disables on close)


# ---- compare_losses (notebook 03's loop) -------------------------------------------------
def test_compare_losses_reports_per_loss_and_scores_the_same_tasks(digits):
    hook = Hook()
    summary, tasks = compare.compare_losses(digits.source, digits.target,
                                            ["triplet", "normsoftmax"], TINY, n_way=3,
                                            seeds=[0, 1, 2], progress=hook)
    assert [(len(rows), done, total) for rows, done, total in hook.calls] == [
        (0, 0, 6), (3, 3, 6), (3, 6, 6)]
    assert [r["method"] for r in hook.calls[1][0]] == ["triplet"] * 3
    assert list(summary.index) == ["triplet", "normsoftmax"]
    assert list(summary.columns) == ["family", "Recall@1", "Recall@4", "MAP@R",
                                     "3-way 1-shot", "1-shot interval"]
    assert summary.loc["normsoftmax", "family"] == "proxy"
    for loss in summary.index:
        accs = tasks.query("method == @loss")
        assert list(accs.seed) == [0, 1, 2]
        assert summary.loc[loss, "3-way 1-shot"] == pytest.approx(accs.accuracy.mean())
    # one loss again without progress: the same model, the same numbers
    quiet, quiet_tasks = compare.compare_losses(digits.source, digits.target, ["triplet"],
                                                TINY, n_way=3, seeds=[0, 1, 2],
                                                progress=False)
    pd.testing.assert_frame_equal(quiet, summary.loc[["triplet"]])
    pd.testing.assert_frame_equal(quiet_tasks, tasks.query("method == 'triplet'"))
    with pytest.raises(ValueError, match="loss_names"):
        compare.compare_losses(digits.source, digits.target, ["nope"], TINY)


# ---- sec_weight_study -----------------------------------------------------------------------
def test_sec_weight_study_reports_each_run_and_keeps_its_numbers(digits):
    hook = Hook()
    kw = dict(weights=[0, 1.0], seeds=[0], config=TINY, n_way=3, k_shot=2)
    shown = compare.sec_weight_study(digits.source, digits.target, progress=hook, **kw)
    quiet = compare.sec_weight_study(digits.source, digits.target, progress=False, **kw)
    pd.testing.assert_frame_equal(shown, quiet)
    assert [(done, total) for _, done, total in hook.calls] == [(0, 2), (1, 2), (2, 2)]
    assert [rows[0]["weight"] for rows, _, _ in hook.calls[1:]] == [0.0, 1.0]
    assert hook.calls[2][0][0]["cv"] == shown.loc[1, "cv"]
    table = P.running_table([r for rows, _, _ in hook.calls for r in rows],
                            ("cv", "accuracy"), index="weight", condition=())
    assert table.loc[1.0, "accuracy"] == shown.loc[1, "accuracy"]


def test_sec_weight_study_stops_at_an_interrupted_run(digits, monkeypatch):
    runs = []

    def run(name, task, source, cfg, seed):
        runs.append(cfg.regularizer_weight)
        return types.SimpleNamespace(interrupted=True, accuracy=0.5, model=None)

    monkeypatch.setattr(compare.methods, "run", run)
    hook = Hook()
    with pytest.raises(KeyboardInterrupt):
        compare.sec_weight_study(digits.source, digits.target, weights=[0, 1], seeds=[0, 1],
                                 config=TINY, n_way=3, k_shot=2, progress=hook)
    assert runs == [0.0] and hook.stopped == "interrupted"


# ---- the SEC study -------------------------------------------------------------------------
STUDY = sec_study.SecSetting(
    name="tiny", description="test", dataset="blobs", train_classes=12, test_classes=8,
    val_fraction=0.25, seeds=(0,), losses=("triplet", "cosface"), sweep=(0.1,),
    config=MethodConfig(embedding_dim=8, hidden=(16,), source_epochs=1, source_patience=1,
                        batches_per_epoch=2, batch_classes=4, batch_per_class=3,
                        val_fraction=0.25, val_classes=4))


@pytest.fixture(scope="module")
def blobs(make_blobs):
    return make_blobs(30, 8, dim=12)


def test_sec_study_reports_every_training_with_its_run(blobs, tmp_path):
    hook = Hook()
    frame = sec_study.sec_study(blobs, STUDY, progress=hook)
    # triplet: 2 test runs; cosface: 1 sweep run, then 2 test runs
    assert [done for _, done, _ in hook.calls] == [0, 1, 2, 3, 4, 5]
    assert {total for _, _, total in hook.calls} == {5}
    sent = [r for rows, _, _ in hook.calls for r in rows]
    assert [(r["loss"], r["run"]) for r in sent] == [
        ("triplet", "without SEC"), ("triplet", "with SEC"), ("cosface", "sweep 0.1"),
        ("cosface", "without SEC"), ("cosface", "with SEC")]
    assert [r["recall@1"] for r in sent] == list(frame["recall@1"])
    quiet = sec_study.sec_study(blobs, STUDY, progress=False)
    pd.testing.assert_frame_equal(quiet.drop(columns="seconds"), frame.drop(columns="seconds"))
    _, note = sec_study.stored_or_quick(STUDY, tmp_path / "none.sqlite", data=blobs,
                                        progress=hook, losses=("triplet",))
    assert hook.calls[-1][1:] == (2, 2) and "quick run" in note


def test_an_interrupted_study_unit_is_never_stored(blobs, tmp_path, monkeypatch):
    store = ResultsStore(tmp_path / "r.sqlite")
    real = sec_study.train_source
    calls = []

    def second_interrupted(*args, **kwargs):
        model = real(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:
            model.train.interrupted = True       # as fit marks a run the stop button ended
        return model

    monkeypatch.setattr(sec_study, "train_source", second_interrupted)
    hook = Hook()
    with pytest.raises(KeyboardInterrupt, match="nothing of it was stored"):
        sec_study.sec_study(blobs, STUDY, store=store, progress=hook)
    assert len(store) == 1                       # the first unit only
    assert hook.stopped == "interrupted" and [d for _, d, _ in hook.calls] == [0, 1]


# ---- the sketchpad's first training -------------------------------------------------------
def test_sketchpad_shows_its_first_training_live_then_says_loaded(tmp_path, monkeypatch):
    from dml_kit.callbacks import HistoryCallback
    from dml_kit.widgets import Sketchpad

    monkeypatch.setenv("DML_KIT_DATA", str(tmp_path))
    monkeypatch.setenv("DML_KIT_FAST", "1")
    live, history = LiveDashboard(), HistoryCallback()
    pad = Sketchpad(dataset="digits", n_way=3, k_shot=2, callbacks=[live, history])
    assert pad.origin == "trained now" and pad.error is None
    assert [e["epoch"] for e in history.epochs] == [1, 2]      # the live view got epochs
    assert live.frames >= 2 and "done" in live.header.value and not live.loaded
    assert live.class_names is not None and len(live.class_names) == 5   # digits 0-4
    assert list((tmp_path / "models").glob("protonet-*.pt"))

    again, history2 = LiveDashboard(), HistoryCallback()
    pad2 = Sketchpad(dataset="digits", n_way=3, k_shot=2, callbacks=[again, history2])
    assert pad2.origin == "loaded from the model cache"
    assert history2.epochs == [] and [e.kind for e in again.loaded] == ["protonet"]
    assert "loaded from the model cache" in again.header.value and again.frames == 0
    assert torch.equal(embed(pad.model, pad.task.support_x),
                       embed(pad2.model, pad2.task.support_x))     # the same network
    assert Sketchpad(pad.model, pad.task).origin == "given"


def test_the_stop_button_during_the_first_training_caches_nothing(tmp_path, monkeypatch):
    from dml_kit.callbacks import Callback
    from dml_kit.widgets import Sketchpad

    class StopButton(Callback):
        """Presses the stop button at the end of the first epoch."""

        def on_epoch(self, event):
            raise KeyboardInterrupt

    monkeypatch.setenv("DML_KIT_DATA", str(tmp_path))
    monkeypatch.setenv("DML_KIT_FAST", "1")
    live = LiveDashboard()
    pad = Sketchpad(dataset="digits", n_way=3, k_shot=2, callbacks=[StopButton(), live])
    assert pad.origin == "interrupted while training" and pad.error is None
    assert "interrupted" in pad.status.value and "again" in pad.status.value
    assert live.interrupted and "interrupted" in live.header.value
    assert not list(tmp_path.glob("models/*"))            # no cache file, not even a part
    pad.draw_strokes([[[40, 200], [112, 24], [184, 200]]])  # the panel still works
    assert pad.probabilities is not None and pad.error is None


# ---- the SEC explorer's two runs ----------------------------------------------------------
def test_sec_explorer_trains_both_runs_live_with_the_same_numbers():
    from dml_kit import widgets as W

    se = W.SECExplorer("digits", loss="triplet", n_way=3, k_shot=2, epochs=2,
                       batches_per_epoch=3)
    dash, seen = se.dashboard, []
    on_epoch = dash.on_epoch

    def spy(event):
        seen.append((dash.title, event.epoch))
        on_epoch(event)

    dash.on_epoch = spy
    se.train_button.click()
    assert se.error is None, se.error
    assert seen == [("run 1 of 2: triplet without SEC", 1), ("run 1 of 2: triplet without SEC", 2),
                    ("run 2 of 2: triplet with SEC", 1), ("run 2 of 2: triplet with SEC", 2)]
    assert dash.frames >= 2 and "done" in dash.header.value and not se.interrupted  # >= 1 a run
    # the live view changed nothing: the same runs without callbacks
    task = data.kshot_task(se.target, 3, 2, seed=0)
    base = se.base_config.replace(loss="triplet", source_epochs=2, batches_per_epoch=3)
    for key, reg in (("without", None), ("with", "sec")):
        cfg = base.replace(regularizer=reg, regularizer_weight=1.0 if reg else 0.0)
        run = methods.run("metric", task, se.source, cfg, seed=0)
        cv = norm_stats(embed(run.model, torch.cat([task.support_x, task.query_x])))["cv"]
        assert se.accuracy[key] == run.accuracy and se.cv[key] == pytest.approx(cv, abs=0)


def test_sec_explorer_stops_after_an_interrupted_run(monkeypatch):
    from dml_kit import widgets as W

    se = W.SECExplorer("digits", n_way=3, k_shot=2, epochs=1)
    calls = []

    def run(*args, **kwargs):
        calls.append(kwargs["callbacks"][0] is se.dashboard)
        return types.SimpleNamespace(interrupted=True, model=None, accuracy=0.0)

    monkeypatch.setattr(methods, "run", run)
    se.train_button.click()
    assert se.error is None and se.interrupted and calls == [True]   # no second run
    assert "interrupted while training without SEC" in se.status.value
    assert se.runs == [] and not se.train_button.disabled


def test_dashboard_title_can_change_and_names_are_readable():
    dash = LiveDashboard(title="first", class_names=["a", "b"])
    assert dash.title == "first" and "first" in dash.title_html.value
    dash.set_title("second <run>")
    assert "second &lt;run&gt;" in dash.title_html.value
    dash.set_title("")
    assert dash.title_html.layout.display == "none"
    assert list(dash.class_names) == ["a", "b"]
