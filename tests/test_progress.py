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
