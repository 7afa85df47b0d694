"""Turn grid records into the paper's comparison, with intervals and verdicts.

A grid's replication unit is a (seed, task) pair: every method of a condition (k, n) runs
on the same replications (same source seed, same target classes and images), so methods
are compared *paired* (:mod:`dml_kit.stats`). For each condition the report gives every
method's mean query accuracy with a 95% interval, the winner, and checks the three
conclusions of *Adapted Deep Embeddings* (Scott, Ridgeway & Mozer, NeurIPS 2018), quoted
from its abstract (:data:`CONCLUSIONS`):

1. plain deep embeddings (``metric``, ``protonet``) against ``weight_transfer``: the mean
   paired difference over all conditions, per embedding method;
2. the better hybrid of each condition against each few-shot / metric-learning method
   (``metric``, ``protonet``), over the conditions with k > 1 (at k = 1 the hybrids *are*
   their parents, by construction), and the mean error reduction of the best hybrid over
   the best non-hybrid ("state of the art")::

       ER = mean over conditions of (err_B - err_A) / err_B,   err = 1 - accuracy

   with a paired bootstrap interval, over all conditions and over k > 1 only, beside the
   paper's 34%;
3. the histogram loss against every other embedding loss run for ``metric`` on the same
   tasks (``run_grid(..., compare_losses=[...])``; the classroom preset runs three).

Each verdict is **holds**, **fails** or **not resolved at this sample size**
(:func:`dml_kit.stats.verdict`): a conclusion holds when each of its comparisons holds.
Accuracies lie in ``[0, 1]`` and their differences in ``[-1, 1]``: intervals that reach
past that (two or three replications) are *printed* clipped, with a note, and verdicts are
decided on the unclipped ones (:mod:`dml_kit.stats`, "Bounded quantities").

:func:`regularizer_effect` checks "variant A (with a regularizer) beats variant B
(without)" per method, for the methods that read the regularizer only.
"""

from __future__ import annotations

import os
import re
import sys
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

import pandas as pd

from dml_kit import stats
from dml_kit.experiments.store import ResultsStore


@dataclass(frozen=True)
class MethodFacts:
    """What the report reads about a method: its source kind, whether it adapts and
    whether it reads the regularizer (:attr:`dml_kit.methods.Method.uses_regularizer`)."""

    source_kind: str | None
    adapted: bool
    uses_regularizer: bool = False


#: the six methods :mod:`dml_kit.methods` registers, in its order, with the facts the
#: report reads (a test checks them against ``METHODS``): so that a report needs no torch
BUILTIN_METHODS: dict[str, MethodFacts] = {
    "scratch": MethodFacts(None, False),
    "weight_transfer": MethodFacts("classifier", False),
    "metric": MethodFacts("embedding", False, True),
    "protonet": MethodFacts("protonet", False, True),
    "adapted_metric": MethodFacts("embedding", True, True),
    "adapted_protonet": MethodFacts("protonet", True, True),
}
#: the range of an accuracy (intervals are printed clipped to it, see the module docstring)
ACCURACY_BOUNDS = (0.0, 1.0)


def _methods() -> Mapping[str, MethodFacts]:
    """The registry :data:`dml_kit.methods.METHODS` when it is imported (it may hold
    methods registered since), else the built-in six it would hold (importing it would
    import torch, which a report does not need)."""
    module = sys.modules.get("dml_kit.methods")
    registry = getattr(module, "METHODS", None)
    return registry if registry is not None else BUILTIN_METHODS

PAPER_ERROR_REDUCTION = 0.34
#: the embedding loss the paper's metric-learning methods use
MAIN_LOSS = "histogram"
#: Adapted Deep Embeddings' three conclusions, as its abstract states them
CONCLUSIONS = {
    1: "Deep embeddings are far superior, compared to weight transfer, as a starting point "
       "for inter-domain transfer or model re-use",
    2: "Our hybrid methods robustly outperform every few-shot learning and every deep "
       "metric learning method previously proposed, with a mean error reduction of 34% "
       "over state-of-the-art.",
    3: "Among loss functions for discovering embeddings, the histogram loss (Ustinova & "
       "Lempitsky, 2016) is most robust.",
}
REPLICATION = ["seed", "task"]


