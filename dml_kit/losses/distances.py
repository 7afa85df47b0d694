"""Pairwise distances and similarities between embeddings, safe at zero distance.

Every loss in :mod:`dml_kit.losses` builds its ``(B, B)`` (or ``(B, C)``) matrix with
these helpers, so the numerical care lives in one place:

* squared Euclidean distances are computed with the Gram-matrix identity
  ``||x - y||^2 = ||x||^2 + ||y||^2 - 2 x.y`` (one matmul, O(B^2) memory) and clamped at
  zero, because rounding can make the identity slightly negative;
* the Euclidean distance is ``sqrt`` of that, but the square root is only taken where
  the squared distance exceeds ``eps``. Below it the distance is exactly zero and so is
  its gradient: ``d sqrt(u) / du = 1 / (2 sqrt(u))`` is infinite at ``u = 0``, which would
  otherwise turn identical embeddings (and the diagonal ``d(x_i, x_i)``) into NaN
  gradients;
* cosine similarity normalises with a clamped norm (``F.normalize``), so an all-zero
  embedding gives similarity 0 instead of NaN.

The evaluation side (:mod:`dml_kit.metrics`, the methods' nearest-prototype and 1-NN
rules) uses the same functions: :func:`pairwise_scores` (higher = closer) and
:func:`class_means` (the prototypes of Snell et al. 2017), and :data:`DISTANCES` is the
kit's one list of distance names.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dml_kit._validation import check_choice

#: The kit's distance names: accepted by :func:`pairwise_distance`, :func:`pairwise_scores`,
#: the ``distance=`` parameter of the distance-based losses and :mod:`dml_kit.metrics`.
DISTANCES = ("euclidean", "sqeuclidean", "cosine")


def _sq_euclidean_mm(x: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
    """``||x_i||^2 + ||y_j||^2 - 2 x_i.y_j`` as ONE matmul of augmented matrices
    ``[-2x, ||x||^2, 1] @ [y, 1, ||y||^2]^T`` (not clamped; the diagonal not zeroed)."""
    # vector_norm(...)^2 rather than (x * x).sum(1): same value, and the backward of the
    # latter is ~100x slower on this CPU build at B=512
    sx = torch.linalg.vector_norm(x, dim=1, keepdim=True).square()
    ones_x = torch.ones_like(sx)
    if y is None:
        y, sy, ones_y = x, sx, ones_x
    else:
        sy = torch.linalg.vector_norm(y, dim=1, keepdim=True).square()
        ones_y = torch.ones_like(sy)
    return torch.cat([-2.0 * x, sx, ones_x], 1) @ torch.cat([y, ones_y, sy], 1).t()


def pairwise_sq_euclidean(x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    """Squared Euclidean distances ``D[i, j] = ||x_i - y_j||^2``, shape ``(len(x), len(y))``.

    With ``y=None`` the distances are within ``x`` and the diagonal is exactly zero.
    Differentiable everywhere (it is a polynomial), including at ``x_i == y_j``.
    """
    d2 = _sq_euclidean_mm(x, y).clamp_min(0.0)
    if y is None:
        d2.diagonal().zero_()  # rounding can leave ~1e-7 there; the true value is 0
    return d2


class _SafeSqrt(torch.autograd.Function):
    """``sqrt(max(u, 0))`` whose gradient is ``1 / (2 sqrt(u))`` where ``u > eps`` and 0
    elsewhere: no inf/NaN at zero distance, in two passes over the matrix each way."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, eps: float) -> torch.Tensor:  # type: ignore[override]
        out = u.clamp_min(0.0).sqrt_()
        ctx.save_for_backward(out)
        ctx.eps = eps
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        (out,) = ctx.saved_tensors
        g = grad / (2.0 * out)
        return g.masked_fill_(out <= ctx.eps ** 0.5, 0.0), None


