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

Few-shot adaptation comes in two kinds (``adaptation=``, :data:`ADAPTATIONS`):
``"full"`` (the default of :func:`generalisation_study`, as before) fine-tunes the whole
(small) Conv-4 with the method's own loss, early-stopped on the support, as Adapted Deep
Embeddings does (:func:`dml_kit.methods.run` of the adapted child); ``"last_layer"`` is
ooDML's: only the last linear layer is trained, with the margin loss (Wu et al. 2017),
Adam, a fixed number of full-batch steps (:data:`LAST_LAYER_STEPS`) on the frozen
penultimate features of the support (batch norm frozen too) - :func:`adapt_last_layer`.
Several shots (``k_shot=(2, 5)``) share one query set: the support of ``k`` shots is the
first ``k`` images per class of the largest support, so every setting of a (rung, seed)
is scored on the same queries. :func:`oodml_study` runs the full shape (>= 3 seeds, two
methods, 2 and 5 shots, both adaptations) as a named setting (:data:`SHIFT_SETTINGS`:
``classroom`` on glyphs, ``omniglot``), and :func:`oodml_table` / :func:`oodml_verdicts`
summarise it. Every (rung, seed, setting) is one :class:`RunRecord` in
the results store, keyed by a hash of the split's classes, the settings, the data's
fingerprint and the recipe version, so a rerun reads the store instead of retraining.
The grid runner's cells are (method, k, n, seed) over one domain split, so the study
drives the methods directly, not ``run_grid``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from dml_kit import __version__, stats
from dml_kit import losses as loss_registry
from dml_kit._validation import check_choice, check_int, check_seed
from dml_kit.data.core import Dataset
from dml_kit.data.shift import ShiftSplit, shift_splits
from dml_kit.data.tasks import KShotTask, kshot_task
from dml_kit.experiments.config import get_preset
from dml_kit.experiments.grid import dataset_fingerprint
from dml_kit.experiments.store import (
    RECORD_KINDS,
    ResultsStore,
    RunRecord,
    default_path,
    stable_hash,
)
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
           "recall@1", "map@r", "train_classes", "seconds", "loss", "adaptation"]
#: few-shot adaptation kinds: the whole network with the method's loss (the default), or
#: ooDML's last linear layer only with the margin loss
ADAPTATIONS = ("full", "last_layer")
#: full-batch Adam steps of the last-layer adaptation (ooDML: 1,000 or 1,500 iterations
#: of a ResNet-50's last layer; the kit's last layer is a 16 -> 64 linear map)
LAST_LAYER_STEPS = 150


def _support_subset(task: KShotTask, k_shot: int) -> KShotTask:
    """``task`` with only the first ``k_shot`` support images of each class (the
    validation part follows the support when it is the support, ``n_val == 0``); the
    queries are unchanged, so settings with different shots score the same queries."""
    if k_shot == task.k_shot:
        return task
    keep = torch.cat([torch.nonzero(task.support_y == c).flatten()[:k_shot]
                      for c in range(task.n_way)])
    changes: dict[str, Any] = {"support_x": task.support_x[keep],
                               "support_y": task.support_y[keep], "k_shot": k_shot}
    if len(task.support_idx) == len(task.support_y):
        changes["support_idx"] = task.support_idx[keep]
    if task.n_val == 0:
        changes.update(val_x=changes["support_x"], val_y=changes["support_y"])
        if "support_idx" in changes:
            changes["val_idx"] = changes["support_idx"]
    return dataclasses.replace(task, **changes)


def adapt_last_layer(model: torch.nn.Module, support_x: torch.Tensor, support_y: torch.Tensor,
                     *, steps: int = LAST_LAYER_STEPS, lr: float = 1e-3,
                     seed: int = 0) -> torch.nn.Module:
    """ooDML's few-shot adaptation (Milbich, Roth et al. 2021, section 4): a copy of
    ``model`` whose **last** ``nn.Linear`` alone is trained on the support set with the
    margin loss (Wu et al. 2017, :class:`dml_kit.losses` ``"margin"``:
    ``L = mean (alpha + y_ij (d_ij - beta))_+`` over the batch's pairs, ``d`` the distance
    of L2-normalised embeddings), ``steps`` full-batch Adam steps at ``lr``. The layers
    below are frozen, batch norm included (their output on the support is computed once,
    in eval mode); ``model`` itself is never modified."""
    steps = check_int("steps", steps, 1)
    if support_x.shape[0] != support_y.shape[0] or support_x.shape[0] < 2:
        raise ValueError(f"support_x and support_y must hold the same number (>= 2) of "
                         f"examples, got {support_x.shape[0]} and {support_y.shape[0]}")
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    if not names:
        raise ValueError("model has no nn.Linear layer to adapt")
    adapted = copy.deepcopy(model).eval()
    head = adapted.get_submodule(names[-1])
    assert isinstance(head, torch.nn.Linear)
    captured: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda mod, inp, out: captured.append(inp[0].detach()))
    with torch.no_grad():
        adapted(support_x)
    hook.remove()
    features = captured[0]
    torch.manual_seed(check_seed(seed))
    loss_fn = loss_registry.get("margin")
    params = [*head.parameters(), *loss_fn.parameters()]
    optimizer = torch.optim.Adam(params, lr=lr)
    for _ in range(steps):
        loss = loss_fn(head(features), support_y)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"the last-layer adaptation loss became {float(loss)}; "
                                     f"try a lower lr (lr={lr:g})")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    for p in adapted.parameters():
        p.requires_grad_(False)
    return adapted.eval()


