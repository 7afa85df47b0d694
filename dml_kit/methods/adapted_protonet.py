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

import torch

from dml_kit.methods import protonet
from dml_kit.methods.common import (
    CallbacksArg,
    RunResult,
    SourceModel,
    adapt_embedder,
    episodes,
    make_regularizer,
    unadapted,
)
from dml_kit.methods.config import MethodConfig

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
        return unadapted(protonet.evaluate, NAME, source, task, config, seed=seed,
                         callbacks=callbacks)
    sx, sy = task.support_x, task.support_y
    shot, query = adaptation_split(task.k_shot)
    reg = make_regularizer(config)

    def batches(epoch: int):
        for ep in episodes(sy, task.n_way, shot, query, config.adapt_episodes_per_epoch,
                           seed * 1000 + epoch):
            yield (torch.cat([sx[ep.support_idx], sx[ep.query_idx]]), ep.support_y,
                   ep.query_y)

    return adapt_embedder(source, task, config, method=NAME, rule="prototype",
                          batches=batches,
                          make_step=lambda e: protonet.episode_loss(e, config, reg),
                          extra_parameters=reg.parameters() if reg else (), seed=seed,
                          callbacks=callbacks, notes=f"episodes {shot}+{query} per class")
