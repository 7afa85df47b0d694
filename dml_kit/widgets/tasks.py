"""TaskExplorer: dataset, n, k, seed -> the support/query gallery of a k-shot task."""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets

from dml_kit import data
from dml_kit._validation import check_int, check_seed
from dml_kit.data.core import Dataset
from dml_kit.viz import figures as F
from dml_kit.widgets.base import (
    DATASETS,
    _check_dataset_name,
    _figure_widget,
    _Panel,
    _replace_figure,
    _set_range,
    _status,
    split_cached,
    task_limits,
)

__all__ = ["TaskExplorer"]

class TaskExplorer(_Panel):
    """Dataset, n, k, seed -> the support and query images of a k-shot task.

    The task is drawn from the *target* part of a class-disjoint domain split of the
    dataset (:func:`dml_kit.data.domain_split`, seed 0): rows are the n classes, then k
    support images and ``n_query`` of the queries per class.

    Args:
        dataset: ``"digits"``, ``"glyphs"`` or a :class:`~dml_kit.data.Dataset` (used
            as the target directly).
        n_way, k_shot, seed, n_query: initial control values (validated).
        max_way, max_shot: display caps of the sliders.

    Attributes: ``dataset``, ``n_way``, ``k_shot``, ``seed``, ``n_query`` (controls),
    ``figure`` (the gallery), ``task`` (the current :class:`~dml_kit.data.KShotTask`).
    """

    def __init__(self, dataset: str | Dataset = "digits", *, n_way: int = 5, k_shot: int = 5,
                 seed: int = 0, n_query: int = 3, max_way: int = 20, max_shot: int = 20) -> None:
        super().__init__()
        self._custom = dataset if isinstance(dataset, Dataset) else None
        if isinstance(dataset, Dataset):
            options, name = [*DATASETS, dataset.name], dataset.name
        else:
            options, name = list(DATASETS), _check_dataset_name(dataset, DATASETS)
        self.max_way = check_int("max_way", max_way, 1)
        self.max_shot = check_int("max_shot", max_shot, 1)
        self.dataset = widgets.Dropdown(options=options, value=name, description="dataset")
        self.n_way = widgets.IntSlider(value=1, min=1, max=1, description="n (classes)",
                                       continuous_update=False)
        self.k_shot = widgets.IntSlider(value=1, min=1, max=1, description="k (shots)",
                                        continuous_update=False)
        self.seed = widgets.BoundedIntText(value=check_seed(seed), min=0, max=2**31 - 1,
                                           description="seed")
        self.n_query = widgets.IntSlider(value=check_int("n_query", n_query, 0, 10), min=0,
                                         max=10, description="queries",
                                         tooltip="queries shown per class",
                                         continuous_update=False)
        self.figure = _figure_widget(height=360)
        self.task: Any = None
        self._target = self._target_for(name)
        n_max, k_max = task_limits(self._target, max_way=self.max_way, max_shot=self.max_shot)
        self.n_way.max, self.k_shot.max = n_max, k_max
        self.n_way.value = check_int("n_way", n_way, 1, n_max,
                                     hint=f"{self._target.n_classes} target classes")
        self.k_shot.value = check_int("k_shot", k_shot, 1, k_max,
                                      hint=f"smallest class has {self._target.min_class_size}")
        self.children = [widgets.HBox([self.dataset, self.seed]),
                         widgets.HBox([self.n_way, self.k_shot, self.n_query]),
                         self.status, self.figure]
        self.dataset.observe(self._guard(self._on_dataset), names="value")
        for w in (self.n_way, self.k_shot, self.seed, self.n_query):
            w.observe(self._guard(self._on_change), names="value")
        self._guard(self.refresh)()

    def _target_for(self, name: str) -> Dataset:
        if self._custom is not None and name == self._custom.name:
            return self._custom
        return split_cached(name).target

    def _on_dataset(self, change: Any) -> None:
        self._target = self._target_for(change["new"])
        n_max, k_max = task_limits(self._target, max_way=self.max_way, max_shot=self.max_shot)
        self._quiet = True
        try:
            _set_range(self.n_way, n_max)
            _set_range(self.k_shot, k_max)
        finally:
            self._quiet = False
        self.refresh()

    def _on_change(self, change: Any) -> None:
        if not getattr(self, "_quiet", False):
            self.refresh()

    def refresh(self) -> None:
        """Draw the task for the current control values."""
        self.task = data.kshot_task(self._target, self.n_way.value, self.k_shot.value,
                                    seed=self.seed.value)
        fig = F.task_gallery(self.task, n_query=self.n_query.value)
        _replace_figure(self.figure, fig)
        self.status.value = _status(html.escape(repr(self.task)))