#: what a line break must not split: an interval ``[-0.1, +0.3]`` and ``(n = 4)``
_UNBREAKABLE = re.compile(r"\[[^\[\]]{0,40}\]|\(n = \d+\)")


def wrap_lines(lines: Sequence[str], width: int | None = 88) -> str:
    """``lines`` joined by newlines, each longer than ``width`` broken at word boundaries
    (never inside a word, an interval ``[low, high]`` or ``(n = ...)``) with its
    continuation indented 4 spaces past the line's own indent; ``width=None`` leaves
    them as they are."""
    if width is None:
        return "\n".join(lines)
    out = []
    for line in lines:
        if len(line) <= width:
            out.append(line)
            continue
        indent = " " * (len(line) - len(line.lstrip(" ")))
        glued = _UNBREAKABLE.sub(lambda m: m.group(0).replace(" ", "\x00"), line)
        out.append(textwrap.fill(glued, width, subsequent_indent=indent + "    ",
                                 break_long_words=False, break_on_hyphens=False
                                 ).replace("\x00", " "))
    return "\n".join(out)


@dataclass
class Claim:
    """One of the paper's conclusions checked on the records.

    Attributes:
        number: 1, 2 or 3 (:data:`CONCLUSIONS`).
        quote: the conclusion as the abstract states it.
        test: how the kit checks it, in words.
        verdict: :data:`dml_kit.stats.HOLDS`, ``FAILS``, ``UNRESOLVED``, or ``None`` when
            the records cannot test it (the reason is in :attr:`evidence`).
        comparisons: one row per comparison pooled over conditions (``comparison``,
            ``conditions``, ``n``, ``mean``, ``low``, ``high``, ``verdict``).
        per_condition: one row per comparison and condition (``k``, ``n``, ...).
        evidence: the lines :meth:`Report.to_text` prints under the quote.
    """

    number: int
    quote: str
    test: str
    verdict: str | None
    comparisons: pd.DataFrame = field(default_factory=pd.DataFrame)
    per_condition: pd.DataFrame = field(default_factory=pd.DataFrame)
    evidence: list[str] = field(default_factory=list)

    def text(self, width: int | None = None) -> str:
        """The quote, the test, the evidence and the verdict, one item a line; with
        ``width``, long lines break at word boundaries (:func:`wrap_lines`)."""
        verdict = self.verdict if self.verdict is not None else "not checked"
        return wrap_lines([f"({self.number}) \"{self.quote}\"", f"    test: {self.test}",
                           *[f"    {line}" for line in self.evidence],
                           f"    => conclusion {self.number}: {verdict}"], width)


