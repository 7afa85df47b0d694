"""Pieces the method recipes share: results, source models, splits, batches, scores.

Nothing here is a method; each helper is one step of the Adapted Deep Embeddings protocol
(Scott, Ridgeway & Mozer, NeurIPS 2018) that several methods repeat.
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

from dml_kit import metrics
from dml_kit.callbacks import Callback, CallbackList
from dml_kit.data.core import Dataset
from dml_kit.device import seed_everything
from dml_kit.methods.config import MethodConfig
from dml_kit.models import MLP, Conv4
from dml_kit.training import TrainConfig, TrainResult, fit

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
    """

    kind: str
    model: nn.Module
    train: TrainResult
    val_score: float | None
    seconds: float
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def interrupted(self) -> bool:
        return self.train.interrupted


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


# ---- models ---------------------------------------------------------------------------
def build_embedder(data_shape: tuple[int, ...], config: MethodConfig) -> nn.Module:
    """Conv4 (``config.channels`` filters) for images of at least 16x16 pixels, else an MLP.

    Outputs are *not* L2-normalised: cosine losses normalise inside, and norm
    regularizers (SEC) need the raw norms."""
    if len(data_shape) == 3 and min(data_shape[-2:]) >= 16:
        return Conv4(data_shape[0], embedding_dim=config.embedding_dim,
                     channels=config.channels)
    return MLP(math.prod(data_shape), embedding_dim=config.embedding_dim, hidden=config.hidden)


