"""The SEC study: every angular loss trained with and without the spherical embedding
constraint, scored by zero-shot retrieval on unseen classes (Zhang, Li & Zhang, "Deep
Metric Learning with Spherical Embedding", NeurIPS 2020; ../shared/PAPERS.md section 3).

Protocol (one call: :func:`sec_study`):

1. **classes**: :func:`sec_split` draws ``train_classes`` and ``test_classes`` disjoint
   classes of the dataset (fixed by the setting's ``data_seed``, as the paper's fixed
   CUB/Cars split), and carves ``val_fraction`` of the *train* classes out as
   validation classes for the SEC weight choice;
2. **SEC weight** per loss: the paper's ``eta`` where ../shared/PAPERS.md gives one
   (:data:`PAPER_WEIGHTS`: 1.0 for the triplet loss, the official README's CUB example);
   otherwise :func:`choose_weight` trains on the train classes *minus* the validation
   classes with each weight of the setting's ``sweep`` and keeps the one with the best
   Recall@1 among the validation classes. It receives only the train-side dataset:
   the test classes cannot leak into the choice;
3. **final runs**: for every loss and seed, the ``metric`` source phase
   (:func:`dml_kit.methods.train_source`) on all train classes, once with
   ``L = L_metric`` and once with ``L = L_metric + eta * L_sec``,
   ``L_sec = 1/B sum_i (||f_i|| - mu)^2`` (``mu`` the detached batch-mean norm,
   :class:`dml_kit.regularizers.SEC`); both share the seed, so they pair up;
4. **scores** on the test classes (all their images, leave-one-out retrieval, cosine):
   Recall@1/2/4, MAP@R, NMI (k-means on the L2-normalised embeddings) and the
   coefficient of variation of the raw embedding norms ``CV = std(||f||) / mean(||f||)``;
   and per epoch of training the norm mean and CV of a held-out probe of train-class
   images (the paper's argument: under a cosine loss norms grow and spread, since the
   gradient of ``cos(f_i, f_j)`` w.r.t. ``f_i`` is ``1/||f_i||`` times a term orthogonal
   to ``f_i``, paper Eq. 1).

Every unit (loss, weight, seed, role) is one :class:`~dml_kit.experiments.RunRecord` of
kind ``"sec_study"`` keyed by a hash of the classes, the settings, the data's fingerprint
and the recipe version: a rerun reads the store instead of training.
:func:`sec_table`, :func:`sec_summary`, :func:`sec_verdicts` and :func:`norm_curves`
turn the tidy frame into the paper's table (means with 95% t-intervals over seeds and
paired gains, :mod:`dml_kit.stats`).
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from dml_kit import __version__, stats
from dml_kit import losses as loss_registry
from dml_kit._lazy import progress_reporting
from dml_kit._validation import check_choice, check_float, check_int, check_seed
from dml_kit.callbacks import HistoryCallback
from dml_kit.data.core import Dataset
from dml_kit.experiments.grid import dataset_fingerprint
from dml_kit.experiments.store import (
    RECORD_KINDS,
    ResultsStore,
    RunRecord,
    default_path,
    stable_hash,
)
from dml_kit.methods import RECIPE_VERSION, train_source
from dml_kit.methods.config import MethodConfig
from dml_kit.metrics import embed, map_at_r, nmi, norm_stats, recall_at_k

if TYPE_CHECKING:
    from dml_kit.viz.progress import Progress

#: the store's record kind of a study row, and what its ``accuracy`` column holds
RECORD_KIND = "sec_study"
RECORD_METRIC = RECORD_KINDS[RECORD_KIND]
#: each loss's parameters in the study (registry names of :mod:`dml_kit.losses`): the
#: triplet loss on cosine distance ``1 - cos`` with margin 0.5 (the official code's margin
#: 1 on the squared distance ``2 - 2 cos`` of normalised embeddings), the SEC paper's
#: normalised N-pair (cosine x 5, no L2 term); the others at their papers' defaults
LOSS_PARAMS: dict[str, dict[str, Any]] = {
    "triplet": {"distance": "cosine", "margin": 0.5},
    "npair": {"normalize": True, "scale": 5.0, "l2_reg": 0.0},
    "multi_similarity": {},
    "normsoftmax": {},
    "cosface": {},
    "arcface": {},
    "proxy_anchor": {},
}
#: SEC weights (eta) the paper gives (../shared/PAPERS.md section 3: eta = 1.0 in the
#: official README's CUB triplet example); the other losses' weights are swept
PAPER_WEIGHTS: dict[str, float] = {"triplet": 1.0}
#: "Recall@1 is not worse with SEC": the gain's interval lies above minus this
NOT_WORSE_MARGIN = 0.01
#: the scores of a unit (columns of the study frame), higher is better except ``norm_cv``
SCORES = ("recall@1", "recall@2", "recall@4", "map@r", "nmi", "norm_mean", "norm_cv")
ROLES = ("sweep", "test")
COLUMNS = ["role", "loss", "sec", "weight", "seed", *SCORES, "epochs", "epoch_norm_mean",
           "epoch_norm_cv", "train_classes", "eval_classes", "seconds"]


@dataclass(frozen=True)
class SecSetting:
    """A named bundle of the study's sizes (:data:`SETTINGS`).

    Attributes:
        name: the setting's name (stored as the records' ``preset``).
        description: one line for the command line and the notebooks.
        dataset: the dataset name for :func:`dml_kit.data.load`.
        train_classes, test_classes: disjoint classes drawn from the dataset.
        val_fraction: share of the train classes held out for the SEC weight sweep.
        seeds: training seeds (replications; each trains its own pair of models).
        losses: registry names of the angular losses (keys of :data:`LOSS_PARAMS`, or
            any loss with its default parameters).
        sweep: SEC weights tried for losses without a paper weight.
        config: the :class:`~dml_kit.methods.MethodConfig` of the source phase.
        data_seed: seed of the class draw.
    """

    name: str
    description: str
    dataset: str
    train_classes: int
    test_classes: int
    val_fraction: float
    seeds: tuple[int, ...]
    losses: tuple[str, ...]
    sweep: tuple[float, ...]
    config: MethodConfig
    data_seed: int = 0

    def __post_init__(self) -> None:
        check_int("train_classes", self.train_classes, 4)
        check_int("test_classes", self.test_classes, 2)
        check_float("val_fraction", self.val_fraction, 0.0, 0.5, low_inclusive=False)
        object.__setattr__(self, "seeds", tuple(check_seed(s) for s in self.seeds))
        if not self.seeds:
            raise ValueError("seeds must name at least one seed")
        if not self.losses:
            raise ValueError("losses must name at least one loss")
        for loss in self.losses:
            check_choice("losses", loss, loss_registry.available())
        if not self.sweep:
            raise ValueError("sweep must hold at least one SEC weight (e.g. (0.1, 1.0))")
        for w in self.sweep:
            check_float("sweep", w, 0.0, low_inclusive=False)
        check_seed(self.data_seed, "data_seed")

    def replace(self, **changes: Any) -> SecSetting:
        """A copy with some fields changed (validated again); ``seeds=3`` means
        ``(0, 1, 2)``; fields of :class:`MethodConfig` (``source_epochs=2`` ...) change
        ``config``; unknown names raise ``ValueError``."""
        names = {f.name for f in dataclasses.fields(self)}
        config_changes = {k: v for k, v in changes.items()
                          if k not in names and k in {f.name for f in
                                                      dataclasses.fields(MethodConfig)}}
        unknown = sorted(set(changes) - names - set(config_changes))
        if unknown:
            raise ValueError(f"unknown setting field(s) {unknown}; choose from: "
                             f"{', '.join(sorted(names))} or a MethodConfig field")
        own = {k: v for k, v in changes.items() if k in names}
        if isinstance(own.get("seeds"), int):
            own["seeds"] = tuple(range(check_int("seeds", own["seeds"], 1)))
        if config_changes:
            own["config"] = own.get("config", self.config).replace(**config_changes)
        return dataclasses.replace(self, **own)


#: the source phase of both settings: the classroom preset's Conv-4 (16 filters, 64-d),
#: a fixed number of epochs (patience = epochs: the paper trains a fixed schedule, and
#: the per-epoch norm curves then have one length)
_CLASSROOM_CONFIG = MethodConfig(
    embedding_dim=64, channels=16, source_epochs=6, source_patience=6, source_lr=2e-3,
    val_fraction=0.15, val_classes=60, batch_classes=16, batch_per_class=6, batch_size=96,
    batches_per_epoch=40)

SETTINGS: dict[str, SecSetting] = {s.name: s for s in (
    SecSetting(
        name="classroom",
        description="glyphs: 100 train / 100 test classes, 7 angular losses with and "
                    "without SEC, 3 seeds, 6 epochs: 4 min 0 s measured on one core of a "
                    "2-core machine (load average about 1)",
        dataset="glyphs", train_classes=100, test_classes=100, val_fraction=0.25,
        seeds=(0, 1, 2), losses=tuple(LOSS_PARAMS), sweep=(0.1, 1.0, 5.0),
        config=_CLASSROOM_CONFIG),
    SecSetting(
        name="omniglot",
        description="Omniglot (28 px): 300 train / 300 test characters, 7 angular losses "
                    "with and without SEC, 3 seeds, 10 epochs: 8 min 35 s measured on one "
                    "core of a 2-core machine (load average about 2)",
        dataset="omniglot", train_classes=300, test_classes=300, val_fraction=0.25,
        seeds=(0, 1, 2), losses=tuple(LOSS_PARAMS), sweep=(0.1, 1.0, 5.0),
        config=_CLASSROOM_CONFIG.replace(source_epochs=10, source_patience=10,
                                         val_fraction=0.2)),
)}


def get_setting(setting: str | SecSetting) -> SecSetting:
    """The setting named ``setting`` (a key of :data:`SETTINGS`), or ``setting`` itself."""
    if isinstance(setting, SecSetting):
        return setting
    return SETTINGS[check_choice("setting", setting, SETTINGS)]


@dataclass(frozen=True)
class SecSplit:
    """The class ids (of the dataset) of a study: ``train`` (the final runs' training
    classes), ``val`` (a subset of ``train``: the sweep scores on them and trains on
    ``train`` minus ``val``) and ``test`` (disjoint from ``train``)."""

    train: tuple[int, ...]
    val: tuple[int, ...]
    test: tuple[int, ...]

    @property
    def fit(self) -> tuple[int, ...]:
        """The sweep's training classes: ``train`` minus ``val``."""
        held = set(self.val)
        return tuple(c for c in self.train if c not in held)


