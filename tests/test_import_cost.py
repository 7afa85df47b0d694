"""What reading the store costs: ``import dml_kit``, ``python -m dml_kit report`` and a
rerun of a stored grid import no torch (nor scikit-learn); digits load from a cached
file after the first time. Import checks run in fresh interpreters (this one has torch)."""

from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "sklearn", "umap", "plotly", "numba", "matplotlib")
TINY = ["--dataset", "digits", "--methods", "scratch", "metric", "--k", "1", "--n", "5",
        "--seeds", "1", "--tasks", "1", "--executor", "serial", "--no-progress"]


def _python(code: str, env: dict[str, str] | None = None, *args: str) -> str:
    """Run ``code`` in a fresh interpreter (in the checkout); its stdout."""
    done = subprocess.run([sys.executable, *args, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _heavy_after(code: str, env: dict[str, str] | None = None) -> list[str]:
    """The heavy modules a fresh interpreter has imported after running ``code``."""
    out = _python(f"{code}\nimport sys, json\n"
                  f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))", env)
    return json.loads(out.strip().splitlines()[-1])


def _env(data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DML_KIT_")}
    env["DML_KIT_DATA"] = str(data)
    return env


def _store_with_records(path: Path) -> Path:
    from dml_kit.experiments import ResultsStore, RunRecord

    store = ResultsStore(path)
    for seed in range(3):
        for method, acc in (("metric", 0.6), ("adapted_metric", 0.7), ("scratch", 0.4)):
            store.add(RunRecord(dataset="digits", method=method, k=1, n=5, seed=seed,
                                accuracy=acc + 0.01 * seed, config_hash=f"{method}-{seed}",
                                loss="histogram" if "metric" in method else "cross_entropy"))
    return path


# ---- imports -----------------------------------------------------------------------------
def test_import_dml_kit_and_its_store_and_report_import_no_torch(tmp_path):
    assert _heavy_after("import dml_kit") == []
    store = _store_with_records(tmp_path / "r.sqlite")
    code = (f"import dml_kit as dk\nfrom dml_kit import experiments, data, settings\n"
            f"r = experiments.report(experiments.ResultsStore({str(store)!r}, create=False))\n"
            f"assert 'adapted_metric' in r.to_text()\n"
            f"assert data.available() and dk.experiments is experiments")
    heavy = _heavy_after(code.replace("assert data.available() and ", "assert "))
    assert heavy == []
    # the registry's first use registers the real datasets (and loads torch): still works
    assert "torch" in _heavy_after(code)


def test_lazy_attributes_are_the_modules_and_objects():
    import dml_kit as dk
    from dml_kit import data, experiments
    from dml_kit.data import Dataset, kshot_task
    from dml_kit.data.core import Dataset as CoreDataset
    from dml_kit.data.tasks import kshot_task as tasks_kshot
    from dml_kit.experiments import grid, grid_index

    assert dk.data is data and Dataset is CoreDataset and kshot_task is tasks_kshot
    assert dk.seed_everything is importlib.import_module("dml_kit.device").seed_everything
    assert experiments.run_grid is grid_index.run_grid and callable(grid.run_grid)
    assert experiments.GridSpec is importlib.import_module("dml_kit.experiments.config").GridSpec
    assert callable(experiments.report)  # the function, not the submodule of that name
    assert "kshot_task" in dir(data) and "methods" in dir(dk)
    # submodules reachable as attributes, as when the packages imported them eagerly
    assert dk.data.shift.fewer_train_classes and dk.device.resolve_device
    assert experiments.store.ResultsStore is experiments.ResultsStore
    assert dk.data.real.isolet is data.real.LOADERS["isolet"]
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        dk.nope  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        data.nope  # noqa: B018
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        experiments.nope  # noqa: B018


def test_report_knows_the_builtin_methods_without_importing_them():
    from dml_kit.experiments.report import BUILTIN_METHODS
    from dml_kit.methods import METHODS

    assert list(BUILTIN_METHODS) == list(METHODS)
    for name, facts in BUILTIN_METHODS.items():
        assert (facts.source_kind, facts.adapted) == (METHODS[name].source_kind,
                                                      METHODS[name].adapted), name


def test_cli_report_imports_no_torch(tmp_path):
    store = _store_with_records(tmp_path / "r.sqlite")
    env = _env(tmp_path / "data")
    out = _python("import runpy, sys\n"
                  f"sys.argv = ['dml_kit', 'report', '--store', {str(store)!r}]\n"
                  "try:\n    runpy.run_module('dml_kit', run_name='__main__')\n"
                  "except SystemExit as e:\n    assert not e.code, e.code\n"
                  f"print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules])", env)
    assert "9 runs" in out and "adapted_metric" in out
    assert out.strip().splitlines()[-1] == "HEAVY []"
    # the command itself, as typed: -X importtime lists every module it imported
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "dml_kit", "report",
                           "--store", str(store)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0 and "9 runs" in done.stdout
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()
                if line.startswith("import time:")}
    assert "dml_kit.experiments.report" in imported
    assert not imported & set(HEAVY), imported & set(HEAVY)


# ---- a rerun from the store ---------------------------------------------------------------
def _cli_grid(store: Path, env: dict[str, str], *extra: str) -> tuple[str, list[str]]:
    """``python -m dml_kit grid`` on the tiny grid: its report and the heavy modules."""
    argv = ["dml_kit", "grid", *TINY, "--store", str(store), *extra]
    out = _python("import runpy, sys\n"
                  f"sys.argv = {argv!r}\n"
                  "try:\n    runpy.run_module('dml_kit', run_name='__main__')\n"
                  "except SystemExit as e:\n    assert not e.code, e.code\n"
                  f"print('HEAVY', [m for m in {HEAVY!r} if m in sys.modules])", env)
    lines = out.strip().splitlines()
    heavy = ast.literal_eval(lines[-1].removeprefix("HEAVY "))
    report = "\n".join(line for line in lines[:-1] if "finished in" not in line)
    return report, heavy


@pytest.mark.timeout(600)
def test_a_stored_grid_reruns_without_torch_and_gives_the_same_report(tmp_path):
    from dml_kit.experiments import ResultsStore

    store, env = tmp_path / "r.sqlite", _env(tmp_path / "data")
    first, heavy = _cli_grid(store, env)   # trains; digits' cache file appears meanwhile
    assert "torch" in heavy and len(ResultsStore(store)) == 2
    second, heavy = _cli_grid(store, env)  # all stored, hashes computed: noted in the index
    assert "torch" in heavy and second == first
    third, heavy = _cli_grid(store, env)   # answered from the index
    assert heavy == [] and third == first
    # another call (a third k) is not in the index: the full runner hashes (and trains)
    _, heavy = _cli_grid(store, env, "--k", "1", "2")
    assert "torch" in heavy and len(ResultsStore(store)) == 4


def test_the_index_answers_what_the_full_runner_answers(tmp_path, monkeypatch):
    from dml_kit import data, methods
    from dml_kit.experiments import grid, grid_index

    monkeypatch.setenv("DML_KIT_DATA", str(tmp_path / "data"))
    data.load("digits")  # its cache file (the grid's own loads may be cached in-process)
    kw = {"store": tmp_path / "r.sqlite", "executor": "serial", "tasks": 1,
          "progress": False, "embedding_dim": 16, "source_epochs": 1, "target_epochs": 1}
    args = ("digits", ["metric"], [1], [5], 1)
    assert grid_index.stored_grid(*args, **kw) is None   # no store yet
    grid.run_grid(*args, **kw)
    full = grid.run_grid(*args, **kw)   # all stored: noted now (the cache file existed)
    stored = grid_index.stored_grid(*args, **kw)
    assert stored is not None and stored.equals(full)
    assert grid_index.run_grid(*args, **kw).equals(full)
    # what the key cannot describe, or what changes the cells, goes to the full runner
    assert grid_index.stored_grid(*args, **{**kw, "embedding_dim": 16.0}) is None
    assert grid_index.stored_grid(*args, **{**kw, "force": True}) is None
    assert grid_index.stored_grid(*args, **{**kw, "executor": "ray"}) is None
    assert grid_index.stored_grid("digits", ["metric"], (1,), [5], 1, **kw) is None
    with methods.registered(methods.Method("extra", "test", methods.get("metric").target)):
        assert grid_index.stored_grid(*args, **kw) is None  # "all" would differ
    cache = tmp_path / "data" / "digits_v1.npz"
    os.utime(cache, ns=(cache.stat().st_atime_ns, cache.stat().st_mtime_ns + 10**9))
    assert grid_index.stored_grid(*args, **kw) is None  # a data file changed


def test_the_key_follows_the_code_digest(tmp_path, monkeypatch):
    from dml_kit.experiments import grid_index

    monkeypatch.setenv("DML_KIT_DATA", str(tmp_path))
    key = grid_index.call_key("digits", "all", [1], [5], 1)
    assert key is not None and key == grid_index.call_key("digits", "all", [1], [5], 1)
    monkeypatch.setattr(grid_index, "_code_digest", "0" * 64)
    assert grid_index.call_key("digits", "all", [1], [5], 1) != key
    monkeypatch.setenv("DML_KIT_FAST", "1")
    monkeypatch.setattr(grid_index, "_code_digest", None)
    assert grid_index.call_key("digits", "all", [1], [5], 1) != key


# ---- digits cached as a file ---------------------------------------------------------------
def test_digits_cache_holds_the_same_dataset_as_scikit_learn(tmp_path):
    import torch
    from sklearn.datasets import load_digits as sklearn_digits

    from dml_kit import data
    from dml_kit.data import embedded

    first = data.load("digits", root=tmp_path)          # from scikit-learn, then cached
    cache = tmp_path / embedded.DIGITS_CACHE
    assert cache.is_file()
    bunch = sklearn_digits()
    reference = torch.from_numpy(np.asarray(bunch.images, dtype=np.float32) / 16.0)
    cached = data.load("digits", root=tmp_path)          # from the file
    for ds in (first, cached):
        assert ds.x.dtype == torch.float32 and ds.x.shape == (1797, 1, 8, 8)
        assert torch.equal(ds.x[:, 0], reference)
        assert torch.equal(ds.y, torch.from_numpy(np.asarray(bunch.target, dtype=np.int64)))
        assert ds.class_names == tuple("0123456789") and ds.class_groups == ("digits",) * 10
    # a damaged cache file is made again, not trusted
    cache.write_bytes(b"not a zip")
    assert torch.equal(data.load("digits", root=tmp_path).x, first.x)
    assert embedded._read_digits_cache(cache) is not None
    # a later load in a fresh interpreter does not import scikit-learn
    code = (f"from dml_kit import data\nd = data.load('digits', root={str(tmp_path)!r})\n"
            f"assert d.x.shape == (1797, 1, 8, 8)")
    heavy = _heavy_after(code)
    assert "sklearn" not in heavy and "torch" in heavy


def test_digits_on_a_read_only_folder_still_load(tmp_path, monkeypatch):
    from dml_kit.data import embedded

    def refuse(*args, **kwargs):
        raise PermissionError("read-only")

    monkeypatch.setattr(embedded, "atomic_write_npz", refuse)
    images, labels = embedded.digits_arrays(tmp_path)
    assert images.shape == (1797, 8, 8) and labels.shape == (1797,)
    assert not (tmp_path / embedded.DIGITS_CACHE).exists()


def test_the_loops_with_progress_import_no_widgets_until_they_run(tmp_path):
    """dml_kit.compare, the SEC study and the grid take ``progress=`` but import the
    progress widgets (ipywidgets, IPython, plotly through dml_kit.viz: about 0.25 s) only
    when a loop reports with progress on, so scripts and the command line do not pay."""
    code = ("import sys, dml_kit.compare, dml_kit.experiments.sec_study\n"
            "print([m for m in ('ipywidgets', 'IPython', 'plotly', 'dml_kit.viz') "
            "if m in sys.modules])")
    assert _python(code, _env(tmp_path)).strip().splitlines()[-1] == "[]"
    # nor when they run with progress=False: a headless grid (the CLI's --no-progress)
    grid = ("import sys\nfrom dml_kit.experiments import run_grid\n"
            f"run_grid('digits', ['scratch'], k_values=[1], n_values=[5], seeds=1, tasks=1, "
            f"executor='serial', progress=False, store={str(tmp_path / 'r.sqlite')!r})\n"
            "print([m for m in ('ipywidgets', 'IPython', 'plotly', 'dml_kit.viz') "
            "if m in sys.modules])")
    assert _python(grid, _env(tmp_path)).strip().splitlines()[-1] == "[]"
