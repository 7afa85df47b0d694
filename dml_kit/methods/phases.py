"""The phases of a method run and the steps several recipes share.

:func:`phases` turns a :class:`~dml_kit.methods.config.MethodConfig` into the phase
objects the recipes consume, once per run: a :class:`SourcePhase` (T1: the network, a
:class:`~dml_kit.training.TrainConfig`, batch and episode specs, the validation holdout,
the embedding :class:`Objective`) and a :class:`TargetPhase` (T2: the classifiers' and
the hybrids' :class:`~dml_kit.training.TrainConfig`, the batch spec, the objective, the
classification rule). The shared steps below are the Adapted Deep Embeddings protocol
(Scott, Ridgeway & Mozer, NeurIPS 2018): :func:`fit_source`, :func:`train_classifier`
(scratch and weight transfer, with :func:`recalibrate_batchnorm`),
:func:`adapt_embedder` and :func:`unadapted` (the hybrids), :func:`score_embedding`
(metric and protonet).
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from dml_kit import losses, metrics, models, regularizers
from dml_kit.data import KShotTask
from dml_kit.data.core import Dataset
from dml_kit.device import seed_everything
from dml_kit.methods.batches import (
    BatchSpec,
    EpisodeSpec,
    epoch_seed,
    holdout,
    probe_subset,
    scoring_classes,
    shuffled_batches,
)
from dml_kit.methods.config import MethodConfig
from dml_kit.methods.results import K1_NOTE, CallbacksArg, RunResult, SourceModel
from dml_kit.methods.scores import (
    classifier_accuracy,
    classify_accuracy,
    embedding_metrics,
    has_val,
    loo_accuracy,
)
from dml_kit.models import Classifier
from dml_kit.training import TrainConfig, TrainResult, fit


# ---- phase objects ----------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    """The network: ``embedding_dim``, Conv4 ``channels``, MLP ``hidden`` widths and the
    ``architecture`` (:data:`dml_kit.models.ARCHITECTURES`)."""

    embedding_dim: int
    channels: int
    hidden: tuple[int, ...]
    architecture: str = "conv4"

    def build(self, input_shape: tuple[int, ...], role: str | None = None) -> nn.Module:
        """The embedder for inputs of ``input_shape`` (:func:`dml_kit.models.for_shape`).

        ``role`` is what the calling method's net is for (``"metric"``, ``"protonet"``,
        ``"classifier"``: :data:`dml_kit.models.NET_ROLES`); the method passes it, and the
        architecture decides what it changes. With ``conv4`` nothing: outputs are *not*
        L2-normalised (cosine losses normalise inside, and norm regularizers (SEC) need
        the raw norms) and batch norm is everywhere. With Adapted Deep Embeddings' nets
        the metric (histogram-loss) outputs are L2-normalised and batch norm is where the
        official code has it (../shared/PAPERS.md section 1)."""
        return models.for_shape(input_shape, self.embedding_dim, channels=self.channels,
                                hidden=self.hidden, architecture=self.architecture,
                                role=role)


@dataclass(frozen=True)
class Objective:
    """The embedding objective ``L = L_loss + weight * R`` (Zhang et al. 2020 for SEC):
    ``loss`` with ``loss_params`` (a :mod:`dml_kit.losses` name) and the optional norm
    ``regularizer`` (a :mod:`dml_kit.regularizers` name), on embeddings of
    ``embedding_dim``."""

    loss: str
    loss_params: dict[str, Any] = field(default_factory=dict)
    regularizer: str | None = None
    regularizer_params: dict[str, Any] = field(default_factory=dict)
    regularizer_weight: float = 0.0
    embedding_dim: int = 64

    @property
    def regularized(self) -> bool:
        return self.regularizer is not None and self.regularizer_weight > 0

    def regularize(self, loss: nn.Module) -> nn.Module:
        """``loss`` wrapped as ``loss + weight * R`` (:func:`dml_kit.losses.with_regularizer`)
        when a regularizer is on; ``loss`` itself otherwise."""
        if not self.regularized:
            return loss
        assert self.regularizer is not None
        reg = regularizers.get(self.regularizer, **self.regularizer_params)
        return losses.with_regularizer(loss, reg, self.regularizer_weight)

    def build(self, num_classes: int) -> nn.Module:
        """``loss(embeddings, labels)``: the configured loss from the registry (proxy and
        classification losses get ``num_classes`` and ``embedding_dim``), regularized."""
        params = dict(self.loss_params)
        spec = losses.spec(self.loss)
        if spec.needs_num_classes:
            params.setdefault("num_classes", num_classes)
        if spec.needs_embedding_dim:
            params.setdefault("embedding_dim", self.embedding_dim)
        return self.regularize(losses.get(self.loss, **params))

    def build_episodic(self) -> nn.Module:
        """``loss(embeddings, support_y, query_y)``: the prototypical loss of an episode
        (:class:`dml_kit.losses.EpisodeLoss`, Snell et al. 2017), regularized."""
        return self.regularize(losses.EpisodeLoss())


@dataclass(frozen=True)
class SourcePhase:
    """Everything the source phase (T1) reads.

    Attributes:
        model: the network to build.
        train: epochs, learning rate and patience (``source_*``).
        batches: classifier and balanced pair-loss batches.
        episodes: the protonets' source episodes.
        episodic_train: the protonets' epochs (validations), learning rate and patience
            (``max_episodes``, ``episode_lr``, ``episode_patience``, each falling back to
            the ``source_`` value).
        val_fraction, val_classes: the held-out part of each source class and how many
            classes score it.
        objective: the embedding loss and regularizer.
        device, progress: run-time switches (do not change results).
    """

    model: ModelSpec
    train: TrainConfig
    batches: BatchSpec
    episodes: EpisodeSpec
    val_fraction: float
    val_classes: int | None
    objective: Objective
    device: str | None = None
    progress: bool = False
    episodic_train: TrainConfig | None = None

    @property
    def episodic(self) -> TrainConfig:
        """The protonets' source training (``train`` unless the config sets its own)."""
        return self.episodic_train or self.train


