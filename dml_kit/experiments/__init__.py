"""Experiments: grid specs and presets, run records, the SQLite results store, the grid
runner and the report.

* :mod:`~dml_kit.experiments.config`: :class:`SourceSpec` (how T1/T2 are made),
  :class:`GridSpec`, :data:`PRESETS` (``classroom``, ``paper``);
* :mod:`~dml_kit.experiments.store`: :class:`RunRecord`, :class:`ResultsStore`
  (``data/results.sqlite`` by default; WAL, one transaction per record, no retraining
  of a stored config hash);
* :mod:`~dml_kit.experiments.grid`: :func:`run_grid` (local processes, serial or Ray;
  source models shared across methods and tasks);
* :mod:`~dml_kit.experiments.report`: :func:`report` (per-condition accuracies, winners,
  mean error reduction of the best adapted vs the best non-adapted method),
  :func:`report_datasets` (one report per dataset of a store);
* :mod:`~dml_kit.experiments.shift_study`: :func:`generalisation_study` (ooDML: zero-shot
  and few-shot Recall@1 / MAP@R along a ladder of shift splits).

Example::

    from dml_kit import experiments
    frame = experiments.run_grid("glyphs", "all", k_values=[1, 5, 10], n_values=[5, 10],
                                 seeds=3, preset="classroom")
    print(experiments.report(frame))
"""

from dml_kit.experiments.config import (
    PRESETS,
    GridSpec,
    Preset,
    SourceSpec,
    get_preset,
    resolve_methods,
    resolve_seeds,
)
from dml_kit.experiments.grid import Cell, Job, cell_hash, grid_cells, plan_jobs, run_grid
from dml_kit.experiments.report import Report, report, report_datasets
from dml_kit.experiments.shift_study import generalisation_study
from dml_kit.experiments.store import ResultsStore, RunRecord, default_path, records_frame

__all__ = ["PRESETS", "Cell", "GridSpec", "Job", "Preset", "Report", "ResultsStore",
           "RunRecord", "SourceSpec", "cell_hash", "default_path", "generalisation_study",
           "get_preset", "grid_cells", "plan_jobs", "records_frame", "report",
           "report_datasets", "resolve_methods", "resolve_seeds", "run_grid"]