def sec_split(data: Dataset, train_classes: int, test_classes: int, val_fraction: float,
              seed: int = 0) -> SecSplit:
    """Draw ``train_classes + test_classes`` distinct classes of ``data`` (seeded random
    permutation), the first ``train_classes`` for training, the rest for testing, and the
    last ``round(val_fraction * train_classes)`` (at least 2) of the train classes as
    validation classes. Errors name the argument and the number of classes available."""
    n_train = check_int("train_classes", train_classes, 4)
    n_test = check_int("test_classes", test_classes, 2)
    if n_train + n_test > data.n_classes:
        raise ValueError(f"train_classes + test_classes = {n_train + n_test} exceeds the "
                         f"{data.n_classes} classes of {data.name!r}")
    fraction = check_float("val_fraction", val_fraction, 0.0, 0.5, low_inclusive=False)
    n_val = max(2, round(fraction * n_train))
    if n_train - n_val < 2:
        raise ValueError(f"val_fraction={fraction} leaves {n_train - n_val} of "
                         f"{n_train} train classes to fit the sweep on; need at least 2")
    g = torch.Generator().manual_seed(check_seed(seed))
    order = torch.randperm(data.n_classes, generator=g).tolist()
    train, test = order[:n_train], order[n_train:n_train + n_test]
    return SecSplit(tuple(train), tuple(train[n_train - n_val:]), tuple(test))


