"""Small helpers shared by the losses: input checks, label masks, an empty-batch zero."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dml_kit._validation import check_choice, check_embeddings, check_labels
from dml_kit.losses.distances import pairwise_distance

AVERAGES = ("all", "nonzero")


def check_inputs(embeddings: torch.Tensor, labels: torch.Tensor,
                 names: tuple[str, str] = ("embeddings", "labels")) -> None:
    """Raise ``ValueError`` unless ``embeddings`` is a finite floating-point ``(B, D)``
    tensor and ``labels`` an integer ``(B,)`` tensor; the messages use ``names``.

    Every loss of the kit checks its input here, so every loss refuses NaN or inf
    embeddings by name (one ``isfinite().all()`` per call) instead of returning NaN, or
    worse a finite value with NaN gradients (the rule of :mod:`dml_kit.losses`).
    Labels may be any integers (negative too): the pair losses only compare them."""
    check_embeddings(names[0], embeddings)
    check_labels(names[1], labels, embeddings.shape[0], non_negative=False)


def label_masks(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(pos, neg)`` boolean ``(B, B)`` masks: same label without the diagonal; other label."""
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    neg = ~same
    same.diagonal().fill_(False)
    return same, neg


def has_pairs(labels: torch.Tensor) -> tuple[bool, bool]:
    """``(any positive pair, any negative pair)`` from the ``B`` labels (a sort of ``B``
    values instead of two reductions over ``(B, B)`` masks)."""
    if labels.numel() < 2:
        return False, False
    _, counts = torch.unique(labels, return_counts=True)
    return bool(counts.max() > 1), len(counts) > 1


