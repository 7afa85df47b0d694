"""Interactive panels for the notebooks: ipywidgets controls bound to tasks, runs and figures.

* :class:`TaskExplorer`: dataset, n, k, seed -> the support/query gallery of a k-shot task;
* :class:`MethodRunner`: method, loss, regularizer and weight, k, n, epochs -> trains with a
  :class:`~dml_kit.viz.live.LiveDashboard` and shows the target accuracy;
* :class:`SECExplorer`: one loss trained with and without SEC, side by side (norm
  histograms, coefficient of variation, accuracy);
* :class:`ShiftExplorer`: a slider over a ladder of class splits of growing shift;
* :class:`GridBrowser`: filters over a results table -> heatmap and accuracy-vs-k curves;
* :class:`EpochReplay`: a slider over the probe embeddings a run recorded, epoch by epoch;
* :class:`PrototypeExplorer`: k -> queries and prototypes of a task in a frozen embedding;
* :class:`MethodComparison`: n, k -> several methods on one task, one bar each;
* :class:`CosineGradientExplorer`: the embedding norm -> the step size of a cosine loss.

Every panel is an ``ipywidgets.VBox`` and can be driven from Python without a browser:
set a control's ``.value`` (observers redraw at once) or press a button with
``panel.train_button.click()``; the figures are ``go.FigureWidget`` objects whose
``.data`` the tests read. Controls are validated: the k slider's maximum follows the data
(the smallest class minus at least one query), n's maximum follows the available classes.
Errors inside a button's handler are shown in the panel's status line (and kept in
``panel.error``) instead of disappearing into the kernel's log.
"""

from __future__ import annotations

import contextlib
import functools
import html
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go

from dml_kit._validation import check_choice, check_float, check_int, check_seed
from dml_kit.data.core import Dataset
from dml_kit.viz import figures as F
from dml_kit.viz.live import LiveDashboard

__all__ = ["TaskExplorer", "MethodRunner", "SECExplorer", "ShiftExplorer", "GridBrowser",
           "EpochReplay", "PrototypeExplorer", "MethodComparison", "CosineGradientExplorer",
           "task_limits", "load_cached", "split_cached"]

DATASETS = ("digits", "glyphs")


# ---------------------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=8)
def load_cached(name: str) -> Dataset:
    """``dml_kit.data.load(name)``, kept in memory for the session (glyphs take seconds)."""
    from dml_kit import data

    return data.load(name)


@functools.lru_cache(maxsize=16)
def _split_named(name: str, seed: int, target_fraction: float) -> Any:
    from dml_kit import data

    return data.domain_split(load_cached(name), target_fraction=target_fraction, seed=seed)


def split_cached(dataset: str | Dataset, seed: int = 0, target_fraction: float = 0.5) -> Any:
    """The class-disjoint source/target :func:`~dml_kit.data.domain_split` of a dataset
    (cached for named datasets)."""
    from dml_kit import data

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


def _replace_figure(target: go.FigureWidget, new: go.Figure) -> None:
    """Make ``target`` show ``new``: trace data and layout replaced in one update when the
    traces keep their types, else the trace list is swapped.

    Properties that ``target`` sets and ``new`` does not (e.g. a heatmap's ``zmin``/``zmax``
    after switching from a diverging to a sequential colour scale) are reset, so nothing of
    the old figure lingers."""
    same = (len(target.data) == len(new.data)
            and all(a.type == b.type for a, b in zip(target.data, new.data, strict=True)))
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


class _Panel(widgets.VBox):
    """Base: a status line and an error slot shared by all panels."""

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
    from dml_kit.experiments.config import get_preset

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


# ---------------------------------------------------------------------------------------
# TaskExplorer
# ---------------------------------------------------------------------------------------
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
        options = list(DATASETS) + ([dataset.name] if self._custom is not None else [])
        name = dataset.name if self._custom is not None else _check_dataset_name(dataset,
                                                                                  DATASETS)
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
        from dml_kit import data

        self.task = data.kshot_task(self._target, self.n_way.value, self.k_shot.value,
                                    seed=self.seed.value)
        fig = F.task_gallery(self.task, n_query=self.n_query.value)
        _replace_figure(self.figure, fig)
        self.status.value = _status(html.escape(repr(self.task)))


# ---------------------------------------------------------------------------------------
# MethodRunner
# ---------------------------------------------------------------------------------------
_LOSS_METHODS = ("metric", "adapted_metric")          # read config.loss
_REG_METHODS = ("metric", "adapted_metric", "protonet", "adapted_protonet")