@dataclass
class Report:
    """The comparison of a grid (see the module docstring).

    Attributes:
        dataset: the dataset reported on.
        records: the records used (one row per method, condition and replication).
        accuracy: mean query accuracy, rows ``(k, n)``, one column per method.
        low, high: the ends of each mean's 95% interval, same shape.
        replications: (seed, task) pairs per cell, same shape.
        winner: the method with the best mean per condition.
        comparison: per condition: the best adapted and best non-adapted method, their
            accuracies and the condition's error reduction.
        error_reduction: mean error reduction over all conditions, with its interval
            (:class:`dml_kit.stats.ErrorReduction`; ``None`` without both kinds).
        error_reduction_adapting: the same over the conditions with k > 1 only.
        claims: the paper's three conclusions checked (:class:`Claim`).
        facts: the same numbers as a flat dict (for notebooks and tests).
    """

    dataset: str
    records: pd.DataFrame
    accuracy: pd.DataFrame
    low: pd.DataFrame
    high: pd.DataFrame
    replications: pd.DataFrame
    winner: pd.Series
    comparison: pd.DataFrame
    error_reduction: stats.ErrorReduction | None
    error_reduction_adapting: stats.ErrorReduction | None
    claims: list[Claim] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)

    def claim(self, number: int) -> Claim:
        """The check of conclusion ``number`` (1, 2 or 3)."""
        for c in self.claims:
            if c.number == number:
                return c
        raise ValueError(f"number={number} is out of range: this report checks conclusions "
                         f"{[c.number for c in self.claims]}")

    def accuracy_table(self) -> pd.DataFrame:
        """``accuracy`` as text, ``"90.6 [88.1, 92.9]"`` (percent) per cell; an interval
        that reaches past [0, 100] is shown clipped, with a note (``low``/``high`` keep
        the unclipped ends)."""
        table = pd.DataFrame(index=self.accuracy.index)
        for col in self.accuracy.columns:
            table[col] = [
                stats.Estimate(a, lo, hi, int(r), bounds=ACCURACY_BOUNDS).format(percent=True)
                if pd.notna(a) else "-"
                for a, lo, hi, r in zip(self.accuracy[col], self.low[col], self.high[col],
                                        self.replications[col], strict=True)]
        table["winner"] = self.winner
        return table

    def to_text(self) -> str:
        """A plain-text report (what ``python -m dml_kit report`` prints)."""
        reps = self.replications.to_numpy()
        seeds = self.records["seed"].nunique()
        per_n = self.records.groupby("n")["task"].nunique()
        tasks = (str(per_n.iloc[0]) if per_n.nunique() == 1 else
                 "/".join(f"{t} (n = {n})" for n, t in per_n.items()))
        lines = [f"dataset: {self.dataset}   mean query accuracy in % with 95% intervals over "
                 f"replications ((seed, task) pairs: {seeds} seeds x {tasks} tasks; "
                 f"{int(reps.min())}-{int(reps.max())} per cell)", "",
                 self.accuracy_table().to_string()]
        if not self.comparison.empty:
            lines += ["", "best adapted (A) vs best non-adapted (B) per condition:"]
            comp = self.comparison.copy()
            for col in ("best_adapted_acc", "best_non_adapted_acc"):
                comp[col] = (100 * comp[col]).map("{:.1f}".format)
            comp["error_reduction"] = (100 * comp["error_reduction"]).map("{:+.1f}%".format)
            lines.append(comp.to_string())
            for label, er in (("all conditions", self.error_reduction),
                              ("k > 1 only (the hybrids adapt)", self.error_reduction_adapting)):
                if er is not None:
                    lines.append(f"mean error reduction of A over B, {label}: "
                                 f"{er.estimate.format(percent=True)}% over {er.conditions} "
                                 f"conditions (paper: {100 * PAPER_ERROR_REDUCTION:.0f}%)")
        if self.claims:
            lines += ["", "Adapted Deep Embeddings' conclusions (abstract), checked on these "
                          "runs (differences in accuracy points, 95% intervals):"]
            for c in self.claims:
                lines += ["", c.text()]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.to_text()

    def summary(self, width: int | None = 88) -> str:
        """What this run settles: how many conclusions are resolved (holds or fails) at
        its replications, each conclusion's verdict with its comparisons' numbers, and,
        when some are not resolved, where more replications come from; lines broken at
        word boundaries to ``width``."""
        settled = [c for c in self.claims if c.verdict in (stats.HOLDS, stats.FAILS)]
        ks = sorted({int(k) for k in self.records["k"]})
        ns = sorted({int(n) for n in self.records["n"]})
        lines = [f"This run ({int(self.replications.min().min())} replications per cell, "
                 f"k in {ks}, n in {ns}) settles {len(settled)} of {len(self.claims)} "
                 "conclusions:"]
        for c in self.claims:
            lines.append(f"  ({c.number}) {c.verdict or 'not checked'}")
            lines += [f"      {row.comparison}: {row.text}"
                      for row in c.comparisons.itertuples()] if not c.comparisons.empty else []
        if any(c.verdict == stats.UNRESOLVED for c in self.claims):
            lines.append(f"A conclusion {stats.UNRESOLVED} needs more replications: the "
                         "classroom grid (python -m dml_kit grid --preset classroom) has "
                         "more per cell.")
        return wrap_lines(lines, width)

    def to_markdown(self) -> str:
        """The accuracy table and the conclusions as Markdown
        (:func:`dml_kit.experiments.export.to_markdown`)."""
        from dml_kit.experiments import export  # noqa: PLC0415 (export imports this module's type)

        return export.to_markdown(self)

    def to_latex(self) -> str:
        """The accuracy table as a LaTeX table and the conclusions as a list
        (:func:`dml_kit.experiments.export.to_latex`)."""
        from dml_kit.experiments import export  # noqa: PLC0415

        return export.to_latex(self)

    def save(self, path: str | os.PathLike[str], format: str | None = None) -> list[Path]:
        """Write the report as CSV, Markdown or LaTeX, by ``path``'s suffix
        (:func:`dml_kit.experiments.export.export_report`); returns the files written."""
        from dml_kit.experiments import export  # noqa: PLC0415

        return export.export_report(self, path, format)