def pair_counts(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(n_pos, n_neg)``: for each sample, how many others share its label and how many
    do not (from the labels, no ``(B, B)`` reduction)."""
    _, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    same = counts[inverse]
    return same - 1, labels.numel() - same


def positive_table(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(index, valid)``, both ``(B, P)``: the other samples of each sample's class
    (``P`` = the largest class size - 1), padded with index 0 where ``valid`` is
    False. Built from the labels (a sort of ``B`` values), not from a ``(B, B)`` mask."""
    _, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    order = torch.argsort(inverse, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    k = int(counts.max())
    slot = torch.arange(k, device=labels.device)
    members = order[(starts.unsqueeze(1) + slot).clamp_max(len(labels) - 1)]  # (C, K)
    members = members.masked_fill(slot >= counts.unsqueeze(1), -1)
    rows = members[inverse]  # (B, K): the sample's class, itself included
    me = torch.arange(len(labels), device=labels.device).unsqueeze(1)
    keep = (rows >= 0) & (rows != me)
    # move the kept entries to the front of each row (stable), drop the last column
    rank = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, :max(k - 1, 1)]
    index = rows.gather(1, rank)
    valid = keep.gather(1, rank)
    return index.masked_fill(~valid, 0), valid


def distances_and_masks(embeddings: torch.Tensor, labels: torch.Tensor, distance: str,
                        normalize: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """What every pair loss starts from: ``(d, pos, neg)``.

    Checks the inputs, L2-normalises the rows when ``normalize``, takes the ``(B, B)``
    pairwise ``distance`` (:func:`~dml_kit.losses.distances.pairwise_distance`, diagonal
    not forced to 0) and the :func:`label_masks`."""
    check_inputs(embeddings, labels)
    x = maybe_normalize(embeddings, normalize)
    d = pairwise_distance(x, distance=distance, exact_diagonal=False)
    pos, neg = label_masks(labels)
    return d, pos, neg


def zero_loss(embeddings: torch.Tensor) -> torch.Tensor:
    """A scalar 0 connected to the graph (so ``.backward()`` works and gives zero gradients)."""
    return embeddings.sum() * 0.0


def maybe_normalize(embeddings: torch.Tensor, normalize: bool) -> torch.Tensor:
    """L2-normalise rows when ``normalize`` (clamped norm, safe for zero vectors)."""
    return F.normalize(embeddings, dim=1) if normalize else embeddings


def check_average(average: str) -> str:
    """``average`` must be ``"all"`` or ``"nonzero"``."""
    return check_choice("average", average, AVERAGES)


class _MaskedLogSumExp(torch.autograd.Function):
    """``log sum_{mask} exp(x)`` along ``dim`` with one ``exp``: the backward reuses the
    saved ``exp(x - max)`` instead of exponentiating again. Empty rows give ``-inf``
    and zero gradients."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, mask: torch.Tensor,  # type: ignore[override]
                dim: int) -> torch.Tensor:
        xm = torch.where(mask, x, float("-inf"))
        top = xm.amax(dim, keepdim=True)
        top = torch.where(torch.isfinite(top), top, 0.0)  # empty rows: all exps are 0
        e = xm.sub_(top).exp_()
        total = e.sum(dim, keepdim=True)
        ctx.save_for_backward(e, total)
        return (total.log() + top).squeeze(dim)

    @staticmethod
    def backward(ctx, grad: torch.Tensor  # type: ignore[override]
                 ) -> tuple[torch.Tensor, None, None]:
        e, total = ctx.saved_tensors
        w = torch.where(total > 0, grad.reshape(total.shape) / total, 0.0)
        return e * w, None, None


def masked_logsumexp(x: torch.Tensor, mask: torch.Tensor, dim: int = 1,
                     add_one: bool = False) -> torch.Tensor:
    """``log sum_{mask} exp(x)`` along ``dim``; ``log(1 + sum ...)`` when ``add_one``.

    Empty rows give ``-inf`` (or ``0`` with ``add_one``) with finite, zero gradients.
    Stable (shifted by the masked maximum) and one ``exp`` of the matrix forward and
    backward together (:class:`_MaskedLogSumExp`).
    """
    out = _MaskedLogSumExp.apply(x, mask, dim)
    if add_one:  # log(1 + e^lse) = softplus(lse); an empty row gives softplus(-inf) = 0
        return F.softplus(out)
    return out


class _SplitExpSums(torch.autograd.Function):
    """Row sums of ``exp(z)`` over two disjoint parts of a matrix with ONE ``exp``:
    ``z = c1 (s - r1)`` where ``first``, ``z = c2 (s - r2)`` elsewhere, entries outside
    ``keep`` left out (``keep=None``: all). Returns ``(sum over first, sum over the
    rest)``. The backward reuses the saved ``exp(z)`` (``d/ds = c exp(z)``), so the
    matrix is exponentiated once, not twice per part as with two ``logsumexp``s."""

    @staticmethod
    def forward(ctx, s: torch.Tensor, first: torch.Tensor,  # type: ignore[override]
                keep: torch.Tensor | None, c1: float, r1: torch.Tensor | float, c2: float,
                r2: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
        coef = torch.where(first, c1, c2).to(s.dtype)
        offset = torch.where(first, -c1 * r1, -c2 * r2).to(s.dtype)  # type: ignore[operator]
        e = torch.addcmul(offset, s, coef)
        if keep is not None:
            e.masked_fill_(~keep, float("-inf"))
        e.exp_()
        sum1 = torch.where(first, e, 0.0).sum(1)
        sum2 = torch.where(first, 0.0, e).sum(1)
        ctx.save_for_backward(e, first)
        ctx.c = (c1, c2)
        return sum1, sum2

    @staticmethod
    def backward(ctx, g1: torch.Tensor, g2: torch.Tensor  # type: ignore[override]
                 ) -> tuple[torch.Tensor | None, ...]:
        e, first = ctx.saved_tensors
        c1, c2 = ctx.c
        w = torch.where(first, (c1 * g1).unsqueeze(1), (c2 * g2).unsqueeze(1))
        return w.mul_(e), None, None, None, None, None, None


def split_exp_sums(s: torch.Tensor, first: torch.Tensor, keep: torch.Tensor | None,
                   c1: float, r1: torch.Tensor | float, c2: float,
                   r2: torch.Tensor | float) -> tuple[torch.Tensor, torch.Tensor]:
    """Row sums ``sum_{j in first} exp(c1 (s_ij - r1_i))`` and
    ``sum_{j not in first} exp(c2 (s_ij - r2_i))`` (only ``keep`` entries when given),
    differentiable in ``s``, with one ``exp`` of the matrix (see :class:`_SplitExpSums`).
    ``r1`` / ``r2`` are scalars or ``(B, 1)`` columns: the caller's shifts against
    overflow."""
    return _SplitExpSums.apply(s, first, keep, c1, r1, c2, r2)


def log1p_shifted(sum_shifted: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """``log(1 + S)`` from ``S e^-c`` and a shift ``c >= 0``: ``c + log(e^-c + S e^-c)``,
    and ``log1p(S)`` where ``c == 0`` (exact for small ``S``)."""
    shifted = c + torch.log(torch.exp(-c) + sum_shifted)
    return torch.where(c > 0, shifted, torch.log1p(sum_shifted))


def within_class_rank(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each sample, ``(rank, count)``: how many earlier samples share its label, and
    how many samples share it in all (a stable sort of the labels, no loop)."""
    _, inverse, counts = torch.unique(labels, return_inverse=True, return_counts=True)
    order = torch.argsort(inverse, stable=True)  # by class, batch order within a class
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(inverse)
    rank[order] = torch.arange(len(labels), device=labels.device) - starts[inverse[order]]
    return rank, counts[inverse]
