"""Episodic loss: the prototypical-network loss (Snell, Swersky & Zemel, NeurIPS 2017)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dml_kit._validation import check_choice, check_embeddings, check_float
from dml_kit.losses._common import check_inputs, within_class_rank, zero_loss
from dml_kit.losses.distances import DISTANCES, class_means, pairwise_distance


def prototypical_loss(support_emb: torch.Tensor, support_y: torch.Tensor,
                      query_emb: torch.Tensor, query_y: torch.Tensor,
                      distance: str = "sqeuclidean") -> torch.Tensor:
    """Prototypical loss of an n-way k-shot q-query episode (Snell et al. 2017).

    Prototype ``c_j`` = mean of the support embeddings of class ``j``;
    ``p(y = j | q) = softmax_j(-d(f(q), c_j))`` with ``d`` the squared Euclidean distance
    (the paper's choice; ``"euclidean"`` and ``"cosine"`` are offered for comparison)::

        L = 1/Q sum_q -log p(y_q | q)

    Averaging: mean over the ``Q`` queries. Labels may be any integers; every query
    label must occur in the support set. Classes present only in the support set act
    as distractor prototypes.
    """
    check_inputs(support_emb, support_y, ("support_emb", "support_y"))
    check_inputs(query_emb, query_y, ("query_emb", "query_y"))
    check_choice("distance", distance, DISTANCES)
    if support_emb.shape[1] != query_emb.shape[1]:
        raise ValueError(f"support_emb and query_emb must have the same embedding dimension, "
                         f"got shapes {tuple(support_emb.shape)} and {tuple(query_emb.shape)}")
    if support_emb.shape[0] == 0:
        raise ValueError("the support set is empty")
    if query_emb.shape[0] == 0:
        return zero_loss(support_emb) + zero_loss(query_emb)
    classes, prototypes = class_means(support_emb, support_y)  # classes sorted
    target = torch.searchsorted(classes, query_y).clamp_max(len(classes) - 1)
    if not bool((classes[target] == query_y).all()):
        missing = sorted(set(query_y.tolist()) - set(classes.tolist()))
        raise ValueError(f"query labels {missing} have no support examples")
    logits = -pairwise_distance(query_emb, prototypes, distance=distance)
    return F.cross_entropy(logits, target)


class PrototypicalLoss(nn.Module):
    """The prototypical loss as a plain ``loss(embeddings, labels)``.

    The batch is split deterministically, class by class in batch order: the first
    ``max(1, floor(support_fraction * n_c))`` samples of a class with ``n_c`` samples are
    its support set, the rest its queries (a class with one sample is support only,
    i.e. a distractor prototype). Then :func:`prototypical_loss` (squared Euclidean,
    Snell et al. 2017), averaged over the queries. Default ``support_fraction=0.5``
    (the Adapted Deep Embeddings code adapts with ``floor(0.75 k)`` support examples).
    Batches without any query give 0.
    """

    def __init__(self, support_fraction: float = 0.5, distance: str = "sqeuclidean") -> None:
        super().__init__()
        self.support_fraction = check_float("support_fraction", support_fraction, 0.0, 1.0,
                                            low_inclusive=False, high_inclusive=False)
        self.distance = check_choice("distance", distance, DISTANCES)

    def split(self, labels: torch.Tensor) -> torch.Tensor:
        """Boolean mask: ``True`` for the support samples of the deterministic split."""
        rank, count = within_class_rank(labels)
        n_support = (count.to(torch.float64) * self.support_fraction).floor().clamp_min(1)
        return rank < n_support

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_inputs(embeddings, labels)
        support = self.split(labels)
        if bool(support.all()):
            return zero_loss(embeddings)
        query = ~support
        return prototypical_loss(embeddings[support], labels[support], embeddings[query],
                                 labels[query], distance=self.distance)


class EpisodeLoss(nn.Module):
    """The prototypical loss of one sampled episode laid out as one batch:
    ``loss(embeddings, support_y, query_y)`` where the first ``len(support_y)`` rows of
    ``embeddings`` are the support set and the rest the queries (what
    :class:`dml_kit.data.EpisodeSampler` episodes give). Then
    :func:`prototypical_loss` (Snell et al. 2017), averaged over the queries. Wrap it with
    :func:`dml_kit.losses.with_regularizer` to add a norm regularizer over the whole
    episode."""

    def __init__(self, distance: str = "sqeuclidean") -> None:
        super().__init__()
        self.distance = check_choice("distance", distance, DISTANCES)

    def forward(self, embeddings: torch.Tensor, support_y: torch.Tensor,
                query_y: torch.Tensor) -> torch.Tensor:
        n = len(support_y)
        check_embeddings("embeddings", embeddings)  # name the argument the caller passed
        return prototypical_loss(embeddings[:n], support_y, embeddings[n:], query_y,
                                 distance=self.distance)


__all__ = ["EpisodeLoss", "PrototypicalLoss", "prototypical_loss"]
