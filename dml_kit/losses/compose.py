"""Combine any loss with any norm regularizer: ``with_regularizer(loss, SEC(), weight=1.0)``.

This is the kit's one way to add a regularizer to a loss: the methods' source and
adaptation phases (pair, proxy and episodic losses alike) build their objective here.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn as nn

from dml_kit import regularizers
from dml_kit._validation import check_float


class RegularizedLoss(nn.Module):
    """``total = loss(embeddings, *targets) + weight * reg(embeddings)``.

    ``targets`` are whatever the wrapped loss takes after the embeddings: the labels for
    a pair or proxy loss, ``(support_y, query_y)`` for an
    :class:`~dml_kit.losses.episodic.EpisodeLoss`. The regularizer sees every embedding
    of the batch (e.g. SEC, Zhang et al. 2020: ``L = L_metric + eta * L_sec``).

    Both parts are submodules, so ``parameters()`` includes proxies, a learnable margin
    beta or a ring radius. After each call, ``last_parts`` holds the detached
    ``{"loss", "reg", "total"}`` tensors of that call for logging (``reg`` unweighted).
    """

    def __init__(self, loss: nn.Module | Callable[..., torch.Tensor],
                 reg: nn.Module | Callable[[torch.Tensor], torch.Tensor],
                 weight: float = 1.0) -> None:
        super().__init__()
        self.loss = loss
        self.reg = reg
        self.weight = check_float("weight", weight, 0.0)
        self.last_parts: dict[str, torch.Tensor] = {}

    def forward(self, embeddings: torch.Tensor, *targets: torch.Tensor) -> torch.Tensor:
        main = self.loss(embeddings, *targets)
        reg = self.reg(embeddings)
        total = main + self.weight * reg
        self.last_parts = {"loss": main.detach(), "reg": reg.detach(), "total": total.detach()}
        return total


def with_regularizer(loss: nn.Module | Callable[..., torch.Tensor],
                     reg: nn.Module | Callable[[torch.Tensor], torch.Tensor] | str,
                     weight: float = 1.0) -> RegularizedLoss:
    """Wrap ``loss`` so that it returns ``loss + weight * reg(embeddings)``.

    ``reg`` is a regularizer module or its registry name (``"sec"``, ``"lp"``, ``"ring"``).
    """
    if isinstance(reg, str):
        reg = regularizers.get(reg)
    return RegularizedLoss(loss, reg, weight)


__all__ = ["RegularizedLoss", "with_regularizer"]
