"""Compare classification rules and methods on the same k-shot tasks.

A *rule* is any callable ``rule(task) -> accuracy`` (a float, or a
:class:`~dml_kit.methods.RunResult`, whose ``accuracy`` and ``notes`` are read).
:func:`compare_on_tasks` draws one task per (k, seed) from a target dataset and scores every
rule on that same task, so differences between rows are differences between rules, not
between draws. Ready-made rules:

* :func:`pixel_1nn`: 1-nearest neighbour on raw pixels (no learning at all);
* :func:`embedding_1nn`: 1-NN in a trained embedding (Adapted Deep Embeddings' test rule);
* :func:`nearest_prototype`: the nearest class mean (prototypical networks, Snell et al.
  2017);
* :func:`method_rule`: one of the six methods of :mod:`dml_kit.methods`;
* :func:`without_bn_recalibration`: a method rule with the batch-norm statistics left as
  training left them (the ablation that shows what recomputing them on the support does).

Then :func:`exceeds` checks "a rule's accuracy is above a level" (chance) per k, and
:func:`dml_kit.stats.paired_table` checks "rule A beats rule B" on the same tasks.
:func:`sec_weight_study` repeats notebook 06's with/without-SEC training over seeds.

Example (notebook 01)::

    frame = compare_on_tasks(split.target, {"scratch": method_rule("scratch"),
                                            "1-NN on pixels": pixel_1nn},
                             k_values=[1, 5], seeds=range(3))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from unittest import mock

import pandas as pd
import torch

from dml_kit import data, methods, metrics, stats
from dml_kit._validation import check_choice, check_int, check_seed
from dml_kit.data.core import Dataset
from dml_kit.losses.distances import DISTANCES
from dml_kit.methods import phases

__all__ = ["Rule", "compare_on_tasks", "pixel_1nn", "embedding_1nn", "nearest_prototype",
           "method_rule", "without_bn_recalibration", "exceeds", "sec_weight_study"]

#: ``rule(task) -> accuracy`` (a float, or a result with ``accuracy`` and ``notes``)
Rule = Callable[[Any], Any]


def pixel_1nn(task: Any) -> float:
    """Query accuracy of 1-NN on raw pixels: a query takes the label of the support image
    whose flattened pixel vector is most cosine-similar,
    ``y_hat(x) = y_{argmax_i cos(x, x_i)}``. The floor any learned representation must
    beat."""
    return metrics.knn_accuracy(task.support_x.flatten(1), task.support_y,
                                task.query_x.flatten(1), task.query_y, k=1)


def _embed_task(model: torch.nn.Module, task: Any) -> tuple[torch.Tensor, torch.Tensor]:
    return metrics.embed(model, task.support_x), metrics.embed(model, task.query_x)


def embedding_1nn(model: torch.nn.Module, *, distance: str = "cosine") -> Rule:
    """A rule: embed support and queries with ``model`` (an embedder ``nn.Module``, e.g.
    ``SourceModel.model`` or a classifier's ``.embedder``, used frozen) and classify each
    query by its nearest support embedding under ``distance``
    (``cosine | sqeuclidean | euclidean``): Adapted Deep Embeddings' test rule
    (Scott et al. 2018) for its metric-learning nets."""
    check_choice("distance", distance, DISTANCES)

    def rule(task: Any) -> float:
        s, q = _embed_task(model, task)
        return metrics.knn_accuracy(s, task.support_y, q, task.query_y, k=1,
                                    distance=distance)

    return rule


def nearest_prototype(model: torch.nn.Module, *, distance: str = "sqeuclidean") -> Rule:
    """A rule: classify each query by the nearest class prototype
    ``c_j = (1/k) sum_{i: y_i = j} f(x_i)`` of the support embeddings under ``distance``
    (prototypical networks, Snell et al. 2017; squared Euclidean by default)."""
    check_choice("distance", distance, DISTANCES)

    def rule(task: Any) -> float:
        s, q = _embed_task(model, task)
        return metrics.prototype_accuracy(s, task.support_y, q, task.query_y,
                                          distance=distance)

    return rule


def method_rule(name: str, source: Any = None, config: Any = None, **overrides: Any) -> Rule:
    """A rule that runs ``dml_kit.methods.run(name, task, source, config, **overrides)``
    (seeded by the task's seed) and returns its :class:`~dml_kit.methods.RunResult`.
    Pass a trained :class:`~dml_kit.methods.SourceModel` as ``source`` to share it across
    tasks (it is never modified)."""

    check_choice("name", name, methods.available())

    def rule(task: Any) -> Any:
        return methods.run(name, task, source, config, **overrides)

    return rule


def compare_on_tasks(target: Dataset, rules: Mapping[str, Rule], *, k_values: Iterable[int],
                     seeds: Iterable[int] = (0,), n_way: int = 5,
                     n_query: int | None = None) -> pd.DataFrame:
    """Score every rule on the same n-way k-shot tasks of ``target``.

    For each ``k`` in ``k_values`` and each ``seed`` in ``seeds`` one task
    ``dml_kit.data.kshot_task(target, n_way, k, n_query=n_query, seed=seed)`` is drawn and
    handed to every rule. The query accuracy
    ``acc = (1/|Q|) sum_{(x, y) in Q} 1[y_hat(x) = y]`` (chance: ``1/n``) fills one row
    per (rule, k, seed).

    Returns:
        A DataFrame with columns ``method`` (the rule's name), ``n``, ``k``, ``seed``,
        ``accuracy`` and ``note`` (a run's notes, else ``""``), the shape
        :func:`dml_kit.viz.accuracy_vs_k` and :func:`dml_kit.viz.method_heatmap` take.
    """

    if not rules:
        raise ValueError("rules must name at least one rule, e.g. {'1-NN on pixels': "
                         "pixel_1nn}")
    ks = [check_int("k_values", k, 1) for k in k_values]
    seed_list = [check_seed(s) for s in seeds]
    if not ks or not seed_list:
        raise ValueError("k_values and seeds must each hold at least one value")
    n_way = check_int("n_way", n_way, 1, target.n_classes,
                      hint=f"{target.n_classes} target classes")
    rows = []
    for k in ks:
        for seed in seed_list:
            task = data.kshot_task(target, n_way, k, n_query=n_query, seed=seed)
            for name, rule in rules.items():
                out = rule(task)
                acc = float(getattr(out, "accuracy", out))  # type: ignore[arg-type]
                rows.append({"method": name, "n": n_way, "k": k, "seed": seed,
                             "accuracy": acc, "note": getattr(out, "notes", "") or ""})
    return pd.DataFrame(rows, columns=["method", "n", "k", "seed", "accuracy", "note"])


def without_bn_recalibration(rule: Rule) -> Rule:
    """``rule`` run with :func:`dml_kit.methods.phases.recalibrate_batchnorm` replaced by a
    no-op: scratch and weight transfer then score their queries in eval mode with the
    running batch-norm statistics training left, ``mu <- (1 - m) mu + m mean_batch(h)``
    (``m = 0.1``), which a few one-step epochs on the support barely move from their
    start (0 and 1 for a fresh network). An ablation for teaching: it shows how much of
    a classifier's target accuracy comes from normalising with the support's statistics.
    Methods that never recompute them (the embedding methods) are unaffected."""

    def rule_(task: Any) -> Any:
        with mock.patch.object(phases, "recalibrate_batchnorm", lambda *a, **k: 0):
            return rule(task)

    return rule_


def exceeds(frame: pd.DataFrame, method: str, level: float, *, by: Sequence[str] = ("k",),
            column: str = "method", value: str = "accuracy") -> pd.DataFrame:
    """"``method``'s mean ``value`` is above ``level``" checked per group of ``by``.

    Per group the replications' values ``v_1 .. v_n`` (one per seed/task row) give the mean
    and its 95% interval (:func:`dml_kit.stats.mean_ci`: Student's t,
    ``mean +- t_{0.975, n-1} s / sqrt(n)``, below 20 replications); the verdict is
    :func:`dml_kit.stats.verdict` against ``level``: the whole interval above ->
    ``stats.HOLDS``, below -> ``stats.FAILS``, straddling it -> ``stats.UNRESOLVED``.
    Typical use: ``level = 1 / n`` (chance on n-way tasks).

    Returns:
        A DataFrame with ``by``, ``method``, ``estimate`` (``"0.862 [0.841, 0.880]"``),
        ``level``, ``n`` and ``verdict``.
    """
    part = frame[frame[column] == method]
    if part.empty:
        names = ", ".join(map(str, frame[column].unique()))
        raise ValueError(f"no rows with {column} == {method!r}; the frame has: {names}")
    rows = []
    for key, group in part.groupby(list(by), sort=True):
        key = key if isinstance(key, tuple) else (key,)
        v = stats.verdict(stats.mean_ci(group[value].to_numpy(), name=f"{method} {key}"),
                          level)
        rows.append({**dict(zip(by, key, strict=True)), column: method,
                     "estimate": v.estimate.format(), "level": level, "n": v.estimate.n,
                     "verdict": v.label})
    return pd.DataFrame(rows)


def sec_weight_study(source: Dataset, target: Dataset, *, weights: Iterable[float],
                     seeds: Iterable[int], config: Any, n_way: int = 5,
                     k_shot: int = 5) -> pd.DataFrame:
    """Notebook 06's with/without-SEC comparison repeated over SEC weights and seeds.

    For every seed ``s`` one target task ``kshot_task(target, n_way, k_shot, seed=s)`` is
    drawn and, for every weight ``w`` (0: no regularizer), the ``metric`` method trains
    on ``source`` with ``L = L_metric + w L_sec`` (Zhang et al., NeurIPS 2020,
    ``L_sec = (1/N) sum_i (||f_i|| - mu)^2``) and seed ``s``, then classifies the task by
    1-NN. The norms of the task's support and query embeddings give the coefficient of
    variation ``cv = std / mean`` (as :class:`dml_kit.widgets.SECExplorer` shows it).
    Runs at the same seed share data, initial weights and batches: they are paired.
    ``best_epoch`` is the source epoch early stopping restored (runs that stop at
    different epochs are compared at different training lengths).

    Returns:
        A DataFrame with ``weight``, ``seed``, ``cv``, ``norm_mean``, ``accuracy`` and
        ``best_epoch``.
    """


    ws = [float(w) for w in weights]
    seed_list = [check_seed(s) for s in seeds]
    if not ws or not seed_list:
        raise ValueError("weights and seeds must each hold at least one value")
    if min(ws) < 0:
        raise ValueError(f"weights must be >= 0, got {ws}")
    rows = []
    for seed in seed_list:
        task = data.kshot_task(target, n_way, k_shot, seed=seed)
        for w in ws:
            cfg = config.replace(regularizer="sec" if w > 0 else None, regularizer_weight=w)
            run = methods.run("metric", task, source, cfg, seed=seed)
            assert run.model is not None, "a metric run returns its embedder"
            norms = metrics.norm_stats(metrics.embed(run.model, torch.cat(
                [task.support_x, task.query_x])))
            best = getattr(getattr(run.source, "train", None), "best_epoch", None)
            rows.append({"weight": w, "seed": seed, "cv": norms["cv"],
                         "norm_mean": norms["mean"], "accuracy": float(run.accuracy),
                         "best_epoch": best})
    return pd.DataFrame(rows, columns=["weight", "seed", "cv", "norm_mean", "accuracy",
                                       "best_epoch"])
