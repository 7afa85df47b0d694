"""Pair- and triplet-based metric losses: ``loss(embeddings (B, D), labels (B,)) -> scalar``.

All of them are computed from one ``(B, B)`` distance or similarity matrix and boolean
label masks (``pos[i, j]``: same label, ``i != j``; ``neg[i, j]``: different labels), so
memory is O(B^2) and there is no Python loop over pairs, triplets or samples. Where a
loss needs a per-anchor *ordering* of negatives (all-valid and semi-hard triplets) it
sorts each anchor's positives and places every negative among them with one
``searchsorted`` instead of materialising the ``(B, B, B)`` triplet cube.

Distances are named by ``distance=`` (see :mod:`dml_kit.losses.distances`):
``"euclidean"``, ``"sqeuclidean"`` or ``"cosine"`` (``1 - cos``). ``normalize=True``
L2-normalises the embeddings first. When a batch has no valid pair / triplet the loss
is a zero that is still connected to the graph (``.backward()`` works).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from dml_kit._validation import check_choice, check_float, check_int
from dml_kit.losses._common import (
    check_average,
    check_inputs,
    distances_and_masks,
    has_pairs,
    label_masks,
    log1p_shifted,
    masked_logsumexp,
    pair_counts,
    positive_table,
    split_exp_sums,
    within_class_rank,
    zero_loss,
)
from dml_kit.losses.distances import DISTANCES, cosine_similarity

#: Semi-hard triplets loop over the columns of positives (each a few passes over the
#: ``(B, B)`` matrix) up to this many positives per anchor; beyond it they sort.
SEMI_HARD_LOOP_POSITIVES = 16


class _MarginDistanceLoss(nn.Module):
    """Shared options of the margin-based pair losses: ``margin >= 0``, a distance name
    from :data:`~dml_kit.losses.distances.DISTANCES`, and whether to L2-normalise the
    embeddings first. Each subclass keeps its own paper's defaults in its signature."""

    def __init__(self, margin: float, distance: str, normalize: bool) -> None:
        super().__init__()
        self.margin = check_float("margin", margin, 0.0)
        self.distance = check_choice("distance", distance, DISTANCES)
        self.normalize = bool(normalize)


class ContrastiveLoss(nn.Module):
    """Contrastive loss (Hadsell, Chopra & LeCun, CVPR 2006).

    Over every ordered pair ``(i, j)``, ``i != j``, with distance ``d_ij``::

        positive pair:  c * relu(d_ij - pos_margin) ** power
        negative pair:  c * relu(margin - d_ij) ** power

    with ``c = 1/2`` for ``power=2`` (the paper's ``1/2 D^2`` and
    ``1/2 max(0, m - D)^2``) and ``c = 1`` for ``power=1``. Defaults follow the paper:
    Euclidean distance, ``margin=1``, ``pos_margin=0``, squared hinge.

    Averaging: ``average="all"`` divides the sum by the number of pairs (positive and
    negative together; ordered and unordered pairs give the same mean);
    ``average="nonzero"`` divides by the number of pairs whose term is > 0 (the
    "average over non-zero terms" convention of pytorch-metric-learning).
    """

    def __init__(self, margin: float = 1.0, pos_margin: float = 0.0,
                 distance: str = "euclidean", power: int = 2, normalize: bool = False,
                 average: str = "all") -> None:
        super().__init__()
        self.margin = check_float("margin", margin, 0.0)
        self.pos_margin = check_float("pos_margin", pos_margin, 0.0)
        self.distance = check_choice("distance", distance, DISTANCES)
        self.power = check_int("power", power, 1, 2)
        self.normalize = bool(normalize)
        self.average = check_average(average)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        d, _, neg = distances_and_masks(embeddings, labels, self.distance, self.normalize)
        total, n_active = _ContrastiveHinge.apply(d, neg, self.pos_margin, self.margin,
                                                  self.power)
        b = len(labels)
        n = b * (b - 1) if self.average == "all" else int(n_active)
        if n == 0:
            return zero_loss(embeddings)
        return total * (0.5 if self.power == 2 else 1.0) / n


