"""The callback protocol that training emits (what live plots and learning curves listen to).

Every method in :mod:`dml_kit.methods` trains through the one loop
:func:`dml_kit.training.fit`, and that loop talks to the outside world only through the
events defined here. A callback is any object with some of these methods (all optional;
subclass :class:`Callback` to get no-op defaults):

``on_train_begin(event: TrainBegin)``
    once, before the first step: the phase, the planned number of epochs, the probe labels.
``on_step(event: StepEvent)``
    after every optimizer step: ``phase``, ``epoch``, global ``step``, the batch ``loss``.
    When the callback sets ``probe_every = m > 0``, every m-th step event also carries
    ``probe_embeddings`` (and ``probe_labels``), for frame-by-frame animations.
``on_epoch(event: EpochEvent)``
    after every epoch: mean training ``loss``, validation ``score`` (accuracy-like, higher
    is better; ``None`` when the run has no validation), ``best_score``, ``improved``,
    and - only when some callback asked for them - ``norms`` (:func:`dml_kit.metrics.norm_stats`
    of the probe embeddings) and ``probe_embeddings``/``probe_labels``.
``on_train_end(event: TrainEnd)``
    once, after the best weights were restored (also after an interrupt): the
    :class:`dml_kit.training.TrainResult`.

**Phases.** ``"source"`` while a model learns the source classes (T1 in Adapted Deep
Embeddings), ``"adapt"`` while it is fine-tuned on the target support set (T2). One
method run may emit both, in that order; each phase is a separate ``on_train_begin`` ...
``on_train_end`` bracket.

**Cheap when nobody listens.** The loop embeds the probe set only when a callback has
``wants_probe = True`` (embeddings) or ``wants_norms = True`` (norm statistics), and
per step only for callbacks with ``probe_every > 0``. A run without callbacks never
embeds the probe set. Callbacks run in the training thread: keep them quick (a live
dashboard should throttle its redraws, e.g. redraw at most a few times per second).

**The probe set** is a fixed, small labelled subset chosen by the method (a few examples
of a few source classes during ``"source"``, the target support and some queries during
``"adapt"``), the same at every event of a phase, so successive embeddings can be drawn
as an animation. Embeddings are CPU float tensors ``(P, D)`` computed in eval mode and
without gradients; labels are ``(P,)`` int64.

Exceptions raised by a callback propagate (a broken plot should be noticed), except
``KeyboardInterrupt`` handling, which is the loop's (see :func:`dml_kit.training.fit`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:  # pragma: no cover
    from dml_kit.training import TrainResult

PHASES = ("source", "adapt")


@dataclass(frozen=True)
class TrainBegin:
    """Emitted once per phase before the first step.

    Attributes:
        phase: ``"source"`` or ``"adapt"``.
        max_epochs: the planned number of epochs (early stopping may end sooner).
        method: name of the method that trains (``""`` when called directly).
        probe_labels: labels of the probe set, or ``None`` when the run has none.
        probe_inputs: the probe set's inputs (images or feature vectors, on the CPU), or
            ``None``: what a live view shows when a projected point is hovered.
    """

    phase: str
    max_epochs: int
    method: str = ""
    probe_labels: torch.Tensor | None = None
    probe_inputs: torch.Tensor | None = None


@dataclass(frozen=True)
class StepEvent:
    """Emitted after every optimizer step.

    Attributes:
        phase: ``"source"`` or ``"adapt"``.
        epoch: 1-based epoch the step belongs to.
        step: 1-based global step index within this phase.
        loss: the batch loss (a float, already detached).
        probe_embeddings: ``(P, D)`` probe embeddings, only on the steps a callback with
            ``probe_every`` asked for; else ``None``.
        probe_labels: ``(P,)`` labels matching ``probe_embeddings``, or ``None``.
    """

    phase: str
    epoch: int
    step: int
    loss: float
    probe_embeddings: torch.Tensor | None = None
    probe_labels: torch.Tensor | None = None


@dataclass(frozen=True)
class EpochEvent:
    """Emitted after every epoch (after validation).

    Attributes:
        phase: ``"source"`` or ``"adapt"``.
        epoch: 1-based epoch index.
        step: global step count at the end of the epoch.
        loss: mean training loss over the epoch's steps.
        score: validation score (higher is better), or ``None`` without validation.
        best_score: best validation score so far (``None`` without validation).
        improved: whether this epoch set a new best (its weights are the ones kept).
        norms: :func:`dml_kit.metrics.norm_stats` of the probe embeddings
            (``mean, std, cv, min, max``), when a callback wants norms or probes; else ``None``.
        probe_embeddings: ``(P, D)`` probe embeddings when a callback wants them; else ``None``.
        probe_labels: ``(P,)`` labels matching ``probe_embeddings``, or ``None``.
        seconds: wall-clock seconds since the phase began.
    """

    phase: str
    epoch: int
    step: int
    loss: float
    score: float | None
    best_score: float | None
    improved: bool
    norms: dict[str, float] | None = None
    probe_embeddings: torch.Tensor | None = None
    probe_labels: torch.Tensor | None = None
    seconds: float = 0.0


@dataclass(frozen=True)
class TrainEnd:
    """Emitted once per phase after the best weights were restored.

    Attributes:
        phase: ``"source"`` or ``"adapt"``.
        result: the :class:`dml_kit.training.TrainResult` (``interrupted`` tells an
            interrupted run apart).
    """

    phase: str
    result: TrainResult


@dataclass(frozen=True)
class ModelLoaded:
    """Emitted instead of a training's events when a source model comes from the model
    cache (:func:`dml_kit.methods.persist.cached_train_source`): nothing trains, so a live
    view can say so instead of waiting.

    Attributes:
        kind: the source model's kind (``"embedding"``, ``"classifier"``, ``"protonet"``).
        trained_seconds: how long the cached model took to train when it was saved.
        path: the cache file it was loaded from.
    """

    kind: str
    trained_seconds: float | None
    path: str


class Callback:
    """Base class with no-op hooks; override the ones you need.

    Class attributes that tell the loop what to compute for you:
        wants_probe: embed the probe set at each epoch end (``EpochEvent.probe_embeddings``).
        wants_norms: compute norm statistics of the probe embeddings at each epoch end.
        probe_every: if ``> 0``, also embed the probe set every that many steps
            (``StepEvent.probe_embeddings``); mind the cost.
    """

    wants_probe: bool = False
    wants_norms: bool = False
    probe_every: int = 0

    def on_train_begin(self, event: TrainBegin) -> None:  # noqa: B027 - optional hook
        """Called once per phase before the first step."""

    def on_step(self, event: StepEvent) -> None:  # noqa: B027 - optional hook
        """Called after every optimizer step."""

    def on_epoch(self, event: EpochEvent) -> None:  # noqa: B027 - optional hook
        """Called after every epoch."""

    def on_train_end(self, event: TrainEnd) -> None:  # noqa: B027 - optional hook
        """Called once per phase at the end (also after an interrupt)."""

    def on_model_loaded(self, event: ModelLoaded) -> None:  # noqa: B027 - optional hook
        """Called instead of a training's events when its model came from the cache."""


