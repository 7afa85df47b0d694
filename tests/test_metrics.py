"""Metrics against small hand-computed cases."""

import math

import numpy as np
import pytest
import torch

from dml_kit import metrics


def test_prototype_accuracy_hand_case():
    # class 0 support at (0,0),(2,0) -> prototype (1,0); class 1 at (0,4) -> prototype (0,4)
    s = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 4.0]])
    sy = torch.tensor([0, 0, 1])
    q = torch.tensor([[1.0, 1.0], [0.0, 3.0], [1.0, 2.4]])
    # distances^2: q0 -> (1, 10): 0 ; q1 -> (10, 1): 1 ; q2 -> (5.76, 3.56): 1
    qy = torch.tensor([0, 1, 0])
    assert metrics.prototype_accuracy(s, sy, q, qy) == pytest.approx(2 / 3)


def test_knn_accuracy_cosine_uses_angle_not_length():
    s = torch.tensor([[1.0, 0.0], [0.0, 10.0]])
    sy = torch.tensor([3, 7])
    q = torch.tensor([[100.0, 1.0], [0.1, 0.2], [5.0, 4.0]])
    # cos to (1,0) vs (0,1): q0 -> class 3; q1 -> class 7; q2 -> class 3
    assert metrics.knn_accuracy(s, sy, q, torch.tensor([3, 7, 3])) == 1.0
    # Euclidean would send q1 (0.1, 0.2) to (1, 0): class 3
    assert metrics.knn_accuracy(s, sy, q, torch.tensor([3, 3, 3]), distance="euclidean") == 1.0


def test_knn_majority_vote_k3():
    s = torch.tensor([[0.0], [1.0], [1.1], [5.0]])
    sy = torch.tensor([0, 1, 1, 0])
    # query at 0.2: nearest 0 (class 0), 1.0, 1.1 (class 1) -> majority class 1
    assert metrics.knn_accuracy(s, sy, torch.tensor([[0.2]]), torch.tensor([1]), k=3,
                                distance="euclidean") == 1.0
    assert metrics.knn_accuracy(s, sy, torch.tensor([[0.2]]), torch.tensor([0]), k=1,
                                distance="euclidean") == 1.0


def test_recall_at_k_hand_case():
    # points on a line: a0=0, a1=1 (class a), b0=2.2, b1=10 (class b)
    emb = torch.tensor([[0.0], [1.0], [2.2], [10.0]])
    y = torch.tensor([0, 0, 1, 1])
    r = metrics.recall_at_k(emb, y, ks=(1, 2, 3), distance="euclidean")
    # NN: 0->1 (hit), 1->0 (hit, 1.0 < 1.2), 2.2->1 (miss), 10->2.2 (hit)
    assert r[1] == pytest.approx(3 / 4)
    # 2-NN of 2.2: {1, 0} miss; 3-NN includes 10 -> hit
    assert r[2] == pytest.approx(3 / 4)
    assert r[3] == pytest.approx(1.0)


def test_map_at_r_hand_case():
    emb = torch.tensor([[0.0], [1.0], [1.6], [10.0], [0.5]])
    y = torch.tensor([0, 0, 1, 1, 0])
    # class 0 has 3 members: R=2 for each; class 1 has 2: R=1
    # q=0.0: neighbours 0.5(hit),1.0(hit) -> AP = (1/1 + 2/2)/2 = 1
    # q=1.0: 0.5? dist .5, 1.6 dist .6, 0 dist 1 -> [hit, miss] -> AP = (1)/2 = 0.5
    # q=1.6: R=1: nearest 1.0 miss -> 0
    # q=10: R=1: nearest 1.6 hit -> 1
    # q=0.5: 0.0 and 1.0 both at 0.5 -> both hits -> 1
    expected = (1 + 0.5 + 0 + 1 + 1) / 5
    assert metrics.map_at_r(emb, y, distance="euclidean") == pytest.approx(expected)


def test_nmi_perfect_and_permutation_invariant():
    emb = torch.tensor([[0.0, 0.0], [0.1, 0.0], [10.0, 10.0], [10.1, 10.0]])
    assert metrics.nmi(emb, torch.tensor([5, 5, 2, 2])) == pytest.approx(1.0)


def test_norm_stats():
    emb = torch.tensor([[3.0, 4.0], [0.0, 1.0]])  # norms 5 and 1
    st = metrics.norm_stats(emb)
    assert st["mean"] == pytest.approx(3.0) and st["std"] == pytest.approx(2.0)
    assert st["cv"] == pytest.approx(2 / 3) and st["min"] == 1 and st["max"] == 5


def test_error_reduction_hand_case():
    # errors 0.5 -> 0.25 (50% reduction) and 0.2 -> 0.2 (0%): mean 25%
    assert metrics.error_reduction([0.5, 0.8], [0.75, 0.8]) == pytest.approx(0.25)
    assert metrics.error_reduction(0.9, 0.8) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="same shape"):
        metrics.error_reduction([0.5, 0.5], [0.5])
    with pytest.raises(ValueError, match="between 0 and 1"):
        metrics.error_reduction([50.0], [60.0])


