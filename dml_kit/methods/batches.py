"""How the method recipes draw their data: the stratified source holdout, seeded shuffled
batches, balanced ``P x M`` batches, few-shot episodes, a probe set, and the one
per-epoch seed rule :func:`epoch_seed`.

Each helper is one step of the Adapted Deep Embeddings protocol (Scott, Ridgeway &
Mozer, NeurIPS 2018) that several methods repeat.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch

from dml_kit.data import BalancedBatchSampler, Episode, EpisodeSampler
from dml_kit.data.core import Dataset

#: seeds of consecutive epochs of one run are ``seed * EPOCH_SEED_STRIDE + epoch``
EPOCH_SEED_STRIDE = 1000


def epoch_seed(seed: int, epoch: int) -> int:
    """The sampling seed of ``epoch`` in a run seeded ``seed``: ``seed * 1000 + epoch``.

    Every batch and episode stream of the methods is drawn with it, so an epoch's
    batches depend on the run's seed and the epoch only (runs of different seeds do
    not share batches while ``epoch < 1000``)."""
    return seed * EPOCH_SEED_STRIDE + epoch


@dataclass(frozen=True)
class BatchSpec:
    """How a phase batches its data.

    Attributes:
        batch_size: shuffled batches of the classifiers (cross-entropy).
        classes, per_class: ``P`` classes x ``M`` examples of a balanced pair-loss batch.
        batches_per_epoch: batches per epoch (``None``: about one pass over the data).
    """

    batch_size: int
    classes: int
    per_class: int
    batches_per_epoch: int | None = None

    @property
    def balanced_size(self) -> int:
        """``P * M``, the size of a full balanced batch."""
        return self.classes * self.per_class


@dataclass(frozen=True)
class EpisodeSpec:
    """How an episodic phase draws its episodes.

    Attributes:
        per_epoch: episodes per epoch.
        query: query examples per class.
        way, shot: classes and support examples per class (``None``: the target n and k).
    """

    per_epoch: int
    query: int
    way: int | None = None
    shot: int | None = None


def holdout(data: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Hold out ``fraction`` of *each* class (at least one example, at least one kept) as a
    validation part: the paper's T1 train/validation split, stratified."""
    g = torch.Generator().manual_seed(seed)
    train_idx, val_idx = [], []
    for c in range(data.n_classes):
        idx = torch.nonzero(data.y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        if len(idx) < 2:
            raise ValueError(f"source class {data.class_names[c]!r} has {len(idx)} example(s); "
                             "each source class needs at least 2 (train and validation)")
        n_val = min(max(1, round(fraction * len(idx))), len(idx) - 1)
        val_idx.append(idx[:n_val])
        train_idx.append(idx[n_val:])
    tr, va = torch.cat(train_idx).sort().values, torch.cat(val_idx).sort().values

    def part(ix: torch.Tensor, suffix: str) -> Dataset:
        return Dataset(name=f"{data.name}[{suffix}]", x=data.x[ix], y=data.y[ix],
                       class_names=data.class_names, class_groups=data.class_groups)

    return part(tr, "train"), part(va, "val")


def scoring_classes(data: Dataset, max_classes: int | None, seed: int) -> torch.Tensor:
    """Ids of the (at most ``max_classes``, seeded random) classes whose held-out examples
    score the source phase; all classes when ``max_classes`` is ``None`` or larger."""
    if max_classes is None or max_classes >= data.n_classes:
        return torch.arange(data.n_classes)
    g = torch.Generator().manual_seed(seed + 7919)
    return torch.randperm(data.n_classes, generator=g)[:max_classes].sort().values


def shuffled_batches(n: int, batch_size: int, seed: int,
                     max_batches: int | None = None) -> Iterator[torch.Tensor]:
    """Index batches of a seeded random permutation of ``range(n)``."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    for b, i in enumerate(range(0, n, batch_size)):
        if max_batches is not None and b >= max_batches:
            return
        yield perm[i:i + batch_size]


def probe_subset(data: Dataset, max_classes: int = 10, per_class: int = 10,
                 seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed small probe set for the callbacks: ``per_class`` examples of the first
    ``max_classes`` classes (seeded choice within each class)."""
    g = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(min(max_classes, data.n_classes)):
        idx = torch.nonzero(data.y == c).flatten()
        picks.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    ix = torch.cat(picks)
    return data.x[ix], data.y[ix]


def balanced_batches(data: Dataset | torch.Tensor, spec: BatchSpec,
                     seed: int) -> Iterator[torch.Tensor]:
    """One epoch of balanced index batches (``P`` classes x ``M`` examples) for pair losses,
    via :class:`dml_kit.data.BalancedBatchSampler`. ``P`` and ``M`` are capped by the
    number of classes and the smallest class; the default epoch covers the data about
    once (``len / (P * M)`` batches)."""
    labels = data.y if isinstance(data, Dataset) else data
    counts = torch.bincount(labels)
    counts = counts[counts > 0]
    p = min(spec.classes, len(counts))
    m = max(2, min(spec.per_class, int(counts.min())))
    n_batches = spec.batches_per_epoch or max(1, len(labels) // (p * m))
    yield from BalancedBatchSampler(labels, p, m, seed=seed, batches_per_epoch=n_batches)


def episodes(labels: torch.Tensor, n_way: int, k_shot: int, q_query: int, n_episodes: int,
             seed: int) -> Iterator[Episode]:
    """One epoch of few-shot episodes via :class:`dml_kit.data.EpisodeSampler`."""
    yield from EpisodeSampler(labels, n_way, k_shot, q_query, n_episodes=n_episodes, seed=seed)


def episode_batches(x: torch.Tensor, labels: torch.Tensor, n_way: int, k_shot: int,
                    q_query: int, n_episodes: int, seed: int,
                    ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """:func:`episodes` as batches ``(support then query images, support_y, query_y)``,
    the input of :class:`dml_kit.losses.EpisodeLoss`."""
    for ep in episodes(labels, n_way, k_shot, q_query, n_episodes, seed):
        yield torch.cat([x[ep.support_idx], x[ep.query_idx]]), ep.support_y, ep.query_y


__all__ = ["EPOCH_SEED_STRIDE", "BatchSpec", "EpisodeSpec", "balanced_batches",
           "episode_batches", "episodes", "epoch_seed", "holdout", "probe_subset",
           "scoring_classes", "shuffled_batches"]
