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

import math
import re
from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from dml_kit import stats
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


def _clipped(low: float, high: float, bounds: stats.Bounds | None) -> tuple[float, float]:
    """``(low, high)`` clipped to ``bounds`` (for display; ``nan`` stays ``nan``)."""
    if bounds is None:
        return low, high

    def clip(x: float) -> float:
        return x if math.isnan(x) else min(max(x, bounds[0]), bounds[1])

    return clip(low), clip(high)


def _short_verdict(label: str, n: int) -> str:
    return f"not resolved (n = {n})" if label == stats.UNRESOLVED else label


def sec_gain_bars(table: pd.DataFrame, score: str = "recall@1", *,
                  title: str | None = None) -> go.Figure:
    """Bars of SEC's paired gain (with minus without) per loss for ``score``, with the
    95% interval as error bars and the zero line (``table``:
    :func:`~dml_kit.experiments.sec_study.sec_table`).

    Each bar's verdict is written under its loss on the x axis (so no label sits on an
    error bar) and in its hover. The gain of a score in ``[0, 1]`` (Recall@1, MAP@R) lies
    in ``[-1, 1]``: error bars that reach past it (two or three seeds) are drawn clipped
    and the title says so; the verdicts are the table's, decided on the unclipped
    intervals. The norm's coefficient of variation has no upper bound and is not clipped."""
    part = table[table["score"] == score]
    if part.empty:
        raise ValueError(f"table has no rows for score {score!r}; pass "
                         "sec_study.sec_table(frame)")
    rng = stats.difference_bounds(stats.metric_bounds(score))
    shown = [_clipped(lo, hi, rng) for lo, hi in zip(part["gain_low"], part["gain_high"],
                                                     strict=True)]
    clipped = [(lo, hi) != sh for lo, hi, sh in zip(part["gain_low"], part["gain_high"], shown,
                                                    strict=True)
               if not (math.isnan(lo) or math.isnan(hi))]
    seeds = part["seeds"].astype(int).tolist() if "seeds" in part else [0] * len(part)
    losses = [str(x) for x in part["loss"]]
    fig = go.Figure(go.Bar(
        x=part["loss"], y=part["gain_mean"],
        error_y={"type": "data", "symmetric": False,
                 "array": (pd.Series([h for _, h in shown], index=part.index)
                           - part["gain_mean"]).fillna(0),
                 "arrayminus": (part["gain_mean"]
                                - pd.Series([lo for lo, _ in shown], index=part.index)).fillna(0)},
        customdata=[[v, n] for v, n in zip(part["verdict"], seeds, strict=True)],
        hovertemplate="%{x}: %{y:+.3f} (%{customdata[0]}, n = %{customdata[1]} seeds)"
                      "<extra></extra>"))
    fig.add_hline(y=0, line_color="grey")
    fig.update_xaxes(tickmode="array", tickvals=losses,
                     ticktext=[f"{loss}<br><i>{_short_verdict(v, n)}</i>" for loss, v, n
                               in zip(losses, part["verdict"], seeds, strict=True)])
    caption = ""
    if any(clipped) and rng is not None:
        caption = (f"<br><sup>n = {min(seeds)} seeds: error bars clipped to the gain's range "
                   f"[{rng[0]:g}, {rng[1]:g}]; more seeds needed</sup>")
    fig.update_layout(template=TEMPLATE, height=400, width=700,
                      title=(title or f"{score} gain with SEC (95% interval over seeds)")
                      + caption, yaxis_title=f"{score}: with minus without SEC")
    return fig


def oodml_ladder(table: pd.DataFrame, *, title: str = "Recall@1 along the shift ladder"
                 ) -> go.Figure:
    """Recall@1 against the rung's Fréchet distance with 95% intervals: one colour per
    method (``loss``), zero-shot solid, each few-shot setting (``"<k>-shot
    <adaptation>"`` columns) dashed or dotted (``table``:
    :func:`~dml_kit.experiments.shift_study.oodml_table`, whose text cells
    ``"mean [low, high]"`` are read back into numbers). Recall@1 lies in ``[0, 1]``: an
    interval that reaches past it (two or three seeds) is drawn clipped, and the hover
    and the title say so."""
    if table.empty or "zero-shot" not in table:
        raise ValueError("table must be shift_study.oodml_table(frame)")
    settings = ["zero-shot"] + [c for c in table.columns
                                if "-shot " in c and not c.startswith("gain")]
    dashes = ["solid", "dash", "dot", "dashdot", "longdash"]
    losses = list(dict.fromkeys(table["loss"]))
    colours = _colors(losses)
    rng = stats.metric_bounds("recall@1")
    seeds = table["seeds"].astype(int) if "seeds" in table else pd.Series(0, index=table.index)
    clipped_n: list[int] = []
    fig = go.Figure()
    for loss in losses:
        part = table[table["loss"] == loss]
        for i, setting in enumerate(settings):
            nums = part[setting].map(_parse_estimate)
            mean = [n[0] for n in nums]
            shown = [_clipped(n[1], n[2], rng) for n in nums]
            cut = [(n[1], n[2]) != sh for n, sh in zip(nums, shown, strict=True)]
            clipped_n += [int(s) for s, c in zip(seeds[part.index], cut, strict=True) if c]
            fig.add_trace(go.Scatter(
                x=part["distance"], y=mean, mode="lines+markers", name=f"{loss}: {setting}",
                line={"color": colours[loss], "dash": dashes[i % len(dashes)]},
                error_y={"type": "data", "symmetric": False,
                         "array": [sh[1] - n[0] for n, sh in zip(nums, shown, strict=True)],
                         "arrayminus": [n[0] - sh[0] for n, sh in zip(nums, shown, strict=True)]},
                customdata=[[int(s), " (interval clipped to [0, 1]: too few seeds)" if c else ""]
                            for s, c in zip(seeds[part.index], cut, strict=True)],
                hovertemplate=(f"{loss}: {setting}<br>FD %{{x:.3g}}<br>Recall@1 %{{y:.3f}}"
                               "<br>n = %{customdata[0]} seeds%{customdata[1]}<extra></extra>")))
    caption = (f"<br><sup>n = {min(clipped_n)} seeds: intervals that reach past [0, 1] are "
               "shown clipped; more seeds needed</sup>") if clipped_n else ""
    fig.update_layout(template=TEMPLATE, title=title + caption, height=460, width=900,
                      xaxis_title="Fréchet distance between train and test classes",
                      yaxis_title="Recall@1")
    return fig


_ESTIMATE = re.compile(r"^\s*([-+]?[\d.]+(?:e[-+]?\d+)?)\s*"
                       r"(?:\[\s*([-+]?[\d.]+(?:e[-+]?\d+)?),\s*([-+]?[\d.]+(?:e[-+]?\d+)?)\])?",
                       re.IGNORECASE)


def _parse_estimate(text: str) -> tuple[float, float, float]:
    """``"0.700 [0.452, 0.948]"`` -> ``(0.7, 0.452, 0.948)``; a note after the interval
    (``"(clipped to [0, 1], n = 2)"``) is ignored; no interval: the mean."""
    match = _ESTIMATE.match(str(text))
    if match is None:
        raise ValueError(f"cannot read an estimate 'mean [low, high]' from {text!r}")
    mean = float(match.group(1))
    if match.group(2) is None:
        return mean, mean, mean
    return mean, float(match.group(2)), float(match.group(3))
