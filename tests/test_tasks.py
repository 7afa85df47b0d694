"""domain_split and kshot_task: hand-computed cases, disjointness, determinism, errors."""

from __future__ import annotations

import pytest
import torch

from dml_kit.data import Dataset, DomainSplit, KShotTask, domain_split, kshot_task


def make_dataset(sizes: list[int], groups: list[str] | None = None) -> Dataset:
    """Class c has sizes[c] examples; x holds each example's row number (so x == index)."""
    y = torch.cat([torch.full((n,), c, dtype=torch.long) for c, n in enumerate(sizes)])
    x = torch.arange(len(y), dtype=torch.float32).unsqueeze(1)
    names = tuple(f"c{c}" for c in range(len(sizes)))
    return Dataset("toy", x, y, names, tuple(groups or ["g"] * len(sizes)))


# ---- domain_split ----------------------------------------------------------------------
def test_domain_split_by_class_is_disjoint_and_complete() -> None:
    data = make_dataset([4] * 10)
    split = domain_split(data, n_target_classes=3, seed=1)
    assert isinstance(split, DomainSplit)
    assert split.target.n_classes == 3 and split.source.n_classes == 7
    assert set(split.source_classes).isdisjoint(split.target_classes)
    assert sorted(split.source_classes + split.target_classes) == list(range(10))
    assert list(split.target_classes) == sorted(split.target_classes)
    # relabelled 0..n-1 and the names follow the original classes
    assert split.target.class_names == tuple(f"c{c}" for c in split.target_classes)
    assert split.target.y.unique().tolist() == [0, 1, 2]
    assert len(split.source) + len(split.target) == len(data)
    assert split.source.name == "toy[source]" and split.target.name == "toy[target]"
    source, target = split  # unpacks
    assert source is split.source and target is split.target
    assert "DomainSplit(by='class'" in repr(split)


def test_domain_split_fraction_rounds_and_keeps_both_sides() -> None:
    data = make_dataset([2] * 10)
    assert domain_split(data, target_fraction=0.25).target.n_classes == 2  # round(2.5) = 2
    assert domain_split(data, target_fraction=0.01).target.n_classes == 1
    assert domain_split(data, target_fraction=0.99).target.n_classes == 9


def test_domain_split_by_group_moves_whole_groups() -> None:
    groups = ["a"] * 3 + ["b"] * 4 + ["c"] * 2 + ["d"] * 5
    data = make_dataset([3] * len(groups), groups)
    for seed in range(10):
        split = domain_split(data, n_target_classes=4, by="group", seed=seed)
        assert set(split.source.groups).isdisjoint(split.target.groups)
        assert split.target.n_classes >= 4
        assert split.source.n_classes >= 2  # at least one group is left
        for group in split.target.groups:  # whole groups only
            assert split.target.class_groups.count(group) == groups.count(group)


