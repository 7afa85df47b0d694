"""Grid specs, the results store (round trip, no retraining, killed and concurrent
writers), the grid runner and the report."""

from __future__ import annotations

import dataclasses
import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dml_kit import experiments
from dml_kit.experiments import GridSpec, ResultsStore, RunRecord, report, run_grid
from dml_kit.experiments import grid as grid_module
from dml_kit.experiments import store as store_module
from dml_kit.experiments.store import StoreError
from dml_kit.metrics import error_reduction

# a tiny digits grid: 5 source and 5 target classes, a small MLP, few epochs
TINY = {"embedding_dim": 32, "hidden": (64,), "source_epochs": 3, "source_patience": 2,
        "batch_classes": 5, "batch_per_class": 8, "batches_per_epoch": 10,
        "episodes_per_epoch": 10, "target_epochs": 5, "target_patience": 3}


def _record(i: int, **kw) -> RunRecord:
    base = {"dataset": "digits", "method": "metric", "k": 1, "n": 5, "seed": i,
            "accuracy": 0.5 + i / 1000, "config_hash": f"h{i}",
            "metrics": {"acc_1nn": 0.5, "norm_cv": 0.1}, "notes": "x"}
    base.update(kw)
    return RunRecord(**base)


# ---- specs -----------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, name", [
    ({"methods": ["metric", "magic"]}, "methods"),
    ({"k_values": [0, 5]}, "k_values"),
    ({"n_values": [1]}, "n_values"),
    ({"k_values": []}, "k_values"),
    ({"seeds": 0}, "seeds"),
    ({"seeds": [-1]}, "seeds"),
    ({"dataset": "cifar1000"}, "dataset"),
    ({"preset": "huge"}, "preset"),
    ({"source": "elsewhere"}, "source"),
    ({"target_lr": -1.0}, "target_lr"),
    ({"bogus_field": 1}, "unknown config field"),
])
def test_invalid_grid_specs_name_the_argument(kwargs, name):
    args = {"dataset": "digits", "methods": "all", "k_values": [1], "n_values": [5],
            "seeds": 1}
    args.update(kwargs)
    dataset = args.pop("dataset")
    with pytest.raises(ValueError, match=name):
        GridSpec.create(dataset, **args)


def test_run_grid_rejects_cells_the_data_cannot_fill(tmp_path):
    store = tmp_path / "r.sqlite"
    with pytest.raises(ValueError, match="k_values"):
        run_grid("digits", ["scratch"], [500], [5], 1, store=store, executor="serial")
    with pytest.raises(ValueError, match="n_values"):
        run_grid("digits", ["scratch"], [1], [9], 1, store=store, executor="serial")
    with pytest.raises(ValueError, match="executor"):
        run_grid("digits", ["scratch"], [1], [5], 1, store=store, executor="threads")


def test_spec_defaults_come_from_the_preset():
    spec = GridSpec.create(preset="classroom")
    assert spec.dataset == "glyphs" and spec.k_values == (1, 5, 10)
    assert spec.n_values == (5, 10) and spec.seeds == (0, 1, 2, 3) and spec.tasks == 5
    assert len(spec.methods) == 6 and len(spec.compare_losses) == 3
    assert spec.n_cells == (6 + 3) * 3 * 2 * 4 * 5
    assert GridSpec.create(preset="classroom", methods=["metric"]).compare_losses == ()


def test_jobs_share_source_models():
    spec = GridSpec.create("digits", "all", [1, 5], [3, 5], 2, compare_losses=[], **TINY)
    jobs = grid_module.plan_jobs(spec, grid_module.grid_cells(spec))
    kinds = pd.Series([j.source_kind for j in jobs]).value_counts(dropna=False)
    # per seed: 1 classifier, 1 embedding, 1 scratch group; protonets per (seed, n, k)
    assert kinds["classifier"] == 2 and kinds["embedding"] == 2 and kinds[None] == 2
    assert kinds["protonet"] == 2 * 2 * 2
    assert sum(len(j.cells) for j in jobs) == spec.n_cells
    emb = [j for j in jobs if j.source_kind == "embedding"][0]
    assert {c.method for c in emb.cells} == {"metric", "adapted_metric"}
    paper = GridSpec.create("digits", "all", [1, 5], [3, 5], 2, source="paper",
                            compare_losses=[], **TINY)
    jobs = grid_module.plan_jobs(paper, grid_module.grid_cells(paper))
    assert sum(j.source_kind == "embedding" for j in jobs) == 2 * 2  # per (seed, n)


def test_config_hashes_follow_the_data_content_and_the_recipe_version(monkeypatch):
    from dml_kit import data
    from dml_kit.data.core import Dataset

    digits = data.load("digits")

    def copy(x=None, y=None, name=None):
        return Dataset(name or digits.name, digits.x.clone() if x is None else x,
                       digits.y.clone() if y is None else y, digits.class_names,
                       digits.class_groups)

    fingerprint = grid_module.dataset_fingerprint
    base = fingerprint(digits)
    assert fingerprint(copy()) == base and len(base) == 16
    brighter = digits.x.clone()
    brighter[0] += 0.25  # the first example is always among the sampled ones
    relabelled = digits.y.clone()
    relabelled[[0, -1]] = relabelled[[-1, 0]]
    changed = [copy(x=brighter), copy(y=relabelled), copy(name="digits2"),
               digits.select_classes(range(9))]
    assert len({base, *map(fingerprint, changed)}) == 1 + len(changed)

    spec = GridSpec.create("digits", "metric", [1], [5], 1, tasks=1, **TINY)

    def cell(fp):
        return grid_module.cell_hash("digits", "metric", 1, 5, 0, spec.config, spec.source,
                                     fingerprint=fp)

    assert cell(base) == cell(fingerprint(copy())) != cell(fingerprint(changed[0]))
    hashes = [c.config_hash for c in grid_module.grid_cells(spec)]
    assert hashes == [cell(base)]
    assert [c.config_hash for c in grid_module.grid_cells(spec)] == hashes  # stable
    monkeypatch.setattr(grid_module, "RECIPE_VERSION", grid_module.RECIPE_VERSION + 1)
    assert [c.config_hash for c in grid_module.grid_cells(spec)] != hashes


