"""Self-supervised contrastive loss: NT-Xent (SimCLR, Chen, Kornblith, Norouzi & Hinton,
ICML 2020)."""

from __future__ import annotations

import torch
import torch.nn as nn

from dml_kit._validation import check_float
from dml_kit.losses._common import check_inputs, pair_counts, positive_table
from dml_kit.losses.distances import cosine_similarity


class NTXentLoss(nn.Module):
    """Normalised temperature-scaled cross-entropy (NT-Xent, SimCLR).

    Each sample ``i`` has exactly one positive ``j(i)`` (the other view of the same
    image); with cosine similarities ``s`` and temperature ``tau``::

        l_i = -log( exp(s_{i,j(i)} / tau) / sum_{k != i} exp(s_ik / tau) )
        L = 1/(2N) sum_i l_i

    As a registry loss, ``labels`` marks the positive pairs: each label must occur
    exactly twice (``labels = arange(N).repeat(2)`` for ``cat([view1, view2])``).
    Default ``temperature=0.1`` (SimCLR's ImageNet setting; it uses 0.5 on CIFAR-10).
    Averaging: mean over all ``2N`` anchors, both views.
    """

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        self.temperature = check_float("temperature", temperature, 0.0, low_inclusive=False)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_inputs(embeddings, labels)
        n_pos, _ = pair_counts(labels)
        if not bool((n_pos == 1).all()):
            raise ValueError("NT-Xent needs every label to occur exactly twice "
                             "(one positive pair per label: labels = arange(N).repeat(2))")
        logits = cosine_similarity(embeddings) / self.temperature
        logits = logits.masked_fill(
            torch.eye(len(labels), dtype=torch.bool, device=logits.device),
            torch.finfo(logits.dtype).min / 4)
        partner, _ = positive_table(labels)  # (B, 1): the one positive per row
        positive = logits.gather(1, partner).squeeze(1)
        return (torch.logsumexp(logits, 1) - positive).mean()


def ntxent_loss(view1: torch.Tensor, view2: torch.Tensor,
                temperature: float = 0.1) -> torch.Tensor:
    """NT-Xent of two views ``(N, D)`` each, row ``i`` of one the positive of row ``i`` of
    the other (see :class:`NTXentLoss`); mean over the ``2N`` anchors."""
    if view1.shape != view2.shape:
        raise ValueError(f"the two views must have the same shape, got {tuple(view1.shape)} "
                         f"and {tuple(view2.shape)}")
    labels = torch.arange(view1.shape[0], device=view1.device).repeat(2)
    return NTXentLoss(temperature)(torch.cat([view1, view2]), labels)


__all__ = ["NTXentLoss", "ntxent_loss"]
