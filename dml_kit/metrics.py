"""Evaluation: k-shot accuracies, retrieval metrics, clustering, norm statistics.

All functions take embeddings as float tensors ``(N, D)`` and integer labels ``(N,)``
and return plain Python numbers, so they drop straight into a results table. They refuse,
with a ``ValueError`` naming the argument, what would otherwise give a silently wrong
number or a torch message: NaN or inf embeddings, an empty set, support and query
embeddings of different dimensions, float or negative labels.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import torch
from torch import nn

from dml_kit._validation import check_embeddings, check_int, check_labels
from dml_kit.device import resolve_device
from dml_kit.losses.distances import DISTANCES, class_means
from dml_kit.losses.distances import pairwise_scores as _scores

__all__ = ["DISTANCES", "embed", "error_reduction", "knn_accuracy", "map_at_r", "nmi",
           "norm_stats", "pairwise_scores", "prototype_accuracy", "recall_at_k"]


@torch.no_grad()
def embed(model: nn.Module, x: torch.Tensor, batch_size: int = 1024,
          device: str | torch.device | None = None) -> torch.Tensor:
    """Embed ``x`` with ``model`` in eval mode, in batches, without gradients; returns a CPU
    float tensor ``(N, D)``. The model's train/eval mode is restored afterwards.

    Floating-point ``x`` of another dtype than the model's weights (e.g. float64 arrays
    into a float32 net) is cast to the weights' dtype; an input the model cannot take
    (wrong image size, wrong feature count) raises ``ValueError`` naming the shape of
    ``x``."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x must be a torch.Tensor, got {type(x).__name__}")
    batch_size = check_int("batch_size", batch_size, 1)
    param = next(model.parameters(), None)
    if device is None:
        dev = param.device if param is not None else torch.device("cpu")
    else:
        dev = resolve_device(device)
    cast = (param.dtype if param is not None and param.dtype.is_floating_point
            and x.dtype.is_floating_point and x.dtype != param.dtype else None)
    was_training = model.training
    model.eval()
    try:
        parts = [model(x[i:i + batch_size].to(dev, dtype=cast)).float().cpu()
                 for i in range(0, x.shape[0], batch_size)]
    except RuntimeError as exc:
        if isinstance(exc, torch.cuda.OutOfMemoryError):
            raise
        raise ValueError(f"the model cannot embed x of shape {tuple(x.shape)} (dtype "
                         f"{x.dtype}): does it come from the data the model was built for? "
                         f"({exc})") from exc
    finally:
        model.train(was_training)
    if not parts:
        raise ValueError("x is empty: nothing to embed")
    return torch.cat(parts)


def _check_set(emb: torch.Tensor, labels: torch.Tensor, emb_name: str, labels_name: str,
               min_rows: int = 1) -> None:
    """Embeddings finite float ``(N, D)`` with ``N >= min_rows``, labels integer ``(N,)``
    and non-negative; the messages name ``emb_name`` / ``labels_name``."""
    check_embeddings(emb_name, emb)
    check_labels(labels_name, labels, emb.shape[0])
    if emb.shape[0] < min_rows:
        got = "are empty" if emb.shape[0] == 0 else f"have {emb.shape[0]} row"
        raise ValueError(f"{emb_name} and {labels_name} {got}: need at least {min_rows} "
                         f"row{'s' if min_rows > 1 else ''}")


def _check_support_query(support_emb: torch.Tensor, support_y: torch.Tensor,
                         query_emb: torch.Tensor, query_y: torch.Tensor) -> None:
    """A support and a query set of the same embedding dimension, neither empty."""
    _check_set(support_emb, support_y, "support_emb", "support_y")
    _check_set(query_emb, query_y, "query_emb", "query_y")
    if support_emb.shape[1] != query_emb.shape[1]:
        raise ValueError(f"support_emb and query_emb must have the same embedding dimension, "
                         f"got shapes {tuple(support_emb.shape)} and {tuple(query_emb.shape)}")


def pairwise_scores(a: torch.Tensor, b: torch.Tensor, distance: str) -> torch.Tensor:
    """Similarity scores (higher = closer) between rows of ``a`` and ``b``, in float64:
    ``-||a_i - b_j||^2``, ``-||a_i - b_j||`` or ``cos(a_i, b_j)``
    (:func:`dml_kit.losses.distances.pairwise_scores`, the losses' own distances)."""
    return _scores(a.double(), b.double(), distance)


