"""Behaviours of dml_kit.experiments (store, grid, report) found unguarded by the mutation
benchmark (issue 20, benchmarks/mutation.py --shard experiments): a cell's validation
part, the grid's messages, the rerun index, the store's errors and timestamps, and the
report's tables, newest-record rule, registered methods and claim texts.
"""

from __future__ import annotations

import ctypes
import dataclasses
import os
import re
import signal
import sqlite3
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

from dml_kit.experiments import GridSpec, ResultsStore, RunRecord, grid_index, report
from dml_kit.experiments import grid as grid_module
from dml_kit.experiments.config import SourceSpec
from dml_kit.experiments.store import StoreError

# the tiny digits grid of tests/test_experiments.py
TINY = {"embedding_dim": 32, "hidden": (64,), "source_epochs": 3, "source_patience": 2,
        "batch_classes": 5, "batch_per_class": 8, "batches_per_epoch": 10,
        "episodes_per_epoch": 10, "target_epochs": 5, "target_patience": 3}


# ---- grid -------------------------------------------------------------------------------
def test_a_cells_task_holds_the_source_specs_validation_examples():
    """``SourceSpec.n_val`` labelled validation examples per class come with every task
    (the support then no longer doubles as the validation set)."""
    for n_val in (0, 2):
        task = grid_module.target_task("digits", SourceSpec(n_val=n_val, n_query=3), seed=0,
                                       n=5, k=2)
        assert torch.equal(torch.bincount(task.support_y), torch.full((5,), 2))
        assert torch.equal(torch.bincount(task.query_y), torch.full((5,), 3))
        if n_val:
            assert torch.equal(torch.bincount(task.val_y), torch.full((5,), n_val))
            assert not any(torch.equal(v, s) for v in task.val_x for s in task.support_x)
        else:                                   # the paper's protocol: the support
            assert torch.equal(task.val_x, task.support_x)


def test_a_grid_the_data_cannot_fill_says_how_many_classes_and_examples_there_are():
    target = grid_module._split("digits", SourceSpec(), 0, False).target
    spec = GridSpec.create("digits", "metric", [1], [target.n_classes + 1], 1, tasks=1)
    with pytest.raises(ValueError, match=rf"^n_values={target.n_classes + 1} is out of "
                                         rf"range: must be between 2 and {target.n_classes} "
                                         rf"\(the target part of 'digits' has "
                                         rf"{target.n_classes} classes\)$"):
        grid_module.check_grid_fits(spec)
    big_k = target.min_class_size
    spec = GridSpec.create("digits", "metric", [big_k], [5], 1, tasks=1)
    with pytest.raises(ValueError, match=rf"^k_values={big_k} is out of range: must be "
                                         rf"between 1 and {big_k - 1} \(the smallest target "
                                         rf"class of 'digits' has {big_k} examples\)$"):
        grid_module.check_grid_fits(spec)


def test_gpus_per_job_outside_the_cluster_says_what_the_local_executors_do():
    with pytest.raises(ValueError) as err:
        grid_module.run_grid("digits", gpus_per_job=1.0, executor="serial", progress=False)
    assert str(err.value) == ("gpus_per_job is for executor='ray' (got executor='serial'); "
                              "the local executors use the device auto-detection of "
                              "MethodConfig.device")


def test_a_finished_grid_is_answered_again_from_the_index(tmp_path):
    """After a grid ran, the same call is answered from the store without the runner
    (the rerun path that imports no torch): the call's cells were remembered."""
    kw = {"store": ResultsStore(tmp_path / "r.sqlite"), "executor": "serial", "tasks": 1,
          "compare_losses": [], "progress": False, "model_cache": False, **TINY}
    args = ("digits", ["metric"], [1], [5], [0])
    assert grid_index.stored_grid(*args, **kw) is None
    ran = grid_module.run_grid(*args, **kw)
    again = grid_index.stored_grid(*args, **kw)
    assert again is not None
    pd.testing.assert_frame_equal(again.reset_index(drop=True), ran.reset_index(drop=True))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")
def test_a_grid_worker_asks_to_be_killed_with_its_grid():
    """A process-executor worker sets SIGKILL as its parent-death signal (so a killed
    grid leaves no worker behind). Checked on this process, then reset."""
    libc = ctypes.CDLL(None, use_errno=True)
    pr_get_pdeathsig, got = 2, ctypes.c_int(-1)
    libc.prctl(pr_get_pdeathsig, ctypes.byref(got))
    before = got.value
    try:
        grid_module._die_with_parent(os.getppid())
        libc.prctl(pr_get_pdeathsig, ctypes.byref(got))
        assert got.value == signal.SIGKILL
    finally:
        libc.prctl(grid_module._PR_SET_PDEATHSIG, before)


# ---- store ---------------------------------------------------------------------------------
def _record(i: int, **kw) -> RunRecord:
    base = {"dataset": "digits", "method": "metric", "k": 1, "n": 5, "seed": i,
            "accuracy": 0.5, "config_hash": f"h{i}", "metrics": {}, "notes": ""}
    base.update(kw)
    return RunRecord(**base)