def loss_config(config: MethodConfig, loss: str, weight: float) -> MethodConfig:
    """``config`` training ``loss`` (with :data:`LOSS_PARAMS`) and, for ``weight > 0``,
    ``L = L_loss + weight * L_sec``; ``weight = 0``: no regularizer."""
    weight = check_float("weight", weight, 0.0)
    return config.replace(loss=loss, loss_params=dict(LOSS_PARAMS.get(loss, {})),
                          regularizer="sec" if weight > 0 else None,
                          regularizer_weight=weight if weight > 0 else 0.0, classify="1nn")


def retrieval_scores(emb: torch.Tensor, labels: torch.Tensor, seed: int = 0, *,
                     with_nmi: bool = True) -> dict[str, float]:
    """The SEC paper's scores of one embedding of unseen classes: Recall@1/2/4 and MAP@R
    (leave-one-out, cosine; :func:`dml_kit.metrics.recall_at_k`, :func:`map_at_r`), NMI of
    k-means on the L2-normalised embeddings (:func:`dml_kit.metrics.nmi`), and the norm
    mean and coefficient of variation ``std(||f||) / mean(||f||)`` of the raw embeddings
    (:func:`dml_kit.metrics.norm_stats`). Non-finite embeddings are refused.
    ``with_nmi=False`` skips the k-means (NaN; the sweep needs only Recall@1)."""
    if not torch.isfinite(emb).all():
        raise FloatingPointError("the embeddings hold NaN or inf: the model diverged")
    ks = [k for k in (1, 2, 4) if k < emb.shape[0]]
    recall = recall_at_k(emb, labels, ks, "cosine")
    norms = norm_stats(emb)
    unit = torch.nn.functional.normalize(emb.double(), dim=1).float()
    return {**{f"recall@{k}": recall.get(k, float("nan")) for k in (1, 2, 4)},
            "map@r": map_at_r(emb, labels, "cosine"),
            "nmi": nmi(unit, labels, seed=seed) if with_nmi else float("nan"),
            "norm_mean": norms["mean"], "norm_cv": norms["cv"]}


