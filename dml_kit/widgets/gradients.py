"""CosineGradientExplorer: the embedding norm -> the step size of a cosine loss (SEC's toy)."""

from __future__ import annotations

from typing import Any

import ipywidgets as widgets

from dml_kit._validation import check_float
from dml_kit.viz.toy import cosine_gradient_figure
from dml_kit.widgets.base import _figure_widget, _Panel, _replace_figure

__all__ = ["CosineGradientExplorer"]


class CosineGradientExplorer(_Panel):
    """A norm slider on the toy of :mod:`dml_kit.viz.toy`: ``f = norm * direction`` against
    a fixed partner ``g``; the figure shows ``||d cos(f, g) / d f|| = sin(theta) / ||f||``
    and the angle one gradient step of size ``lr`` turns ``f`` (about
    ``lr sin(theta) / ||f||^2``), the markers at the slider's norm (SEC paper, Zhang et
    al. 2020, Eq. 1).

    ``direction`` and ``partner`` must be finite non-zero vectors of one length
    (``ValueError`` naming them otherwise, raised by the constructor).

    Attributes: ``norm`` (slider), ``figure`` (traces: gradient curve, turn curve, and
    the two markers), ``gradient`` and ``turn`` at the slider's norm.
    """

    def __init__(self, direction: Any, partner: Any, *, lr: float = 0.1,
                 norm: float = 1.0) -> None:
        super().__init__()
        self.direction, self.partner = direction, partner
        self.lr = check_float("lr", lr, 0.0, 100.0)
        self.norm = widgets.FloatSlider(value=check_float("norm", norm, 0.2, 5.0), min=0.2,
                                        max=5.0, step=0.1, description="‖f‖",
                                        continuous_update=False)
        self.figure = _figure_widget(height=380)
        self.gradient = self.turn = float("nan")
        self.children = [self.norm, self.status, self.figure]
        self.norm.observe(self._guard(lambda change: self.refresh()), names="value")
        self.refresh()  # not guarded: bad vectors (e.g. lengths 3 and 2) raise here, by name

    def refresh(self) -> None:
        """Move the markers (and the title) to the slider's norm."""
        fig = cosine_gradient_figure(self.direction, self.partner, lr=self.lr,
                                     marker=self.norm.value)
        _replace_figure(self.figure, fig)
        self.gradient, self.turn = fig.layout.meta["gradient"], fig.layout.meta["turn"]


