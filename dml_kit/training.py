"""The one plain training loop every method uses: :func:`fit`.

Recipe (what Adapted Deep Embeddings' code does in each phase, written once):

1. seed everything (python, numpy, torch) from ``seed``; move the model to the device
   (``device=None`` picks CUDA when present, see :mod:`dml_kit.device`);
2. build an optimizer (Adam by default, as the paper) over the trainable parameters;
3. for each epoch: for each batch, ``loss = step_loss(batch)``, backward, optimizer step,
   emit a :class:`~dml_kit.callbacks.StepEvent`;
4. after each epoch score the model with ``validate()`` (higher is better); when the score
   beats the best so far by more than ``min_delta`` the weights are snapshotted (a copy of
   the ``state_dict``); after ``patience`` epochs without a new best, stop (early stopping
   on the validation part, the paper's T1 rule);
5. restore the best weights (without validation: the weights of the last finished epoch)
   and return a :class:`TrainResult`.

**Interrupts.** ``KeyboardInterrupt`` (the notebook's stop button, Ctrl-C) at any point
restores the best snapshot, so the model is never left half-updated, marks the result
``interrupted=True`` and emits ``on_train_end``; then, with ``on_interrupt="return"`` (the
default, friendly in notebooks) :func:`fit` returns that result normally, and with
``on_interrupt="raise"`` (what grids use, so that nothing is stored) it re-raises.
Before the first epoch ends the "best" snapshot is the initial weights.

**Divergence.** When ``step_loss`` returns NaN or inf, that step is not taken: the best
snapshot is restored, ``on_train_end`` is emitted (the result counts the epochs finished
before), and :func:`fit` raises ``FloatingPointError`` naming the phase, the epoch and the
step, and what to try (a lower learning rate, gradient clipping). It never returns a
model trained on a NaN loss, whatever ``on_interrupt`` says.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from dml_kit._validation import check_choice, check_float, check_int
from dml_kit.allocator import keep_freed_memory
from dml_kit.callbacks import (
    PHASES,
    Callback,
    CallbackList,
    EpochEvent,
    StepEvent,
    TrainBegin,
    TrainEnd,
    as_callback_list,
)
from dml_kit.device import resolve_device, seed_everything
from dml_kit.metrics import embed, norm_stats

OPTIMIZERS = ("adam", "sgd")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings of one training phase.

    Attributes:
        max_epochs: upper bound on epochs (>= 1).
        lr: learning rate (> 0). The paper uses Adam with 0.005 (histogram, classifiers),
            0.001 (protonets on MNIST) or 1e-4.
        optimizer: ``"adam"`` (the paper) or ``"sgd"`` (momentum 0.9).
        weight_decay: L2 penalty passed to the optimizer (>= 0).
        patience: stop after this many epochs without a new best validation score;
            ``None`` trains for ``max_epochs``.
        min_delta: an epoch is a new best when ``score > best + min_delta`` (>= 0).
        max_steps: optional cap on the total number of optimizer steps.
        grad_clip: optional max gradient norm (> 0).
    """

    max_epochs: int = 20
    lr: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    patience: int | None = 5
    min_delta: float = 0.0
    max_steps: int | None = None
    grad_clip: float | None = None

    def __post_init__(self) -> None:
        check_int("max_epochs", self.max_epochs, 1)
        check_float("lr", self.lr, 0.0, low_inclusive=False)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_float("weight_decay", self.weight_decay, 0.0)
        if self.patience is not None:
            check_int("patience", self.patience, 1)
        check_float("min_delta", self.min_delta, 0.0)
        if self.max_steps is not None:
            check_int("max_steps", self.max_steps, 1)
        if self.grad_clip is not None:
            check_float("grad_clip", self.grad_clip, 0.0, low_inclusive=False)