def _unit_hash(data_name: str, fingerprint: str, role: str, train: Sequence[int],
               evaluate: Sequence[int], loss: str, weight: float, seed: int,
               config: MethodConfig) -> str:
    return stable_hash({"study": "sec-v1", "recipe": RECIPE_VERSION, "dataset": data_name,
                        "data": fingerprint, "role": role, "train": list(train),
                        "eval": list(evaluate), "loss": loss, "weight": float(weight),
                        "seed": seed, "config": config.hash_dict()})


def _row(record: RunRecord) -> dict[str, Any]:
    m: dict[str, Any] = dict(record.metrics)   # JSON: the curves are lists
    return {"role": m["role"], "loss": record.loss, "sec": record.regularizer == "sec",
            "weight": record.regularizer_weight, "seed": record.seed,
            **{s: m[s] for s in SCORES}, "epochs": int(m["epochs"]),
            "epoch_norm_mean": list(m["epoch_norm_mean"]),
            "epoch_norm_cv": list(m["epoch_norm_cv"]),
            "train_classes": int(m["train_classes"]), "eval_classes": record.n,
            "seconds": record.train_seconds}


def _run_unit(data: Dataset, name: str, fingerprint: str, role: str, train_ids: Sequence[int],
              eval_ids: Sequence[int], loss: str, weight: float, seed: int,
              setting: SecSetting, store: ResultsStore | None, force: bool) -> dict[str, Any]:
    """Train ``loss`` (SEC weight ``weight``) on the classes ``train_ids`` of ``data``,
    score the classes ``eval_ids``, store and return the row (or read it back)."""
    config = loss_config(setting.config, loss, weight)
    key = _unit_hash(name, fingerprint, role, train_ids, eval_ids, loss, weight, seed, config)
    if store is not None and not force:
        stored = store.get(key)
        if stored is not None:
            return _row(stored)
    start = time.perf_counter()
    train = data.select_classes(list(train_ids), name=f"{name}[{role} train]")
    evaluate = data.select_classes(list(eval_ids), name=f"{name}[{role} eval]")
    history = HistoryCallback(keep_norms=True)
    source = train_source("embedding", train, config, seed=seed, callbacks=history)
    if source.interrupted:   # the stop button: never store (nor return) a half-trained unit
        raise KeyboardInterrupt(f"the {role} run of {loss} (SEC weight {weight:g}, seed "
                                f"{seed}) was interrupted: nothing of it was stored")
    scores = retrieval_scores(embed(source.model, evaluate.x), evaluate.y, seed=seed,
                              with_nmi=role == "test")
    epochs = [e for e in history.epochs if e["phase"] == "source"]
    metrics: dict[str, Any] = {
        "role": role, **scores, "epochs": len(epochs),
        "epoch_norm_mean": [float(e.get("norm_mean", float("nan"))) for e in epochs],
        "epoch_norm_cv": [float(e.get("norm_cv", float("nan"))) for e in epochs],
        "train_classes": train.n_classes, "best_epoch": source.train.best_epoch}
    record = RunRecord(
        dataset=name, method="metric", k=0, n=evaluate.n_classes, seed=seed,
        accuracy=scores["recall@1"], config_hash=key, kind=RECORD_KIND, metric=RECORD_METRIC,
        loss=loss, regularizer=config.regularizer, regularizer_weight=config.regularizer_weight,
        metrics=metrics, notes=f"sec study, {role}", train_seconds=time.perf_counter() - start,
        preset=setting.name, source=f"{train.n_classes} {role} train classes",
        config=json.dumps(config.hash_dict(), sort_keys=True, default=str),
        version=__version__, created=time.time())
    if store is not None:
        store.add(record, replace=True)
    return _row(record)