# ---- store -----------------------------------------------------------------------------
def test_store_round_trip_and_no_duplicates(tmp_path):
    store = ResultsStore(tmp_path / "sub" / "r.sqlite")
    assert len(store) == 0 and store.to_frame().empty
    assert store.add(_record(1))
    assert not store.add(_record(1, accuracy=0.1))  # same hash: kept
    assert store.get("h1").accuracy == pytest.approx(0.501)
    assert store.add(_record(1, accuracy=0.1), replace=True)
    got = store.get("h1")
    assert got.accuracy == 0.1 and got.metrics == {"acc_1nn": 0.5, "norm_cv": 0.1}
    store.add_many([_record(i) for i in range(2, 5)])
    assert len(store) == 4 and store.done(["h2", "zz"]) == {"h2"} and "h3" in store
    frame = store.to_frame(method="metric")
    assert len(frame) == 4 and "m_acc_1nn" in frame
    with pytest.raises(ValueError, match="unknown column"):
        store.records(colour="red")
    with sqlite3.connect(store.path) as con:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store.delete("h4") and len(store) == 3


@pytest.mark.parametrize("change, field", [
    ({"accuracy": float("nan")}, "accuracy must be a finite number"),
    ({"accuracy": float("inf")}, "accuracy must be a finite number"),
    ({"accuracy": None}, "accuracy must be a finite number"),
    ({"accuracy": 1.7}, "accuracy must be in [0, 1]"),
    ({"accuracy": -0.1, "kind": "shift_study", "metric": "recall@1"},
     "accuracy must be in [0, 1] for metric 'recall@1'"),
    ({"k": "five"}, "k must be a non-negative integer"),
    ({"k": 2.5}, "k must be a non-negative integer"),
    ({"n": -1}, "n must be a non-negative integer"),
    ({"seed": True}, "seed must be a non-negative integer"),
    ({"task": None}, "task must be a non-negative integer"),
    ({"dataset": ""}, "dataset must be a non-empty string"),
    ({"method": None}, "method must be a non-empty string"),
    ({"config_hash": ""}, "config_hash must be a non-empty string"),
    ({"kind": "party"}, "unknown record kind 'party'"),
])
def test_store_refuses_bad_records_naming_the_field(tmp_path, change, field):
    store = ResultsStore(tmp_path / "r.sqlite")
    with pytest.raises(StoreError) as exc:
        store.add(_record(1, **change))
    assert field in str(exc.value)
    assert isinstance(exc.value, ValueError) and len(store) == 0


def test_store_add_only_ignores_an_existing_hash(tmp_path):
    store = ResultsStore(tmp_path / "r.sqlite")
    assert store.add(_record(1, k=np.int64(3)))        # numpy integers are stored as int
    assert store.get("h1").k == 3 and type(store.get("h1").k) is int
    assert not store.add(_record(1, accuracy=0.9))      # same hash: kept, reported False
    assert store.get("h1").accuracy == pytest.approx(0.501)
    assert store.add(_record(1, accuracy=0.9), replace=True)
    assert store.get("h1").accuracy == 0.9 and len(store) == 1
    # a value other than accuracy under another metric is not a fraction
    assert store.add(_record(2, metric="loss", accuracy=3.5))


def test_reading_a_missing_store_creates_nothing(tmp_path, monkeypatch):
    missing = tmp_path / "no" / "dir" / "x.sqlite"
    for read in (lambda: ResultsStore(missing, create=False),
                 lambda: ResultsStore.open_existing(missing),
                 lambda: report(missing), lambda: report(str(missing)),
                 lambda: experiments.report_datasets(missing)):
        with pytest.raises(StoreError, match="no results store at") as exc:
            read()
        assert str(missing) in str(exc.value) and "python -m dml_kit grid" in str(exc.value)
    assert not (tmp_path / "no").exists()
    monkeypatch.setenv("DML_KIT_DATA", str(tmp_path / "empty_data"))
    with pytest.raises(StoreError, match="no results store at"):
        report()
    assert not (tmp_path / "empty_data").exists()
    ResultsStore(missing)                                # writers still create
    assert missing.exists()


def test_report_of_a_wrong_type_names_results():
    with pytest.raises(TypeError, match=r"results must be a DataFrame.*got int"):
        report(42)
    with pytest.raises(TypeError, match="path must be a file path"):
        ResultsStore(42)  # type: ignore[arg-type]


def test_a_corrupt_store_names_its_path(tmp_path):
    path = tmp_path / "corrupt.sqlite"
    path.write_bytes(b"not a database at all\n" * 500)
    for use in (lambda: ResultsStore(path), lambda: ResultsStore(path, create=False),
                lambda: report(path)):
        with pytest.raises(StoreError, match="not a valid SQLite database") as exc:
            use()
        assert str(path) in str(exc.value) and "move it away" in str(exc.value)
    assert path.read_bytes().startswith(b"not a database")   # left as it was


def test_a_folder_or_a_file_in_the_way_names_the_path(tmp_path, monkeypatch):
    with pytest.raises(StoreError, match="is a folder, not a file") as exc:
        ResultsStore(tmp_path)
    assert str(tmp_path) in str(exc.value)
    (tmp_path / "plain").write_text("x")
    with pytest.raises(StoreError, match=f"{tmp_path / 'plain'} is a file, not a folder"):
        ResultsStore(tmp_path / "plain" / "sub" / "r.sqlite")
    monkeypatch.setenv("DML_KIT_DATA", str(tmp_path / "plain"))
    for use in (ResultsStore, report, experiments.default_path):
        with pytest.raises(ValueError, match="DML_KIT_DATA=.*plain is a file, not a folder"):
            use()


@pytest.mark.parametrize("text", ["unable to open database file",
                                  "attempt to write a readonly database"])
