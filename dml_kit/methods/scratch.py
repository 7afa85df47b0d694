"""``scratch``: the paper's non-transfer baseline.

Recipe (Adapted Deep Embeddings, "baseline"): a fresh classifier (the same embedder
plus a linear n-way output layer) is trained with cross-entropy on the target support
set only (k x n examples), early-stopped on the task's validation part when it has one
and on the support accuracy otherwise (the paper's T2 rule), and scored on the queries.
No source data is used. Before each score the batch-norm running statistics are
recomputed on the support (a fresh network's are 0 and 1, and a few momentum-0.1 steps
barely move them: eval mode would otherwise sit near chance).
"""

from __future__ import annotations

import time

from dml_kit.device import seed_everything
from dml_kit.methods.common import (
    CallbacksArg,
    RunResult,
    SourceModel,
    build_embedder,
    fine_tune_classifier,
)
from dml_kit.methods.config import MethodConfig
from dml_kit.models import Classifier

NAME = "scratch"


def evaluate(source: SourceModel | None, task, config: MethodConfig, *, seed: int,
             callbacks: CallbacksArg = None) -> RunResult:
    """Train a classifier from scratch on ``task.support_*``; accuracy on ``task.query_*``."""
    start = time.perf_counter()
    seed_everything(seed)
    model = Classifier(build_embedder(tuple(task.support_x.shape[1:]), config), task.n_way)
    train, acc = fine_tune_classifier(model, task, config, seed=seed, method=NAME,
                                      callbacks=callbacks)
    return RunResult(method=NAME, accuracy=acc, n_way=task.n_way, k_shot=task.k_shot,
                     seed=seed, metrics={"target_epochs": train.epochs,
                                         "target_best_epoch": train.best_epoch},
                     target_seconds=time.perf_counter() - start,
                     interrupted=train.interrupted, model=model)