Results: TypeAlias = pd.DataFrame | ResultsStore | str | os.PathLike[str] | None


def _grid_records(results: Results, preset: str | None) -> pd.DataFrame:
    """The grid records (``kind == "grid"``) of ``results`` (a frame, a store or a store
    path), of ``preset`` when given; other record kinds, such as the shift study's,
    share stores but are not grid cells. A path must name an existing store (opened
    with ``create=False``); anything else raises ``TypeError`` naming ``results``."""
    if isinstance(results, pd.DataFrame):
        frame = results
    elif isinstance(results, ResultsStore):
        frame = results.to_frame()
    elif results is None or isinstance(results, (str, os.PathLike)):
        # reading never creates: a mistyped path is an error, not a new empty store
        frame = ResultsStore(results, create=False).to_frame()
    else:
        raise TypeError(f"results must be a DataFrame of records, a ResultsStore, a store "
                        f"path (str or os.PathLike) or None (the default store), got "
                        f"{type(results).__name__}: {results!r:.60}")
    if "kind" in frame:           # other record kinds (the shift study) share stores
        frame = frame[frame["kind"] == "grid"]
    if frame.empty:
        raise ValueError("no records to report: run a grid first "
                         "(python -m dml_kit grid ...)")
    if preset is not None:
        frame = frame[frame["preset"] == preset]
    frame = frame.copy()
    if "task" not in frame:
        frame["task"] = 0
    if "loss" not in frame:
        frame["loss"] = None
    return frame


def report_datasets(results: Results = None, *, preset: str | None = None) -> list[Report]:
    """One :func:`report` per dataset of the records, in name order (what
    ``python -m dml_kit report`` prints when no dataset is named)."""
    frame = _grid_records(results, preset)
    datasets = sorted(frame["dataset"].unique())
    if not datasets:
        raise ValueError(f"no records of preset {preset!r} to report")
    return [report(frame, dataset=name) for name in datasets]


def _main_records(frame: pd.DataFrame, loss: str) -> pd.DataFrame:
    """Records of the paper's methods: embedding-source methods with ``loss`` only (or
    with no loss recorded)."""
    methods = _methods()
    embedding_source = frame["method"].map(lambda m: methods[m].source_kind == "embedding"
                                           if m in methods else False)
    return frame[~embedding_source | (frame["loss"] == loss) | frame["loss"].isna()]


