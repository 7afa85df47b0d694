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
:func:`compare_losses` trains one embedding per loss and scores each by retrieval and on
the same k-shot tasks (notebook 03); :func:`sec_weight_study` repeats notebook 06's
with/without-SEC training over seeds.

**Progress.** The loops take ``progress=`` (:mod:`dml_kit.viz.progress`): by default
(``"auto"``) a bar with a running table of the mean accuracy so far appears under the
notebook cell that runs them, and nothing appears outside a notebook; ``True`` adds a
text bar there, ``False`` shows nothing, a callable ``progress(rows, done, total)`` gets
the rows as they come. Progress never changes a number. **Interrupts.** The notebook's
stop button ends a loop with ``KeyboardInterrupt`` as soon as the run in progress has
restored its best weights; the rows of an interrupted run are never returned.

Example (notebook 01)::

    frame = compare_on_tasks(split.target, {"scratch": method_rule("scratch"),
                                            "1-NN on pixels": pixel_1nn},
                             k_values=[1, 5], seeds=range(3))
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from unittest import mock

import numpy as np
import pandas as pd
import torch

from dml_kit import data, losses, methods, metrics, stats
from dml_kit._lazy import progress_reporting
from dml_kit._validation import check_choice, check_int, check_seed
from dml_kit.data.core import Dataset
from dml_kit.losses.distances import DISTANCES
from dml_kit.methods import phases

__all__ = ["Rule", "compare_on_tasks", "pixel_1nn", "embedding_1nn", "nearest_prototype",
           "method_rule", "without_bn_recalibration", "exceeds", "sec_weight_study",
           "compare_losses", "retrieval_scores"]

if TYPE_CHECKING:
    from dml_kit.viz.progress import Progress

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


def _interrupted(what: str) -> KeyboardInterrupt:
    """The interrupt a loop raises when one of its runs was stopped (a training returns
    normally after the stop button, with its best weights restored): its rows are never
    returned, and the loop does not go on to the next run."""
    return KeyboardInterrupt(f"{what} was interrupted (stop button): the loop stopped "
                             "and returns nothing; run the cell again to start over")


