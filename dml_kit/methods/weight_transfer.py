"""``weight_transfer``: train a classifier on the source classes, re-head it, fine-tune.

Recipe (Adapted Deep Embeddings, "weight transfer"):

1. source phase: a classifier (embedder + linear layer over the source classes) is
   trained with cross-entropy, early-stopped on the accuracy of a validation part held
   out of every source class; the best weights are restored;
2. target phase: the output layer is replaced by a fresh n-way layer and the network is
   fine-tuned with cross-entropy on the target support (all weights, as the paper;
   ``config.head_only=True`` trains only the new layer), early-stopped like ``scratch``,
   with the batch-norm statistics recomputed on the support before each score (the
   network was trained on support batches, not on the source statistics it carries);
3. the queries are classified by the fine-tuned network.
"""

from __future__ import annotations

import copy
import time

import torch

from dml_kit.data.core import Dataset
from dml_kit.device import seed_everything
from dml_kit.methods.common import (
    CallbacksArg,
    RunResult,
    SourceModel,
    build_embedder,
    classifier_accuracy,
    cross_entropy_step,
    fine_tune_classifier,
    fit_source,
    shuffled_batches,
    source_parts,
)
from dml_kit.methods.config import MethodConfig
from dml_kit.models import Classifier

NAME = "weight_transfer"


def train_source(source: Dataset, config: MethodConfig, *, seed: int,
                 callbacks: CallbacksArg = None) -> SourceModel:
    """Source phase: a classifier over ``source``'s classes, early-stopped on held-out
    accuracy."""
    start = time.perf_counter()
    train, val, scored = source_parts(source, config, seed)
    model = Classifier(build_embedder(source.input_shape, config), source.n_classes)
    keep = torch.isin(val.y, scored)  # classifier outputs are source ids: no relabelling
    val_x, val_y = val.x[keep], val.y[keep]

    def batches(epoch: int):
        for ix in shuffled_batches(len(train), config.batch_size, seed * 1000 + epoch,
                                   config.batches_per_epoch):
            yield train.x[ix], train.y[ix]

    return fit_source("classifier", model, batches, cross_entropy_step(model), config,
                      validate=lambda: classifier_accuracy(model, val_x, val_y), val=val,
                      start=start, method=NAME, seed=seed, callbacks=callbacks,
                      embedder=model.embedder, info={"n_source_classes": source.n_classes})


def evaluate(source: SourceModel, task, config: MethodConfig, *, seed: int,
             callbacks: CallbacksArg = None) -> RunResult:
    """Target phase: fresh n-way head, fine-tune on the support, classify the queries."""
    start = time.perf_counter()
    seed_everything(seed)
    model = copy.deepcopy(source.model)
    model.replace_head(task.n_way)
    params = list(model.head.parameters()) if config.head_only else list(model.parameters())
    train, acc = fine_tune_classifier(model, task, config, seed=seed, method=NAME,
                                      callbacks=callbacks, parameters=params)
    return RunResult(method=NAME, accuracy=acc, n_way=task.n_way, k_shot=task.k_shot,
                     seed=seed,
                     metrics={"source_val_score": source.val_score or 0.0,
                              "source_epochs": source.train.epochs,
                              "target_epochs": train.epochs,
                              "target_best_epoch": train.best_epoch},
                     notes="head only" if config.head_only else "",
                     target_seconds=time.perf_counter() - start,
                     interrupted=train.interrupted or source.interrupted, model=model)
