"""Pairwise distances: values against torch.cdist / explicit loops, gradients at zero."""

from __future__ import annotations

import pytest
import torch

from dml_kit.losses import distances as dist


def _naive(x: torch.Tensor, y: torch.Tensor, kind: str) -> torch.Tensor:
    out = torch.empty(len(x), len(y), dtype=x.dtype)
    for i in range(len(x)):
        for j in range(len(y)):
            diff = x[i] - y[j]
            if kind == "euclidean":
                out[i, j] = diff.pow(2).sum().sqrt()
            elif kind == "sqeuclidean":
                out[i, j] = diff.pow(2).sum()
            else:
                out[i, j] = 1 - (x[i] @ y[j]) / (x[i].norm() * y[j].norm())
    return out


@pytest.mark.parametrize("kind", dist.DISTANCES)
def test_values_match_naive_loops(kind: str) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 5, generator=g, dtype=torch.float64)
    y = torch.randn(4, 5, generator=g, dtype=torch.float64)
    torch.testing.assert_close(dist.pairwise_distance(x, y, kind), _naive(x, y, kind))
    within = dist.pairwise_distance(x, distance=kind)
    torch.testing.assert_close(within, _naive(x, x, kind), atol=1e-7, rtol=1e-7)
    assert torch.all(within.diagonal().abs() < 1e-7)


def test_euclidean_matches_cdist() -> None:
    x = torch.randn(20, 8)
    torch.testing.assert_close(dist.pairwise_euclidean(x), torch.cdist(x, x), atol=1e-4,
                               rtol=1e-4)


@pytest.mark.parametrize("kind", dist.DISTANCES)
def test_identical_embeddings_give_finite_zero_gradients(kind: str) -> None:
    x = torch.ones(4, 3, requires_grad=True)
    d = dist.pairwise_distance(x, distance=kind)
    assert torch.allclose(d, torch.zeros_like(d), atol=1e-6)
    d.sum().backward()
    assert torch.isfinite(x.grad).all()
    assert torch.allclose(x.grad, torch.zeros_like(x.grad), atol=1e-5)


def test_zero_vector_has_zero_cosine_and_finite_gradient() -> None:
    x = torch.zeros(3, 4)
    x[1] = torch.tensor([1.0, 0, 0, 0])
    x.requires_grad_(True)
    s = dist.cosine_similarity(x)
    assert float(s[0, 1].detach()) == 0 and float(s[1, 1].detach()) == pytest.approx(1.0)
    s.sum().backward()
    assert torch.isfinite(x.grad).all()


def test_safe_sqrt_gradient_is_zero_at_zero() -> None:
    d2 = torch.tensor([0.0, 4.0], requires_grad=True)
    dist.safe_sqrt(d2).sum().backward()
    assert d2.grad.tolist() == [0.0, 0.25]


@pytest.mark.parametrize("kind", dist.DISTANCES)
def test_gradcheck(kind: str) -> None:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 3, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch.randn(4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: dist.pairwise_distance(a, b, kind), (x, y))
    # within one set the diagonal is constant 0; the off-diagonal entries are smooth
    assert torch.autograd.gradcheck(lambda a: dist.pairwise_distance(a, distance=kind), (x,))


def test_unknown_distance_lists_choices() -> None:
    with pytest.raises(ValueError, match="euclidean, sqeuclidean, cosine"):
        dist.pairwise_distance(torch.zeros(2, 2), distance="manhattan")