class MethodRunner(_TrainingPanel):
    """Method, loss, regularizer and weight, k, n, epochs -> a training run with a live
    dashboard, then the target accuracy.

    The run uses the class-disjoint split of ``dataset`` (source = the first
    ``source_classes`` source classes, for speed; target tasks from the target part) and
    :func:`dml_kit.methods.run`. Training runs in the click handler, so the notebook's
    stop button interrupts it cleanly (best weights restored, the dashboard marks the
    frame "interrupted").

    Args:
        dataset: ``"glyphs"``, ``"digits"`` or a :class:`~dml_kit.data.DomainSplit`-like
            object with ``source`` and ``target`` datasets.
        method, loss, regularizer (``"none"`` or a regularizer name), weight, n_way,
        k_shot, epochs (source epochs), seed: initial control values.
        adapt_epochs: epochs of the target (adaptation) phase.
        batches_per_epoch: balanced batches (or episodes) per source epoch.
        source_classes: train on the first this many source classes (``None`` or more
            than there are: all).
        fps, projection: passed to the :class:`LiveDashboard`.
        config: a :class:`~dml_kit.methods.MethodConfig` to start from (default: the
            ``classroom`` preset's, shortened).

    Attributes: the controls, ``train_button``, ``dashboard``, ``accuracy`` (HTML),
    ``result`` (the last :class:`~dml_kit.methods.RunResult`), ``results`` (all of them,
    as dicts), ``timings`` (``click_to_first_frame`` of the last run, seconds).
    """

    def __init__(self, dataset: str | Any = "glyphs", *, method: str = "adapted_metric",
                 loss: str = "histogram", regularizer: str = "none", weight: float = 1.0,
                 n_way: int = 5, k_shot: int = 5, epochs: int = 3, seed: int = 0,
                 adapt_epochs: int = 10, batches_per_epoch: int = 20,
                 source_classes: int | None = 60, fps: float = 4.0, projection: str = "pca",
                 config: Any = None, max_way: int = 20, max_shot: int = 20) -> None:
        super().__init__()
        from dml_kit import losses, methods, regularizers

        split, self.source, self.dataset_name = _training_data(dataset, source_classes)
        self.target = split.target
        self.adapt_epochs = check_int("adapt_epochs", adapt_epochs, 1, 1000)
        self.batches_per_epoch = check_int("batches_per_epoch", batches_per_epoch, 1, 10_000)
        self.base_config = _config_or_classroom(config)
        n_max, k_max = task_limits(self.target, max_way=max_way, max_shot=max_shot)
        reg_options = ["none", *regularizers.available()]
        self.method = widgets.Dropdown(options=methods.available(),
                                       value=check_choice("method", method,
                                                          methods.available()),
                                       description="method")
        self.loss = widgets.Dropdown(options=losses.available(),
                                     value=check_choice("loss", loss, losses.available()),
                                     description="loss")
        self.regularizer = widgets.Dropdown(options=reg_options,
                                            value=check_choice("regularizer", regularizer,
                                                               reg_options),
                                            description="regularizer")
        self.weight = widgets.FloatSlider(value=check_float("weight", weight, 0.0, 10.0),
                                          min=0.0, max=10.0, step=0.1, description="weight",
                                          continuous_update=False)
        self._training_controls(n_way=n_way, k_shot=k_shot, epochs=epochs, seed=seed,
                                n_max=n_max, k_max=k_max, label="Train")
        self.accuracy = widgets.HTML(_status("press Train"))
        self.dashboard = LiveDashboard(fps=fps, projection=projection)
        self.projection = widgets.ToggleButtons(
            options=["pca", "umap"], value=projection, description="projection",
            tooltips=["PCA: instant, every frame",
                      "UMAP: computed in the background at epoch ends (PCA until ready)"])
        self.result: Any = None
        self.results: list[dict[str, Any]] = []
        self.timings: dict[str, float] = {}
        self.children = [
            widgets.HBox([self.method, self.loss]),
            widgets.HBox([self.regularizer, self.weight]),
            widgets.HBox([self.n_way, self.k_shot]),
            widgets.HBox([self.epochs, self.seed]),
            widgets.HBox([self.projection, self.train_button]),
            self.accuracy, self.status, self.dashboard,
        ]
        self.projection.observe(
            self._guard(lambda change: self.dashboard.set_projection(change["new"])),
            names="value")
        self.method.observe(self._guard(self._sync_controls), names="value")
        self.regularizer.observe(self._guard(self._sync_controls), names="value")
        self._sync_controls()

    def _sync_controls(self, change: Any = None) -> None:
        m = self.method.value
        self.loss.disabled = m not in _LOSS_METHODS
        self.regularizer.disabled = m not in _REG_METHODS
        self.weight.disabled = self.regularizer.disabled or self.regularizer.value == "none"

    def config(self) -> Any:
        """The :class:`~dml_kit.methods.MethodConfig` the controls describe."""
        reg = None if (self.regularizer.disabled or self.regularizer.value == "none") \
            else self.regularizer.value
        return self.base_config.replace(
            loss=self.loss.value, regularizer=reg,
            regularizer_weight=float(self.weight.value) if reg else 0.0,
            source_epochs=self.epochs.value, target_epochs=self.adapt_epochs,
            batches_per_epoch=self.batches_per_epoch,
            episodes_per_epoch=self.batches_per_epoch)

    def _on_train(self, button: Any = None) -> None:
        from dml_kit import data, methods

        t_click = time.perf_counter()
        with _disabled(self.train_button):
            task = data.kshot_task(self.target, self.n_way.value, self.k_shot.value,
                                   seed=self.seed.value, n_query=min(
                                       10, self.target.min_class_size - self.k_shot.value))
            dash = self.dashboard
            dash.reset()
            dash.set_class_names({"source": self.source.class_names,
                                  "adapt": task.class_names})
            self.status.value = _status(f"training {self.method.value} on "
                                        f"{html.escape(repr(task))} ...")
            self.accuracy.value = _status("training ...")
            result = methods.run(self.method.value, task, self.source, self.config(),
                                 seed=self.seed.value, callbacks=[dash])
        self.result = result
        first = dash.t_first_frame
        self.timings = {"click_to_first_frame": (first - t_click) if first else float("nan"),
                        "seconds": time.perf_counter() - t_click}
        row = {"method": result.method, "k": task.k_shot, "n": task.n_way,
               "seed": result.seed, "loss": self.loss.value if not self.loss.disabled else "",
               "regularizer": self.config().regularizer or "",
               "weight": self.config().regularizer_weight, "accuracy": result.accuracy,
               "interrupted": result.interrupted, "seconds": self.timings["seconds"]}
        self.results.append(row)
        note = " (interrupted: best weights so far)" if result.interrupted else ""
        extra = f" · {html.escape(result.notes)}" if result.notes else ""
        self.accuracy.value = _status(
            f"<b>target accuracy {100 * result.accuracy:.1f}%</b> "
            f"({task.n_way}-way {task.k_shot}-shot, {result.method}, "
            f"{self.timings['seconds']:.1f} s){note}{extra}")
        self.status.value = _status(f"{len(self.results)} run(s) this session")


