"""Proxy- and classification-based losses: ``nn.Module``s that own their class weights.

Each takes ``num_classes`` and ``embedding_dim`` and is called as
``loss(embeddings (B, D), labels (B,)) -> scalar`` with labels in ``0..num_classes-1``.
The weights (a classifier layer or one proxy per class) are parameters of the loss, so
they must go to the optimizer with the network: ``optim.Adam([*net.parameters(),
*loss.parameters()])``. All of them average over the ``B`` samples of the batch except
Proxy-Anchor, which averages over proxies (see its docstring).

With ``x`` the embeddings and ``w_c`` the class weights / proxies, ``cos_ic`` is the
cosine between ``x_i`` and ``w_c`` (both L2-normalised, norms clamped).

Embeddings of another floating dtype than the weights (float64 from numpy, float16) are
cast to the weights' dtype (float32 unless ``loss.double()`` was called) before use, so a
float64 batch gives the same loss as its float32 copy instead of a torch dtype error; the
gradient flows back through the cast in the embeddings' own dtype.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from dml_kit._validation import check_float, check_int
from dml_kit.losses._common import (
    check_inputs,
    log1p_shifted,
    masked_logsumexp,
    split_exp_sums,
)


def _check_class_inputs(embeddings: torch.Tensor, labels: torch.Tensor, num_classes: int,
                        embedding_dim: int) -> None:
    """Shapes, the embedding dimension and the label range of a classification loss."""
    check_inputs(embeddings, labels)
    if embeddings.shape[1] != embedding_dim:
        raise ValueError(f"embeddings have dimension {embeddings.shape[1]}, the loss was "
                         f"built with embedding_dim={embedding_dim}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"labels must lie in 0..{num_classes - 1} (num_classes={num_classes})")


class _ClassWeights(nn.Module):
    """Base: ``num_classes x embedding_dim`` weights (``self.weight``) and label checks."""

    def __init__(self, num_classes: int, embedding_dim: int) -> None:
        super().__init__()
        self.num_classes = check_int("num_classes", num_classes, 1)
        self.embedding_dim = check_int("embedding_dim", embedding_dim, 1)
        self.weight = nn.Parameter(torch.empty(self.num_classes, self.embedding_dim))
        # Proxy-Anchor's initialisation (Kim et al. 2020); the scale of normalised
        # proxies does not matter, only their random directions.
        nn.init.kaiming_normal_(self.weight, mode="fan_out")

    def _check(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Check the inputs; return the embeddings in the weights' dtype (see the module
        docstring: float64 embeddings are cast, gradients flow back through the cast)."""
        _check_class_inputs(embeddings, labels, self.num_classes, self.embedding_dim)
        return embeddings.to(self.weight.dtype)

    def cosine(self, embeddings: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
        """``(B, C)`` cosines between the embeddings and the class weights, times
        ``scale`` (folded into the ``C x D`` weights, so no second ``(B, C)`` matrix)."""
        weight = F.normalize(self.weight, dim=1)
        if scale != 1.0:
            weight = weight * scale
        return F.normalize(embeddings, dim=1) @ weight.t()


class SoftmaxLoss(nn.Module):
    """Softmax cross-entropy of a linear classifier on the embedding (the "weight
    transfer" baseline of Adapted Deep Embeddings)::

        L = 1/B sum_i -log softmax(W x_i + b)_{y_i}

    ``W`` (``num_classes x embedding_dim``) and ``b`` are ``nn.Linear``'s, with its
    default initialisation. Averaging: mean over the batch.
    """

    def __init__(self, num_classes: int, embedding_dim: int) -> None:
        super().__init__()
        self.num_classes = check_int("num_classes", num_classes, 1)
        self.embedding_dim = check_int("embedding_dim", embedding_dim, 1)
        self.classifier = nn.Linear(self.embedding_dim, self.num_classes)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        _check_class_inputs(embeddings, labels, self.num_classes, self.embedding_dim)
        embeddings = embeddings.to(self.classifier.weight.dtype)
        return F.cross_entropy(self.classifier(embeddings), labels)


class NormSoftmaxLoss(_ClassWeights):
    """Normalised softmax (NormFace, Wang et al., ACM MM 2017; as a metric-learning loss
    "Classification is a Strong Baseline for DML", Zhai & Wu, BMVC 2019)::

        L = 1/B sum_i -log( exp(cos_{i,y_i} / T) / sum_c exp(cos_ic / T) )

    Default temperature ``T = 0.05`` (Zhai & Wu; NormFace's scale ``s = 1/T = 20``).
    Averaging: mean over the batch.
    """

    def __init__(self, num_classes: int, embedding_dim: int,
                 temperature: float = 0.05) -> None:
        super().__init__(num_classes, embedding_dim)
        self.temperature = check_float("temperature", temperature, 0.0, low_inclusive=False)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        embeddings = self._check(embeddings, labels)
        return F.cross_entropy(self.cosine(embeddings, 1.0 / self.temperature), labels)


class CosFaceLoss(_ClassWeights):
    """CosFace / large-margin cosine loss (Wang et al., CVPR 2018)::

        L = 1/B sum_i -log( exp(s (cos_{i,y_i} - m)) /
                            (exp(s (cos_{i,y_i} - m)) + sum_{c != y_i} exp(s cos_ic)) )

    Defaults follow the paper: ``scale s = 64``, ``margin m = 0.35``. Averaging: mean
    over the batch.
    """

    def __init__(self, num_classes: int, embedding_dim: int, margin: float = 0.35,
                 scale: float = 64.0) -> None:
        super().__init__(num_classes, embedding_dim)
        self.margin = check_float("margin", margin, 0.0)
        self.scale = check_float("scale", scale, 0.0, low_inclusive=False)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        embeddings = self._check(embeddings, labels)
        logits = self.cosine(embeddings, self.scale)  # s cos, then s (cos - m) at the target
        target = labels.unsqueeze(1)
        logits = logits.scatter_add_(1, target, logits.new_full(target.shape,
                                                                -self.scale * self.margin))
        return F.cross_entropy(logits, labels)


class ArcFaceLoss(_ClassWeights):
    """ArcFace / additive angular margin loss (Deng et al., CVPR 2019)::

        L = 1/B sum_i -log( exp(s cos(theta_{i,y_i} + m)) /
                            (exp(s cos(theta_{i,y_i} + m)) + sum_{c != y_i} exp(s cos_ic)) )

    ``cos(theta + m) = cos theta cos m - sin theta sin m`` (no ``acos``, whose gradient is
    infinite at +-1). Where ``theta + m > pi`` the target logit would stop decreasing
    with ``theta``; there the official code uses ``cos theta - m sin m`` instead, and so
    does this one. Defaults follow the paper: ``scale s = 64``, ``margin m = 0.5``.
    Averaging: mean over the batch.
    """

    def __init__(self, num_classes: int, embedding_dim: int, margin: float = 0.5,
                 scale: float = 64.0) -> None:
        super().__init__(num_classes, embedding_dim)
        self.margin = check_float("margin", margin, 0.0, math.pi)
        self.scale = check_float("scale", scale, 0.0, low_inclusive=False)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        embeddings = self._check(embeddings, labels)
        weight = F.normalize(self.weight, dim=1)
        x = F.normalize(embeddings, dim=1)
        logits = x @ (self.scale * weight).t()  # s cos; the target entries replaced below
        target = labels.unsqueeze(1)
        target_cos = (x * weight[labels]).sum(1, keepdim=True)
        sin = (1.0 - target_cos * target_cos).clamp_min(1e-12).sqrt()
        m = self.margin
        shifted = target_cos * math.cos(m) - sin * math.sin(m)
        shifted = torch.where(target_cos > math.cos(math.pi - m), shifted,
                              target_cos - m * math.sin(m))
        logits = logits.scatter_(1, target, self.scale * shifted)
        return F.cross_entropy(logits, labels)


class ProxyNCALoss(_ClassWeights):
    """ProxyNCA (Movshovitz-Attias et al., "No Fuss Distance Metric Learning using
    Proxies", ICCV 2017).

    With embeddings and proxies L2-normalised and multiplied by ``scale`` (so
    ``d(x, p) = ||s x/||x|| - s p/||p|| ||^2 = 2 s^2 (1 - cos)``)::

        L = 1/B sum_i -log( exp(-d(x_i, p_{y_i})) / sum_{z != y_i} exp(-d(x_i, p_z)) )

    As in the paper the denominator excludes the positive proxy, so the loss can be
    negative. Default ``scale=3`` (the paper fixes the norm ``N_p`` of embeddings and
    proxies without a value; 3 is the widely used reference implementation's scaling).
    Averaging: mean over the batch. Needs ``num_classes >= 2``.
    """

    def __init__(self, num_classes: int, embedding_dim: int, scale: float = 3.0) -> None:
        super().__init__(check_int("num_classes", num_classes, 2), embedding_dim)
        self.scale = check_float("scale", scale, 0.0, low_inclusive=False)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        embeddings = self._check(embeddings, labels)
        # -d = -2 s^2 (1 - cos) = 2 s^2 cos - 2 s^2; the constant cancels between the
        # log-sum-exp and the positive term, so only 2 s^2 cos is formed
        neg_d = self.cosine(embeddings, 2.0 * self.scale**2)  # (B, C)
        classes = torch.arange(self.num_classes, device=labels.device)
        negative = labels.unsqueeze(1) != classes
        pos_term = neg_d.gather(1, labels.unsqueeze(1)).squeeze(1)
        return (masked_logsumexp(neg_d, negative) - pos_term).mean()


class ProxyAnchorLoss(_ClassWeights):
    """Proxy-Anchor loss (Kim, Kim, Cho & Kwak, CVPR 2020)::

        L = 1/|P+| sum_{p in P+} log(1 + sum_{x in X_p+} exp(-alpha (cos(x, p) - delta)))
          + 1/|P|  sum_{p in P}  log(1 + sum_{x in X_p-} exp( alpha (cos(x, p) + delta)))

    ``P``: all proxies; ``P+``: proxies with at least one sample of their class in the
    batch; ``X_p+`` / ``X_p-``: the batch samples of / not of ``p``'s class. Defaults
    follow the paper: ``alpha=32``, ``delta=0.1``; proxies initialised with Kaiming
    normal (the paper also gives them a 100x learning rate: put them in their own
    optimizer group if you want that). Averaging: over proxies, as written above.

    Computation: the exponents of both terms are bounded (``|cos| <= 1``), so one
    ``exp`` of the ``(C, B)`` matrix under a fixed shift gives both sums and is reused
    by the backward (:func:`~dml_kit.losses._common.split_exp_sums`); for
    ``alpha (1 + delta) > 80`` two masked log-sum-exps are used instead.
    """

    def __init__(self, num_classes: int, embedding_dim: int, alpha: float = 32.0,
                 delta: float = 0.1) -> None:
        super().__init__(num_classes, embedding_dim)
        self.alpha = check_float("alpha", alpha, 0.0, low_inclusive=False)
        self.delta = check_float("delta", delta, 0.0)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        embeddings = self._check(embeddings, labels)
        if self.alpha * (1.0 + self.delta) > 80.0:  # a fixed shift could underflow a row
            return self._forward_logsumexp(embeddings, labels)
        # (C, B): one row per proxy, so both sums run along rows
        cos = F.normalize(self.weight, dim=1) @ F.normalize(embeddings, dim=1).t()
        classes = torch.arange(self.num_classes, device=labels.device).unsqueeze(1)
        positive = classes == labels.unsqueeze(0)  # (C, B): x is of p's class
        alpha, delta = self.alpha, self.delta
        # exponents are at most alpha (1 + delta) (|cos| <= 1): shift by c >= 0 so that
        # exp never overflows, log(1 + S) = c + log(e^-c + S e^-c); c = 0 for the defaults
        c = max(0.0, alpha * (1.0 + delta) - 50.0)
        sum_pos, sum_neg = split_exp_sums(cos, positive, None, -alpha, delta - c / alpha,
                                          alpha, -delta + c / alpha)
        shift = cos.new_full((self.num_classes,), c)
        pos_term = log1p_shifted(sum_pos, shift)
        neg_term = log1p_shifted(sum_neg, shift)
        with_pos = torch.bincount(labels, minlength=self.num_classes) > 0
        n_with_pos = with_pos.sum().clamp_min(1)
        return (pos_term * with_pos).sum() / n_with_pos + neg_term.mean()

    def _forward_logsumexp(self, embeddings: torch.Tensor, labels: torch.Tensor
                           ) -> torch.Tensor:
        """The same loss with two masked log-sum-exps (stable for any ``alpha``, two
        ``exp``s of the matrix per term): for ``alpha (1 + delta) > 80``."""
        cos = self.cosine(embeddings)  # (B, C)
        positive = F.one_hot(labels, self.num_classes).bool()
        with_pos = positive.any(0)
        pos_term = masked_logsumexp(-self.alpha * (cos - self.delta), positive, dim=0,
                                    add_one=True)
        neg_term = masked_logsumexp(self.alpha * (cos + self.delta), ~positive, dim=0,
                                    add_one=True)
        n_with_pos = with_pos.sum().clamp_min(1)
        return (pos_term * with_pos).sum() / n_with_pos + neg_term.mean()


__all__ = [
    "ArcFaceLoss",
    "CosFaceLoss",
    "NormSoftmaxLoss",
    "ProxyAnchorLoss",
    "ProxyNCALoss",
    "SoftmaxLoss",
]
