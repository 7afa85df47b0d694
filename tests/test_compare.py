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


def test_compare_on_tasks_defaults_and_arguments_reach_the_task():
    """Default 5-way tasks; n_query and k reach kshot_task; empty seeds and out-of-range
    n_way are refused by name; a rule's missing notes become ""."""
    target = _lines(n_classes=6)
    shapes = []

    def rule(task):
        shapes.append((int(task.support_y.max()) + 1, len(task.support_y), len(task.query_y)))
        return types.SimpleNamespace(accuracy=0.5)            # a result without notes

    frame = compare.compare_on_tasks(target, {"r": rule}, k_values=[2], n_query=3)
    assert shapes == [(5, 10, 15)] and frame.loc[0, "n"] == 5 and frame.loc[0, "note"] == ""
    for bad, match in (({"seeds": []}, "seeds must each hold"),
                       ({"n_way": 0}, "n_way=0"), ({"n_way": 7}, "n_way=7.*6 target")):
        kwargs = {"k_values": [1], **bad}
        with pytest.raises(ValueError, match=match):
            compare.compare_on_tasks(target, {"r": rule}, **kwargs)


def test_compare_on_tasks_stops_at_an_interrupted_run_and_names_it():
    target = _lines()
    calls = []

    def stopped(task):
        calls.append(task.seed)
        return types.SimpleNamespace(accuracy=0.5, interrupted=True)

    with pytest.raises(KeyboardInterrupt, match=r"rule 'r' at k=1, seed=0 was interrupted"):
        compare.compare_on_tasks(target, {"r": stopped}, k_values=[1], seeds=[0, 1], n_way=3)
    assert calls == [0]                                       # no second task after a stop


def test_ready_made_rules_use_one_neighbour_and_their_distance():
    """Three supports of class 0 at (1, 0), (0.9, 0.1), (0.8, 0.2) and one of class 1 at
    (3, 0.1); query (2.9, 0.1) of class 1: its nearest neighbour is class 1 by cosine and
    by Euclidean distance, while three of its four neighbours are class 0. (k = 2 cannot
    differ from k = 1: knn_accuracy breaks a tie towards the nearest.) Then a task where
    the Euclidean and the cosine nearest prototype disagree."""
    pts = lambda rows: torch.tensor(rows, dtype=torch.float32).view(-1, 1, 1, 2)  # noqa: E731
    task = types.SimpleNamespace(
        support_x=pts([[1, 0], [0.9, 0.1], [0.8, 0.2], [3, 0.1]]),
        support_y=torch.tensor([0, 0, 0, 1]), query_x=pts([[2.9, 0.1]]),
        query_y=torch.tensor([1]))
    flat = torch.nn.Flatten()
    assert compare.pixel_1nn(task) == 1.0
    assert compare.embedding_1nn(flat, distance="euclidean")(task) == 1.0
    # prototypes: c_0 = (0.9, 0.1), c_1 = (3, 0.1); squared Euclidean picks c_1, and so
    # does cosine; a prototype rule with the cosine of a far-off direction would not
    assert compare.nearest_prototype(flat)(task) == 1.0
    far = types.SimpleNamespace(support_x=pts([[10, 0], [1, 1]]),
                                support_y=torch.tensor([0, 1]), query_x=pts([[2, 0.5]]),
                                query_y=torch.tensor([0]))
    # (2, 0.5): 1.1 from (1, 1) (class 1) and 8.0 from (10, 0); by angle 14 degrees from
    # (10, 0) (class 0) and 31 from (1, 1)
    assert compare.nearest_prototype(flat, distance="euclidean")(far) == 0.0
    assert compare.nearest_prototype(flat, distance="cosine")(far) == 1.0
    assert compare.embedding_1nn(flat, distance="cosine")(far) == 1.0
    assert compare.embedding_1nn(flat, distance="euclidean")(far) == 0.0