@dataclass(frozen=True)
class TargetPhase:
    """Everything the target phase (T2) reads.

    Attributes:
        model: the network (scratch builds one).
        train: the classifiers' fine-tuning (``target_*``).
        adapt: the hybrids' fine-tuning (``adapt_lr``/``adapt_patience``, each falling
            back to the ``target_`` value).
        batches: classifier batches and the hybrids' balanced support batches.
        adapt_episodes: support episodes per epoch of ``adapted_protonet``.
        objective: the embedding loss and regularizer the hybrids adapt with.
        classify: ``"1nn"`` or ``"prototype"``.
        head_only: weight transfer fine-tunes its new output layer only.
        device, progress: run-time switches (do not change results).
    """

    model: ModelSpec
    train: TrainConfig
    adapt: TrainConfig
    batches: BatchSpec
    adapt_episodes: int
    objective: Objective
    classify: str = "1nn"
    head_only: bool = False
    device: str | None = None
    progress: bool = False


@dataclass(frozen=True)
class Phases:
    """A run's phases, made once from its config by :func:`phases`."""

    source: SourcePhase
    target: TargetPhase


def phases(config: MethodConfig) -> Phases:
    """Split ``config`` into the run's :class:`SourcePhase` and :class:`TargetPhase`."""
    c = config
    model = ModelSpec(c.embedding_dim, c.channels, c.hidden, c.architecture)
    batches = BatchSpec(c.batch_size, c.batch_classes, c.batch_per_class, c.batches_per_epoch)
    objective = Objective(c.loss, dict(c.loss_params), c.regularizer,
                          dict(c.regularizer_params), c.regularizer_weight, c.embedding_dim)
    source = SourcePhase(
        model=model,
        train=TrainConfig(max_epochs=c.source_epochs, lr=c.source_lr, patience=c.source_patience),
        batches=batches,
        episodes=EpisodeSpec(c.episodes_per_epoch, c.query_per_class, c.train_way, c.train_shot),
        val_fraction=c.val_fraction, val_classes=c.val_classes, objective=objective,
        device=c.device, progress=c.progress, episodic_train=episodic_train(c))
    target = TargetPhase(
        model=model,
        train=TrainConfig(max_epochs=c.target_epochs, lr=c.target_lr, patience=c.target_patience),
        adapt=TrainConfig(max_epochs=c.target_epochs,
                          lr=c.adapt_lr if c.adapt_lr is not None else c.target_lr,
                          patience=c.adapt_patience or c.target_patience),
        batches=batches, adapt_episodes=c.adapt_episodes_per_epoch, objective=objective,
        classify=c.classify, head_only=c.head_only, device=c.device, progress=c.progress)
    return Phases(source, target)