def prototype_accuracy(support_emb: torch.Tensor, support_y: torch.Tensor,
                       query_emb: torch.Tensor, query_y: torch.Tensor,
                       distance: str = "sqeuclidean") -> float:
    """Nearest-prototype accuracy (Snell et al. 2017): prototype ``c_j = mean of the support
    embeddings of class j``; a query gets ``argmin_j d(f(q), c_j)``. Returns the fraction
    of queries classified correctly."""
    _check_support_query(support_emb, support_y, query_emb, query_y)
    classes, protos = class_means(support_emb.double(), support_y)
    pred = classes[pairwise_scores(query_emb, protos, distance).argmax(1)]
    return float((pred == query_y).double().mean())


def knn_accuracy(support_emb: torch.Tensor, support_y: torch.Tensor,
                 query_emb: torch.Tensor, query_y: torch.Tensor, k: int = 1,
                 distance: str = "cosine") -> float:
    """k-nearest-neighbour accuracy: each query takes the majority label of its ``k``
    nearest support embeddings (ties go to the class of the nearest one among the tied).
    With ``k=1`` and cosine this is the Adapted Deep Embeddings test rule for its
    histogram-loss nets."""
    _check_support_query(support_emb, support_y, query_emb, query_y)
    k = check_int("k", k, 1, support_emb.shape[0], hint="at most the number of support examples")
    scores = pairwise_scores(query_emb, support_emb, distance)
    nn_idx = scores.topk(k, dim=1).indices  # (Q, k), nearest first
    nn_labels = support_y[nn_idx]
    if k == 1:
        pred = nn_labels[:, 0]
    else:
        classes, inv = torch.unique(support_y, return_inverse=True)
        votes = torch.zeros(query_emb.shape[0], len(classes), dtype=torch.float64)
        # weight each vote by 1 + a tiny rank bonus so that ties go to the nearest neighbour
        bonus = 1.0 + 1e-6 * torch.arange(k, 0, -1, dtype=torch.float64)
        votes.scatter_add_(1, inv[nn_idx], bonus.expand(query_emb.shape[0], k).contiguous())
        pred = classes[votes.argmax(1)]
    return float((pred == query_y).double().mean())


def _neighbour_matches(emb: torch.Tensor, labels: torch.Tensor, n_neighbours: int,
                       distance: str) -> torch.Tensor:
    """Boolean ``(N, n_neighbours)``: does the i-th nearest *other* example share the label?"""
    scores = pairwise_scores(emb, emb, distance)
    scores.fill_diagonal_(-float("inf"))
    idx = scores.topk(n_neighbours, dim=1).indices
    return labels[idx] == labels.unsqueeze(1)


def recall_at_k(emb: torch.Tensor, labels: torch.Tensor, ks: Iterable[int] = (1,),
                distance: str = "cosine") -> dict[int, float]:
    """Recall@K for retrieval (leave-one-out over the set): the fraction of examples with at
    least one same-class example among their K nearest neighbours (the DML convention,
    e.g. Song et al. 2016; ooDML's zero-shot metric)."""
    _check_set(emb, labels, "emb", "labels", min_rows=2)
    ks = [check_int("k", k, 1, emb.shape[0] - 1) for k in ks]
    if not ks:
        raise ValueError("ks must name at least one K")
    matches = _neighbour_matches(emb, labels, max(ks), distance)
    hit_by = matches.cumsum(1) > 0
    return {k: float(hit_by[:, k - 1].double().mean()) for k in ks}


def map_at_r(emb: torch.Tensor, labels: torch.Tensor, distance: str = "cosine") -> float:
    """MAP@R (Musgrave et al., *A Metric Learning Reality Check*, 2020). For a query with
    ``R`` other same-class examples, take its ``R`` nearest neighbours and average
    ``P@i`` over the ranks ``i <= R`` that are hits:
    ``AP@R = (1/R) sum_{i<=R} P(i) * rel(i)``; MAP@R is the mean over queries with R >= 1."""
    _check_set(emb, labels, "emb", "labels", min_rows=2)
    counts = torch.bincount(labels)
    r = counts[labels] - 1
    if int(r.max()) < 1:
        raise ValueError("map_at_r needs at least one class with two or more examples")
    matches = _neighbour_matches(emb, labels, int(r.max()), distance).double()
    ranks = torch.arange(1, matches.shape[1] + 1, dtype=torch.float64)
    within_r = ranks.unsqueeze(0) <= r.unsqueeze(1)
    matches = matches * within_r
    precision = matches.cumsum(1) / ranks
    valid = r >= 1
    ap = (precision * matches).sum(1)[valid] / r[valid]
    return float(ap.mean())


