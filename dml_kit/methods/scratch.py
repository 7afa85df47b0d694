"""``scratch``: the paper's non-transfer baseline.

Recipe (Adapted Deep Embeddings, "baseline"): a fresh classifier (the same embedder
plus a linear n-way output layer) is trained with cross-entropy on the target support
set only (k x n examples), early-stopped on the task's validation part when it has one
and on the support accuracy otherwise (the paper's T2 rule), and scored on the queries.
No source data is used.
"""

from __future__ import annotations

import time

from dml_kit.device import seed_everything
from dml_kit.methods.common import (
    CallbacksArg,
    RunResult,
    SourceModel,
    build_embedder,
    classifier_accuracy,
    cross_entropy_step,
    has_val,
    shuffled_batches,
)
from dml_kit.methods.config import MethodConfig
from dml_kit.models import Classifier
from dml_kit.training import TrainConfig, fit

NAME = "scratch"


def target_config(config: MethodConfig) -> TrainConfig:
    """The T2-phase optimisation settings shared by scratch, weight transfer and the hybrids."""
    return TrainConfig(max_epochs=config.target_epochs, lr=config.target_lr,
                       patience=config.target_patience)


def adapt_config(config: MethodConfig) -> TrainConfig:
    """The hybrids' fine-tuning settings: as :func:`target_config` with ``adapt_lr`` and
    ``adapt_patience``."""
    return TrainConfig(max_epochs=config.target_epochs,
                       lr=config.adapt_lr if config.adapt_lr is not None else config.target_lr,
                       patience=config.adapt_patience or config.target_patience)


def evaluate(source: SourceModel | None, task, config: MethodConfig, *, seed: int,
             callbacks: CallbacksArg = None) -> RunResult:
    """Train a classifier from scratch on ``task.support_*``; accuracy on ``task.query_*``."""
    start = time.perf_counter()
    seed_everything(seed)
    model = Classifier(build_embedder(tuple(task.support_x.shape[1:]), config), task.n_way)
    sx, sy = task.support_x, task.support_y
    vx, vy = (task.val_x, task.val_y) if has_val(task) else (sx, sy)

    def batches(epoch: int):
        for ix in shuffled_batches(len(sy), config.batch_size, seed * 1000 + epoch):
            yield sx[ix], sy[ix]

    train = fit(model, batches, cross_entropy_step(model), target_config(config),
                validate=lambda: classifier_accuracy(model, vx, vy), callbacks=callbacks,
                probe=(sx, sy), embedder=model.embedder, phase="adapt", method=NAME,
                seed=seed, device=config.device, progress=config.progress)
    acc = classifier_accuracy(model, task.query_x, task.query_y)
    return RunResult(method=NAME, accuracy=acc, n_way=task.n_way, k_shot=task.k_shot,
                     seed=seed, metrics={"target_epochs": train.epochs,
                                         "target_best_epoch": train.best_epoch},
                     target_seconds=time.perf_counter() - start,
                     interrupted=train.interrupted, model=model)
