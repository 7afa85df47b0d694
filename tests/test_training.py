"""The one training loop: early stopping, best-weights restore, seeding, callbacks,
interrupts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from dml_kit.callbacks import Callback, CallbackList, HistoryCallback
from dml_kit.training import TrainConfig, fit


def _problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(200, 6, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    return x, y


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
    x, y = _problem()

    def batches(epoch: int):
        perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(epoch))
        for i in range(0, len(y), 50):
            ix = perm[i:i + 50]
            yield x[ix], y[ix]

    def step(batch):
        xb, yb = batch
        return F.cross_entropy(model(xb), yb)

    def accuracy() -> float:
        return float((model(x).argmax(1) == y).float().mean())

    return model, batches, step, accuracy


def test_fit_learns_and_restores_best():
    model, batches, step, accuracy = _setup()
    result = fit(model, batches, step, TrainConfig(max_epochs=15, lr=1e-2, patience=20),
                 validate=accuracy, seed=0, device="cpu")
    assert result.epochs == 15 and not result.interrupted
    assert result.losses[-1] < result.losses[0]
    assert result.best_score is not None and result.best_score > 0.9
    assert accuracy() == pytest.approx(result.best_score)
    assert max(result.scores) == result.best_score


def test_early_stopping_keeps_the_best_epoch_weights():
    model, batches, step, _ = _setup()
    scores = iter([0.2, 0.9, 0.5, 0.4, 0.3, 0.8, 0.1])
    snapshots = {}

    class Snap(Callback):
        def on_epoch(self, event):
            snapshots[event.epoch] = [p.detach().clone() for p in model.parameters()]

    result = fit(model, batches, step, TrainConfig(max_epochs=7, lr=1e-2, patience=3),
                 validate=lambda: next(scores), callbacks=[Snap()], seed=0)
    assert result.stopped_early and result.epochs == 5
    assert result.best_epoch == 2 and result.best_score == 0.9
    for p, q in zip(model.parameters(), snapshots[2], strict=True):
        assert torch.equal(p, q)


def test_same_seed_same_weights():
    weights = []
    for _ in range(2):
        model, batches, step, accuracy = _setup(seed=3)
        fit(model, batches, step, TrainConfig(max_epochs=3, lr=1e-2), validate=accuracy,
            seed=5)
        weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(weights[0], weights[1])


def test_callbacks_receive_steps_epochs_norms_and_probes():
    model, batches, step, accuracy = _setup()
    x, y = _problem()
    history = HistoryCallback(keep_probes=True)
    fit(model, batches, step, TrainConfig(max_epochs=3, lr=1e-2), validate=accuracy,
        callbacks=history, probe=(x[:20], y[:20]), phase="adapt", method="toy")
    assert history.phases == ["adapt"]
    assert len(history.steps) == 12 and history.steps[-1]["step"] == 12
    assert [e["epoch"] for e in history.epochs] == [1, 2, 3]
    assert {"norm_mean", "norm_cv"} <= set(history.epochs[0])
    assert len(history.probes) == 3 and history.probes[0][2].shape == (20, 2)
    # the probe inputs travel with TrainBegin, so a replay can show each point's image
    assert torch.equal(history.probe_inputs["adapt"], x[:20])
    assert len(history.results) == 1 and history.results[0].epochs == 3
    assert all(s is not None for s in history.scores("adapt"))


class _CountingEmbedder(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner, self.calls = inner, 0

    def forward(self, x):
        self.calls += 1
        return self.inner(x)


def test_probe_is_not_embedded_when_nobody_asks():
    model, batches, step, accuracy = _setup()
    x, y = _problem()
    counter = _CountingEmbedder(model)
    history = HistoryCallback(keep_norms=False)  # wants steps/epochs only
    fit(model, batches, step, TrainConfig(max_epochs=2), callbacks=[history],
        probe=(x[:10], y[:10]), embedder=counter)
    assert counter.calls == 0
    assert history.epochs[0].get("norm_mean") is None

    class EveryTwo(Callback):
        probe_every = 2

        def __init__(self):
            self.got = 0

        def on_step(self, event):
            self.got += event.probe_embeddings is not None

    every = EveryTwo()
    fit(model, batches, step, TrainConfig(max_epochs=2), callbacks=CallbackList([every]),
        probe=(x[:10], y[:10]), embedder=counter)
    assert every.got == 4 and counter.calls == 4


class _InterruptAt(Callback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step(self, event):
        if event.step == self.step:
            raise KeyboardInterrupt


def test_interrupt_restores_best_and_returns():
    model, batches, step, accuracy = _setup()
    snapshots = {}

    class Snap(Callback):
        def on_epoch(self, event):
            if event.improved:
                snapshots["best"] = [p.detach().clone() for p in model.parameters()]

    history = HistoryCallback()
    result = fit(model, batches, step, TrainConfig(max_epochs=10, lr=1e-2, patience=10),
                 validate=accuracy, callbacks=[Snap(), _InterruptAt(10), history])
    assert result.interrupted and result.epochs == 2
    assert history.results and history.results[0].interrupted
    for p, q in zip(model.parameters(), snapshots["best"], strict=True):
        assert torch.equal(p, q)
    assert accuracy() == pytest.approx(result.best_score)


def test_interrupt_before_any_epoch_restores_initial_weights_and_can_reraise():
    model, batches, step, _ = _setup()
    initial = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(KeyboardInterrupt):
        fit(model, batches, step, TrainConfig(max_epochs=3), callbacks=_InterruptAt(2),
            on_interrupt="raise")
    for p, q in zip(model.parameters(), initial, strict=True):
        assert torch.equal(p, q)


def test_head_only_parameters_and_progress_bar():
    model, batches, step, accuracy = _setup()
    first = model[0].weight.detach().clone()
    fit(model, batches, step, TrainConfig(max_epochs=2), parameters=model[2].parameters(),
        progress=True)
    assert torch.equal(model[0].weight, first)


@pytest.mark.parametrize("kwargs, name", [
    ({"max_epochs": 0}, "max_epochs"), ({"lr": 0.0}, "lr"), ({"optimizer": "lbfgs"}, "optimizer"),
    ({"patience": 0}, "patience"), ({"weight_decay": -1.0}, "weight_decay"),
])
def test_train_config_errors_name_the_argument(kwargs, name):
    with pytest.raises(ValueError, match=name):
        TrainConfig(**kwargs)


def test_fit_argument_errors():
    model, batches, step, _ = _setup()
    with pytest.raises(ValueError, match="phase"):
        fit(model, batches, step, phase="target")
    with pytest.raises(ValueError, match="on_interrupt"):
        fit(model, batches, step, on_interrupt="ignore")
    with pytest.raises(ValueError, match="callbacks"):
        fit(model, batches, step, callbacks=[object()])


def test_non_finite_loss_stops_with_best_weights_and_a_clear_error():
    model, batches, step, _ = _setup()  # 4 steps per epoch
    scores = iter([0.5, 0.9, 0.1])
    snapshots = {}
    calls = {"n": 0}

    def nan_at_step_7(batch):
        calls["n"] += 1
        loss = step(batch)
        return loss * float("nan") if calls["n"] == 7 else loss

    class Snap(Callback):
        def on_epoch(self, event):
            snapshots[event.epoch] = [p.detach().clone() for p in model.parameters()]

    history = HistoryCallback()
    with pytest.raises(FloatingPointError,
                       match=r"the source loss became nan at epoch 2, step 7 .* best weights "
                             r"\(epoch 1\) were restored. Try a lower learning rate "
                             r"\(lr=0.01\), gradient clipping"):
        fit(model, batches, nan_at_step_7, TrainConfig(max_epochs=5, lr=1e-2),
            validate=lambda: next(scores), callbacks=[Snap(), history], seed=0)
    for p, q in zip(model.parameters(), snapshots[1], strict=True):
        assert torch.equal(p, q)
    assert not model.training
    assert history.results and history.results[0].epochs == 1
    assert history.results[0].steps == 6 and history.results[0].best_epoch == 1


def test_non_finite_loss_at_step_3_restores_the_initial_weights():
    model, batches, step, accuracy = _setup()
    initial = [p.detach().clone() for p in model.parameters()]
    calls = {"n": 0}

    def inf_at_step_3(batch):
        calls["n"] += 1
        return step(batch) * (float("inf") if calls["n"] == 3 else 1.0)

    with pytest.raises(FloatingPointError, match="adapt loss became inf at epoch 1, step 3 "
                                                 r".*\(the initial weights\)"):
        fit(model, batches, inf_at_step_3, TrainConfig(max_epochs=3, lr=1e-2), phase="adapt",
            validate=accuracy, seed=0, on_interrupt="return")
    for p, q in zip(model.parameters(), initial, strict=True):
        assert torch.equal(p, q)