class CallbackList:
    """Fans events out to several callbacks and answers what they want computed.

    Objects that do not subclass :class:`Callback` work too (duck typing): missing hooks
    are skipped and missing ``wants_*`` attributes read as ``False``/``0``.
    """

    def __init__(self, callbacks: Callback | Iterable[Any] | None = None) -> None:
        if callbacks is None:
            self.callbacks: list[Any] = []
        elif isinstance(callbacks, CallbackList):
            self.callbacks = list(callbacks.callbacks)
        elif isinstance(callbacks, Iterable):
            self.callbacks = list(callbacks)
        else:
            self.callbacks = [callbacks]
        for cb in self.callbacks:
            if not any(hasattr(cb, h) for h in
                       ("on_train_begin", "on_step", "on_epoch", "on_train_end")):
                raise ValueError(f"callbacks must have on_step/on_epoch/... methods; "
                                 f"got {type(cb).__name__}")

    def __len__(self) -> int:
        return len(self.callbacks)

    @property
    def wants_probe(self) -> bool:
        return any(getattr(cb, "wants_probe", False) for cb in self.callbacks)

    @property
    def wants_norms(self) -> bool:
        return any(getattr(cb, "wants_norms", False) for cb in self.callbacks)

    def probe_due(self, step: int) -> bool:
        """Whether some callback wants probe embeddings at this (1-based) step."""
        for cb in self.callbacks:
            every = int(getattr(cb, "probe_every", 0) or 0)
            if every > 0 and step % every == 0:
                return True
        return False

    def _emit(self, hook: str, event: Any) -> None:
        for cb in self.callbacks:
            fn = getattr(cb, hook, None)
            if fn is not None:
                fn(event)

    def on_train_begin(self, event: TrainBegin) -> None:
        self._emit("on_train_begin", event)

    def on_step(self, event: StepEvent) -> None:
        self._emit("on_step", event)

    def on_epoch(self, event: EpochEvent) -> None:
        self._emit("on_epoch", event)

    def on_train_end(self, event: TrainEnd) -> None:
        self._emit("on_train_end", event)

    def on_model_loaded(self, event: ModelLoaded) -> None:
        self._emit("on_model_loaded", event)


