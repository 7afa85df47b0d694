"""Projection: PCA, Procrustes alignment, frame-to-frame stability, the UMAP path."""

from __future__ import annotations

import os

import numpy as np
import pytest

from dml_kit.viz import projection as P
from dml_kit.viz.projection import Projector, pca_2d, procrustes_align


def _rotation(theta: float) -> np.ndarray:
    return np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])


@pytest.fixture
def cloud() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(size=(50, 2)) * np.array([3.0, 1.0])


def test_procrustes_undoes_rotation_scale_and_shift(cloud):
    moved = 2.5 * cloud @ _rotation(1.1) + np.array([4.0, -7.0])
    np.testing.assert_allclose(procrustes_align(moved, cloud), cloud, atol=1e-9)


def test_procrustes_undoes_reflection_only_when_allowed(cloud):
    mirrored = cloud @ np.diag([-1.0, 1.0]) @ _rotation(0.4)
    np.testing.assert_allclose(procrustes_align(mirrored, cloud), cloud, atol=1e-9)
    rotated_only = procrustes_align(mirrored, cloud, allow_reflection=False)
    assert np.abs(rotated_only - cloud).max() > 0.5  # a rotation cannot undo a mirror


def test_procrustes_without_scale_keeps_size(cloud):
    moved = 3.0 * cloud @ _rotation(0.3)
    out = procrustes_align(moved, cloud, scale=False)
    np.testing.assert_allclose(np.linalg.norm(out - out.mean(0)),
                               np.linalg.norm(moved - moved.mean(0)))


def test_procrustes_rejects_mismatched_shapes(cloud):
    with pytest.raises(ValueError, match="same"):
        procrustes_align(cloud, cloud[:10])


def test_pca_2d_matches_variance_and_fixes_signs():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 10)) * np.linspace(5, 0.1, 10)
    y = pca_2d(x)
    assert y.shape == (200, 2)
    var = y.var(axis=0)
    assert var[0] > var[1] > 0
    np.testing.assert_allclose(pca_2d(-x), y, atol=1e-9)  # sign convention is deterministic


def test_projector_aligns_successive_frames():
    rng = np.random.default_rng(2)
    emb = rng.normal(size=(80, 16)) * np.linspace(4, 1, 16)
    proj = Projector("pca")
    first = proj.fit_transform(emb)
    # a rotated copy of the embedding space gives the same picture, not a spun one
    q, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    second = proj.fit_transform(emb @ q * 1.7)
    np.testing.assert_allclose(second, first, atol=1e-6)
    # a slightly perturbed embedding stays close to the previous layout
    third = proj.fit_transform(emb + 0.01 * rng.normal(size=emb.shape))
    assert np.abs(third - first).max() < 0.2
    assert proj.last_method == "pca"
    # a different number of points starts a fresh layout
    assert proj.fit_transform(emb[:40]).shape == (40, 2)


