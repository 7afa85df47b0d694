"""``adapted_metric``: the hybrid - the source metric embedding fine-tuned on the target.

Recipe (Adapted Deep Embeddings, "adapted histogram loss"):

1. source phase: exactly :mod:`dml_kit.methods.metric` (the same source model is reused);
2. target phase: a copy of the embedder is fine-tuned on the target support set with the
   *same* loss (and regularizer); the whole support (n x k examples) is one batch per
   epoch, or balanced batches when it is larger than ``batch_classes x batch_per_class``.
   Early stopping scores the task's validation part when it has one, and otherwise the
   support set itself (leave-one-out, since the support is also the reference set):
   the paper's T2 rule;
3. classification as the parent (1-NN cosine, or nearest prototype).

With ``k = 1`` a class has no positive pair, so there is nothing to adapt: the hybrid
equals its parent and the result says so (``notes``), as in the paper's code.
"""

from __future__ import annotations

import copy
import time

import torch

from dml_kit.methods import metric
from dml_kit.methods.common import (
    K1_NOTE,
    CallbacksArg,
    RunResult,
    SourceModel,
    balanced_batches,
    classify_accuracy,
    embedding_metrics,
    has_val,
    loo_1nn_accuracy,
    loo_prototype_accuracy,
    make_loss,
)
from dml_kit.methods.config import MethodConfig
from dml_kit.methods.scratch import adapt_config
from dml_kit.metrics import embed
from dml_kit.training import fit

NAME = "adapted_metric"
PARENT = metric.NAME


def evaluate(source: SourceModel, task, config: MethodConfig, *, seed: int,
             callbacks: CallbacksArg = None) -> RunResult:
    """Fine-tune the source embedding on the support (k >= 2), then classify as ``metric``."""
    if task.k_shot < 2:
        result = metric.evaluate(source, task, config, seed=seed, callbacks=callbacks)
        result.method, result.notes = NAME, K1_NOTE
        return result
    start = time.perf_counter()
    embedder = copy.deepcopy(source.model)
    loss_fn = make_loss(config, num_classes=task.n_way)
    sx, sy = task.support_x, task.support_y
    one_batch = len(sy) <= config.batch_classes * config.batch_per_class

    def batches(epoch: int):
        if one_batch:
            yield sx, sy
        else:
            for ix in balanced_batches(sy, config, seed * 1000 + epoch):
                yield sx[ix], sy[ix]

    def step(batch):
        x, y = batch
        return loss_fn(embedder(x), y)

    def validate() -> float:
        s = embed(embedder, sx)
        if has_val(task):
            return classify_accuracy(s, sy, embed(embedder, task.val_x), task.val_y,
                                     config.classify)
        if config.classify == "1nn":
            return loo_1nn_accuracy(s, sy)
        return loo_prototype_accuracy(s, sy)

    train = fit(embedder, batches, step, adapt_config(config), validate=validate,
                parameters=[*embedder.parameters(), *loss_fn.parameters()],
                callbacks=callbacks, probe=(torch.cat([sx, task.query_x[:200]]),
                                            torch.cat([sy, task.query_y[:200]])),
                phase="adapt", method=NAME, seed=seed, device=config.device,
                progress=config.progress)
    acc, extra = embedding_metrics(embedder, sx, sy, task.query_x, task.query_y,
                                   config.classify)
    extra.update({"source_val_score": source.val_score or 0.0,
                  "source_epochs": source.train.epochs, "target_epochs": train.epochs,
                  "target_best_epoch": train.best_epoch})
    return RunResult(method=NAME, accuracy=acc, n_way=task.n_way, k_shot=task.k_shot,
                     seed=seed, metrics=extra, target_seconds=time.perf_counter() - start,
                     interrupted=train.interrupted or source.interrupted, model=embedder)