# ---------------------------------------------------------------------------------------
# SECExplorer
# ---------------------------------------------------------------------------------------
class SECExplorer(_TrainingPanel):
    """The same metric loss trained twice, without and with SEC (Zhang et al. 2020), side by
    side: histograms of the target embeddings' norms (SEC's target mean marked), their
    coefficient of variation and the target accuracy of each run.

    Both runs use the ``metric`` method (source training, then 1-NN on the target task)
    with the same seed, data and loss; only ``regularizer="sec"`` differs.

    Attributes: the controls, ``train_button``, ``figures`` (``[without, with]`` norm
    histograms), ``runs`` (the two :class:`~dml_kit.methods.RunResult`), ``cv``
    (``{"without": .., "with": ..}``), ``accuracy`` (same keys).
    """

    def __init__(self, dataset: str | Any = "digits", *, loss: str = "triplet",
                 weight: float = 1.0, n_way: int = 5, k_shot: int = 5, epochs: int = 4,
                 seed: int = 0, batches_per_epoch: int = 20, source_classes: int | None = 60,
                 config: Any = None, max_way: int = 20, max_shot: int = 20) -> None:
        super().__init__()
        from dml_kit import losses

        split, self.source, _ = _training_data(dataset, source_classes)
        self.target = split.target
        self.batches_per_epoch = check_int("batches_per_epoch", batches_per_epoch, 1)
        self.base_config = _config_or_classroom(config)
        n_max, k_max = task_limits(self.target, max_way=max_way, max_shot=max_shot)
        self.loss = widgets.Dropdown(options=losses.available(),
                                     value=check_choice("loss", loss, losses.available()),
                                     description="loss")
        self.weight = widgets.FloatSlider(value=check_float("weight", weight, 0.0, 10.0),
                                          min=0.0, max=10.0, step=0.1,
                                          description="SEC weight", continuous_update=False)
        self._training_controls(n_way=n_way, k_shot=k_shot, epochs=epochs, seed=seed,
                                n_max=n_max, k_max=k_max, label="Train both")
        self.figures = [_figure_widget(height=340, width=440, title="without SEC"),
                        _figure_widget(height=340, width=440, title="with SEC")]
        self.runs: list[Any] = []
        self.cv: dict[str, float] = {}
        self.accuracy: dict[str, float] = {}
        self.children = [
            widgets.HBox([self.loss, self.weight]),
            widgets.HBox([self.n_way, self.k_shot]),
            widgets.HBox([self.epochs, self.seed, self.train_button]),
            self.status, widgets.HBox(self.figures),
        ]
        self.status.value = _status("press 'Train both'")

    def _on_train(self, button: Any = None) -> None:
        import torch

        from dml_kit import data, methods
        from dml_kit.metrics import embed

        task = data.kshot_task(self.target, self.n_way.value, self.k_shot.value,
                               seed=self.seed.value)
        base = self.base_config.replace(
            loss=self.loss.value, source_epochs=self.epochs.value,
            batches_per_epoch=self.batches_per_epoch)
        runs, norms = [], []
        with _disabled(self.train_button):
            for i, (label, reg) in enumerate((("without", None), ("with", "sec"))):
                self.status.value = _status(f"training {label} SEC ({i + 1}/2) ...")
                cfg = base.replace(regularizer=reg,
                                   regularizer_weight=float(self.weight.value) if reg else 0.0)
                result = methods.run("metric", task, self.source, cfg, seed=self.seed.value)
                runs.append(result)
                emb = embed(result.model, torch.cat([task.support_x, task.query_x]))
                norms.append(emb.norm(dim=1).numpy())
        self.runs = runs
        labels = np.concatenate([task.support_y.numpy(), task.query_y.numpy()])
        hi = max(float(n.max()) for n in norms) * 1.05
        for key, fig, result, nrm in zip(("without", "with"), self.figures, runs, norms,
                                         strict=True):
            cv = float(nrm.std() / nrm.mean())
            self.cv[key], self.accuracy[key] = cv, float(result.accuracy)
            new = F.norm_histogram(nrm, labels, task.class_names, title=(
                f"{key} SEC: CV {cv:.3f}, accuracy {100 * result.accuracy:.1f}%"))
            new.update_layout(xaxis_range=[0, hi], width=440, height=340)
            _replace_figure(fig, new)
        self.status.value = _status(
            f"{self.loss.value}: norm CV {self.cv['without']:.3f} -> {self.cv['with']:.3f} "
            f"with SEC (weight {self.weight.value:g}); accuracy "
            f"{100 * self.accuracy['without']:.1f}% -> {100 * self.accuracy['with']:.1f}%")


