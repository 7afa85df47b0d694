"""One validated dataclass with every knob the six methods read: :class:`MethodConfig`.

The defaults are CPU-sized (a few seconds per method on ``digits``); the presets in
:mod:`dml_kit.experiments` (``classroom``, ``paper``) override them. Field groups:

* model: ``embedding_dim``, ``channels`` (Conv4 width; the paper's nets use 32 filters),
  ``hidden`` (MLP for vectors and 8x8 digits), ``architecture`` (``"conv4"``, the kit's
  net, or one of Adapted Deep Embeddings' nets ``"ade_omniglot"``, ``"ade_mnist"``,
  ``"ade_isolet"``: :data:`dml_kit.models.ARCHITECTURES`);
* source phase (T1): ``source_epochs``, ``source_patience``, ``source_lr``,
  ``val_fraction`` (held out of *each* source class for early stopping, as the paper's
  T1 validation part), ``val_classes`` (score that validation part on at most this many
  random source classes: embedding thousands of images every epoch would cost more than
  the training on a CPU), ``batch_classes`` x ``batch_per_class`` (balanced pair-loss batches),
  ``batch_size`` (classifier batches), ``batches_per_epoch``;
* episodes (protonets): ``episodes_per_epoch``, ``query_per_class`` (the paper: 100/50/5/50
  on MNIST/Isolet/Omniglot/tinyImageNet), ``train_way``/``train_shot`` (``None``: the
  target n and k, as the paper does), and the protonets' own training lengths (the
  paper's code trains them apart from the other source models): ``episode_lr`` (``None``:
  ``source_lr``; the paper: 1e-4, MNIST 1e-3), ``max_episodes`` (``None``:
  ``source_epochs`` x ``episodes_per_epoch``; the paper: 10,000) and ``episode_patience``
  (in episodes, rounded up to whole validations of ``episodes_per_epoch``; ``None``:
  ``source_patience`` validations; the paper on Omniglot: 4,000);
* target phase (T2): ``target_epochs``, ``target_patience``, ``target_lr`` (scratch and
  weight transfer, which learn a new output layer), ``adapt_lr`` (the hybrids, which
  fine-tune a trained embedding; ``None``: ``target_lr``), ``adapt_patience`` (``None``:
  ``target_patience``), ``adapt_episodes_per_epoch``. An epoch over a tiny support is one
  or two steps; scratch and weight transfer recompute Conv-4's batch-norm statistics on
  the support before scoring, so even a few epochs leave chance (see
  :func:`dml_kit.methods.phases.recalibrate_batchnorm`);
* the embedding: ``loss`` (a :mod:`dml_kit.losses` name; histogram by default),
  ``loss_params``, ``regularizer`` (``"sec"``, ``"lp"``, ``"ring"``), ``regularizer_params``,
  ``regularizer_weight``;
* evaluation: ``classify`` (``"1nn"``: cosine nearest support example, the paper's
  histogram rule; ``"prototype"``: nearest class mean), ``head_only`` (weight transfer
  fine-tunes only the new output layer).

Each field declares its phase in its metadata (:data:`PHASES`, :func:`phase_of`,
:func:`fields_of`): source models are keyed by the fields they depend on
(:meth:`dml_kit.methods.Method.source_key`), and :func:`dml_kit.methods.phases.phases`
splits a config into the objects the recipes read. ``device`` and ``progress`` (phase
``run``) do not change results and are left out of :meth:`hash_dict`; the fields added
after config hashes were first stored (:data:`HASHED_WHEN_SET`: ``architecture``,
``episode_lr``, ``max_episodes``, ``episode_patience``) count only when they differ from
their defaults, so every earlier config keeps its hash and its source key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from dml_kit import losses, regularizers
from dml_kit._validation import check_choice, check_float, check_int
from dml_kit.models import ARCHITECTURES

CLASSIFY_RULES = ("1nn", "prototype")


#: The phases a config field can belong to, in run order: the network (``model``), the
#: source phase T1 (``source``; ``episodes`` for the episodic source phase), the target
#: phase T2 (``target``; ``adapt`` for the hybrids' fine-tuning), the embedding
#: objective (``embedding``: its loss part and its regularizer part) and run-time only
#: switches (``run``: not hashed, never change a result).
PHASES = ("model", "source", "episodes", "target", "adapt", "embedding", "run")
#: the phases a source model does not depend on (source models are shared across them)
TARGET_PHASES = ("target", "adapt")


def _f(default: Any, phase: str, part: str | None = None) -> Any:
    """A config field of ``phase`` (``part``: ``"loss"`` or ``"regularizer"`` for the
    embedding objective's fields); mutable defaults become factories."""
    meta = {"phase": phase, "part": part}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class MethodConfig:
    """Settings shared by every method (see the module docstring for the groups); each
    field's metadata names its phase (:func:`phase_of`, :func:`fields_of`)."""

    # model
    embedding_dim: int = _f(64, "model")
    channels: int = _f(32, "model")
    hidden: tuple[int, ...] = _f((256,), "model")
    architecture: str = _f("conv4", "model")
    # source phase
    source_epochs: int = _f(30, "source")
    source_patience: int = _f(5, "source")
    source_lr: float = _f(1e-3, "source")
    val_fraction: float = _f(0.2, "source")
    val_classes: int | None = _f(100, "source")
    batch_classes: int = _f(16, "source")
    batch_per_class: int = _f(8, "source")
    batch_size: int = _f(128, "source")
    batches_per_epoch: int | None = _f(None, "source")
    # episodes (protonets)
    episodes_per_epoch: int = _f(50, "episodes")
    query_per_class: int = _f(5, "episodes")
    train_way: int | None = _f(None, "episodes")
    train_shot: int | None = _f(None, "episodes")
    episode_lr: float | None = _f(None, "episodes")
    max_episodes: int | None = _f(None, "episodes")
    episode_patience: int | None = _f(None, "episodes")
    # target phase
    target_epochs: int = _f(50, "target")
    target_patience: int = _f(10, "target")
    target_lr: float = _f(1e-3, "target")
    adapt_lr: float | None = _f(None, "adapt")
    adapt_patience: int | None = _f(None, "adapt")
    adapt_episodes_per_epoch: int = _f(5, "adapt")
    # embedding loss and regularizer
    loss: str = _f("histogram", "embedding", "loss")
    loss_params: dict[str, Any] = _f({}, "embedding", "loss")
    regularizer: str | None = _f(None, "embedding", "regularizer")
    regularizer_params: dict[str, Any] = _f({}, "embedding", "regularizer")
    regularizer_weight: float = _f(0.0, "embedding", "regularizer")
    # evaluation
    classify: str = _f("1nn", "target")
    head_only: bool = _f(False, "target")
    # run-time only
    device: str | None = _f(None, "run")
    progress: bool = _f(False, "run")

    def __post_init__(self) -> None:
        check_int("embedding_dim", self.embedding_dim, 1)
        check_int("channels", self.channels, 1)
        object.__setattr__(self, "hidden", tuple(check_int(f"hidden[{i}]", h, 1)
                                                 for i, h in enumerate(self.hidden)))
        check_choice("architecture", self.architecture, ARCHITECTURES)
        check_int("source_epochs", self.source_epochs, 1)
        check_int("source_patience", self.source_patience, 1)
        check_float("source_lr", self.source_lr, 0.0, low_inclusive=False)
        check_float("val_fraction", self.val_fraction, 0.0, 0.9, low_inclusive=False)
        if self.val_classes is not None:
            check_int("val_classes", self.val_classes, 2)
        check_int("batch_classes", self.batch_classes, 2)
        check_int("batch_per_class", self.batch_per_class, 2)
        check_int("batch_size", self.batch_size, 1)
        if self.batches_per_epoch is not None:
            check_int("batches_per_epoch", self.batches_per_epoch, 1)
        check_int("episodes_per_epoch", self.episodes_per_epoch, 1)
        check_int("query_per_class", self.query_per_class, 1)
        if self.train_way is not None:
            check_int("train_way", self.train_way, 2)
        if self.train_shot is not None:
            check_int("train_shot", self.train_shot, 1)
        self._check_episode_lengths()
        check_int("target_epochs", self.target_epochs, 1)
        check_int("target_patience", self.target_patience, 1)
        check_float("target_lr", self.target_lr, 0.0, low_inclusive=False)
        if self.adapt_patience is not None:
            check_int("adapt_patience", self.adapt_patience, 1)
        if self.adapt_lr is not None:
            check_float("adapt_lr", self.adapt_lr, 0.0, low_inclusive=False)
        check_int("adapt_episodes_per_epoch", self.adapt_episodes_per_epoch, 1)
        if not isinstance(self.loss, str) or not self.loss:
            raise ValueError(f"loss must be a loss name, got {self.loss!r}")
        check_choice("loss", self.loss, losses.available())
        if self.regularizer is not None:
            check_choice("regularizer", self.regularizer, regularizers.available())
        check_float("regularizer_weight", self.regularizer_weight, 0.0)
        check_choice("classify", self.classify, CLASSIFY_RULES)
        for name in ("loss_params", "regularizer_params"):
            if not isinstance(getattr(self, name), dict):
                raise ValueError(f"{name} must be a dict, got {type(getattr(self, name)).__name__}")
        object.__setattr__(self, "loss_params", dict(self.loss_params))
        object.__setattr__(self, "regularizer_params", dict(self.regularizer_params))

    def _check_episode_lengths(self) -> None:
        """The protonets' optional lengths: positive when set."""
        if self.episode_lr is not None:
            check_float("episode_lr", self.episode_lr, 0.0, low_inclusive=False)
        for name in ("max_episodes", "episode_patience"):
            if getattr(self, name) is not None:
                check_int(name, getattr(self, name), 1)

    def replace(self, **changes: Any) -> MethodConfig:
        """A copy with some fields changed (validated again); unknown names raise ValueError."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise ValueError(f"unknown config field(s) {unknown}; "
                             f"choose from: {', '.join(sorted(names))}")
        return dataclasses.replace(self, **changes)

    def hash_dict(self) -> dict[str, Any]:
        """The fields that change results, as a JSON-friendly dict (for config hashes).

        Fields of :data:`HASHED_WHEN_SET` appear only when they differ from their
        defaults: configs that leave them alone hash as before they existed."""
        d = dataclasses.asdict(self)
        for name in fields_of("run"):
            d.pop(name, None)
        for name, default in HASHED_WHEN_SET.items():
            if d[name] == default:
                d.pop(name)
        d["hidden"] = list(self.hidden)
        return d

    @property
    def regularized(self) -> bool:
        return self.regularizer is not None and self.regularizer_weight > 0


def phase_of(name: str) -> tuple[str, str | None]:
    """``(phase, part)`` of the config field ``name`` (see :data:`PHASES`)."""
    for f in dataclasses.fields(MethodConfig):
        if f.name == name:
            return f.metadata["phase"], f.metadata["part"]
    raise ValueError(f"unknown config field {name!r}")


def fields_of(*phases: str, part: str | None = None) -> tuple[str, ...]:
    """Names of the config fields of the given ``phases`` (and ``part``, when given), in
    declaration order: ``fields_of("target", "adapt")`` are the target-only fields."""
    for phase in phases:
        check_choice("phase", phase, PHASES)
    return tuple(f.name for f in dataclasses.fields(MethodConfig)
                 if f.metadata["phase"] in phases and (part is None or f.metadata["part"] == part))


#: fields that do not change what a run computes (excluded from config hashes)
NOT_HASHED = fields_of("run")

#: fields added after config hashes were first stored -> their defaults; they enter
#: :meth:`MethodConfig.hash_dict` (and source keys) only when set to something else
HASHED_WHEN_SET: dict[str, Any] = {
    name: next(f.default for f in dataclasses.fields(MethodConfig) if f.name == name)
    for name in ("architecture", "episode_lr", "max_episodes", "episode_patience")}
