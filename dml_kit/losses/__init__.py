"""Metric-learning losses: ``loss(embeddings (B, D), labels (B,)) -> scalar``.

Build them by name with :func:`get` (``available()`` lists the names, ``spec(name)``
their parameters) or import the classes. Modules:

* :mod:`~dml_kit.losses.distances`: pairwise Euclidean / squared / cosine, safe at 0;
* :mod:`~dml_kit.losses.pair`: contrastive, triplet (all / batch-hard / semi-hard),
  lifted structure, N-pair, multi-similarity, histogram, margin;
* :mod:`~dml_kit.losses.proxy`: softmax, NormSoftmax, CosFace, ArcFace, ProxyNCA,
  Proxy-Anchor (own their class weights; need ``num_classes`` and ``embedding_dim``);
* :mod:`~dml_kit.losses.episodic`: prototypical loss;
* :mod:`~dml_kit.losses.selfsup`: NT-Xent;
* :mod:`~dml_kit.losses.compose`: ``with_regularizer(loss, reg, weight)``.
"""

from dml_kit.losses.compose import RegularizedLoss, with_regularizer
from dml_kit.losses.distances import (
    DISTANCES,
    cosine_similarity,
    pairwise_distance,
    pairwise_euclidean,
    pairwise_sq_euclidean,
)
from dml_kit.losses.episodic import PrototypicalLoss, prototypical_loss
from dml_kit.losses.pair import (
    BatchHardTripletLoss,
    ContrastiveLoss,
    HistogramLoss,
    LiftedStructureLoss,
    MarginLoss,
    MultiSimilarityLoss,
    NPairLoss,
    SemiHardTripletLoss,
    TripletLoss,
)
from dml_kit.losses.proxy import (
    ArcFaceLoss,
    CosFaceLoss,
    NormSoftmaxLoss,
    ProxyAnchorLoss,
    ProxyNCALoss,
    SoftmaxLoss,
)
from dml_kit.losses.registry import Spec, available, get, spec
from dml_kit.losses.selfsup import NTXentLoss, ntxent_loss

__all__ = [
    "DISTANCES",
    "ArcFaceLoss",
    "BatchHardTripletLoss",
    "ContrastiveLoss",
    "CosFaceLoss",
    "HistogramLoss",
    "LiftedStructureLoss",
    "MarginLoss",
    "MultiSimilarityLoss",
    "NPairLoss",
    "NTXentLoss",
    "NormSoftmaxLoss",
    "PrototypicalLoss",
    "ProxyAnchorLoss",
    "ProxyNCALoss",
    "RegularizedLoss",
    "SemiHardTripletLoss",
    "SoftmaxLoss",
    "Spec",
    "TripletLoss",
    "available",
    "cosine_similarity",
    "get",
    "ntxent_loss",
    "pairwise_distance",
    "pairwise_euclidean",
    "pairwise_sq_euclidean",
    "prototypical_loss",
    "spec",
    "with_regularizer",
]