def test_sqlite_open_failures_name_the_path(tmp_path, monkeypatch, text):
    # what a read-only file or folder gives, simulated (root ignores permissions)
    path = tmp_path / "r.sqlite"
    ResultsStore(path)

    def refuse(*args, **kwargs):
        raise sqlite3.OperationalError(text)

    monkeypatch.setattr(store_module.sqlite3, "connect", refuse)
    with pytest.raises(StoreError, match="cannot open the results store") as exc:
        ResultsStore(path, create=False)
    assert str(path) in str(exc.value) and "chmod" in str(exc.value)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
@pytest.mark.parametrize("what", ["file", "folder"])
def test_a_read_only_store_names_its_path(tmp_path, what):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "r.sqlite"
    ResultsStore(path).add(_record(1))
    for extra in folder.iterdir():   # WAL side files, removed so SQLite must write them
        if extra != path:
            extra.unlink()
    target = path if what == "file" else folder
    target.chmod(0o444 if what == "file" else 0o555)
    try:
        with pytest.raises(StoreError, match="cannot open the results store") as exc:
            report(path)
        message = str(exc.value)
        assert str(path) in message and "chmod" in message
        assert ("file" if what == "file" else "folder") in message
        with pytest.raises(StoreError, match=re.escape(str(path))):
            ResultsStore(path).add(_record(2))
    finally:
        target.chmod(0o755 if what == "folder" else 0o644)


_WRITER = textwrap.dedent("""
    import sys
    from dml_kit.experiments import ResultsStore, RunRecord
    store = ResultsStore(sys.argv[1])
    tag = sys.argv[2]
    i = 0
    while True:
        store.add(RunRecord(dataset="digits", method="metric", k=1, n=5, seed=i,
                            accuracy=0.5, config_hash=f"{tag}-{i}",
                            metrics={f"m{j}": float(j) for j in range(50)},
                            notes="n" * 2000, config="c" * 5000))
        i += 1
        if len(sys.argv) > 3 and i >= int(sys.argv[3]):
            break
""")


def _writer(path, tag, count=None):
    args = [sys.executable, "-c", _WRITER, str(path), tag] + ([str(count)] if count else [])
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_killed_writer_leaves_the_store_readable(tmp_path):
    path = tmp_path / "r.sqlite"
    ResultsStore(path)
    proc = _writer(path, "a")
    deadline = time.time() + 60
    while time.time() < deadline and len(ResultsStore(path)) < 20:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = ResultsStore(path)
    records = store.records()
    assert len(records) >= 20
    assert all(len(r.metrics) == 50 and len(r.config) == 5000 for r in records)
    with sqlite3.connect(path) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store.add(_record(10_000, accuracy=0.5))  # still writable
    assert "h10000" in store


def test_concurrent_writers_do_not_lose_records(tmp_path):
    path = tmp_path / "r.sqlite"
    ResultsStore(path)
    procs = [_writer(path, tag, 40) for tag in ("a", "b", "c")]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    assert len(ResultsStore(path)) == 120


# ---- grid ------------------------------------------------------------------------------
def test_grid_runs_stores_and_does_not_retrain(tmp_path, monkeypatch):
    store = ResultsStore(tmp_path / "r.sqlite")
    frame = run_grid("digits", "all", [1, 3], [5], 1, store=store, executor="serial", tasks=1,
                     compare_losses=[], progress=False, **TINY)
    assert len(frame) == 12 and len(store) == 12
    assert set(frame["method"]) == set(experiments.grid.METHODS)
    assert (frame["accuracy"] > 0.3).all(), frame[["method", "k", "accuracy"]]
    k1 = frame[(frame["method"] == "adapted_metric") & (frame["k"] == 1)]
    assert k1["notes"].iloc[0] == "k=1: no adaptation (as in the paper)"
    assert frame["version"].iloc[0] and frame["config_hash"].is_unique
    # each source model is trained once: only the first cell of a job carries its time
    emb = frame[frame["method"].isin(["metric", "adapted_metric"])]
    assert (emb["source_seconds"] > 0).sum() == 1

    def boom(*args, **kwargs):
        raise AssertionError("a stored cell was retrained")

    monkeypatch.setattr(grid_module, "run_job", boom)
    again = run_grid("digits", "all", [1, 3], [5], 1, store=store, executor="serial", tasks=1,
                     compare_losses=[], progress=False, **TINY)
    pd.testing.assert_frame_equal(again, frame)
    with pytest.raises(AssertionError, match="retrained"):
        run_grid("digits", ["metric"], [1], [5], 1, store=store, executor="serial", tasks=1,
                 progress=False, force=True, **TINY)


def test_a_grid_with_new_cells_loads_its_source_models_from_the_model_cache(tmp_path,
                                                                            monkeypatch):
    from dml_kit import methods as methods_module

    trained = []
    real_trainers = methods_module.source_trainers()

    def counting(kind):
        def train(*args, **kwargs):
            trained.append(kind)
            return real_trainers[kind](*args, **kwargs)
        return train

    monkeypatch.setattr(methods_module, "source_trainers",
                        lambda: {k: counting(k) for k in real_trainers})
    kw = {"methods": ["metric", "adapted_metric", "weight_transfer"], "n_values": [5],
          "seeds": [0], "tasks": 1, "executor": "serial", "progress": False, **TINY}
    first = run_grid("digits", k_values=[1], store=tmp_path / "r.sqlite", **kw)
    assert sorted(trained) == ["classifier", "embedding"]
    assert sorted(p.suffix for p in (tmp_path / "models").iterdir()) == [".pt", ".pt"]
    trained.clear()
    more = run_grid("digits", k_values=[1, 3], store=tmp_path / "r.sqlite", **kw)
    assert trained == []                       # k = 3's cells reuse the cached sources
    new = more[more["k"] == 3]
    assert len(new) == 3 and new["notes"].str.contains("loaded from the model cache").all()
    # the cache changes no number: a grid that trains everything gives the same records
    fresh = run_grid("digits", k_values=[1, 3], store=tmp_path / "fresh.sqlite",
                     model_cache=False, **kw)
    assert sorted(trained) == ["classifier", "embedding"]
    assert np.array_equal(more["accuracy"].to_numpy(), fresh["accuracy"].to_numpy())
    assert list(first["config_hash"]) == list(more[more["k"] == 1]["config_hash"])
    with pytest.raises(TypeError, match="model_cache must be True, False or a folder"):
        run_grid("digits", k_values=[5], store=tmp_path / "x.sqlite", model_cache=3, **kw)


