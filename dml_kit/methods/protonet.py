"""``protonet``: prototypical networks (Snell, Swersky & Zemel 2017), the few-shot paradigm.

Recipe (Adapted Deep Embeddings, "prototypical nets"):

1. source phase, episodic: each episode draws ``way`` source classes (the target n by
   default) with ``shot`` support examples (the target k by default, as the paper) and
   ``query_per_class`` queries each; prototypes ``c_j`` are the support means and the loss
   is ``-log softmax_j(-||f(q) - c_j||^2)`` of the true class, averaged over queries
   (plus an optional norm regularizer on all episode embeddings). Early stopping on
   the prototype accuracy of the held-out validation part, prototypes taken from (up
   to 10 per class of) the training images, as the paper's T1 score;
2. target phase: no training; each query goes to the nearest support prototype
   (squared Euclidean).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import torch

from dml_kit.data import KShotTask
from dml_kit.data.core import Dataset
from dml_kit.methods.batches import EpisodeSpec, episode_batches, epoch_seed
from dml_kit.methods.phases import (
    SourcePhase,
    TargetPhase,
    embedding_step,
    fit_source,
    score_embedding,
    source_parts,
)
from dml_kit.methods.registry import Method, SourceTrainer
from dml_kit.methods.results import CallbacksArg, RunResult, SourceModel
from dml_kit.metrics import embed, prototype_accuracy

NAME = "protonet"
#: training images per class used as prototypes when scoring the source validation part
PROTOTYPE_IMAGES = 10


def episode_shape(spec: EpisodeSpec, source: Dataset, n_way: int, k_shot: int,
                  ) -> tuple[int, int, int]:
    """``(way, shot, query)`` of the source episodes: the target n and k unless the
    spec fixes them, ``way`` capped by the classes of ``source``."""
    way = min(spec.way or n_way, source.n_classes)
    shot = spec.shot or k_shot
    return way, shot, spec.query


def train_source(source: Dataset, phase: SourcePhase, *, n_way: int, k_shot: int,
                 seed: int, callbacks: CallbacksArg = None) -> SourceModel:
    """Source phase: episodic prototypical training, early-stopped on held-out prototype
    accuracy."""
    start = time.perf_counter()
    train, val, scored_ids = source_parts(source, phase, seed)
    way, shot, query = episode_shape(phase.episodes, train, n_way, k_shot)
    query = max(1, min(query, train.min_class_size - shot))
    if train.min_class_size < shot + 1:
        raise ValueError(f"k_shot={shot} is out of range for protonet source episodes: the "
                         f"source training part has only {train.min_class_size} examples in "
                         "its smallest class (need shot + 1)")
    embedder = phase.model.build(source.input_shape, role="protonet")
    loss_fn = phase.objective.build_episodic()
    # validation: held-out images of (up to val_classes) source classes against prototypes
    # of up to PROTOTYPE_IMAGES training images of the same classes
    ids = scored_ids.tolist()
    scored_val, proto_src = val.select_classes(ids), train.select_classes(ids)
    g = torch.Generator().manual_seed(seed)
    proto_idx = torch.cat([
        (ix := torch.nonzero(proto_src.y == c).flatten())[torch.randperm(len(ix), generator=g)
                                                         [:PROTOTYPE_IMAGES]]
        for c in range(proto_src.n_classes)])

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        yield from episode_batches(train.x, train.y, way, shot, query,
                                   phase.episodes.per_epoch, epoch_seed(seed, epoch))

    def validate() -> float:
        p = embed(embedder, proto_src.x[proto_idx])
        return prototype_accuracy(p, proto_src.y[proto_idx], embed(embedder, scored_val.x),
                                  scored_val.y)

    return fit_source("protonet", embedder, batches, embedding_step(embedder, loss_fn), phase,
                      validate=validate, val=val, start=start, method=NAME, seed=seed,
                      callbacks=callbacks,
                      parameters=[*embedder.parameters(), *loss_fn.parameters()],
                      info={"way": way, "shot": shot, "query": query},
                      train=phase.episodic)


def evaluate(source: SourceModel, task: KShotTask, phase: TargetPhase, *, seed: int,
             callbacks: CallbacksArg = None) -> RunResult:
    """Target phase: nearest support prototype (squared Euclidean)."""
    return score_embedding(NAME, source, task, "prototype", seed=seed)


#: the episodic source model (shared by ``protonet`` and ``adapted_protonet``)
SOURCE = SourceTrainer("protonet", train_source, uses_regularizer=True, episodic=True, cost=2)
METHOD = Method(NAME, "episodic prototypical network, nearest prototype", evaluate,
                source=SOURCE, embedding=True, uses_regularizer=True, loss="prototypical")
