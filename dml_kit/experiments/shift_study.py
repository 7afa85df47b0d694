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

ooDML fine-tunes only the last layer with the margin loss for 1,000 iterations on
ResNet-50 features; the kit adapts the whole (small) Conv-4 with the method's own loss,
as Adapted Deep Embeddings does. Every (rung, seed, setting) is one :class:`RunRecord` in
the results store, keyed by a hash of the split's classes, the settings, the data's
fingerprint and the recipe version, so a rerun reads the store instead of retraining.
The grid runner's cells are (method, k, n, seed) over one domain split, so the study
drives the methods directly, not ``run_grid``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from dml_kit import __version__
from dml_kit._validation import check_choice, check_int, check_seed
from dml_kit.data.core import Dataset
from dml_kit.data.shift import ShiftSplit
from dml_kit.data.tasks import kshot_task
from dml_kit.experiments.config import get_preset
from dml_kit.experiments.grid import dataset_fingerprint
from dml_kit.experiments.store import ResultsStore, RunRecord
from dml_kit.methods import RECIPE_VERSION, train_source
from dml_kit.methods import get as get_method
from dml_kit.methods import run as run_method
from dml_kit.metrics import embed, map_at_r, recall_at_k

STUDY_METHODS = {"metric": ("adapted_metric", "cosine"),
                 "protonet": ("adapted_protonet", "sqeuclidean")}
SETTINGS = ("zero-shot", "few-shot")
#: how a study record's ``notes`` begin (the grid report leaves these records out)
STUDY_NOTE = "shift study"
COLUMNS = ["split", "distance", "seed", "setting", "method", "k", "n_test_classes",
           "recall@1", "map@r", "train_classes", "seconds"]


def _study_hash(data: Dataset, fingerprint: str, split: ShiftSplit, method: str, setting: str,
                k_shot: int, seed: int, max_test_classes: int, config: Any) -> str:
    payload = {"study": "shift-v1", "recipe": RECIPE_VERSION, "dataset": data.name,
               "data": fingerprint, "n": len(data),
               "train": list(split.train_classes), "test": list(split.test_classes),
               "method": method, "setting": setting, "k": k_shot, "seed": seed,
               "max_test_classes": max_test_classes, "config": config.hash_dict()}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _row(record: RunRecord) -> dict[str, Any]:
    m = record.metrics
    return {"split": int(m["split"]), "distance": m["distance"], "seed": record.seed,
            "setting": m["setting"], "method": record.method, "k": record.k,
            "n_test_classes": record.n, "recall@1": m["recall@1"], "map@r": m["map@r"],
            "train_classes": int(m["train_classes"]), "seconds": record.train_seconds}


def generalisation_study(data: Dataset, ladder: Sequence[ShiftSplit], *, method: str = "metric",
                         k_shot: int = 5, seeds: Sequence[int] | int = (0,),
                         preset: str = "classroom", max_test_classes: int = 100,
                         store: ResultsStore | str | None = None, force: bool = False,
                         progress: bool = True, **config_overrides: Any) -> pd.DataFrame:
    """Zero-shot and few-shot Recall@1 / MAP@R on every rung of ``ladder``.

    Args:
        data: the dataset the ladder was built on.
        ladder: :class:`~dml_kit.data.ShiftSplit` rungs (``shift_splits(data, ...)``).
        method: ``"metric"`` (histogram loss by default, cosine retrieval) or
            ``"protonet"`` (squared Euclidean retrieval).
        k_shot: labelled images per test class for the few-shot setting (ooDML: 2 or 5);
            the rest of each test class are the queries.
        seeds: seeds (an int ``s`` means ``range(s)``).
        preset: training lengths from :data:`dml_kit.experiments.PRESETS`;
            ``config_overrides`` change single :class:`~dml_kit.methods.MethodConfig`
            fields (``loss="triplet"``, ``regularizer="sec"``, ``source_epochs=2`` ...).
        max_test_classes: evaluate on at most this many test classes (a seeded random
            subset) so that retrieval stays O(Q^2) small on a laptop.
        store: a :class:`ResultsStore`, a path, or ``None`` (no store: always train).
        force: retrain rungs already in the store.

    Returns:
        A tidy DataFrame, one row per (rung, seed, setting), columns :data:`COLUMNS`.
    """
    check_choice("method", method, STUDY_METHODS)
    adapted, distance = STUDY_METHODS[method]
    if not ladder:
        raise ValueError("ladder is empty: build one with dml_kit.data.shift_splits(data)")
    seeds = tuple(range(check_int("seeds", seeds, 1))) if isinstance(seeds, int) else \
        tuple(check_seed(s) for s in seeds)
    if not seeds:
        raise ValueError("seeds must name at least one seed")
    max_test_classes = check_int("max_test_classes", max_test_classes, 2)
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
                                     max_test_classes, config) for s in SETTINGS}
            if store is not None and not force and all(h in store for h in hashes.values()):
                rows += [_row(store.get(h)) for h in hashes.values()]
                bar.update()
                continue
            g = torch.Generator().manual_seed(seed)
            keep = torch.randperm(test.n_classes, generator=g)[:max_test_classes].tolist()
            evaluated = test.select_classes(sorted(keep), name=f"{data.name}[test]")
            task = kshot_task(evaluated, evaluated.n_classes, k_shot, seed=seed)
            start = time.perf_counter()
            source = train_source(get_method(method).source_kind, train, config,
                                  n_way=min(evaluated.n_classes, 5), k_shot=k_shot, seed=seed)
            models = {"zero-shot": source.model}
            seconds = {"zero-shot": time.perf_counter() - start}
            start = time.perf_counter()
            models["few-shot"] = run_method(adapted, task, source, config, seed=seed).model
            seconds["few-shot"] = seconds["zero-shot"] + time.perf_counter() - start
            for setting, model in models.items():
                emb = embed(model, task.query_x)
                metrics = {"split": index, "distance": split.distance, "setting": setting,
                           "recall@1": recall_at_k(emb, task.query_y, (1,), distance)[1],
                           "map@r": map_at_r(emb, task.query_y, distance),
                           "train_classes": train.n_classes}
                record = RunRecord(
                    dataset=data.name, method=method if setting == "zero-shot" else adapted,
                    k=k_shot if setting == "few-shot" else 0, n=evaluated.n_classes,
                    seed=seed, accuracy=metrics["recall@1"], config_hash=hashes[setting],
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
