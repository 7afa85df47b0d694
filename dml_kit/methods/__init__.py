"""The six methods of *Adapted Deep Embeddings* (Scott, Ridgeway & Mozer, NeurIPS 2018).

Each method is a short recipe module over the one training loop
(:func:`dml_kit.training.fit`) that declares one :class:`Method` (``METHOD``): its
source trainer, whether it reads ``config.loss`` and the regularizer, its target phase.
This package registers the six; :func:`register` adds another. All return a
:class:`RunResult`:

================== ================ ===================================================
name               source model     target phase
================== ================ ===================================================
scratch            (none)           classifier trained on the support only (baseline)
weight_transfer    classifier       new n-way head, fine-tune on the support
metric             embedding        1-NN cosine on the support (or nearest prototype)
protonet           protonet         nearest prototype
adapted_metric     embedding        fine-tune with the same loss, then as ``metric``
adapted_protonet   protonet         fine-tune on support episodes, then as ``protonet``
================== ================ ===================================================

Usage::

    from dml_kit import data, methods
    split = data.domain_split(data.load("glyphs"), seed=0)
    task = data.kshot_task(split.target, n_way=5, k_shot=5, seed=0)
    result = methods.run("adapted_metric", task, split.source, regularizer="sec",
                         regularizer_weight=1.0)

:func:`run` splits the config into phase objects once
(:func:`dml_kit.methods.phases.phases`). To share one source model across tasks (what
:func:`dml_kit.experiments.run_grid` does), train it once with :func:`train_source` and
pass the :class:`SourceModel` as ``source``. ``train_source(..., cache=True)`` keeps
source models on disk under ``<data folder>/models`` and loads them on the next run;
:func:`save_model` / :func:`load_model` save and load any trained network or source
model in a safe format (:mod:`dml_kit.methods.persist`).
"""

from __future__ import annotations

import os
from typing import Any

from dml_kit.data import KShotTask
from dml_kit.data.core import Dataset
from dml_kit.methods import (
    adapted_metric,
    adapted_protonet,
    metric,
    protonet,
    scratch,
    weight_transfer,
)
from dml_kit.methods.config import MethodConfig
from dml_kit.methods.persist import (
    cached_train_source,
    load_model,
    load_source,
    model_info,
    save_model,
)
from dml_kit.methods.registry import (
    METHODS,
    Method,
    SourceTrainer,
    available,
    get,
    register,
    registered,
    source_trainers,
    unregister,
)
from dml_kit.methods.results import K1_NOTE, CallbacksArg, RunResult, SourceModel

__all__ = ["K1_NOTE", "METHODS", "RECIPE_VERSION", "Method", "MethodConfig", "RunResult",
           "SourceModel", "SourceTrainer", "available", "cached_train_source", "get",
           "load_model", "load_source", "model_info", "register", "registered", "run",
           "save_model", "train_source", "unregister"]

#: Version of the method recipes. Bump it whenever a change to a recipe (this package,
#: the training loop, a loss) changes what a run computes for the same settings: results
#: stores hash it into every record's config hash, so records of an older recipe are
#: not reused. 1: first release; 2: scratch and weight transfer recompute batch-norm
#: statistics on the support before scoring; 3: the loss kernels rewritten for speed (same
#: values to ~1e-7, but training trajectories, hence accuracies, move in the last digits).
RECIPE_VERSION = 3

for _module in (scratch, weight_transfer, metric, protonet, adapted_metric, adapted_protonet):
    register(_module.METHOD)
del _module


def train_source(kind: str, source: Dataset, config: MethodConfig | None = None, *,
                 n_way: int = 5, k_shot: int = 1, seed: int = 0,
                 callbacks: CallbacksArg = None,
                 cache: bool | str | os.PathLike[str] = False) -> SourceModel:
    """Train a source model of ``kind`` (``"classifier"``, ``"embedding"``, ``"protonet"``,
    or the kind of any registered method) on the ``source`` dataset; ``n_way``/``k_shot``
    shape the protonet episodes.

    ``cache=True`` goes through the disk cache (:func:`cached_train_source`): a source
    model trained earlier with the same kind, settings it depends on, seed, data and
    recipe version is loaded from ``<data folder>/models`` instead of trained (no
    callback events then); a folder name caches under ``<folder>/models``."""
    trainers = source_trainers()
    if kind not in trainers:
        raise ValueError(f"unknown source kind {kind!r}; choose one of: "
                         f"{', '.join(trainers)}")
    config = config or MethodConfig()
    if cache:
        root = None if cache is True else cache
        return cached_train_source(kind, source, config, n_way=n_way, k_shot=k_shot,
                                   seed=seed, callbacks=callbacks, root=root)
    model = trainers[kind](source, config, n_way=n_way, k_shot=k_shot, seed=seed,
                           callbacks=callbacks)
    return _stamp(model, config, n_way, k_shot, seed)


