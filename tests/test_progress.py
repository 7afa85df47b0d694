"""GridProgress: the grid runner's progress hook shows a bar and a running table."""

import pandas as pd
import pytest

from dml_kit.experiments import grid
from dml_kit.experiments.store import ResultsStore, RunRecord
from dml_kit.viz.progress import GridProgress, running_table


def _record(method, k, acc, *, seed=0, task=0, loss=None, n=5):
    return RunRecord(dataset="digits", method=method, k=k, n=n, seed=seed, accuracy=acc,
                     config_hash=f"{method}-{loss}-{k}-{n}-{seed}-{task}", task=task, loss=loss)


def test_running_table_means_per_method_and_condition_in_order():
    rows = [{"method": "metric", "k": 5, "n": 5, "accuracy": 0.8},
            {"method": "metric", "k": 5, "n": 5, "accuracy": 0.6},
            {"method": "metric", "k": 1, "n": 5, "accuracy": 0.4},
            {"method": "scratch", "k": 10, "n": 5, "accuracy": 0.9}]
    table = running_table(rows)
    assert list(table.columns) == ["k=1 n=5", "k=5 n=5", "k=10 n=5", "runs"]  # numeric order
    assert table.loc["metric", "k=5 n=5"] == pytest.approx(0.7)
    assert table.loc["metric", "runs"] == 3 and table.loc["scratch", "runs"] == 1
    assert pd.isna(table.loc["scratch", "k=1 n=5"])
    assert running_table([]).empty


def test_running_table_splits_a_method_run_with_several_losses():
    rows = [{"method": "metric", "loss": "histogram", "k": 5, "n": 5, "accuracy": 0.8},
            {"method": "metric", "loss": "triplet", "k": 5, "n": 5, "accuracy": 0.6},
            {"method": "scratch", "loss": "cross_entropy", "k": 5, "n": 5, "accuracy": 0.5}]
    table = running_table(rows)
    assert set(table.index) == {"metric (histogram)", "metric (triplet)", "scratch"}


def test_running_table_names_a_missing_column():
    with pytest.raises(ValueError, match="accuracy"):
        running_table([{"method": "metric", "k": 1, "n": 5}])


def test_progress_bar_label_and_table_follow_the_hook():
    tracker = GridProgress("demo", min_interval=0.0)
    tracker([], 0, 3)
    assert tracker.bar.max == 3 and tracker.bar.value == 0 and tracker.table.empty
    tracker([_record("metric", 1, 0.5), _record("metric", 1, 0.7, seed=1)], 2, 3)
    assert tracker.bar.value == 2 and "2 of 3 runs" in tracker.label.value
    assert "left" in tracker.label.value
    assert "0.600" in tracker.table_html.value and "metric" in tracker.table_html.value
    tracker([_record("scratch", 1, 0.25)], 3, 3)
    assert tracker.bar.value == 3 and "left" not in tracker.label.value
    assert tracker.table.loc["scratch", "k=1 n=5"] == 0.25


def test_table_redraws_are_throttled_but_the_last_run_always_draws():
    tracker = GridProgress(min_interval=60.0)
    for i in range(5):
        tracker([_record("metric", 1, 0.5, seed=i)], i + 1, 5)
    assert tracker.redraws == 2                  # the first batch and the last one
    assert tracker.table.loc["metric", "runs"] == 5


def test_finish_shows_runs_read_from_the_store():
    tracker = GridProgress()
    frame = pd.DataFrame([{"method": "metric", "k": 1, "n": 5, "accuracy": 0.5},
                          {"method": "metric", "k": 5, "n": 5, "accuracy": 0.9}])
    tracker.finish(frame)
    assert "0 run now, 2 read from the results store" in tracker.label.value
    assert tracker.bar.value == tracker.bar.max == 2 and "0.900" in tracker.table_html.value


def test_bad_interval_is_refused_by_name():
    with pytest.raises(ValueError, match="min_interval"):
        GridProgress(min_interval=-1)


