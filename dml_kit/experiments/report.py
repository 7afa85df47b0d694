"""Turn grid records into the paper's comparison: accuracies, winners, error reduction.

For each (k, n) condition the report averages query accuracy over seeds per method, names
the winner, and compares the best *adapted* method (the hybrids) with the best
*non-adapted* one (scratch, weight transfer, metric, protonet). Its headline is the
mean relative error reduction (Adapted Deep Embeddings reports 34% over the state of the
art; :func:`dml_kit.metrics.error_reduction`)::

    ER = mean over conditions of (err_B - err_A) / err_B,   err = 1 - accuracy

with A the best adapted and B the best non-adapted method of the condition. It also
checks the paper's two qualitative claims: at k <= 5 every embedding method beats both
weight transfer and scratch; the better hybrid is at least as accurate as the best
non-hybrid in (most) conditions.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from dml_kit.experiments.shift_study import STUDY_NOTE
from dml_kit.experiments.store import ResultsStore
from dml_kit.methods import METHODS
from dml_kit.metrics import error_reduction

PAPER_ERROR_REDUCTION = 0.34
BASELINES = ("scratch", "weight_transfer")


@dataclass
class Report:
    """The comparison of a grid (see the module docstring).

    Attributes:
        dataset: the dataset reported on.
        accuracy: mean query accuracy, rows ``(k, n)``, one column per method.
        std: standard deviation over seeds, same shape.
        seeds: number of seeds per cell, same shape.
        winner: the best method per condition.
        best_adapted, best_non_adapted: ``(method, accuracy)`` per condition, as two
            columns each (``*_method``, ``*_acc``) of :attr:`comparison`.
        comparison: per condition: both bests, their error reduction.
        error_reduction: mean error reduction (``nan`` without both kinds of method).
        claims: the two qualitative checks, as text lines.
    """

    dataset: str
    accuracy: pd.DataFrame
    std: pd.DataFrame
    seeds: pd.DataFrame
    winner: pd.Series
    comparison: pd.DataFrame
    error_reduction: float
    claims: list[str] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def to_text(self) -> str:
        """A plain-text report (what ``python -m dml_kit report`` prints)."""
        lines = [f"dataset: {self.dataset}   (mean query accuracy in % over seeds, "
                 f"+- std; seeds per cell: {int(self.seeds.min().min())}"
                 f"-{int(self.seeds.max().max())})", ""]
        table = self.accuracy.copy()
        for col in table.columns:
            table[col] = [f"{100 * a:5.1f} +-{100 * s:4.1f}" if pd.notna(a) else "-"
                          for a, s in zip(self.accuracy[col], self.std[col], strict=True)]
        table["winner"] = self.winner
        lines.append(table.to_string())
        if not self.comparison.empty:
            lines += ["", "best adapted vs best non-adapted:"]
            comp = self.comparison.copy()
            for col in ("best_adapted_acc", "best_non_adapted_acc"):
                comp[col] = (100 * comp[col]).map("{:.1f}".format)
            comp["error_reduction"] = (100 * comp["error_reduction"]).map("{:+.1f}%".format)
            lines.append(comp.to_string())
            lines += ["", f"mean error reduction of the best adapted method vs the best "
                          f"non-adapted one: {100 * self.error_reduction:.1f}% "
                          f"(paper: {100 * PAPER_ERROR_REDUCTION:.0f}%)"]
        if self.claims:
            lines += ["", *self.claims]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()


Results = pd.DataFrame | ResultsStore | str | os.PathLike[str] | None


def _grid_records(results: Results, preset: str | None) -> pd.DataFrame:
    """The grid records of ``results`` (a frame, a store or a store path), of ``preset``
    when given; shift-study records (:mod:`~dml_kit.experiments.shift_study`), which
    share stores but are not grid cells, are left out."""
    if isinstance(results, pd.DataFrame):
        frame = results
    else:
        store = results if isinstance(results, ResultsStore) else ResultsStore(results)
        frame = store.to_frame()
    if "notes" in frame:
        frame = frame[~frame["notes"].fillna("").str.startswith(STUDY_NOTE)]
    if frame.empty:
        raise ValueError("no records to report: run a grid first "
                         "(python -m dml_kit grid ...)")
    if preset is not None:
        frame = frame[frame["preset"] == preset]
    return frame


def report_datasets(results: Results = None, *, preset: str | None = None) -> list[Report]:
    """One :func:`report` per dataset of the records, in name order (what
    ``python -m dml_kit report`` prints when no dataset is named)."""
    frame = _grid_records(results, preset)
    datasets = sorted(frame["dataset"].unique())
    if not datasets:
        raise ValueError(f"no records of preset {preset!r} to report")
    return [report(frame, dataset=name) for name in datasets]


def report(results: Results = None, *, dataset: str | None = None,
           preset: str | None = None) -> Report:
    """Build a :class:`Report` from a grid DataFrame, a store, or a store path (``None``:
    the default store).

    Args:
        dataset: which dataset (required when the records hold several; or use
            :func:`report_datasets` for one report each).
        preset: keep only records of this preset.

    When the records hold several runs of one (method, k, n, seed) cell (different
    settings), the newest is used. Shift-study records are left out.
    """
    frame = _grid_records(results, preset)
    datasets = sorted(frame["dataset"].unique())
    if dataset is None:
        if len(datasets) != 1:
            raise ValueError(f"dataset is required: the records hold {', '.join(datasets)} "
                             "(report_datasets() reports each)")
        dataset = datasets[0]
    elif dataset not in datasets:
        raise ValueError(f"no records for dataset {dataset!r}; the store has: "
                         f"{', '.join(datasets) or '(none)'}")
    frame = frame[frame["dataset"] == dataset]
    if "created" in frame:
        frame = frame.sort_values("created")
    frame = frame.drop_duplicates(["method", "k", "n", "seed"], keep="last")

    order = [m for m in METHODS if m in set(frame["method"])]
    grouped = frame.groupby(["k", "n", "method"])["accuracy"]
    accuracy = grouped.mean().unstack("method").reindex(columns=order)
    std = grouped.std(ddof=0).unstack("method").reindex(columns=order).fillna(0.0)
    seeds = grouped.count().unstack("method").reindex(columns=order).fillna(0)
    winner = accuracy.idxmax(axis=1).rename("winner")

    adapted = [m for m in order if METHODS[m].adapted]
    plain = [m for m in order if not METHODS[m].adapted]
    comparison = pd.DataFrame(index=accuracy.index)
    er = float("nan")
    if adapted and plain:
        comparison["best_adapted"] = accuracy[adapted].idxmax(axis=1)
        comparison["best_adapted_acc"] = accuracy[adapted].max(axis=1)
        comparison["best_non_adapted"] = accuracy[plain].idxmax(axis=1)
        comparison["best_non_adapted_acc"] = accuracy[plain].max(axis=1)
        err_a = 1 - comparison["best_adapted_acc"]
        err_b = 1 - comparison["best_non_adapted_acc"]
        comparison["error_reduction"] = ((err_b - err_a) / err_b.where(err_b > 0)).fillna(0.0)
        er = error_reduction(comparison["best_non_adapted_acc"].to_numpy(),
                             comparison["best_adapted_acc"].to_numpy())

    claims: list[str] = []
    facts: dict[str, Any] = {}
    embedding = [m for m in order if METHODS[m].embedding]
    baselines = [m for m in order if m in BASELINES]
    if embedding and baselines:
        low_k = accuracy[accuracy.index.get_level_values("k") <= 5]
        ok = low_k[embedding].min(axis=1) > low_k[baselines].max(axis=1)
        facts["embedding_beats_baselines"] = (int(ok.sum()), len(ok))
        claims.append(f"(a) every embedding method beats {' and '.join(baselines)} at k <= 5: "
                      f"{int(ok.sum())} of {len(ok)} conditions"
                      + ("" if ok.all() else f" (fails at (k, n) = "
                         f"{', '.join(map(str, ok.index[~ok]))})"))
    if adapted and plain:
        ok = comparison["best_adapted_acc"] >= comparison["best_non_adapted_acc"] - 1e-12
        facts["adapted_at_least_best"] = (int(ok.sum()), len(ok))
        claims.append(f"(b) the better adapted method is at least as accurate as the best "
                      f"non-adapted one: {int(ok.sum())} of {len(ok)} conditions")
        facts["error_reduction"] = er
        claims.append(f"(c) mean error reduction: {100 * er:.1f}% (paper: 34%)")
    return Report(dataset=dataset, accuracy=accuracy, std=std, seeds=seeds, winner=winner,
                  comparison=comparison, error_reduction=er, claims=claims, facts=facts)
