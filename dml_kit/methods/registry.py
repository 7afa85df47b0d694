"""What a method is (:class:`Method`, with its :class:`SourceTrainer`) and the table of
registered methods (:data:`METHODS`, :func:`register`, :func:`unregister`,
:func:`registered`).

Each method module declares one ``METHOD``; :mod:`dml_kit.methods` registers the six
of Adapted Deep Embeddings (Scott, Ridgeway & Mozer, NeurIPS 2018). Grids, reports,
studies and widgets read everything about a method from its entry: its source model
(kind, what that model depends on), whether it reads ``config.loss`` and the
regularizer, and its target phase.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from dml_kit.data import KShotTask
from dml_kit.data.core import Dataset
from dml_kit.device import seed_everything
from dml_kit.methods.config import MethodConfig, fields_of
from dml_kit.methods.phases import SourcePhase, TargetPhase, phases
from dml_kit.methods.results import CallbacksArg, RunResult, SourceModel


class SourceTrain(Protocol):
    """A source recipe: ``train(source, phase, *, n_way, k_shot, seed, callbacks)``."""

    def __call__(self, source: Dataset, phase: SourcePhase, *, n_way: int, k_shot: int,
                 seed: int, callbacks: CallbacksArg = None) -> SourceModel: ...


class TargetPhaseFn(Protocol):
    """A target phase: ``target(source, task, phase, *, seed, callbacks) -> RunResult``."""

    def __call__(self, source: Any, task: KShotTask, phase: TargetPhase, *,
                 seed: int, callbacks: CallbacksArg = None) -> RunResult: ...
    # ``source`` is the method's SourceModel (None for methods that use no source data)


@dataclass(frozen=True)
class SourceTrainer:
    """How one kind of source model is trained (T1).

    Attributes:
        kind: ``"classifier"``, ``"embedding"``, ``"protonet"`` ...: methods whose
            trainers share a kind (and settings) share a trained source model.
        train: the recipe (see :class:`SourceTrain`).
        uses_loss: reads ``config.loss``/``loss_params``.
        uses_regularizer: reads the regularizer fields.
        episodic: reads the ``episodes`` fields; its model depends on the task's n and k
            unless ``train_way``/``train_shot`` fix them.
        cost: relative training cost; grids start the costliest jobs first.
    """

    kind: str
    train: SourceTrain
    uses_loss: bool = False
    uses_regularizer: bool = False
    episodic: bool = False
    cost: int = 1

    def key_fields(self, config: MethodConfig, n_way: int, k_shot: int) -> dict[str, Any]:
        """The settings a source model of this kind depends on, derived from the config
        fields' phases: the ``model`` and ``source`` fields, the ``episodes`` fields when
        episodic (plus the episode way and shot), the embedding loss and regularizer fields
        when used. Target-phase fields (``target``, ``adapt``) never count."""
        names = set(fields_of("model", "source"))
        if self.episodic:
            names.update(fields_of("episodes"))
        if self.uses_loss:
            names.update(fields_of("embedding", part="loss"))
        if self.uses_regularizer:
            names.update(fields_of("embedding", part="regularizer"))
        fields = {k: v for k, v in config.hash_dict().items() if k in names}
        if self.episodic:
            fields["way"] = config.train_way or n_way
            fields["shot"] = config.train_shot or k_shot
        return fields

    def __call__(self, source: Dataset, config: MethodConfig, *, n_way: int, k_shot: int,
                 seed: int, callbacks: CallbacksArg = None) -> SourceModel:
        """Seed everything, then train on ``source`` with ``config``'s source phase."""
        seed_everything(seed)
        return self.train(source, phases(config).source, n_way=n_way, k_shot=k_shot,
                          seed=seed, callbacks=callbacks)