def test_grid_runner_calls_the_hook_instead_of_the_bar(monkeypatch, tmp_path):
    """run_grid's progress hook: once before the first job, then once per finished job with
    its records and the running count."""
    jobs = {"a": [_record("metric", 1, 0.5), _record("metric", 5, 0.75)],
            "b": [_record("scratch", 1, 0.25)]}
    monkeypatch.setattr(grid, "run_job", lambda job: jobs[job])
    calls = []
    store = ResultsStore(tmp_path / "results.sqlite")
    grid._execute(["a", "b"], store, "serial", None, None,
                  lambda records, done, total: calls.append(
                      ([r.method for r in records], done, total)),
                  replace=False, total=3)
    assert calls == [([], 0, 3), (["metric", "metric"], 2, 3), (["scratch"], 3, 3)]
    assert len(store.records([r.config_hash for rs in jobs.values() for r in rs])) == 3


# ---- the table's rows, columns and values are the caller's --------------------------
def test_running_table_with_another_index_no_condition_and_two_values():
    rows = [{"weight": 0.0, "seed": 0, "cv": 0.30, "accuracy": 0.50},
            {"weight": 1.0, "seed": 0, "cv": 0.10, "accuracy": 0.70},
            {"weight": 0.0, "seed": 1, "cv": 0.20, "accuracy": 0.60}]
    table = running_table(rows, ("cv", "accuracy"), index="weight", condition=())
    assert list(table.columns) == ["cv", "accuracy", "runs"]
    assert table.loc[0.0, "cv"] == pytest.approx(0.25)
    assert table.loc[0.0, "accuracy"] == pytest.approx(0.55)
    assert table.loc[1.0, "runs"] == 1 and table.loc[0.0, "runs"] == 2


def test_running_table_text_conditions_keep_their_order_and_stand_alone():
    rows = [{"loss": "triplet", "run": "without SEC", "recall@1": 0.4},
            {"loss": "triplet", "run": "with SEC", "recall@1": 0.6},
            {"loss": "npair", "run": "sweep 0.1", "recall@1": 0.2},
            {"loss": "npair", "run": "without SEC", "recall@1": 0.3}]
    table = running_table(rows, "recall@1", index="loss", condition=("run",))
    assert list(table.columns) == ["without SEC", "with SEC", "sweep 0.1", "runs"]
    assert table.loc["npair", "without SEC"] == 0.3 and pd.isna(table.loc["npair", "with SEC"])
    k_only = running_table([{"method": "a", "k": 5, "accuracy": 1.0},
                            {"method": "a", "k": 1, "accuracy": 0.0}], condition=("k",))
    assert list(k_only.columns) == ["k=1", "k=5", "runs"]


def test_two_values_with_a_condition_and_bad_values_named():
    rows = [{"method": "m", "k": 1, "n": 5, "cv": 0.2, "accuracy": 0.5}]
    table = running_table(rows, ("cv", "accuracy"))
    assert list(table.columns) == ["cv k=1 n=5", "accuracy k=1 n=5", "runs"]
    with pytest.raises(ValueError, match="value"):
        running_table(rows, ())
    with pytest.raises(ValueError, match="'cv'"):
        running_table([{"method": "m", "k": 1, "n": 5}], ("cv",))


def test_stop_says_how_far_the_loop_got_and_keeps_the_table():
    tracker = GridProgress("demo", index="weight", condition=(), value=("cv", "accuracy"),
                           min_interval=60.0)
    tracker([], 0, 4)
    tracker([{"weight": 0.0, "cv": 0.3, "accuracy": 0.5}], 1, 4)
    tracker.stop("interrupted")
    assert tracker.stopped == "interrupted" and tracker.bar.bar_style == "warning"
    assert "interrupted after 1 of 4 runs" in tracker.label.value
    assert "0.300" in tracker.table_html.value and "mean cv, accuracy" in tracker.table_html.value


def test_progress_table_has_one_header_row_with_the_index_name_and_escapes_labels():
    """The running table's HTML: the index name heads the row labels in the one header
    row (pandas put it on a second row, which read as a misaligned table in a widget),
    cells in the order of the table, labels HTML-escaped."""
    import re

    tracker = GridProgress("demo", min_interval=0.0)
    tracker([_record("<b>metric</b>", 1, 0.5), _record("<b>metric</b>", 5, 0.75)], 2, 2)
    page = tracker.table_html.value
    rows = re.findall(r"<tr>(.*?)</tr>", page)
    cells = [re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row) for row in rows]
    assert cells == [["method", "k=1 n=5", "k=5 n=5", "runs"],
                     ["&lt;b&gt;metric&lt;/b&gt;", "0.500", "0.750", "2"]]
