"""The panel framework every widget builds on, and the cached data helpers.

* :class:`_Panel`: an ``ipywidgets.VBox`` with a status line and an error slot; handlers
  wrapped by :meth:`_Panel._guard` report exceptions there instead of the kernel log;
* :class:`_TrainingPanel`: a panel that trains on a button press (n, k, epochs, seed);
* :func:`_replace_figure`: make a ``go.FigureWidget`` show a newly built figure;
* :func:`_status`, :func:`_figure_widget`, :func:`_disabled`, :func:`_task_sliders`,
  :func:`_set_range`: small building blocks of the panels;
* :func:`load_cached`, :func:`split_cached`, :func:`task_limits`: datasets and their
  domain splits kept in memory for the session, and the limits of the k-shot controls.
"""

from __future__ import annotations

import contextlib
import functools
import html
import numbers
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
from traitlets import TraitError

from dml_kit import data
from dml_kit._validation import check_choice, check_int, check_seed
from dml_kit.data.core import Dataset
from dml_kit.experiments.config import get_preset
from dml_kit.viz import figures as F

__all__ = ["DATASETS", "load_cached", "split_cached", "task_limits"]

DATASETS = ("digits", "glyphs")


@functools.lru_cache(maxsize=8)
def load_cached(name: str) -> Dataset:
    """``dml_kit.data.load(name)``, kept in memory for the session (glyphs take seconds)."""
    return data.load(name)


@functools.lru_cache(maxsize=16)
def _split_named(name: str, seed: int, target_fraction: float) -> Any:
    return data.domain_split(load_cached(name), target_fraction=target_fraction, seed=seed)


def split_cached(dataset: str | Dataset, seed: int = 0, target_fraction: float = 0.5) -> Any:
    """The class-disjoint source/target :func:`~dml_kit.data.domain_split` of a dataset
    (cached for named datasets)."""
    if isinstance(dataset, str):
        return _split_named(dataset, seed, target_fraction)
    return data.domain_split(dataset, target_fraction=target_fraction, seed=seed)


def task_limits(target: Dataset, *, max_way: int = 20, max_shot: int = 20,
                min_query: int = 1) -> tuple[int, int]:
    """The largest ``n_way`` and ``k_shot`` the controls allow on ``target``: n up to the
    number of classes, k up to the smallest class size minus ``min_query`` (at least one
    query per class must remain), both capped for display (``max_way``, ``max_shot``)."""
    n_max = min(target.n_classes, max_way)
    k_max = min(target.min_class_size - min_query, max_shot)
    if n_max < 1 or k_max < 1:
        raise ValueError(f"dataset {target.name!r} is too small for a k-shot task: "
                         f"{target.n_classes} classes, smallest has {target.min_class_size}")
    return n_max, k_max


def _set_range(slider: widgets.IntSlider, high: int, low: int = 1) -> None:
    """Move a slider's range to ``[low, high]``, clamping its value."""
    value = min(max(slider.value, low), high)
    if high >= slider.max:
        slider.max = high
        slider.min = low
    else:
        slider.min = min(low, high)
        slider.max = high
    slider.value = value


def _updatable_in_place(old: Any, new: Any) -> bool:
    """Whether trace ``old`` can take ``new``'s properties in place: same type, and, for an
    image trace, the same picture.

    A ``go.Image`` whose ``source`` changes is replaced by a new trace instead (new uid):
    plotly.js keeps the decoded picture of an image trace (its private ``_image`` and
    ``_canvas``) and hands it on to the trace at the same index, and its image load is
    asynchronous, so quick successive updates (a panel switched to another dataset and
    back) could leave the browser drawing an earlier picture under the new layout (issue
    19: TaskExplorer showed 8x8 digits under glyph labels after Run All). A new trace
    starts with no cached picture, and an earlier load finishing late can only touch the
    removed trace's element."""
    if old.type != new.type:
        return False
    return old.type != "image" or old.source == new.source


def _finite_or_gaps(fig: go.Figure) -> None:
    """Replace NaN and infinities in the float arrays of ``fig``'s traces by ``None`` (in
    place): plotly draws a gap either way, but a widget message with NaN is not valid JSON,
    and jupyter_client then prints a "Message serialization failed" warning into the
    reader's notebook (issue 19: above 05's ConfusionExplorer, whose heatmap leaves its
    diagonal blank with NaN)."""
    for trace in fig.data:
        for key, value in trace.to_plotly_json().items():
            if (isinstance(value, np.ndarray) and value.dtype.kind == "f"
                    and not np.isfinite(value).all()):
                filled = value.astype(object)
                filled[~np.isfinite(value)] = None
                trace[key] = filled.tolist()


