"""The ooDML generalisation study: zero-shot and few-shot retrieval along a split ladder.

For every rung of a ladder from :func:`dml_kit.data.shift_splits` (train/test class sets
of increasing Fréchet distance) and every seed:

1. train the method's source model on the rung's **train** classes
   (:func:`dml_kit.methods.train_source`, the same source phase the grid uses);
2. **zero-shot**: embed the test classes' query images and score Recall@1 and MAP@R
   among them (ooDML's metric: retrieval over unseen classes);
3. **few-shot**: take ``k_shot`` labelled images of every test class as a support set,
   fine-tune with the method's adapted variant (``adapted_metric`` / ``adapted_protonet``,
   :func:`dml_kit.methods.run`), and score the *same* queries again.

Scoring. Retrieval gets harder with more classes, and the class-removal phase of the
ladder leaves fewer test classes on the hard rungs, so every rung is scored on the same
number of test classes (``max_test_classes``, default the smallest test side of the
ladder): the mean over ``eval_draws`` seeded random draws of that many test classes
(the same draws for zero-shot and few-shot). A single draw of 20 out of 42-80 glyph
classes moved Recall@1 by about +-0.05 (standard deviation over draws, one trained
model), as much as one rung of the ladder; the mean over 10 draws removes most of it.
:func:`ladder_table` and :func:`shift_verdicts` turn the per-seed table into means with
95% intervals over seeds and paired verdicts (:mod:`dml_kit.stats`).

ooDML fine-tunes only the last layer with the margin loss for 1,000 iterations on
ResNet-50 features; the kit adapts the whole (small) Conv-4 with the method's own loss,
as Adapted Deep Embeddings does. Every (rung, seed, setting) is one :class:`RunRecord` in
the results store, keyed by a hash of the split's classes, the settings, the data's
fingerprint and the recipe version, so a rerun reads the store instead of retraining.
The grid runner's cells are (method, k, n, seed) over one domain split, so the study
drives the methods directly, not ``run_grid``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from dml_kit import __version__, stats
from dml_kit._validation import check_choice, check_int, check_seed
from dml_kit.data.core import Dataset
from dml_kit.data.shift import ShiftSplit
from dml_kit.data.tasks import kshot_task
from dml_kit.experiments.config import get_preset
from dml_kit.experiments.grid import dataset_fingerprint
from dml_kit.experiments.store import RECORD_KINDS, ResultsStore, RunRecord, stable_hash
from dml_kit.methods import METHODS, RECIPE_VERSION, train_source
from dml_kit.methods import get as get_method
from dml_kit.methods import run as run_method
from dml_kit.metrics import embed, map_at_r, recall_at_k

#: the distance each source kind's embedding is retrieved with (cosine for metric
#: embeddings, squared Euclidean for protonets, as their classification rules use)
RETRIEVAL_DISTANCE = {"embedding": "cosine", "protonet": "sqeuclidean"}


def check_study_method(method: str) -> tuple[str, str]:
    """``(adapted child, retrieval distance)`` of ``method``; unknown ones are refused."""
    choices = study_methods()
    check_choice("method", method, choices)
    return choices[method]


def study_methods() -> dict[str, tuple[str, str]]:
    """The methods the study can run, from the method registry: each plain embedding
    method that has an adapted child, mapped to ``(adapted child, retrieval distance)``
    (``{"metric": ("adapted_metric", "cosine"), "protonet": ("adapted_protonet",
    "sqeuclidean")}`` for the six methods of the paper)."""
    return {m.parent: (m.name, RETRIEVAL_DISTANCE[m.source_kind])
            for m in METHODS.values()
            if m.adapted and m.parent and m.source_kind in RETRIEVAL_DISTANCE}
SETTINGS = ("zero-shot", "few-shot")
#: how a study record's ``notes`` begin (its kind is ``"shift_study"``; stores of schema 1-2
#: knew study records only by this prefix, and migrate them by it)
STUDY_NOTE = "shift study"
#: the store's record kind of a study row, and what its ``accuracy`` column holds
RECORD_KIND = "shift_study"
RECORD_METRIC = RECORD_KINDS[RECORD_KIND]
COLUMNS = ["split", "distance", "seed", "setting", "method", "k", "n_test_classes",
           "recall@1", "map@r", "train_classes", "seconds"]


def _study_hash(data: Dataset, fingerprint: str, split: ShiftSplit, method: str, setting: str,
                k_shot: int, seed: int, max_test_classes: int, eval_draws: int,
                config: Any) -> str:
    return stable_hash({"study": "shift-v2", "recipe": RECIPE_VERSION, "dataset": data.name,
                        "data": fingerprint, "n": len(data),
                        "train": list(split.train_classes), "test": list(split.test_classes),
                        "method": method, "setting": setting, "k": k_shot, "seed": seed,
                        "max_test_classes": max_test_classes, "eval_draws": eval_draws,
                        "config": config.hash_dict()})


def _stored(store: ResultsStore, config_hash: str) -> RunRecord:
    record = store.get(config_hash)
    if record is None:                     # deleted between the check and the read
        raise KeyError(f"record {config_hash} vanished from {store.path}")
    return record


def _row(record: RunRecord) -> dict[str, Any]:
    m = record.metrics
    return {"split": int(m["split"]), "distance": m["distance"], "seed": record.seed,
            "setting": m["setting"], "method": record.method, "k": record.k,
            "n_test_classes": record.n, "recall@1": m["recall@1"], "map@r": m["map@r"],
            "train_classes": int(m["train_classes"]), "seconds": record.train_seconds}


def class_draws(n_classes: int, n_eval: int, draws: int, seed: int) -> list[torch.Tensor]:
    """``draws`` seeded random subsets of ``n_eval`` class ids out of ``range(n_classes)``
    (one subset, all classes, when ``n_eval >= n_classes``: every draw would be the same)."""
    if n_eval >= n_classes:
        return [torch.arange(n_classes)]
    g = torch.Generator().manual_seed(seed)
    return [torch.randperm(n_classes, generator=g)[:n_eval].sort().values for _ in range(draws)]


def drawn_retrieval(emb: torch.Tensor, labels: torch.Tensor, subsets: Sequence[torch.Tensor],
                    distance: str = "cosine") -> tuple[float, float]:
    """Recall@1 and MAP@R (:func:`dml_kit.metrics.recall_at_k`, :func:`map_at_r`) among the
    examples of each class subset, averaged over the subsets:
    ``R@1 = (1/D) sum_d R@1(examples of subset d)``. Chance level depends only on the
    subset size, so rungs with different numbers of test classes compare fairly."""
    r1, mapr = [], []
    for keep in subsets:
        mask = torch.isin(labels, keep)
        r1.append(recall_at_k(emb[mask], labels[mask], (1,), distance)[1])
        mapr.append(map_at_r(emb[mask], labels[mask], distance))
    return float(np.mean(r1)), float(np.mean(mapr))


def zero_shot_recall(data: Dataset, split: Any, config: Any = None, *, method: str = "metric",
                     seed: int = 0, max_test_classes: int | None = None, eval_draws: int = 10,
                     k_shot: int = 5) -> dict[str, float]:
    """Zero-shot retrieval on one rung, without the study's bookkeeping: train ``method``'s
    source model on the split's train classes, embed every image of its test classes and
    score Recall@1 and MAP@R as the mean over ``eval_draws`` seeded draws of
    ``max_test_classes`` test classes (:func:`class_draws`, :func:`drawn_retrieval`;
    ``None``: all test classes, one draw).

    Args:
        data: the dataset the split was built on.
        split: anything with ``train_classes`` and ``test_classes`` (class ids of ``data``),
            e.g. a :class:`~dml_kit.data.ShiftSplit`.
        config: a :class:`~dml_kit.methods.MethodConfig` (default: the ``classroom``
            preset's).
        method: ``"metric"`` (cosine retrieval) or ``"protonet"`` (squared Euclidean).
        k_shot: shapes the protonet's training episodes (unused by ``"metric"``).

    Returns:
        ``{"recall@1": .., "map@r": ..}``.
    """
    distance = check_study_method(method)[1]
    train_ids = [int(c) for c in split.train_classes]
    test_ids = [int(c) for c in split.test_classes]
    config = get_preset("classroom").config if config is None else config
    train = data.select_classes(train_ids, name=f"{data.name}[train]")
    test = data.select_classes(test_ids, name=f"{data.name}[test]")
    n_eval = test.n_classes if max_test_classes is None else check_int(
        "max_test_classes", max_test_classes, 2)
    source = train_source(str(get_method(method).source_kind), train, config,
                          n_way=min(test.n_classes, 5), k_shot=check_int("k_shot", k_shot, 1),
                          seed=check_seed(seed))
    subsets = class_draws(test.n_classes, n_eval, check_int("eval_draws", eval_draws, 1), seed)
    r1, mapr = drawn_retrieval(embed(source.model, test.x), test.y, subsets, distance)
    return {"recall@1": r1, "map@r": mapr}


def generalisation_study(data: Dataset, ladder: Sequence[ShiftSplit], *, method: str = "metric",
                         k_shot: int = 5, seeds: Sequence[int] | int = (0,),
                         preset: str = "classroom", max_test_classes: int | None = None,
                         eval_draws: int = 10, few_shot: bool = True,
                         store: ResultsStore | str | None = None, force: bool = False,
                         progress: bool = True, **config_overrides: Any) -> pd.DataFrame:
    """Zero-shot and few-shot Recall@1 / MAP@R on every rung of ``ladder`` (ooDML,
    Milbich, Roth et al. 2021, section 4: zero-shot retrieval and few-shot adaptation along
    splits of growing Fréchet distance).

    Args:
        data: the dataset the ladder was built on.
        ladder: :class:`~dml_kit.data.ShiftSplit` rungs (``shift_splits(data, ...)``).
        method: ``"metric"`` (histogram loss by default, cosine retrieval) or
            ``"protonet"`` (squared Euclidean retrieval).
        k_shot: labelled images per test class for the few-shot setting (ooDML: 2 or 5);
            the support holds ``k_shot`` images of *every* test class of the rung, the
            rest of each test class are the queries of both settings.
        seeds: seeds (an int ``s`` means ``range(s)``); each trains its own model.
        preset: training lengths from :data:`dml_kit.experiments.PRESETS`;
            ``config_overrides`` change single :class:`~dml_kit.methods.MethodConfig`
            fields (``loss="triplet"``, ``regularizer="sec"``, ``source_epochs=2`` ...).
        max_test_classes: classes per scoring draw; ``None``: the smallest test side of
            the ladder, so every rung is scored at the same chance level.
        eval_draws: scoring draws of ``max_test_classes`` test classes per (rung, seed);
            the scores are their means (:func:`drawn_retrieval`).
        few_shot: also adapt and score the few-shot setting (``False``: zero-shot only).
        store: a :class:`ResultsStore`, a path, or ``None`` (no store: always train).
        force: retrain rungs already in the store.

    Returns:
        A tidy DataFrame, one row per (rung, seed, setting), columns :data:`COLUMNS`
        (``n_test_classes``: classes per scoring draw). :func:`ladder_table` summarises
        it with intervals over seeds.
    """
    adapted, distance = check_study_method(method)
    if not ladder:
        raise ValueError("ladder is empty: build one with dml_kit.data.shift_splits(data)")
    seeds = tuple(range(check_int("seeds", seeds, 1))) if isinstance(seeds, int) else \
        tuple(check_seed(s) for s in seeds)
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    smallest = min(len(split.test_classes) for split in ladder)
    max_test_classes = smallest if max_test_classes is None else check_int(
        "max_test_classes", max_test_classes, 2)
    eval_draws = check_int("eval_draws", eval_draws, 1)
    settings = SETTINGS if few_shot else SETTINGS[:1]
    config = get_preset(preset).config.replace(**config_overrides)
    if method == "metric":
        config = config.replace(classify="1nn")
    if isinstance(store, str):
        store = ResultsStore(store)
    fingerprint = dataset_fingerprint(data)
    rows: list[dict[str, Any]] = []
    bar = tqdm(total=len(ladder) * len(seeds), desc="shift study", disable=not progress)
    for index, split in enumerate(ladder):
        train, test = split.datasets(data)
        min_size = test.min_class_size
        check_int("k_shot", k_shot, 1, min_size - 1,
                  hint=f"the smallest test class has {min_size} examples; leave one query")
        for seed in seeds:
            hashes = {s: _study_hash(data, fingerprint, split, method, s, k_shot, seed,
                                     max_test_classes, eval_draws, config) for s in settings}
            if store is not None and not force and all(h in store for h in hashes.values()):
                rows += [_row(_stored(store, h)) for h in hashes.values()]
                bar.update()
                continue
            task = kshot_task(test, test.n_classes, k_shot, seed=seed)
            subsets = class_draws(test.n_classes, max_test_classes, eval_draws, seed)
            start = time.perf_counter()
            source = train_source(str(get_method(method).source_kind), train, config,
                                  n_way=min(test.n_classes, 5), k_shot=k_shot, seed=seed)
            models: dict[str, Any] = {"zero-shot": source.model}
            seconds = {"zero-shot": time.perf_counter() - start}
            if few_shot:
                start = time.perf_counter()
                models["few-shot"] = run_method(adapted, task, source, config, seed=seed).model
                seconds["few-shot"] = seconds["zero-shot"] + time.perf_counter() - start
            for setting, model in models.items():
                r1, mapr = drawn_retrieval(embed(model, task.query_x), task.query_y, subsets,
                                           distance)
                metrics: dict[str, Any] = {"split": index, "distance": split.distance,
                                           "setting": setting,
                           "recall@1": r1, "map@r": mapr, "train_classes": train.n_classes,
                           "test_classes": test.n_classes, "eval_draws": len(subsets)}
                record = RunRecord(
                    dataset=data.name, method=method if setting == "zero-shot" else adapted,
                    k=k_shot if setting == "few-shot" else 0,
                    n=min(max_test_classes, test.n_classes),
                    seed=seed, accuracy=metrics["recall@1"], config_hash=hashes[setting],
                    kind=RECORD_KIND, metric=RECORD_METRIC,
                    loss=config.loss if method == "metric" else "prototypical",
                    regularizer=config.regularizer,
                    regularizer_weight=config.regularizer_weight, metrics=metrics,
                    notes=f"{STUDY_NOTE}, rung {index}", train_seconds=seconds[setting],
                    preset=preset, source=f"shift split {index} (FD {split.distance:.3g})",
                    config=json.dumps(config.hash_dict(), sort_keys=True, default=str),
                    version=__version__, created=time.time())
                if store is not None:
                    store.add(record, replace=True)
                rows.append(_row(record))
            bar.update()
    bar.close()
    return pd.DataFrame(rows, columns=COLUMNS)


# ---- summaries: means with 95% intervals over seeds, paired verdicts ---------------------
def _by_seed(frame: pd.DataFrame, setting: str, value: str) -> pd.DataFrame:
    """``value`` of ``setting`` as a (seed x split) table, seeds that have every rung."""
    part = frame[frame["setting"] == setting]
    if part.empty:
        raise ValueError(f"the study table has no {setting!r} rows")
    return part.pivot_table(index="seed", columns="split", values=value).dropna()


def ladder_table(frame: pd.DataFrame, value: str = "recall@1") -> pd.DataFrame:
    """One row per rung: ``split``, ``distance``, ``train_classes``, ``n_test_classes``,
    ``seeds``, and for ``zero-shot``, ``few-shot`` and ``gain`` (few-shot minus zero-shot,
    paired by seed) the mean with its 95% interval over seeds
    (:func:`dml_kit.stats.mean_ci`: ``mean +- t_{0.975, n-1} s / sqrt(n)``) as text, and
    as numbers in ``<name>_mean``, ``<name>_low``, ``<name>_high`` (``name`` one of
    ``zero_shot``, ``few_shot``, ``gain``). Without few-shot rows only ``zero-shot``."""
    if frame.empty:
        raise ValueError("the study table is empty")
    rungs = frame.groupby("split").agg(distance=("distance", "first"),
                                       train_classes=("train_classes", "first"),
                                       n_test_classes=("n_test_classes", "first"))
    wide = {s: _by_seed(frame, s, value) for s in SETTINGS if (frame["setting"] == s).any()}
    if "few-shot" in wide:
        zero, few = wide["zero-shot"], wide["few-shot"]
        seeds = zero.index.intersection(few.index)
        wide["gain"] = few.loc[seeds] - zero.loc[seeds]
    rows = []
    for split, rung in rungs.iterrows():
        row: dict[str, Any] = {"split": int(split), **rung.to_dict(),
                               "seeds": len(wide["zero-shot"])}
        for name, table in wide.items():
            est = stats.mean_ci(table[split].to_numpy(), name=f"{name} {value} of rung {split}")
            key = name.replace("-", "_")
            row.update({name: est.format(), f"{key}_mean": est.mean, f"{key}_low": est.low,
                        f"{key}_high": est.high})
        rows.append(row)
    return pd.DataFrame(rows)


@dataclass(frozen=True)
class ShiftVerdicts:
    """ooDML's observations checked on a study table (:func:`shift_verdicts`).

    Attributes:
        spearman: Spearman correlation of rung distance and mean zero-shot ``value``.
        falls: zero-shot ``value`` on the easiest rung minus the hardest (paired by seed)
            > 0: "zero-shot retrieval falls as the shift grows".
        steps: the same for every pair of neighbouring rungs (rung i minus rung i + 1).
        gains: per rung, few-shot minus zero-shot > 0: "adaptation raises the score".
        harder_gain: the gain on the hardest rung minus the gain on the easiest > 0:
            "adaptation recovers more on the hardest split".
        gap: zero-shot on the easiest rung minus few-shot on the hardest > 0:
            "adaptation does not close the gap to the easy split".
    """

    spearman: float
    falls: stats.Verdict
    steps: list[stats.Verdict]
    gains: list[stats.Verdict] | None = None
    harder_gain: stats.Verdict | None = None
    gap: stats.Verdict | None = None


def shift_verdicts(frame: pd.DataFrame, value: str = "recall@1") -> ShiftVerdicts:
    """Check ooDML's findings on a :func:`generalisation_study` table, each by a paired
    comparison over seeds (:func:`dml_kit.stats.compare`: the t-interval of the per-seed
    differences against 0) and the Spearman correlation of distance with the per-rung
    mean zero-shot ``value`` (needs >= 3 rungs). Few-shot fields are ``None`` without
    few-shot rows."""
    zero = _by_seed(frame, "zero-shot", value)
    cols = list(zero.columns)
    if len(cols) < 3:
        raise ValueError(f"the study has {len(cols)} rungs; the trend needs at least 3")
    distance = frame.groupby("split")["distance"].first().loc[cols]
    rho = stats.spearman(distance.to_numpy(), zero.mean().to_numpy())
    first, last = cols[0], cols[-1]
    falls = stats.compare(zero[first], zero[last])
    steps = [stats.compare(zero[a], zero[b]) for a, b in zip(cols, cols[1:], strict=False)]
    if not (frame["setting"] == "few-shot").any():
        return ShiftVerdicts(rho, falls, steps)
    few = _by_seed(frame, "few-shot", value)
    seeds = zero.index.intersection(few.index)
    zero, few = zero.loc[seeds], few.loc[seeds]
    gain = few - zero
    return ShiftVerdicts(rho, falls, steps,
                         gains=[stats.compare(few[c], zero[c]) for c in cols],
                         harder_gain=stats.compare(gain[last], gain[first]),
                         gap=stats.compare(zero[first], few[last]))


@dataclass(frozen=True)
class CountControl:
    """The class-count confound measured (:func:`count_control`).

    Attributes:
        count_effect: zero-shot ``value`` on the easiest rung minus the control (same test
            classes, training classes cut to the hardest rung's count), paired by seed:
            what fewer training classes alone cost.
        shift_effect: the control minus the hardest rung (the same number of training
            classes, test classes further away): what the harder test classes cost.
    """

    count_effect: stats.Verdict
    shift_effect: stats.Verdict


def count_control(study: pd.DataFrame, control: pd.DataFrame,
                  value: str = "recall@1") -> CountControl:
    """Separate "fewer training classes" from "harder test classes" along a ladder:
    ``study`` is a :func:`generalisation_study` table, ``control`` the zero-shot table of
    the control split (:func:`dml_kit.data.shift.fewer_train_classes` of rung 0, cut to
    the last rung's count) with the same seeds and scoring. Both effects are paired
    differences over seeds with 95% t-intervals (:func:`dml_kit.stats.compare`)."""
    zero = _by_seed(study, "zero-shot", value)
    ctrl = _by_seed(control, "zero-shot", value)
    if ctrl.shape[1] != 1:
        raise ValueError(f"control must hold one split, got {ctrl.shape[1]}")
    seeds = zero.index.intersection(ctrl.index)
    if seeds.empty:
        raise ValueError("the study and the control share no seed")
    zero, c = zero.loc[seeds], ctrl.loc[seeds].iloc[:, 0]
    first, last = zero.columns[0], zero.columns[-1]
    return CountControl(count_effect=stats.compare(zero[first], c),
                        shift_effect=stats.compare(c, zero[last]))