# ---------------------------------------------------------------------------------------
# EpochReplay
# ---------------------------------------------------------------------------------------
class EpochReplay(_Panel):
    """Replay a finished training run epoch by epoch: a slider over the probe embeddings it
    recorded (:class:`~dml_kit.callbacks.HistoryCallback` with ``keep_probes=True``).

    Top: a 2-D projection of the probe embeddings (PCA, Procrustes-aligned frame to frame
    by :class:`~dml_kit.viz.projection.Projector`, so the clusters do not flip). Bottom:
    the distributions ``p+`` and ``p-`` of their positive and negative pair similarities
    with the histogram loss of the set (:func:`~dml_kit.viz.figures.pair_similarity_histogram`).

    Args:
        probes: ``(phase, epoch, embeddings, labels)`` tuples, as ``HistoryCallback.probes``.
        class_names: names of the probe labels (e.g. the source dataset's ``class_names``).
        phase: which phase's frames to replay (``"source"`` or ``"adapt"``).
        index: the frame shown first (default: the last).

    Attributes: ``epoch`` (slider: index into ``frames``), ``frames`` (``(epoch,
    embeddings, labels)``), ``layouts`` (the 2-D points per frame), ``scatter`` and
    ``histogram`` (figures).
    """

    def __init__(self, probes: Sequence[tuple[str, int, Any, Any]],
                 class_names: Sequence[str] | None = None, *, phase: str = "source",
                 seed: int = 0, index: int | None = None) -> None:
        super().__init__()
        from dml_kit.viz.projection import Projector

        self.frames = [(int(e), emb, y) for ph, e, emb, y in probes if ph == phase]
        if not self.frames:
            raise ValueError(f"probes hold no frame of phase {phase!r}: record them with "
                             "HistoryCallback(keep_probes=True)")
        last = len(self.frames) - 1
        projector = Projector("pca", seed=check_seed(seed))
        self.layouts = [projector.fit_transform(emb) for _, emb, _ in self.frames]
        self.class_names = None if class_names is None else list(class_names)
        self.epoch = widgets.IntSlider(
            value=last if index is None else check_int("index", index, 0, last), min=0,
            max=last, description="epoch #", continuous_update=False)
        self.scatter = _figure_widget(height=420)
        self.histogram = _figure_widget(height=340)
        self.children = [self.epoch, self.status, self.scatter, self.histogram]
        self.epoch.observe(self._guard(lambda change: self.refresh()), names="value")
        self._guard(self.refresh)()

    def refresh(self) -> None:
        """Draw the selected frame."""
        epoch, emb, labels = self.frames[self.epoch.value]
        _replace_figure(self.scatter, F.projection_scatter(
            self.layouts[self.epoch.value], labels, self.class_names,
            title=f"Probe embeddings, epoch {epoch}"))
        hist = F.pair_similarity_histogram(emb, labels, title=f"Probe pairs, epoch {epoch}")
        _replace_figure(self.histogram, hist)
        meta = hist.layout.meta
        self.status.value = _status(
            f"epoch {epoch} ({self.epoch.value + 1} of {len(self.frames)} frames): mean "
            f"similarity {meta['positive_mean']:.2f} (positive pairs) vs "
            f"{meta['negative_mean']:.2f} (negative pairs)")