def _study_hash(data: Dataset, fingerprint: str, split: ShiftSplit, method: str, setting: str,
                k_shot: int, seed: int, max_test_classes: int, eval_draws: int,
                config: Any, *, support_of: int | None = None,
                adaptation: str = "full") -> str:
    payload = {"study": "shift-v2", "recipe": RECIPE_VERSION, "dataset": data.name,
               "data": fingerprint, "n": len(data),
               "train": list(split.train_classes), "test": list(split.test_classes),
               "method": method, "setting": setting, "k": k_shot, "seed": seed,
               "max_test_classes": max_test_classes, "eval_draws": eval_draws,
               "config": config.hash_dict()}
    # only when they differ from the single-shot, full-adaptation study (whose records
    # keep their hashes): the queries' shot count and the adaptation kind
    if support_of is not None and support_of != k_shot:
        payload["support_of"] = support_of
    if setting == "few-shot" and adaptation != "full":
        payload["adaptation"] = adaptation
        payload["last_layer_steps"] = LAST_LAYER_STEPS
    return stable_hash(payload)


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
            "train_classes": int(m["train_classes"]), "seconds": record.train_seconds,
            "loss": record.loss,
            "adaptation": m.get("adaptation", "full" if m["setting"] == "few-shot" else "none")}


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


def _units(k_shot: int | Sequence[int], adaptation: str | Sequence[str],
           few_shot: bool) -> tuple[tuple[int, ...], list[tuple[str, int, str]]]:
    """The checked shots and the ``(setting, k, adaptation)`` of every row of a (rung,
    seed): zero-shot first, then each shot count with each adaptation."""
    shots = (k_shot,) if isinstance(k_shot, int) else tuple(dict.fromkeys(k_shot))
    if not shots:
        raise ValueError("k_shot must name at least one number of shots, e.g. (2, 5)")
    for k in shots:
        check_int("k_shot", k, 1)
    adaptations = (adaptation,) if isinstance(adaptation, str) else \
        tuple(dict.fromkeys(adaptation))
    if not adaptations:
        raise ValueError(f"adaptation must name at least one of {', '.join(ADAPTATIONS)}")
    for a in adaptations:
        check_choice("adaptation", a, ADAPTATIONS)
    units = [("zero-shot", 0, "none")]
    if few_shot:
        units += [("few-shot", k, a) for k in shots for a in adaptations]
    return shots, units


