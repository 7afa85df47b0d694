"""Fréchet distance (closed forms) and the ooDML split ladder."""

import numpy as np
import pytest
import torch

from dml_kit.data.shift import ShiftSplit, class_mean_features, frechet_distance, shift_splits


def _gaussian(n, mean, std, seed):
    g = np.random.default_rng(seed)
    return g.normal(size=(n, len(mean))) * np.asarray(std) + np.asarray(mean)


def test_frechet_closed_form_diagonal_covariances():
    # For diagonal covariances FD = ||mu_a - mu_b||^2 + sum_i (sigma_a,i - sigma_b,i)^2.
    # Use the exact sample moments: build samples, then compare with their own moments.
    a = _gaussian(4000, [0, 0, 0], [1, 2, 0.5], 0)
    b = _gaussian(4000, [1, -1, 2], [3, 1, 0.5], 1)
    mu = ((a.mean(0) - b.mean(0)) ** 2).sum()
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # off-diagonals are tiny; the closed form on the diagonals is within sampling noise
    closed = mu + ((np.sqrt(np.diag(ca)) - np.sqrt(np.diag(cb))) ** 2).sum()
    assert frechet_distance(a, b) == pytest.approx(closed, rel=2e-2)
    # population values: 1 + 1 + 4 + (1-3)^2 + (2-1)^2 + 0 = 11
    assert frechet_distance(a, b) == pytest.approx(11.0, rel=0.05)


def test_frechet_exact_for_commuting_covariances():
    # two point sets whose sample covariances are exactly 2I and 8I: FD = 2 * (sqrt2 - sqrt8)^2
    base = np.array([[1.0, 0], [-1, 0], [0, 1], [0, -1]])  # cov = (2/3) I with 1/(n-1)
    a = base * np.sqrt(3.0)  # cov 2I
    b = base * np.sqrt(12.0) + [5.0, 0.0]  # cov 8I, mean shifted by 5
    expected = 25 + 2 * (np.sqrt(2) - np.sqrt(8)) ** 2
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(torch.tensor(a), torch.tensor(b)) == pytest.approx(expected, rel=1e-6)


def test_frechet_is_symmetric_and_rejects_bad_input():
    a, b = _gaussian(50, [0, 0], [1, 1], 2), _gaussian(60, [1, 0], [2, 1], 3)
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-6)
    with pytest.raises(ValueError, match="same dimension"):
        frechet_distance(a, b[:, :1])
    with pytest.raises(ValueError, match="features_a must be"):
        frechet_distance(a[:1], b)


def test_class_mean_features_with_given_features(make_blobs):
    d = make_blobs(4, 3)
    means = class_mean_features(d, d.x)
    assert means.shape == (4, 10)
    assert np.allclose(means[2], d.x[d.y == 2].double().mean(0).numpy())


def test_ladder_on_blobs_is_increasing_disjoint_and_seeded(make_blobs):
    d = make_blobs()
    ladder = shift_splits(d, n_splits=5, min_classes=8, feature_dim=8, seed=0)
    assert len(ladder) == 5 and all(isinstance(s, ShiftSplit) for s in ladder)
    fds = [s.distance for s in ladder]
    assert all(b > a for a, b in zip(fds, fds[1:], strict=False))
    for s in ladder:
        assert not set(s.train_classes) & set(s.test_classes)
        assert min(len(s.train_classes), len(s.test_classes)) >= 8
        train, test = s.datasets(d)
        assert train.n_classes == len(s.train_classes) and test.n_classes == len(s.test_classes)
    again = shift_splits(d, n_splits=5, min_classes=8, feature_dim=8, seed=0)
    assert [s.test_classes for s in again] == [s.test_classes for s in ladder]


def test_ladder_errors_name_the_argument(make_blobs):
    d = make_blobs(12, 3)
    with pytest.raises(ValueError, match="min_classes"):
        shift_splits(d, min_classes=10)
    with pytest.raises(ValueError, match="n_splits"):
        shift_splits(make_blobs(), n_splits=1)
    with pytest.raises(ValueError, match="test_fraction"):
        shift_splits(make_blobs(), test_fraction=1.5)
    with pytest.raises(ValueError, match="seed"):
        shift_splits(make_blobs(), seed="zero")


def test_glyph_ladder_has_five_rungs_of_increasing_distance():
    from dml_kit.data import load

    glyphs = load("glyphs")
    ladder = shift_splits(glyphs, n_splits=6, seed=0)
    fds = [s.distance for s in ladder]
    assert len(ladder) == 6 and all(b > a for a, b in zip(fds, fds[1:], strict=False))
    assert fds[-1] > 1.5 * fds[0]


def test_ladder_and_distance_are_exported_from_data():
    import dml_kit as dk

    assert dk.data.shift_splits is shift_splits and dk.data.frechet_distance is frechet_distance


def test_fewer_train_classes_keeps_the_test_side_and_recomputes_the_distance(make_blobs):
    from dml_kit.data.shift import fewer_train_classes

    d = make_blobs()
    split = ShiftSplit(tuple(range(20)), tuple(range(20, 40)), 1.0, 3)
    control = fewer_train_classes(d, split, 8, features=d.x, seed=1)
    assert control.test_classes == split.test_classes and control.step == 3
    assert len(control.train_classes) == 8 and set(control.train_classes) < set(range(20))
    assert list(control.train_classes) == sorted(control.train_classes)
    # the distance is the FD of the class-mean features of the two sides
    means = class_mean_features(d, d.x)
    want = frechet_distance(means[list(control.train_classes)], means[20:40])
    assert control.distance == pytest.approx(want, rel=1e-12)
    again = fewer_train_classes(d, split, 8, features=d.x, seed=1)
    assert again == control                                            # seeded
    assert fewer_train_classes(d, split, 8, features=d.x, seed=2) != control
    with pytest.raises(ValueError, match="n_train"):
        fewer_train_classes(d, split, 21, features=d.x)


def test_notebook_ladder_on_glyphs_rises_while_both_sides_shrink_equally():
    """The default ladder of notebook 07 (every 8th glyph class, 4 rungs): strictly rising
    distances; the class-removal phase shrinks both sides by the same count."""
    from dml_kit.data import load

    glyphs = load("glyphs")
    data = glyphs.select_classes(range(0, glyphs.n_classes, 8))
    ladder = shift_splits(data, n_splits=4, seed=0)
    fds = [s.distance for s in ladder]
    assert all(b > a for a, b in zip(fds, fds[1:], strict=False))
    counts = [(len(s.train_classes), len(s.test_classes)) for s in ladder]
    assert all(tr == te for tr, te in counts)
    assert [tr for tr, _ in counts] == sorted((tr for tr, _ in counts), reverse=True)
    assert counts[0] == (80, 80) and counts[-1][0] < 80                 # 160 classes, halved