def test_process_executor_matches_serial(tmp_path):
    # model_cache=False: both executors train (a shared cache would make the second load)
    kw = {"methods": ["metric", "adapted_protonet", "scratch"], "k_values": [2],
          "n_values": [5], "seeds": [3], "tasks": 2, "progress": False, "model_cache": False,
          **TINY}
    serial = run_grid("digits", store=tmp_path / "a.sqlite", executor="serial", **kw)
    procs = run_grid("digits", store=tmp_path / "b.sqlite", executor="process",
                     max_workers=2, **kw)
    assert np.array_equal(serial["accuracy"].to_numpy(), procs["accuracy"].to_numpy())
    assert list(serial["config_hash"]) == list(procs["config_hash"])


@pytest.mark.slow
def test_ray_executor(tmp_path):
    """Ray (optional extra) with a local ray.init(); about a minute on 2 busy cores."""
    ray = pytest.importorskip("ray")
    kw = {"methods": ["metric", "scratch"], "k_values": [2], "n_values": [5], "seeds": [0],
          "tasks": 1, "progress": False, "model_cache": False, **TINY}
    serial = run_grid("digits", store=tmp_path / "a.sqlite", executor="serial", **kw)
    try:
        via_ray = run_grid("digits", store=tmp_path / "b.sqlite", ray_address="local",
                           max_workers=2, **kw)
    finally:
        ray.shutdown()
    assert np.array_equal(serial["accuracy"].to_numpy(), via_ray["accuracy"].to_numpy())


# ---- report ----------------------------------------------------------------------------
def _frame() -> pd.DataFrame:
    acc = {  # (k, n) -> method -> accuracy
        (1, 5): {"scratch": 0.3, "weight_transfer": 0.4, "metric": 0.7, "protonet": 0.6,
                 "adapted_metric": 0.7, "adapted_protonet": 0.6},
        (5, 5): {"scratch": 0.5, "weight_transfer": 0.6, "metric": 0.8, "protonet": 0.82,
                 "adapted_metric": 0.9, "adapted_protonet": 0.85},
    }
    rows = [{"dataset": "glyphs", "method": m, "k": k, "n": n, "seed": s,
             "accuracy": a + (0.01 if s else -0.01), "config_hash": f"{m}{k}{n}{s}",
             "preset": "classroom", "created": float(s)}
            for (k, n), d in acc.items() for m, a in d.items() for s in (0, 1)]
    return pd.DataFrame(rows)


def test_report_winners_and_error_reduction():
    rep = report(_frame())
    assert rep.accuracy.loc[(5, 5), "adapted_metric"] == pytest.approx(0.9)
    assert rep.winner.loc[(5, 5)] == "adapted_metric"
    assert rep.comparison.loc[(5, 5), "best_non_adapted"] == "protonet"
    # per condition, from the means: (5, 5) (0.18 - 0.10) / 0.18; (1, 5) a tie at 0.7
    assert rep.comparison.loc[(5, 5), "best_non_adapted_acc"] == pytest.approx(0.82)
    assert rep.comparison.loc[(5, 5), "best_adapted_acc"] == pytest.approx(0.9)
    assert rep.comparison["error_reduction"].tolist() == pytest.approx([0.0, 0.08 / 0.18])
    expected = error_reduction([0.7, 0.82], [0.7, 0.9])
    assert rep.error_reduction.estimate.mean == pytest.approx(expected)
    # k > 1 only: (0.18 - 0.10) / 0.18
    assert rep.error_reduction_adapting.estimate.mean == pytest.approx(0.08 / 0.18)
    # two replications, +-0.01 each: t-interval 0.9 +- t(0.975, 1) * 0.01414 / sqrt(2)
    assert rep.high.loc[(5, 5), "adapted_metric"] - 0.9 == pytest.approx(12.7062047 * 0.01)
    assert rep.replications.loc[(5, 5), "metric"] == 2
    text = rep.to_text()
    assert "mean error reduction" in text and "adapted_metric" in text and "34%" in text
    assert "Deep embeddings are far superior" in text and "conclusion 3: not checked" in text


def _replicated(diff: dict[str, float], spread: float, reps: int = 6) -> pd.DataFrame:
    """Paired records: method m = 0.6 + diff[m] + noise_r (the same noise for every
    method of a replication) + its own small jitter."""
    rng = np.random.default_rng(0)
    rows = []
    for k in (1, 5):
        for r in range(reps):
            shared = rng.normal(0, 0.05)
            for m, d in diff.items():
                loss = "histogram"
                if m.startswith("metric:"):
                    m, loss = "metric", m.split(":")[1]
                acc = 0.6 + d + shared + rng.normal(0, spread)
                if k == 1 and METHODS_PARENT.get(m):
                    acc = None          # filled from the parent below
                rows.append({"dataset": "glyphs", "method": m, "loss": loss, "k": k, "n": 5,
                             "seed": r // 2, "task": r % 2, "accuracy": acc,
                             "config_hash": f"{m}{loss}{k}{r}", "created": 0.0})
    frame = pd.DataFrame(rows)
    for child, parent in METHODS_PARENT.items():
        mask = (frame["k"] == 1) & (frame["method"] == child)
        src = frame[(frame["k"] == 1) & (frame["method"] == parent)
                    & (frame["loss"] == "histogram")]
        frame.loc[mask, "accuracy"] = src["accuracy"].to_numpy()
    return frame


METHODS_PARENT = {"adapted_metric": "metric", "adapted_protonet": "protonet"}


