"""Distribution shift between class sets: the Fréchet distance and the ooDML split ladder.

ooDML (Milbich, Roth et al., NeurIPS 2021) measures how far the test classes lie from the
training classes by the Fréchet distance between Gaussian fits of the two sets of
*class-mean* features, and builds harder splits by swapping classes across the border
(official code: CompVis/Characterizing_Generalization_in_DML, create_dataset_splits.py).
This module does the same on any :class:`~dml_kit.data.core.Dataset`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from dml_kit._validation import check_int, check_seed
from dml_kit.data.core import Dataset

ArrayLike = torch.Tensor | np.ndarray | Sequence[Sequence[float]]


def _as_2d(name: str, x: ArrayLike) -> np.ndarray:
    arr = x.detach().cpu().double().numpy() if isinstance(x, torch.Tensor) else np.asarray(
        x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 2:
        raise ValueError(f"{name} must be (N, D) with N >= 2 examples, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} holds NaN or infinite values")
    return arr


def _sqrtm_psd(m: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix by eigendecomposition."""
    w, v = np.linalg.eigh((m + m.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(features_a: ArrayLike, features_b: ArrayLike, eps: float = 1e-8) -> float:
    """Fréchet distance between Gaussian fits of two feature sets (the FID formula,
    Heusel et al. 2017; ooDML's measure of train-test shift)::

        FD = ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))

    with sample means ``mu`` and covariances ``S`` (1/(n-1)). As in the ooDML code,
    ``eps * I`` is added to both covariances. The trace of the matrix square root is
    computed stably as ``Tr((S_a^(1/2) S_b S_a^(1/2))^(1/2))`` (the same eigenvalues as
    ``S_a S_b``, but of a symmetric PSD matrix), so the result is real and >= 0.
    """
    a, b = _as_2d("features_a", features_a), _as_2d("features_b", features_b)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"features_a and features_b must have the same dimension, got "
                         f"{a.shape[1]} and {b.shape[1]}")
    mu_a, mu_b = a.mean(0), b.mean(0)
    eye = np.eye(a.shape[1]) * eps
    cov_a = np.atleast_2d(np.cov(a, rowvar=False)) + eye
    cov_b = np.atleast_2d(np.cov(b, rowvar=False)) + eye
    root_a = _sqrtm_psd(cov_a)
    cross = _sqrtm_psd(root_a @ cov_b @ root_a)
    fd = float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b)
               - 2 * np.trace(cross))
    return max(fd, 0.0)


def class_mean_features(data: Dataset, features: str | nn.Module | torch.Tensor = "pixels",
                        dim: int = 32, seed: int = 0) -> np.ndarray:
    """One feature vector per class, ``(n_classes, F)``: the mean of its examples' features.

    ``features``: ``"pixels"`` (the class-mean images projected by PCA, fitted on those
    means, to ``dim`` dimensions; model-free and fast), an embedding network (its
    embeddings of every example; ooDML uses an ImageNet ResNet-50, the kit an embedder
    trained on the source part), or a tensor ``(N, F)`` of precomputed per-example
    features.
    """
    onehot = np.zeros((data.n_classes, len(data)))
    onehot[data.y.numpy(), np.arange(len(data))] = 1
    onehot /= onehot.sum(1, keepdims=True)
    if isinstance(features, str):
        if features != "pixels":
            raise ValueError(f"unknown features {features!r}; use 'pixels', an embedding "
                             "network (nn.Module) or a tensor (N, F)")
        from sklearn.decomposition import PCA

        class_means = onehot @ data.x.reshape(len(data), -1).double().numpy()
        dim = check_int("dim", dim, 1, min(class_means.shape))
        return PCA(n_components=dim, random_state=check_seed(seed)).fit_transform(class_means)
    if isinstance(features, nn.Module):
        from dml_kit.metrics import embed

        feats = embed(features, data.x).double().numpy()
    else:
        feats = _as_2d("features", features)
        if feats.shape[0] != len(data):
            raise ValueError(f"features must have one row per example ({len(data)}), "
                             f"got {feats.shape[0]}")
    return onehot @ feats