def nmi(emb: torch.Tensor, labels: torch.Tensor, seed: int = 0) -> float:
    """Normalised mutual information between the labels and a k-means clustering of the
    embeddings with as many clusters as classes (arithmetic normalisation, scikit-learn).

    Needs at least two classes and more rows than classes: with one class, or with one
    row per class (every example its own cluster), NMI is 1.0 whatever the embeddings,
    so those are refused (``ValueError`` naming ``labels``) instead of scored."""
    from sklearn.cluster import KMeans  # noqa: PLC0415 (scikit-learn loads only when NMI is asked for)
    from sklearn.metrics import normalized_mutual_info_score  # noqa: PLC0415 (as above)

    _check_set(emb, labels, "emb", "labels")
    seed = check_int("seed", seed, 0, 2**32 - 1)
    n_clusters = int(torch.unique(labels).numel())
    if n_clusters < 2:
        raise ValueError("labels hold a single class: NMI needs at least 2 classes "
                         "(with one it is 1.0 for any embedding)")
    if emb.shape[0] <= n_clusters:
        raise ValueError(f"emb has {emb.shape[0]} rows for {n_clusters} classes in labels: "
                         f"NMI needs more rows than classes (with one row per class every "
                         f"clustering scores 1.0)")
    km = KMeans(n_clusters=n_clusters, n_init=5, random_state=seed)
    assign = km.fit_predict(emb.double().numpy())
    return float(normalized_mutual_info_score(labels.numpy(), assign))


def norm_stats(emb: torch.Tensor) -> dict[str, float]:
    """Statistics of the embedding norms ``||f_i||_2``: mean, std (population), coefficient
    of variation ``cv = std / mean`` (the spread SEC shrinks, Zhang et al. 2020), min, max."""
    check_embeddings("emb", emb)
    if emb.shape[0] == 0:
        raise ValueError(f"emb must be a non-empty (N, D) tensor, got shape {tuple(emb.shape)}")
    norms = emb.detach().double().norm(dim=1)
    mean = float(norms.mean())
    std = float(norms.std(unbiased=False))
    return {"mean": mean, "std": std, "cv": std / mean if mean > 0 else float("nan"),
            "min": float(norms.min()), "max": float(norms.max())}


def error_reductions(baseline_acc: float | Sequence[float] | np.ndarray,
                     method_acc: float | Sequence[float] | np.ndarray) -> np.ndarray:
    """Per-condition relative error reduction of a method over a baseline
    (Adapted Deep Embeddings' measure, Scott et al. 2018): ``(err_B - err_A) / err_B`` with
    ``err = 1 - accuracy``, elementwise; ``nan`` where the baseline makes no error (nothing
    to reduce). Accuracies must lie in [0, 1]; NaN is refused by name."""
    base = np.asarray(baseline_acc, dtype=float)
    meth = np.asarray(method_acc, dtype=float)
    if base.shape != meth.shape:
        raise ValueError(f"baseline_acc and method_acc must have the same shape, "
                         f"got {base.shape} and {meth.shape}")
    for name, arr in (("baseline_acc", base), ("method_acc", meth)):
        if np.any((arr < 0) | (arr > 1)) or np.any(np.isnan(arr)):
            raise ValueError(f"{name} must hold accuracies between 0 and 1")
    err_b, err_a = 1 - base, 1 - meth
    # dividing by 1 where the baseline makes no error: no division by zero to silence
    return np.where(err_b > 0, (err_b - err_a) / np.where(err_b > 0, err_b, 1.0), np.nan)


def error_reduction(baseline_acc: float | Sequence[float] | np.ndarray,
                    method_acc: float | Sequence[float] | np.ndarray) -> float:
    """Mean relative error reduction of a method over a baseline, as Adapted Deep Embeddings
    reports it (our reading of its "34% mean error reduction"): per condition
    ``(err_B - err_A) / err_B`` with ``err = 1 - accuracy`` (:func:`error_reductions`),
    averaged over conditions. Conditions where the baseline makes no error are skipped
    (nothing to reduce)."""
    per = np.atleast_1d(error_reductions(np.atleast_1d(baseline_acc), np.atleast_1d(method_acc)))
    if np.isnan(per).all():
        raise ValueError("the baseline makes no error in any condition: "
                         "error reduction is undefined")
    return float(np.nanmean(per))
