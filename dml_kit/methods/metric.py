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

from dml_kit.data.core import Dataset
from dml_kit.methods.common import (
    CallbacksArg,
    RunResult,
    SourceModel,
    balanced_batches,
    build_embedder,
    embedding_metrics,
    fit_source,
    loo_1nn_accuracy,
    make_loss,
    source_parts,
)
from dml_kit.methods.config import MethodConfig
from dml_kit.metrics import embed

NAME = "metric"


def train_source(source: Dataset, config: MethodConfig, *, seed: int,
                 callbacks: CallbacksArg = None) -> SourceModel:
    """Source phase: metric-loss training on balanced batches, early-stopped on held-out
    leave-one-out Recall@1 (cosine)."""
    start = time.perf_counter()
    train, val, scored_ids = source_parts(source, config, seed)
    embedder = build_embedder(source.input_shape, config)
    loss_fn = make_loss(config, num_classes=source.n_classes)
    scored = val.select_classes(scored_ids.tolist())

    def batches(epoch: int):
        for ix in balanced_batches(train, config, seed * 1000 + epoch):
            yield train.x[ix], train.y[ix]

    def step(batch):
        x, y = batch
        return loss_fn(embedder(x), y)

    return fit_source("embedding", embedder, batches, step, config,
                      validate=lambda: loo_1nn_accuracy(embed(embedder, scored.x), scored.y),
                      val=val, start=start, method=NAME, seed=seed, callbacks=callbacks,
                      parameters=[*embedder.parameters(), *loss_fn.parameters()],
                      info={"loss": config.loss, "n_source_classes": source.n_classes})


def evaluate(source: SourceModel, task, config: MethodConfig, *, seed: int,
             callbacks: CallbacksArg = None) -> RunResult:
    """Target phase: embed, then 1-NN (cosine) or nearest prototype on the support."""
    start = time.perf_counter()
    acc, extra = embedding_metrics(source.model, task.support_x, task.support_y,
                                   task.query_x, task.query_y, config.classify)
    extra.update({"source_val_score": source.val_score or 0.0,
                  "source_epochs": source.train.epochs})
    return RunResult(method=NAME, accuracy=acc, n_way=task.n_way, k_shot=task.k_shot,
                     seed=seed, metrics=extra, target_seconds=time.perf_counter() - start,
                     interrupted=source.interrupted, model=source.model)