def test_projector_validates_arguments():
    with pytest.raises(ValueError, match="method"):
        Projector("tsne")
    with pytest.raises(ValueError, match="n_neighbors"):
        Projector("pca", n_neighbors=1)
    with pytest.raises(ValueError, match="emb must be"):
        Projector("pca").fit_transform(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        Projector("pca").fit_transform(np.full((5, 3), np.nan))


def test_numba_cache_dir_is_configurable(tmp_path, monkeypatch):
    monkeypatch.setenv(P.CACHE_ENV, str(tmp_path / "nb"))
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    assert P.configure_numba_cache() == tmp_path / "nb"
    assert os.environ["NUMBA_CACHE_DIR"] == str(tmp_path / "nb")
    assert (tmp_path / "nb").is_dir()


def test_viz_import_does_not_import_umap():
    import subprocess
    import sys

    code = ("import sys, dml_kit.viz; import dml_kit.viz.projection; "
            "print('umap' in sys.modules, 'numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["False", "False"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_umap_projector_is_aligned_and_falls_back_to_pca_until_warm():
    """Needs umap-learn's numba kernels (compiled once per machine, then cached)."""
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(4, 32)) * 6
    labels = np.repeat(np.arange(4), 30)
    emb = centres[labels] + rng.normal(size=(120, 32))
    proj = Projector("umap", when_cold="pca", seed=0)
    if not P.umap_ready():
        assert proj.fit_transform(emb).shape == (120, 2)
        assert proj.last_method == "pca"
    assert P.wait_for_umap(timeout=280)
    first = proj.fit_transform(emb)
    assert proj.last_method == "umap"
    second = proj.fit_transform(emb + 0.01 * rng.normal(size=emb.shape))
    # aligned and warm-started: the clusters stay where they were
    for c in range(4):
        m = labels == c
        assert np.linalg.norm(first[m].mean(0) - second[m].mean(0)) < \
            0.25 * np.ptp(first, axis=0).max()


# ---- exact kNN for UMAP (precomputed_knn) ------------------------------------------------
def _brute_force_knn(x: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Every pairwise distance by the definition, itself first, then by distance."""
    if metric == "euclidean":
        dist = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    else:
        norms = np.linalg.norm(x, axis=1)
        safe = np.where(norms == 0, 1.0, norms)
        dist = 1.0 - (x @ x.T) / np.outer(safe, safe)
        zero = norms == 0
        dist[zero[:, None] ^ zero[None, :]] = 1.0
        dist[zero[:, None] & zero[None, :]] = 0.0
    np.fill_diagonal(dist, -1.0)
    idx = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return idx, np.maximum(np.take_along_axis(dist, idx, axis=1), 0.0)


@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
@pytest.mark.parametrize("block", [7, 1024])
def test_exact_knn_matches_brute_force(metric, block):
    rng = np.random.default_rng(4)
    x = rng.normal(size=(90, 6)) * np.linspace(3, 0.5, 6)
    idx, dist = P.exact_knn(x, 8, metric=metric, block=block)
    ref_idx, ref_dist = _brute_force_knn(x, 8, metric)
    assert idx.dtype == np.int32 and dist.dtype == np.float32  # what umap-learn expects
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-6, atol=1e-6)
    assert (idx[:, 0] == np.arange(90)).all() and (dist[:, 0] == 0).all()
    assert (np.diff(dist, axis=1) >= 0).all()


def test_exact_knn_zero_rows_and_duplicates_under_cosine():
    x = np.array([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])
    idx, dist = P.exact_knn(x, 3, metric="cosine")
    assert idx[0].tolist() == [0, 1, 2] and dist[0].tolist() == [0.0, 0.0, 1.0]
    # (1, 0) and (2, 0) point the same way; the zero rows and (0, 1) tie at distance 1
    assert idx[2, :2].tolist() == [2, 3] and dist[2].tolist() == [0.0, 0.0, 1.0]
    assert idx[2, 2] in (0, 1, 4)
    np.testing.assert_allclose(dist[4], [0.0, 1.0, 1.0])


def test_exact_knn_validates_arguments():
    x = np.zeros((5, 3))
    with pytest.raises(ValueError, match="k"):
        P.exact_knn(x, 6)
    with pytest.raises(ValueError, match="metric"):
        P.exact_knn(x, 2, metric="manhattan")
    with pytest.raises(ValueError, match="x must be"):
        P.exact_knn(np.zeros(5), 2)
    with pytest.raises(ValueError, match="knn"):
        Projector("umap", knn="approximate")


def _clusters(n: int = 150, dim: int = 16, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 5
    centres = rng.normal(size=(5, dim)) * 5
    return (centres[labels] + rng.normal(size=(n, dim))).astype(np.float32), labels


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_exact_knn_equals_umaps_own_and_gives_its_graph(metric):
    """umap-learn below 4,096 points: sklearn's pairwise distances, then
    umap.utils.fast_knn_indices. Our kNN has the same neighbours, and the fuzzy graph UMAP
    builds from it as ``precomputed_knn`` is the one it builds by itself."""
    import warnings

    assert P.wait_for_umap(timeout=280)
    import umap
    from sklearn.metrics import pairwise_distances
    from umap.utils import fast_knn_indices

    x, _ = _clusters(120)
    dmat = pairwise_distances(x.astype(np.float64), metric=metric)
    ref_idx = fast_knn_indices(dmat, 10)
    idx, dist = P.exact_knn(x, 10, metric=metric)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(dist, np.take_along_axis(dmat, ref_idx, axis=1), atol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        own = umap.UMAP(n_neighbors=10, metric=metric, random_state=0, n_epochs=5,
                        init="random").fit(x)
        given = umap.UMAP(n_neighbors=10, metric=metric, random_state=0, n_epochs=5,
                          init="random", precomputed_knn=(idx, dist, None)).fit(x)
    assert (own.graph_ != given.graph_).nnz == 0 or \
        np.abs((own.graph_ - given.graph_).toarray()).max() < 1e-5


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_umap_layout_is_seeded_and_warm_frames_stay_close():
    assert P.wait_for_umap(timeout=280)
    x, labels = _clusters()
    first = Projector("umap", seed=3, n_epochs=60).fit_transform(x)
    again = Projector("umap", seed=3, n_epochs=60).fit_transform(x)
    np.testing.assert_array_equal(first, again)  # same seed, same layout
    other = Projector("umap", seed=4, n_epochs=60).fit_transform(x)
    assert np.abs(other - first).max() > 1e-3
    # a warm frame of slightly moved embeddings stays where the previous one was
    proj = Projector("umap", seed=3, n_epochs=60, warm_epochs=15)
    before = proj.fit_transform(x)
    moved = x + 0.05 * np.random.default_rng(6).normal(size=x.shape).astype(np.float32)
    after = proj.fit_transform(moved)
    spread = np.ptp(before, axis=0).max()
    assert np.median(np.linalg.norm(after - before, axis=1)) < 0.15 * spread
    for c in range(5):
        m = labels == c
        assert np.linalg.norm(after[m].mean(0) - before[m].mean(0)) < 0.2 * spread


@pytest.mark.parametrize("shape", [(200, 10), (12, 40)])  # D <= N (scatter) and D > N (Gram)
def test_pca_2d_equals_the_svd_scores(shape):
    rng = np.random.default_rng(7)
    x = rng.normal(size=shape) * np.linspace(4, 0.2, shape[1])
    xc = x - x.mean(axis=0)
    u, s, _ = np.linalg.svd(xc, full_matrices=False)
    reference = u[:, :2] * s[:2]
    y = pca_2d(x)
    for j in range(2):  # equal up to each column's sign
        sign = np.sign(y[:, j] @ reference[:, j])
        np.testing.assert_allclose(y[:, j], sign * reference[:, j], atol=1e-8)
    assert pca_2d(x[:, :1])[:, 1].tolist() == [0.0] * shape[0]