def test_report_verdicts_follow_the_paired_evidence():
    clear = {"scratch": -0.2, "weight_transfer": 0.0, "metric": 0.15, "protonet": 0.10,
             "adapted_metric": 0.20, "adapted_protonet": 0.12, "metric:triplet": 0.05,
             "metric:contrastive": 0.0}
    rep = report(_replicated(clear, spread=0.005))
    assert [c.verdict for c in rep.claims] == ["holds", "holds", "holds"]
    c1 = rep.claim(1).comparisons.set_index("comparison")
    # per replication metric - weight_transfer = 0.15 + jitter: the pooled mean is close
    assert c1.loc["metric - weight_transfer", "mean"] == pytest.approx(0.15, abs=0.01)
    assert c1.loc["metric - weight_transfer", "n"] == 6        # 3 seeds x 2 tasks
    c2 = rep.claim(2)
    assert set(c2.per_condition["k"]) == {5}                     # k = 1 left out
    assert any("equal their parents" in line for line in c2.evidence)
    assert set(rep.claim(3).comparisons["comparison"]) == {"histogram - triplet",
                                                           "histogram - contrastive"}
    # the histogram rows of metric, not the other losses, fill the accuracy table
    assert rep.accuracy.loc[(5, 5), "metric"] == pytest.approx(0.75, abs=0.05)

    reversed_ = dict(clear, metric=-0.1, protonet=-0.1, adapted_metric=-0.08,
                     adapted_protonet=-0.09, **{"metric:triplet": 0.1})
    rep = report(_replicated(reversed_, spread=0.005))
    assert [c.verdict for c in rep.claims] == ["fails", "holds", "fails"]

    noisy = dict(clear, metric=0.005, protonet=0.0, adapted_metric=0.01,
                 adapted_protonet=0.0, **{"metric:triplet": 0.0, "metric:contrastive": 0.0})
    rep = report(_replicated(noisy, spread=0.08))
    assert "not resolved at this sample size" in {c.verdict for c in rep.claims}
    assert "not resolved at this sample size (n = 6)" in rep.to_text()


def test_report_errors(tmp_path):
    with pytest.raises(ValueError, match="no records"):
        report(ResultsStore(tmp_path / "empty.sqlite"))
    two = pd.concat([_frame(), _frame().assign(dataset="digits")])
    with pytest.raises(ValueError, match="dataset is required"):
        report(two)
    with pytest.raises(ValueError, match="no records for dataset"):
        report(two, dataset="mnist")
    assert report(two, dataset="digits").dataset == "digits"


def test_default_store_lives_in_the_data_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("DML_KIT_DATA", str(tmp_path))
    assert experiments.default_path() == tmp_path / "results.sqlite"
    assert ResultsStore().path == tmp_path / "results.sqlite"
    assert os.path.exists(tmp_path / "results.sqlite")


# ---- schema migration and tasks per seed -------------------------------------------------
V1_COLUMNS = ("config_hash TEXT PRIMARY KEY, dataset TEXT NOT NULL, method TEXT NOT NULL, "
              "loss TEXT, regularizer TEXT, regularizer_weight REAL, k INTEGER NOT NULL, "
              "n INTEGER NOT NULL, seed INTEGER NOT NULL, accuracy REAL NOT NULL, "
              "metrics TEXT, notes TEXT, train_seconds REAL, source_seconds REAL, "
              "target_seconds REAL, preset TEXT, source TEXT, config TEXT, version TEXT, "
              "created REAL")


def test_a_store_of_the_first_schema_migrates_and_reports(tmp_path):
    path = tmp_path / "v1.sqlite"
    con = sqlite3.connect(path)
    con.execute(f"CREATE TABLE runs ({V1_COLUMNS})")
    con.execute("CREATE INDEX runs_cell ON runs (dataset, method, k, n, seed)")
    for row in _frame().itertuples():
        con.execute("INSERT INTO runs (config_hash, dataset, method, loss, k, n, seed, "
                    "accuracy, metrics, notes, preset, created) VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, '{}', '', ?, ?)",
                    (row.config_hash, row.dataset, row.method, "histogram", row.k, row.n,
                     row.seed, row.accuracy, row.preset, row.created))
    con.execute("PRAGMA user_version=1")
    con.commit()
    con.close()

    con = sqlite3.connect(path)     # a shift-study row, marked only by its notes in v1
    con.execute("INSERT INTO runs (config_hash, dataset, method, k, n, seed, accuracy, "
                "notes) VALUES ('s1', 'glyphs', 'metric', 5, 20, 0, 0.4, 'shift study: x')")
    con.commit()
    con.close()

    store = ResultsStore(path)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 3
    frame = store.to_frame()
    assert len(store) == 25 and set(frame["task"]) == {0}
    assert frame.groupby("kind")["metric"].unique().to_dict() == {
        "grid": ["accuracy"], "shift_study": ["recall@1"]}
    assert store.add(_record(99, task=3))
    assert store.get("h99").task == 3
    rep = report(store, dataset="glyphs")
    assert rep.accuracy.loc[(5, 5), "adapted_metric"] == pytest.approx(0.9)
    assert rep.records["kind"].eq("grid").all()          # the shift row is not a grid cell
    ResultsStore(path)                                    # opening again changes nothing
    assert len(ResultsStore(path)) == 26
    with pytest.raises(ValueError, match="unknown record kind 'sec'"):
        store.add(_record(100, kind="sec"))


def test_a_store_from_a_newer_kit_is_refused(tmp_path):
    path = tmp_path / "future.sqlite"
    ResultsStore(path)
    con = sqlite3.connect(path)
    con.execute("PRAGMA user_version=99")
    con.commit()
    con.close()
    with pytest.raises(ValueError, match="schema version 99, newer"):
        ResultsStore(path)