def generalisation_study(data: Dataset, ladder: Sequence[ShiftSplit], *, method: str = "metric",
                         k_shot: int | Sequence[int] = 5, seeds: Sequence[int] | int = (0,),
                         preset: str = "classroom", max_test_classes: int | None = None,
                         eval_draws: int = 10, few_shot: bool = True,
                         adaptation: str | Sequence[str] = "full",
                         store: ResultsStore | str | None = None, force: bool = False,
                         progress: bool = True, study_name: str | None = None,
                         **config_overrides: Any) -> pd.DataFrame:
    """Zero-shot and few-shot Recall@1 / MAP@R on every rung of ``ladder`` (ooDML,
    Milbich, Roth et al. 2021, section 4: zero-shot retrieval and few-shot adaptation along
    splits of growing Fréchet distance).

    Args:
        data: the dataset the ladder was built on.
        ladder: :class:`~dml_kit.data.ShiftSplit` rungs (``shift_splits(data, ...)``).
        method: ``"metric"`` (histogram loss by default, cosine retrieval) or
            ``"protonet"`` (squared Euclidean retrieval).
        k_shot: labelled images per test class for the few-shot setting (ooDML: 2 or 5),
            or several (``(2, 5)``); the support holds ``k_shot`` images of *every* test
            class of the rung, the rest of each test class (beyond the largest
            ``k_shot``) are the queries of every setting.
        seeds: seeds (an int ``s`` means ``range(s)``); each trains its own model.
        preset: training lengths from :data:`dml_kit.experiments.PRESETS`;
            ``config_overrides`` change single :class:`~dml_kit.methods.MethodConfig`
            fields (``loss="proxy_anchor"``, ``regularizer="sec"``, ``source_epochs=2`` ...).
        max_test_classes: classes per scoring draw; ``None``: the smallest test side of
            the ladder, so every rung is scored at the same chance level.
        eval_draws: scoring draws of ``max_test_classes`` test classes per (rung, seed);
            the scores are their means (:func:`drawn_retrieval`).
        few_shot: also adapt and score the few-shot setting (``False``: zero-shot only).
        adaptation: ``"full"`` (default: the whole network, the method's loss, the
            adapted child of :func:`dml_kit.methods.run`) and/or ``"last_layer"``
            (ooDML's: :func:`adapt_last_layer`); one name or several.
        store: a :class:`ResultsStore`, a path, or ``None`` (no store: always train).
        force: retrain rungs already in the store.
        study_name: stored as the records' ``preset`` instead of ``preset`` (how
            :func:`stored_oodml_study` finds a named study).

    Returns:
        A tidy DataFrame, one row per (rung, seed, setting, shots, adaptation), columns
        :data:`COLUMNS` (``n_test_classes``: classes per scoring draw; zero-shot rows
        have ``k = 0`` and ``adaptation = "none"``). :func:`ladder_table` summarises
        it with intervals over seeds.
    """
    adapted, distance = check_study_method(method)
    if not ladder:
        raise ValueError("ladder is empty: build one with dml_kit.data.shift_splits(data)")
    seeds = tuple(range(check_int("seeds", seeds, 1))) if isinstance(seeds, int) else \
        tuple(check_seed(s) for s in seeds)
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    shots, units = _units(k_shot, adaptation, few_shot)
    k_max = max(shots)
    smallest = min(len(split.test_classes) for split in ladder)
    max_test_classes = smallest if max_test_classes is None else check_int(
        "max_test_classes", max_test_classes, 2)
    eval_draws = check_int("eval_draws", eval_draws, 1)
    config = get_preset(preset).config.replace(**config_overrides)
    if method == "metric":
        config = config.replace(classify="1nn")
    loss_name = config.loss if method == "metric" else "prototypical"
    if isinstance(store, str):
        store = ResultsStore(store)
    fingerprint = dataset_fingerprint(data)
    rows: list[dict[str, Any]] = []
    bar = tqdm(total=len(ladder) * len(seeds), desc=f"shift study ({loss_name})",
               disable=not progress)
    for index, split in enumerate(ladder):
        train, test = split.datasets(data)
        min_size = test.min_class_size
        check_int("k_shot", k_max, 1, min_size - 1,
                  hint=f"the smallest test class has {min_size} examples; leave one query")
        for seed in seeds:
            hashes = {u: _study_hash(data, fingerprint, split, method, u[0],
                                     k_max if u[0] == "zero-shot" else u[1], seed,
                                     max_test_classes, eval_draws, config, support_of=k_max,
                                     adaptation=u[2]) for u in units}
            if store is not None and not force and all(h in store for h in hashes.values()):
                rows += [_row(_stored(store, h)) for h in hashes.values()]
                bar.update()
                continue
            task = kshot_task(test, test.n_classes, k_max, seed=seed)
            subsets = class_draws(test.n_classes, max_test_classes, eval_draws, seed)
            start = time.perf_counter()
            source = train_source(str(get_method(method).source_kind), train, config,
                                  n_way=min(test.n_classes, 5), k_shot=k_max, seed=seed)
            source_seconds = time.perf_counter() - start
            for unit in units:
                setting, k, how = unit
                start = time.perf_counter()
                model: Any
                if setting == "zero-shot":
                    model = source.model
                elif how == "full":
                    model = run_method(adapted, _support_subset(task, k), source, config,
                                       seed=seed).model
                else:
                    sub = _support_subset(task, k)
                    model = adapt_last_layer(source.model, sub.support_x, sub.support_y,
                                             lr=config.adapt_lr or config.target_lr, seed=seed)
                r1, mapr = drawn_retrieval(embed(model, task.query_x), task.query_y, subsets,
                                           distance)
                metrics: dict[str, Any] = {
                    "split": index, "distance": split.distance, "setting": setting,
                    "recall@1": r1, "map@r": mapr, "train_classes": train.n_classes,
                    "test_classes": test.n_classes, "eval_draws": len(subsets),
                    "adaptation": how, "support_of": k_max}
                record = RunRecord(
                    dataset=data.name, method=method if setting == "zero-shot" else adapted,
                    k=k, n=min(max_test_classes, test.n_classes),
                    seed=seed, accuracy=r1, config_hash=hashes[unit],
                    kind=RECORD_KIND, metric=RECORD_METRIC, loss=loss_name,
                    regularizer=config.regularizer,
                    regularizer_weight=config.regularizer_weight, metrics=metrics,
                    notes=f"{STUDY_NOTE}, rung {index}",
                    train_seconds=source_seconds + time.perf_counter() - start,
                    preset=study_name or preset,
                    source=f"shift split {index} (FD {split.distance:.3g})",
                    config=json.dumps(config.hash_dict(), sort_keys=True, default=str),
                    version=__version__, created=time.time())
                if store is not None:
                    store.add(record, replace=True)
                rows.append(_row(record))
            bar.update()
    bar.close()
    return pd.DataFrame(rows, columns=COLUMNS)