@dataclass
class TrainResult:
    """What one call of :func:`fit` did.

    Attributes:
        phase: ``"source"`` or ``"adapt"``.
        epochs: epochs finished.
        steps: optimizer steps taken.
        best_epoch: epoch whose weights were restored (0 = the initial weights).
        best_score: validation score of those weights (``None`` without validation).
        stopped_early: patience ran out before ``max_epochs``.
        interrupted: a ``KeyboardInterrupt`` ended the run (best weights restored).
        seconds: wall-clock seconds.
        losses: mean training loss per finished epoch.
        scores: validation score per finished epoch.
    """

    phase: str
    epochs: int = 0
    steps: int = 0
    best_epoch: int = 0
    best_score: float | None = None
    stopped_early: bool = False
    interrupted: bool = False
    seconds: float = 0.0
    losses: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)


def _to_device(batch: Any, device: torch.device) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, tuple | list):
        return type(batch)(_to_device(b, device) for b in batch)
    return batch


def _make_optimizer(params: list[nn.Parameter], config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.SGD(params, lr=config.lr, momentum=0.9, weight_decay=config.weight_decay)


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def fit(  # noqa: C901 (the one training loop: each branch is a documented option)
    model: nn.Module,
    batches: Callable[[int], Iterable[Any]],
    step_loss: Callable[[Any], torch.Tensor],
    config: TrainConfig | None = None,
    *,
    validate: Callable[[], float] | None = None,
    parameters: Iterable[nn.Parameter] | None = None,
    callbacks: Callback | Sequence[Any] | CallbackList | None = None,
    probe: tuple[torch.Tensor, torch.Tensor] | None = None,
    embedder: nn.Module | None = None,
    phase: str = "source",
    method: str = "",
    seed: int = 0,
    device: str | torch.device | None = None,
    progress: bool = False,
    on_interrupt: str = "return",
) -> TrainResult:
    """Train ``model`` with early stopping and best-weights restore (see the module doc).

    Args:
        model: the module whose weights are trained, snapshotted and restored.
        batches: ``batches(epoch)`` returns the iterable of batches of that (1-based)
            epoch; each batch is a tensor or a tuple/list of tensors (moved to the device
            before ``step_loss`` sees it). Seed your samplers from ``seed`` + ``epoch`` for
            reproducible runs.
        step_loss: ``step_loss(batch) -> scalar loss`` (the model is captured by closure).
        config: a :class:`TrainConfig` (defaults: 20 epochs of Adam at 1e-3, patience 5).
        validate: ``validate() -> float``, higher is better, called after each epoch; the
            model is in eval mode while it runs. ``None``: no early stopping, keep the last.
        parameters: what the optimizer trains (default: every parameter of ``model`` with
            ``requires_grad``); e.g. only a classifier head.
        callbacks: see :mod:`dml_kit.callbacks`.
        probe: ``(x, y)`` fixed probe set for callbacks that want probe embeddings/norms.
        embedder: the module that maps probe inputs to embeddings (default ``model``).
        phase: ``"source"`` or ``"adapt"`` (carried by every event).
        method: method name carried by :class:`~dml_kit.callbacks.TrainBegin`.
        seed: seeds python, numpy and torch before training.
        device: ``None``/``"auto"`` (CUDA if available), ``"cpu"``, ``"cuda:0"`` ...
        progress: show a tqdm bar over epochs.
        on_interrupt: ``"return"`` or ``"raise"`` after handling a ``KeyboardInterrupt``.
    """
    config = config or TrainConfig()
    check_choice("phase", phase, PHASES)
    check_choice("on_interrupt", on_interrupt, ("return", "raise"))
    cbs = as_callback_list(callbacks)
    dev = resolve_device(device)
    keep_freed_memory()   # see dml_kit.allocator: 1.8-9x faster steps on large batches
    seed_everything(seed)
    model.to(dev)
    embedder = embedder if embedder is not None else model
    params = [p for p in (parameters if parameters is not None else model.parameters())
              if p.requires_grad]
    if not params:
        raise ValueError("parameters is empty: nothing to train")
    optimizer = _make_optimizer(params, config)

    result = TrainResult(phase=phase)
    start = time.perf_counter()
    best_state = _snapshot(model)
    best_score: float | None = None
    since_best = 0
    probe_x, probe_y = (probe if probe is not None else (None, None))

    def probe_embeddings() -> torch.Tensor | None:
        if probe_x is None:
            return None
        return embed(embedder, probe_x, device=dev)

    cbs.on_train_begin(TrainBegin(phase=phase, max_epochs=config.max_epochs, method=method,
                                  probe_labels=probe_y,
                                  probe_inputs=None if probe_x is None else probe_x.cpu()))
    bar = None
    interrupt: KeyboardInterrupt | None = None
    diverged: FloatingPointError | None = None
    if progress:
        bar = tqdm(total=config.max_epochs, desc=f"{method or 'train'} [{phase}]", leave=False)
    try:
        for epoch in range(1, config.max_epochs + 1):
            model.train()
            total, count = 0.0, 0
            for batch in batches(epoch):
                batch = _to_device(batch, dev)
                loss = step_loss(batch)
                value = float(loss.detach())
                if not math.isfinite(value):
                    diverged = _diverged(value, phase, epoch, result.steps + 1, result, config)
                    break
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
                optimizer.step()
                result.steps += 1
                total += value
                count += 1
                if len(cbs):
                    emb = probe_embeddings() if cbs.probe_due(result.steps) else None
                    cbs.on_step(StepEvent(phase=phase, epoch=epoch, step=result.steps,
                                          loss=value, probe_embeddings=emb,
                                          probe_labels=probe_y if emb is not None else None))
                if config.max_steps is not None and result.steps >= config.max_steps:
                    break
            if diverged is not None:
                break
            epoch_loss = total / max(count, 1)
            result.epochs = epoch
            result.losses.append(epoch_loss)

            improved = False
            score: float | None = None
            if validate is not None:
                model.eval()
                with torch.no_grad():
                    score = float(validate())
                model.train()
                result.scores.append(score)
                if best_score is None or score > best_score + config.min_delta:
                    best_score, improved, since_best = score, True, 0
                else:
                    since_best += 1
            else:
                improved = True
            if improved:
                best_state = _snapshot(model)
                result.best_epoch, result.best_score = epoch, best_score

            if len(cbs):
                emb, norms = None, None
                if probe_x is not None and (cbs.wants_probe or cbs.wants_norms):
                    emb = probe_embeddings()
                    norms = norm_stats(emb) if emb is not None else None
                cbs.on_epoch(EpochEvent(
                    phase=phase, epoch=epoch, step=result.steps, loss=epoch_loss, score=score,
                    best_score=best_score, improved=improved, norms=norms,
                    probe_embeddings=emb if cbs.wants_probe else None,
                    probe_labels=probe_y if (emb is not None and cbs.wants_probe) else None,
                    seconds=time.perf_counter() - start))
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{epoch_loss:.4f}",
                                score="-" if score is None else f"{score:.3f}")
            if config.patience is not None and validate is not None \
                    and since_best >= config.patience:
                result.stopped_early = epoch < config.max_epochs
                break
            if config.max_steps is not None and result.steps >= config.max_steps:
                break
    except KeyboardInterrupt as exc:
        result.interrupted = True
        interrupt = exc
    model.load_state_dict(best_state)
    model.eval()
    result.seconds = time.perf_counter() - start
    if bar is not None:
        bar.close()
    cbs.on_train_end(TrainEnd(phase=phase, result=result))
    if diverged is not None:
        raise diverged
    if interrupt is not None and on_interrupt == "raise":
        raise interrupt
    return result


def _diverged(value: float, phase: str, epoch: int, step: int, result: TrainResult,
              config: TrainConfig) -> FloatingPointError:
    """The error :func:`fit` raises (after restoring the best weights) when ``step_loss``
    returns NaN or inf."""
    best = f"epoch {result.best_epoch}" if result.best_epoch else "the initial weights"
    clip = ("a smaller grad_clip" if config.grad_clip is not None
            else "gradient clipping (grad_clip=1.0)")
    return FloatingPointError(
        f"the {phase} loss became {value} at epoch {epoch}, step {step} (before that "
        f"step's update); training stopped and the best weights ({best}) were restored. "
        f"Try a lower learning rate (lr={config.lr:g}), {clip}, or check the data for "
        f"NaN or inf")