def test_tasks_per_seed_share_the_source_and_draw_distinct_tasks(tmp_path):
    spec = GridSpec.create("digits", ["metric", "scratch"], [1], [5], [0, 1], tasks=3,
                           compare_losses=["contrastive"], **TINY)
    cells = grid_module.grid_cells(spec)
    assert spec.n_cells == len(cells) == 3 * 2 * 3   # (2 methods + 1 loss) x seeds x tasks
    assert len({c.config_hash for c in cells}) == len(cells)  # task and seed enter the hash
    jobs = grid_module.plan_jobs(spec, cells)
    # per seed: one histogram embedding, one contrastive embedding, one scratch job
    assert sorted((str(j.source_kind), j.config.loss, len(j.cells)) for j in jobs
                  if j.seed == 0) == [("None", "histogram", 3),
                                      ("embedding", "contrastive", 3),
                                      ("embedding", "histogram", 3)]
    assert grid_module.task_seed(4, 0) == 4 and grid_module.task_seed(4, 2) == 4 + 2 * 10_007
    task0 = grid_module.target_task("digits", spec.source, 0, 5, 1)
    task1 = grid_module.target_task("digits", spec.source, 0, 5, 1, task=1)
    assert not torch_equal(task0.support_x, task1.support_x)
    frame = run_grid("digits", ["metric"], [1], [5], [0], tasks=2, compare_losses=[],
                     store=tmp_path / "r.sqlite", executor="serial", progress=False, **TINY)
    assert sorted(frame["task"]) == [0, 1] and frame["accuracy"].nunique() == 2
    with pytest.raises(ValueError, match="tasks=101 is out of range"):
        GridSpec.create("digits", "metric", [1], [5], 1, tasks=101)
    with pytest.raises(ValueError, match="unknown compare_losses 'hist'"):
        GridSpec.create("digits", "metric", [1], [5], 1, compare_losses=["hist"])


def test_tasks_by_n_gives_cheap_conditions_more_tasks():
    spec = GridSpec.create("digits", ["metric"], [1], [5, 10], [0, 1], tasks=2, **TINY)
    spec = dataclasses.replace(spec, tasks_by_n=((5, 4),))
    cells = grid_module.grid_cells(spec)
    per_n = {n: sorted({c.task for c in cells if c.n == n}) for n in (5, 10)}
    assert per_n == {5: [0, 1, 2, 3], 10: [0, 1]}
    assert spec.n_cells == len(cells) == (4 + 2) * 2     # (tasks at 5 + at 10) x seeds
    omni = GridSpec.create(preset="omniglot_cpu")
    assert (omni.tasks_for(5), omni.tasks_for(10), omni.tasks_for(100)) == (10, 10, 6)
    # an explicit tasks= applies to every n
    assert GridSpec.create(preset="omniglot_cpu", tasks=2).tasks_for(5) == 2


def torch_equal(a, b) -> bool:
    return a.shape == b.shape and bool((a == b).all())


# ---- the paper preset on rotated Omniglot (real files) ---------------------------------------
SHARED_OMNIGLOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "omniglot"
OMNI_ABSENT = [f for f in ("omniglot_images_background.npz", "omniglot_images_evaluation.npz",
                           "omniglot_alphabets.csv") if not (SHARED_OMNIGLOT / f).exists()]


@pytest.fixture
def rotated_omniglot_registered():
    """``omniglot_rotated`` served from the shared real files (the grid loads by name)."""
    from dml_kit import data
    from dml_kit.data import real

    rotated = data.load("omniglot_rotated", path=SHARED_OMNIGLOT)

    def loader(*, seed: int = 0, download: bool = False, root=None):
        return rotated

    grid_module._load.cache_clear()
    grid_module._fingerprint.cache_clear()
    data.register("omniglot_rotated", loader, replace=True)
    try:
        yield rotated
    finally:
        data.register("omniglot_rotated", real.omniglot_rotated, replace=True)
        grid_module._load.cache_clear()
        grid_module._fingerprint.cache_clear()


@pytest.mark.skipif(bool(OMNI_ABSENT), reason=f"real Omniglot files absent from "
                    f"{SHARED_OMNIGLOT}: {', '.join(OMNI_ABSENT)} (the shared offline copy "
                    "is not here)")
@pytest.mark.timeout(600)
def test_paper_preset_validates_and_runs_on_rotated_omniglot(tmp_path,
                                                             rotated_omniglot_registered):
    assert rotated_omniglot_registered.n_classes == 6_492
    spec = GridSpec.create(preset="paper")
    assert spec.dataset == "omniglot_rotated" and spec.n_values == (5, 10, 100, 1000)
    c = spec.config
    assert (c.architecture, c.embedding_dim, c.channels) == ("ade_omniglot", 128, 32)
    assert (c.episode_lr, c.max_episodes, c.episodes_per_epoch, c.episode_patience) == (
        1e-4, 10_000, 200, 4_000)
    assert (c.source_lr, c.source_patience, c.source_epochs) == (5e-3, 70, 500)
    assert c.batch_classes * c.batch_per_class == 2_040  # ~ the code's 2,048 at n = 1,000
    grid_module.check_grid_fits(spec)  # n = 1,000 fits the 3,246 target classes
    tiny = {"source_epochs": 1, "batches_per_epoch": 2, "episodes_per_epoch": 3,
            "max_episodes": 3, "target_epochs": 1, "val_classes": 5}
    frame = run_grid(preset="paper", methods=["metric", "protonet", "weight_transfer"],
                     k_values=[1], n_values=[5], seeds=[0], tasks=1, compare_losses=[],
                     executor="serial", store=tmp_path / "paper.sqlite", progress=False,
                     **tiny)
    assert len(frame) == 3 and set(frame["dataset"]) == {"omniglot_rotated"}
    assert frame["accuracy"].between(0.0, 1.0).all()


def test_every_executor_runs_jobs_on_one_torch_thread_and_restores_the_count(tmp_path,
                                                                               monkeypatch):
    import torch

    seen = []
    real_run = grid_module.methods.run

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real_run(*args, **kwargs)

    monkeypatch.setattr(grid_module.methods, "run", spy)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run_grid("digits", ["scratch"], [1], [5], [0], tasks=2, store=tmp_path / "r.sqlite",
                 executor="serial", progress=False, **TINY)
        assert seen == [grid_module.JOB_THREADS] * 2      # what process and Ray workers use
        assert torch.get_num_threads() == 2               # the caller's setting is back
    finally:
        torch.set_num_threads(before)


# ---- the CPU presets on real files, the paper preset on local Ray ---------------------------
SHARED_ISOLET = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "isolet"


@pytest.mark.skipif(bool(OMNI_ABSENT), reason=f"real Omniglot files absent from "
                    f"{SHARED_OMNIGLOT}: {', '.join(OMNI_ABSENT)} (the shared offline copy "
                    "is not here)")