def _replace_figure(target: go.FigureWidget, new: go.Figure) -> None:
    """Make ``target`` show ``new``: trace data and layout replaced in one update when the
    traces keep their types (and image traces their pictures, see
    :func:`_updatable_in_place`), else the trace list is swapped.

    Properties that ``target`` sets and ``new`` does not (e.g. a heatmap's ``zmin``/``zmax``
    after switching from a diverging to a sequential colour scale) are reset, so nothing of
    the old figure lingers."""
    _finite_or_gaps(new)
    same = (len(target.data) == len(new.data)
            and all(_updatable_in_place(a, b)
                    for a, b in zip(target.data, new.data, strict=True)))
    with target.batch_update():
        if same:
            for old_trace, new_trace in zip(target.data, new.data, strict=True):
                spec = _with_resets(old_trace.to_plotly_json(), new_trace.to_plotly_json(),
                                    keep=("type", "uid"))
                spec.pop("type", None)
                old_trace.update(spec, overwrite=True)
        else:
            target.data = ()
            target.add_traces(list(new.data))
        layout = _with_resets(target.layout.to_plotly_json(), new.layout.to_plotly_json(),
                              keep=("template",))
        for key in ("shapes", "annotations", "images"):
            layout.setdefault(key, [])
        target.update_layout(layout, overwrite=True)


def _with_resets(old: dict[str, Any], new: dict[str, Any], keep: tuple[str, ...]) -> dict[str, Any]:
    """``new`` plus ``None`` (plotly's "reset to default") for every top-level key that only
    ``old`` sets, except those in ``keep``."""
    return {**{key: None for key in old if key not in new and key not in keep}, **new}


def _status(text: str, *, error: bool = False) -> str:
    color = "#b00020" if error else "#333"
    return f"<div style='font-size:13px;color:{color}'>{text}</div>"


def _figure_widget(height: int = 360, width: int | None = None, title: str = "") -> go.FigureWidget:
    fig = go.FigureWidget()
    fig.update_layout(template=F.TEMPLATE, height=height, title=title)
    if width is not None:
        fig.update_layout(width=width)
    return fig


def _allowed(control: Any) -> str:
    """What ``control`` accepts, in words: a range, a list of options or a type."""
    if hasattr(control, "options") and not hasattr(control, "max"):
        labels = getattr(control, "_options_labels", None) or control.options
        return "one of: " + ", ".join(repr(o) for o in labels)
    if hasattr(control, "min") and hasattr(control, "max"):
        return f"a number between {control.min} and {control.max}"
    return f"a value of the type {type(getattr(control, 'value', None)).__name__}"


class _NamedControl:
    """Mixin put in front of a panel's controls (see :func:`_name_control`): assigning an
    invalid ``.value`` from Python raises ``traitlets.TraitError`` whose message names the
    control (panel attribute and label) and what it accepts. A value outside a bounded
    control's ``[min, max]`` is refused instead of being clamped silently."""

    _control_name = "control"

    def __setattr__(self, name: str, value: Any) -> None:
        if name != "value":
            super().__setattr__(name, value)
            return
        lo, hi = getattr(self, "min", None), getattr(self, "max", None)
        if (lo is not None and hi is not None and isinstance(value, numbers.Real)
                and not isinstance(value, bool) and not lo <= value <= hi):
            raise TraitError(f"{self._control_name}: {value!r} is out of range: must be "
                             f"{_allowed(self)}")
        try:
            super().__setattr__(name, value)
        except TraitError as err:
            raise TraitError(f"{self._control_name}: {value!r} is not allowed, must be "
                             f"{_allowed(self)} ({err})") from None


_NAMED_CLASSES: dict[type, type] = {}


def _name_control(control: Any, name: str) -> None:
    """Give ``control`` (an ipywidgets value widget) the :class:`_NamedControl` behaviour,
    named ``name``; its class becomes a subclass made once per widget class."""
    cls = type(control)
    if not issubclass(cls, _NamedControl):
        named = _NAMED_CLASSES.get(cls)
        if named is None:
            named = type(cls.__name__, (_NamedControl, cls), {"__module__": cls.__module__})
            _NAMED_CLASSES[cls] = named
        control.__class__ = named
    label = getattr(control, "description", "") or ""
    object.__setattr__(control, "_control_name",
                       f"{name} ({label!r})" if label and label != name.rsplit(".", 1)[-1]
                       else name)