@dataclass(frozen=True)
class Method:
    """A registry entry: everything the kit knows about a method.

    Attributes:
        name: registry name.
        description: one line.
        target: the target phase (see :class:`TargetPhaseFn`).
        source: how its source model is trained (``None``: no source data).
        adapted: fine-tunes an embedding on the target support (the hybrids).
        embedding: classifies by distances in an embedding (metric, protonet, hybrids).
        parent: for a hybrid, the method it adapts.
        uses_loss: trains with ``config.loss`` (the embedding loss a grid compares).
        uses_regularizer: adds ``config.regularizer`` to its loss.
        loss: the loss it trains with when it does not read ``config.loss``
            (``"cross_entropy"``, ``"prototypical"``, ``"none"``).
    """

    name: str
    description: str
    target: TargetPhaseFn
    source: SourceTrainer | None = None
    adapted: bool = False
    embedding: bool = False
    parent: str | None = None
    uses_loss: bool = False
    uses_regularizer: bool = False
    loss: str = "none"

    @property
    def source_kind(self) -> str | None:
        """``None`` (no source data) or the kind of its source model."""
        return None if self.source is None else self.source.kind

    @property
    def source_cost(self) -> int:
        """Relative cost of its source model (0 without one); grids run costly jobs first."""
        return 0 if self.source is None else self.source.cost

    def loss_name(self, config: MethodConfig) -> str:
        """The loss this method trains with under ``config``: ``config.loss`` when it reads
        it, else its fixed :attr:`loss`."""
        return config.loss if self.uses_loss else self.loss

    def source_key(self, config: MethodConfig, n_way: int, k_shot: int) -> str | None:
        """A string naming the source model this method needs for an (n, k) task under
        ``config`` (``None`` without one). Methods and tasks with equal keys can share
        one trained source model: classifiers and metric embeddings do not depend on the
        task; protonets are trained with the target's n-way k-shot episodes (unless
        ``train_way``/``train_shot`` fix them). See :meth:`SourceTrainer.key_fields`."""
        if self.source is None:
            return None
        fields = self.source.key_fields(config, n_way, k_shot)
        return self.source.kind + ":" + json.dumps(fields, sort_keys=True, default=str)

    def train_source(self, source: Dataset, config: MethodConfig, *, n_way: int, k_shot: int,
                     seed: int, callbacks: CallbacksArg = None) -> SourceModel:
        """Train the source model this method needs (see :attr:`source`)."""
        if self.source is None:
            raise ValueError(f"method {self.name!r} uses no source data")
        return self.source(source, config, n_way=n_way, k_shot=k_shot, seed=seed,
                           callbacks=callbacks)

    def evaluate(self, source: SourceModel | None, task: KShotTask, config: MethodConfig, *,
                 seed: int, callbacks: CallbacksArg = None) -> RunResult:
        """The target phase under ``config`` (:attr:`target` with its
        :class:`~dml_kit.methods.phases.TargetPhase`)."""
        return self.target(source, task, phases(config).target, seed=seed,
                           callbacks=callbacks)


#: every registered method by name, in registration order (the paper's order first)
METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add ``method`` to :data:`METHODS` (grids, reports and :func:`run` then know it).
    A name already taken raises ``ValueError``; returns ``method``."""
    if not isinstance(method, Method):
        raise ValueError(f"method must be a Method, got {type(method).__name__}")
    if method.name in METHODS:
        raise ValueError(f"method {method.name!r} is already registered")
    METHODS[method.name] = method
    return method


def unregister(name: str) -> Method:
    """Remove the method registered as ``name``; returns its entry."""
    return METHODS.pop(get(name).name)


@contextmanager
def registered(method: Method) -> Iterator[Method]:
    """``with registered(m): ...``: ``m`` is registered inside the block only."""
    register(method)
    try:
        yield method
    finally:
        METHODS.pop(method.name, None)


def get(name: str) -> Method:
    """The registry entry of ``name``; unknown names raise ``ValueError`` listing the choices."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of: {', '.join(METHODS)}")
    return METHODS[name]


def available() -> list[str]:
    """Method names, in registration order (the paper's: baselines, DML, few-shot,
    hybrids)."""
    return list(METHODS)


def source_trainers() -> dict[str, SourceTrainer]:
    """The source model kinds of the registered methods, each with its trainer."""
    out: dict[str, SourceTrainer] = {}
    for m in METHODS.values():
        if m.source is not None:
            out.setdefault(m.source.kind, m.source)
    return out


__all__ = ["METHODS", "Method", "SourceTrain", "SourceTrainer", "TargetPhaseFn", "available",
           "get", "register", "registered", "source_trainers", "unregister"]

