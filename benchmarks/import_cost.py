"""Time what reading the store costs, in fresh interpreters: ``import dml_kit``,
``python -m dml_kit report``, a rerun of a preset's stored grid and a digits load.

Usage::

    python benchmarks/import_cost.py [--preset classroom] [--repeats 3]
    python benchmarks/import_cost.py --code /tmp/before   # another checkout's dml_kit

The store is a temporary file filled with **placeholder records** at the real config
hashes of every cell of the preset's grid (``python -m dml_kit grid --preset <p>`` with
its defaults), so no training is needed: the rerun finds every cell stored, which is
what is timed. One rerun through the full runner then notes the grid in the store's
index (:mod:`dml_kit.experiments.grid_index`) before the timed reruns. ``--code DIR``
runs the timed commands with ``DIR``'s ``dml_kit`` first on ``PYTHONPATH`` (e.g. an
older commit unpacked with ``git archive``), against the same store and data folder
(``$DML_KIT_DATA``, default: this checkout's ``data/``). Each figure is the median and
the minimum of ``--repeats`` runs, with the load average (``/proc/loadavg``) before and
after. Not a test: the numbers depend on the machine and on what else runs on it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "sklearn", "umap", "plotly", "numba", "matplotlib")


def _load() -> str:
    try:
        return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:  # pragma: no cover - not on every platform
        return "unknown"


def fill_store(store: Path, preset: str) -> int:
    """Placeholder records at the real hashes of the preset's default grid, then one
    rerun through the full runner (which notes the grid in the index); returns the
    number of cells."""
    from dml_kit.experiments import ResultsStore, RunRecord, grid
    from dml_kit.experiments.config import GridSpec

    spec = GridSpec.create(None, ["all"], None, None, None, preset=preset)
    cells = grid.grid_cells(spec)
    results = ResultsStore(store)
    for i, c in enumerate(cells):
        config = grid.cell_config(spec.config, c.loss)
        results.add(RunRecord(dataset=spec.dataset, method=c.method, k=c.k, n=c.n,
                              seed=c.seed, task=c.task, config_hash=c.config_hash,
                              accuracy=0.5 + 0.4 * ((i * 7919) % 97) / 97, preset=preset,
                              loss=grid._loss_name(c.method, config)))
    grid.run_grid(None, ["all"], None, None, None, preset=preset, store=str(store),
                  progress=False)
    return len(cells)


def _time(args: list[str], env: dict[str, str], repeats: int,
          cwd: Path = ROOT) -> dict[str, object]:
    """Wall time of ``python <args>`` (median and minimum of ``repeats``), the heavy
    modules it imported (``-X importtime``) and the load average around it."""
    walls = []
    before = _load()
    heavy: list[str] = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, *args], cwd=cwd, env=env, text=True,
                              capture_output=True, check=False)
        walls.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{args} failed:\n{done.stderr[-3000:]}")
    probe = subprocess.run([sys.executable, "-X", "importtime", *args], cwd=cwd, env=env,
                           text=True, capture_output=True, check=False)
    names = {line.rsplit("|", 1)[-1].strip() for line in probe.stderr.splitlines()
             if line.startswith("import time:")}
    heavy = [m for m in HEAVY if m in names]
    return {"median_s": round(statistics.median(walls), 2), "min_s": round(min(walls), 2),
            "heavy_imports": heavy, "load_before": before, "load_after": _load()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="classroom")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--code", default=None,
                        help="a folder holding the dml_kit package to time (default: this one)")
    args = parser.parse_args(argv)

    env = dict(os.environ)
    env.setdefault("DML_KIT_DATA", str(ROOT / "data"))
    os.environ["DML_KIT_DATA"] = env["DML_KIT_DATA"]
    cwd = ROOT  # python -c and -m put the working folder first on sys.path
    if args.code is not None:
        cwd = Path(args.code).resolve()
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(cwd), env.get("PYTHONPATH")]))
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "results.sqlite"
        n = fill_store(store, args.preset)
        where = subprocess.run([sys.executable, "-c", "import dml_kit; print(dml_kit.__file__)"],
                               cwd=cwd, env=env, text=True, capture_output=True, check=True)
        print(f"dml_kit timed: {where.stdout.strip()}; store: {n} placeholder cells of "
              f"preset {args.preset!r}; cpus {os.cpu_count()}")
        figures = {
            "import dml_kit": _time(["-c", "import dml_kit"], env, args.repeats, cwd),
            "report": _time(["-m", "dml_kit", "report", "--store", str(store)], env,
                            args.repeats, cwd),
            f"grid rerun ({args.preset}, all stored)": _time(
                ["-m", "dml_kit", "grid", "--preset", args.preset, "--store", str(store),
                 "--no-progress"], env, args.repeats, cwd),
            "data.load('digits') (cached)": _time(
                ["-c", "from dml_kit import data; data.load('digits')"], env, args.repeats,
                cwd),
        }
    for name, fig in figures.items():
        print(f"{name:45s} median {fig['median_s']:6.2f} s  min {fig['min_s']:6.2f} s  "
              f"heavy imports {fig['heavy_imports'] or '-'}  load {fig['load_before']} -> "
              f"{fig['load_after']}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
