"""``metric``: a deep metric embedding trained on the source classes, used as it is.

Recipe (Adapted Deep Embeddings, "histogram loss", the DML paradigm):

1. source phase: an embedder is trained on balanced batches (``batch_classes`` classes x
   ``batch_per_class`` examples) of the source classes with a metric loss - the
   histogram loss (Ustinova & Lempitsky 2016) by default, any :mod:`dml_kit.losses` name
   via ``config.loss`` - plus an optional norm regularizer
   (``L = L_metric + weight * R``, e.g. SEC); early-stopped on the leave-one-out cosine
   Recall@1 of a validation part held out of every source class (the paper's T1 score);
2. target phase: no training. Support and queries are embedded and each query takes the
   label of its cosine-nearest support embedding (1-NN, as the paper's code does), or of
   the nearest class mean with ``config.classify="prototype"``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import torch

from dml_kit.data import KShotTask
from dml_kit.data.core import Dataset
from dml_kit.methods.batches import balanced_batches, epoch_seed
from dml_kit.methods.phases import (
    SourcePhase,
    TargetPhase,
    embedding_step,
    fit_source,
    score_embedding,
    source_parts,
)
from dml_kit.methods.registry import Method, SourceTrainer
from dml_kit.methods.results import CallbacksArg, RunResult, SourceModel
from dml_kit.methods.scores import loo_1nn_accuracy
from dml_kit.metrics import embed

NAME = "metric"


def train_source(source: Dataset, phase: SourcePhase, *, n_way: int = 0, k_shot: int = 0,
                 seed: int, callbacks: CallbacksArg = None) -> SourceModel:
    """Source phase: metric-loss training on balanced batches, early-stopped on held-out
    leave-one-out Recall@1 (cosine); the task's ``n_way``/``k_shot`` play no part."""
    start = time.perf_counter()
    train, val, scored_ids = source_parts(source, phase, seed)
    embedder = phase.model.build(source.input_shape, role="metric")
    loss_fn = phase.objective.build(num_classes=source.n_classes)
    scored = val.select_classes(scored_ids.tolist())

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for ix in balanced_batches(train, phase.batches, epoch_seed(seed, epoch)):
            yield train.x[ix], train.y[ix]

    return fit_source("embedding", embedder, batches, embedding_step(embedder, loss_fn), phase,
                      validate=lambda: loo_1nn_accuracy(embed(embedder, scored.x), scored.y),
                      val=val, start=start, method=NAME, seed=seed, callbacks=callbacks,
                      parameters=[*embedder.parameters(), *loss_fn.parameters()],
                      info={"loss": phase.objective.loss, "n_source_classes": source.n_classes})


def evaluate(source: SourceModel, task: KShotTask, phase: TargetPhase, *, seed: int,
             callbacks: CallbacksArg = None) -> RunResult:
    """Target phase: embed, then 1-NN (cosine) or nearest prototype on the support."""
    return score_embedding(NAME, source, task, phase.classify, seed=seed)


#: the metric-embedding source model (shared by ``metric`` and ``adapted_metric``)
SOURCE = SourceTrainer("embedding", train_source, uses_loss=True, uses_regularizer=True,
                       cost=3)
METHOD = Method(NAME, "source metric embedding (histogram loss), 1-NN cosine", evaluate,
                source=SOURCE, embedding=True, uses_loss=True, uses_regularizer=True)
