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

from dml_kit.methods import metric
from dml_kit.methods.common import (
    CallbacksArg,
    RunResult,
    SourceModel,
    adapt_embedder,
    balanced_batches,
    make_loss,
    unadapted,
)
from dml_kit.methods.config import MethodConfig

NAME = "adapted_metric"
PARENT = metric.NAME


def evaluate(source: SourceModel, task, config: MethodConfig, *, seed: int,
             callbacks: CallbacksArg = None) -> RunResult:
    """Fine-tune the source embedding on the support (k >= 2), then classify as ``metric``."""
    if task.k_shot < 2:
        return unadapted(metric.evaluate, NAME, source, task, config, seed=seed,
                         callbacks=callbacks)
    loss_fn = make_loss(config, num_classes=task.n_way)
    sx, sy = task.support_x, task.support_y
    one_batch = len(sy) <= config.batch_classes * config.batch_per_class

    def batches(epoch: int):
        if one_batch:
            yield sx, sy
        else:
            for ix in balanced_batches(sy, config, seed * 1000 + epoch):
                yield sx[ix], sy[ix]

    def make_step(embedder):
        def step(batch):
            x, y = batch
            return loss_fn(embedder(x), y)
        return step

    return adapt_embedder(source, task, config, method=NAME, rule=config.classify,
                          batches=batches, make_step=make_step,
                          extra_parameters=loss_fn.parameters(), seed=seed,
                          callbacks=callbacks)
