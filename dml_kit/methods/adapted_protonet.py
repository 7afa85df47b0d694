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

from collections.abc import Iterator

import torch

from dml_kit.data import KShotTask
from dml_kit.methods import protonet
from dml_kit.methods.batches import episode_batches, epoch_seed
from dml_kit.methods.phases import TargetPhase, adapt_embedder, unadapted
from dml_kit.methods.registry import Method
from dml_kit.methods.results import CallbacksArg, RunResult, SourceModel

NAME = "adapted_protonet"
PARENT = protonet.NAME
SUPPORT_FRACTION = 0.75


def adaptation_split(k_shot: int) -> tuple[int, int]:
    """``(support, query)`` per class of an adaptation episode: ``floor(0.75 k)`` and the
    rest (k >= 2)."""
    s = max(1, int(SUPPORT_FRACTION * k_shot))
    return s, k_shot - s


def evaluate(source: SourceModel, task: KShotTask, phase: TargetPhase, *, seed: int,
             callbacks: CallbacksArg = None) -> RunResult:
    """Fine-tune the protonet on support episodes (k >= 2), then nearest prototype."""
    if task.k_shot < 2:
        return unadapted(protonet.evaluate, NAME, source, task, phase, seed=seed,
                         callbacks=callbacks)
    sx, sy = task.support_x, task.support_y
    shot, query = adaptation_split(task.k_shot)

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        yield from episode_batches(sx, sy, task.n_way, shot, query, phase.adapt_episodes,
                                   epoch_seed(seed, epoch))

    return adapt_embedder(source, task, phase, method=NAME, rule="prototype", batches=batches,
                          loss_fn=phase.objective.build_episodic(), seed=seed,
                          callbacks=callbacks, notes=f"episodes {shot}+{query} per class")


METHOD = Method(NAME, "protonet fine-tuned on support episodes (75%/25%)", evaluate,
                source=protonet.SOURCE, adapted=True, embedding=True, parent=PARENT,
                uses_regularizer=True, loss="prototypical")
