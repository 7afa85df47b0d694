"""Progress for long loops run from a notebook: a bar with a running table
(:class:`GridProgress`), a text bar elsewhere (:class:`TextProgress`), and the one
``progress=`` argument every loop of the kit takes (:func:`progress_hook`, :func:`reporting`).

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
arrives, so a fast grid does not flood the browser with messages. Which record fields
make the table is configurable: ``index`` (the rows, ``"method"``), ``condition`` (the
columns, ``("k", "n")``) and ``value`` (what is averaged: one field or several).

**The ``progress=`` argument.** The kit's other loops (:func:`dml_kit.compare.compare_on_tasks`,
:func:`dml_kit.compare.compare_losses`, :func:`dml_kit.compare.sec_weight_study`,
:func:`dml_kit.experiments.sec_study.sec_study`) take the same hook, or:

* ``"auto"``: a ``GridProgress`` shown under the running notebook cell; nothing outside
  a notebook (a script, a terminal, a test) and nothing inside a widget's callback (whose
  output has no cell to go to);
* ``True``: the same in a notebook, a tqdm text bar elsewhere (:class:`TextProgress`);
* ``False`` / ``None``: nothing.

The hook only *reads* the rows; it never touches a random number generator or a model,
so a loop returns the same numbers with and without progress.
"""

from __future__ import annotations

import contextlib
import html
import numbers
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import ipywidgets as widgets
import pandas as pd
from tqdm.auto import tqdm

from dml_kit._validation import check_float

__all__ = ["GridProgress", "TextProgress", "running_table", "in_notebook", "progress_hook",
           "reporting", "ProgressHook", "Progress"]

#: a loop's progress hook: ``hook(records just finished, done so far, total)``
ProgressHook = Callable[[Sequence[Any], int, int], None]
#: what a loop's ``progress=`` argument accepts (see the module docstring)
Progress = bool | str | ProgressHook | None


def _values(value: str | Sequence[str]) -> tuple[str, ...]:
    values = (value,) if isinstance(value, str) else tuple(value)
    if not values or not all(isinstance(v, str) for v in values):
        raise ValueError(f"value must be a column name or a non-empty sequence of them, "
                         f"got {value!r}")
    return values


def _label(names: Sequence[str], key: tuple[Any, ...]) -> str:
    """A condition's column label: ``"k=1 n=5"``; a text value stands alone
    (``"with SEC"``)."""
    return " ".join(str(v) if isinstance(v, str) else f"{n}={_plain(v)}"
                    for n, v in zip(names, key, strict=True))


def _plain(v: Any) -> Any:
    """``5.0`` -> ``5``, other numbers as they are (labels read ``k=5``, ``weight=0.5``)."""
    if isinstance(v, numbers.Real) and float(v).is_integer():
        return int(float(v))
    return v


def running_table(rows: Sequence[dict[str, Any]] | pd.DataFrame,
                  value: str | Sequence[str] = "accuracy", *, index: str = "method",
                  condition: Sequence[str] = ("k", "n")) -> pd.DataFrame:
    """Mean ``value`` per ``index`` (rows) and ``condition`` (columns ``"k=.. n=.."``), plus
    a ``runs`` column counting each row's runs; empty when there are no rows.

    ``rows`` are records as dicts (or a frame) carrying the ``index``, ``condition`` and
    ``value`` columns. Conditions whose values are all numbers are ordered numerically,
    others by first appearance; a text condition value is its own label. With several
    ``value`` fields the columns are ``"<value> <condition>"`` (just ``"<value>"`` without
    a condition). A method trained with another ``loss`` than its own is listed as
    ``"method (loss)"`` when the rows carry a ``loss`` column with several losses per
    method (``index="method"`` only).
    """
    values = _values(value)
    condition = tuple(condition)
    frame = pd.DataFrame(list(rows) if not isinstance(rows, pd.DataFrame) else rows)
    if frame.empty:
        return pd.DataFrame()
    missing = {index, *condition, *values} - set(frame.columns)
    if missing:
        need = ", ".join([index, *condition])
        raise ValueError(f"rows must carry the columns {need} and "
                         f"{' and '.join(map(repr, values))}; missing: {sorted(missing)}")
    frame = frame.copy()
    if index == "method" and "loss" in frame.columns and frame["loss"].notna().any():
        several = frame.groupby("method")["loss"].transform("nunique") > 1
        frame.loc[several, "method"] = (frame.loc[several, "method"] + " ("
                                        + frame.loc[several, "loss"].astype(str) + ")")
    if not condition:
        table = frame.groupby(index)[list(values)].mean()
    else:
        keys = list(zip(*(frame[c] for c in condition), strict=True))
        unique = list(dict.fromkeys(keys))
        if all(isinstance(v, numbers.Real) for key in unique for v in key):
            unique = sorted(unique)
        order = [_label(condition, key) for key in unique]
        frame["condition"] = [_label(condition, key) for key in keys]
        wide = frame.pivot_table(index=index, columns="condition", values=list(values),
                                 aggfunc="mean")
        if len(values) == 1:
            table = wide[values[0]].reindex(columns=order)
        else:
            table = pd.DataFrame({f"{v} {c}": wide[(v, c)] for v in values for c in order
                                  if (v, c) in wide.columns})
    table.columns.name = None
    table["runs"] = frame.groupby(index).size()
    return table


