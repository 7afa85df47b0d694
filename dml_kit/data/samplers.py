"""Index samplers for metric learning and episodic (few-shot) training.

- :class:`BalancedBatchSampler`: batches of ``P`` classes x ``M`` examples, so that every
  batch holds positive pairs for pair- and triplet-based losses.
- :class:`EpisodeSampler`: ``n``-way ``k``-shot ``q``-query episodes for prototypical
  networks (Snell et al., 2017).

Both are seeded (a private ``torch.Generator`` created at construction: two samplers
with the same seed yield the same sequence, and each new pass over a sampler continues
that sequence) and draw each batch with a few vectorised tensor operations.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import Sampler

from dml_kit._validation import check_int, check_seed


def _as_labels(labels: torch.Tensor | Sequence[int]) -> torch.Tensor:
    """Labels as a 1-d int64 tensor of non-negative ints."""
    tensor = torch.as_tensor(labels)
    if tensor.ndim != 1 or tensor.numel() == 0:
        raise ValueError(f"labels must be a non-empty 1-d sequence, got shape "
                         f"{tuple(tensor.shape)}")
    if tensor.is_floating_point() or tensor.is_complex() or tensor.dtype == torch.bool:
        raise ValueError(f"labels must be integers, got dtype {tensor.dtype}")
    tensor = tensor.long().cpu()
    if int(tensor.min()) < 0:
        raise ValueError("labels must be >= 0")
    return tensor


class _ClassIndex:
    """Rows of each class, stored as one sorted array with per-class offsets."""

    def __init__(self, labels: torch.Tensor) -> None:
        self.order = torch.argsort(labels, stable=True)        # rows sorted by class
        counts = torch.bincount(labels)
        self.classes = torch.nonzero(counts).squeeze(1)         # labels that occur
        self.counts = counts[self.classes]
        self.starts = (torch.cumsum(counts, 0) - counts)[self.classes]

    def draw(self, chosen: torch.Tensor, per_class: int,
             generator: torch.Generator) -> torch.Tensor:
        """``(len(chosen), per_class)`` rows: ``per_class`` distinct rows of each chosen
        class (positions into ``self.classes``); a class with fewer rows than
        ``per_class`` contributes all of them and repeats random ones to fill up."""
        counts = self.counts[chosen]
        width = int(counts.max())
        keys = torch.rand(len(chosen), width, generator=generator)
        keys[torch.arange(width) >= counts.unsqueeze(1)] = 2.0   # past the class's end
        take = min(per_class, width)
        positions = keys.topk(take, dim=1, largest=False).indices
        if take < per_class:
            positions = torch.cat([positions, torch.empty(len(chosen), per_class - take,
                                                          dtype=torch.long)], dim=1)
        short = torch.arange(per_class) >= counts.unsqueeze(1)    # slots a class can't fill
        if short.any():
            filler = (torch.rand(len(chosen), per_class, generator=generator)
                      * counts.unsqueeze(1)).long()
            positions = torch.where(short, filler, positions)
        return self.order[self.starts[chosen].unsqueeze(1) + positions]


class BalancedBatchSampler(Sampler[torch.Tensor]):
    """Batches of ``classes_per_batch`` (P) classes x ``samples_per_class`` (M) examples.

    Each batch draws P distinct classes uniformly, then M distinct examples of each. A
    class with fewer than M examples is *not* skipped: it contributes all of its
    examples and repeats randomly chosen ones to fill its M slots (sampling with
    replacement), so rare classes stay reachable; the repeats are exact duplicates.

    Yields ``LongTensor`` index batches of shape ``(P * M,)``, grouped by class. Usable as
    a ``DataLoader``'s ``batch_sampler`` or to index tensors directly.

    Args:
        labels: ``(N,)`` integer class labels.
        classes_per_batch: P, ``1 .. number of classes``.
        samples_per_class: M, >= 1.
        seed: int >= 0.
        batches_per_epoch: batches per pass; default ``max(1, N // (P * M))``, about one
            pass over the data.
    """

    def __init__(self, labels: torch.Tensor | Sequence[int], classes_per_batch: int,
                 samples_per_class: int, *, seed: int = 0,
                 batches_per_epoch: int | None = None) -> None:
        self.labels = _as_labels(labels)
        self._index = _ClassIndex(self.labels)
        n_classes = len(self._index.classes)
        self.classes_per_batch = check_int("classes_per_batch", classes_per_batch, 1, n_classes,
                                           hint=f"the labels have {n_classes} classes")
        self.samples_per_class = check_int("samples_per_class", samples_per_class, 1)
        self.seed = check_seed(seed)
        batch_size = self.classes_per_batch * self.samples_per_class
        if batches_per_epoch is None:
            batches_per_epoch = max(1, len(self.labels) // batch_size)
        self.batches_per_epoch = check_int("batches_per_epoch", batches_per_epoch, 1)
        self._generator = torch.Generator().manual_seed(self.seed)

    @property
    def batch_size(self) -> int:
        """P * M."""
        return self.classes_per_batch * self.samples_per_class

    def __len__(self) -> int:
        return self.batches_per_epoch

    def __iter__(self) -> Iterator[torch.Tensor]:
        n_classes = len(self._index.classes)
        for _ in range(self.batches_per_epoch):
            keys = torch.rand(n_classes, generator=self._generator)
            chosen = keys.topk(self.classes_per_batch, largest=False).indices
            rows = self._index.draw(chosen, self.samples_per_class, self._generator)
            yield rows.reshape(-1)

    def __repr__(self) -> str:
        return (f"BalancedBatchSampler({self.classes_per_batch} classes x "
                f"{self.samples_per_class} samples, {self.batches_per_epoch} batches per "
                f"epoch, seed={self.seed})")


@dataclass(frozen=True, eq=False)
class Episode:
    """One few-shot episode; indices refer to the sampler's ``labels``.

    Attributes:
        support_idx: ``(n_way * k_shot,)`` rows, class by class.
        query_idx: ``(n_way * q_query,)`` rows, class by class, disjoint from the support.
        support_y, query_y: episode labels ``0 .. n_way - 1`` for those rows.
        classes: ``(n_way,)`` the original labels of episode classes ``0 .. n_way - 1``.
    """

    support_idx: torch.Tensor
    query_idx: torch.Tensor
    support_y: torch.Tensor
    query_y: torch.Tensor
    classes: torch.Tensor

    @property
    def n_way(self) -> int:
        return int(self.classes.shape[0])

    @property
    def k_shot(self) -> int:
        return int(self.support_idx.shape[0]) // self.n_way

    @property
    def q_query(self) -> int:
        return int(self.query_idx.shape[0]) // self.n_way

    def __repr__(self) -> str:
        return (f"Episode({self.n_way}-way {self.k_shot}-shot {self.q_query}-query, "
                f"classes {self.classes.tolist()})")


class EpisodeSampler(Sampler[Episode]):
    """``n_episodes`` episodes of ``n_way`` classes x (``k_shot`` support + ``q_query``
    query) examples, support and query disjoint.

    Only classes with at least ``k_shot + q_query`` examples take part; ``n_way`` must not
    exceed their number.

    Args:
        labels: ``(N,)`` integer class labels.
        n_way: classes per episode.
        k_shot: support examples per class, >= 1.
        q_query: query examples per class, >= 1.
        n_episodes: episodes per pass (``len(sampler)``).
        seed: int >= 0.
    """

    def __init__(self, labels: torch.Tensor | Sequence[int], n_way: int, k_shot: int,
                 q_query: int, *, n_episodes: int, seed: int = 0) -> None:
        self.labels = _as_labels(labels)
        self.k_shot = check_int("k_shot", k_shot, 1)
        self.q_query = check_int("q_query", q_query, 1)
        self.n_episodes = check_int("n_episodes", n_episodes, 1)
        self.seed = check_seed(seed)
        index = _ClassIndex(self.labels)
        per_class = self.k_shot + self.q_query
        largest = int(index.counts.max())
        if largest < per_class:
            raise ValueError(
                f"k_shot={self.k_shot} + q_query={self.q_query} = {per_class} is out of range: "
                f"must be <= {largest}, the size of the largest class")
        eligible = index.counts >= per_class
        self._index = index
        self._eligible = torch.nonzero(eligible).squeeze(1)
        n_eligible = len(self._eligible)
        self.n_way = check_int(
            "n_way", n_way, 1, n_eligible,
            hint=f"{n_eligible} classes have at least k_shot + q_query = {per_class} examples")
        self._generator = torch.Generator().manual_seed(self.seed)

    def __len__(self) -> int:
        return self.n_episodes

    def __iter__(self) -> Iterator[Episode]:
        per_class = self.k_shot + self.q_query
        support_y = torch.arange(self.n_way).repeat_interleave(self.k_shot)
        query_y = torch.arange(self.n_way).repeat_interleave(self.q_query)
        for _ in range(self.n_episodes):
            keys = torch.rand(len(self._eligible), generator=self._generator)
            chosen = self._eligible[keys.topk(self.n_way, largest=False).indices]
            rows = self._index.draw(chosen, per_class, self._generator)
            yield Episode(
                support_idx=rows[:, :self.k_shot].reshape(-1),
                query_idx=rows[:, self.k_shot:].reshape(-1),
                support_y=support_y,
                query_y=query_y,
                classes=self._index.classes[chosen],
            )

    def __repr__(self) -> str:
        return (f"EpisodeSampler({self.n_way}-way {self.k_shot}-shot {self.q_query}-query, "
                f"{self.n_episodes} episodes, seed={self.seed})")