def test_omniglot_cpu_preset_fits_rotated_omniglot_from_a_data_path():
    spec = GridSpec.create(preset="omniglot_cpu")
    assert spec.dataset == "omniglot_rotated" and spec.n_values == (5, 10, 100)
    assert spec.k_values == (1, 5, 10) and spec.source.kind == "paper"
    assert spec.config.architecture == "ade_omniglot" and spec.compare_losses
    grid_module.check_grid_fits(spec, data_path=str(SHARED_OMNIGLOT))
    t1 = grid_module.source_data(spec.dataset, spec.source, 0, 100,
                                 data_path=str(SHARED_OMNIGLOT))
    task = grid_module.target_task(spec.dataset, spec.source, 0, 100, 10,
                                   data_path=str(SHARED_OMNIGLOT))
    assert t1.n_classes == 100 and len(t1) == 2_000           # T1: n other classes x 20
    assert set(t1.class_names).isdisjoint(task.class_names)   # T2 classes are others
    assert len(task.query_y) == 100 * 10                      # test: 20 - k per class


@pytest.mark.skipif(not (SHARED_ISOLET / "isolet1_subset_cai.mat").exists(),
                    reason=f"the Isolet subset is absent from {SHARED_ISOLET} (the shared "
                    "offline copy is not here)")
def test_isolet_cpu_preset_runs_on_the_isolet_subset(tmp_path):
    spec = GridSpec.create(preset="isolet_cpu")
    assert spec.config.architecture == "ade_isolet" and spec.config.hidden == (128,)
    grid_module.check_grid_fits(spec, data_path=str(SHARED_ISOLET))
    frame = run_grid(preset="isolet_cpu", methods=["metric", "protonet"], k_values=[5],
                     n_values=[5], seeds=[0], tasks=1, compare_losses=[], executor="serial",
                     store=tmp_path / "iso.sqlite", progress=False, data_path=SHARED_ISOLET,
                     source_epochs=3, max_episodes=20, target_epochs=2)
    assert list(frame["method"]) == ["metric", "protonet"]
    assert frame["accuracy"].between(0.3, 1.0).all()   # well above chance (0.2) on real data


def test_gpus_per_job_is_checked_by_name():
    with pytest.raises(ValueError, match="gpus_per_job"):
        run_grid("digits", gpus_per_job=2.0, executor="ray", progress=False)
    with pytest.raises(ValueError, match="gpus_per_job is for executor='ray'"):
        run_grid("digits", gpus_per_job=1.0, executor="process", progress=False)


@pytest.mark.slow
@pytest.mark.skipif(bool(OMNI_ABSENT), reason=f"real Omniglot files absent from "
                    f"{SHARED_OMNIGLOT} (the shared offline copy is not here)")
@pytest.mark.timeout(900)
def test_paper_preset_on_local_ray_matches_the_process_executor(tmp_path):
    """The cluster path with a local Ray: a tiny override of the paper preset gives the same
    numbers and hashes as the process executor, and asks for no GPU on a CPU machine."""
    ray = pytest.importorskip("ray")
    tiny = {"source_epochs": 1, "batches_per_epoch": 2, "episodes_per_epoch": 3,
            "max_episodes": 3, "target_epochs": 2, "val_classes": 5}
    kw = {"preset": "paper", "methods": ["metric", "adapted_protonet", "weight_transfer"],
          "k_values": [2], "n_values": [5], "seeds": [0], "tasks": 1, "compare_losses": [],
          "progress": False, "data_path": SHARED_OMNIGLOT, "model_cache": False, **tiny}
    procs = run_grid(store=tmp_path / "p.sqlite", executor="process", max_workers=2, **kw)
    try:
        via_ray = run_grid(store=tmp_path / "r.sqlite", ray_address="local", max_workers=2,
                           **kw)
        assert grid_module.ray_gpus_per_job() == (1.0 if ray.cluster_resources().get("GPU")
                                                  else 0.0)
    finally:
        ray.shutdown()
    assert len(procs) == 3 and set(procs["dataset"]) == {"omniglot_rotated"}
    assert list(procs["config_hash"]) == list(via_ray["config_hash"])
    assert np.array_equal(procs["accuracy"].to_numpy(), via_ray["accuracy"].to_numpy())


# ---- bounded intervals, wrapped verdict lines, the regularizer comparison ---------------
def test_report_prints_accuracy_intervals_clipped_to_zero_hundred_but_keeps_them_raw():
    frame = _frame()
    # two replications far apart: the t-interval of scratch at (1, 5) is 0.3 +- 12.7 * 0.28
    frame.loc[(frame["method"] == "scratch") & (frame["k"] == 1), "accuracy"] = [0.1, 0.5]
    rep = report(frame)
    assert rep.low.loc[(1, 5), "scratch"] < 0 and rep.high.loc[(1, 5), "scratch"] > 1
    cell = rep.accuracy_table().loc[(1, 5), "scratch"]
    assert cell == "30.0 [0.0, 100.0] (clipped to [0, 100], n = 2)"
    assert rep.accuracy_table().loc[(5, 5), "metric"] == "80.0 [67.3, 92.7]"   # not clipped
    assert "-" not in rep.accuracy_table().loc[(1, 5), "scratch"].split("(")[0]


def test_claim_text_and_summary_break_long_lines_at_word_boundaries():
    rep = report(_replicated({"scratch": -0.2, "weight_transfer": 0.0, "metric": 0.15,
                              "protonet": 0.10, "adapted_metric": 0.20,
                              "adapted_protonet": 0.12}, spread=0.005))
    for text, flat in ((rep.claim(1).text(width=72), rep.claim(1).text()),
                       (rep.summary(width=72), rep.summary(width=None))):
        assert max(map(len, text.splitlines())) <= 72
        assert text.split() == flat.split()              # the same words: none cut in two
        assert max(map(len, flat.splitlines())) > 72     # so the test does wrap something
        for line in text.splitlines():                   # intervals and "(n = 6)" stay whole
            assert line.count("[") == line.count("]") and line.count("(n") <= line.count(")")
    summary = rep.summary()       # no other loss in these records: conclusion 3 unchecked
    assert "settles 2 of 3 conclusions" in summary and "  (3) not checked" in summary
    assert "  (1) holds\n      metric - weight_transfer: holds: +" in summary
    assert "needs more replications" not in summary       # said only when one is unresolved
    continuation = [line for line in rep.claim(1).text(width=72).splitlines()
                    if not line.startswith(("(", "    test:", "    =>"))]
    assert all(line.startswith("    ") for line in continuation)