@dataclass(frozen=True)
class ShiftSplit:
    """One rung of the ladder: class ids (of the dataset) on each side, and their FD."""

    train_classes: tuple[int, ...]
    test_classes: tuple[int, ...]
    distance: float
    step: int  # swaps from the start split (negative: easier, from the reversed ranking)

    def __repr__(self) -> str:
        return (f"ShiftSplit(FD={self.distance:.3g}, {len(self.train_classes)} train / "
                f"{len(self.test_classes)} test classes, step {self.step})")

    def datasets(self, data: Dataset) -> tuple[Dataset, Dataset]:
        """The train and test parts of ``data`` (relabelled ``0..C-1`` on each side)."""
        return (data.select_classes(self.train_classes, name=f"{data.name}[train]"),
                data.select_classes(self.test_classes, name=f"{data.name}[test]"))


def _walk(means: np.ndarray, train: list[int], test: list[int], n_steps: int, easier: bool,
          swaps_per_step: int, history: int, removal_after: int | None, min_classes: int
          ) -> list[tuple[list[int], list[int], int]]:
    """Swap classes across the border ``n_steps`` times (ooDML, create_dataset_splits.py):
    rank train classes by ``d(c, m_te) - d(c, m_tr)`` (most test-like first) and test
    classes by ``d(c, m_tr) - d(c, m_te)``, swap the top ones not swapped recently. With
    ``easier`` the rankings are reversed. After ``removal_after`` swaps (harder walk only),
    a tentative swap that would leave the distance at or above its current value is undone
    and both classes are deleted instead (ooDML's ``split_maker_with_class_removal``:
    ``if adjusted_fid >= fid``): removing the most test-like train class and the most
    train-like test class separates the sides without moving either class across."""
    train, test = list(train), list(test)
    recent: deque[int] = deque(maxlen=history)
    out = []
    current = frechet_distance(means[train], means[test])
    swaps = 0
    for step in range(1, n_steps + 1):
        m_tr, m_te = means[train].mean(0), means[test].mean(0)
        dist = np.linalg.norm  # distance of each class mean to the two side means
        score_train = (dist(means[train] - m_te, axis=1)
                       - dist(means[train] - m_tr, axis=1))  # small: test-like
        score_test = (dist(means[test] - m_tr, axis=1)
                      - dist(means[test] - m_te, axis=1))  # small: train-like
        order_train = np.argsort(-score_train if easier else score_train, kind="stable")
        order_test = np.argsort(-score_test if easier else score_test, kind="stable")
        pick_train = [train[i] for i in order_train if train[i] not in recent][:swaps_per_step]
        pick_test = [test[i] for i in order_test if test[i] not in recent][:swaps_per_step]
        if not pick_train or not pick_test:
            break
        new_train = [c for c in train if c not in pick_train] + pick_test
        new_test = [c for c in test if c not in pick_test] + pick_train
        fd = frechet_distance(means[new_train], means[new_test])
        removing = (removal_after is not None and swaps >= removal_after and not easier
                    and fd >= current)
        if removing:
            if min(len(train), len(test)) - len(pick_train) < min_classes:
                break
            train = [c for c in train if c not in pick_train]
            test = [c for c in test if c not in pick_test]
            fd = frechet_distance(means[train], means[test])
        else:
            train, test = new_train, new_test
            swaps += len(pick_train)
        recent.extend(pick_train + pick_test)
        current = fd
        out.append((list(train), list(test), -step if easier else step))
    return out


