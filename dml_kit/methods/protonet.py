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

import torch

from dml_kit import losses
from dml_kit.data.core import Dataset
from dml_kit.methods.common import (
    CallbacksArg,
    RunResult,
    SourceModel,
    build_embedder,
    embedding_metrics,
    episodes,
    fit_source,
    make_regularizer,
    source_parts,
)
from dml_kit.methods.config import MethodConfig
from dml_kit.metrics import embed, prototype_accuracy

NAME = "protonet"
#: training images per class used as prototypes when scoring the source validation part
PROTOTYPE_IMAGES = 10


def episode_shape(config: MethodConfig, source: Dataset, n_way: int, k_shot: int,
                  ) -> tuple[int, int, int]:
    """``(way, shot, query)`` of the source episodes: the target n and k unless the
    config fixes them, capped to what the held-out training part can supply."""
    way = min(config.train_way or n_way, source.n_classes)
    shot = config.train_shot or k_shot
    return way, shot, config.query_per_class


def episode_loss(embedder, config: MethodConfig, reg=None):
    """``step_loss`` for an episode batch ``(x, support_count, y)``: prototypical loss
    (+ ``weight * R(embeddings)``)."""
    def step(batch):
        x, ys, yq = batch
        emb = embedder(x)
        s, q = emb[:len(ys)], emb[len(ys):]
        loss = losses.prototypical_loss(s, ys, q, yq)
        if reg is not None:
            loss = loss + config.regularizer_weight * reg(emb)
        return loss
    return step


def train_source(source: Dataset, config: MethodConfig, *, n_way: int, k_shot: int,
                 seed: int, callbacks: CallbacksArg = None) -> SourceModel:
    """Source phase: episodic prototypical training, early-stopped on held-out prototype
    accuracy."""
    start = time.perf_counter()
    train, val, scored_ids = source_parts(source, config, seed)
    way, shot, query = episode_shape(config, train, n_way, k_shot)
    query = max(1, min(query, train.min_class_size - shot))
    if train.min_class_size < shot + 1:
        raise ValueError(f"k_shot={shot} is out of range for protonet source episodes: the "
                         f"source training part has only {train.min_class_size} examples in "
                         "its smallest class (need shot + 1)")
    embedder = build_embedder(source.input_shape, config)
    reg = make_regularizer(config)
    # validation: held-out images of (up to val_classes) source classes against prototypes
    # of up to PROTOTYPE_IMAGES training images of the same classes
    ids = scored_ids.tolist()
    scored_val, proto_src = val.select_classes(ids), train.select_classes(ids)
    g = torch.Generator().manual_seed(seed)
    proto_idx = torch.cat([
        (ix := torch.nonzero(proto_src.y == c).flatten())[torch.randperm(len(ix), generator=g)
                                                         [:PROTOTYPE_IMAGES]]
        for c in range(proto_src.n_classes)])

    def batches(epoch: int):
        for ep in episodes(train.y, way, shot, query, config.episodes_per_epoch,
                           seed * 1000 + epoch):
            x = torch.cat([train.x[ep.support_idx], train.x[ep.query_idx]])
            yield x, ep.support_y, ep.query_y

    def validate() -> float:
        p = embed(embedder, proto_src.x[proto_idx])
        return prototype_accuracy(p, proto_src.y[proto_idx], embed(embedder, scored_val.x),
                                  scored_val.y)

    return fit_source("protonet", embedder, batches, episode_loss(embedder, config, reg),
                      config, validate=validate, val=val, start=start, method=NAME,
                      seed=seed, callbacks=callbacks,
                      parameters=[*embedder.parameters(), *(reg.parameters() if reg else [])],
                      info={"way": way, "shot": shot, "query": query})


def evaluate(source: SourceModel, task, config: MethodConfig, *, seed: int,
             callbacks: CallbacksArg = None) -> RunResult:
    """Target phase: nearest support prototype (squared Euclidean)."""
    start = time.perf_counter()
    acc, extra = embedding_metrics(source.model, task.support_x, task.support_y,
                                   task.query_x, task.query_y, "prototype")
    extra.update({"source_val_score": source.val_score or 0.0,
                  "source_epochs": source.train.epochs})
    return RunResult(method=NAME, accuracy=acc, n_way=task.n_way, k_shot=task.k_shot,
                     seed=seed, metrics=extra, target_seconds=time.perf_counter() - start,
                     interrupted=source.interrupted, model=source.model)