def choose_weight(train: Dataset, val_classes: Sequence[int], loss: str,
                  setting: str | SecSetting = "classroom", *, seed: int = 0,
                  store: ResultsStore | None = None, force: bool = False,
                  fingerprint: str | None = None,
                  progress: Callable[[list[dict[str, Any]]], None] | None = None
                  ) -> tuple[float, pd.DataFrame]:
    """The SEC weight ``eta`` for ``loss`` chosen on validation classes, never on test
    classes: ``train`` holds the study's *train* classes only; ``val_classes`` (class ids
    of ``train``) are held out, each weight of the setting's ``sweep`` trains
    ``L_loss + eta * L_sec`` on the other classes and is scored by Recall@1 among the
    ``val_classes``; the best wins (ties: the smaller weight).

    ``progress``: called after each finished unit with its rows (a list of one row
    dict).

    Returns ``(weight, sweep rows)`` (rows as in :func:`sec_study`, role ``"sweep"``)."""
    setting = get_setting(setting)
    val = sorted({check_int("val_classes", int(c), 0, train.n_classes - 1)
                  for c in val_classes})
    fit = [c for c in range(train.n_classes) if c not in set(val)]
    if len(val) < 2 or len(fit) < 2:
        raise ValueError(f"val_classes must leave at least 2 classes on each side; got "
                         f"{len(val)} validation and {len(fit)} fitting classes")
    fingerprint = fingerprint or dataset_fingerprint(train)
    rows = []
    for weight in setting.sweep:
        rows.append(_run_unit(train, train.name, fingerprint, "sweep", fit, val, loss, weight,
                              seed, setting, store, force))
        if progress is not None:
            progress(rows[-1:])
    frame = pd.DataFrame(rows, columns=COLUMNS)
    best = frame.sort_values(["recall@1", "weight"], ascending=[False, True]).iloc[0]
    return float(best["weight"]), frame


def _progress_row(row: dict[str, Any]) -> dict[str, Any]:
    """A unit's row as the study's progress table shows it: the loss, which run
    (``"without SEC"``, ``"with SEC"``, ``"sweep <weight>"``: scored on the validation
    classes) and its Recall@1 and norm CV."""
    run = (f"sweep {row['weight']:g}" if row["role"] == "sweep"
           else "with SEC" if row["sec"] else "without SEC")
    return {"loss": row["loss"], "run": run, "recall@1": row["recall@1"],
            "norm_cv": row["norm_cv"]}


