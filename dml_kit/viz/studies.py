"""Figures of the SEC and ooDML studies (numbers in, figures out).

* :func:`sec_norm_curves`: the per-epoch mean norm and coefficient of variation of the
  embeddings, with and without SEC, per loss (:func:`dml_kit.experiments.sec_study.norm_curves`);
* :func:`sec_gain_bars`: the Recall@1 gain of SEC per loss with its 95% interval
  (:func:`dml_kit.experiments.sec_study.sec_table`);
* :func:`oodml_ladder`: Recall@1 against the Fréchet distance of each rung, zero-shot and
  each few-shot setting, per method, with 95% intervals over seeds
  (:func:`dml_kit.experiments.shift_study.oodml_table`'s numbers).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dml_kit.viz.figures import TEMPLATE, palette

__all__ = ["oodml_ladder", "sec_gain_bars", "sec_norm_curves"]


def _colors(names: Sequence[str]) -> dict[str, str]:
    colours = palette(len(names))
    return {name: colours[i] for i, name in enumerate(names)}


def sec_norm_curves(curves: pd.DataFrame, losses: Sequence[str] | None = None, *,
                    title: str = "Embedding norms during training, without and with SEC"
                    ) -> go.Figure:
    """Two panels against the epoch: the mean norm ``mean ||f||`` and its coefficient of
    variation ``std ||f|| / mean ||f||`` of a held-out probe, one colour per loss, solid
    with SEC and dotted without (``curves``: columns ``loss, sec, epoch, norm_mean,
    norm_cv``, as :func:`~dml_kit.experiments.sec_study.norm_curves` returns)."""
    missing = {"loss", "sec", "epoch", "norm_mean", "norm_cv"} - set(curves.columns)
    if missing:
        raise ValueError(f"curves lacks the column(s) {sorted(missing)}: pass "
                         "sec_study.norm_curves(frame)")
    names = list(dict.fromkeys(curves["loss"])) if losses is None else list(losses)
    unknown = sorted(set(names) - set(curves["loss"]))
    if unknown:
        raise ValueError(f"losses {unknown} are not in curves; choose from: "
                         f"{', '.join(dict.fromkeys(curves['loss']))}")
    colours = _colors(names)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("mean norm", "coefficient of variation"))
    for loss in names:
        for sec in (False, True):
            part = curves[(curves["loss"] == loss) & (curves["sec"] == sec)]
            if part.empty:
                continue
            line = {"color": colours[loss], "dash": "solid" if sec else "dot"}
            label = f"{loss} {'with' if sec else 'without'} SEC"
            for col, value in ((1, "norm_mean"), (2, "norm_cv")):
                fig.add_trace(go.Scatter(x=part["epoch"], y=part[value], mode="lines+markers",
                                         line=line, name=label, legendgroup=label,
                                         showlegend=col == 1), row=1, col=col)
    fig.update_xaxes(title_text="epoch")
    fig.update_layout(template=TEMPLATE, title=title, height=420, width=980)
    return fig


def sec_gain_bars(table: pd.DataFrame, score: str = "recall@1", *,
                  title: str | None = None) -> go.Figure:
    """Bars of SEC's paired gain (with minus without) per loss for ``score``, with the
    95% interval as error bars and the zero line (``table``:
    :func:`~dml_kit.experiments.sec_study.sec_table`)."""
    part = table[table["score"] == score]
    if part.empty:
        raise ValueError(f"table has no rows for score {score!r}; pass "
                         "sec_study.sec_table(frame)")
    fig = go.Figure(go.Bar(
        x=part["loss"], y=part["gain_mean"],
        error_y={"type": "data", "symmetric": False,
                 "array": (part["gain_high"] - part["gain_mean"]).fillna(0),
                 "arrayminus": (part["gain_mean"] - part["gain_low"]).fillna(0)},
        text=part["verdict"], hovertemplate="%{x}: %{y:+.3f} (%{text})<extra></extra>"))
    fig.add_hline(y=0, line_color="grey")
    fig.update_layout(template=TEMPLATE, height=380, width=700,
                      title=title or f"{score} gain with SEC (95% interval over seeds)",
                      yaxis_title=f"{score}: with minus without SEC")
    return fig


def oodml_ladder(table: pd.DataFrame, *, title: str = "Recall@1 along the shift ladder"
                 ) -> go.Figure:
    """Recall@1 against the rung's Fréchet distance with 95% intervals: one colour per
    method (``loss``), zero-shot solid, each few-shot setting (``"<k>-shot
    <adaptation>"`` columns) dashed or dotted (``table``:
    :func:`~dml_kit.experiments.shift_study.oodml_table`, whose text cells
    ``"mean [low, high]"`` are read back into numbers)."""
    if table.empty or "zero-shot" not in table:
        raise ValueError("table must be shift_study.oodml_table(frame)")
    settings = ["zero-shot"] + [c for c in table.columns
                                if "-shot " in c and not c.startswith("gain")]
    dashes = ["solid", "dash", "dot", "dashdot", "longdash"]
    losses = list(dict.fromkeys(table["loss"]))
    colours = _colors(losses)
    fig = go.Figure()
    for loss in losses:
        part = table[table["loss"] == loss]
        for i, setting in enumerate(settings):
            nums = part[setting].map(_parse_estimate)
            mean = [n[0] for n in nums]
            fig.add_trace(go.Scatter(
                x=part["distance"], y=mean, mode="lines+markers", name=f"{loss}: {setting}",
                line={"color": colours[loss], "dash": dashes[i % len(dashes)]},
                error_y={"type": "data", "symmetric": False,
                         "array": [n[2] - n[0] for n in nums],
                         "arrayminus": [n[0] - n[1] for n in nums]}))
    fig.update_layout(template=TEMPLATE, title=title, height=460, width=900,
                      xaxis_title="Fréchet distance between train and test classes",
                      yaxis_title="Recall@1")
    return fig


def _parse_estimate(text: str) -> tuple[float, float, float]:
    """``"0.700 [0.452, 0.948]"`` -> ``(0.7, 0.452, 0.948)`` (no interval: the mean)."""
    head, _, rest = str(text).partition(" [")
    mean = float(head)
    try:
        low, high = (float(v) for v in rest.rstrip("]").split(","))
    except ValueError:
        low = high = mean
    return mean, low, high