class GridProgress(widgets.VBox):
    """A progress bar and a running table of a grid (see the module docstring).

    Args:
        title: shown above the bar.
        value: the record field the table averages (``"accuracy"``), or several.
        index: the record field of the table's rows (``"method"``).
        condition: the record fields of its columns (``("k", "n")``; ``()``: none).
        unit: what a hook call counts, in the label (``"runs"``).
        min_interval: seconds between two redraws of the table (0 to 60); the last run
            always redraws.
    """

    def __init__(self, title: str = "grid", *, value: str | Sequence[str] = "accuracy",
                 index: str = "method", condition: Sequence[str] = ("k", "n"),
                 unit: str = "runs", min_interval: float = 0.5) -> None:
        self.value = value
        self.values = _values(value)
        self.index = index
        self.condition = tuple(condition)
        self.unit = unit
        self.min_interval = check_float("min_interval", min_interval, 0.0, 60.0)
        self.records: list[dict[str, Any]] = []
        self.done = 0
        self.total = 0
        self.redraws = 0
        self.stopped: str | None = None
        self._last_draw = float("-inf")
        self._t0: float | None = None
        self.bar = widgets.IntProgress(value=0, min=0, max=1, description=unit,
                                       layout=widgets.Layout(width="60%"))
        self.label = widgets.HTML(value="waiting for the first run")
        self.table_html = widgets.HTML(value="")
        super().__init__(children=[widgets.HTML(f"<b>{html.escape(title)}</b>"),
                                   widgets.HBox([self.bar, self.label]), self.table_html])

    @property
    def table(self) -> pd.DataFrame:
        """The running table of the records received so far (:func:`running_table`)."""
        return running_table(self.records, self.values, index=self.index,
                             condition=self.condition)

    def __call__(self, records: Sequence[Any], done: int, total: int) -> None:
        """The grid runner's progress hook: ``records`` just finished, ``done`` of
        ``total`` runs so far."""
        now = time.perf_counter()
        if self._t0 is None:
            self._t0 = now
        fields = (self.index, *self.condition, *self.values)
        self.records.extend(r if isinstance(r, dict) else _as_dict(r, fields)
                            for r in records)
        self.done, self.total = int(done), int(total)
        self.bar.max = max(1, self.total)
        self.bar.value = min(self.done, self.bar.max)
        elapsed = now - self._t0
        left = (elapsed / self.done * (self.total - self.done)) if self.done else None
        self.label.value = (f"{self.done} of {self.total} {self.unit}, {elapsed:.0f} s"
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

    def stop(self, reason: str) -> None:
        """The loop ended before its last run (``reason``: ``"interrupted"`` for the stop
        button, or an error's name): say so, and show the table of the runs finished."""
        self.stopped = reason
        self.bar.bar_style = "warning"
        self.label.value = html.escape(
            f"{reason} after {self.done} of {self.total} {self.unit}: the table holds the "
            "finished ones")
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
        what = ", ".join(self.values)
        self.table_html.value = (f"<small>mean {html.escape(what)} so far</small>"
                                 + _table_html(shown, self.index))


_CELL = "padding: 2px 10px; text-align: right; font-variant-numeric: tabular-nums"


def _table_html(table: pd.DataFrame, index_name: str) -> str:
    """``table`` as a compact HTML table with its own inline style: one header row (the
    index's name over the row labels), rules under the header, numbers right-aligned. An
    ipywidgets ``HTML`` value is not styled by JupyterLab's DataFrame CSS, and pandas'
    ``to_html`` puts the index name on a second header row there."""
    head = "".join(f'<th style="{_CELL}; border-bottom: 1px solid #888">{html.escape(str(c))}'
                   "</th>" for c in table.columns)
    rows = "".join(
        f'<tr><th style="{_CELL}; text-align: left">{html.escape(str(label))}</th>'
        + "".join(f'<td style="{_CELL}">{html.escape(str(v))}</td>' for v in row)
        + "</tr>" for label, row in zip(table.index, table.itertuples(index=False),
                                        strict=True))
    return ('<table style="border-collapse: collapse; margin: 4px 0; font-size: 13px">'
            f'<tr><th style="{_CELL}; text-align: left; border-bottom: 1px solid #888">'
            f"{html.escape(index_name)}</th>{head}</tr>{rows}</table>")


class TextProgress:
    """A tqdm text bar as a progress hook, for loops run outside a notebook: the count, and
    the last record's ``index``, ``condition`` and ``value`` fields as its postfix."""

    def __init__(self, title: str = "runs", *, value: str | Sequence[str] = "accuracy",
                 index: str = "method", condition: Sequence[str] = ("k", "n"),
                 unit: str = "runs") -> None:
        self.title, self.unit = title, unit
        self.values, self.index, self.condition = _values(value), index, tuple(condition)
        self.bar: Any = None
        self.stopped: str | None = None

    def __call__(self, records: Sequence[Any], done: int, total: int) -> None:
        """The progress hook: ``records`` just finished, ``done`` of ``total`` so far."""
        if self.bar is None:
            self.bar = tqdm(total=total, desc=self.title, unit=self.unit.rstrip("s") or "run",
                            leave=True)
        self.bar.update(int(done) - self.bar.n)
        if records:
            last = records[-1]
            get = last.get if isinstance(last, dict) else (lambda k: getattr(last, k, None))
            parts = [str(get(self.index))]
            parts += [_label((c,), (get(c),)) for c in self.condition]
            parts += [f"{v}={get(v):.3f}" if isinstance(get(v), numbers.Real)
                      else f"{v}={get(v)}" for v in self.values]
            self.bar.set_postfix_str(" ".join(parts))
        if done >= total:
            self.bar.close()

    def stop(self, reason: str) -> None:
        """The loop ended early: mark the bar and close it."""
        self.stopped = reason
        if self.bar is not None:
            self.bar.set_description(f"{self.title} ({reason})")
            self.bar.close()


def in_notebook() -> bool:
    """Whether this code runs in a Jupyter kernel on behalf of a cell (an execute request),
    where a widget passed to ``display`` appears under the cell. False in a plain
    interpreter, a script, a terminal IPython, and inside a widget's callback (a button
    click arrives as a comm message, whose displays have no cell to go to)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:   # never imported: certainly no kernel
        return False
    shell = ipython.get_ipython()
    kernel = getattr(shell, "kernel", None)
    if kernel is None or not hasattr(kernel, "get_parent"):
        return False
    try:
        parent = kernel.get_parent("shell") or {}
    except Exception:  # pragma: no cover - an unusual kernel
        return False
    return bool(parent.get("header", {}).get("msg_type") == "execute_request")


def progress_hook(progress: Progress, title: str, *, value: str | Sequence[str] = "accuracy",
                  index: str = "method", condition: Sequence[str] = ("k", "n"),
                  unit: str = "runs") -> ProgressHook | None:
    """The hook a loop's ``progress=`` argument asks for (see the module docstring):
    a callable as it is; ``"auto"``: a :class:`GridProgress` displayed under the running
    cell in a notebook (:func:`in_notebook`), else ``None``; ``True``: the same in a
    notebook, a :class:`TextProgress` elsewhere; ``False``/``None``: ``None``. ``title``,
    ``value``, ``index``, ``condition`` and ``unit`` describe the bar and its table."""
    if callable(progress):
        return progress
    if progress is None or progress is False:
        return None
    if progress not in ("auto", True):
        raise ValueError(f"progress must be 'auto', True, False, None or a callable "
                         f"progress(records, done, total), got {progress!r}")
    spec: dict[str, Any] = {"value": value, "index": index, "condition": condition,
                            "unit": unit}
    if in_notebook():
        from IPython.display import display  # noqa: PLC0415 (only inside a kernel)

        tracker = GridProgress(title, **spec)
        display(tracker)
        return tracker
    return TextProgress(title, **spec) if progress is True else None


@contextlib.contextmanager
def reporting(progress: Progress, total: int, title: str, **table: Any
              ) -> Iterator[Callable[[Sequence[Any]], None]]:
    """Report a loop's progress: ``with reporting(progress, total, title) as report:``,
    then ``report(rows)`` after each unit of work with the rows it produced. The hook
    (:func:`progress_hook` of ``progress``; ``table`` holds its ``value``, ``index``,
    ``condition`` and ``unit``) is called once with no rows before the first unit and
    then once per ``report`` with the running count of rows. When the body raises (the
    stop button's ``KeyboardInterrupt`` included), a hook with a ``stop(reason)`` method
    is told so before the exception goes on."""
    hook = progress_hook(progress, title, **table)
    count = 0

    def report(rows: Sequence[Any]) -> None:
        nonlocal count
        count += len(rows)
        if hook is not None:
            hook(list(rows), count, total)

    if hook is not None:
        hook([], 0, total)
    try:
        yield report
    except BaseException as exc:
        stop = getattr(hook, "stop", None)
        if callable(stop):
            stop("interrupted" if isinstance(exc, KeyboardInterrupt)
                 else f"stopped by {type(exc).__name__}")
        raise


def _as_dict(record: Any, fields: Sequence[str]) -> dict[str, Any]:
    """A :class:`~dml_kit.experiments.store.RunRecord` (or any object with the fields) as
    the dict the table needs."""
    names = dict.fromkeys(("method", "k", "n", "seed", "task", "loss", *fields))
    return {name: getattr(record, name, None) for name in names}