# ---------------------------------------------------------------------------------------
# PrototypeExplorer
# ---------------------------------------------------------------------------------------
class PrototypeExplorer(_Panel):
    """A k slider over target tasks seen through a frozen embedding: queries as dots,
    class prototypes ``c_j = (1/k) sum_{i: y_i = j} f(x_i)`` as stars, in a 2-D PCA
    (prototypical networks, Snell et al. 2017), with the nearest-prototype accuracy.

    Each k draws a new n-way k-shot task of ``target`` (same seed, ``n_query`` queries per
    class) and recomputes the prototypes; nothing is retrained.

    Args:
        target: the target :class:`~dml_kit.data.Dataset`.
        model: an embedder ``nn.Module`` (e.g. a protonet's ``SourceModel.model``).
        n_way, k_shot, n_query, seed: the task; ``max_shot`` caps the slider.

    Attributes: ``k_shot`` (slider), ``figure``, ``task`` (the current task), ``accuracy``
    (``{k: nearest-prototype accuracy}`` for every k shown so far).
    """

    def __init__(self, target: Dataset, model: Any, *, n_way: int = 5, k_shot: int = 1,
                 n_query: int = 15, seed: int = 0, max_shot: int = 10) -> None:
        super().__init__()
        if not isinstance(target, Dataset):
            raise ValueError(f"target must be a dml_kit.data.Dataset, got "
                             f"{type(target).__name__}")
        self.target, self.model = target, model
        self.n_way = check_int("n_way", n_way, 2, target.n_classes,
                               hint=f"{target.n_classes} target classes")
        self.n_query = check_int("n_query", n_query, 1, target.min_class_size - 1,
                                 hint=f"smallest class has {target.min_class_size}")
        self.seed = check_seed(seed)
        k_max = min(check_int("max_shot", max_shot, 1), target.min_class_size - self.n_query)
        self.k_shot = widgets.IntSlider(
            value=check_int("k_shot", k_shot, 1, k_max,
                            hint=f"{target.min_class_size} per class, {n_query} queries"),
            min=1, max=k_max, description="k (shots)", continuous_update=False)
        self.figure = _figure_widget(height=460)
        self.task: Any = None
        self.accuracy: dict[int, float] = {}
        self.children = [self.k_shot, self.status, self.figure]
        self.k_shot.observe(self._guard(lambda change: self.refresh()), names="value")
        self._guard(self.refresh)()

    def refresh(self) -> None:
        """Draw the task for the current k."""
        from dml_kit import data
        from dml_kit.metrics import embed

        k = self.k_shot.value
        self.task = t = data.kshot_task(self.target, self.n_way, k, n_query=self.n_query,
                                        seed=self.seed)
        fig = F.prototype_scatter(embed(self.model, t.support_x), t.support_y,
                                  embed(self.model, t.query_x), t.query_y, t.class_names)
        _replace_figure(self.figure, fig)
        self.accuracy[k] = fig.layout.meta["accuracy"]
        self.status.value = _status(f"{t.n_way}-way {k}-shot, {self.n_query} queries per "
                                    f"class: accuracy {self.accuracy[k]:.2f}")


