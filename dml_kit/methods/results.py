"""What the methods return: :class:`RunResult` (one target task) and :class:`SourceModel`
(a trained source model, shareable across tasks); :data:`K1_NOTE`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import nn

from dml_kit.callbacks import Callback, CallbackList
from dml_kit.training import TrainResult

if TYPE_CHECKING:
    from dml_kit.methods.config import MethodConfig

#: what ``callbacks=`` accepts everywhere (see :mod:`dml_kit.callbacks`)
CallbacksArg = Callback | list[Any] | tuple[Any, ...] | CallbackList | None
#: what a hybrid says when k = 1 leaves nothing to adapt
K1_NOTE = "k=1: no adaptation (as in the paper)"


@dataclass
class SourceModel:
    """A model trained on the source classes (T1), shareable across target tasks.

    Attributes:
        kind: ``"classifier"`` (weight transfer), ``"embedding"`` (pair/proxy loss) or
            ``"protonet"`` (episodic).
        model: the trained module (a :class:`~dml_kit.models.Classifier` for classifiers,
            an embedder otherwise). Target phases copy it before fine-tuning, so one
            source model serves every k, n and the adapted variant.
        train: the source phase's :class:`~dml_kit.training.TrainResult`.
        val_score: best source validation score (accuracy, leave-one-out Recall@1 or
            prototype accuracy).
        seconds: source training time.
        info: what it was trained with (loss, classes, episode shape ...).
        config: the :class:`~dml_kit.methods.MethodConfig` it was trained with, and
        seed, n_way, k_shot: the seed and the task shape it was trained for (set by
            :func:`dml_kit.methods.train_source` and :func:`dml_kit.methods.run`; what
            :func:`dml_kit.methods.save_model` records).
        fingerprint: content fingerprint of the source data, when known (the cache and
            :func:`dml_kit.methods.load_model` set it).
    """

    kind: str
    model: nn.Module
    train: TrainResult
    val_score: float | None
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)
    config: MethodConfig | None = field(default=None, repr=False)
    seed: int | None = None
    n_way: int | None = None
    k_shot: int | None = None
    fingerprint: str | None = None

    @property
    def interrupted(self) -> bool:
        return self.train.interrupted

    def source_metrics(self) -> dict[str, float]:
        """The numbers every result of a method with a source model reports about it."""
        return {"source_val_score": self.val_score or 0.0, "source_epochs": self.train.epochs}


@dataclass
class RunResult:
    """What every method returns.

    Attributes:
        method: method name.
        accuracy: target query accuracy (the paper's score).
        n_way, k_shot, seed: the task.
        metrics: extra numbers (``acc_1nn``, ``acc_prototype``, ``norm_mean``, ``norm_cv``,
            source/adapt epochs, ...).
        notes: human-readable remarks, e.g. ``"k=1: no adaptation (as in the paper)"``.
        source_seconds: time spent training the source model (0 when it was reused).
        target_seconds: time spent in the target phase (fine-tuning and scoring).
        interrupted: a KeyboardInterrupt ended a phase early (best weights were used).
        model: the final model (not stored in results databases).
        source: the source model used, for reuse across tasks.
    """

    method: str
    accuracy: float
    n_way: int
    k_shot: int
    seed: int
    metrics: dict[str, float] = field(default_factory=dict)
    notes: str = ""
    source_seconds: float = 0.0
    target_seconds: float = 0.0
    interrupted: bool = False
    model: nn.Module | None = field(default=None, repr=False)
    source: SourceModel | None = field(default=None, repr=False)

    @property
    def train_seconds(self) -> float:
        return self.source_seconds + self.target_seconds


__all__ = ["K1_NOTE", "CallbacksArg", "RunResult", "SourceModel"]
