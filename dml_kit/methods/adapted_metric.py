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

from collections.abc import Iterator

import torch

from dml_kit.data import KShotTask
from dml_kit.methods import metric
from dml_kit.methods.batches import balanced_batches, epoch_seed
from dml_kit.methods.phases import TargetPhase, adapt_embedder, unadapted
from dml_kit.methods.registry import Method
from dml_kit.methods.results import CallbacksArg, RunResult, SourceModel

NAME = "adapted_metric"
PARENT = metric.NAME


def evaluate(source: SourceModel, task: KShotTask, phase: TargetPhase, *, seed: int,
             callbacks: CallbacksArg = None) -> RunResult:
    """Fine-tune the source embedding on the support (k >= 2), then classify as ``metric``."""
    if task.k_shot < 2:
        return unadapted(metric.evaluate, NAME, source, task, phase, seed=seed,
                         callbacks=callbacks)
    loss_fn = phase.objective.build(num_classes=task.n_way)
    sx, sy = task.support_x, task.support_y
    one_batch = len(sy) <= phase.batches.balanced_size

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if one_batch:
            yield sx, sy
        else:
            for ix in balanced_batches(sy, phase.batches, epoch_seed(seed, epoch)):
                yield sx[ix], sy[ix]

    return adapt_embedder(source, task, phase, method=NAME, rule=phase.classify,
                          batches=batches, loss_fn=loss_fn, seed=seed, callbacks=callbacks)


METHOD = Method(NAME, "metric embedding fine-tuned on the support, same loss", evaluate,
                source=metric.SOURCE, adapted=True, embedding=True, parent=PARENT,
                uses_loss=True, uses_regularizer=True)
