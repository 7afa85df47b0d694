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