# ---- splits and batches ---------------------------------------------------------------
def holdout(data: Dataset, fraction: float, seed: int) -> tuple[Dataset, Dataset]:
    """Hold out ``fraction`` of *each* class (at least one example, at least one kept) as a
    validation part: the paper's T1 train/validation split, stratified."""
    g = torch.Generator().manual_seed(seed)
    train_idx, val_idx = [], []
    for c in range(data.n_classes):
        idx = torch.nonzero(data.y == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        if len(idx) < 2:
            raise ValueError(f"source class {data.class_names[c]!r} has {len(idx)} example(s); "
                             "each source class needs at least 2 (train and validation)")
        n_val = min(max(1, round(fraction * len(idx))), len(idx) - 1)
        val_idx.append(idx[:n_val])
        train_idx.append(idx[n_val:])
    tr, va = torch.cat(train_idx).sort().values, torch.cat(val_idx).sort().values

    def part(ix: torch.Tensor, suffix: str) -> Dataset:
        return Dataset(name=f"{data.name}[{suffix}]", x=data.x[ix], y=data.y[ix],
                       class_names=data.class_names, class_groups=data.class_groups)

    return part(tr, "train"), part(va, "val")


def scoring_classes(data: Dataset, max_classes: int | None, seed: int) -> torch.Tensor:
    """Ids of the (at most ``max_classes``, seeded random) classes whose held-out examples
    score the source phase; all classes when ``max_classes`` is ``None`` or larger."""
    if max_classes is None or max_classes >= data.n_classes:
        return torch.arange(data.n_classes)
    g = torch.Generator().manual_seed(seed + 7919)
    return torch.randperm(data.n_classes, generator=g)[:max_classes].sort().values


def shuffled_batches(n: int, batch_size: int, seed: int,
                     max_batches: int | None = None) -> Iterator[torch.Tensor]:
    """Index batches of a seeded random permutation of ``range(n)``."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    for b, i in enumerate(range(0, n, batch_size)):
        if max_batches is not None and b >= max_batches:
            return
        yield perm[i:i + batch_size]


def probe_subset(data: Dataset, max_classes: int = 10, per_class: int = 10,
                 seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed small probe set for the callbacks: ``per_class`` examples of the first
    ``max_classes`` classes (seeded choice within each class)."""
    g = torch.Generator().manual_seed(seed)
    picks = []
    for c in range(min(max_classes, data.n_classes)):
        idx = torch.nonzero(data.y == c).flatten()
        picks.append(idx[torch.randperm(len(idx), generator=g)[:per_class]])
    ix = torch.cat(picks)
    return data.x[ix], data.y[ix]


def balanced_batches(data: Dataset | torch.Tensor, config: MethodConfig,
                     seed: int) -> Iterator[torch.Tensor]:
    """One epoch of balanced index batches (``P`` classes x ``M`` examples) for pair losses,
    via :class:`dml_kit.data.BalancedBatchSampler`. ``P`` and ``M`` are capped by the
    number of classes and the smallest class; the default epoch covers the data about
    once (``len / (P * M)`` batches)."""
    from dml_kit.data import BalancedBatchSampler

    labels = data.y if isinstance(data, Dataset) else data
    counts = torch.bincount(labels)
    counts = counts[counts > 0]
    p = min(config.batch_classes, len(counts))
    m = max(2, min(config.batch_per_class, int(counts.min())))
    n_batches = config.batches_per_epoch or max(1, len(labels) // (p * m))
    yield from BalancedBatchSampler(labels, p, m, seed=seed, batches_per_epoch=n_batches)


def episodes(labels: torch.Tensor, n_way: int, k_shot: int, q_query: int, n_episodes: int,
             seed: int) -> Iterator[Any]:
    """One epoch of few-shot episodes via :class:`dml_kit.data.EpisodeSampler`."""
    from dml_kit.data import EpisodeSampler

    yield from EpisodeSampler(labels, n_way, k_shot, q_query, n_episodes=n_episodes, seed=seed)


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


# ---- losses ---------------------------------------------------------------------------
def make_regularizer(config: MethodConfig) -> nn.Module | None:
    """The configured norm regularizer (``None`` when off or weight 0)."""
    if not config.regularized:
        return None
    from dml_kit import regularizers

    assert config.regularizer is not None
    return regularizers.get(config.regularizer, **config.regularizer_params)


def make_loss(config: MethodConfig, num_classes: int) -> nn.Module:
    """``config.loss`` from the registry (proxy/classification losses get ``num_classes``
    and ``embedding_dim``), wrapped as ``L + weight * R`` when a regularizer is set."""
    from dml_kit import losses

    params = dict(config.loss_params)
    spec = losses.spec(config.loss)
    if spec.needs_num_classes:
        params.setdefault("num_classes", num_classes)
    if spec.needs_embedding_dim:
        params.setdefault("embedding_dim", config.embedding_dim)
    loss = losses.get(config.loss, **params)
    reg = make_regularizer(config)
    if reg is not None:
        loss = losses.with_regularizer(loss, reg, config.regularizer_weight)
    return loss


# ---- scores ---------------------------------------------------------------------------
def loo_prototype_accuracy(emb: torch.Tensor, labels: torch.Tensor) -> float:
    """Leave-one-out nearest-prototype accuracy on one labelled set: each example is
    classified against the class means with itself removed from its own class mean
    (squared Euclidean). Classes with one example are scored against the others only."""
    classes, inv = torch.unique(labels, return_inverse=True)
    emb = emb.double()
    sums = torch.zeros(len(classes), emb.shape[1], dtype=torch.float64).index_add_(0, inv, emb)
    counts = torch.bincount(inv, minlength=len(classes)).double()
    protos = sums / counts.unsqueeze(1)
    d = torch.cdist(emb, protos).pow(2)
    own_count = counts[inv] - 1
    own = (sums[inv] - emb) / own_count.clamp_min(1).unsqueeze(1)
    d_own = (emb - own).pow(2).sum(1)
    d_own[own_count == 0] = float("inf")
    d[torch.arange(len(emb)), inv] = d_own
    return float((classes[d.argmin(1)] == labels).double().mean())


def loo_1nn_accuracy(emb: torch.Tensor, labels: torch.Tensor) -> float:
    """Leave-one-out cosine 1-NN accuracy (= Recall@1), the paper's T1 score for the
    histogram-loss nets."""
    if len(labels) < 2:
        return 0.0
    return metrics.recall_at_k(emb, labels, ks=(1,), distance="cosine")[1]


def classify_accuracy(support_emb: torch.Tensor, support_y: torch.Tensor,
                      query_emb: torch.Tensor, query_y: torch.Tensor,
                      rule: str) -> float:
    """Target accuracy under ``rule``: ``"1nn"`` (cosine nearest support example, the
    paper's histogram rule) or ``"prototype"`` (nearest class mean, squared Euclidean,
    Snell et al.)."""
    if rule == "1nn":
        return metrics.knn_accuracy(support_emb, support_y, query_emb, query_y, k=1,
                                    distance="cosine")
    return metrics.prototype_accuracy(support_emb, support_y, query_emb, query_y,
                                      distance="sqeuclidean")


def embedding_metrics(embedder: nn.Module, support_x: torch.Tensor, support_y: torch.Tensor,
                      query_x: torch.Tensor, query_y: torch.Tensor,
                      rule: str) -> tuple[float, dict[str, float]]:
    """Embed support and queries once; return the accuracy under ``rule`` and both rules'
    accuracies plus the query norm statistics as extra metrics."""
    s = metrics.embed(embedder, support_x)
    q = metrics.embed(embedder, query_x)
    acc_1nn = classify_accuracy(s, support_y, q, query_y, "1nn")
    acc_proto = classify_accuracy(s, support_y, q, query_y, "prototype")
    ns = metrics.norm_stats(q)
    extra = {"acc_1nn": acc_1nn, "acc_prototype": acc_proto,
             "norm_mean": ns["mean"], "norm_cv": ns["cv"]}
    return (acc_1nn if rule == "1nn" else acc_proto), extra


def classifier_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Fraction of ``x`` whose argmax logit is the label."""
    logits = metrics.embed(model, x)
    return float((logits.argmax(1) == y).double().mean())


def cross_entropy_step(model: nn.Module) -> Callable[[Any], torch.Tensor]:
    """``step_loss`` for classifiers: batch ``(x, y)`` -> cross-entropy of ``model(x)``."""
    def step(batch: Any) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(model(x), y)
    return step


def has_val(task: Any) -> bool:
    """Whether a k-shot task carries a labelled validation part (``n_val > 0``)."""
    val_x = getattr(task, "val_x", None)
    return val_x is not None and len(val_x) > 0


# ---- phases ---------------------------------------------------------------------------
def source_config(config: MethodConfig) -> TrainConfig:
    """The T1-phase optimisation settings every source model trains with."""
    return TrainConfig(max_epochs=config.source_epochs, lr=config.source_lr,
                       patience=config.source_patience)


def target_config(config: MethodConfig) -> TrainConfig:
    """The T2-phase optimisation settings of scratch and weight transfer."""
    return TrainConfig(max_epochs=config.target_epochs, lr=config.target_lr,
                       patience=config.target_patience)


def adapt_config(config: MethodConfig) -> TrainConfig:
    """The hybrids' fine-tuning settings: as :func:`target_config` with ``adapt_lr`` and
    ``adapt_patience`` (each falls back to the ``target_`` value when ``None``)."""
    return TrainConfig(max_epochs=config.target_epochs,
                       lr=config.adapt_lr if config.adapt_lr is not None else config.target_lr,
                       patience=config.adapt_patience or config.target_patience)


def source_parts(source: Dataset, config: MethodConfig,
                 seed: int) -> tuple[Dataset, Dataset, torch.Tensor]:
    """The start of every source phase: seed everything, hold out ``val_fraction`` of
    each class (:func:`holdout`), pick the classes that score it (:func:`scoring_classes`).

    Returns ``(train, val, scoring class ids)``."""
    seed_everything(seed)
    train, val = holdout(source, config.val_fraction, seed)
    return train, val, scoring_classes(val, config.val_classes, seed)


def fit_source(kind: str, model: nn.Module, batches: Callable[[int], Iterable[Any]],
               step_loss: Callable[[Any], torch.Tensor], config: MethodConfig, *,
               validate: Callable[[], float], val: Dataset, start: float, method: str,
               seed: int, callbacks: CallbacksArg = None,
               parameters: Iterable[nn.Parameter] | None = None,
               embedder: nn.Module | None = None,
               info: dict[str, Any] | None = None) -> SourceModel:
    """Train a source model (T1) with :func:`source_config` and early stopping on
    ``validate``, probing a few held-out ``val`` examples; wrap it as a
    :class:`SourceModel` of ``kind`` whose ``seconds`` count from ``start``."""
    result = fit(model, batches, step_loss, source_config(config), validate=validate,
                 parameters=parameters, callbacks=callbacks,
                 probe=probe_subset(val, seed=seed), embedder=embedder, phase="source",
                 method=method, seed=seed, device=config.device, progress=config.progress)
    return SourceModel(kind=kind, model=model, train=result, val_score=result.best_score,
                       seconds=time.perf_counter() - start, info=info or {})


def fine_tune_classifier(model: nn.Module, task: Any, config: MethodConfig, *, seed: int,
                         method: str, callbacks: CallbacksArg = None,
                         parameters: Iterable[nn.Parameter] | None = None,
                         ) -> tuple[TrainResult, float]:
    """The classifiers' target phase (scratch, weight transfer): cross-entropy on
    ``task.support_*`` in shuffled batches with :func:`target_config`, early-stopped on
    the task's validation part when it has one and on the support accuracy otherwise
    (the paper's T2 rule). ``model`` is a :class:`~dml_kit.models.Classifier`; only
    ``parameters`` train (default: all). Before each validation the batch-norm running
    statistics are recomputed on the support (:func:`recalibrate_batchnorm`), so every
    score, the restored best weights and the query accuracy use the statistics the
    network was trained with rather than a barely-moved running average.

    Returns ``(train result, query accuracy)``."""
    sx, sy = task.support_x, task.support_y
    vx, vy = (task.val_x, task.val_y) if has_val(task) else (sx, sy)

    def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for ix in shuffled_batches(len(sy), config.batch_size, seed * 1000 + epoch):
            yield sx[ix], sy[ix]

    def validate() -> float:
        recalibrate_batchnorm(model, sx)  # snapshotted with the weights it scores
        return classifier_accuracy(model, vx, vy)

    train = fit(model, batches, cross_entropy_step(model), target_config(config),
                validate=validate, parameters=parameters,
                callbacks=callbacks, probe=(sx, sy), embedder=model.embedder,
                phase="adapt", method=method, seed=seed, device=config.device,
                progress=config.progress)
    return train, classifier_accuracy(model, task.query_x, task.query_y)


def unadapted(parent: Callable[..., RunResult], method: str, source: SourceModel | None,
              task: Any, config: MethodConfig, *, seed: int,
              callbacks: CallbacksArg = None) -> RunResult:
    """A hybrid at k = 1: its ``parent``'s result, renamed ``method`` and noted
    :data:`K1_NOTE` (no positive pair or held-out query to adapt on, as the paper's code)."""
    result = parent(source, task, config, seed=seed, callbacks=callbacks)
    result.method, result.notes = method, K1_NOTE
    return result


def adapt_embedder(source: SourceModel, task: Any, config: MethodConfig, *, method: str,
                   rule: str, batches: Callable[[int], Iterable[Any]],
                   make_step: Callable[[nn.Module], Callable[[Any], torch.Tensor]],
                   extra_parameters: Iterable[nn.Parameter] = (), seed: int,
                   callbacks: CallbacksArg = None, notes: str = "") -> RunResult:
    """The hybrids' target phase (Adapted Deep Embeddings): fine-tune a copy of the
    source embedder on the support and classify the queries by ``rule``.

    ``make_step(embedder)`` is the step loss over ``batches(epoch)`` (drawn from the
    support only); ``extra_parameters`` (a loss's proxies, a regularizer's) train with
    the embedder under :func:`adapt_config`. Early stopping scores the task's
    validation part when it has one, otherwise the support itself by leave-one-out
    (cosine 1-NN for ``rule="1nn"``, nearest prototype for ``"prototype"``): the
    paper's T2 rule. The shared source model is never modified.

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
        return loo_1nn_accuracy(s, sy) if rule == "1nn" else loo_prototype_accuracy(s, sy)

    train = fit(embedder, batches, make_step(embedder), adapt_config(config),
                validate=validate, parameters=[*embedder.parameters(), *extra_parameters],
                callbacks=callbacks,
                probe=(torch.cat([sx, task.query_x[:200]]), torch.cat([sy, task.query_y[:200]])),
                phase="adapt", method=method, seed=seed, device=config.device,
                progress=config.progress)
    acc, extra = embedding_metrics(embedder, sx, sy, task.query_x, task.query_y, rule)
    extra.update({"source_val_score": source.val_score or 0.0,
                  "source_epochs": source.train.epochs, "target_epochs": train.epochs,
                  "target_best_epoch": train.best_epoch})
    return RunResult(method=method, accuracy=acc, n_way=task.n_way, k_shot=task.k_shot,
                     seed=seed, metrics=extra, notes=notes,
                     target_seconds=time.perf_counter() - start,
                     interrupted=train.interrupted or source.interrupted, model=embedder)