def episodic_train(c: MethodConfig) -> TrainConfig | None:
    """The protonets' own source :class:`~dml_kit.training.TrainConfig` when the config
    sets ``episode_lr``, ``max_episodes`` or ``episode_patience`` (``None`` otherwise).

    An epoch is ``episodes_per_epoch`` episodes followed by one validation (the paper:
    validated every 200 episodes), so ``max_episodes`` becomes
    ``ceil(max_episodes / episodes_per_epoch)`` epochs (and at most ``max_episodes``
    steps) and ``episode_patience`` episodes ``ceil(episode_patience /
    episodes_per_epoch)`` validations (Omniglot in the paper: 4,000 / 200 = 20)."""
    if c.episode_lr is None and c.max_episodes is None and c.episode_patience is None:
        return None
    per = c.episodes_per_epoch
    return TrainConfig(
        max_epochs=(c.source_epochs if c.max_episodes is None
                    else math.ceil(c.max_episodes / per)),
        lr=c.source_lr if c.episode_lr is None else c.episode_lr,
        patience=(c.source_patience if c.episode_patience is None
                  else math.ceil(c.episode_patience / per)),
        max_steps=c.max_episodes)


# ---- batch norm -----------------------------------------------------------------------
#: at most this many examples per forward pass when batch-norm statistics are recomputed
RECALIBRATION_BATCH = 1024