def _stamp(model: SourceModel, config: MethodConfig, n_way: int, k_shot: int,
           seed: int) -> SourceModel:
    """Record what ``model`` was trained with (what :func:`save_model` stores)."""
    model.config, model.seed, model.n_way, model.k_shot = config, seed, n_way, k_shot
    return model


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(int(d)) for d in shape)


def _check_source_shape(source: SourceModel, task: KShotTask) -> None:
    """A source model trained on inputs of one shape cannot embed a task of another: say so
    (``ValueError``) instead of a torch matmul error deep inside the target phase."""
    expected = source.info.get("input_shape")
    if expected is not None and tuple(expected) != tuple(task.input_shape):
        raise ValueError(
            f"source model expects {_shape_text(tuple(expected))} inputs, task has "
            f"{_shape_text(tuple(task.input_shape))}: train the source model on the "
            f"task's dataset (pass its source Dataset instead of a SourceModel)")


def run(method: str, task: KShotTask, source: Dataset | SourceModel | None = None,
        config: MethodConfig | None = None, *, seed: int | None = None,
        callbacks: CallbacksArg = None, **overrides: Any) -> RunResult:
    """Run ``method`` on a k-shot ``task``.

    Args:
        method: a name from :data:`METHODS`.
        task: a :class:`dml_kit.data.KShotTask` (support, optional val, queries).
        source: the source :class:`~dml_kit.data.Dataset` (trained on here), or a
            :class:`SourceModel` trained earlier (reused; never modified). Ignored by
            ``scratch``; required by every other method.
        config: a :class:`MethodConfig`; ``overrides`` change single fields
            (``run("metric", task, src, loss="triplet", regularizer="sec",
            regularizer_weight=1.0)``).
        seed: seeds model initialisation and sampling (default: the task's seed).
        callbacks: see :mod:`dml_kit.callbacks`; the run emits a ``"source"`` phase
            (when it trains a source model) and an ``"adapt"`` phase (when it trains on
            the target).

    Returns:
        A :class:`RunResult`; ``source_seconds`` is 0 when a trained source was passed.
    """
    entry = get(method)
    if not isinstance(task, KShotTask):
        raise ValueError(f"task must be a dml_kit.data.KShotTask (made by "
                         f"dml_kit.data.kshot_task), got {type(task).__name__}")
    if task.n_way < 2:
        raise ValueError(f"task.n_way={task.n_way} is out of range: must be >= 2 (a 1-way "
                         "task is solved by any method: every query has the one label)")
    config = config or MethodConfig()
    if overrides:
        config = config.replace(**overrides)
    seed = int(getattr(task, "seed", 0)) if seed is None else seed
    source_model: SourceModel | None = None
    source_seconds = 0.0
    if entry.source_kind is not None:
        if source is None:
            raise ValueError(f"source is required for method {method!r}: pass the source "
                             "Dataset or a trained SourceModel")
        if isinstance(source, SourceModel):
            if source.kind != entry.source_kind:
                raise ValueError(f"source is a {source.kind!r} model but method {method!r} "
                                 f"needs a {entry.source_kind!r} one")
            source_model = source
            _check_source_shape(source, task)
        elif isinstance(source, Dataset):
            source_model = entry.train_source(source, config, n_way=task.n_way,
                                              k_shot=task.k_shot, seed=seed,
                                              callbacks=callbacks)
            _stamp(source_model, config, task.n_way, task.k_shot, seed)
            source_seconds = source_model.seconds
        else:
            raise ValueError(f"source must be a Dataset or a SourceModel, got "
                             f"{type(source).__name__}")
    result = entry.evaluate(source_model, task, config, seed=seed, callbacks=callbacks)
    result.source_seconds = source_seconds
    result.source = source_model
    return result