class _ContrastiveHinge(torch.autograd.Function):
    """``(sum of relu(h) ** power, #{h > 0})`` over the pairs ``i != j`` with
    ``h = d - pos_margin`` (same label) or ``margin - d`` (other label): one pass to
    build ``h``, and a backward that is ``+-power relu(h) ** (power - 1)`` directly
    instead of autograd through ``where``, ``clamp`` and ``pow``."""

    @staticmethod
    def forward(ctx, d: torch.Tensor, neg: torch.Tensor,  # type: ignore[override]
                pos_margin: float, margin: float, power: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
        # h = sign * d + offset: sign +1 / offset -pos_margin on the same label, -1 / margin
        sign = torch.where(neg, -1.0, 1.0).to(d.dtype)
        h = torch.addcmul(torch.where(neg, margin, -pos_margin).to(d.dtype), d, sign)
        h.diagonal().fill_(-1.0)  # (i, i) is not a pair
        # power 1 keeps h: relu's gradient at h == 0 is clamp's (1, as autograd's)
        active = h.clamp_min_(0.0) if power == 2 else h.clamp_min(0.0)
        flat = active.view(-1)
        total = torch.dot(flat, flat) if power == 2 else flat.sum()
        n_active = torch.count_nonzero(flat)
        ctx.save_for_backward(h, sign)
        ctx.power = power
        ctx.mark_non_differentiable(n_active)
        return total, n_active

    @staticmethod
    def backward(ctx, grad: torch.Tensor, _: torch.Tensor  # type: ignore[override]
                 ) -> tuple[torch.Tensor, None, None, None, None]:
        h, sign = ctx.saved_tensors
        if ctx.power == 2:
            return h.mul(sign).mul_(2.0 * grad), None, None, None, None
        return torch.where(h >= 0, sign * grad, 0.0), None, None, None, None


class _AllTripletsHinge(torch.autograd.Function):
    """``sum relu(d(a, p) + margin - d(a, n))`` over every valid triplet, from the
    ``(B, B)`` distances, without materialising triplets or ``(pairs, B)`` rows.

    Each anchor's positive distances ``x_j = d(a, p_j) + margin`` are sorted (``topk`` of
    at most ``P`` = the largest number of positives of an anchor). For a negative ``n``
    with ``y = d(a, n)``, ``searchsorted`` gives ``k(a, n)``, how many ``x_j <= y``; the
    active triplets of ``(a, n)`` are the positives ``j >= k``, so ``(a, n)`` contributes
    ``Suf_k - (m_a - k) y`` (``Suf_k``: sum of the ``x_j``, ``j >= k``; ``m_a``: number
    of positives). Summing per anchor and per ``k`` (a histogram of ``k`` and of ``y``
    over ``k``, ``(B, P + 1)`` tables) gives the total, and the exact gradient is
    ``-(m_a - k)`` on ``d(a, n)`` (the number of active triplets it is the negative of)
    and, on ``d(a, p_j)``, the number of negatives with ``k <= j``. Time O(B^2 log P),
    memory O(B^2). Returns ``(total, n_active, n_valid)``; the counts carry no gradient.
    """

    @staticmethod
    def forward(ctx, d: torch.Tensor, pos: torch.Tensor,  # type: ignore[override]
                neg: torch.Tensor, margin: float, n_pos: torch.Tensor, n_neg: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b = d.shape[0]
        p_max = int(n_pos.max())
        # sorted positives (ascending; rows with fewer positives padded with +inf)
        xs, p_idx = torch.topk(d.masked_fill(~pos, float("inf")), p_max, dim=1,
                               largest=False, sorted=True)
        xs = xs + margin
        valid = torch.arange(p_max, device=d.device).unsqueeze(0) < n_pos.unsqueeze(1)
        # k(a, n) = #{j: x_j <= y}; non-negatives (y = +inf) land in column p_max
        k = torch.searchsorted(xs, d.masked_fill(~neg, float("inf")), side="right")
        acc = torch.float64
        hist = torch.zeros(b, p_max + 1, dtype=acc, device=d.device)
        hist.scatter_add_(1, k, torch.ones((), dtype=acc, device=d.device).expand(b, b))
        y_sum = torch.zeros(b, p_max + 1, dtype=d.dtype, device=d.device)
        y_sum.scatter_add_(1, k, d)
        cols = torch.arange(p_max + 1, device=d.device).unsqueeze(0)
        coef = (n_pos.unsqueeze(1) - cols).clamp_min(0).to(acc)  # active triplets of (a, n)
        xz = xs.masked_fill(~valid, 0.0).to(acc)
        suffix = torch.cat([xz.flip(1).cumsum(1).flip(1), xz.new_zeros(b, 1)], 1)
        total = (suffix * hist).sum() - (coef * y_sum.to(acc)).sum()
        n_active = (coef * hist).sum()
        n_valid = (n_pos * n_neg).sum()
        # d(a, p_j) is the positive of every negative with k <= j
        per_pair = hist[:, :p_max].cumsum(1).masked_fill(~valid, 0.0)
        ctx.save_for_backward(k, p_idx, coef.to(d.dtype), per_pair.to(d.dtype))
        ctx.mark_non_differentiable(n_active, n_valid)
        return total.to(d.dtype), n_active, n_valid

    @staticmethod
    def backward(ctx, grad: torch.Tensor, *_: torch.Tensor  # type: ignore[override]
                 ) -> tuple[torch.Tensor, None, None, None, None, None]:
        k, p_idx, coef, per_pair = ctx.saved_tensors
        g = torch.gather(coef, 1, k).mul_(-grad)
        g.scatter_add_(1, p_idx, per_pair * grad)
        return g, None, None, None, None, None


class TripletLoss(_MarginDistanceLoss):
    """Triplet loss over **all valid triplets** (Weinberger & Saul 2009; Schroff et al.,
    FaceNet, CVPR 2015; "batch all" in Hermans et al. 2017).

    For every anchor ``a``, positive ``p`` (same label, ``p != a``) and negative ``n``::

        l(a, p, n) = relu(d(a, p) - d(a, n) + margin)

    Defaults follow FaceNet: squared Euclidean distance between L2-normalised embeddings,
    ``margin=0.2``. ``distance="cosine"`` gives the cosine triplet loss of the SEC paper.

    Averaging: ``average="nonzero"`` (default, Hermans et al.'s "batch all" with the
    mean over active triplets, also pytorch-metric-learning's default) divides the sum
    by the number of triplets with ``l > 0``; ``average="all"`` by the number of valid
    triplets.

    Computation without the ``(B, B, B)`` cube: for anchor ``a`` the sum over its
    triplets is ``sum_n sum_p relu(x_p - y_n)`` with ``x_p = d(a, p) + margin`` and
    ``y_n = d(a, n)``. With the ``x`` sorted, one ``searchsorted`` per negative counts
    the positives ``x_p > y_n`` (its active triplets) and a suffix sum of the ``x``
    gives their sum, so the total, the counts and the exact gradient come from
    ``(B, B)`` and ``(B, P + 1)`` tensors (``P``: most positives of an anchor); see
    :class:`_AllTripletsHinge`. Time O(B^2 log P), memory O(B^2).
    """

    def __init__(self, margin: float = 0.2, distance: str = "sqeuclidean",
                 normalize: bool = True, average: str = "nonzero") -> None:
        super().__init__(margin, distance, normalize)
        self.average = check_average(average)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        d, pos, neg = distances_and_masks(embeddings, labels, self.distance, self.normalize)
        n_pos, n_neg = pair_counts(labels)
        if not bool(((n_pos > 0) & (n_neg > 0)).any()):
            return zero_loss(embeddings)
        total, n_active, n_valid = _AllTripletsHinge.apply(d, pos, neg, self.margin, n_pos,
                                                           n_neg)
        n = int(n_active) if self.average == "nonzero" else int(n_valid)
        if n == 0:
            return zero_loss(embeddings)
        return total / n


class BatchHardTripletLoss(_MarginDistanceLoss):
    """Batch-hard triplet loss (Hermans, Beyer & Leibe, "In Defense of the Triplet Loss
    for Person Re-Identification", 2017).

    For each anchor ``a`` with at least one positive and one negative in the batch::

        l(a) = relu(max_p d(a, p) - min_n d(a, n) + margin)      (soft=False)
        l(a) = softplus(max_p d(a, p) - min_n d(a, n))           (soft=True, "soft margin")

    Defaults follow the paper: (non-squared) Euclidean distance on unnormalised
    embeddings, ``margin=0.2``. Averaging: mean over the anchors that have both a
    positive and a negative (the paper's ``1/(PK)`` sum over all anchors of a P x K batch).
    """

    def __init__(self, margin: float = 0.2, distance: str = "euclidean",
                 normalize: bool = False, soft: bool = False) -> None:
        super().__init__(margin, distance, normalize)
        self.soft = bool(soft)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        d, pos, neg = distances_and_masks(embeddings, labels, self.distance, self.normalize)
        n_pos, n_neg = pair_counts(labels)
        ok = (n_pos > 0) & (n_neg > 0)
        if not bool(ok.any()):
            return zero_loss(embeddings)
        hardest_pos = d.masked_fill(~pos, float("-inf")).amax(1)
        hardest_neg = d.masked_fill(~neg, float("inf")).amin(1)
        gap = (hardest_pos - hardest_neg)[ok]
        per_anchor = F.softplus(gap) if self.soft else (gap + self.margin).clamp_min(0.0)
        return per_anchor.mean()


class SemiHardTripletLoss(_MarginDistanceLoss):
    """Semi-hard triplet loss (Schroff, Kalenichenko & Philbin, FaceNet, CVPR 2015), with
    the negative selection of TensorFlow's reference ``triplet_semihard_loss``.

    For every positive pair ``(a, p)`` the negative is the *closest negative farther
    than the positive*, ``n* = argmin {d(a, n) : d(a, n) > d(a, p)}``; when no such
    negative exists, the farthest negative of ``a``. Then::

        l(a, p) = relu(d(a, p) - d(a, n*) + margin)

    Defaults follow FaceNet: squared Euclidean distance on L2-normalised embeddings,
    ``margin=0.2``. Averaging: mean over all positive pairs whose anchor has at least
    one negative (as TensorFlow's implementation does).

    Computation, with ``P`` the largest number of positives of an anchor: up to
    :data:`SEMI_HARD_LOOP_POSITIVES`, one pass over the ``(B, B)`` matrix per column of
    positives finds ``n*`` of every anchor at once (:class:`_SemiHardNegatives`);
    beyond, each anchor's positives are sorted, one ``searchsorted`` tells for each
    negative how many positives are closer, and the closest negative per count
    (``scatter_reduce``) with a suffix minimum gives ``n*``. Memory O(B^2), no
    ``(pairs, B)`` copies.
    """

    def __init__(self, margin: float = 0.2, distance: str = "sqeuclidean",
                 normalize: bool = True) -> None:
        super().__init__(margin, distance, normalize)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        d, pos, neg = distances_and_masks(embeddings, labels, self.distance, self.normalize)
        n_pos, n_neg = pair_counts(labels)
        usable = (n_pos > 0) & (n_neg > 0)
        if not bool(usable.any()):
            return zero_loss(embeddings)
        p_max = int(n_pos.max())
        if p_max <= SEMI_HARD_LOOP_POSITIVES:
            positives, valid = positive_table(labels)  # (B, P) columns, no (B, B) pass
            d_pos = d.gather(1, positives)
            d_neg = _SemiHardNegatives.apply(d, neg, d_pos.detach())
        else:
            d_pos, d_neg, valid = self._sorted(d, pos, neg, n_pos, p_max)
        valid = valid & usable.unsqueeze(1)
        return (d_pos - d_neg + self.margin).clamp_min(0.0)[valid].mean()

    @staticmethod
    def _sorted(d: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, n_pos: torch.Tensor,
                p_max: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Many positives per anchor: sorted positives, one ``searchsorted``, the closest
        negative per count (``scatter_reduce``) and a suffix minimum."""
        xs, _ = torch.topk(torch.where(pos, d, float("inf")), p_max, dim=1, largest=False,
                           sorted=True)
        y = torch.where(neg, d, float("inf"))
        # k(a, n) = #{j: x_j < y_n}: negative n is farther than the positives j < k
        k = torch.searchsorted(xs.detach(), y.detach(), side="left")
        by_k = torch.full((d.shape[0], p_max + 1), float("inf"), dtype=d.dtype,
                          device=d.device).scatter_reduce(1, k, y, "amin", include_self=False)
        semi_hard = by_k.flip(1).cummin(1).values.flip(1)[:, 1:]  # (B, P)
        farthest = torch.where(neg, d, float("-inf")).amax(1, keepdim=True)
        d_neg = torch.where(torch.isfinite(semi_hard), semi_hard, farthest)
        valid = torch.arange(p_max, device=d.device).unsqueeze(0) < n_pos.unsqueeze(1)
        return xs, d_neg, valid


class _SemiHardNegatives(torch.autograd.Function):
    """For each anchor ``a`` and positive column ``j`` (distance ``x = d_pos[a, j]``):
    ``min {d(a, n) : n negative, d(a, n) > x}``, or the largest negative distance when
    none is farther. The backward splits each gradient evenly over the negatives at
    that distance (what ``amin`` / ``amax`` do), one column of positives at a time."""

    @staticmethod
    def forward(ctx, d: torch.Tensor, neg: torch.Tensor,  # type: ignore[override]
                d_pos: torch.Tensor) -> torch.Tensor:
        y = torch.where(neg, d, float("inf"))
        farthest, far_idx = torch.where(neg, d, float("-inf")).max(1)
        out = torch.empty_like(d_pos)
        idx = torch.empty(d_pos.shape, dtype=torch.int64, device=d.device)
        for j in range(d_pos.shape[1]):
            closest, at = torch.where(y > d_pos[:, j:j + 1], y, float("inf")).min(1)
            found = torch.isfinite(closest)
            out[:, j] = torch.where(found, closest, farthest)
            idx[:, j] = torch.where(found, at, far_idx)
        ctx.save_for_backward(y, out, idx)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor  # type: ignore[override]
                 ) -> tuple[torch.Tensor, None, None]:
        y, out, idx = ctx.saved_tensors
        g = torch.zeros_like(y)
        finite = torch.isfinite(out)
        for j in range(out.shape[1]):
            if not bool(grad[:, j].any()):
                continue
            hit = y == out[:, j:j + 1]
            # no ties (one negative per row at that distance): the gradient goes to it
            if int(torch.count_nonzero(hit)) == int(torch.count_nonzero(finite[:, j])):
                g.scatter_add_(1, idx[:, j:j + 1], grad[:, j:j + 1])
            else:  # ties: split evenly, as amin / amax do
                share = grad[:, j] / torch.count_nonzero(hit, dim=1).clamp_min(1)
                g.add_(torch.where(hit, share.unsqueeze(1), 0.0))
        return g, None, None


class LiftedStructureLoss(_MarginDistanceLoss):
    """Lifted structured embedding loss (Oh Song, Xiang, Jegelka & Savarese, CVPR 2016).

    For every positive pair ``(i, j)`` (unordered), with Euclidean distances ``D``::

        J_ij = log( sum_{k in N(i)} exp(margin - D_ik) + sum_{l in N(j)} exp(margin - D_jl) )
               + D_ij
        L = 1 / (2 |P|) * sum_{(i, j) in P} relu(J_ij) ** 2

    (the paper's smooth upper bound, Eq. 4). Defaults follow the paper: Euclidean
    distance, ``margin=1``. Averaging: the paper's ``1 / (2|P|)`` times the sum over the
    unordered positive pairs ``P``. Each row's negative sum is one masked log-sum-exp
    (O(B^2), one ``exp``); ``J`` is evaluated on the positive pairs only; an anchor
    without negatives contributes ``exp`` terms of 0.
    """

    def __init__(self, margin: float = 1.0, distance: str = "euclidean",
                 normalize: bool = False) -> None:
        super().__init__(margin, distance, normalize)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        d, pos, neg = distances_and_masks(embeddings, labels, self.distance, self.normalize)
        if not has_pairs(labels)[0]:
            return zero_loss(embeddings)
        lse = masked_logsumexp(self.margin - d, neg, dim=1)  # (B,), -inf when no negative
        lse = lse.clamp_min(torch.finfo(d.dtype).min / 4)  # finite, so logaddexp is safe
        # J only where it is used: the positive pairs (ordered), not the whole matrix
        i, j = torch.nonzero(pos, as_tuple=True)
        jij = torch.logaddexp(lse[i], lse[j]) + d[i, j]
        # sum over ordered pairs = 2 * sum over unordered; |P| = n_ordered / 2
        return jij.clamp_min(0.0).pow(2).sum() / (2.0 * len(i))


class NPairLoss(nn.Module):
    """Multi-class N-pair loss (Sohn, NeurIPS 2016).

    From each class with at least two samples the batch takes one (anchor, positive)
    pair, deterministically the class's first and second sample in batch order, which
    gives ``N`` pairs of ``N`` different classes. With ``f_i`` the anchors, ``f_j^+`` the
    positives and ``s`` a scale::

        L = 1/N sum_i log(1 + sum_{j != i} exp(s f_i.f_j^+ - s f_i.f_i^+))
            + l2_reg * (mean_i ||f_i||^2 + mean_i ||f_i^+||^2) / 4

    i.e. cross-entropy over the ``N x N`` similarity matrix with the diagonal as target.
    Defaults follow the paper: dot products of unnormalised embeddings (``normalize=
    False``, ``scale=1``) and the L2 embedding-norm penalty with ``l2_reg=0.002`` (the
    value and ``/4`` of TensorFlow's reference ``npairs_loss``). The SEC paper's
    "normalised N-pair" is ``normalize=True, scale=5, l2_reg=0``. Averaging: mean over
    the ``N`` anchors. Fewer than two usable classes gives zero N-pair loss.
    """

    def __init__(self, l2_reg: float = 0.002, normalize: bool = False,
                 scale: float = 1.0) -> None:
        super().__init__()
        self.l2_reg = check_float("l2_reg", l2_reg, 0.0)
        self.normalize = bool(normalize)
        self.scale = check_float("scale", scale, 0.0, low_inclusive=False)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_inputs(embeddings, labels)
        rank, count = within_class_rank(labels)
        usable = count >= 2
        anchor_idx = torch.nonzero(usable & (rank == 0)).squeeze(1)
        positive_idx = torch.nonzero(usable & (rank == 1)).squeeze(1)
        if anchor_idx.numel() < 2:
            return zero_loss(embeddings)
        # align the two lists by class
        anchor_idx = anchor_idx[torch.argsort(labels[anchor_idx])]
        positive_idx = positive_idx[torch.argsort(labels[positive_idx])]
        a, p = embeddings[anchor_idx], embeddings[positive_idx]
        if self.normalize:
            a, p = F.normalize(a, dim=1), F.normalize(p, dim=1)
        logits = self.scale * (a @ p.t())
        target = torch.arange(len(a), device=embeddings.device)
        loss = F.cross_entropy(logits, target)
        if self.l2_reg > 0:
            sq = (a * a).sum() + (p * p).sum()  # = N (mean ||a||^2 + mean ||p||^2)
            loss = loss + self.l2_reg * 0.25 * sq / len(a)
        return loss


class MultiSimilarityLoss(nn.Module):
    """Multi-similarity loss with its pair mining (Wang, Han, Huang, Dong & Scott, CVPR 2019).

    With cosine similarities ``S`` of the embeddings, for anchor ``i`` with positives
    ``P_i`` and negatives ``N_i``, mining keeps (paper Eqs. 7-8)::

        negative n  if  S_in + epsilon > min_{p in P_i} S_ip
        positive p  if  S_ip - epsilon < max_{n in N_i} S_in

    and the loss is (Eq. 9)::

        L = 1/B sum_i [ 1/alpha log(1 + sum_{kept p} exp(-alpha (S_ip - base)))
                      + 1/beta  log(1 + sum_{kept n} exp( beta (S_in - base))) ]

    Defaults: ``alpha=2, beta=50`` (the paper), ``base=0.5`` (lambda) and
    ``epsilon=0.1`` (the official code's ``thresh`` and ``margin``). Averaging: mean over
    all ``B`` anchors; an anchor with nothing mined contributes 0 (as the official code).
    Mining masks are built from the similarities without gradient.
    """

    def __init__(self, alpha: float = 2.0, beta: float = 50.0, base: float = 0.5,
                 epsilon: float = 0.1) -> None:
        super().__init__()
        self.alpha = check_float("alpha", alpha, 0.0, low_inclusive=False)
        self.beta = check_float("beta", beta, 0.0, low_inclusive=False)
        self.base = check_float("base", base, -1.0, 1.0)
        self.epsilon = check_float("epsilon", epsilon, 0.0)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_inputs(embeddings, labels)
        s = cosine_similarity(embeddings)
        has_pos, has_neg = has_pairs(labels)
        if not has_pos or not has_neg:
            return zero_loss(embeddings)
        pos, neg = label_masks(labels)
        alpha, beta, base = self.alpha, self.beta, self.base
        with torch.no_grad():
            min_pos = torch.where(pos, s, float("inf")).amin(1, keepdim=True)
            max_neg = torch.where(neg, s, float("-inf")).amax(1, keepdim=True)
            keep = (neg & (s + self.epsilon > min_pos)) | (pos & (s - self.epsilon < max_neg))
            # The hardest kept pair of each kind is the min positive / max negative
            # (kept iff any is), so the exponents' row maxima are known: shift by
            # c = max(0, largest exponent), log(1 + S) = c + log(e^-c + S e^-c).
            any_pos = min_pos - self.epsilon < max_neg
            any_neg = max_neg + self.epsilon > min_pos
            ref_pos = torch.where(any_pos, min_pos.clamp_max(base), base)
            ref_neg = torch.where(any_neg, max_neg.clamp_min(base), base)
        # ONE exp over the matrix for both terms: -alpha (s - ref_pos) on positives,
        # beta (s - ref_neg) on negatives, left out where not kept
        sum_pos, sum_neg = split_exp_sums(s, pos, keep, -alpha, ref_pos, beta, ref_neg)
        pos_term = log1p_shifted(sum_pos, (alpha * (base - ref_pos)).squeeze(1))
        neg_term = log1p_shifted(sum_neg, (beta * (ref_neg - base)).squeeze(1))
        return (pos_term / alpha + neg_term / beta).mean()


class HistogramLoss(nn.Module):
    """Histogram loss (Ustinova & Lempitsky, NeurIPS 2016), the loss of Adapted Deep
    Embeddings.

    Cosine similarities ``s`` of all unordered positive pairs and all negative pairs
    are spread over ``R = num_bins + 1`` nodes ``t_r = -1 + r * Delta``,
    ``Delta = 2 / num_bins``, by linear interpolation (a similarity adds
    ``1 - |s - t_r| / Delta`` to each of its two neighbouring nodes), and each histogram
    is normalised to sum 1, giving ``p+`` and ``p-``. The loss estimates the probability
    that a random negative pair is more similar than a random positive pair::

        L = sum_r p-_r * Phi+_r,      Phi+_r = sum_{q <= r} p+_q

    No margin: the bin count is the only parameter. Default ``num_bins=200``
    (``Delta = 0.01``, 201 nodes) as in the authors' and the ADE code;
    pytorch-metric-learning's ``n_bins=100`` counts intervals the same way. Averaging:
    each histogram is the mean over its pairs (positive and negative pairs weigh equally
    however many there are). A batch without positive or negative pairs gives 0.
    """

    def __init__(self, num_bins: int = 200) -> None:
        super().__init__()
        self.num_bins = check_int("num_bins", num_bins, 1, 100_000)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        check_inputs(embeddings, labels)
        has_pos, has_neg = has_pairs(labels)
        if not has_pos or not has_neg:
            return zero_loss(embeddings)
        s = cosine_similarity(embeddings)
        pos, _ = label_masks(labels)
        h_pos, h_neg = _PairHistograms.apply(s, pos, self.num_bins)
        return (h_neg * torch.cumsum(h_pos, 0)).sum()


class _PairHistograms(torch.autograd.Function):
    """Normalised linear-interpolation histograms ``(p+, p-)`` of the similarities of the
    positive and the negative pairs over ``R = num_bins + 1`` nodes, from the whole
    ``(B, B)`` matrix (each unordered pair counted twice, the diagonal left out, so
    nothing is selected or copied).

    An entry at ``t = (s + 1) num_bins / 2`` (clamped to ``[0, num_bins]``) with
    ``k = floor(t)`` and ``f = t - k`` adds ``1 - f`` to node ``k`` and ``f`` to node
    ``k + 1``; with one code per (kind, ``k``), two ``bincount``s (of 1 and of ``f``)
    give both histograms. The gradient of an entry is ``num_bins / 2`` times the
    difference of the histogram's gradient at its two nodes (0 where ``|s| > 1``,
    as for the clamp)."""

    @staticmethod
    def forward(ctx, s: torch.Tensor, pos: torch.Tensor,  # type: ignore[override]
                num_bins: int) -> tuple[torch.Tensor, torch.Tensor]:
        r = num_bins
        nodes = r + 1
        t = s.clamp(-1.0, 1.0).add_(1.0).mul_(r / 2.0)  # in [0, r]
        left = t.floor().clamp_(max=r - 1)
        frac = t.sub_(left)  # weight of the right node, in [0, 1]
        # code = kind * nodes + k; kind 0: negative pair, 1: positive pair, 2: i == j
        code_f = left.add_(torch.where(pos, float(nodes), 0.0))
        code_f.diagonal().add_(2 * nodes)
        code = code_f.view(-1).to(torch.int32)
        count = torch.bincount(code, minlength=3 * nodes)[:2 * nodes].view(2, nodes)
        fsum = torch.bincount(code, weights=frac.view(-1),
                              minlength=3 * nodes)[:2 * nodes].view(2, nodes).double()
        hist = count - fsum  # left nodes get 1 - f
        hist[:, 1:] += fsum[:, :-1]  # right nodes get f
        n = count.sum(1, keepdim=True)
        hist = (hist / n).to(s.dtype)
        ctx.save_for_backward(s, code, n.to(s.dtype))
        ctx.num_bins = r
        return hist[1], hist[0]

    @staticmethod
    def backward(ctx, g_pos: torch.Tensor, g_neg: torch.Tensor  # type: ignore[override]
                 ) -> tuple[torch.Tensor, None, None]:
        s, code, n = ctx.saved_tensors
        r = ctx.num_bins
        g = torch.stack([g_neg, g_pos]) / n  # (2, nodes), per entry of the matrix
        slope = torch.zeros(3, r + 1, dtype=s.dtype, device=s.device)
        slope[:2, :r] = (g[:, 1:] - g[:, :-1]) * (r / 2.0)  # d hist / d s at node k
        grad = slope.view(-1).index_select(0, code).view_as(s)
        return grad.masked_fill_(s.abs() > 1.0, 0.0), None, None


class MarginLoss(nn.Module):
    """Margin-based loss (Wu, Manmatha, Smola & Kraehenbuehl, "Sampling Matters in Deep
    Embedding Learning", ICCV 2017), with a learnable boundary ``beta``.

    Over every ordered pair ``(i, j)``, ``i != j``, with Euclidean distances ``D`` of
    L2-normalised embeddings and ``y_ij = +1`` (same class) or ``-1``::

        l(i, j) = relu(alpha + y_ij (D_ij - beta_i)),   beta_i = beta_0 (+ beta_class(i))
        L = sum l / #{l > 0}  +  nu * (beta_0 + beta_class)

    Defaults follow the paper: ``alpha=0.2``, ``beta`` initialised to 1.2 and learned
    (the paper trains it with its own learning rate: put ``loss.parameters()`` in the
    optimizer), ``nu=0``. ``num_classes`` set gives one beta per class (the paper's
    class-specific beta) instead of one global beta. Averaging: over the pairs with a
    non-zero term (as the official code's ``pair_cnt``). The paper's distance-weighted
    negative sampling is not part of the loss: here every pair of the batch is used.
    """

    def __init__(self, alpha: float = 0.2, beta: float = 1.2, nu: float = 0.0,
                 num_classes: int | None = None, normalize: bool = True) -> None:
        super().__init__()
        self.alpha = check_float("alpha", alpha, 0.0)
        check_float("beta", beta, 0.0)
        self.nu = check_float("nu", nu, 0.0)
        self.num_classes = None if num_classes is None else check_int(
            "num_classes", num_classes, 1)
        self.beta = nn.Parameter(torch.full((self.num_classes or 1,), float(beta)))
        self.normalize = bool(normalize)

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        d, pos, neg = distances_and_masks(embeddings, labels, "euclidean", self.normalize)
        if self.num_classes is None:
            beta = self.beta.to(d.dtype).expand(len(labels)).unsqueeze(1)
        else:
            if bool((labels < 0).any()) or bool((labels >= self.num_classes).any()):
                raise ValueError(f"labels must lie in 0..{self.num_classes - 1} "
                                 f"(num_classes={self.num_classes})")
            beta = self.beta.to(d.dtype)[labels].unsqueeze(1)
        terms = torch.where(pos, self.alpha + d - beta, self.alpha - d + beta).clamp_min(0.0)
        terms = terms * (pos | neg)
        n = torch.count_nonzero(terms)
        loss = terms.sum() / n if n > 0 else zero_loss(embeddings) + 0.0 * beta.sum()
        if self.nu > 0:
            loss = loss + self.nu * self.beta.sum()
        return loss


__all__ = [
    "BatchHardTripletLoss",
    "ContrastiveLoss",
    "HistogramLoss",
    "LiftedStructureLoss",
    "MarginLoss",
    "MultiSimilarityLoss",
    "NPairLoss",
    "SemiHardTripletLoss",
    "TripletLoss",
]
