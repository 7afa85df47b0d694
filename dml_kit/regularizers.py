"""Embedding-norm regularizers: ``reg(embeddings (B, D)) -> scalar``.

Combine one with any loss through :func:`dml_kit.losses.with_regularizer`
(``with_regularizer(loss, SEC(), weight=1.0)``) or by hand (``loss + eta * reg(emb)``).
Build them by name with :func:`get` (``"sec"``, ``"lp"``, ``"ring"``). Like the losses,
each refuses NaN/inf, integer or non-``(B, D)`` embeddings with a ``ValueError`` naming
``embeddings`` (:func:`dml_kit._validation.check_embeddings`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from dml_kit._validation import check_embeddings, check_float
from dml_kit.registry import Registry, Spec


def _norms(embeddings: torch.Tensor) -> torch.Tensor:
    check_embeddings("embeddings", embeddings)
    return torch.linalg.vector_norm(embeddings, ord=2, dim=1)


class SEC(nn.Module):
    running_mean_norm: torch.Tensor   # buffers (declared for type checkers)
    initialised: torch.Tensor
    """Spherical embedding constraint (Zhang, Li & Zhang, "Deep Metric Learning with
    Spherical Embedding", NeurIPS 2020)::

        L_sec = 1/B sum_i (||f_i||_2 - mu)^2

    ``mu`` is the batch's mean norm, **detached** (no gradient flows through it), as in
    the paper and the official code (Dyfine/SphericalEmbedding): SEC pulls every norm
    towards a radius the batch chooses, nothing is learned. With ``momentum`` ``m < 1``
    ``mu`` is instead a moving average updated in training mode,
    ``mu <- (1 - m) mu + m * batch_mean`` (started at the first batch's mean; the
    official ``--norm_momentum``, paper Appendix D); the default ``m = 1`` is the plain
    batch mean. (For the plain batch mean detaching does not change the gradient, since
    ``d/dmu sum_i (||f_i|| - mu)^2 = 0`` at the mean; with momentum it does.) Averaging:
    mean over the batch. Use as ``L = L_metric + eta * L_sec``.
    """

    def __init__(self, momentum: float = 1.0) -> None:
        super().__init__()
        self.momentum = check_float("momentum", momentum, 0.0, 1.0, low_inclusive=False)
        self.register_buffer("running_mean_norm", torch.zeros(()))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        norms = _norms(embeddings)
        mu = norms.mean().detach()
        if self.momentum < 1.0:
            if self.training:
                with torch.no_grad():
                    if bool(self.initialised):
                        self.running_mean_norm.mul_(1 - self.momentum).add_(
                            self.momentum * mu.to(self.running_mean_norm.dtype))
                    else:
                        self.running_mean_norm.fill_(mu.item())
                        self.initialised.fill_(True)
            if bool(self.initialised):
                mu = self.running_mean_norm.to(norms.dtype)
        return ((norms - mu) ** 2).mean()


class LpNormPenalty(nn.Module):
    """Lp norm penalty: ``L = 1/B sum_i ||f_i||_p ** power``.

    Defaults ``p=2, power=2``: the squared L2 norm, the "L2 regularisation" baseline of
    the SEC paper's official code and the embedding regulariser of Sohn's N-pair loss;
    it pulls every norm towards 0, unlike SEC, which only equalises them.
    (pytorch-metric-learning's ``LpRegularizer`` is ``power=1``.) Averaging: mean over
    the batch.
    """

    def __init__(self, p: float = 2.0, power: float = 2.0) -> None:
        super().__init__()
        self.p = check_float("p", p, 0.0, low_inclusive=False)
        self.power = check_float("power", power, 0.0, low_inclusive=False)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        check_embeddings("embeddings", embeddings)
        if self.p == 2.0 and self.power == 2.0:
            # mean of squared norms = total sum of squares / B (smooth everywhere; also much
            # faster backward than (x * x).sum(1).mean() on CPU)
            return (embeddings * embeddings).sum() / embeddings.shape[0]
        norms = torch.linalg.vector_norm(embeddings, ord=self.p, dim=1)
        return norms.pow(self.power).mean()


class RingLoss(nn.Module):
    initialised: torch.Tensor         # a buffer (declared for type checkers)
    """Ring loss (Zheng, Pal & Savvides, "Ring loss: Convex Feature Normalization for Face
    Recognition", CVPR 2018)::

        L_R = lam / (2B) sum_i (||f_i||_2 - R)^2

    with a **learnable** radius ``R`` (a parameter: give ``reg.parameters()`` to the
    optimizer). ``R`` starts at ``radius`` when given; with ``radius=None`` (default) it
    is initialised, once, to the mean norm of the first batch it sees, so the penalty
    starts small instead of yanking every norm towards an arbitrary value. Default
    ``lam=0.01``, in the range of loss weights the paper uses. Averaging: mean over the
    batch (times ``lam / 2``).
    """

    def __init__(self, radius: float | None = None, lam: float = 0.01) -> None:
        super().__init__()
        self.lam = check_float("lam", lam, 0.0)
        start = 1.0 if radius is None else check_float("radius", radius, 0.0)
        self.radius = nn.Parameter(torch.tensor(start))
        self.register_buffer("initialised", torch.tensor(radius is not None))

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        norms = _norms(embeddings)
        if not bool(self.initialised):
            with torch.no_grad():
                self.radius.fill_(norms.detach().mean().item())
                self.initialised.fill_(True)
        return 0.5 * self.lam * ((norms - self.radius.to(norms.dtype)) ** 2).mean()


REGULARIZERS = Registry("regularizer")
REGULARIZERS.register("sec", SEC,
                      "Spherical embedding constraint (Zhang et al. 2020): squared deviation "
                      "of each norm from the detached batch-mean norm.", "regularizer")
REGULARIZERS.register("lp", LpNormPenalty,
                      "Lp norm penalty: mean ||f||_p^power (default squared L2).",
                      "regularizer")
REGULARIZERS.register("ring", RingLoss,
                      "Ring loss (Zheng et al. 2018): squared deviation of norms from a "
                      "learnable radius.", "regularizer")


def get(name: str, **params: Any) -> nn.Module:
    """Build the regularizer registered as ``name`` (``sec``, ``lp``, ``ring``)."""
    return REGULARIZERS.get(name, **params)


def available() -> list[str]:
    """Names of every registered regularizer."""
    return REGULARIZERS.available()


def spec(name: str) -> Spec:
    """Parameters with defaults and a one-line description of regularizer ``name``."""
    return REGULARIZERS.spec(name)


__all__ = ["SEC", "LpNormPenalty", "RingLoss", "available", "get", "spec"]
