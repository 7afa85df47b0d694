"""Metric-learning losses: ``loss(embeddings (B, D), labels (B,)) -> scalar``.

Build them by name with :func:`get` (``available()`` lists the names, ``spec(name)``
their parameters) or import the classes. Modules:

* :mod:`~dml_kit.losses.distances`: pairwise Euclidean / squared / cosine, safe at 0,
  as distances or scores (higher = closer), and class means (prototypes); the kit's one
  list of distance names (``DISTANCES``), which :mod:`dml_kit.metrics` uses too;
* :mod:`~dml_kit.losses.pair`: contrastive, triplet (all / batch-hard / semi-hard),
  lifted structure, N-pair, multi-similarity, histogram, margin;
* :mod:`~dml_kit.losses.proxy`: softmax, NormSoftmax, CosFace, ArcFace, ProxyNCA,
  Proxy-Anchor (own their class weights; need ``num_classes`` and ``embedding_dim``);
* :mod:`~dml_kit.losses.episodic`: prototypical loss (of a batch, or of an episode laid
  out as support then queries: ``EpisodeLoss``);
* :mod:`~dml_kit.losses.selfsup`: NT-Xent;
* :mod:`~dml_kit.losses.compose`: ``with_regularizer(loss, reg, weight)``, the one way to
  add a :mod:`dml_kit.regularizers` term to a loss.
"""

from dml_kit.losses.compose import RegularizedLoss, with_regularizer
from dml_kit.losses.distances import (
    DISTANCES,
    class_means,
    cosine_similarity,
    pairwise_distance,
    pairwise_euclidean,
    pairwise_scores,
    pairwise_sq_euclidean,
)
from dml_kit.losses.episodic import EpisodeLoss, PrototypicalLoss, prototypical_loss
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
    "EpisodeLoss",
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
    "class_means",
    "cosine_similarity",
    "get",
    "ntxent_loss",
    "pairwise_distance",
    "pairwise_euclidean",
    "pairwise_scores",
    "pairwise_sq_euclidean",
    "prototypical_loss",
    "spec",
    "with_regularizer",
]
