"""Time a preset's grid end to end through the CLI, then a rerun that hits the store.

Usage::

    python benchmarks/grid.py [--preset classroom] [--data-path DIR] [--store PATH] [--keep]
    python benchmarks/grid.py --preset omniglot_cpu --data-path ../shared/data/omniglot
    python benchmarks/grid.py --preset isolet_cpu --data-path ../shared/data/isolet

Runs ``python -m dml_kit grid --preset <preset>`` (default ``classroom``: glyphs, all six
methods, k 1 5 10, n 5 10, the preset's seeds, tasks and extra losses) into a fresh store
(a temporary file unless ``--store``), prints the report, the wall time and the machine
load before and after, then runs the same command again (every cell is stored: no
training) and times that. ``--executors process serial`` times the grid once per
executor, each into its own fresh store, and checks that they stored the same numbers.
Not a test: the numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load() -> str:
    try:
        return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return "load average unknown"


def _run(args: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "dml_kit", *args], cwd=ROOT, text=True,
                         capture_output=True, check=False)
    seconds = time.perf_counter() - start
    if out.returncode != 0:
        sys.stderr.write(out.stderr)
        raise SystemExit(f"grid failed with status {out.returncode}")
    return seconds, out.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default=None, help="SQLite file (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep an existing --store")
    parser.add_argument("--preset", default="classroom", help="a preset of dml_kit.experiments")
    parser.add_argument("--data-path", default=None,
                        help="the dataset's files, passed to grid --data-path")
    parser.add_argument("--executors", nargs="+", default=None,
                        choices=["process", "serial", "ray"],
                        help="time the grid with each executor (fresh store each) and "
                             "compare their numbers")
    args = parser.parse_args()
    if args.executors:
        compare_executors(args)
        return
    grid = ["grid", "--preset", args.preset]
    if args.data_path is not None:
        grid += ["--data-path", str(Path(args.data_path).resolve())]
    tmp = None
    if args.store is None:
        tmp = tempfile.TemporaryDirectory()
        store = Path(tmp.name) / "bench.sqlite"
    else:
        store = Path(args.store)
        if store.exists() and not args.keep:
            for suffix in ("", "-wal", "-shm"):
                Path(str(store) + suffix).unlink(missing_ok=True)
    print(f"cpus: {os.cpu_count()}; before: {_load()}")
    first, text = _run([*grid, "--store", str(store), "--no-progress"])
    print(text)
    print(f"{args.preset} grid, fresh store: {first:.1f} s ({first / 60:.1f} min); "
          f"after: {_load()}")
    again, _ = _run([*grid, "--store", str(store), "--no-progress"])
    print(f"rerun hitting the store: {again:.1f} s")
    if tmp is not None:
        tmp.cleanup()


def compare_executors(args: argparse.Namespace) -> None:
    """The preset's grid once per executor, each into a fresh store and without the model
    cache's help (a fresh folder each), then whether every cell got the same accuracy."""
    import sqlite3

    grid = ["grid", "--preset", args.preset, "--no-progress"]
    if args.data_path is not None:
        grid += ["--data-path", str(Path(args.data_path).resolve())]
    accuracies = {}
    with tempfile.TemporaryDirectory() as tmp:
        print(f"cpus: {os.cpu_count()}")
        for executor in args.executors:
            folder = Path(tmp) / executor
            folder.mkdir()
            store = folder / "grid.sqlite"
            before = _load()
            seconds, _ = _run([*grid, "--executor", executor, "--store", str(store)])
            print(f"{args.preset} grid, executor {executor}: {seconds:.1f} s "
                  f"({seconds / 60:.1f} min); before: {before}; after: {_load()}", flush=True)
            with sqlite3.connect(store) as con:
                accuracies[executor] = dict(con.execute(
                    "SELECT config_hash, accuracy FROM runs WHERE kind = 'grid'"))
    first, *others = args.executors
    for other in others:
        same = accuracies[first] == accuracies[other]
        print(f"{first} vs {other}: {len(accuracies[first])} cells, "
              f"{'identical accuracies' if same else 'DIFFERENT accuracies'}")


if __name__ == "__main__":
    main()
