"""Experiments: grid specs and presets, run records, the SQLite results store, the grid
runner and the report.

* :mod:`~dml_kit.experiments.config`: :class:`SourceSpec` (how T1/T2 are made),
  :class:`GridSpec`, :data:`PRESETS` (``classroom``, ``paper``);
* :mod:`~dml_kit.experiments.store`: :class:`RunRecord`, :class:`ResultsStore`
  (``data/results.sqlite`` by default; WAL, one transaction per record, no retraining
  of a stored config hash);
* :mod:`~dml_kit.experiments.grid`: :func:`run_grid` (local processes, serial or Ray;
  source models shared across methods and tasks); ``experiments.run_grid`` is
  :func:`dml_kit.experiments.grid_index.run_grid`, which answers a rerun whose cells
  are all stored from the store without importing torch;
* :mod:`~dml_kit.experiments.report`: :func:`report` (per-condition accuracies, winners,
  mean error reduction of the best adapted vs the best non-adapted method),
  :func:`report_datasets` (one report per dataset of a store), :func:`regularizer_effect`
  (a regularizer's paired effect, for the methods that read one);
* :mod:`~dml_kit.experiments.shift_study`: :func:`generalisation_study` (ooDML: zero-shot
  and few-shot Recall@1 / MAP@R along a ladder of shift splits), :func:`oodml_study` (its
  full shape in named settings);
* :mod:`~dml_kit.experiments.sec_study` (the submodule: ``experiments.sec_study.sec_study``):
  the SEC paper's tables, angular losses with and without SEC.

Example::

    from dml_kit import experiments
    frame = experiments.run_grid("glyphs", "all", k_values=[1, 5, 10], n_values=[5, 10],
                                 seeds=3, preset="classroom")
    print(experiments.report(frame))
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dml_kit.experiments.config import (
        PRESETS,
        GridSpec,
        Preset,
        SourceSpec,
        get_preset,
        resolve_methods,
        resolve_seeds,
    )
    from dml_kit.experiments.grid import Cell, Job, cell_hash, grid_cells, plan_jobs
    from dml_kit.experiments.grid_index import run_grid
    from dml_kit.experiments.shift_study import generalisation_study, oodml_study

# the store and the report need no torch: imported now (and ``report`` must be bound to
# the function before anything imports the submodule of that name)
from dml_kit.experiments.report import Report, regularizer_effect, report, report_datasets
from dml_kit.experiments.store import ResultsStore, RunRecord, default_path, records_frame

#: public name -> the submodule that defines it, imported on first use (PEP 562): the
#: grid, the presets and the studies need torch
_LAZY = {
    "PRESETS": "config", "GridSpec": "config", "Preset": "config", "SourceSpec": "config",
    "get_preset": "config", "resolve_methods": "config", "resolve_seeds": "config",
    "Cell": "grid", "Job": "grid", "cell_hash": "grid", "grid_cells": "grid",
    "plan_jobs": "grid", "run_grid": "grid_index",
    "generalisation_study": "shift_study", "oodml_study": "shift_study",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(f"dml_kit.experiments.{_LAZY[name]}"), name)
        globals()[name] = value
        return value
    submodule = f"dml_kit.experiments.{name}"
    if not name.startswith("_") and importlib.util.find_spec(submodule) is not None:
        return importlib.import_module(submodule)  # any other submodule, as before
    raise AttributeError(f"module 'dml_kit.experiments' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))

__all__ = ["PRESETS", "Cell", "GridSpec", "Job", "Preset", "Report", "ResultsStore",
           "RunRecord", "SourceSpec", "cell_hash", "default_path", "generalisation_study",
           "get_preset", "grid_cells", "oodml_study", "plan_jobs", "records_frame", "report",
           "regularizer_effect", "report_datasets", "resolve_methods", "resolve_seeds",
           "run_grid"]