@dataclass
class HistoryCallback(Callback):
    """Records every event into plain lists: for tests and learning-curve plots.

    ``steps`` and ``epochs`` hold one dict per event (``phase, epoch, step, loss`` and, for
    epochs, ``score, best_score, improved, seconds`` and the norm statistics flattened as
    ``norm_mean, norm_std, norm_cv, norm_min, norm_max``); ``probes`` holds
    ``(phase, epoch, embeddings, labels)`` tuples when ``keep_probes=True``, and
    ``probe_inputs[phase]`` the probe set's inputs (for images beside a replay).
    ``pandas.DataFrame(history.epochs)`` gives a learning-curve table.

    Args:
        keep_probes: ask the loop for probe embeddings at each epoch end and keep them.
        keep_norms: ask for norm statistics at each epoch end.
    """

    keep_probes: bool = False
    keep_norms: bool = True
    steps: list[dict[str, Any]] = field(default_factory=list)
    epochs: list[dict[str, Any]] = field(default_factory=list)
    probes: list[tuple[str, int, torch.Tensor, torch.Tensor]] = field(default_factory=list)
    phases: list[str] = field(default_factory=list)
    results: list[TrainResult] = field(default_factory=list)
    probe_inputs: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # instance attributes shadow the class defaults read by the loop
        self.wants_probe = bool(self.keep_probes)
        self.wants_norms = bool(self.keep_norms)

    def on_train_begin(self, event: TrainBegin) -> None:
        self.phases.append(event.phase)
        if event.probe_inputs is not None:
            self.probe_inputs[event.phase] = event.probe_inputs

    def on_step(self, event: StepEvent) -> None:
        self.steps.append({"phase": event.phase, "epoch": event.epoch, "step": event.step,
                           "loss": event.loss})

    def on_epoch(self, event: EpochEvent) -> None:
        row: dict[str, Any] = {"phase": event.phase, "epoch": event.epoch, "step": event.step,
                               "loss": event.loss, "score": event.score,
                               "best_score": event.best_score, "improved": event.improved,
                               "seconds": event.seconds}
        if event.norms is not None:
            row.update({f"norm_{k}": v for k, v in event.norms.items()})
        self.epochs.append(row)
        if self.keep_probes and event.probe_embeddings is not None:
            assert event.probe_labels is not None
            self.probes.append((event.phase, event.epoch, event.probe_embeddings,
                                event.probe_labels))

    def on_train_end(self, event: TrainEnd) -> None:
        self.results.append(event.result)

    def losses(self, phase: str | None = None) -> list[float]:
        """Per-step losses, optionally of one phase."""
        return [s["loss"] for s in self.steps if phase is None or s["phase"] == phase]

    def scores(self, phase: str | None = None) -> list[float | None]:
        """Per-epoch validation scores, optionally of one phase."""
        return [e["score"] for e in self.epochs if phase is None or e["phase"] == phase]


def as_callback_list(callbacks: Callback | Sequence[Any] | CallbackList | None) -> CallbackList:
    """Normalise ``None``, one callback, a list or a :class:`CallbackList`."""
    if isinstance(callbacks, CallbackList):
        return callbacks
    return CallbackList(callbacks)
