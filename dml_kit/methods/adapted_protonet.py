"""``adapted_protonet``: the hybrid - the source protonet fine-tuned episodically on the target.

Recipe (Adapted Deep Embeddings, "adapted prototypical nets"):

1. source phase: exactly :mod:`dml_kit.methods.protonet` (the same source model is reused);
2. target phase: a copy of the embedder is fine-tuned with the prototypical loss on
   episodes drawn from the target support only: all n classes, ``floor(0.75 k)`` support
   and ``k - floor(0.75 k)`` query examples per class (as the paper's code), plus the
   optional norm regularizer; ``adapt_episodes_per_epoch`` episodes per epoch. Early
   stopping scores the task's validation part when it has one, otherwise the
   leave-one-out prototype accuracy of the support set (the paper's T2 rule);
3. queries go to the nearest support prototype (squared Euclidean), as the parent.

With ``k = 1`` there is no query to hold out: no adaptation, the hybrid equals its parent
(``notes`` says so), as in the paper's code.
"""

from __future__ import annotations

import copy
import time

import torch

from dml_kit.methods import protonet
from dml_kit.methods.common import (
    K1_NOTE,
    CallbacksArg,
    RunResult,
    SourceModel,
    embedding_metrics,
    episodes,
    has_val,
    loo_prototype_accuracy,
    make_regularizer,
)
from dml_kit.methods.config import MethodConfig
from dml_kit.methods.scratch import adapt_config
from dml_kit.metrics import embed, prototype_accuracy
from dml_kit.training import fit

NAME = "adapted_protonet"
PARENT = protonet.NAME
SUPPORT_FRACTION = 0.75


def adaptation_split(k_shot: int) -> tuple[int, int]:
    """``(support, query)`` per class of an adaptation episode: ``floor(0.75 k)`` and the
    rest (k >= 2)."""
    s = max(1, int(SUPPORT_FRACTION * k_shot))
    return s, k_shot - s


def evaluate(source: SourceModel, task, config: MethodConfig, *, seed: int,
             callbacks: CallbacksArg = None) -> RunResult:
    """Fine-tune the protonet on support episodes (k >= 2), then nearest prototype."""
    if task.k_shot < 2:
        result = protonet.evaluate(source, task, config, seed=seed, callbacks=callbacks)
        result.method, result.notes = NAME, K1_NOTE
        return result
    start = time.perf_counter()
    embedder = copy.deepcopy(source.model)
    sx, sy = task.support_x, task.support_y
    shot, query = adaptation_split(task.k_shot)
    reg = make_regularizer(config)

    def batches(epoch: int):
        for ep in episodes(sy, task.n_way, shot, query, config.adapt_episodes_per_epoch,
                           seed * 1000 + epoch):
            yield (torch.cat([sx[ep.support_idx], sx[ep.query_idx]]), ep.support_y,
                   ep.query_y)

    def validate() -> float:
        s = embed(embedder, sx)
        if has_val(task):
            return prototype_accuracy(s, sy, embed(embedder, task.val_x), task.val_y)
        return loo_prototype_accuracy(s, sy)

    train = fit(embedder, batches, protonet.episode_loss(embedder, config, reg),
                adapt_config(config), validate=validate,
                parameters=[*embedder.parameters(), *(reg.parameters() if reg else [])],
                callbacks=callbacks,
                probe=(torch.cat([sx, task.query_x[:200]]), torch.cat([sy, task.query_y[:200]])),
                phase="adapt", method=NAME, seed=seed, device=config.device,
                progress=config.progress)
    acc, extra = embedding_metrics(embedder, sx, sy, task.query_x, task.query_y, "prototype")
    extra.update({"source_val_score": source.val_score or 0.0,
                  "source_epochs": source.train.epochs, "target_epochs": train.epochs,
                  "target_best_epoch": train.best_epoch})
    return RunResult(method=NAME, accuracy=acc, n_way=task.n_way, k_shot=task.k_shot,
                     seed=seed, metrics=extra, notes=f"episodes {shot}+{query} per class",
                     target_seconds=time.perf_counter() - start,
                     interrupted=train.interrupted or source.interrupted, model=embedder)