# ---------------------------------------------------------------------------------------
# MethodComparison
# ---------------------------------------------------------------------------------------
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
        from dml_kit import methods as registry
        from dml_kit.compare import method_rule

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
        from dml_kit.compare import compare_on_tasks

        n, k = self.n_way.value, self.k_shot.value
        self.status.value = _status(f"running {len(self.rules)} methods on a {n}-way "
                                    f"{k}-shot task ...")
        with _disabled(self.run_button):
            frame = compare_on_tasks(self.target, self.rules, k_values=[k],
                                     seeds=[self.seed], n_way=n)
        self.last = frame.set_index("method")[["accuracy", "note"]]
        acc = self.last["accuracy"]
        fig = go.Figure(go.Bar(x=list(acc.index), y=acc.tolist(), text=[f"{a:.0%}" for a in acc],
                               textposition="outside", marker_color=F.palette(len(acc))))
        fig.add_hline(y=1 / n, line=dict(dash="dot", color="#666"), annotation_text="chance")
        fig.update_layout(template=F.TEMPLATE, height=360, title=f"{n}-way {k}-shot, one task",
                          yaxis=dict(title="query accuracy", range=[0, 1.05]))
        _replace_figure(self.figure, fig)
        best = acc.idxmax()
        self.status.value = _status(f"{n}-way {k}-shot: best {best} ({acc[best]:.0%})")


# ---------------------------------------------------------------------------------------
# CosineGradientExplorer
# ---------------------------------------------------------------------------------------
class CosineGradientExplorer(_Panel):
    """A norm slider on the toy of :mod:`dml_kit.viz.toy`: ``f = norm * direction`` against
    a fixed partner ``g``; the figure shows ``||d cos(f, g) / d f|| = sin(theta) / ||f||``
    and the angle one gradient step of size ``lr`` turns ``f`` (about
    ``lr sin(theta) / ||f||^2``), the markers at the slider's norm (SEC paper, Zhang et
    al. 2020, Eq. 1).

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
        self._guard(self.refresh)()

    def refresh(self) -> None:
        """Move the markers (and the title) to the slider's norm."""
        from dml_kit.viz.toy import cosine_gradient_figure

        fig = cosine_gradient_figure(self.direction, self.partner, lr=self.lr,
                                     marker=self.norm.value)
        _replace_figure(self.figure, fig)
        self.gradient, self.turn = fig.layout.meta["gradient"], fig.layout.meta["turn"]


# ---------------------------------------------------------------------------------------
# ShiftExplorer
# ---------------------------------------------------------------------------------------
def _split_parts(split: Any) -> tuple[tuple[int, ...], tuple[int, ...], float]:
    try:
        return (tuple(int(c) for c in split.train_classes),
                tuple(int(c) for c in split.test_classes), float(split.distance))
    except AttributeError as exc:
        raise ValueError("each ladder entry needs train_classes, test_classes and distance "
                         f"(like dml_kit.data.shift.ShiftSplit); got {type(split).__name__}"
                         ) from exc


def zero_shot_evaluator(config: Any = None, *, epochs: int = 3, batches_per_epoch: int = 20,
                        max_test_classes: int = 100, seed: int = 0
                        ) -> Callable[[Dataset, Any], dict[str, float]]:
    """A quick ``evaluate(data, split)`` for :class:`ShiftExplorer`: trains a ``metric``
    embedding on the split's train classes (short training) and returns its zero-shot
    cosine Recall@1 on (up to ``max_test_classes`` of) the test classes as
    ``{"zero_shot": r1}`` (ooDML's headline metric)."""
    from dml_kit.methods import train_source

    def evaluate(data: Dataset, split: Any) -> dict[str, float]:
        from dml_kit.metrics import embed, recall_at_k

        train_ids, test_ids, _ = _split_parts(split)
        cfg = _config_or_classroom(config).replace(source_epochs=epochs,
                                                   batches_per_epoch=batches_per_epoch)
        model = train_source("embedding", data.select_classes(train_ids), cfg, seed=seed)
        test = data.select_classes(test_ids[:max_test_classes])
        emb = embed(model.model, test.x)
        return {"zero_shot": recall_at_k(emb, test.y, ks=(1,))[1]}

    return evaluate