class _Panel(widgets.VBox):
    """Base: a status line and an error slot shared by all panels.

    Every value control assigned as an attribute of a panel (``self.k_shot =
    widgets.IntSlider(...)``) is named after it: setting it to an invalid value from
    Python raises ``TraitError`` naming ``Panel.attribute`` and its label, and what it
    accepts (see :class:`_NamedControl`)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if (isinstance(value, widgets.ValueWidget) and not name.startswith("_")
                and not isinstance(value, (widgets.HTML, widgets.Label))):
            _name_control(value, f"{type(self).__name__}.{name}")
        super().__setattr__(name, value)

    def __init__(self, **kwargs: Any) -> None:
        self.status = widgets.HTML(_status(""))
        self.error: str | None = None
        super().__init__(**kwargs)

    def _guard(self, fn: Callable[..., None]) -> Callable[..., None]:
        """Wrap a handler so an exception lands in ``self.error`` and the status line."""

        @functools.wraps(fn)
        def wrapper(*args: Any) -> None:
            try:
                self.error = None
                fn(*args)
            except Exception as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                self.status.value = _status(html.escape(self.error), error=True)
                self._debug_traceback = traceback.format_exc()

        return wrapper


def _check_dataset_name(name: str, choices: Sequence[str]) -> str:
    return check_choice("dataset", name, list(choices))


def _training_data(dataset: str | Any, source_classes: int | None) -> tuple[Any, Dataset, str]:
    """``(split, source, name)`` for a training panel: the cached domain split of a named
    dataset (or a given ``DomainSplit``-like object with ``source`` and ``target``), its
    source cut to the first ``source_classes`` classes (``None``: all)."""
    if isinstance(dataset, str):
        _check_dataset_name(dataset, DATASETS)
        split, name = split_cached(dataset), dataset
    elif hasattr(dataset, "source") and hasattr(dataset, "target"):
        split, name = dataset, getattr(dataset.target, "name", "custom")
    else:
        raise ValueError("dataset must be 'glyphs', 'digits' or a DomainSplit with "
                         f"source and target, got {type(dataset).__name__}")
    source = split.source
    if source_classes is not None:
        source_classes = check_int("source_classes", source_classes, 2)
        if source_classes < source.n_classes:
            source = source.select_classes(range(source_classes),
                                           name=f"{source.name}[:{source_classes}]")
    return split, source, name


def _task_sliders(n_way: int, k_shot: int, n_max: int, k_max: int
                  ) -> tuple[widgets.IntSlider, widgets.IntSlider]:
    """The n (classes) and k (shots) sliders of a panel, values validated against the
    data's limits (:func:`task_limits`)."""
    n = widgets.IntSlider(value=check_int("n_way", n_way, 2, n_max), min=2, max=n_max,
                          description="n (classes)", continuous_update=False)
    k = widgets.IntSlider(value=check_int("k_shot", k_shot, 1, k_max), min=1, max=k_max,
                          description="k (shots)", continuous_update=False)
    return n, k


def _config_or_classroom(config: Any) -> Any:
    """``config``, or the ``classroom`` preset's :class:`~dml_kit.methods.MethodConfig`."""
    if config is not None:
        return config
    return get_preset("classroom").config


@contextlib.contextmanager
def _disabled(button: widgets.Button) -> Iterator[None]:
    """Disable ``button`` while its run is in progress (re-enabled after an error too)."""
    button.disabled = True
    try:
        yield
    finally:
        button.disabled = False


class _TrainingPanel(_Panel):
    """Base of the panels that train on a button press: n, k, epochs and seed controls and
    the button (``self.n_way``, ``self.k_shot``, ``self.epochs``, ``self.seed``,
    ``self.train_button``)."""

    def _training_controls(self, *, n_way: int, k_shot: int, epochs: int, seed: int,
                           n_max: int, k_max: int, label: str) -> None:
        self.n_way, self.k_shot = _task_sliders(n_way, k_shot, n_max, k_max)
        self.epochs = widgets.IntSlider(value=check_int("epochs", epochs, 1, 100), min=1,
                                        max=100, description="epochs",
                                        continuous_update=False)
        self.seed = widgets.BoundedIntText(value=check_seed(seed), min=0, max=2**31 - 1,
                                           description="seed")
        self.train_button = widgets.Button(description=label, button_style="primary",
                                           icon="play")
        self.train_button.on_click(self._guard(self._on_train))

    def _on_train(self, button: Any = None) -> None:
        raise NotImplementedError


