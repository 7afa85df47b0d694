"""Panels that train on a button press.

* :class:`MethodRunner`: method, loss, regularizer and weight, k, n, epochs -> trains with a
  :class:`~dml_kit.viz.live.LiveDashboard` and shows the target accuracy;
* :class:`SECExplorer`: one loss trained with and without SEC, side by side (norm
  histograms, coefficient of variation, accuracy, and a projection of the target task's
  embeddings where hovering shows a point's image and clicking its nearest neighbours).

Which controls apply to a method comes from its registry entry
(:data:`dml_kit.methods.METHODS`): :func:`uses_loss`, :func:`uses_regularizer`.
"""

from __future__ import annotations

import html
import time
from typing import Any

import ipywidgets as widgets
import numpy as np
import torch

from dml_kit import data, losses, methods, regularizers
from dml_kit._validation import check_choice, check_float, check_int
from dml_kit.methods.batches import holdout, probe_subset
from dml_kit.metrics import embed, norm_stats
from dml_kit.viz import figures as F
from dml_kit.viz.inspector import PointInspector
from dml_kit.viz.live import LiveDashboard
from dml_kit.viz.projection import pca_2d
from dml_kit.widgets.base import (
    _config_or_classroom,
    _disabled,
    _figure_widget,
    _replace_figure,
    _status,
    _training_data,
    _TrainingPanel,
    task_limits,
)

__all__ = ["MethodRunner", "SECExplorer", "uses_loss", "uses_regularizer", "probe_sets"]


def uses_loss(method: str) -> bool:
    """Whether ``method`` trains with ``config.loss`` (the loss control applies): its
    registry entry's ``uses_loss``, else whether it trains a metric embedding
    (``source_kind == "embedding"``)."""
    entry = methods.get(method)
    return bool(getattr(entry, "uses_loss", entry.source_kind == "embedding"))


def uses_regularizer(method: str) -> bool:
    """Whether a norm regularizer (``config.regularizer``) applies to ``method``: its
    registry entry's ``uses_regularizer``, else whether it classifies in an embedding."""
    entry = methods.get(method)
    return bool(getattr(entry, "uses_regularizer", entry.embedding))


def probe_sets(method: str, task: Any, source: Any, config: Any, seed: int
               ) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """The probe inputs and labels a :func:`dml_kit.methods.run` of ``method`` shows its
    callbacks, per phase, for the live dashboard's images: ``"source"``: the
    :func:`~dml_kit.methods.batches.probe_subset` of the held-out part of ``source``
    (:func:`~dml_kit.methods.batches.holdout` with ``config.val_fraction`` and ``seed``),
    as the source phases pick it; ``"adapt"``: the support followed by up to 200 queries
    (a classifier's fine-tuning probes the support only: the prefix). The dashboard
    checks the labels against those the loop sends before it uses the images."""
    sets: dict[str, tuple[torch.Tensor, torch.Tensor]] = {
        "adapt": (torch.cat([task.support_x, task.query_x[:200]]),
                  torch.cat([task.support_y, task.query_y[:200]]))}
    if methods.get(method).source_kind is not None and hasattr(source, "x"):
        _, val = holdout(source, config.val_fraction, seed)
        sets["source"] = probe_subset(val, seed=seed)
    return sets