def safe_sqrt(d2: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``sqrt(d2)`` (negative rounding errors read as 0) with gradient 0 where ``d2 <= eps``."""
    return _SafeSqrt.apply(d2, eps)


def pairwise_euclidean(x: torch.Tensor, y: torch.Tensor | None = None,
                       eps: float = 1e-12) -> torch.Tensor:
    """Euclidean distances ``D[i, j] = ||x_i - y_j||_2``, shape ``(len(x), len(y))``.

    Computed as :func:`safe_sqrt` of the squared distances: at (numerically) zero
    distance the value is 0 and the gradient is 0 rather than NaN.
    """
    if y is None:
        return safe_sqrt(pairwise_sq_euclidean(x), eps)
    return safe_sqrt(_sq_euclidean_mm(x, y), eps)


def cosine_similarity(x: torch.Tensor, y: torch.Tensor | None = None,
                      eps: float = 1e-12) -> torch.Tensor:
    """Cosine similarities ``S[i, j] = x_i . y_j / (||x_i|| ||y_j||)`` in ``[-1, 1]``.

    Norms are clamped at ``eps``, so a zero vector has similarity 0 with everything.
    """
    xn = F.normalize(x, dim=1, eps=eps)
    yn = xn if y is None else F.normalize(y, dim=1, eps=eps)
    return xn @ yn.t()


def pairwise_distance(x: torch.Tensor, y: torch.Tensor | None = None,
                      distance: str = "euclidean", exact_diagonal: bool = True) -> torch.Tensor:
    """Pairwise *distance* (smaller = more similar) by name.

    ``"euclidean"``: ``||x - y||``; ``"sqeuclidean"``: ``||x - y||^2``; ``"cosine"``: the
    cosine distance ``1 - cos(x, y)`` in ``[0, 2]`` (for unit vectors this is half the
    squared Euclidean distance).

    ``exact_diagonal=False`` (for losses, which mask the diagonal anyway) skips zeroing
    the rounding error on the diagonal of a within-``x`` matrix, one pass less each way.
    """
    check_choice("distance", distance, DISTANCES)
    if distance == "cosine":
        return 1.0 - cosine_similarity(x, y)
    if exact_diagonal or y is not None:
        d2 = pairwise_sq_euclidean(x, y)
        return safe_sqrt(d2) if distance == "euclidean" else d2
    d2 = _sq_euclidean_mm(x, None)
    return safe_sqrt(d2) if distance == "euclidean" else d2.clamp_min(0.0)


def pairwise_scores(x: torch.Tensor, y: torch.Tensor | None = None,
                    distance: str = "euclidean") -> torch.Tensor:
    """Pairwise *scores* (higher = closer) by name: ``cos(x_i, y_j)`` for ``"cosine"``,
    ``-||x_i - y_j||`` for ``"euclidean"`` and ``-||x_i - y_j||^2`` for ``"sqeuclidean"``
    (the negated :func:`pairwise_distance`). Nearest neighbours and nearest prototypes
    are the ``argmax`` of a row."""
    check_choice("distance", distance, DISTANCES)
    if distance == "cosine":
        return cosine_similarity(x, y)
    return -pairwise_distance(x, y, distance=distance)


def class_means(embeddings: torch.Tensor,
                labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class mean embeddings, the prototypes of Snell, Swersky & Zemel (2017)::

        c_j = 1/|S_j| sum_{i in S_j} f_i

    Returns ``(classes, means)``: the sorted distinct labels ``(C,)`` and their means
    ``(C, D)`` in the embeddings' dtype (one matmul with the one-hot label matrix, so it
    is differentiable and the same in the losses and in evaluation)."""
    classes, inverse = torch.unique(labels, return_inverse=True)  # sorted
    onehot = F.one_hot(inverse, len(classes)).to(embeddings.dtype)  # (N, C)
    return classes, (onehot.t() @ embeddings) / onehot.sum(0).unsqueeze(1)