# ---- summaries: means with 95% intervals over seeds, paired verdicts ---------------------
def select(frame: pd.DataFrame, *, loss: str | None = None, k: int | None = None,
           adaptation: str | None = None) -> pd.DataFrame:
    """The rows of one method (``loss``) and one few-shot setting (``k`` shots,
    ``adaptation``) of a study table (zero-shot rows of that method and the few-shot rows
    asked for): what :func:`ladder_table` and :func:`shift_verdicts` summarise. A choice
    left ``None`` must be unambiguous (one value in the table), else ``ValueError``
    names the argument and the values present. Tables without the ``loss`` or
    ``adaptation`` columns (older stores) are taken as they are."""
    out = frame
    for name, column, wanted, rows in (("loss", "loss", loss, None),
                                       ("k", "k", k, "few-shot"),
                                       ("adaptation", "adaptation", adaptation, "few-shot")):
        if column not in out:
            continue
        scope = out if rows is None else out[out["setting"] == rows]
        present = list(dict.fromkeys(scope[column].dropna()))
        if wanted is None:
            if len(present) > 1:
                raise ValueError(f"the study table holds several {name} values "
                                 f"({', '.join(map(str, present))}): pass {name}=")
            continue
        if wanted not in present:
            raise ValueError(f"{name}={wanted!r} is not in the study table; choose one of: "
                             f"{', '.join(map(str, present))}")
        keep = out[column] == wanted
        if rows is not None:
            keep |= out["setting"] != rows
        out = out[keep]
    return out


def _by_seed(frame: pd.DataFrame, setting: str, value: str) -> pd.DataFrame:
    """``value`` of ``setting`` as a (seed x split) table, seeds that have every rung."""
    part = frame[frame["setting"] == setting]
    if part.empty:
        raise ValueError(f"the study table has no {setting!r} rows")
    return part.pivot_table(index="seed", columns="split", values=value).dropna()


def ladder_table(frame: pd.DataFrame, value: str = "recall@1", *, loss: str | None = None,
                 k: int | None = None, adaptation: str | None = None) -> pd.DataFrame:
    """One row per rung: ``split``, ``distance``, ``train_classes``, ``n_test_classes``,
    ``seeds``, and for ``zero-shot``, ``few-shot`` and ``gain`` (few-shot minus zero-shot,
    paired by seed) the mean with its 95% interval over seeds
    (:func:`dml_kit.stats.mean_ci`: ``mean +- t_{0.975, n-1} s / sqrt(n)``) as text, and
    as numbers in ``<name>_mean``, ``<name>_low``, ``<name>_high`` (``name`` one of
    ``zero_shot``, ``few_shot``, ``gain``). Without few-shot rows only ``zero-shot``.
    ``loss``, ``k``, ``adaptation`` pick one method and few-shot setting (:func:`select`)."""
    if frame.empty:
        raise ValueError("the study table is empty")
    frame = select(frame, loss=loss, k=k, adaptation=adaptation)
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
            # shown clipped to the metric's range (a gain: the range of a difference);
            # _low/_high stay the raw t-interval, as the verdicts use it
            bounds = stats.metric_bounds(value)
            est = stats.mean_ci(table[split].to_numpy(), name=f"{name} {value} of rung {split}",
                                bounds=stats.difference_bounds(bounds) if name == "gain"
                                else bounds)
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


