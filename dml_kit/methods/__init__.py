"""The six methods of *Adapted Deep Embeddings* (Scott, Ridgeway & Mozer, NeurIPS 2018).

Each method is a short recipe module over the one training loop
(:func:`dml_kit.training.fit`); all return a :class:`RunResult`:

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

To share one source model across tasks (what :func:`dml_kit.experiments.run_grid` does),
train it once with :func:`train_source` and pass the :class:`SourceModel` as ``source``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dml_kit.data.core import Dataset
from dml_kit.methods import (
    adapted_metric,
    adapted_protonet,
    metric,
    protonet,
    scratch,
    weight_transfer,
)
from dml_kit.methods.common import K1_NOTE, CallbacksArg, RunResult, SourceModel
from dml_kit.methods.config import MethodConfig

__all__ = ["K1_NOTE", "METHODS", "RECIPE_VERSION", "Method", "MethodConfig", "RunResult",
           "SourceModel", "available", "get", "run", "train_source"]

#: Version of the method recipes. Bump it whenever a change to a recipe (this package,
#: the training loop, a loss) changes what a run computes for the same settings: results
#: stores hash it into every record's config hash, so records of an older recipe are
#: not reused. 1: first release; 2: scratch and weight transfer recompute batch-norm
#: statistics on the support before scoring.
RECIPE_VERSION = 2

#: fields that only matter in the target phase (not part of a source model's identity)
_TARGET_ONLY = ("target_epochs", "target_patience", "target_lr", "adapt_episodes_per_epoch",
                "classify", "head_only")


@dataclass(frozen=True)
class Method:
    """A registry entry.

    Attributes:
        name: registry name.
        description: one line.
        source_kind: ``None`` (no source data), ``"classifier"``, ``"embedding"`` or
            ``"protonet"``: methods with the same kind (and config) share a source model.
        adapted: fine-tunes an embedding on the target support (the hybrids).
        embedding: classifies by distances in an embedding (metric, protonet, hybrids).
        parent: for a hybrid, the method it adapts.
        evaluate: the target phase ``evaluate(source, task, config, *, seed, callbacks)``.
    """

    name: str
    description: str
    source_kind: str | None
    adapted: bool
    embedding: bool
    parent: str | None
    evaluate: Callable[..., RunResult]

    def source_key(self, config: MethodConfig, n_way: int, k_shot: int) -> str | None:
        """A string naming the source model this method needs for an (n, k) task under
        ``config`` (``None`` for ``scratch``). Methods and tasks with equal keys can share
        one trained source model: classifiers and metric embeddings do not depend on the
        task; protonets are trained with the target's n-way k-shot episodes (unless
        ``train_way``/``train_shot`` fix them)."""
        if self.source_kind is None:
            return None
        fields = {k: v for k, v in config.hash_dict().items() if k not in _TARGET_ONLY}
        if self.source_kind != "embedding":
            for k in ("loss", "loss_params"):
                fields.pop(k)
        if self.source_kind != "protonet":
            for k in ("episodes_per_epoch", "query_per_class", "train_way", "train_shot"):
                fields.pop(k)
        else:
            fields["way"] = config.train_way or n_way
            fields["shot"] = config.train_shot or k_shot
        if self.source_kind == "classifier":
            for k in ("regularizer", "regularizer_params", "regularizer_weight"):
                fields.pop(k)
        return self.source_kind + ":" + json.dumps(fields, sort_keys=True, default=str)

    def train_source(self, source: Dataset, config: MethodConfig, *, n_way: int, k_shot: int,
                     seed: int, callbacks: CallbacksArg = None) -> SourceModel:
        """Train the source model this method needs (see :attr:`source_kind`)."""
        if self.source_kind is None:
            raise ValueError(f"method {self.name!r} uses no source data")
        return train_source(self.source_kind, source, config, n_way=n_way, k_shot=k_shot,
                            seed=seed, callbacks=callbacks)


def train_source(kind: str, source: Dataset, config: MethodConfig | None = None, *,
                 n_way: int = 5, k_shot: int = 1, seed: int = 0,
                 callbacks: CallbacksArg = None) -> SourceModel:
    """Train a source model of ``kind`` (``"classifier"``, ``"embedding"``, ``"protonet"``)
    on the ``source`` dataset; ``n_way``/``k_shot`` shape the protonet episodes."""
    config = config or MethodConfig()
    if kind == "classifier":
        return weight_transfer.train_source(source, config, seed=seed, callbacks=callbacks)
    if kind == "embedding":
        return metric.train_source(source, config, seed=seed, callbacks=callbacks)
    if kind == "protonet":
        return protonet.train_source(source, config, n_way=n_way, k_shot=k_shot, seed=seed,
                                     callbacks=callbacks)
    raise ValueError(f"unknown source kind {kind!r}; choose one of: classifier, embedding, "
                     "protonet")


METHODS: dict[str, Method] = {
    m.name: m for m in (
        Method("scratch", "classifier trained on the target support only (baseline)",
               None, False, False, None, scratch.evaluate),
        Method("weight_transfer", "source classifier, new head fine-tuned on the support",
               "classifier", False, False, None, weight_transfer.evaluate),
        Method("metric", "source metric embedding (histogram loss), 1-NN cosine",
               "embedding", False, True, None, metric.evaluate),
        Method("protonet", "episodic prototypical network, nearest prototype",
               "protonet", False, True, None, protonet.evaluate),
        Method("adapted_metric", "metric embedding fine-tuned on the support, same loss",
               "embedding", True, True, "metric", adapted_metric.evaluate),
        Method("adapted_protonet", "protonet fine-tuned on support episodes (75%/25%)",
               "protonet", True, True, "protonet", adapted_protonet.evaluate),
    )
}


def available() -> list[str]:
    """Method names, in the paper's order (baselines, DML, few-shot, hybrids)."""
    return list(METHODS)


def get(name: str) -> Method:
    """The registry entry of ``name``; unknown names raise ``ValueError`` listing the choices."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}")
    return METHODS[name]


def run(method: str, task: Any, source: Dataset | SourceModel | None = None,
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
    config = (config or MethodConfig()).replace(**overrides) if overrides else \
        (config or MethodConfig())
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
        elif isinstance(source, Dataset):
            source_model = entry.train_source(source, config, n_way=task.n_way,
                                              k_shot=task.k_shot, seed=seed,
                                              callbacks=callbacks)
            source_seconds = source_model.seconds
        else:
            raise ValueError(f"source must be a Dataset or a SourceModel, got "
                             f"{type(source).__name__}")
    result = entry.evaluate(source_model, task, config, seed=seed, callbacks=callbacks)
    result.source_seconds = source_seconds
    result.source = source_model
    return result