class ShiftExplorer(_Panel):
    """A slider over a ladder of class splits of growing distribution shift (ooDML).

    Assumes each ladder entry has ``train_classes`` and ``test_classes`` (class ids of
    ``data``) and ``distance`` (the Fréchet distance between the two sides), as
    :class:`dml_kit.data.shift.ShiftSplit` from :func:`dml_kit.data.shift_splits` does.

    Shows, for the selected split: its distance and class counts, sample images of its
    train classes (top row) and test classes (bottom row), and the shift curve
    (``value`` against distance, zero-shot solid, few-shot dashed) with the selected split
    marked. Curve points come from ``results`` (a DataFrame in any shape
    :func:`~dml_kit.viz.figures.shift_curve_frame` reads, e.g. the table
    :func:`dml_kit.experiments.generalisation_study` returns) and from the ``Evaluate``
    button, which calls ``evaluate(data, split) -> {"zero_shot": .., "few_shot": ..}``
    (e.g. :func:`zero_shot_evaluator`); without ``evaluate`` the button is disabled.

    Attributes: ``split`` (slider: index into the ladder), ``evaluate_button``,
    ``samples`` (sample-image figure), ``curve`` (shift curve), ``results`` (rows so far).
    """

    def __init__(self, data: Dataset, ladder: Sequence[Any], *, results: Any = None,
                 evaluate: Callable[[Dataset, Any], dict[str, float]] | None = None,
                 value: str = "recall@1", max_classes: int = 12, index: int = 0) -> None:
        super().__init__()
        if not isinstance(data, Dataset):
            raise ValueError(f"data must be a dml_kit.data.Dataset, got {type(data).__name__}")
        if len(ladder) < 1:
            raise ValueError("ladder must hold at least one split")
        self.data, self.ladder = data, list(ladder)
        self._parts = [_split_parts(s) for s in self.ladder]
        for i, (tr, te, _) in enumerate(self._parts):
            bad = [c for c in tr + te if not 0 <= c < data.n_classes]
            if bad:
                raise ValueError(f"ladder[{i}] names classes {bad[:5]} outside 0.."
                                 f"{data.n_classes - 1} of {data.name!r}")
        self.value = value
        self.max_classes = check_int("max_classes", max_classes, 1, 50)
        self._evaluate = evaluate
        self.results: list[dict[str, Any]] = []
        if results is not None:
            F.shift_curve_frame(results, value=value)      # refuse an unreadable table now
            self.results = (results.to_dict("records") if hasattr(results, "to_dict")
                            else [dict(r) for r in results])
        self.split = widgets.IntSlider(value=check_int("index", index, 0, len(ladder) - 1),
                                       min=0, max=len(ladder) - 1, description="split",
                                       continuous_update=False)
        self.evaluate_button = widgets.Button(description="Evaluate this split",
                                              disabled=evaluate is None, icon="play")
        self.samples = _figure_widget(height=240)
        self.curve = _figure_widget(height=360)
        self.children = [widgets.HBox([self.split, self.evaluate_button]), self.status,
                         self.samples, self.curve]
        self.split.observe(self._guard(lambda change: self.refresh()), names="value")
        self.evaluate_button.on_click(self._guard(self._on_evaluate))
        self._guard(self.refresh)()

    @property
    def selected(self) -> Any:
        """The selected ladder entry."""
        return self.ladder[self.split.value]

    def _sample_figure(self) -> go.Figure:
        train_ids, test_ids, fd = self._parts[self.split.value]
        data = self.data
        rows: list[list[np.ndarray | None]] = []
        shown: list[list[int]] = []
        for ids in (train_ids, test_ids):
            ids = list(ids[: self.max_classes])
            row: list[np.ndarray | None] = []
            for c in ids:
                i = int(np.flatnonzero(data.y.numpy() == c)[0])
                row.append(F._as_images(data.x[i:i + 1])[0] if data.is_image else None)
            rows.append(row + [None] * (self.max_classes - len(row)))
            shown.append(ids)
        fig = go.Figure()
        fig.update_layout(template=F.TEMPLATE)
        if data.is_image:
            mosaic = F.gallery_mosaic(rows, gap=3)
            fig.add_trace(go.Image(source=F._png_uri(mosaic), hoverinfo="skip"))
            h = data.input_shape[-2]
            fig.update_yaxes(tickvals=[h / 2, h + 3 + h / 2],
                             ticktext=[f"train ({len(train_ids)})", f"test ({len(test_ids)})"],
                             showgrid=False, showline=False)
            fig.update_xaxes(showticklabels=False, showgrid=False, showline=False)
        fig.update_layout(
            title=f"split {self.split.value}: FD {fd:.3g} - one image per class "
                  f"(first {self.max_classes})",
            height=240, margin=dict(l=90, r=20, t=50, b=10),
            meta={"train": shown[0], "test": shown[1], "distance": fd})
        return fig

    def _curve_figure(self) -> go.Figure:
        _, _, fd = self._parts[self.split.value]
        distances = [p[2] for p in self._parts]
        if self.results:
            fig = F.accuracy_vs_distance(self.results, value=self.value)
        else:
            fig = go.Figure()
            fig.update_layout(template=F.TEMPLATE, xaxis_title="Fréchet distance",
                              yaxis_title=self.value,
                              title=f"{self.value} along the shift ladder (no results yet)")
        fig.add_vline(x=fd, line=dict(color="#444", dash="dot", width=2))
        fig.add_annotation(x=fd, y=1, yref="paper", text=f"split {self.split.value}",
                           showarrow=False, yanchor="bottom")
        span = max(distances) - min(distances) or 1.0
        fig.update_xaxes(range=[min(distances) - 0.05 * span, max(distances) + 0.05 * span],
                         tickvals=distances, ticktext=[f"{d:.3g}" for d in distances])
        fig.update_layout(height=360)
        return fig

    def refresh(self) -> None:
        """Redraw for the selected split."""
        train_ids, test_ids, fd = self._parts[self.split.value]
        _replace_figure(self.samples, self._sample_figure())
        _replace_figure(self.curve, self._curve_figure())
        self.status.value = _status(
            f"split {self.split.value} of {len(self.ladder)}: Fréchet distance {fd:.3g}, "
            f"{len(train_ids)} train / {len(test_ids)} test classes")

    def _on_evaluate(self, button: Any = None) -> None:
        if self._evaluate is None:
            raise ValueError("no evaluate function was given to ShiftExplorer")
        self.status.value = _status(f"evaluating split {self.split.value} ...")
        with _disabled(self.evaluate_button):
            scores = dict(self._evaluate(self.data, self.selected))
        _, _, fd = self._parts[self.split.value]
        self.results = [r for r in self.results
                        if not (r.get("distance") == fd and r.get("method", "") == "")]
        self.results.append({"distance": fd, "method": "", **scores})
        self.refresh()


