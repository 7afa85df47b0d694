"""The live-training thread budget: one torch thread fewer while a UMAP layout runs beside
training, the original count restored afterwards (also after an exception or Ctrl-C)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from dml_kit.callbacks import EpochEvent, StepEvent, TrainBegin, TrainEnd
from dml_kit.viz import live as L
from dml_kit.viz.live import LiveDashboard, LiveThreadBudget, live_torch_threads

THREADS = 3  # what "training" has before the budget; the policy gives 2 while UMAP works


class BlockingProjector:
    """Stands in for the UMAP Projector: fit_transform waits until released."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.fits = 0

    def set_reference(self, points: object) -> None:
        pass

    def reset(self) -> None:
        pass

    def fit_transform(self, emb: np.ndarray) -> np.ndarray:
        self.started.set()
        assert self.release.wait(30), "the test never released the fit"
        self.fits += 1
        return np.asarray(emb)[:, :2].astype(np.float64)


@pytest.fixture
def dash(monkeypatch):
    """A UMAP dashboard whose warm-up is done and whose layouts block until released."""
    monkeypatch.setattr(L, "warm_up_umap", lambda background=True: None)
    monkeypatch.setattr(L, "umap_ready", lambda: True)
    monkeypatch.setattr(L, "umap_status", lambda: "ready")
    d = LiveDashboard(fps=30, max_draw_share=1.0, projection="umap")
    projector = BlockingProjector()
    assert d._umap_worker is not None
    d._umap_worker.projector = projector  # type: ignore[assignment]
    d.blocking = projector  # type: ignore[attr-defined]
    torch.set_num_threads(THREADS)  # the conftest fixture restores its own count after
    yield d
    projector.release.set()
    d.wait_for_projection(10)


def _begin(d: LiveDashboard) -> None:
    d.on_train_begin(TrainBegin(phase="source", method="m", max_epochs=3,
                                probe_labels=torch.arange(4).repeat(5)))


def _epoch(d: LiveDashboard, epoch: int = 1) -> None:
    emb = torch.randn(20, 6, generator=torch.Generator().manual_seed(epoch))
    d.on_epoch(EpochEvent(phase="source", epoch=epoch, step=10 * epoch, loss=1.0, score=0.5,
                          best_score=0.5, improved=True,
                          probe_embeddings=emb, probe_labels=torch.arange(4).repeat(5)))


def _step(d: LiveDashboard, step: int) -> None:
    d.on_step(StepEvent(phase="source", epoch=1, step=step, loss=1.0))


def test_policy_leaves_one_core_and_never_goes_below_one():
    assert [live_torch_threads(t) for t in (1, 2, 3, 8)] == [1, 1, 2, 7]
    with pytest.raises(ValueError, match="threads"):
        live_torch_threads(0)


def test_threads_during_a_umap_fit_follow_the_policy_and_come_back(dash):
    _begin(dash)
    assert torch.get_num_threads() == THREADS  # nothing runs beside training yet
    _epoch(dash)  # submits a layout: the worker is busy until released
    assert dash.blocking.started.wait(10)
    assert torch.get_num_threads() == live_torch_threads(THREADS) == 2
    _step(dash, 11)
    assert torch.get_num_threads() == 2  # still busy: still the budget
    dash.blocking.release.set()
    dash.wait_for_projection(10)
    _step(dash, 12)
    assert torch.get_num_threads() == THREADS  # idle again: the count training had
    assert dash.blocking.fits == 1


def test_phase_end_restores_while_umap_still_works(dash):
    _begin(dash)
    _epoch(dash)
    assert dash.blocking.started.wait(10)
    assert torch.get_num_threads() == 2
    result = type("R", (), {"interrupted": False, "stopped_early": False, "best_epoch": 1})()
    dash.on_train_end(TrainEnd(phase="source", result=result))
    assert torch.get_num_threads() == THREADS
    assert not dash.thread_budget.active


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
def test_context_manager_restores_after_an_exception(dash, error):
    with pytest.raises(type(error)):
        with dash.thread_budget:
            _begin(dash)
            _epoch(dash)
            assert dash.blocking.started.wait(10)
            assert torch.get_num_threads() == 2
            raise error
    assert torch.get_num_threads() == THREADS
    assert not dash.thread_budget.active