def sec_study(data: Dataset | None = None, setting: str | SecSetting = "classroom", *,
              store: ResultsStore | str | None = None, force: bool = False,
              progress: Progress = True, data_path: str | None = None,
              **overrides: Any) -> pd.DataFrame:
    """Every loss of the setting with and without SEC over its seeds (the SEC paper's
    tables, Zhang, Li & Zhang 2020; see the module docstring for the protocol).

    Args:
        data: the dataset; ``None`` loads the setting's (``path=data_path`` for real
            files, e.g. ``../shared/data/omniglot``).
        setting: a name of :data:`SETTINGS` (``"classroom"``: glyphs, ``"omniglot"``) or a
            :class:`SecSetting`; ``overrides`` change its fields or config fields
            (``seeds=2``, ``losses=("triplet",)``, ``source_epochs=2``).
        store: a :class:`ResultsStore`, a path, or ``None`` (always train).
        force: retrain units already in the store.
        progress: a bar over the trainings with a running table of the mean Recall@1 per
            loss and run (without SEC, with SEC, each sweep weight): ``True`` a widget in
            a notebook and a tqdm text bar elsewhere, ``"auto"`` the widget in a notebook
            and nothing elsewhere, ``False`` nothing, or a callable
            ``progress(rows, done, total)`` (:mod:`dml_kit.viz.progress`).

    The stop button ends the study with ``KeyboardInterrupt``; the units finished before
    are in the store (each is stored when it finishes), the interrupted one is not.

    Returns:
        A tidy DataFrame, columns :data:`COLUMNS`, one row per sweep unit (role
        ``"sweep"``: scored on the validation classes) and per (loss, with/without SEC,
        seed) final unit (role ``"test"``: scored on the test classes).
    """
    setting = get_setting(setting)
    if overrides:
        setting = setting.replace(**overrides)
    if data is None:
        from dml_kit.data import load  # noqa: PLC0415 (the registry of real datasets)

        options: dict[str, Any] = {"path": data_path} if data_path else {}
        data = load(setting.dataset, **options)
    if not isinstance(data, Dataset):
        raise TypeError(f"data must be a dml_kit Dataset or None, got {type(data).__name__}")
    if isinstance(store, str):
        store = ResultsStore(store)
    split = sec_split(data, setting.train_classes, setting.test_classes, setting.val_fraction,
                      setting.data_seed)
    if data.min_class_size < 4:
        raise ValueError(f"{data.name!r} has a class with {data.min_class_size} examples; "
                         "the study needs at least 4 per class")
    train = data.select_classes(list(split.train), name=f"{data.name}[sec train]")
    val_in_train = [split.train.index(c) for c in split.val]
    fingerprint = dataset_fingerprint(data)
    swept = [loss for loss in setting.losses if loss not in PAPER_WEIGHTS]
    total = len(swept) * len(setting.sweep) + 2 * len(setting.losses) * len(setting.seeds)
    rows: list[dict[str, Any]] = []
    with progress_reporting(progress, total, f"sec study ({setting.name})",
                            value="recall@1", index="loss", condition=("run",),
                            unit="trainings") as report:
        def sweep_done(done: list[dict[str, Any]]) -> None:
            report([_progress_row(r) for r in done])

        for loss in setting.losses:
            if loss in PAPER_WEIGHTS:
                weight = PAPER_WEIGHTS[loss]
            else:
                weight, sweep = choose_weight(train, val_in_train, loss, setting,
                                              seed=setting.seeds[0], store=store, force=force,
                                              fingerprint=fingerprint, progress=sweep_done)
                rows += sweep.to_dict("records")
            for seed in setting.seeds:
                for w in (0.0, weight):
                    rows.append(_run_unit(data, data.name, fingerprint, "test", split.train,
                                          split.test, loss, w, seed, setting, store, force))
                    report([_progress_row(rows[-1])])
    return pd.DataFrame(rows, columns=COLUMNS)


def stored_sec_study(store: ResultsStore | str, setting: str | None = None,
                     dataset: str | None = None) -> pd.DataFrame:
    """The SEC study rows in ``store`` (``setting``: only that setting's; ``dataset``:
    only that dataset's), the newest record per unit, as :func:`sec_study` returns them
    (empty when none)."""
    if isinstance(store, str):
        store = ResultsStore(store, create=False)
    where: dict[str, Any] = {"kind": RECORD_KIND}
    if setting is not None:
        where["preset"] = setting
    records = [r for r in store.records(**where) if dataset is None
               or r.dataset == dataset or r.dataset.startswith(f"{dataset}[")]
    frame = pd.DataFrame([_row(r) for r in records], columns=COLUMNS)
    return frame.drop_duplicates(["role", "loss", "weight", "seed"], keep="last") \
        .reset_index(drop=True)


# ---- summaries: means with 95% intervals over seeds, paired gains, verdicts -------------
def _paired(frame: pd.DataFrame, loss: str, value: str) -> tuple[pd.Series, pd.Series]:
    """``value`` without and with SEC of ``loss``'s test rows, paired by seed."""
    part = frame[(frame["role"] == "test") & (frame["loss"] == loss)]
    wide = part.pivot_table(index="seed", columns="sec", values=value).dropna()
    if False not in wide.columns or True not in wide.columns or wide.empty:
        raise ValueError(f"loss {loss!r} has no seed with both a run without and with SEC")
    return wide[False], wide[True]


def _losses(frame: pd.DataFrame) -> list[str]:
    if frame.empty or not (frame["role"] == "test").any():
        raise ValueError("the SEC study table has no test rows: run sec_study first")
    test = frame[frame["role"] == "test"]
    return list(dict.fromkeys(test["loss"]))


