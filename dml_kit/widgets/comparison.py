"""Panels that compare methods.

* :class:`MethodComparison`: n, k -> several methods on one task, one bar each;
* :class:`GridBrowser`: filters over a results table -> heatmap and accuracy-vs-k curves.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np

from dml_kit import methods as registry
from dml_kit._validation import check_choice, check_seed
from dml_kit.compare import compare_on_tasks, method_rule
from dml_kit.data.core import Dataset
from dml_kit.viz import figures as F
from dml_kit.widgets.base import (
    _disabled,
    _figure_widget,
    _Panel,
    _replace_figure,
    _status,
    _task_sliders,
    task_limits,
)

__all__ = ["MethodComparison", "GridBrowser"]


class MethodComparison(_Panel):
    """n and k sliders and a button that runs several methods on one n-way k-shot task of
    ``target``, with shared, already trained source models: one bar per method (query
    accuracy, chance ``1/n`` dotted). The six paradigms of Adapted Deep Embeddings (Scott,
    Ridgeway & Mozer 2018) by default.

    Args:
        target: the target :class:`~dml_kit.data.Dataset`.
        sources: ``{source kind: SourceModel}`` (``"classifier"``, ``"embedding"``,
            ``"protonet"``), from :func:`dml_kit.methods.train_source`; a method whose kind
            is missing trains its own source model on every press (slow).
        config: the :class:`~dml_kit.methods.MethodConfig` of the target phase.
        methods: the methods to compare (default: all six).
        n_way, k_shot, seed: initial task.

    Attributes: ``n_way``, ``k_shot`` (sliders), ``run_button``, ``figure`` (bars),
    ``last`` (DataFrame indexed by method: ``accuracy``, ``note``; ``None`` before a run).
    """

    def __init__(self, target: Dataset, sources: dict[str, Any], config: Any = None, *,
                 methods: Sequence[str] | None = None, n_way: int = 5, k_shot: int = 5,
                 seed: int = 0, max_way: int = 20, max_shot: int = 20) -> None:
        super().__init__()
        if not isinstance(target, Dataset):
            raise ValueError(f"target must be a dml_kit.data.Dataset, got "
                             f"{type(target).__name__}")
        names = list(registry.available() if methods is None else methods)
        if not names:
            raise ValueError("methods must name at least one method")
        self.target, self.seed = target, check_seed(seed)
        self.rules = {name: method_rule(name, sources.get(registry.get(name).source_kind or ""),
                                        config) for name in names}
        n_max, k_max = task_limits(target, max_way=max_way, max_shot=max_shot)
        self.n_way, self.k_shot = _task_sliders(n_way, k_shot, n_max, k_max)
        self.run_button = widgets.Button(description=f"Run all {len(names)}",
                                         button_style="primary", icon="play")
        self.figure = _figure_widget(height=360)
        self.last: Any = None
        self.children = [widgets.HBox([self.n_way, self.k_shot, self.run_button]),
                         self.status, self.figure]
        self.run_button.on_click(self._guard(self._on_run))
        self.status.value = _status(f"press '{self.run_button.description}'")

    def _on_run(self, button: Any = None) -> None:
        n, k = self.n_way.value, self.k_shot.value
        self.status.value = _status(f"running {len(self.rules)} methods on a {n}-way "
                                    f"{k}-shot task ...")
        with _disabled(self.run_button):
            # the panel's own status line and bars report this run: no progress table
            # under whichever cell pressed the button
            frame = compare_on_tasks(self.target, self.rules, k_values=[k],
                                     seeds=[self.seed], n_way=n, progress=False)
        self.last = frame.set_index("method")[["accuracy", "note"]]
        acc = self.last["accuracy"]
        _replace_figure(self.figure, F.method_bars(
            dict(acc), chance=1 / n, title=f"{n}-way {k}-shot, one task"))
        best = acc.idxmax()
        self.status.value = _status(f"{n}-way {k}-shot: best {best} ({acc[best]:.0%})")



# ---------------------------------------------------------------------------------------
# GridBrowser
# ---------------------------------------------------------------------------------------
class GridBrowser(_Panel):
    """Filters over a results table -> a method x (k, n) heatmap and accuracy-vs-k curves.

    ``frame`` is a results DataFrame such as :meth:`dml_kit.experiments.ResultsStore.to_frame`
    returns (columns ``dataset``, ``method``, ``k``, ``n``, ``seed``, ``accuracy`` and
    ``m_*`` metrics). Filters: dataset, methods, n values, the metric, and the heatmap
    mode (the metric, or the error reduction against a baseline method).

    A metric that some runs do not report (``NaN``: e.g. ``m_acc_1nn`` of a method that
    classifies with its own head) is shown over the runs that report it; the status line
    says how many were left out. The metric list offers only metrics with a value.

    Attributes: ``dataset``, ``methods``, ``n_values``, ``metric``, ``mode``, ``baseline``
    (controls), ``heatmap`` and ``curves`` (figures), ``filtered`` (the current rows).
    """

    def __init__(self, frame: Any, *, value: str = "accuracy") -> None:
        super().__init__()
        needed = {"method", "k", "n", "accuracy"}
        missing = needed - set(frame.columns)
        if missing:
            raise ValueError(f"frame lacks columns {sorted(missing)} "
                             "(expected a results table: method, k, n, seed, accuracy)")
        if len(frame) == 0:
            raise ValueError("frame is empty: nothing to browse")
        self.frame = frame
        datasets = sorted(frame["dataset"].unique()) if "dataset" in frame.columns else [""]
        methods = list(dict.fromkeys(frame["method"]))
        numeric = [c for c in frame.columns if c == "accuracy" or (
            c.startswith("m_") and np.issubdtype(frame[c].dtype, np.number)
            and bool(np.isfinite(frame[c].to_numpy(dtype=float)).any()))]
        self.dataset = widgets.Dropdown(options=datasets, value=datasets[0],
                                        description="dataset")
        self.methods = widgets.SelectMultiple(options=methods, value=tuple(methods),
                                              description="methods", rows=min(6, len(methods)))
        n_opts = sorted(int(v) for v in frame["n"].unique())
        self.n_values = widgets.SelectMultiple(options=n_opts, value=tuple(n_opts),
                                               description="n", rows=min(4, len(n_opts)))
        self.metric = widgets.Dropdown(options=numeric,
                                       value=check_choice("value", value, numeric),
                                       description="metric")
        self.mode = widgets.ToggleButtons(options=["value", "error reduction"], value="value",
                                          description="heatmap")
        self.baseline = widgets.Dropdown(options=methods, value=methods[0],
                                         description="baseline")
        self.heatmap = _figure_widget(height=360)
        self.curves = _figure_widget(height=380)
        self.filtered = frame
        self.children = [widgets.HBox([self.dataset, self.metric]),
                         widgets.HBox([self.methods, self.n_values]),
                         widgets.HBox([self.mode, self.baseline]), self.status,
                         self.heatmap, self.curves]
        for w in (self.dataset, self.methods, self.n_values, self.metric, self.mode,
                  self.baseline):
            w.observe(self._guard(lambda change: self.refresh()), names="value")
        self._guard(self.refresh)()

    def refresh(self) -> None:
        """Apply the filters and redraw both figures."""
        f = self.frame
        if "dataset" in f.columns:
            f = f[f["dataset"] == self.dataset.value]
        f = f[f["method"].isin(self.methods.value) & f["n"].isin(self.n_values.value)]
        self.filtered = f
        self.baseline.disabled = self.mode.value != "error reduction"
        if len(f) == 0:
            empty = F.empty_figure("no runs match the filters")
            _replace_figure(self.heatmap, empty)
            _replace_figure(self.curves, empty)
            self.status.value = _status("no runs match the filters")
            return
        metric = self.metric.value
        shown = metric if self.mode.value != "error reduction" else "accuracy"
        finite = np.isfinite(f[shown].to_numpy(dtype=float))
        left_out = int((~finite).sum())
        f = self.filtered = f[finite]
        if len(f) == 0:
            empty = F.empty_figure(f"no selected run reports {shown}")
            _replace_figure(self.heatmap, empty)
            _replace_figure(self.curves, empty)
            self.status.value = _status(f"no selected run reports {html.escape(shown)}: "
                                        "pick another metric or other methods")
            return
        if self.mode.value == "error reduction":
            if self.baseline.value not in set(f["method"]):
                raise ValueError(f"baseline {self.baseline.value!r} is filtered out; "
                                 "select it under methods")
            heat = F.method_heatmap(f, value="error_reduction", baseline=self.baseline.value,
                                    methods=[m for m in self.methods.options
                                             if m in self.methods.value])
        else:
            present = set(f["method"])
            heat = F.method_heatmap(f, value=metric, methods=[
                m for m in self.methods.options if m in self.methods.value and m in present])
        _replace_figure(self.heatmap, heat)
        _replace_figure(self.curves, F.accuracy_vs_k(f, value=metric))
        note = (f" ({left_out} selected runs without {html.escape(shown)} left out)"
                if left_out else "")
        self.status.value = _status(f"{len(f)} runs, {f['method'].nunique()} methods{note}")