def _pooled(diffs: dict[Any, pd.Series]) -> stats.Estimate:
    """Mean over conditions of each condition's mean paired difference, with its
    interval (:func:`dml_kit.stats.condition_mean_ci`): conditions may hold different
    replications (a preset's ``tasks_by_n`` gives cheap conditions more tasks)."""
    return stats.condition_mean_ci({c: d.to_dict() for c, d in diffs.items()},
                                   name="pooled differences",
                                   bounds=stats.difference_bounds(ACCURACY_BOUNDS))


def _compare(wide: dict[Any, pd.DataFrame], pairs: dict[Any, tuple[str, str]], label: str,
             ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Paired ``a - b`` per condition (``pairs[condition] = (a, b)``) and pooled."""
    rows, diffs = [], {}
    for cond, (a, b) in pairs.items():
        if a not in wide[cond] or b not in wide[cond]:
            continue
        w = wide[cond][[a, b]].dropna()
        if w.empty:
            continue
        v = stats.compare(w[a].to_numpy(), w[b].to_numpy(), bounds=ACCURACY_BOUNDS)
        diffs[cond] = w[a] - w[b]
        rows.append({"comparison": label, "k": cond[0], "n": cond[1], "a": a, "b": b,
                     "mean": v.estimate.mean, "low": v.estimate.low, "high": v.estimate.high,
                     "replications": v.estimate.n, "verdict": v.label})
    if not diffs:
        raise ValueError(f"{label}: no condition has both methods on shared replications")
    pooled = stats.verdict(_pooled(diffs))
    e = pooled.estimate
    summary = {"comparison": label, "conditions": len(diffs), "n": e.n, "mean": e.mean,
               "low": e.low, "high": e.high, "verdict": pooled.label,
               "text": pooled.text(percent=True)}
    return summary, rows


def _claim(number: int, test: str, parts: list[tuple[dict[str, Any], list[dict[str, Any]]]],
           extra: list[str] | None = None) -> Claim:
    comparisons = pd.DataFrame([s for s, _ in parts])
    per_condition = pd.DataFrame([r for _, rows in parts for r in rows])
    evidence = []
    for summary, rows in parts:
        held = sum(r["verdict"] == stats.HOLDS for r in rows)
        failed = sum(r["verdict"] == stats.FAILS for r in rows)
        evidence.append(f"{summary['comparison']}, mean over {summary['conditions']} "
                        f"conditions: {summary['text']}  (per condition: holds in {held}, "
                        f"fails in {failed}, not resolved in {len(rows) - held - failed})")
        if summary["verdict"] == stats.UNRESOLVED and pd.notna(summary["low"]):
            # an accuracy difference is at most 100 points: the clipped end
            bound = 100 * min(max(abs(summary["low"]), abs(summary["high"])), 1.0)
            evidence.append(f"    what this run does settle: the difference is at most "
                            f"{bound:.1f} points either way (the interval's farther end)")
    verdict = stats.combine([stats.Verdict(s["verdict"], stats.Estimate(
        s["mean"], s["low"], s["high"], s["n"])) for s, _ in parts])
    return Claim(number, CONCLUSIONS[number], test, verdict, comparisons, per_condition,
                 evidence + (extra or []))


def _dataset_records(results: Results, dataset: str | None, preset: str | None,
                     ) -> tuple[str, pd.DataFrame]:
    """The newest record of each (method, loss, k, n, seed, task) of one dataset."""
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
    return dataset, frame.drop_duplicates(["method", "loss", "k", "n", "seed", "task"],
                                          keep="last")


Conditions = list[tuple[int, int]]


def _wide(frame: pd.DataFrame, conditions: Conditions, columns: str,
          order: list[str] | None = None) -> dict[tuple[int, int], pd.DataFrame]:
    """Per condition, a replication x ``columns`` table of accuracies."""
    out = {}
    for c in conditions:
        table = frame[(frame["k"] == c[0]) & (frame["n"] == c[1])].pivot_table(
            index=REPLICATION, columns=columns, values="accuracy")
        out[c] = table.reindex(columns=order) if order is not None else table
    return out


def _estimates(wide: dict[tuple[int, int], pd.DataFrame], order: list[str]
               ) -> dict[str, pd.DataFrame]:
    """Mean, low, high and replications per condition (rows) and method (columns)."""
    conditions = list(wide)
    est = {c: {m: stats.mean_ci(wide[c][m].dropna().to_numpy(), name=f"{m} at (k, n) = {c}")
               for m in order if wide[c][m].notna().any()} for c in conditions}
    index = pd.MultiIndex.from_tuples(conditions, names=["k", "n"])
    return {attr: pd.DataFrame([[getattr(est[c][m], attr) if m in est[c] else float("nan")
                                 for m in order] for c in conditions],
                               index=index, columns=order)
            for attr in ("mean", "low", "high", "n")}


def _best_comparison(accuracy: pd.DataFrame, adapted: list[str], plain: list[str]
                     ) -> pd.DataFrame:
    """Per condition: the best adapted and best non-adapted method and their error
    reduction (point values from the means)."""
    comparison = pd.DataFrame(index=accuracy.index)
    comparison["best_adapted"] = accuracy[adapted].idxmax(axis=1)
    comparison["best_adapted_acc"] = accuracy[adapted].max(axis=1)
    comparison["best_non_adapted"] = accuracy[plain].idxmax(axis=1)
    comparison["best_non_adapted_acc"] = accuracy[plain].max(axis=1)
    err_a = 1 - comparison["best_adapted_acc"]
    err_b = 1 - comparison["best_non_adapted_acc"]
    comparison["error_reduction"] = ((err_b - err_a) / err_b.where(err_b > 0)).fillna(0.0)
    return comparison


def _error_reduction(comparison: pd.DataFrame, wide: dict[tuple[int, int], pd.DataFrame],
                     conditions: Conditions) -> stats.ErrorReduction | None:
    """The best adapted vs best non-adapted method's error reduction over ``conditions``,
    paired on each condition's replications."""
    if not conditions:
        return None
    pairs = []
    for c in conditions:
        a, b = comparison.loc[c, "best_adapted"], comparison.loc[c, "best_non_adapted"]
        w = wide[c][[a, b]].dropna()
        pairs.append((w[a].to_numpy(), w[b].to_numpy()))
    return stats.error_reduction_ci(pairs)


def _conclusion_2(wide: dict[tuple[int, int], pd.DataFrame], accuracy: pd.DataFrame,
                  adapted: list[str], embeddings: Sequence[str], conditions: Conditions,
                  reductions: dict[str, stats.ErrorReduction | None]) -> Claim:
    adapting = [c for c in conditions if c[0] > 1]
    best = {c: accuracy.loc[c, adapted].idxmax() for c in adapting}
    parts = [_compare(wide, {c: (best[c], m) for c in adapting}, f"best hybrid - {m}")
             for m in embeddings]
    extra = []
    k1 = [c for c in conditions if c[0] == 1]
    if k1:
        extra.append(f"k = 1 ({len(k1)} condition(s)) left out: the hybrids equal their "
                     "parents there by construction")
    for label, er in reductions.items():
        if er is not None:
            v = stats.verdict(er.estimate)
            vp = stats.verdict(er.estimate, PAPER_ERROR_REDUCTION)
            extra.append(f"mean error reduction of the best hybrid over the best "
                         f"non-hybrid, {label}: {er.estimate.format(percent=True)}%; "
                         f"above 0: {v.label}; reaches the paper's 34%: {vp.label}")
    return _claim(2, "the better hybrid of each condition beats each DML and few-shot "
                     "method, paired, averaged over the conditions with k > 1", parts, extra)


def _conclusion_3(frame: pd.DataFrame, loss: str, conditions: Conditions) -> Claim:
    others = sorted(set(frame.loc[(frame["method"] == "metric") & (frame["loss"] != loss)
                                  & frame["loss"].notna(), "loss"]))
    test = (f"metric with the {loss} loss beats metric with each other loss, paired on the "
            "same tasks, averaged over all conditions")
    if not others or not (frame["method"] == "metric").any():
        return Claim(3, CONCLUSIONS[3], test, None, evidence=[
            "no metric records with another loss: run the grid with compare_losses "
            "(python -m dml_kit grid --compare-losses triplet_semi_hard ...)"])
    loss_wide = _wide(frame[frame["method"] == "metric"], conditions, "loss")
    parts = [_compare(loss_wide, {c: (loss, other) for c in conditions
                                  if other in loss_wide[c]}, f"{loss} - {other}")
             for other in others]
    return _claim(3, test, parts)


def report(results: Results = None, *, dataset: str | None = None,
           preset: str | None = None, loss: str = MAIN_LOSS) -> Report:
    """Build a :class:`Report` from a grid DataFrame, a store, or a store path (``None``:
    the default store).

    Args:
        dataset: which dataset (required when the records hold several; or use
            :func:`report_datasets` for one report each).
        preset: keep only records of this preset.
        loss: the embedding loss of the paper's ``metric`` and ``adapted_metric`` (the
            histogram loss); ``metric`` records of other losses feed conclusion 3.

    When the records hold several runs of one (method, loss, k, n, seed, task) cell
    (different settings), the newest is used. Records of other kinds (the shift study)
    are left out.
    """
    dataset, frame = _dataset_records(results, dataset, preset)
    main = _main_records(frame, loss)
    if main.empty:
        raise ValueError(f"no records of the paper's methods with loss {loss!r} for "
                         f"dataset {dataset!r}")
    methods = _methods()
    order = [m for m in methods if m in set(main["method"])]
    conditions = sorted({(int(k), int(n)) for k, n in zip(main["k"], main["n"], strict=True)})
    wide = _wide(main, conditions, "method", order)
    tables = _estimates(wide, order)
    accuracy = tables["mean"]

    adapted = [m for m in order if methods[m].adapted]
    plain = [m for m in order if not methods[m].adapted]
    embeddings: list[str] = [m for m in ("metric", "protonet") if m in order]
    comparison = pd.DataFrame(index=accuracy.index)
    reductions: dict[str, stats.ErrorReduction | None] = {"all conditions": None, "k > 1": None}
    if adapted and plain:
        comparison = _best_comparison(accuracy, adapted, plain)
        reductions = {"all conditions": _error_reduction(comparison, wide, conditions),
                      "k > 1": _error_reduction(comparison, wide,
                                                [c for c in conditions if c[0] > 1])}

    claims: list[Claim] = []
    if embeddings and "weight_transfer" in order:
        parts = [_compare(wide, {c: (m, "weight_transfer") for c in conditions},
                          f"{m} - weight_transfer") for m in embeddings]
        claims.append(_claim(1, "each plain deep embedding (the DML and few-shot methods, "
                                "no adaptation) beats weight transfer, paired on the same "
                                "tasks, averaged over all conditions", parts))
    if adapted and embeddings and any(c[0] > 1 for c in conditions):
        claims.append(_conclusion_2(wide, accuracy, adapted, embeddings, conditions,
                                    reductions))
    claims.append(_conclusion_3(frame, loss, conditions))
    facts: dict[str, Any] = {f"conclusion_{c.number}": c.verdict for c in claims}
    for key, er in (("error_reduction", reductions["all conditions"]),
                    ("error_reduction_adapting", reductions["k > 1"])):
        facts[key] = er.estimate.mean if er is not None else float("nan")
    return Report(dataset=dataset, records=main, accuracy=accuracy, low=tables["low"],
                  high=tables["high"], replications=tables["n"].fillna(0).astype(int),
                  winner=accuracy.idxmax(axis=1).rename("winner"), comparison=comparison,
                  error_reduction=reductions["all conditions"],
                  error_reduction_adapting=reductions["k > 1"], claims=claims, facts=facts)


def regularizer_methods(methods: Sequence[str] | None = None) -> list[str]:
    """The methods (of ``methods``, default every registered one) that read the
    regularizer (:attr:`dml_kit.methods.Method.uses_regularizer`): only for those can a
    variant with SEC or another regularizer differ from one without."""
    facts = _methods()
    names = list(facts) if methods is None else list(methods)
    return [m for m in names if m in facts and getattr(facts[m], "uses_regularizer", False)]


def regularizer_effect(results: pd.DataFrame, with_: str, without: str, *,
                       methods: Sequence[str] | None = None, by: Sequence[str] = ("k",),
                       column: str = "variant", value: str = "accuracy",
                       threshold: float = 0.0) -> pd.DataFrame:
    """"Variant ``with_`` (a regularizer on, e.g. SEC) beats variant ``without``", per
    method and group of ``by``, paired on the replications (seed, task):
    :func:`dml_kit.stats.paired_table` of ``value`` between the rows whose ``column``
    is ``with_`` and ``without``.

    ``methods``: which methods to compare (default: those in ``results`` that read the
    regularizer, :func:`regularizer_methods`). A method that ignores the regularizer
    (``weight_transfer``, ``scratch``) trains the same way in both variants, so its
    difference is 0 by construction and a verdict on it says nothing: asking for one
    raises ``ValueError`` naming ``methods`` and the methods allowed.

    Returns a DataFrame with ``method``, ``by``, the two variants' mean ``value``,
    ``difference`` (mean paired difference with its 95% interval, as text), ``low``,
    ``high``, ``n`` and ``verdict``.
    """
    for name in ("method", column, value):
        if name not in results.columns:
            raise ValueError(f"results has no column {name!r}; columns: "
                             f"{', '.join(map(str, results.columns))}")
    present = list(dict.fromkeys(results["method"]))
    allowed = regularizer_methods(present)
    if methods is None:
        chosen = allowed
    else:
        chosen = [methods] if isinstance(methods, str) else list(methods)
        facts = _methods()
        for m in chosen:
            if m not in facts:
                raise ValueError(f"methods: {m!r} is not a registered method, so whether it "
                                 f"reads the regularizer is unknown; choose from: "
                                 f"{', '.join(allowed) or '(none of the methods in results)'}")
            if not getattr(facts[m], "uses_regularizer", False):
                raise ValueError(
                    f"methods: {m!r} ignores the regularizer (its registry entry has "
                    "uses_regularizer=False), so its runs with and without it are the same "
                    f"and comparing them says nothing; choose from: "
                    f"{', '.join(allowed) or '(none of the methods in results)'}")
            if m not in present:
                raise ValueError(f"methods: {m!r} has no rows in results; it has: "
                                 f"{', '.join(map(str, present))}")
    if not chosen:
        raise ValueError(f"methods: none of the methods in results ({', '.join(present)}) "
                         "reads the regularizer; run one that does, e.g. "
                         f"{', '.join(regularizer_methods())}")
    variants = set(results[column])
    for name, variant in (("with_", with_), ("without", without)):
        if variant not in variants:
            raise ValueError(f"{name}: no rows with {column} == {variant!r}; "
                             f"{column} holds: {', '.join(map(str, sorted(variants, key=str)))}")
    tables = [stats.paired_table(results[results["method"] == m], with_, without, by=by,
                                 column=column, value=value, threshold=threshold)
              .assign(method=m) for m in chosen]
    out = pd.concat(tables, ignore_index=True)
    return out[["method", *by, with_, without, "difference", "low", "high", "n", "verdict"]]