def test_exceeds_shows_an_accuracy_interval_clipped_to_its_range():
    frame = _frame({1: [0.2, 0.9, 1.0]})
    shown = compare.exceeds(frame, "m", 0.1).loc[0, "estimate"]
    assert shown == "0.700 [0.000, 1.000] (clipped to [0, 1], n = 3)"


def test_method_rule_hands_source_config_and_overrides_to_the_method(monkeypatch):
    calls = []

    def run(name, task, source, config, **overrides):
        calls.append((name, task, source, config, overrides))
        return types.SimpleNamespace(accuracy=0.5)

    monkeypatch.setattr(compare.methods, "run", run)
    source, config = object(), object()
    rule = compare.method_rule("metric", source, config, target_epochs=3)
    assert rule("task").accuracy == 0.5
    assert calls == [("metric", "task", source, config, {"target_epochs": 3})]


def test_sec_weight_study_runs_sec_only_above_weight_zero_on_the_seed_s_task(monkeypatch):
    """Per seed one task drawn with that seed; weight 0 trains without the regularizer,
    every positive weight (0.5 too) with SEC at that weight; the run gets the seed."""
    calls = []

    def run(name, task, source, cfg, seed):
        calls.append((name, task.seed, cfg.regularizer, cfg.regularizer_weight, seed))
        return types.SimpleNamespace(interrupted=False, accuracy=0.5,
                                     model=torch.nn.Flatten(), source=None)

    monkeypatch.setattr(compare.methods, "run", run)
    from dml_kit.methods.config import MethodConfig

    target = _lines()
    frame = compare.sec_weight_study(target, target, weights=[0, 0.5, 2], seeds=[3],
                                     config=MethodConfig(), n_way=3, k_shot=2,
                                     progress=False)
    assert calls == [("metric", 3, None, 0.0, 3), ("metric", 3, "sec", 0.5, 3),
                     ("metric", 3, "sec", 2.0, 3)]
    assert list(frame.columns) == ["weight", "seed", "cv", "norm_mean", "accuracy",
                                   "best_epoch"]
    assert frame["best_epoch"].isna().all() and (frame["norm_mean"] > 0).all()
    with pytest.raises(ValueError, match="weights and seeds must each hold"):
        compare.sec_weight_study(target, target, weights=[1], seeds=[], config=MethodConfig())


def test_compare_losses_checks_its_arguments_and_hands_seed_and_callbacks_on(monkeypatch):
    from dml_kit.methods.config import MethodConfig

    calls = []

    def train_source(kind, source, config, seed, callbacks):
        calls.append((kind, config.loss, seed, callbacks))
        return types.SimpleNamespace(model=torch.nn.Flatten(), interrupted=config.loss == "npair")

    monkeypatch.setattr(compare.methods, "train_source", train_source)
    target, config, watch = _lines(), MethodConfig(), ["a live view"]
    summary, tasks = compare.compare_losses(target, target, ["triplet"], config, n_way=3,
                                            seeds=[0, 1], callbacks=watch, progress=False)
    assert calls == [("embedding", "triplet", 0, watch)]
    assert list(tasks.columns) == ["method", "n", "k", "seed", "accuracy", "note"]
    assert (tasks["n"] == 3).all() and (tasks["k"] == 1).all() and (tasks["note"] == "").all()
    assert summary.loc["triplet", "1-shot interval"].startswith(
        f"{summary.loc['triplet', '3-way 1-shot']:.3f} [")
    with pytest.raises(KeyboardInterrupt, match="the npair training was interrupted"):
        compare.compare_losses(target, target, ["triplet", "npair"], config, n_way=3,
                               seeds=[0], progress=False)
    for bad, match in (({"loss_names": []}, "loss_names must name at least one"),
                       ({"n_way": 5}, "n_way=5.*4 target"), ({"k_shot": 0}, "k_shot=0"),
                       ({"seeds": []}, "seeds must hold at least one")):
        kwargs = {"loss_names": ["triplet"], "n_way": 3, "seeds": [0], **bad}
        with pytest.raises(ValueError, match=match):
            compare.compare_losses(target, target, config=config, progress=False, **kwargs)