def compare_on_tasks(target: Dataset, rules: Mapping[str, Rule], *, k_values: Iterable[int],
                     seeds: Iterable[int] = (0,), n_way: int = 5,
                     n_query: int | None = None, progress: Progress = "auto",
                     title: str | None = None) -> pd.DataFrame:
    """Score every rule on the same n-way k-shot tasks of ``target``.

    For each ``k`` in ``k_values`` and each ``seed`` in ``seeds`` one task
    ``dml_kit.data.kshot_task(target, n_way, k, n_query=n_query, seed=seed)`` is drawn and
    handed to every rule. The query accuracy
    ``acc = (1/|Q|) sum_{(x, y) in Q} 1[y_hat(x) = y]`` (chance: ``1/n``) fills one row
    per (rule, k, seed).

    ``progress`` (see the module docstring; default ``"auto"``: a bar and a running table
    of the mean accuracy per rule and k under the notebook cell, nothing elsewhere) is
    called once before the first task and then once per (k, seed) task with that task's
    rows and the running count of rows; ``title`` heads the bar. A rule whose run was
    interrupted (``.interrupted``, the stop button) ends the loop with
    ``KeyboardInterrupt``.

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
    total = len(ks) * len(seed_list) * len(rules)
    heading = title or (f"{len(rules)} rules" if len(rules) > 1 else "one rule") + \
        f" on the same {n_way}-way tasks"
    with progress_reporting(progress, total, heading, index="method",
                            condition=("k",)) as report:
        for k in ks:
            for seed in seed_list:
                task = data.kshot_task(target, n_way, k, n_query=n_query, seed=seed)
                done = []
                for name, rule in rules.items():
                    out = rule(task)
                    if getattr(out, "interrupted", False):
                        raise _interrupted(f"rule {name!r} at k={k}, seed={seed}")
                    acc = float(getattr(out, "accuracy", out))  # type: ignore[arg-type]
                    done.append({"method": name, "n": n_way, "k": k, "seed": seed,
                                 "accuracy": acc, "note": getattr(out, "notes", "") or ""})
                rows += done
                report(done)
    return pd.DataFrame(rows, columns=["method", "n", "k", "seed", "accuracy", "note"])


def retrieval_scores(embeddings: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
    """Leave-one-out retrieval scores of ``embeddings`` (cosine):
    ``Recall@1``, ``Recall@4`` (:func:`dml_kit.metrics.recall_at_k`: the share of
    queries with a same-class example among their K nearest others) and ``MAP@R``
    (:func:`dml_kit.metrics.map_at_r`, Musgrave et al. 2020)."""
    r = metrics.recall_at_k(embeddings, labels, ks=(1, 4))
    return {"Recall@1": r[1], "Recall@4": r[4], "MAP@R": metrics.map_at_r(embeddings, labels)}


def compare_losses(source: Dataset, target: Dataset, loss_names: Sequence[str], config: Any,
                   *, n_way: int = 5, k_shot: int = 1, seeds: Iterable[int] = range(10),
                   seed: int = 0, progress: Progress = "auto", callbacks: Any = None
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train one embedding per loss on ``source`` and score each on unseen ``target``
    classes (notebook 03's losses side by side).

    For each name in ``loss_names`` the ``embedding`` source model is trained with
    ``config.replace(loss=name)`` and ``seed`` (:func:`dml_kit.methods.train_source`;
    ``callbacks`` watch each training, e.g. a live dashboard); the whole target is embedded
    and scored by :func:`retrieval_scores`, and every task
    ``kshot_task(target, n_way, k_shot, seed=s)`` (``s`` in ``seeds``, the same tasks for
    every loss) by 1-NN in the embedding (:func:`embedding_1nn`).

    ``progress`` (see the module docstring) is called once per loss with its task rows
    (a running table of the mean k-shot accuracy per loss). An interrupted training ends
    the loop with ``KeyboardInterrupt``.

    Returns:
        ``(summary, tasks)``: ``summary`` one row per loss (index ``loss``) with
        ``family`` (:func:`dml_kit.losses.spec`), ``Recall@1``, ``Recall@4``, ``MAP@R``,
        the mean ``"<n>-way <k>-shot"`` accuracy and its 95% ``"<k>-shot interval"``
        (:func:`dml_kit.stats.mean_ci`); ``tasks`` one row per (loss, task) in
        :func:`compare_on_tasks`'s shape (``method`` is the loss).
    """
    names = list(loss_names)
    if not names:
        raise ValueError("loss_names must name at least one loss, e.g. ['triplet']")
    for name in names:
        check_choice("loss_names", name, losses.available())
    n_way = check_int("n_way", n_way, 1, target.n_classes,
                      hint=f"{target.n_classes} target classes")
    k_shot = check_int("k_shot", k_shot, 1)
    seed_list = [check_seed(s) for s in seeds]
    if not seed_list:
        raise ValueError("seeds must hold at least one value")
    tasks = [data.kshot_task(target, n_way, k_shot, seed=s) for s in seed_list]
    shot = f"{n_way}-way {k_shot}-shot"
    summary, rows = [], []
    with progress_reporting(progress, len(names) * len(tasks),
                            f"{len(names)} losses: {shot} tasks", index="method",
                            condition=("k",)) as report:
        for name in names:
            model = methods.train_source("embedding", source, config.replace(loss=name),
                                         seed=seed, callbacks=callbacks)
            if model.interrupted:
                raise _interrupted(f"the {name} training")
            rule = embedding_1nn(model.model)
            accs = [float(rule(task)) for task in tasks]
            done = [{"method": name, "n": n_way, "k": k_shot, "seed": task.seed,
                     "accuracy": acc, "note": ""} for task, acc in zip(tasks, accs, strict=True)]
            summary.append({"loss": name, "family": losses.spec(name).kind,
                            **retrieval_scores(metrics.embed(model.model, target.x), target.y),
                            shot: float(np.mean(accs)),
                            f"{k_shot}-shot interval": stats.mean_ci(
                                accs, bounds=stats.metric_bounds("accuracy")).format()})
            rows += done
            report(done)
    return (pd.DataFrame(summary).set_index("loss"),
            pd.DataFrame(rows, columns=["method", "n", "k", "seed", "accuracy", "note"]))


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
        v = stats.verdict(stats.mean_ci(group[value].to_numpy(), name=f"{method} {key}",
                                        bounds=stats.metric_bounds(value)), level)
        rows.append({**dict(zip(by, key, strict=True)), column: method,
                     "estimate": v.estimate.format(), "level": level, "n": v.estimate.n,
                     "verdict": v.label})
    return pd.DataFrame(rows)


def sec_weight_study(source: Dataset, target: Dataset, *, weights: Iterable[float],
                     seeds: Iterable[int], config: Any, n_way: int = 5,
                     k_shot: int = 5, progress: Progress = "auto") -> pd.DataFrame:
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

    ``progress`` (see the module docstring) is called once per run with its row: a bar
    and a running table of the mean ``cv`` and ``accuracy`` per weight. An interrupted
    run ends the loop with ``KeyboardInterrupt``.

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
    with progress_reporting(progress, len(ws) * len(seed_list), "SEC weights x seeds",
                            value=("cv", "accuracy"), index="weight",
                            condition=()) as report:
        for seed in seed_list:
            task = data.kshot_task(target, n_way, k_shot, seed=seed)
            for w in ws:
                cfg = config.replace(regularizer="sec" if w > 0 else None,
                                     regularizer_weight=w)
                run = methods.run("metric", task, source, cfg, seed=seed)
                if run.interrupted:
                    raise _interrupted(f"the run with SEC weight {w:g}, seed {seed}")
                assert run.model is not None, "a metric run returns its embedder"
                norms = metrics.norm_stats(metrics.embed(run.model, torch.cat(
                    [task.support_x, task.query_x])))
                best = getattr(getattr(run.source, "train", None), "best_epoch", None)
                row = {"weight": w, "seed": seed, "cv": norms["cv"],
                       "norm_mean": norms["mean"], "accuracy": float(run.accuracy),
                       "best_epoch": best}
                rows.append(row)
                report([row])
    return pd.DataFrame(rows, columns=["weight", "seed", "cv", "norm_mean", "accuracy",
                                       "best_epoch"])
