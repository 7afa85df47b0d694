"""Norm regularizers: SEC, Lp norm penalty, ring loss against naive per-sample loops."""

from __future__ import annotations

import pytest
import torch

from dml_kit import regularizers
from dml_kit.regularizers import SEC, LpNormPenalty, RingLoss

# the tests read losses and learned radii (parameters) as plain floats on purpose, to
# compare them with hand-computed references: torch's warning about float() of a tensor
# that requires grad is expected here (the suite's only warning before this mark)
pytestmark = pytest.mark.filterwarnings(
    "ignore:Converting a tensor with requires_grad=True to a scalar:UserWarning")


def _x(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(6, 4, generator=g, dtype=torch.float64) * torch.arange(
        1, 7, dtype=torch.float64).unsqueeze(1)


def test_sec_value_and_gradient_treat_the_mean_norm_as_a_constant() -> None:
    x = _x().requires_grad_(True)
    loss = SEC()(x)
    norms = [x[i].norm() for i in range(len(x))]
    mu = sum(float(n.detach()) for n in norms) / len(norms)  # a constant: detached
    ref = sum((n - mu) ** 2 for n in norms) / len(norms)
    torch.testing.assert_close(loss, ref)
    (g,) = torch.autograd.grad(loss, x)
    expected = torch.stack([2 / len(x) * (norms[i] - mu) * x[i] / norms[i]
                            for i in range(len(x))]).detach()
    torch.testing.assert_close(g, expected)
    # For the plain batch mean, detaching changes nothing: d/dmu sum_i (n_i - mu)^2 =
    # -2 sum_i (n_i - mu) = 0 at mu = mean (the docstring says so; it matters with momentum)
    xr = x.detach().clone().requires_grad_(True)
    n = xr.norm(dim=1)
    ((n - n.mean()) ** 2).mean().backward()
    torch.testing.assert_close(xr.grad, g)


def test_sec_is_zero_for_equal_norms_and_gradcheck() -> None:
    x = torch.nn.functional.normalize(_x(1), dim=1) * 3.0
    assert float(SEC()(x)) == pytest.approx(0.0, abs=1e-12)
    x = _x(2).requires_grad_(True)
    assert torch.autograd.gradcheck(SEC(), (x,))


def test_sec_momentum_moving_average() -> None:
    reg = SEC(momentum=0.5)
    a = torch.ones(3, 4) * torch.tensor([[1.0], [2.0], [3.0]])  # norms 2, 4, 6: mean 4
    b = a * 2  # norms 4, 8, 12: mean 8
    reg(a)
    assert float(reg.running_mean_norm) == pytest.approx(4.0)
    loss = reg(b)  # mu = 0.5 * 4 + 0.5 * 8 = 6
    assert float(reg.running_mean_norm) == pytest.approx(6.0)
    assert float(loss) == pytest.approx(((4 - 6) ** 2 + (8 - 6) ** 2 + (12 - 6) ** 2) / 3)
    reg.eval()
    reg(a * 10)  # no update in eval mode
    assert float(reg.running_mean_norm) == pytest.approx(6.0)


def test_sec_zero_embedding_has_finite_gradient() -> None:
    x = torch.zeros(3, 4, requires_grad=True)
    SEC()(x).backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("p,power", [(2.0, 2.0), (2.0, 1.0), (1.0, 1.0), (3.0, 2.0)])
def test_lp_penalty_matches_naive(p: float, power: float) -> None:
    x = _x(3).requires_grad_(True)
    loss = LpNormPenalty(p=p, power=power)(x)
    ref = sum(sum(abs(float(v)) ** p for v in row) ** (power / p) for row in x.detach()) / len(x)
    assert float(loss.detach()) == pytest.approx(ref)
    assert torch.autograd.gradcheck(LpNormPenalty(p=p, power=power), (x,))


def test_ring_loss_initialises_radius_from_first_batch_and_learns_it() -> None:
    x = _x(4)
    reg = RingLoss(lam=0.5).double()
    first = reg(x)
    mean_norm = float(x.norm(dim=1).mean())
    assert float(reg.radius) == pytest.approx(mean_norm)
    ref = 0.5 / 2 * sum((float(row.norm()) - mean_norm) ** 2 for row in x) / len(x)
    assert float(first) == pytest.approx(ref)
    second = reg(x * 2)  # radius is not re-initialised
    assert float(reg.radius) == pytest.approx(mean_norm)
    second.backward()
    # dL/dR = -lam * mean(||f|| - R): norms doubled, so R should grow (negative gradient)
    assert float(reg.radius.grad) == pytest.approx(-0.5 * (2 * mean_norm - mean_norm))


def test_ring_loss_with_given_radius() -> None:
    reg = RingLoss(radius=2.0, lam=1.0)
    x = torch.tensor([[3.0, 4.0]])
    assert float(reg(x)) == pytest.approx(0.5 * (5 - 2) ** 2)
    assert float(reg.radius) == 2.0


def test_registry_builds_each_with_defaults_and_rejects_unknown() -> None:
    assert regularizers.available() == ["sec", "lp", "ring"]
    x = _x(5).float()
    for name in regularizers.available():
        spec = regularizers.spec(name)
        assert spec.description and spec.required == ()
        out = regularizers.get(name)(x)
        assert out.dim() == 0 and torch.isfinite(out)
    assert isinstance(regularizers.get("sec", momentum=0.9), SEC)
    with pytest.raises(ValueError, match="unknown parameter 'mom'.*allowed: momentum"):
        regularizers.get("sec", mom=0.9)
    with pytest.raises(ValueError, match="momentum"):
        SEC(momentum=0.0)
    with pytest.raises(ValueError, match="shape"):
        SEC()(torch.zeros(3))