def shift_verdicts(frame: pd.DataFrame, value: str = "recall@1", *, loss: str | None = None,
                   k: int | None = None, adaptation: str | None = None) -> ShiftVerdicts:
    """Check ooDML's findings on a :func:`generalisation_study` table, each by a paired
    comparison over seeds (:func:`dml_kit.stats.compare`: the t-interval of the per-seed
    differences against 0) and the Spearman correlation of distance with the per-rung
    mean zero-shot ``value`` (needs >= 3 rungs). Few-shot fields are ``None`` without
    few-shot rows. ``loss``, ``k``, ``adaptation``: as :func:`select`."""
    frame = select(frame, loss=loss, k=k, adaptation=adaptation)
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


# ---- the full study (ooDML's shape) as named settings -----------------------------------
@dataclass(frozen=True)
class ShiftSetting:
    """A named bundle of the full ooDML study (:data:`SHIFT_SETTINGS`).

    Attributes:
        name, description: the setting (stored as the records' ``preset``,
            ``"oodml-<name>"``).
        dataset: the dataset name for :func:`dml_kit.data.load`.
        class_step: keep every ``class_step``-th class of the dataset (1: all).
        n_splits: rungs of the ladder (:func:`dml_kit.data.shift_splits`, seed 0).
        seeds: training seeds (replications).
        losses: the compared methods: losses of the ``metric`` method (``histogram``
            and the proxy loss ``proxy_anchor`` by default).
        k_shots: few-shot shots (ooDML: 2 and 5).
        adaptations: few-shot adaptations (:data:`ADAPTATIONS`).
        preset: training lengths from :data:`dml_kit.experiments.PRESETS`.
        overrides: :class:`~dml_kit.methods.MethodConfig` fields changed from the preset.
        eval_draws: scoring draws per (rung, seed) (:func:`drawn_retrieval`).
    """

    name: str
    description: str
    dataset: str
    class_step: int
    n_splits: int
    seeds: tuple[int, ...]
    losses: tuple[str, ...] = ("histogram", "proxy_anchor")
    k_shots: tuple[int, ...] = (2, 5)
    adaptations: tuple[str, ...] = ("last_layer", "full")
    preset: str = "classroom"
    overrides: tuple[tuple[str, Any], ...] = ()
    eval_draws: int = 10

    def __post_init__(self) -> None:
        check_int("class_step", self.class_step, 1)
        check_int("n_splits", self.n_splits, 3)
        object.__setattr__(self, "seeds", tuple(check_seed(s) for s in self.seeds))
        if not self.seeds or not self.losses:
            raise ValueError("seeds and losses must each name at least one value")
        for loss in self.losses:
            check_choice("losses", loss, loss_registry.available())
        _units(self.k_shots, self.adaptations, True)
        check_int("eval_draws", self.eval_draws, 1)

    def replace(self, **changes: Any) -> ShiftSetting:
        """A copy with fields changed (``seeds=3`` means ``(0, 1, 2)``); other names are
        :class:`~dml_kit.methods.MethodConfig` fields added to ``overrides``."""
        names = {f.name for f in dataclasses.fields(self)}
        own = {k: v for k, v in changes.items() if k in names}
        extra = {k: v for k, v in changes.items() if k not in names}
        if isinstance(own.get("seeds"), int):
            own["seeds"] = tuple(range(check_int("seeds", own["seeds"], 1)))
        if extra:
            get_preset(self.preset).config.replace(**extra)   # unknown names raise here
            own["overrides"] = tuple({**dict(self.overrides), **extra}.items())
        return dataclasses.replace(self, **own)


SHIFT_SETTINGS: dict[str, ShiftSetting] = {s.name: s for s in (
    ShiftSetting(
        name="classroom",
        description="glyphs, every 8th character (160 classes), 4 rungs, histogram loss and "
                    "Proxy-Anchor, 3 seeds, zero-shot and 2/5-shot (last layer and full "
                    "fine-tuning): 4 min 15 s measured on one core of a 2-core machine (load "
                    "average about 2)",
        dataset="glyphs", class_step=8, n_splits=4, seeds=(0, 1, 2),
        overrides=(("target_epochs", 5),)),
    ShiftSetting(
        name="omniglot",
        description="Omniglot (28 px), every 4th character (406 classes), 5 rungs, histogram "
                    "loss and Proxy-Anchor, 3 seeds, zero-shot and 2/5-shot: 7 min 34 s "
                    "measured on one core of a 2-core machine (load average about 2)",
        dataset="omniglot", class_step=4, n_splits=5, seeds=(0, 1, 2),
        overrides=(("target_epochs", 5),)),
)}