def test_interrupted_training_loop_restores_the_count(dash):
    """Ctrl-C inside the real training loop while a layout runs: the loop emits
    on_train_end, which restores the count (no context manager needed)."""
    from dml_kit.training import TrainConfig, fit

    torch.manual_seed(0)
    y = torch.arange(4).repeat(10)
    x = torch.randn(40, 6) + torch.nn.functional.one_hot(y, 6).float() * 3
    model = torch.nn.Linear(6, 4)
    seen: list[int] = []
    calls = {"n": 0}

    def batches(epoch: int):
        return [(x[i:i + 10], y[i:i + 10]) for i in range(0, 40, 10)]

    def step_loss(batch):
        calls["n"] += 1
        if calls["n"] >= 6:  # epoch 2: the epoch-1 layout is still being fitted
            seen.append(torch.get_num_threads())
            raise KeyboardInterrupt
        return torch.nn.functional.cross_entropy(model(batch[0]), batch[1])

    result = fit(model, batches, step_loss, config=TrainConfig(max_epochs=3, lr=0.01),
                 callbacks=[dash], probe=(x[:20], y[:20]))
    assert result.interrupted
    assert seen == [2]
    assert torch.get_num_threads() == THREADS


def test_budget_only_acts_in_the_thread_that_started_it():
    torch.set_num_threads(THREADS)
    budget = LiveThreadBudget(lambda: True)
    budget.start()
    assert torch.get_num_threads() == 2
    other = threading.Thread(target=budget.stop)
    other.start()
    other.join()
    assert budget.active and torch.get_num_threads() == 2  # another thread cannot stop it
    budget.stop()
    assert torch.get_num_threads() == THREADS and not budget.active


def test_method_runner_trains_inside_the_budget_and_restores_on_error(monkeypatch):
    from dml_kit import widgets as W
    from dml_kit.widgets import training as T

    mr = W.MethodRunner("digits", method="scratch", n_way=3, k_shot=2, epochs=1,
                        adapt_epochs=1, batches_per_epoch=2)
    torch.set_num_threads(THREADS)
    mr.dashboard.thread_budget.side_work_busy = lambda: True
    seen = []

    def failing_run(*args, **kwargs):
        seen.append((mr.dashboard.thread_budget.active, torch.get_num_threads()))
        raise RuntimeError("training failed")

    monkeypatch.setattr(T.methods, "run", failing_run)
    mr.train_button.click()
    assert seen == [(True, 2)]
    assert mr.error is not None and "training failed" in mr.error
    assert torch.get_num_threads() == THREADS


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_umap_fit_runs_numba_with_the_bounded_thread_count(monkeypatch):
    """A real UMAP layout in the dashboard's worker thread: numba inside the fit runs with
    UMAP_THREADS threads (needs umap-learn's compiled kernels, cached per machine)."""
    import umap.umap_ as U

    from dml_kit.viz.projection import UMAP_THREADS, Projector, wait_for_umap

    assert wait_for_umap(timeout=280)
    import numba

    inside: list[int] = []
    original = U.simplicial_set_embedding

    def recording(*args, **kwargs):
        inside.append(numba.get_num_threads())
        return original(*args, **kwargs)

    monkeypatch.setattr(U, "simplicial_set_embedding", recording)
    done = threading.Event()
    worker = L._UmapWorker(Projector("umap", n_epochs=20), lambda *a: done.set())
    worker.submit(np.random.default_rng(0).normal(size=(40, 5)), 0, None)
    assert done.wait(120)
    assert inside == [UMAP_THREADS]