def test_embed_restores_mode_and_batches():
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Dropout(0.5))
    net.train()
    x = torch.rand(10, 3)
    out = metrics.embed(net, x, batch_size=3)
    assert net.training and out.shape == (10, 2) and not out.requires_grad
    assert torch.allclose(out, net.eval()(x))


def test_metric_argument_errors():
    e, y = torch.rand(4, 2), torch.tensor([0, 0, 1, 1])
    with pytest.raises(ValueError, match="distance"):
        metrics.prototype_accuracy(e, y, e, y, distance="manhattan")
    with pytest.raises(ValueError, match="k=5 is out of range"):
        metrics.knn_accuracy(e, y, e, y, k=5)
    with pytest.raises(ValueError, match="labels must be"):
        metrics.recall_at_k(e, y[:3])
    assert not math.isnan(metrics.map_at_r(e, y))


def test_error_reductions_per_condition():
    # (0.5 - 0.25) / 0.5 = 0.5; (0.2 - 0.2) / 0.2 = 0; a perfect baseline has nothing to reduce
    per = metrics.error_reductions([0.5, 0.8, 1.0], [0.75, 0.8, 1.0])
    np.testing.assert_allclose(per[:2], [0.5, 0.0])
    assert np.isnan(per[2])
    assert metrics.error_reduction([0.5, 0.8, 1.0], [0.75, 0.8, 1.0]) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="method_acc must hold accuracies"):
        metrics.error_reductions([0.5], [float("nan")])


# ------------------------------------------------------------ bad input named (issue 15)
def _sets() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.randn(6, 4, generator=g), torch.tensor([0, 0, 1, 1, 2, 2])


def _poison(e: torch.Tensor, n: int) -> torch.Tensor:
    e = e.clone()
    for i in range(n):
        e[i, i % e.shape[1]] = (float("nan"), float("inf"), -float("inf"))[i % 3]
    return e


@pytest.mark.parametrize("which", ["support", "query"])
@pytest.mark.parametrize("fn", ["prototype_accuracy", "knn_accuracy"])
def test_support_query_metrics_refuse_non_finite_by_name(which: str, fn: str) -> None:
    e, y = _sets()
    bad = _poison(e, 3)
    args = (bad, y, e, y) if which == "support" else (e, y, bad, y)
    with pytest.raises(ValueError, match=rf"{which}_emb holds 3 non-finite values \(NaN or inf\)"):
        getattr(metrics, fn)(*args)


@pytest.mark.parametrize("fn", [
    lambda e, y: metrics.recall_at_k(e, y, ks=(1,)),
    lambda e, y: metrics.map_at_r(e, y),
    lambda e, y: metrics.nmi(e, y),
    lambda e, y: metrics.norm_stats(e),
])
def test_set_metrics_refuse_non_finite_by_name(fn) -> None:
    e, y = _sets()
    with pytest.raises(ValueError, match=r"emb holds 1 non-finite value \(NaN or inf\)"):
        fn(_poison(e, 1), y)


def test_empty_query_set_is_refused() -> None:
    e, y = _sets()
    for fn in (metrics.prototype_accuracy, metrics.knn_accuracy):
        with pytest.raises(ValueError, match="query_emb and query_y are empty"):
            fn(e, y, e[:0], y[:0])
        with pytest.raises(ValueError, match="support_emb and support_y are empty"):
            fn(e[:0], y[:0], e, y)


def test_mismatched_dimensions_name_both_shapes() -> None:
    e, y = _sets()
    q = torch.randn(6, 6)
    for fn in (metrics.prototype_accuracy, metrics.knn_accuracy):
        with pytest.raises(ValueError, match=r"support_emb and query_emb .* \(6, 4\) and \(6, 6\)"):
            fn(e, y, q, y)


@pytest.mark.parametrize("labels, message", [
    (torch.tensor([0.0, 0, 1, 1, 2, 2]), "must hold integer class labels"),
    (torch.tensor([-1, -1, 0, 0, 1, 1]), "must hold non-negative class labels"),
])
def test_float_or_negative_labels_are_refused_by_name(labels, message) -> None:
    e, y = _sets()
    with pytest.raises(ValueError, match=f"support_y {message}"):
        metrics.prototype_accuracy(e, labels, e, y)
    with pytest.raises(ValueError, match=f"query_y {message}"):
        metrics.knn_accuracy(e, y, e, labels)
    with pytest.raises(ValueError, match=f"labels {message}"):
        metrics.map_at_r(e, labels)
    with pytest.raises(ValueError, match=f"labels {message}"):
        metrics.recall_at_k(e, labels)


def test_embed_casts_float64_and_names_x_on_a_shape_it_cannot_take() -> None:
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 4))
    x = torch.rand(3, 8, 8, dtype=torch.float64)
    out = metrics.embed(net, x)
    assert out.dtype == torch.float32
    assert torch.allclose(out, metrics.embed(net, x.float()))
    with pytest.raises(ValueError, match=r"cannot embed x of shape \(3, 28, 28\)"):
        metrics.embed(net, torch.rand(3, 28, 28))
    with pytest.raises(ValueError, match="x must be a torch.Tensor"):
        metrics.embed(net, [[0.0] * 64])