def sec_table(frame: pd.DataFrame, scores: Sequence[str] = SCORES) -> pd.DataFrame:
    """The paper's table, long: one row per (loss, score) with ``weight`` (eta), ``seeds``,
    ``without``, ``with``, ``gain`` (with minus without, paired by seed) as
    ``mean [95% interval]`` text (:func:`dml_kit.stats.mean_ci`, Student's t over seeds),
    the numbers in ``<name>_mean/_low/_high``, and ``verdict`` of "SEC raises the score"
    (for ``norm_cv``: "SEC lowers the CV", i.e. without minus with > 0)."""
    rows = []
    for loss in _losses(frame):
        weight = float(frame[(frame["role"] == "test") & (frame["loss"] == loss)
                             & frame["sec"]]["weight"].iloc[0])
        for score in scores:
            check_choice("scores", score, SCORES)
            without, with_ = _paired(frame, loss, score)
            row: dict[str, Any] = {"loss": loss, "score": score, "weight": weight,
                                   "seeds": len(without)}
            bounds = stats.metric_bounds(score)     # Recall@k, MAP@R, NMI: shown in [0, 1]
            for name, est in (
                    ("without", stats.mean_ci(without, name=f"{loss} {score}", bounds=bounds)),
                    ("with", stats.mean_ci(with_, name=f"{loss} {score}", bounds=bounds)),
                    ("gain", stats.paired_difference(
                        with_, without, bounds=stats.difference_bounds(bounds)))):
                row.update({name: est.format(), f"{name}_mean": est.mean,
                            f"{name}_low": est.low, f"{name}_high": est.high})
            better = stats.compare(without, with_) if score == "norm_cv" \
                else stats.compare(with_, without)
            row["verdict"] = better.label
            rows.append(row)
    return pd.DataFrame(rows)