def recalibrate_batchnorm(model: nn.Module, x: torch.Tensor,
                          batch_size: int = RECALIBRATION_BATCH) -> int:
    """Recompute every batch-norm layer's running statistics from ``x`` (the support set).

    In eval mode a batch-norm layer normalises channel ``c`` with its running estimates,
    ``y = gamma_c (h_c - mu_c) / sqrt(sigma2_c + eps) + beta_c``. Training updates them
    by an exponential average, ``mu <- (1 - m) mu + m * mean_batch(h)`` with
    ``m = 0.1``, so after the few steps of a k-shot target phase (an epoch over a
    5 x 5 support is one step) ``mu`` and ``sigma2`` are still near their initial 0 and 1
    (scratch) or the source statistics (weight transfer), while training normalised
    with the support's batch statistics: eval-mode accuracy then sits near chance. Here
    the statistics are reset and re-estimated with ``momentum=None`` (PyTorch's
    cumulative average) from forward passes over ``x`` in train mode, without gradients:
    with ``len(x) <= batch_size`` one pass, so ``mu_c`` is exactly the per-channel mean
    of the layer's input over ``x`` (over examples and pixels) and ``sigma2_c`` its
    unbiased variance; larger ``x`` is cut into near-equal chunks whose statistics are
    averaged. Momentum and train/eval flags are restored; other layers stay as they are
    (the kit's embedders have no dropout).

    Returns the number of batch-norm layers recomputed (0: nothing to do)."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
             and m.track_running_stats]
    if not norms or len(x) == 0:
        return 0
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    chunks = math.ceil(len(x) / max(1, batch_size))
    saved = [(m.momentum, m.training) for m in norms]
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
            m.train()
        with torch.no_grad():
            for part in torch.tensor_split(x, chunks):
                model(part.to(device))
    finally:
        for m, (momentum, training) in zip(norms, saved, strict=True):
            m.momentum = momentum
            m.train(training)
    return len(norms)


# ---- source phase -----------------------------------------------------------------------
def cross_entropy_step(model: nn.Module) -> Callable[[Any], torch.Tensor]:
    """``step_loss`` for classifiers: batch ``(x, y)`` -> cross-entropy of ``model(x)``."""
    def step(batch: Any) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(model(x), y)
    return step


def embedding_step(embedder: nn.Module, loss_fn: nn.Module) -> Callable[[Any], torch.Tensor]:
    """``step_loss`` for embeddings: batch ``(x, *targets)`` -> ``loss_fn(embedder(x),
    *targets)`` (labels for pair and proxy losses, support and query labels for episodes)."""
    def step(batch: Any) -> torch.Tensor:
        x, *targets = batch
        return loss_fn(embedder(x), *targets)
    return step


def source_parts(source: Dataset, phase: SourcePhase,
                 seed: int) -> tuple[Dataset, Dataset, torch.Tensor]:
    """The start of every source phase: hold out ``val_fraction`` of each class
    (:func:`~dml_kit.methods.batches.holdout`) and pick the classes that score it
    (:func:`~dml_kit.methods.batches.scoring_classes`).

    Returns ``(train, val, scoring class ids)``."""
    train, val = holdout(source, phase.val_fraction, seed)
    return train, val, scoring_classes(val, phase.val_classes, seed)


def fit_source(kind: str, model: nn.Module, batches: Callable[[int], Iterable[Any]],
               step_loss: Callable[[Any], torch.Tensor], phase: SourcePhase, *,
               validate: Callable[[], float], val: Dataset, start: float, method: str,
               seed: int, callbacks: CallbacksArg = None,
               parameters: Iterable[nn.Parameter] | None = None,
               embedder: nn.Module | None = None,
               info: dict[str, Any] | None = None,
               train: TrainConfig | None = None) -> SourceModel:
    """Train a source model (T1) with ``train`` (default ``phase.train``) and early
    stopping on ``validate``, probing a few held-out ``val`` examples; wrap it as a
    :class:`SourceModel` of ``kind`` whose ``seconds`` count from ``start``."""
    result = fit(model, batches, step_loss, train or phase.train, validate=validate,
                 parameters=parameters, callbacks=callbacks,
                 probe=probe_subset(val, seed=seed), embedder=embedder, phase="source",
                 method=method, seed=seed, device=phase.device, progress=phase.progress)
    return SourceModel(kind=kind, model=model, train=result, val_score=result.best_score,
                       seconds=time.perf_counter() - start,
                       info={"input_shape": tuple(val.input_shape), **(info or {})})


# ---- target phase -----------------------------------------------------------------------
def train_classifier(method: str, build: Callable[[], Classifier], task: KShotTask,
                     phase: TargetPhase, *, seed: int, callbacks: CallbacksArg = None,
                     source: SourceModel | None = None, head_only: bool = False) -> RunResult:
    """The classifiers' target phase (scratch, weight transfer): seed, ``build()`` the
    :class:`~dml_kit.models.Classifier`, train it with cross-entropy on the support
    (:func:`fine_tune_classifier`; only the output layer with ``head_only``) and score
    the queries."""
    start = time.perf_counter()
    seed_everything(seed)  # the classifier's initial weights depend on it
    model = build()
    params = list(model.head.parameters()) if head_only else list(model.parameters())
    train, acc = fine_tune_classifier(model, task, phase, seed=seed, method=method,
                                      callbacks=callbacks, parameters=params)
    extra = source.source_metrics() if source is not None else {}
    extra.update({"target_epochs": train.epochs, "target_best_epoch": train.best_epoch})
    return RunResult(method=method, accuracy=acc, n_way=task.n_way, k_shot=task.k_shot,
                     seed=seed, metrics=extra, notes="head only" if head_only else "",
                     target_seconds=time.perf_counter() - start,
                     interrupted=train.interrupted or (source is not None
                                                       and source.interrupted),
                     model=model)


def fine_tune_classifier(model: nn.Module, task: KShotTask, phase: TargetPhase, *, seed: int,
                         method: str, callbacks: CallbacksArg = None,
                         parameters: Iterable[nn.Parameter] | None = None,
                         ) -> tuple[TrainResult, float]:
    """Cross-entropy on ``task.support_*`` in shuffled batches with ``phase.train``,
    early-stopped on the task's validation part when it has one and on the support
    accuracy otherwise (the paper's T2 rule). ``model`` is a
    :class:`~dml_kit.models.Classifier`; only ``parameters`` train (default: all).
    Before each validation the batch-norm running statistics are recomputed on the
    support (:func:`recalibrate_batchnorm`), so every score, the restored best weights and
    the query accuracy use the statistics the network was trained with rather than a
    barely-moved running average.

    Returns ``(train result, query accuracy)``."""
    sx, sy = task.support_x, task.support_y
    vx, vy = (task.val_x, task.val_y) if has_val(task) else (sx, sy)

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for ix in shuffled_batches(len(sy), phase.batches.batch_size, epoch_seed(seed, epoch)):
            yield sx[ix], sy[ix]

    def validate() -> float:
        recalibrate_batchnorm(model, sx)  # snapshotted with the weights it scores
        return classifier_accuracy(model, vx, vy)

    train = fit(model, batches, cross_entropy_step(model), phase.train,
                validate=validate, parameters=parameters,
                callbacks=callbacks, probe=(sx, sy), embedder=model.embedder,  # type: ignore[arg-type]
                phase="adapt", method=method, seed=seed, device=phase.device,
                progress=phase.progress)
    return train, classifier_accuracy(model, task.query_x, task.query_y)


def score_embedding(method: str, source: SourceModel, task: KShotTask, rule: str, *,
                    seed: int) -> RunResult:
    """The embedding methods' target phase without training (metric, protonet): embed
    support and queries with the source model and classify by ``rule``."""
    start = time.perf_counter()
    acc, extra = embedding_metrics(source.model, task.support_x, task.support_y,
                                   task.query_x, task.query_y, rule)
    extra.update(source.source_metrics())
    return RunResult(method=method, accuracy=acc, n_way=task.n_way, k_shot=task.k_shot,
                     seed=seed, metrics=extra, target_seconds=time.perf_counter() - start,
                     interrupted=source.interrupted, model=source.model)


def unadapted(parent: Callable[..., RunResult], method: str, source: SourceModel | None,
              task: KShotTask, phase: TargetPhase, *, seed: int,
              callbacks: CallbacksArg = None) -> RunResult:
    """A hybrid at k = 1: its ``parent``'s result, renamed ``method`` and noted
    :data:`~dml_kit.methods.results.K1_NOTE` (no positive pair or held-out query to adapt
    on, as the paper's code)."""
    result = parent(source, task, phase, seed=seed, callbacks=callbacks)
    result.method, result.notes = method, K1_NOTE
    return result


def adapt_embedder(source: SourceModel, task: KShotTask, phase: TargetPhase, *, method: str,
                   rule: str, batches: Callable[[int], Iterable[Any]], loss_fn: nn.Module,
                   seed: int, callbacks: CallbacksArg = None, notes: str = "") -> RunResult:
    """The hybrids' target phase (Adapted Deep Embeddings): fine-tune a copy of the
    source embedder on the support and classify the queries by ``rule``.

    ``loss_fn`` (its proxies and a regularizer's parameters train too) is applied to the
    embedded ``batches(epoch)`` (drawn from the support only, see :func:`embedding_step`)
    under ``phase.adapt``. Early stopping scores the task's validation part when it has
    one, otherwise the support itself by leave-one-out (cosine 1-NN for ``rule="1nn"``,
    nearest prototype for ``"prototype"``): the paper's T2 rule. The shared source
    model is never modified.

    Batch-norm statistics are *not* recomputed on the support here (unlike
    :func:`fine_tune_classifier`): the source statistics are a sound start, the
    small-rate fine-tuning moves the weights little (its best epoch is mostly the first),
    and on the classroom glyph grid (5-way, k in {5, 10}, seeds 0-2) recomputing them
    from the 25-50 support images changed the hybrids' accuracy by -0.7 to +0.2
    points on average, within noise."""
    start = time.perf_counter()
    embedder = copy.deepcopy(source.model)
    sx, sy = task.support_x, task.support_y

    def validate() -> float:
        s = metrics.embed(embedder, sx)
        if has_val(task):
            return classify_accuracy(s, sy, metrics.embed(embedder, task.val_x), task.val_y,
                                     rule)
        return loo_accuracy(s, sy, rule)

    train = fit(embedder, batches, embedding_step(embedder, loss_fn), phase.adapt,
                validate=validate, parameters=[*embedder.parameters(), *loss_fn.parameters()],
                callbacks=callbacks,
                probe=(torch.cat([sx, task.query_x[:200]]), torch.cat([sy, task.query_y[:200]])),
                phase="adapt", method=method, seed=seed, device=phase.device,
                progress=phase.progress)
    acc, extra = embedding_metrics(embedder, sx, sy, task.query_x, task.query_y, rule)
    extra.update(source.source_metrics())
    extra.update({"target_epochs": train.epochs, "target_best_epoch": train.best_epoch})
    return RunResult(method=method, accuracy=acc, n_way=task.n_way, k_shot=task.k_shot,
                     seed=seed, metrics=extra, notes=notes,
                     target_seconds=time.perf_counter() - start,
                     interrupted=train.interrupted or source.interrupted, model=embedder)


__all__ = ["ModelSpec", "Objective", "Phases", "SourcePhase", "TargetPhase",
           "adapt_embedder", "cross_entropy_step", "embedding_step", "fine_tune_classifier",
           "fit_source", "phases", "recalibrate_batchnorm", "score_embedding", "source_parts",
           "train_classifier", "unadapted"]