def test_a_record_without_a_time_is_stamped_when_added(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    before = time.time()
    store.add(_record(0))
    after = time.time()
    store.add(_record(1, created=123.0))
    assert before <= store.get("h0").created <= after
    assert store.get("h1").created == 123.0


def test_a_nan_accuracy_is_refused_with_the_reason(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    with pytest.raises(StoreError, match=r"accuracy must be a finite number, got nan \(a run "
                                         r"that produced NaN or inf failed: fix it rather "
                                         r"than store it\)$"):
        store.add(_record(0, accuracy=float("nan")))
    assert len(store) == 0


def test_the_grid_index_remembers_a_calls_cells(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    assert store.remembered_grid("call-1") is None            # no index table yet
    store.remember_grid("call-1", ["a", "b"])
    store.remember_grid("call-2", ["c"])
    assert store.remembered_grid("call-1") == ["a", "b"]
    assert store.remembered_grid("call-2") == ["c"]
    assert store.remembered_grid("call-3") is None


EXPLAINED = [
    ("file is not a database", r"is not a valid SQLite database \(file is not a database\)"),
    ("database disk image is malformed", r"is not a valid SQLite database"),
    ("attempt to write a readonly database", r"cannot open the results store .* for reading "
                                             r"and writing: attempt to write a readonly"),
    ("unable to open database file", r"cannot open the results store .* for reading and "
                                     r"writing: unable to open database file; fix the "
                                     r"permissions"),
    ("database is locked", r"stayed locked by another process for over \d+ s \(database is "
                           r"locked\): wait for it to finish or use another store$"),
    ("database is busy", r"stayed locked by another process"),
    ("no such column: x", r"^results store .*r\.sqlite: no such column: x$"),
]


@pytest.mark.parametrize("text, message", EXPLAINED, ids=[t for t, _ in EXPLAINED])
def test_each_kind_of_sqlite_error_gets_its_explanation(tmp_path, text, message):
    store = ResultsStore(tmp_path / "r.sqlite")
    err = store._explain(sqlite3.OperationalError(text))
    assert isinstance(err, StoreError)
    assert re.search(message, str(err)), str(err)
    assert str(tmp_path / "r.sqlite") in str(err)


# ---- report ----------------------------------------------------------------------------------
def _frame(conditions=((1, 5), (2, 5)), reps: int = 3, drop=()) -> pd.DataFrame:
    """Six methods; at k = 1 the hybrids equal their parents. Replication r adds
    r / 100 to every method."""
    base = {"scratch": 0.3, "weight_transfer": 0.4, "metric": 0.7, "protonet": 0.6,
            "adapted_metric": 0.8, "adapted_protonet": 0.65}
    rows = []
    for k, n in conditions:
        for m, a in base.items():
            if (m, k) in drop:
                continue
            acc = base[{"adapted_metric": "metric", "adapted_protonet": "protonet"}.get(m, m)] \
                if k == 1 else a
            for r in range(reps):
                rows.append({"dataset": "glyphs", "method": m, "loss": "histogram", "k": k,
                             "n": n, "seed": r, "task": 0, "accuracy": acc + r / 100,
                             "config_hash": f"{m}{k}{n}{r}", "created": 0.0})
    return pd.DataFrame(rows)


def test_the_comparison_rows_name_both_methods_and_the_interval():
    rep = report(_frame())
    rows = rep.claim(1).per_condition
    assert list(rows.columns) == ["comparison", "k", "n", "a", "b", "mean", "low", "high",
                                  "replications", "verdict"]
    row = rows[(rows["comparison"] == "metric - weight_transfer") & (rows["k"] == 2)].iloc[0]
    assert (row["a"], row["b"], row["replications"]) == ("metric", "weight_transfer", 3)
    assert row["mean"] == pytest.approx(0.3)
    assert row["low"] <= row["mean"] <= row["high"]


def test_the_adapting_error_reduction_covers_every_k_above_one():
    """At k = 2 the best hybrid (adapted_metric, mean 0.81) against the best non-hybrid
    (metric, mean 0.71): error reduction (0.29 - 0.19) / 0.29. A k = 1 condition alone
    would give none (the hybrids equal their parents there)."""
    rep = report(_frame())
    want = 0.10 / 0.29
    assert rep.error_reduction_adapting is not None
    assert rep.error_reduction_adapting.estimate.mean == pytest.approx(want)
    text = next(line for line in rep.claim(2).evidence if ", k > 1: " in line)
    shown = float(re.search(r", k > 1: (\S+) \[", text).group(1))
    assert shown == pytest.approx(100 * want, abs=0.05)        # in percent
    assert text.startswith("mean error reduction of the best hybrid over the best "
                           "non-hybrid, k > 1: ")


def test_a_method_missing_at_a_condition_has_no_accuracy_there():
    rep = report(_frame(drop={("scratch", 2)}))
    assert np.isnan(rep.accuracy.loc[(2, 5), "scratch"])
    assert rep.accuracy.loc[(1, 5), "scratch"] == pytest.approx(0.31)
    assert rep.replications.loc[(2, 5), "scratch"] == 0


def test_the_newest_record_of_a_cell_is_the_one_reported():
    """Two runs of one cell (other settings, other hashes): the later ``created`` wins,
    whatever the order of the rows."""
    frame = _frame(conditions=((2, 5),))
    old = frame[frame["method"] == "scratch"].assign(accuracy=0.05, created=10.0,
                                                      config_hash=lambda f: f["config_hash"]
                                                      + "-old")
    newer = frame.assign(created=20.0)
    rep = report(pd.concat([newer, old], ignore_index=True))
    assert rep.accuracy.loc[(2, 5), "scratch"] == pytest.approx(0.31)


def test_a_registered_method_enters_the_report():
    from dml_kit import methods
    from dml_kit.methods.registry import registered

    custom = dataclasses.replace(methods.METHODS["protonet"], name="protonet_copy")
    extra = _frame()
    extra = extra[extra["method"] == "protonet"].assign(
        method="protonet_copy", config_hash=lambda f: f["config_hash"] + "-copy")
    with registered(custom):
        rep = report(pd.concat([_frame(), extra], ignore_index=True))
    assert "protonet_copy" in rep.accuracy.columns
    assert rep.accuracy.loc[(2, 5), "protonet_copy"] == pytest.approx(0.61)