# ---------------------------------------------------------------------------------------
# GridBrowser
# ---------------------------------------------------------------------------------------
class GridBrowser(_Panel):
    """Filters over a results table -> a method x (k, n) heatmap and accuracy-vs-k curves.

    ``frame`` is a results DataFrame such as :meth:`dml_kit.experiments.ResultsStore.to_frame`
    returns (columns ``dataset``, ``method``, ``k``, ``n``, ``seed``, ``accuracy`` and
    ``m_*`` metrics). Filters: dataset, methods, n values, the metric, and the heatmap
    mode (the metric, or the error reduction against a baseline method).

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
            c.startswith("m_") and np.issubdtype(frame[c].dtype, np.number))]
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
            empty = go.Figure()
            empty.update_layout(template=F.TEMPLATE, title="no runs match the filters")
            _replace_figure(self.heatmap, empty)
            _replace_figure(self.curves, empty)
            self.status.value = _status("no runs match the filters")
            return
        metric = self.metric.value
        if self.mode.value == "error reduction":
            if self.baseline.value not in set(f["method"]):
                raise ValueError(f"baseline {self.baseline.value!r} is filtered out; "
                                 "select it under methods")
            heat = F.method_heatmap(f, value="error_reduction", baseline=self.baseline.value,
                                    methods=[m for m in self.methods.options
                                             if m in self.methods.value])
        else:
            heat = F.method_heatmap(f, value=metric, methods=[
                m for m in self.methods.options if m in self.methods.value])
        _replace_figure(self.heatmap, heat)
        _replace_figure(self.curves, F.accuracy_vs_k(f, value=metric))
        self.status.value = _status(f"{len(f)} runs, {f['method'].nunique()} methods")