def get_shift_setting(setting: str | ShiftSetting) -> ShiftSetting:
    """The setting named ``setting`` (a key of :data:`SHIFT_SETTINGS`), or itself."""
    if isinstance(setting, ShiftSetting):
        return setting
    return SHIFT_SETTINGS[check_choice("setting", setting, SHIFT_SETTINGS)]


def study_data(setting: str | ShiftSetting, data: Dataset | None = None,
               data_path: str | None = None) -> tuple[Dataset, list[ShiftSplit]]:
    """The setting's dataset (every ``class_step``-th class of ``data``, or of the loaded
    dataset, ``path=data_path`` for real files) and its ladder."""
    setting = get_shift_setting(setting)
    if data is None:
        from dml_kit.data import load  # noqa: PLC0415 (the registry of real datasets)

        options: dict[str, Any] = {"path": data_path} if data_path else {}
        data = load(setting.dataset, **options)
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be a dml_kit Dataset or None, got {type(data).__name__}")
    if setting.class_step > 1:
        data = data.select_classes(range(0, data.n_classes, setting.class_step),
                                   name=f"{data.name}-every{setting.class_step}")
    return data, shift_splits(data, n_splits=setting.n_splits, seed=0)


def oodml_study(data: Dataset | None = None, setting: str | ShiftSetting = "classroom", *,
                store: ResultsStore | str | None = None, force: bool = False,
                progress: bool = True, data_path: str | None = None,
                ladder: Sequence[ShiftSplit] | None = None, **overrides: Any) -> pd.DataFrame:
    """ooDML at full shape (Milbich, Roth et al. 2021): for every method of the setting
    (losses of the ``metric`` method), every rung of the ladder and every seed, zero-shot
    and few-shot Recall@1 / MAP@R (each shot count, each adaptation) -
    :func:`generalisation_study` per method, records named ``"oodml-<setting>"``.

    Args:
        data: the dataset (``None``: the setting's, ``path=data_path``); the setting's
            ``class_step`` is applied to it and the ladder built (:func:`study_data`)
            unless ``ladder`` is given (then ``data`` is used as it is).
        setting: a name of :data:`SHIFT_SETTINGS` or a :class:`ShiftSetting`;
            ``overrides`` change its fields (``seeds=2``) or config fields.
        store, force, progress: as :func:`generalisation_study`.

    Returns:
        The rows of every method, columns :data:`COLUMNS` (:func:`oodml_table`,
        :func:`oodml_verdicts` summarise them).
    """
    setting = get_shift_setting(setting)
    if overrides:
        setting = setting.replace(**overrides)
    if ladder is None:
        data, ladder = study_data(setting, data, data_path)
    elif data is None:
        raise ValueError("ladder was given without data: pass the dataset it was built on")
    if isinstance(store, str):
        store = ResultsStore(store)
    frames = [generalisation_study(
        data, ladder, method="metric", k_shot=setting.k_shots, seeds=setting.seeds,
        preset=setting.preset, eval_draws=setting.eval_draws,
        adaptation=setting.adaptations, store=store, force=force, progress=progress,
        study_name=f"oodml-{setting.name}", **{**dict(setting.overrides), "loss": loss})
        for loss in setting.losses]
    return pd.concat(frames, ignore_index=True)


def stored_oodml_study(store: ResultsStore | str, setting: str) -> pd.DataFrame:
    """The rows :func:`oodml_study` stored for ``setting`` (the newest record per unit;
    empty when none)."""
    if isinstance(store, str):
        store = ResultsStore(store, create=False)
    frame = pd.DataFrame([_row(r) for r in store.records(kind=RECORD_KIND,
                                                         preset=f"oodml-{setting}")],
                         columns=COLUMNS)
    return frame.drop_duplicates(["split", "seed", "setting", "k", "loss", "adaptation"],
                                 keep="last").reset_index(drop=True)


def _few_settings(frame: pd.DataFrame) -> list[tuple[int, str]]:
    few = frame[frame["setting"] == "few-shot"]
    return sorted({(int(k), str(a)) for k, a in zip(few["k"], few["adaptation"],
                                                    strict=True)})