def test_method_facts_say_which_methods_read_the_regularizer():
    from dml_kit.experiments.report import BUILTIN_METHODS, regularizer_methods
    from dml_kit.methods import METHODS

    for name, facts in BUILTIN_METHODS.items():
        assert facts.uses_regularizer == METHODS[name].uses_regularizer, name
    assert "weight_transfer" not in regularizer_methods() and "metric" in regularizer_methods()


def _variants() -> pd.DataFrame:
    rows = []
    for variant, gain in (("plain", 0.0), ("SEC", 0.05)):
        for method in ("weight_transfer", "metric", "adapted_metric"):
            for seed in range(3):
                acc = 0.6 + 0.01 * seed + (0.0 if method == "weight_transfer" else gain)
                rows.append({"variant": variant, "method": method, "k": 5, "n": 5,
                             "seed": seed, "task": 0, "accuracy": acc})
    return pd.DataFrame(rows)


def test_regularizer_effect_compares_only_methods_that_read_the_regularizer():
    from dml_kit.experiments.report import regularizer_effect

    effect = regularizer_effect(_variants(), "SEC", "plain")
    assert list(effect["method"]) == ["metric", "adapted_metric"]       # no weight_transfer
    assert list(effect["verdict"]) == ["holds", "holds"]
    assert effect["SEC"].iloc[0] - effect["plain"].iloc[0] == pytest.approx(0.05)
    with pytest.raises(ValueError, match=r"methods: 'weight_transfer' ignores the regularizer"
                                         r".*choose from: metric, adapted_metric"):
        regularizer_effect(_variants(), "SEC", "plain", methods=["metric", "weight_transfer"])
    with pytest.raises(ValueError, match=r"methods: 'protonet' has no rows"):
        regularizer_effect(_variants(), "SEC", "plain", methods=["protonet"])
    with pytest.raises(ValueError, match=r"with_: no rows with variant == 'sec'"):
        regularizer_effect(_variants(), "sec", "plain")
    only_wt = _variants()[lambda f: f["method"] == "weight_transfer"]
    with pytest.raises(ValueError, match="methods: none of the methods"):
        regularizer_effect(only_wt, "SEC", "plain")
    with pytest.raises(ValueError, match=r"results has no column 'variant'; columns: .*method"):
        regularizer_effect(_variants().drop(columns="variant"), "SEC", "plain")
    with pytest.raises(ValueError, match=r"'no_such' is not a registered method"):
        regularizer_effect(_variants(), "SEC", "plain", methods="no_such")
    # a threshold is passed on: +0.05 does not beat a claimed +0.5
    assert set(regularizer_effect(_variants(), "SEC", "plain", threshold=0.5)["verdict"]) == {
        "fails"}


# ---- a real set read from path=: the grid reads the same files, never downloads --------
def test_a_grid_given_the_readers_data_path_loads_from_it_without_any_download(tmp_path,
                                                                              monkeypatch):
    from dml_kit import data, settings
    from dml_kit.data.download import DownloadRequiredError

    digits = data.load("digits")
    folder = tmp_path / "my copy of mnist"
    folder.mkdir()
    calls = []

    def mnist(*, seed: int = 0, download: bool = False, root=None, path=None):
        """A stand-in for the MNIST loader: the files exist only under ``folder``."""
        calls.append((path, download))
        if download:
            raise AssertionError("the grid asked for a download")
        if path is None or Path(path) != folder.resolve():
            raise DownloadRequiredError("mnist is not in the data folder")
        return digits

    data.available()                                   # the real loaders are registered
    monkeypatch.setitem(data._LOADERS, "mnist", mnist)
    grid_module._load.cache_clear()
    grid_module._fingerprint.cache_clear()
    try:
        assert settings.load_dataset("mnist", path=folder) is digits     # the reader's line
        assert settings.data_path("mnist") == str(folder.resolve())
        store = ResultsStore(tmp_path / "r.sqlite")
        grid = dict(store=store, executor="serial", tasks=1, progress=False,
                    model_cache=False, **TINY)
        with pytest.raises(DownloadRequiredError):        # by name only: what 05/08 did
            run_grid("mnist", ["metric"], [1], [5], 1, **grid)
        calls.clear()
        frame = run_grid("mnist", ["metric"], [1], [5], 1,
                         data_path=settings.data_path("mnist"), **grid)
        assert len(frame) == 1 and frame["dataset"].iloc[0] == "mnist"
        assert calls and all(c == (str(folder.resolve()), False) for c in calls), calls
        spec = GridSpec.create("mnist", ["metric"], [1], [5], 1, tasks=1, data_path=folder,
                               **TINY)
        assert spec.data_path == str(folder.resolve())          # it travels with the spec
        assert grid_module.grid_cells(spec)[0].config_hash == frame["config_hash"].iloc[0]
        with pytest.raises(ValueError, match="data_path must be a folder path"):
            GridSpec.create("mnist", ["metric"], [1], [5], 1, data_path=3)
    finally:
        grid_module._load.cache_clear()
        grid_module._fingerprint.cache_clear()
        settings._PATHS.pop("mnist", None)


def test_regularizer_effect_refuses_weight_transfer_even_when_the_study_left_it_out():
    from dml_kit.experiments.report import regularizer_effect

    without_wt = _variants()[lambda f: f["method"] != "weight_transfer"]
    with pytest.raises(ValueError, match=r"methods: 'weight_transfer' ignores the regularizer"):
        regularizer_effect(without_wt, "SEC", "plain", methods="weight_transfer")