def sec_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per loss, the SEC paper's headline: ``weight``, ``seeds``, Recall@1
    without / with SEC, the gain with its interval and verdict, the norm CV without /
    with and the verdict of "SEC lowers the CV" (text columns; :func:`sec_table` has
    the numbers)."""
    table = sec_table(frame, ("recall@1", "norm_cv"))
    r1 = table[table["score"] == "recall@1"].set_index("loss")
    cv = table[table["score"] == "norm_cv"].set_index("loss")
    return pd.DataFrame({"weight": r1["weight"], "seeds": r1["seeds"],
                         "R@1 without": r1["without"], "R@1 with SEC": r1["with"],
                         "R@1 gain": r1["gain"], "R@1 verdict": r1["verdict"],
                         "CV without": cv["without"], "CV with SEC": cv["with"],
                         "CV verdict": cv["verdict"]})


@dataclass(frozen=True)
class SecVerdicts:
    """The SEC paper's claims checked on a study table (:func:`sec_verdicts`), each a
    :class:`dml_kit.stats.Verdict` of a paired difference over seeds.

    Attributes:
        gains: per loss, "Recall@1 with SEC > without".
        overall: "Recall@1 with SEC > without" on the mean over losses (per seed).
        not_worse: per loss, "Recall@1 with SEC > without - NOT_WORSE_MARGIN".
        cv: per loss, "the norm CV with SEC < without".
        cv_overall: the same on the mean over losses.
    """

    gains: dict[str, stats.Verdict]
    overall: stats.Verdict
    not_worse: dict[str, stats.Verdict]
    cv: dict[str, stats.Verdict]
    cv_overall: stats.Verdict

    def lines(self) -> list[str]:
        """The verdicts as printable lines, with their numbers."""
        out = [f"Recall@1 gain, {loss}: {v.text()}" for loss, v in self.gains.items()]
        out.append(f"Recall@1 gain, mean over losses: {self.overall.text()}")
        out += [f"norm CV falls, {loss}: {v.text()}" for loss, v in self.cv.items()]
        out.append(f"norm CV falls, mean over losses: {self.cv_overall.text()}")
        out.append(f"Recall@1 not worse (margin {NOT_WORSE_MARGIN}) for every loss: "
                   f"{stats.combine(list(self.not_worse.values()))}")
        return out


def sec_verdicts(frame: pd.DataFrame) -> SecVerdicts:
    """Check the SEC paper's claims on :func:`sec_study`'s table: Recall@1 rises with
    SEC (per loss and on the mean over losses, paired by seed: ``mean_s (1/L) sum_l
    (R@1_with - R@1_without)``), is not worse than without by more than
    :data:`NOT_WORSE_MARGIN`, and the norm CV falls; each by
    :func:`dml_kit.stats.compare` (the t-interval of the per-seed differences)."""
    losses = _losses(frame)
    pairs = {loss: _paired(frame, loss, "recall@1") for loss in losses}
    cvs = {loss: _paired(frame, loss, "norm_cv") for loss in losses}
    seeds = sorted(set.intersection(*(set(p[0].index) for p in pairs.values())))
    if not seeds:
        raise ValueError("no seed has runs of every loss: the overall verdict needs them")
    mean_gain = np.mean([pairs[lo][1].loc[seeds] - pairs[lo][0].loc[seeds] for lo in losses],
                        axis=0)
    mean_cv_drop = np.mean([cvs[lo][0].loc[seeds] - cvs[lo][1].loc[seeds] for lo in losses],
                           axis=0)
    zeros = np.zeros(len(seeds))
    return SecVerdicts(
        gains={lo: stats.compare(w, wo) for lo, (wo, w) in pairs.items()},
        overall=stats.compare(mean_gain, zeros),
        not_worse={lo: stats.compare(w, wo, -NOT_WORSE_MARGIN) for lo, (wo, w) in pairs.items()},
        cv={lo: stats.compare(wo, w) for lo, (wo, w) in cvs.items()},
        cv_overall=stats.compare(mean_cv_drop, zeros))


def norm_curves(frame: pd.DataFrame) -> pd.DataFrame:
    """Per-epoch norm statistics of the test runs' training (a held-out probe of
    train-class images), averaged over seeds: one row per (loss, sec, epoch) with
    ``norm_mean``, ``norm_cv`` and ``seeds`` (the SEC paper's argument: without SEC the
    norms grow and spread under a cosine loss)."""
    rows = []
    for (loss, sec), part in frame[frame["role"] == "test"].groupby(["loss", "sec"],
                                                                     sort=False):
        length = min(len(v) for v in part["epoch_norm_mean"])
        if length == 0:
            continue
        means = np.array([v[:length] for v in part["epoch_norm_mean"]], dtype=float)
        cvs = np.array([v[:length] for v in part["epoch_norm_cv"]], dtype=float)
        for e in range(length):
            rows.append({"loss": loss, "sec": bool(sec), "epoch": e + 1,
                         "norm_mean": float(means[:, e].mean()),
                         "norm_cv": float(cvs[:, e].mean()), "seeds": len(part)})
    return pd.DataFrame(rows, columns=["loss", "sec", "epoch", "norm_mean", "norm_cv", "seeds"])


def report_text(frame: pd.DataFrame) -> str:
    """The study as text: the per-loss summary and the verdicts."""
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        summary = sec_summary(frame).to_string()
    return "\n".join([summary, "", *sec_verdicts(frame).lines()])


def stored_or_quick(setting: str | SecSetting = "classroom",
                    store: ResultsStore | str | None = None, *,
                    data: Dataset | None = None, progress: Progress = "auto",
                    **quick: Any) -> tuple[pd.DataFrame, str]:
    """What a notebook shows: the stored study of ``setting`` when ``store`` (default
    ``data/results.sqlite``) holds all of its final units, else a quick unstored run of
    the setting changed by ``quick`` (``seeds=2, losses=("triplet",), ...``) on ``data``,
    with ``progress`` (default ``"auto"``: a bar and a running table of Recall@1 under the
    notebook cell, nothing elsewhere; see :func:`sec_study`).
    Returns ``(frame, note)``; the note says which it is and, for a quick run, the
    command that stores the full study."""
    full = get_setting(setting)
    path = default_path() if store is None else (store.path if isinstance(store, ResultsStore)
                                                 else store)
    expected = 2 * len(full.losses) * len(full.seeds)
    found = 0
    if Path(path).is_file():
        frame = stored_sec_study(ResultsStore(path, create=False), full.name)
        test = frame[frame["role"] == "test"]
        found = len(test)
        if found >= expected and set(full.losses) <= set(test["loss"]):
            return frame, f"the stored {full.name} study ({found} final runs) from {path}"
    frame = sec_study(data, full, store=None, progress=progress, **quick)
    changed = ", ".join(f"{k}={v}" for k, v in quick.items())
    return frame, (f"{path} holds {found} of the {expected} final runs of the {full.name} "
                   f"study, so this is a quick run ({changed}); store the full one with: "
                   f"python -m dml_kit sec --setting {full.name}")
