"""dml_kit.compare: rules scored on the same k-shot tasks."""

from __future__ import annotations

import types

import pytest
import torch

from dml_kit import compare, data
from dml_kit.data.core import Dataset


def _lines(n_classes: int = 4, per_class: int = 8) -> Dataset:
    """A small image dataset: class c = 4x4 images of value (c + 1) / 10 plus noise."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(n_classes).repeat_interleave(per_class)
    x = ((y.float() + 1) / 10).view(-1, 1, 1, 1).expand(-1, 1, 4, 4).clone()
    x += 0.001 * torch.rand(x.shape, generator=g)
    return Dataset("lines", x, y, tuple(f"c{i}" for i in range(n_classes)),
                   ("g",) * n_classes)


def test_compare_on_tasks_scores_every_rule_on_the_same_task():
    target = _lines()
    seen: dict[str, list] = {"a": [], "b": []}

    def rule(name, value):
        def score(task):
            seen[name].append((task.k_shot, task.seed, task.support_y.tolist(),
                               task.query_x.sum().item()))
            return value
        return score

    result = types.SimpleNamespace(accuracy=0.75, notes="from a run")   # like a RunResult
    frame = compare.compare_on_tasks(target, {"a": rule("a", 0.5), "b": rule("b", result)},
                                     k_values=[1, 3], seeds=[0, 1], n_way=3)
    assert list(frame.columns) == ["method", "n", "k", "seed", "accuracy", "note"]
    assert len(frame) == 2 * 2 * 2
    assert seen["a"] == seen["b"]                     # the very same tasks, in order
    assert [s[:2] for s in seen["a"]] == [(1, 0), (1, 1), (3, 0), (3, 1)]
    b = frame[frame.method == "b"]
    assert (b.accuracy == 0.75).all() and (b.note == "from a run").all()
    assert (frame[frame.method == "a"].note == "").all() and (frame.n == 3).all()


def _hand_task() -> types.SimpleNamespace:
    """2 classes on the line y = 1 (1x1x2 "images"): supports (0,1), (4,1) | (6,1), (6,1);
    queries (4.5,1) of class 1 and (1,1) of class 0. The nearest support of (4.5,1) is
    (4,1), of class 0 (in angle too), but its nearest prototype is c_1 = (6,1), not
    c_0 = (2,1)."""
    pts = lambda rows: torch.tensor(rows, dtype=torch.float32).view(-1, 1, 1, 2)  # noqa: E731
    return types.SimpleNamespace(support_x=pts([[0, 1], [4, 1], [6, 1], [6, 1]]),
                                 support_y=torch.tensor([0, 0, 1, 1]),
                                 query_x=pts([[4.5, 1], [1, 1]]), query_y=torch.tensor([1, 0]))


def test_ready_made_rules_by_hand():
    task, flat = _hand_task(), torch.nn.Flatten()
    assert compare.pixel_1nn(task) == 0.5                         # (4.5,1) -> (4,1): wrong
    assert compare.embedding_1nn(flat, distance="euclidean")(task) == 0.5
    assert compare.nearest_prototype(flat)(task) == 1.0            # c_1 is nearer: right
    assert compare.nearest_prototype(flat, distance="cosine")(task) == 1.0
    with pytest.raises(ValueError, match="distance"):
        compare.embedding_1nn(flat, distance="manhattan")


def test_errors_name_the_argument():
    target = _lines()
    with pytest.raises(ValueError, match="rules"):
        compare.compare_on_tasks(target, {}, k_values=[1])
    with pytest.raises(ValueError, match="n_way=9"):
        compare.compare_on_tasks(target, {"p": compare.pixel_1nn}, k_values=[1], n_way=9)
    with pytest.raises(ValueError, match="k_values"):
        compare.compare_on_tasks(target, {"p": compare.pixel_1nn}, k_values=[0])
    with pytest.raises(ValueError, match="name"):
        compare.method_rule("no_such_method")


def test_method_rule_runs_the_method():
    digits = data.domain_split(data.load("digits"), seed=0)
    rule = compare.method_rule("scratch", target_epochs=1, target_patience=1)
    frame = compare.compare_on_tasks(digits.target, {"scratch": rule,
                                                     "pixels": compare.pixel_1nn},
                                     k_values=[1], seeds=[0], n_way=3)
    assert 0.0 <= frame.accuracy.min() and frame.accuracy.max() <= 1.0
    assert list(frame.method) == ["scratch", "pixels"]


def _frame(values: dict[int, list[float]], method: str = "m"):
    import pandas as pd

    return pd.DataFrame([{"method": method, "k": k, "seed": s, "accuracy": v}
                         for k, vs in values.items() for s, v in enumerate(vs)])


def test_exceeds_by_hand():
    from dml_kit import stats

    # values 0.5, 0.7, 0.6: mean 0.6, s = 0.1, t_{0.975, 2} = 4.3027,
    # half width 4.3027 * 0.1 / sqrt(3) = 0.2484 -> [0.3516, 0.8484]
    frame = _frame({1: [0.5, 0.7, 0.6], 5: [0.1, 0.3, 0.2]})
    table = compare.exceeds(frame, "m", 0.2)
    assert list(table.columns) == ["k", "method", "estimate", "level", "n", "verdict"]
    assert table.loc[0, "estimate"] == "0.600 [0.352, 0.848]"
    assert list(table["verdict"]) == [stats.HOLDS, stats.UNRESOLVED]   # k=5: 0.2 +- 0.25
    assert compare.exceeds(frame[frame.k == 1], "m", 0.4).loc[0, "verdict"] == stats.UNRESOLVED
    assert compare.exceeds(frame[frame.k == 1], "m", 0.9).loc[0, "verdict"] == stats.FAILS
    assert compare.exceeds(_frame({1: [0.5]}), "m", 0.2).loc[0, "verdict"] == stats.UNRESOLVED
    with pytest.raises(ValueError, match="'other'"):
        compare.exceeds(frame, "other", 0.2)


def test_without_bn_recalibration_patches_only_inside_the_rule():
    from dml_kit.methods import phases

    def rule(task):
        return phases.recalibrate_batchnorm(torch.nn.BatchNorm1d(2), torch.ones(3, 2))

    assert rule(None) == 1                                        # one layer recomputed
    assert compare.without_bn_recalibration(rule)(None) == 0      # a no-op inside
    assert rule(None) == 1                                        # restored afterwards


def test_sec_weight_study_pairs_runs_by_seed():
    from dml_kit.methods.config import MethodConfig

    digits = data.domain_split(data.load("digits"), seed=0)
    config = MethodConfig(source_epochs=1, batches_per_epoch=2, loss="triplet")
    frame = compare.sec_weight_study(digits.source, digits.target, weights=[0, 1.0],
                                     seeds=[0, 1], config=config, n_way=3, k_shot=2)
    assert list(frame.columns) == ["weight", "seed", "cv", "norm_mean", "accuracy",
                                   "best_epoch"]
    assert (frame.best_epoch == 1).all()                  # one source epoch, restored
    assert [(w, s) for w, s in zip(frame.weight, frame.seed, strict=True)] == [
        (0.0, 0), (1.0, 0), (0.0, 1), (1.0, 1)]
    assert (frame.cv > 0).all() and frame.accuracy.between(0, 1).all()
    with pytest.raises(ValueError, match="weights"):
        compare.sec_weight_study(digits.source, digits.target, weights=[-1], seeds=[0],
                                 config=config)