class MethodRunner(_TrainingPanel):
    """Method, loss, regularizer and weight, k, n, epochs -> a training run with a live
    dashboard, then the target accuracy.

    The run uses the class-disjoint split of ``dataset`` (source = the first
    ``source_classes`` source classes, for speed; target tasks from the target part) and
    :func:`dml_kit.methods.run`. Training runs in the click handler, so the notebook's
    stop button interrupts it cleanly (best weights restored, the dashboard marks the
    frame "interrupted"). It runs inside the dashboard's
    :class:`~dml_kit.viz.live.LiveThreadBudget`: one torch thread fewer while a UMAP layout
    is computed beside it, the original count restored afterwards (also after an error).

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
        self.loss.disabled = not uses_loss(m)
        self.regularizer.disabled = not uses_regularizer(m)
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
        t_click = time.perf_counter()
        with _disabled(self.train_button):
            task = data.kshot_task(self.target, self.n_way.value, self.k_shot.value,
                                   seed=self.seed.value, n_query=min(
                                       10, self.target.min_class_size - self.k_shot.value))
            dash = self.dashboard
            dash.reset()
            dash.set_class_names({"source": self.source.class_names,
                                  "adapt": task.class_names})
            dash.set_probe_images(probe_sets(self.method.value, task, self.source,
                                             self.config(), self.seed.value))
            self.status.value = _status(f"training {self.method.value} on "
                                        f"{html.escape(repr(task))} ...")
            self.accuracy.value = _status("training ...")
            # the live thread budget: a core left to UMAP while it works, restored after
            with dash.thread_budget:
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

    While they train, ``dashboard`` (a :class:`~dml_kit.viz.live.LiveDashboard`, its title
    saying which run of the two) shows the learning curves, the norms and a projection of
    the probe embeddings, throttled as every live view is; it never changes a number (the
    runs equal :func:`dml_kit.methods.run` without callbacks). The stop button ends the
    run in progress (best weights restored) and skips the rest: the figures below keep
    the last complete pair.

    Below the histograms, ``projections`` show each run's target embeddings (support and
    queries) in a 2-D PCA; hovering a point shows its image and class in that run's
    ``inspectors`` entry, clicking it its nearest neighbours under that run's embedding
    (:class:`~dml_kit.viz.inspector.PointInspector`), so the two runs' neighbours of the
    same image compare side by side.

    Attributes: the controls, ``train_button``, ``dashboard``, ``figures``
    (``[without, with]`` norm histograms), ``projections`` and ``inspectors`` (same
    order), ``runs`` (the two :class:`~dml_kit.methods.RunResult`), ``cv``
    (``{"without": .., "with": ..}``), ``accuracy`` (same keys), ``embeddings`` (the two
    runs' target embeddings, support then queries), ``interrupted`` (whether the last
    press was stopped).
    """

    def __init__(self, dataset: str | Any = "digits", *, loss: str = "triplet",
                 weight: float = 1.0, n_way: int = 5, k_shot: int = 5, epochs: int = 4,
                 seed: int = 0, batches_per_epoch: int = 20, source_classes: int | None = 60,
                 config: Any = None, max_way: int = 20, max_shot: int = 20,
                 fps: float = 4.0) -> None:
        super().__init__()
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
        self.projections = [_figure_widget(height=380, width=440, title="without SEC"),
                            _figure_widget(height=380, width=440, title="with SEC")]
        self.inspectors = [PointInspector(k=5, neighbour_px=40,
                                          features_label=f"the embedding {key} SEC")
                           for key in ("without", "with")]
        self.dashboard = LiveDashboard(fps=fps, projection="pca", width=440)
        self.runs: list[Any] = []
        self.cv: dict[str, float] = {}
        self.accuracy: dict[str, float] = {}
        self.embeddings: list[torch.Tensor] = []
        self.interrupted = False
        self.children = [
            widgets.HBox([self.loss, self.weight]),
            widgets.HBox([self.n_way, self.k_shot]),
            widgets.HBox([self.epochs, self.seed, self.train_button]),
            self.status, self.dashboard, widgets.HBox(self.figures),
            widgets.HBox([widgets.VBox([fig, insp], layout=widgets.Layout(width="450px"))
                          for fig, insp in zip(self.projections, self.inspectors,
                                               strict=True)]),
        ]
        self.status.value = _status("press 'Train both'")

    def _on_train(self, button: Any = None) -> None:
        task = data.kshot_task(self.target, self.n_way.value, self.k_shot.value,
                               seed=self.seed.value)
        base = self.base_config.replace(
            loss=self.loss.value, source_epochs=self.epochs.value,
            batches_per_epoch=self.batches_per_epoch)
        runs, embeddings = [], []
        dash, seed = self.dashboard, self.seed.value
        dash.reset()
        dash.set_class_names({"source": self.source.class_names, "adapt": task.class_names})
        self.interrupted = False
        with _disabled(self.train_button):
            for i, (label, reg) in enumerate((("without", None), ("with", "sec"))):
                self.status.value = _status(f"training {label} SEC ({i + 1}/2) ...")
                cfg = base.replace(regularizer=reg,
                                   regularizer_weight=float(self.weight.value) if reg else 0.0)
                dash.set_title(f"run {i + 1} of 2: {self.loss.value} {label} SEC")
                dash.set_probe_images(probe_sets("metric", task, self.source, cfg, seed))
                with dash.thread_budget:   # restored after an error too
                    result = methods.run("metric", task, self.source, cfg, seed=seed,
                                         callbacks=[dash])
                if result.interrupted:
                    self.interrupted = True
                    self.status.value = _status(
                        f"interrupted while training {label} SEC: the figures below still "
                        "show the last complete pair; press 'Train both' to train again")
                    return
                assert result.model is not None, "a metric run returns its embedder"
                runs.append(result)
                embeddings.append(embed(result.model,
                                        torch.cat([task.support_x, task.query_x])))
        self.runs, self.embeddings = runs, embeddings
        labels = torch.cat([task.support_y, task.query_y])
        self._draw_projections(task, labels)
        stats = [norm_stats(emb) for emb in embeddings]
        hi = max(s["max"] for s in stats) * 1.05
        for key, fig, result, emb, st in zip(("without", "with"), self.figures, runs,
                                             embeddings, stats, strict=True):
            cv = st["cv"]
            self.cv[key], self.accuracy[key] = cv, float(result.accuracy)
            new = F.norm_histogram(emb, labels, task.class_names, title=(
                f"{key} SEC: CV {cv:.3f}, accuracy {100 * result.accuracy:.1f}%"))
            new.update_layout(xaxis_range=[0, hi], width=440, height=340)
            _replace_figure(fig, new)
        self.status.value = _status(
            f"{self.loss.value}: norm CV {self.cv['without']:.3f} -> {self.cv['with']:.3f} "
            f"with SEC (weight {self.weight.value:g}); accuracy "
            f"{100 * self.accuracy['without']:.1f}% -> {100 * self.accuracy['with']:.1f}%")

    def _draw_projections(self, task: Any, labels: torch.Tensor) -> None:
        """Each run's target embeddings in a 2-D PCA, with its point inspector."""
        images = torch.cat([task.support_x, task.query_x])
        for key, fig, inspector, emb in zip(("without", "with"), self.projections,
                                            self.inspectors, self.embeddings, strict=True):
            new = F.projection_scatter(
                pca_2d(np.asarray(emb, dtype=np.float64)), labels, task.class_names,
                title=f"{key} SEC: target embeddings (PCA)",
                subtitle="hover: image · click: nearest neighbours")
            new.update_layout(width=440, height=380)
            _replace_figure(fig, new)
            inspector.set_points(labels, task.class_names, images=images, features=emb)
            inspector.attach(fig)


