"""``GridProgress``: a progress bar with a running table, for grids run from a notebook.

A grid of many runs (notebooks 05 and 08) takes minutes; a tqdm bar says how many runs
are done but not what they show. ``GridProgress`` is an ipywidgets box, a bar and a table
of the mean accuracy so far per method and condition (k, n) with the number of runs
behind each mean, that :func:`dml_kit.experiments.run_grid` updates as jobs finish::

    tracker = GridProgress(title="the classroom grid")
    display(tracker)
    frame = experiments.run_grid("glyphs", "all", progress=tracker)
    tracker.finish(frame)     # the final table, also when every run came from the store

It is called as ``tracker(records, done, total)`` (the grid runner's progress hook). The
table is redrawn at most every ``min_interval`` seconds and always when the last run
arrives, so a fast grid does not flood the browser with messages.
"""

from __future__ import annotations

import html
import time
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import pandas as pd

from dml_kit._validation import check_float

__all__ = ["GridProgress", "running_table"]


def running_table(rows: Sequence[dict[str, Any]] | pd.DataFrame,
                  value: str = "accuracy") -> pd.DataFrame:
    """Mean ``value`` per method (rows) and condition (columns ``"k=.. n=.."``), plus a
    ``runs`` column counting each method's runs; empty when there are no rows.

    ``rows`` are records as dicts (or a frame) with ``method``, ``k``, ``n`` and
    ``value`` columns. A method trained with another ``loss`` than its own is listed as
    ``"method (loss)"`` when the rows carry a ``loss`` column with several losses per method.
    """
    frame = pd.DataFrame(list(rows) if not isinstance(rows, pd.DataFrame) else rows)
    if frame.empty:
        return pd.DataFrame()
    missing = {"method", "k", "n", value} - set(frame.columns)
    if missing:
        raise ValueError(f"rows must carry the columns method, k, n and {value!r}; "
                         f"missing: {sorted(missing)}")
    frame = frame.copy()
    if "loss" in frame.columns and frame["loss"].notna().any():
        several = frame.groupby("method")["loss"].transform("nunique") > 1
        frame.loc[several, "method"] = (frame.loc[several, "method"] + " ("
                                        + frame.loc[several, "loss"].astype(str) + ")")
    frame["condition"] = [f"k={k} n={n}" for k, n in zip(frame["k"], frame["n"], strict=True)]
    order = [f"k={k} n={n}" for k, n in sorted({(int(k), int(n))
                                                for k, n in zip(frame["k"], frame["n"],
                                                                strict=True)})]
    table = frame.pivot_table(index="method", columns="condition", values=value,
                              aggfunc="mean")[order]
    table.columns.name = None
    table["runs"] = frame.groupby("method").size()
    return table


class GridProgress(widgets.VBox):
    """A progress bar and a running table of a grid (see the module docstring).

    Args:
        title: shown above the bar.
        value: the record field the table averages (``"accuracy"``).
        min_interval: seconds between two redraws of the table (0 to 60); the last run
            always redraws.
    """

    def __init__(self, title: str = "grid", *, value: str = "accuracy",
                 min_interval: float = 0.5) -> None:
        self.value = value
        self.min_interval = check_float("min_interval", min_interval, 0.0, 60.0)
        self.records: list[dict[str, Any]] = []
        self.done = 0
        self.total = 0
        self.redraws = 0
        self._last_draw = float("-inf")
        self._t0: float | None = None
        self.bar = widgets.IntProgress(value=0, min=0, max=1, description="runs",
                                       layout=widgets.Layout(width="60%"))
        self.label = widgets.HTML(value="waiting for the grid to start")
        self.table_html = widgets.HTML(value="")
        super().__init__(children=[widgets.HTML(f"<b>{html.escape(title)}</b>"),
                                   widgets.HBox([self.bar, self.label]), self.table_html])

    @property
    def table(self) -> pd.DataFrame:
        """The running table of the records received so far (:func:`running_table`)."""
        return running_table(self.records, self.value)

    def __call__(self, records: Sequence[Any], done: int, total: int) -> None:
        """The grid runner's progress hook: ``records`` just finished, ``done`` of
        ``total`` runs so far."""
        now = time.perf_counter()
        if self._t0 is None:
            self._t0 = now
        self.records.extend(r if isinstance(r, dict) else _as_dict(r, self.value)
                            for r in records)
        self.done, self.total = int(done), int(total)
        self.bar.max = max(1, self.total)
        self.bar.value = min(self.done, self.bar.max)
        elapsed = now - self._t0
        left = (elapsed / self.done * (self.total - self.done)) if self.done else None
        self.label.value = (f"{self.done} of {self.total} runs, {elapsed:.0f} s"
                            + (f", about {left:.0f} s left" if left is not None and
                               self.done < self.total else ""))
        if self.done >= self.total or now - self._last_draw >= self.min_interval:
            self._draw()
            self._last_draw = now

    def finish(self, frame: pd.DataFrame) -> None:
        """Show the grid's final table from its records ``frame`` (what ``run_grid``
        returned): also the whole table when every run was read from the store."""
        trained = self.done
        self.records = frame.to_dict("records")
        self.total = self.done = len(frame)
        self.bar.max = max(1, self.total)
        self.bar.value = self.total
        stored = self.total - trained
        self.label.value = (f"{self.total} runs: {trained} run now, {stored} read from the "
                            "results store")
        self._draw()

    def _draw(self) -> None:
        table = self.table
        self.redraws += 1
        if table.empty:
            self.table_html.value = ""
            return
        shown = table.copy()
        for column in shown.columns:
            if column != "runs":
                shown[column] = shown[column].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
        self.table_html.value = (f"<small>mean {html.escape(self.value)} so far</small>"
                                 + shown.to_html(border=0))


def _as_dict(record: Any, value: str) -> dict[str, Any]:
    """A :class:`~dml_kit.experiments.store.RunRecord` (or any object with the fields) as
    the dict the table needs."""
    names = ("method", "k", "n", "seed", "task", "loss", value)
    return {name: getattr(record, name, None) for name in names}