def test_domain_split_is_deterministic_and_seed_dependent() -> None:
    data = make_dataset([2] * 40)
    a = domain_split(data, seed=3)
    b = domain_split(data, seed=3)
    c = domain_split(data, seed=4)
    assert a.target_classes == b.target_classes
    assert torch.equal(a.target.x, b.target.x)
    assert a.target_classes != c.target_classes


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"by": "alphabet"}, "by"),
    ({"seed": "1"}, "seed"),
    ({"seed": -1}, "seed"),
    ({"seed": 1.5}, "seed"),
    ({"n_target_classes": 0}, "n_target_classes"),
    ({"n_target_classes": 5}, "n_target_classes=5 is out of range: must be between 1 and 4"),
    ({"target_fraction": 1.0}, "target_fraction"),
    ({"target_fraction": 0}, "target_fraction"),
])
def test_domain_split_errors(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        domain_split(make_dataset([2] * 5), **kwargs)


def test_domain_split_by_group_needs_two_groups() -> None:
    with pytest.raises(ValueError, match="by='group' needs at least 2 groups"):
        domain_split(make_dataset([2] * 5), by="group")
    with pytest.raises(ValueError, match="data"):
        domain_split([1, 2, 3])  # type: ignore[arg-type]


# ---- kshot_task ------------------------------------------------------------------------
def test_kshot_task_hand_computed_sizes() -> None:
    data = make_dataset([5, 7, 9])  # smallest class: 5 examples
    task = kshot_task(data, n_way=3, k_shot=2, seed=0)
    assert isinstance(task, KShotTask)
    assert task.classes == (0, 1, 2)
    assert task.support_y.tolist() == [0, 0, 1, 1, 2, 2]
    assert task.n_query == 3  # 5 - 2: every remaining example of the smallest class
    assert task.query_y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert task.support_x.shape == (6, 1) and task.query_x.shape == (9, 1)
    # x stores the row number, so x and y must agree with the data
    rows = torch.cat([task.support_x, task.query_x]).squeeze(1).long()
    labels = torch.cat([task.support_y, task.query_y])
    assert torch.equal(data.y[rows], labels)
    assert torch.equal(task.support_idx, task.support_x.squeeze(1).long())
    assert len(set(rows.tolist())) == len(rows)  # support and query disjoint
    # n_val = 0: the validation part is the support set (ADE protocol)
    assert task.val_x is task.support_x and task.val_y is task.support_y
    assert task.support == (task.support_x, task.support_y)
    assert task.query == (task.query_x, task.query_y)
    assert task.input_shape == (1,)
    assert "3-way 2-shot" in repr(task) and "validation = support" in repr(task)


def test_kshot_task_with_validation_and_fixed_queries() -> None:
    data = make_dataset([10, 12, 11, 30])
    task = kshot_task(data, n_way=4, k_shot=3, n_val=2, n_query=4, seed=5)
    assert task.n_val == 2
    assert task.val_y.tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert task.n_query == 4 and task.query_y.shape == (16,)
    parts = [task.support_idx, task.val_idx, task.query_idx]
    all_rows = torch.cat(parts).tolist()
    assert len(set(all_rows)) == len(all_rows)  # three disjoint parts
    for idx, ys in zip(parts, [task.support_y, task.val_y, task.query_y], strict=True):
        assert torch.equal(data.y[idx], torch.tensor(task.classes)[ys])
    # n_query=None: the smallest chosen class (10) minus k_shot minus n_val
    assert kshot_task(data, n_way=4, k_shot=3, n_val=2, seed=5).n_query == 5


def test_kshot_task_labels_follow_class_order_and_names() -> None:
    data = make_dataset([3] * 20)
    task = kshot_task(data, n_way=5, k_shot=1, seed=2)
    assert list(task.classes) == sorted(task.classes)
    assert task.class_names == tuple(f"c{c}" for c in task.classes)
    assert task.class_groups == ("g",) * 5
    assert task.dataset_name == "toy"


def test_kshot_task_is_deterministic_and_seed_dependent() -> None:
    data = make_dataset([8] * 30)
    a, b = (kshot_task(data, 5, 2, seed=11) for _ in range(2))
    c = kshot_task(data, 5, 2, seed=12)
    for name in ("support_x", "support_y", "val_x", "query_x", "query_y"):
        assert torch.equal(getattr(a, name), getattr(b, name))
    assert not torch.equal(a.support_x, c.support_x)


def test_kshot_task_shuffles_within_classes() -> None:
    data = make_dataset([50, 50])
    firsts = {int(kshot_task(data, 2, 1, seed=s).support_idx[0]) for s in range(20)}
    assert len(firsts) > 5


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"n_way": 4}, r"n_way=4 is out of range: must be between 1 and 3"),
    ({"n_way": 0}, "n_way"),
    ({"n_way": 2.0}, "n_way must be an int"),
    ({"k_shot": 5}, r"k_shot=5 is out of range: must be between 1 and 4"),  # 5 - 0 - 1
    ({"k_shot": 4, "n_val": 1}, r"k_shot=4 is out of range: must be between 1 and 3"),
    ({"k_shot": 0}, "k_shot"),
    ({"n_val": 4}, r"n_val=4 is out of range: must be between 0 and 3"),
    ({"n_val": -1}, "n_val"),
    ({"n_query": 4}, r"n_query=4 is out of range: must be between 1 and 3"),  # 5 - 2
    ({"n_query": 0}, "n_query"),
    ({"seed": "0"}, "seed must be an int"),
    ({"seed": -3}, "seed"),
])
def test_kshot_task_errors(kwargs: dict, match: str) -> None:
    args = {"n_way": 3, "k_shot": 2} | kwargs
    n_way, k_shot = args.pop("n_way"), args.pop("k_shot")
    with pytest.raises(ValueError, match=match):
        kshot_task(make_dataset([5, 7, 9]), n_way, k_shot, **args)


def test_kshot_task_error_names_smallest_class() -> None:
    with pytest.raises(ValueError, match="smallest chosen class 'c0' has 5 examples"):
        kshot_task(make_dataset([5, 7, 9]), 3, 10)
    with pytest.raises(ValueError, match="target"):
        kshot_task("glyphs", 3, 1)  # type: ignore[arg-type]
