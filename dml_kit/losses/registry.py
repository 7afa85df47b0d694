"""One registry of the losses by name, with their parameters and defaults.

``get("triplet", margin=0.1)`` builds a loss; ``available()`` lists the names;
``spec("arcface")`` says what a widget or a grid needs to know to offer it: its
parameters with their defaults, the required ones (``num_classes`` and
``embedding_dim`` for the proxy and classification losses), and a one-line
description. Unknown names and unknown parameters raise ``ValueError`` listing what is
allowed. :mod:`dml_kit.regularizers` uses the same :class:`~dml_kit.registry.Registry`
class (defined in the neutral :mod:`dml_kit.registry`).
"""

from __future__ import annotations

from typing import Any

import torch.nn as nn

from dml_kit.losses import episodic, pair, proxy, selfsup
from dml_kit.registry import Registry, Spec

LOSSES = Registry("loss")
_R = LOSSES.register
_R("contrastive", pair.ContrastiveLoss,
   "Contrastive loss (Hadsell et al. 2006): pull positives together, push negatives "
   "beyond a margin.", "pair")
_R("triplet", pair.TripletLoss,
   "Triplet loss over all valid triplets (FaceNet; 'batch all'), mean over active "
   "triplets.", "pair")
_R("triplet_batch_hard", pair.BatchHardTripletLoss,
   "Batch-hard triplet loss (Hermans et al. 2017): hardest positive and negative per "
   "anchor.", "pair")
_R("triplet_semi_hard", pair.SemiHardTripletLoss,
   "Semi-hard triplet loss (FaceNet): closest negative farther than the positive.", "pair")
_R("lifted_structure", pair.LiftedStructureLoss,
   "Lifted structured loss (Oh Song et al. 2016): smooth hardest negatives of both ends "
   "of each positive pair.", "pair")
_R("npair", pair.NPairLoss,
   "Multi-class N-pair loss (Sohn 2016): softmax over one positive per class.", "pair")
_R("multi_similarity", pair.MultiSimilarityLoss,
   "Multi-similarity loss (Wang et al. 2019) with its pair mining.", "pair")
_R("histogram", pair.HistogramLoss,
   "Histogram loss (Ustinova & Lempitsky 2016): probability that a negative pair is "
   "more similar than a positive one.", "pair")
_R("margin", pair.MarginLoss,
   "Margin loss (Wu et al. 2017) with a learnable boundary beta.", "pair")
_R("softmax", proxy.SoftmaxLoss,
   "Softmax cross-entropy of a linear classifier on the embedding.", "classification")
_R("normsoftmax", proxy.NormSoftmaxLoss,
   "Normalised softmax / NormFace: cross-entropy of cosines over a temperature.", "proxy")
_R("cosface", proxy.CosFaceLoss, "CosFace (Wang et al. 2018): additive cosine margin.", "proxy")
_R("arcface", proxy.ArcFaceLoss, "ArcFace (Deng et al. 2019): additive angular margin.", "proxy")
_R("proxy_nca", proxy.ProxyNCALoss,
   "ProxyNCA (Movshovitz-Attias et al. 2017): NCA against one proxy per class.", "proxy")
_R("proxy_anchor", proxy.ProxyAnchorLoss,
   "Proxy-Anchor (Kim et al. 2020): proxies as anchors over the whole batch.", "proxy")
_R("prototypical", episodic.PrototypicalLoss,
   "Prototypical loss (Snell et al. 2017), each class split into support and query.",
   "episodic")
_R("ntxent", selfsup.NTXentLoss,
   "NT-Xent (SimCLR): each label marks one positive pair of views.", "selfsup")
del _R


def get(name: str, **params: Any) -> nn.Module:
    """Build the loss registered as ``name`` (see :func:`available`) with ``params``."""
    return LOSSES.get(name, **params)


def available() -> list[str]:
    """Names of every registered loss."""
    return LOSSES.available()


def spec(name: str) -> Spec:
    """Parameters with defaults, required parameters and a one-line description."""
    return LOSSES.spec(name)


__all__ = ["LOSSES", "Registry", "Spec", "available", "get", "spec"]