def oodml_table(frame: pd.DataFrame, value: str = "recall@1") -> pd.DataFrame:
    """One row per (method, rung): ``loss``, ``split``, ``distance``, ``train_classes``,
    ``seeds``, ``zero-shot`` and one column per few-shot setting
    (``"<k>-shot <adaptation>"``), each ``mean [95% t-interval over seeds]``
    (:func:`ladder_table`), and ``gain <k>-shot <adaptation>`` (few-shot minus zero-shot,
    paired by seed)."""
    if frame.empty:
        raise ValueError("the study table is empty")
    out = []
    for loss in dict.fromkeys(frame["loss"]):
        part = frame[frame["loss"] == loss]
        base = ladder_table(part, value, loss=loss, k=None, adaptation=None) \
            if not _few_settings(part) else None
        rows: pd.DataFrame | None = base
        for k, how in _few_settings(part):
            table = ladder_table(part, value, loss=loss, k=k, adaptation=how)
            if rows is None:
                rows = table[["split", "distance", "train_classes", "n_test_classes", "seeds",
                              "zero-shot"]].copy()
            rows[f"{k}-shot {how}"] = table["few-shot"].to_numpy()
            rows[f"gain {k}-shot {how}"] = table["gain"].to_numpy()
        assert rows is not None
        rows.insert(0, "loss", loss)
        out.append(rows)
    return pd.concat(out, ignore_index=True)


@dataclass(frozen=True)
class RankingChange:
    """Whether two methods swap places along the ladder: ``per_rung`` holds the paired
    verdict of "``a`` beats ``b``" on each rung; ``label`` is :data:`stats.HOLDS` when
    ``a`` is resolved ahead on some rung and ``b`` on another (ahead: the interval of the
    paired difference lies above 0), :data:`stats.FAILS` when the same one is resolved
    ahead on every rung, else not resolved; ``interaction`` is
    "(a - b) on the easiest rung minus on the hardest > 0" (``a`` loses its lead)."""

    a: str
    b: str
    per_rung: list[stats.Verdict]
    label: str
    interaction: stats.Verdict


@dataclass(frozen=True)
class OodmlVerdicts:
    """ooDML's observations on an :func:`oodml_study` table.

    Attributes:
        per_method: per loss, :func:`shift_verdicts` of each few-shot setting
            (``{(k, adaptation): ShiftVerdicts}``).
        falls: "zero-shot Recall@1 falls from the easiest rung to the hardest", per loss
            and, in ``falls_all``, for every method (:func:`dml_kit.stats.combine`).
        ranking: :class:`RankingChange` per pair of methods.
        harder_gain: "few-shot adaptation recovers more on the hardest split than on the
            easiest" per (loss, k, adaptation); ``harder_gain_all`` combines them.
    """

    per_method: dict[str, dict[tuple[int, str], ShiftVerdicts]]
    falls: dict[str, stats.Verdict]
    falls_all: str
    ranking: list[RankingChange]
    harder_gain: dict[tuple[str, int, str], stats.Verdict]
    harder_gain_all: str

    def lines(self) -> list[str]:
        """The verdicts as printable lines, with their numbers."""
        out = [f"zero-shot R@1 falls (easiest - hardest rung), {loss}: {v.text()}"
               for loss, v in self.falls.items()]
        out.append(f"zero-shot R@1 falls for every method: {self.falls_all}")
        for r in self.ranking:
            rungs = "; ".join(f"rung {i}: {v.label}" for i, v in enumerate(r.per_rung))
            out.append(f"ranking of {r.a} vs {r.b} changes along the ladder: {r.label} "
                       f"({r.a} ahead? {rungs})")
            out.append(f"  {r.a} - {r.b}, easiest minus hardest rung: {r.interaction.text()}")
        out += [f"few-shot gain larger on the hardest rung, {loss} {k}-shot {how}: {v.text()}"
                for (loss, k, how), v in self.harder_gain.items()]
        out.append(f"few-shot gain larger on the hardest rung, every setting: "
                   f"{self.harder_gain_all}")
        return out


