"""Toy dynamics behind the figures of notebook 06: why an angular loss's step size depends on
the embedding norm (*Deep Metric Learning with Spherical Embedding*, Zhang, Li & Zhang,
NeurIPS 2020, Eq. 1).

For a partner vector ``g`` the gradient of the cosine with respect to ``f`` is

    d cos(f, g) / d f = (g_hat - cos(f, g) f_hat) / ||f||,      f_hat = f / ||f||,

orthogonal to ``f`` and ``sin(theta) / ||f||`` long: one gradient step of size ``lr`` turns
``f`` by about ``lr sin(theta) / ||f||^2`` radians. Short embeddings spin fast, long ones
barely move, for the same loss.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
import torch
import torch.nn.functional as F

from dml_kit._validation import check_float
from dml_kit.viz.figures import TEMPLATE

__all__ = ["cosine_gradient", "sgd_turn_degrees", "cosine_gradient_figure", "log_ticks"]


def _vector(name: str, v: torch.Tensor) -> torch.Tensor:
    v = torch.as_tensor(v, dtype=torch.float64)   # float64: small angles stay exact
    if v.ndim != 1 or v.numel() < 2 or not bool(torch.isfinite(v).all()) or float(v.norm()) == 0:
        raise ValueError(f"{name} must be a finite, non-zero 1-D vector of length >= 2, "
                         f"got shape {tuple(v.shape)}")
    return v


def _same_length(names: tuple[str, str], a: torch.Tensor, b: torch.Tensor) -> None:
    """Two vectors of one space: ``ValueError`` naming both and their lengths otherwise."""
    if a.numel() != b.numel():
        raise ValueError(f"{names[0]} and {names[1]} must have the same length (one "
                         f"embedding space), got {names[0]} of length {a.numel()} and "
                         f"{names[1]} of length {b.numel()}")


def cosine_gradient(f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """``d cos(f, g) / d f`` at ``f``, by autograd (SEC paper, Eq. 1: equals
    ``(g_hat - cos(f, g) f_hat) / ||f||``, of length ``sin(theta) / ||f||``). Computed in
    float64, returned in ``f``'s floating dtype."""
    dtype = f.dtype if isinstance(f, torch.Tensor) and f.is_floating_point() else torch.float64
    leaf = _vector("f", f).detach().clone().requires_grad_(True)
    g = _vector("g", g)
    _same_length(("f", "g"), leaf, g)
    F.cosine_similarity(leaf, g, dim=0).backward()
    assert leaf.grad is not None
    return leaf.grad.to(dtype)


def sgd_turn_degrees(f: torch.Tensor, g: torch.Tensor, lr: float = 0.1) -> float:
    """The angle (degrees) between ``f`` and ``f + lr * d cos(f, g)/d f``: how far one
    gradient step on the cosine turns ``f`` (about ``lr sin(theta) / ||f||^2`` radians)."""
    lr = check_float("lr", lr, 0.0, 100.0)
    f = _vector("f", f)
    step = f + lr * cosine_gradient(f, g)     # float64 throughout
    along = step @ F.normalize(f, dim=0)
    across = (step - along * F.normalize(f, dim=0)).norm()
    return float(torch.rad2deg(torch.atan2(across, along)))   # exact, unlike acos near 0


def log_ticks(values: Sequence[float]) -> list[float]:
    """Tick values 1, 2, 5 x 10^e covering ``values`` (positive) on a log axis: plotly's
    default labels every digit when a log axis spans less than a decade or two."""
    positive = [v for v in values if v > 0]
    if not positive:
        return []
    low, high = min(positive), max(positive)
    ticks = [m * 10.0 ** e for e in range(math.floor(math.log10(low)) - 1,
                                           math.ceil(math.log10(high)) + 1) for m in (1, 2, 5)]
    inside = [t for t in ticks if low / 1.5 <= t <= high * 1.5]
    return inside if len(inside) >= 2 else ticks


def cosine_gradient_figure(direction: torch.Tensor, partner: torch.Tensor, *, lr: float = 0.1,
                           norms: Sequence[float] | None = None, marker: float = 1.0,
                           widget: bool = False) -> go.Figure:
    """Gradient size ``||d cos / d f||`` (left axis) and the angle one step of size ``lr``
    turns ``f`` (right axis), both log-scaled, against ``||f||`` for ``f = norm * direction``
    (the direction is normalised first); two diamond markers (traces 2 and 3) sit at
    ``||f|| = marker``. ``layout.meta`` holds ``norm``, ``gradient`` and ``turn`` at the
    marker; the title says them."""
    direction = F.normalize(_vector("direction", direction), dim=0)
    partner = _vector("partner", partner)
    _same_length(("direction", "partner"), direction, partner)
    lr = check_float("lr", lr, 0.0, 100.0)
    marker = check_float("marker", marker, 0.0, 1e6, low_inclusive=False)
    xs = np.linspace(0.2, 5.0, 49) if norms is None else np.asarray(norms, dtype=float)
    if xs.ndim != 1 or xs.size == 0 or not (xs > 0).all():
        raise ValueError("norms must be a non-empty 1-D sequence of positive numbers")
    grads = [float(cosine_gradient(n * direction, partner).norm()) for n in xs]
    turns = [sgd_turn_degrees(n * direction, partner, lr) for n in xs]
    grad = float(cosine_gradient(marker * direction, partner).norm())
    turn = sgd_turn_degrees(marker * direction, partner, lr)
    fig = go.FigureWidget() if widget else go.Figure()
    fig.update_layout(
        template=TEMPLATE, height=380, xaxis_title="embedding norm ‖f‖",
        yaxis=dict(title="‖∂cos/∂f‖", type="log", tickvals=log_ticks(grads + [grad])),
        yaxis2=dict(title="angle turned per step (°)", type="log", overlaying="y", side="right",
                    tickvals=log_ticks(turns + [turn]), showgrid=False),
        legend=dict(orientation="h", y=-0.25),
        title=f"‖f‖ = {marker:.1f}: gradient {grad:.3f}, one step turns f by {turn:.2f}°",
        meta={"norm": marker, "gradient": grad, "turn": turn, "lr": lr})
    fig.add_scatter(x=xs, y=grads, mode="lines+markers", name="gradient size")
    fig.add_scatter(x=xs, y=turns, mode="lines+markers", name="turn per step", yaxis="y2")
    diamond = dict(size=16, color="#222", symbol="diamond")
    fig.add_scatter(x=[marker], y=[grad], mode="markers", name="‖f‖ (slider)", marker=diamond)
    fig.add_scatter(x=[marker], y=[turn], mode="markers", showlegend=False, yaxis="y2",
                    marker=diamond)
    return fig