def shift_splits(data: Dataset, n_splits: int = 6, *,
                 features: str | nn.Module | torch.Tensor = "pixels",
                 test_fraction: float = 0.5, feature_dim: int = 16, swaps_per_step: int = 2,
                 history: int = 5, n_easier_steps: int | None = None,
                 n_harder_steps: int | None = None, removal_after: int | None = None,
                 min_classes: int = 10, seed: int = 0) -> list[ShiftSplit]:
    """A ladder of ``n_splits`` class-disjoint train/test splits of strictly increasing
    Fréchet distance between the sets of class-mean features (ooDML's procedure).

    From a seeded random split, classes are swapped across the border step by step
    (``swaps_per_step`` per side, skipping the last ``history`` moved classes): the
    forward ranking makes the split harder, the reversed one easier. After
    ``removal_after`` swaps (default: a third of the smaller side), a swap that would
    leave the distance at or above its current value is undone and both classes are
    deleted instead, as ooDML's code does (both sides shrink equally, never below
    ``min_classes``). All visited splits are pooled and
    ``n_splits`` of them chosen with distances spread evenly from the easiest to the
    hardest. Distances use ``features`` (see :func:`class_mean_features`).
    """
    n_splits = check_int("n_splits", n_splits, 2, 50)
    seed = check_seed(seed)
    min_classes = check_int("min_classes", min_classes, 2)
    need = 2 * min_classes
    if data.n_classes < need + 2:
        raise ValueError(f"data has {data.n_classes} classes; a ladder with min_classes="
                         f"{min_classes} needs at least {need + 2}")
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction={test_fraction} is out of range: must be in (0, 1)")
    n_test = round(data.n_classes * test_fraction)
    if min(n_test, data.n_classes - n_test) < min_classes:
        raise ValueError(f"test_fraction={test_fraction} leaves fewer than min_classes="
                         f"{min_classes} classes on one side")
    means = class_mean_features(data, features, dim=feature_dim, seed=seed)
    perm = torch.randperm(data.n_classes, generator=torch.Generator().manual_seed(seed)).tolist()
    test, train = perm[:n_test], perm[n_test:]
    smaller = min(len(train), len(test))
    steps = n_harder_steps or max(1, smaller // swaps_per_step)
    easy_steps = n_easier_steps if n_easier_steps is not None else max(1, steps // 4)
    removal = removal_after if removal_after is not None else smaller // 3
    visited = [(train, test, 0)]
    visited += _walk(means, train, test, easy_steps, True, swaps_per_step, history, None,
                     min_classes)
    visited += _walk(means, train, test, steps, False, swaps_per_step, history, removal,
                     min_classes)
    scored = sorted(((frechet_distance(means[tr], means[te]), tr, te, s)
                     for tr, te, s in visited), key=lambda t: t[0])
    lo, hi = scored[0][0], scored[-1][0]
    if len(scored) < n_splits or hi <= lo:
        raise ValueError(f"only {len(scored)} distinct splits were reached; ask for fewer "
                         f"than n_splits={n_splits} or allow more steps")
    chosen, used = [], set()
    for target in np.linspace(lo, hi, n_splits):
        best = min((i for i in range(len(scored)) if i not in used),
                   key=lambda i: abs(scored[i][0] - target))
        used.add(best)
        chosen.append(scored[best])
    chosen.sort(key=lambda t: t[0])
    ladder = [ShiftSplit(tuple(sorted(tr)), tuple(sorted(te)), fd, s) for fd, tr, te, s in chosen]
    if any(b.distance <= a.distance for a, b in zip(ladder, ladder[1:], strict=False)):
        raise ValueError("could not find splits of strictly increasing distance; "
                         "lower n_splits")
    return ladder


def fewer_train_classes(data: Dataset, split: ShiftSplit, n_train: int, *,
                        features: str | nn.Module | torch.Tensor = "pixels",
                        feature_dim: int = 16, seed: int = 0) -> ShiftSplit:
    """A control for the class-count confound of the ladder: ``split``'s test classes
    against a seeded random ``n_train`` of its train classes.

    ooDML's class-removal phase deletes classes from both sides, so the hard rungs train
    on fewer classes *and* test on classes further away. Training on the easy rung's
    classes cut to the hard rung's count separates the two: the control keeps the easy
    test classes and changes only the count. Its distance is the Fréchet distance of
    the class means (:func:`class_mean_features` with ``features``, ``feature_dim`` and
    ``seed``: pass the ladder's, so the distance is on the ladder's scale).
    """
    n_train = check_int("n_train", n_train, 2, len(split.train_classes),
                        hint=f"the split has {len(split.train_classes)} train classes")
    seed = check_seed(seed)
    g = torch.Generator().manual_seed(seed)
    pick = torch.randperm(len(split.train_classes), generator=g)[:n_train].tolist()
    train = tuple(sorted(split.train_classes[i] for i in pick))
    means = class_mean_features(data, features, dim=feature_dim, seed=seed)
    fd = frechet_distance(means[list(train)], means[list(split.test_classes)])
    return ShiftSplit(train, split.test_classes, fd, split.step)