def ranking_change(frame: pd.DataFrame, a: str, b: str,
                   value: str = "recall@1") -> RankingChange:
    """Do methods (losses) ``a`` and ``b`` swap places along the ladder (ooDML: "the
    ranking of methods changes with the shift")? Per rung the paired difference of their
    zero-shot ``value`` over seeds (:func:`dml_kit.stats.compare`); see
    :class:`RankingChange` for the rule."""
    zero = frame[frame["setting"] == "zero-shot"]
    za = _by_seed(select(zero, loss=a), "zero-shot", value)
    zb = _by_seed(select(zero, loss=b), "zero-shot", value)
    seeds = za.index.intersection(zb.index)
    cols = [c for c in za.columns if c in zb.columns]
    if seeds.empty or len(cols) < 2:
        raise ValueError(f"{a!r} and {b!r} share {len(seeds)} seeds and {len(cols)} rungs; "
                         "need at least 1 and 2")
    za, zb = za.loc[seeds, cols], zb.loc[seeds, cols]
    per_rung = [stats.compare(za[c], zb[c]) for c in cols]
    # "ahead" is a resolved lead (a tie in every seed is nobody's lead)
    a_ahead = [v.label == stats.HOLDS for v in per_rung]
    b_ahead = [stats.compare(zb[c], za[c]).label == stats.HOLDS for c in cols]
    if any(a_ahead) and any(b_ahead):
        label = stats.HOLDS
    elif all(a_ahead) or all(b_ahead):
        label = stats.FAILS
    else:
        label = stats.UNRESOLVED
    diff = za - zb
    return RankingChange(a, b, per_rung, label,
                         stats.compare(diff[cols[0]], diff[cols[-1]]))


def oodml_verdicts(frame: pd.DataFrame, value: str = "recall@1") -> OodmlVerdicts:
    """ooDML's three observations checked on an :func:`oodml_study` table, each from
    paired differences over seeds (:mod:`dml_kit.stats`): zero-shot ``value`` falls as the
    shift grows (:func:`shift_verdicts` per method), the ranking of methods can change
    along the ladder (:func:`ranking_change` per pair), and few-shot adaptation recovers
    more on the harder splits (gain on the hardest rung minus on the easiest > 0, per
    method, shots and adaptation)."""
    losses = list(dict.fromkeys(frame["loss"]))
    per_method: dict[str, dict[tuple[int, str], ShiftVerdicts]] = {}
    for loss in losses:
        part = frame[frame["loss"] == loss]
        settings = _few_settings(part)
        if not settings:
            per_method[loss] = {(0, "none"): shift_verdicts(part, value, loss=loss)}
        else:
            per_method[loss] = {(k, how): shift_verdicts(part, value, loss=loss, k=k,
                                                         adaptation=how)
                                for k, how in settings}
    falls = {loss: next(iter(v.values())).falls for loss, v in per_method.items()}
    harder = {(loss, k, how): v.harder_gain for loss, sv in per_method.items()
              for (k, how), v in sv.items() if v.harder_gain is not None}
    ranking = [ranking_change(frame, a, b, value)
               for i, a in enumerate(losses) for b in losses[i + 1:]]
    return OodmlVerdicts(per_method, falls, stats.combine(list(falls.values())), ranking,
                         harder, stats.combine(list(harder.values())) if harder
                         else stats.UNRESOLVED)


def report_text(frame: pd.DataFrame, value: str = "recall@1") -> str:
    """The full study as text: :func:`oodml_table` and :func:`oodml_verdicts`."""
    with pd.option_context("display.width", 250, "display.max_columns", 30):
        table = oodml_table(frame, value).round(3).to_string(index=False)
    return "\n".join([table, "", *oodml_verdicts(frame, value).lines()])


def stored_or_quick(setting: str | ShiftSetting = "classroom",
                    store: ResultsStore | str | None = None, *,
                    data: Dataset | None = None, ladder: Sequence[ShiftSplit] | None = None,
                    **quick: Any) -> tuple[pd.DataFrame, str]:
    """What a notebook shows: the stored :func:`oodml_study` of ``setting`` when
    ``store`` (default ``data/results.sqlite``) holds every one of its rows, else a quick
    unstored run of the setting changed by ``quick`` (``seeds=2, source_epochs=1, ...``)
    on ``data`` / ``ladder``. Returns ``(frame, note)``; the note says which it is and,
    for a quick run, the command that stores the full study."""
    full = get_shift_setting(setting)
    path = default_path() if store is None else (store.path if isinstance(store, ResultsStore)
                                                 else store)
    per_rung = 1 + len(full.k_shots) * len(full.adaptations)
    expected = len(full.losses) * full.n_splits * len(full.seeds) * per_rung
    found = 0
    if Path(path).is_file():
        frame = stored_oodml_study(ResultsStore(path, create=False), full.name)
        found = len(frame)
        if found >= expected and set(full.losses) <= set(frame["loss"]):
            return frame, f"the stored {full.name} study ({found} rows) from {path}"
    frame = oodml_study(data, full, store=None, progress=False, ladder=ladder, **quick)
    changed = ", ".join(f"{k}={v}" for k, v in quick.items())
    return frame, (f"{path} holds {found} of the {expected} rows of the {full.name} study, "
                   f"so this is a quick run ({changed}); store the full one with: "
                   f"python -m dml_kit shift --setting {full.name}")
