"""How the methods score a model: the classification rules on embeddings (1-NN cosine,
nearest prototype), their leave-one-out forms for early stopping on the support, and a
classifier's accuracy. Distances and prototypes come from
:mod:`dml_kit.losses.distances` through :mod:`dml_kit.metrics`."""

from __future__ import annotations

import torch
from torch import nn

from dml_kit import metrics
from dml_kit.data import KShotTask
from dml_kit.losses.distances import class_means, pairwise_distance

#: the target classification rules and the distance each uses: ``"1nn"`` (cosine nearest
#: support example, the paper's histogram rule), ``"prototype"`` (nearest class mean,
#: squared Euclidean, Snell et al. 2017)
RULE_DISTANCE = {"1nn": "cosine", "prototype": "sqeuclidean"}


def loo_prototype_accuracy(emb: torch.Tensor, labels: torch.Tensor) -> float:
    """Leave-one-out nearest-prototype accuracy on one labelled set: each example is
    classified against the class means with itself removed from its own class mean,
    ``c_y^{-i} = (|S_y| c_y - f_i) / (|S_y| - 1)`` (squared Euclidean). Classes with one
    example are scored against the others only."""
    emb = emb.double()
    classes, protos = class_means(emb, labels)
    inv = torch.searchsorted(classes, labels)
    counts = torch.bincount(inv, minlength=len(classes)).double()
    d = pairwise_distance(emb, protos, distance="sqeuclidean")
    own_count = counts[inv] - 1
    own = (protos[inv] * counts[inv].unsqueeze(1) - emb) / own_count.clamp_min(1).unsqueeze(1)
    d_own = (emb - own).pow(2).sum(1)
    d_own[own_count == 0] = float("inf")
    d[torch.arange(len(emb)), inv] = d_own
    return float((classes[d.argmin(1)] == labels).double().mean())


def loo_1nn_accuracy(emb: torch.Tensor, labels: torch.Tensor) -> float:
    """Leave-one-out cosine 1-NN accuracy (= Recall@1), the paper's T1 score for the
    histogram-loss nets."""
    if len(labels) < 2:
        return 0.0
    return metrics.recall_at_k(emb, labels, ks=(1,), distance="cosine")[1]


def loo_accuracy(emb: torch.Tensor, labels: torch.Tensor, rule: str) -> float:
    """The leave-one-out form of ``rule`` on one labelled set (the paper's T2 score when a
    task has no validation part)."""
    return loo_1nn_accuracy(emb, labels) if rule == "1nn" else loo_prototype_accuracy(emb, labels)


def classify_accuracy(support_emb: torch.Tensor, support_y: torch.Tensor,
                      query_emb: torch.Tensor, query_y: torch.Tensor,
                      rule: str) -> float:
    """Target accuracy under ``rule``: ``"1nn"`` (cosine nearest support example, the
    paper's histogram rule) or ``"prototype"`` (nearest class mean, squared Euclidean,
    Snell et al.)."""
    if rule == "1nn":
        return metrics.knn_accuracy(support_emb, support_y, query_emb, query_y, k=1,
                                    distance=RULE_DISTANCE[rule])
    return metrics.prototype_accuracy(support_emb, support_y, query_emb, query_y,
                                      distance=RULE_DISTANCE[rule])


def embedding_metrics(embedder: nn.Module, support_x: torch.Tensor, support_y: torch.Tensor,
                      query_x: torch.Tensor, query_y: torch.Tensor,
                      rule: str) -> tuple[float, dict[str, float]]:
    """Embed support and queries once; return the accuracy under ``rule`` and both rules'
    accuracies plus the query norm statistics as extra metrics."""
    s = metrics.embed(embedder, support_x)
    q = metrics.embed(embedder, query_x)
    acc_1nn = classify_accuracy(s, support_y, q, query_y, "1nn")
    acc_proto = classify_accuracy(s, support_y, q, query_y, "prototype")
    ns = metrics.norm_stats(q)
    extra = {"acc_1nn": acc_1nn, "acc_prototype": acc_proto,
             "norm_mean": ns["mean"], "norm_cv": ns["cv"]}
    return (acc_1nn if rule == "1nn" else acc_proto), extra


def classifier_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``x`` whose argmax logit is the label."""
    logits = metrics.embed(model, x)
    return float((logits.argmax(1) == y).double().mean())


def has_val(task: KShotTask) -> bool:
    """Whether a k-shot task carries a labelled validation part (``n_val > 0``)."""
    val_x = getattr(task, "val_x", None)
    return val_x is not None and len(val_x) > 0


__all__ = ["RULE_DISTANCE", "classifier_accuracy", "classify_accuracy", "embedding_metrics",
           "has_val", "loo_1nn_accuracy", "loo_accuracy", "loo_prototype_accuracy"]
