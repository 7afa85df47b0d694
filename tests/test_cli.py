"""``python -m dml_kit grid`` and ``report``."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from dml_kit.__main__ import main
from dml_kit.experiments import ResultsStore

ROOT = Path(__file__).resolve().parents[1]
GRID = ["grid", "--dataset", "digits", "--methods", "metric", "adapted_metric", "scratch",
        "--k", "1", "3", "--n", "5", "--seeds", "1", "--tasks", "2", "--executor", "serial",
        "--no-progress"]


def test_grid_then_report(tmp_path, capsys):
    store = tmp_path / "r.sqlite"
    assert main([*GRID, "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "adapted_metric" in out and "winner" in out and "mean error reduction" in out
    assert len(ResultsStore(store)) == 12          # 3 methods x 2 k x 2 tasks
    assert main(["report", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "12 runs" in out and "mean error reduction" in out and "1 seeds x 2 tasks" in out


@pytest.mark.parametrize("args, name", [
    (["--k", "0"], "k_values"), (["--methods", "magic"], "methods"),
    (["--seeds", "0"], "seeds"), (["--n", "1"], "n_values"),
])
def test_invalid_grid_arguments_exit_2_naming_the_argument(tmp_path, capsys, args, name):
    with pytest.raises(SystemExit) as exc:
        main([*GRID, "--store", str(tmp_path / "r.sqlite"), *args])
    assert exc.value.code == 2
    assert name in capsys.readouterr().err


def test_report_on_an_empty_store_fails_clearly(tmp_path, capsys):
    ResultsStore(tmp_path / "empty.sqlite")
    with pytest.raises(SystemExit) as exc:
        main(["report", "--store", str(tmp_path / "empty.sqlite")])
    assert exc.value.code == 2 and "no records" in capsys.readouterr().err


def test_report_on_a_missing_store_creates_nothing(tmp_path, capsys):
    typo = tmp_path / "no" / "such" / "store.sqlite"
    with pytest.raises(SystemExit) as exc:
        main(["report", "--store", str(typo)])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert f"no results store at {typo}" in err and "--store" in err
    assert not (tmp_path / "no").exists()


def _bad_store(tmp_path: Path, case: str) -> Path:
    """A store path that cannot be used: a corrupt file, a folder, a path below a file."""
    if case == "corrupt":
        path = tmp_path / "corrupt.sqlite"
        path.write_bytes(b"this is not an SQLite file\n" * 200)
    elif case == "folder":
        path = tmp_path / "folder.sqlite"
        path.mkdir()
    else:
        (tmp_path / "plain").write_text("x")
        path = tmp_path / "plain" / "r.sqlite"
    return path


@pytest.mark.parametrize("case, says", [("corrupt", "not a valid SQLite database"),
                                        ("folder", "is a folder, not a file"),
                                        ("below_a_file", "is a file, not a folder")])
@pytest.mark.parametrize("command", ["report", "grid"])
def test_an_unusable_store_exits_2_naming_its_path(tmp_path, capsys, case, says, command):
    path = _bad_store(tmp_path, case)
    argv = ["report", "--store", str(path)] if command == "report" \
        else [*GRID, "--store", str(path)]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and str(path) in err and says in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores file permissions")
def test_a_read_only_store_exits_2_naming_its_path(tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    path = folder / "r.sqlite"
    ResultsStore(path)
    for extra in folder.iterdir():   # WAL side files: SQLite must recreate them
        if extra != path:
            extra.unlink()
    path.chmod(0o444)
    folder.chmod(0o555)
    try:
        with pytest.raises(SystemExit) as exc:
            main(["report", "--store", str(path)])
    finally:
        folder.chmod(0o755)
        path.chmod(0o644)
    err = capsys.readouterr().err
    assert exc.value.code == 2 and str(path) in err and "chmod" in err


def test_data_folder_that_is_a_file_exits_2(tmp_path, monkeypatch, capsys):
    (tmp_path / "data").write_text("x")
    monkeypatch.setenv("DML_KIT_DATA", str(tmp_path / "data"))
    with pytest.raises(SystemExit) as exc:
        main(["report"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and f"DML_KIT_DATA={tmp_path / 'data'} is a file" in err


def test_module_entry_point(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    missing = tmp_path / "x.sqlite"
    out = subprocess.run([sys.executable, "-m", "dml_kit", "report", "--store",
                          str(missing)], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=120)
    assert out.returncode == 2 and f"no results store at {missing}" in out.stderr
    assert not missing.exists()
    corrupt = _bad_store(tmp_path, "corrupt")
    out = subprocess.run([sys.executable, "-m", "dml_kit", "report", "--store",
                          str(corrupt)], capture_output=True, text=True,
                         cwd=ROOT, env=env, timeout=120)
    assert out.returncode == 2 and str(corrupt) in out.stderr
    assert "Traceback" not in out.stderr
    help_ = subprocess.run([sys.executable, "-m", "dml_kit", "grid", "--help"],
                           capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert help_.returncode == 0 and "--preset" in help_.stdout


def test_report_takes_each_dataset_of_the_store_in_turn(tmp_path, capsys):
    from dml_kit.experiments import RunRecord, report_datasets

    store = ResultsStore(tmp_path / "two.sqlite")
    store.add_many([
        RunRecord(dataset=dataset, method=method, k=k, n=5, seed=seed,
                  accuracy=0.5 + 0.1 * (method != "scratch") + 0.01 * seed,
                  config_hash=f"{dataset}-{method}-{k}-{seed}")
        for dataset in ("glyphs", "digits") for method in ("scratch", "metric")
        for k in (1, 5) for seed in (0, 1)])
    # a shift-study record shares the store but is no grid cell: left out
    store.add(RunRecord(dataset="digits", method="metric", k=0, n=20, seed=0, accuracy=0.9,
                        config_hash="study", kind="shift_study", metric="recall@1"))
    assert main(["report", "--store", str(store.path)]) == 0
    out = capsys.readouterr().out
    assert "2 datasets in the store, reported in turn: digits, glyphs" in out
    assert out.index("dataset: digits") < out.index("dataset: glyphs")
    reports = report_datasets(store)
    assert [r.dataset for r in reports] == ["digits", "glyphs"]
    assert all(sorted(set(r.accuracy.index.get_level_values("k"))) == [1, 5] for r in reports)
    assert main(["report", "--store", str(store.path), "--dataset", "glyphs"]) == 0
    out = capsys.readouterr().out
    assert "dataset: glyphs" in out and "dataset: digits" not in out
    assert "in turn" not in out


# ---- the SEC and ooDML studies --------------------------------------------------------
def test_study_help_imports_no_torch():
    code = ("import sys\nfrom dml_kit.__main__ import main\n"
            "for argv in (['sec', '--help'], ['shift', '--help'], ['--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit as e:\n"
            "        assert e.code == 0, e.code\n"
            "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "--setting {classroom,omniglot}" in out.stdout
    assert out.stdout.strip().endswith("False")


def test_sec_command_runs_the_setting_and_report_reads_it(tmp_path, capsys, monkeypatch,
                                                          make_blobs):
    from dml_kit.experiments import sec_study
    from dml_kit.methods.config import MethodConfig

    tiny = sec_study.SecSetting(
        name="classroom", description="tiny", dataset="blobs", train_classes=12,
        test_classes=8, val_fraction=0.25, seeds=(0, 1), losses=("triplet",), sweep=(1.0,),
        config=MethodConfig(embedding_dim=8, hidden=(16,), source_epochs=1,
                            batches_per_epoch=2, batch_classes=4, batch_per_class=3,
                            val_classes=4))
    seen = {}
    real = sec_study.sec_study

    def small(data, setting, **kwargs):
        seen.update(setting=setting, **kwargs)
        return real(make_blobs(30, 8, dim=12), tiny, **{**kwargs, "data_path": None})

    monkeypatch.setattr(sec_study, "sec_study", small)
    store = tmp_path / "s.sqlite"
    argv = ["sec", "--store", str(store), "--data-path", "/some/where", "--no-progress"]
    assert main(argv) == 0
    assert seen["setting"] == "classroom" and seen["data_path"] == "/some/where"
    assert seen["store"] == str(store) and seen["progress"] is False
    out = capsys.readouterr().out
    assert "R@1 gain" in out and "norm CV falls" in out and "finished in" in out
    assert main(["report", "--kind", "sec", "--store", str(store)]) == 0
    out = capsys.readouterr().out
    assert "sec study, setting classroom (4 rows)" in out and "Recall@1 gain, triplet" in out
    with pytest.raises(SystemExit) as exc:
        main(["report", "--kind", "shift", "--store", str(store)])
    assert exc.value.code == 2
    assert "python -m dml_kit shift --setting classroom" in capsys.readouterr().err
    # the grid report leaves study records alone
    with pytest.raises(SystemExit):
        main(["report", "--store", str(store)])
    assert "no records" in capsys.readouterr().err


def test_study_arguments_are_checked(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["sec", "--setting", "huge"])
    assert exc.value.code == 2 and "--setting" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["report", "--kind", "magic"])
    assert exc.value.code == 2 and "--kind" in capsys.readouterr().err
