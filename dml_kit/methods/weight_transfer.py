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
from collections.abc import Iterator

import torch

from dml_kit.data import KShotTask
from dml_kit.data.core import Dataset
from dml_kit.methods.batches import epoch_seed, shuffled_batches
from dml_kit.methods.phases import (
    SourcePhase,
    TargetPhase,
    cross_entropy_step,
    fit_source,
    source_parts,
    train_classifier,
)
from dml_kit.methods.registry import Method, SourceTrainer
from dml_kit.methods.results import CallbacksArg, RunResult, SourceModel
from dml_kit.methods.scores import classifier_accuracy
from dml_kit.models import Classifier

NAME = "weight_transfer"


def train_source(source: Dataset, phase: SourcePhase, *, n_way: int = 0, k_shot: int = 0,
                 seed: int, callbacks: CallbacksArg = None) -> SourceModel:
    """Source phase: a classifier over ``source``'s classes, early-stopped on held-out
    accuracy (the task's ``n_way``/``k_shot`` play no part)."""
    start = time.perf_counter()
    train, val, scored = source_parts(source, phase, seed)
    model = Classifier(phase.model.build(source.input_shape, role="classifier"),
                       source.n_classes)
    keep = torch.isin(val.y, scored)  # classifier outputs are source ids: no relabelling
    val_x, val_y = val.x[keep], val.y[keep]

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for ix in shuffled_batches(len(train), phase.batches.batch_size,
                                   epoch_seed(seed, epoch), phase.batches.batches_per_epoch):
            yield train.x[ix], train.y[ix]

    return fit_source("classifier", model, batches, cross_entropy_step(model), phase,
                      validate=lambda: classifier_accuracy(model, val_x, val_y), val=val,
                      start=start, method=NAME, seed=seed, callbacks=callbacks,
                      embedder=model.embedder, info={"n_source_classes": source.n_classes})


def evaluate(source: SourceModel, task: KShotTask, phase: TargetPhase, *, seed: int,
             callbacks: CallbacksArg = None) -> RunResult:
    """Target phase: fresh n-way head, fine-tune on the support, classify the queries."""
    def build() -> Classifier:
        model = copy.deepcopy(source.model)
        assert isinstance(model, Classifier), "a weight-transfer source is a Classifier"
        model.replace_head(task.n_way)
        return model

    return train_classifier(NAME, build, task, phase, seed=seed, callbacks=callbacks,
                            source=source, head_only=phase.head_only)


#: the classifier source model (shared by every method of kind ``"classifier"``)
SOURCE = SourceTrainer("classifier", train_source, cost=1)
METHOD = Method(NAME, "source classifier, new head fine-tuned on the support", evaluate,
                source=SOURCE, loss="cross_entropy")
