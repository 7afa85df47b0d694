"""Class-disjoint domain splits and k-shot target tasks.

The k-shot transfer setting of Adapted Deep Embeddings (Scott et al., 2018): a *source*
domain with many labelled examples per class and a *target* task with ``n_way`` new
classes and ``k_shot`` labelled examples per class; source and target classes are
disjoint and the score is the accuracy on held-out target queries.

- :func:`domain_split` cuts a dataset's classes into source and target (by class, or by
  whole group, i.e. alphabet, for a larger domain shift).
- :func:`kshot_task` draws one task from the target domain: support, optional held-out
  validation and query examples, labels ``0 .. n_way - 1``.

Both are deterministic for a given ``seed`` (a private ``torch.Generator``, the global
random state is never touched).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

from dml_kit._validation import check_choice, check_float, check_int, check_seed
from dml_kit.data.core import Dataset


def _check_dataset(name: str, value: object) -> Dataset:
    if not isinstance(value, Dataset):
        raise ValueError(f"{name} must be a dml_kit.data.Dataset, got {type(value).__name__}")
    return value


# ---- domain split ----------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class DomainSplit:
    """Source and target domains with disjoint classes (unpacks as ``source, target``).

    Attributes:
        source, target: the two datasets, each relabelled ``0 .. n_classes - 1``.
        source_classes, target_classes: their class ids in the original dataset (sorted;
            ``target.class_names[i]`` is the original class ``target_classes[i]``).
        by: ``"class"`` or ``"group"``; seed: the seed used.
    """

    source: Dataset
    target: Dataset
    source_classes: tuple[int, ...] = ()
    target_classes: tuple[int, ...] = ()
    by: str = "class"
    seed: int = 0

    def __iter__(self) -> Iterator[Dataset]:
        yield self.source
        yield self.target

    def __repr__(self) -> str:
        def side(data: Dataset) -> str:
            return f"{data.n_classes} classes in {len(data.groups)} groups, {len(data)} examples"

        return (f"DomainSplit(by={self.by!r}, seed={self.seed}: source {side(self.source)}; "
                f"target {side(self.target)})")


def domain_split(data: Dataset, *, n_target_classes: int | None = None,
                 target_fraction: float = 0.5, by: str = "class", seed: int = 0) -> DomainSplit:
    """Split ``data`` into class-disjoint source and target domains.

    Args:
        data: the dataset to split (needs at least 2 classes; 2 groups for ``by="group"``).
        n_target_classes: classes in the target domain (``1 .. n_classes - 1``); when
            given, ``target_fraction`` is ignored.
        target_fraction: otherwise the target gets ``round(target_fraction * n_classes)``
            classes (at least 1, at most ``n_classes - 1``); in ``(0, 1)``.
        by: ``"class"`` draws target classes at random; ``"group"`` moves whole groups
            (alphabets), in random order, into the target until it has at least the
            requested number of classes, always leaving at least one group for the
            source (so the target can end up with fewer classes than asked for when one
            group is very large).
        seed: int >= 0.

    Returns:
        :class:`DomainSplit` with datasets named ``"<name>[source]"`` and ``"<name>[target]"``.
    """
    data = _check_dataset("data", data)
    by = check_choice("by", by, ("class", "group"))
    seed = check_seed(seed)
    n_classes = data.n_classes
    if n_classes < 2:
        raise ValueError(f"data must have at least 2 classes to split, {data.name!r} has "
                         f"{n_classes}")
    if n_target_classes is None:
        target_fraction = check_float("target_fraction", target_fraction, 0.0, 1.0,
                                      low_inclusive=False, high_inclusive=False)
        n_target = min(max(round(target_fraction * n_classes), 1), n_classes - 1)
    else:
        n_target = check_int("n_target_classes", n_target_classes, 1, n_classes - 1,
                             hint=f"{data.name!r} has {n_classes} classes")
    generator = torch.Generator().manual_seed(seed)

    if by == "class":
        order = torch.randperm(n_classes, generator=generator).tolist()
        target_ids = sorted(order[:n_target])
    else:
        groups = data.groups
        if len(groups) < 2:
            raise ValueError(f"by='group' needs at least 2 groups; {data.name!r} has "
                             f"{len(groups)} ({', '.join(groups)}); use by='class'")
        members: dict[str, list[int]] = {g: [] for g in groups}
        for class_id, group in enumerate(data.class_groups):
            members[group].append(class_id)
        target_ids = []
        for g in torch.randperm(len(groups), generator=generator).tolist()[:-1]:
            if len(target_ids) >= n_target:
                break
            target_ids.extend(members[groups[g]])
        target_ids.sort()
    chosen = set(target_ids)
    source_ids = [c for c in range(n_classes) if c not in chosen]
    return DomainSplit(
        source=data.select_classes(source_ids, name=f"{data.name}[source]"),
        target=data.select_classes(target_ids, name=f"{data.name}[target]"),
        source_classes=tuple(source_ids),
        target_classes=tuple(target_ids),
        by=by,
        seed=seed,
    )


# ---- k-shot task -----------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class KShotTask:
    """One n-way k-shot task drawn from a target domain; labels are ``0 .. n_way - 1``.

    Tensors are ordered class by class (all of class 0, then class 1, ...).

    Attributes:
        support_x, support_y: ``k_shot`` labelled examples per class (``n_way * k_shot``).
        val_x, val_y: examples for early stopping while adapting. With ``n_val == 0`` this
            *is* the support set (the Adapted Deep Embeddings protocol scores the support
            set itself); with ``n_val > 0`` it holds that many more labelled examples per
            class, disjoint from support and queries.
        query_x, query_y: held-out test examples, the same number per class.
        class_names: the task's classes, in label order.
        n_way, k_shot, seed, n_val: how the task was drawn.
        class_groups: the group of each class.
        classes: the class ids in the target dataset, in label order.
        support_idx, val_idx, query_idx: row indices into the target dataset.
        dataset_name: name of the dataset the task was drawn from.
    """

    support_x: torch.Tensor
    support_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    query_x: torch.Tensor
    query_y: torch.Tensor
    class_names: tuple[str, ...]
    n_way: int
    k_shot: int
    seed: int
    n_val: int = 0
    class_groups: tuple[str, ...] = ()
    classes: tuple[int, ...] = ()
    support_idx: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.long),
                                      repr=False)
    val_idx: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.long),
                                  repr=False)
    query_idx: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.long),
                                    repr=False)
    dataset_name: str = ""

    @property
    def support(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(support_x, support_y)``."""
        return self.support_x, self.support_y

    @property
    def val(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(val_x, val_y)`` (the support set when ``n_val == 0``)."""
        return self.val_x, self.val_y

    @property
    def query(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(query_x, query_y)``."""
        return self.query_x, self.query_y

    @property
    def n_query(self) -> int:
        """Queries per class."""
        return int(self.query_y.shape[0]) // self.n_way

    @property
    def input_shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. ``(1, 28, 28)``."""
        return tuple(self.support_x.shape[1:])

    def __repr__(self) -> str:
        shown = ", ".join(self.class_names[:5]) + (", ..." if self.n_way > 5 else "")
        val = ("validation = support" if self.n_val == 0
               else f"{self.n_val} validation")
        source = f"{self.dataset_name!r}: " if self.dataset_name else ""
        return (f"KShotTask({source}{self.n_way}-way {self.k_shot}-shot, {val} and "
                f"{self.n_query} queries per class, seed={self.seed}; classes: {shown})")


def kshot_task(target: Dataset, n_way: int, k_shot: int, *, n_query: int | None = None,
               n_val: int = 0, seed: int = 0) -> KShotTask:
    """Draw an ``n_way``-way ``k_shot``-shot task from ``target``.

    ``n_way`` classes are drawn at random (labelled ``0 .. n_way - 1`` in the target's class
    order); within each class the examples are shuffled and cut into ``k_shot`` support,
    ``n_val`` validation and ``n_query`` query examples.

    Args:
        target: the target-domain dataset.
        n_way: classes in the task, ``1 .. target.n_classes``.
        k_shot: labelled support examples per class; at most the size of the smallest
            chosen class minus ``n_val`` minus 1 (at least one query must remain).
        n_query: queries per class; ``None`` takes every remaining example of the
            smallest chosen class, so that queries are balanced.
        n_val: extra labelled examples per class held out for early stopping; ``0``
            (default) makes the validation part the support set itself.
        seed: int >= 0.

    Raises:
        ValueError: naming the argument and its allowed range.
    """
    target = _check_dataset("target", target)
    n_way = check_int("n_way", n_way, 1, target.n_classes,
                      hint=f"{target.name!r} has {target.n_classes} classes")
    k_shot = check_int("k_shot", k_shot, 1)
    n_val = check_int("n_val", n_val, 0)
    if n_query is not None:
        n_query = check_int("n_query", n_query, 1)
    seed = check_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    classes = torch.randperm(target.n_classes, generator=generator)[:n_way].sort().values

    counts = target.class_counts[classes]
    smallest = int(counts.min())
    smallest_name = target.class_names[int(classes[counts.argmin()])]
    about = f"the smallest chosen class {smallest_name!r} has {smallest} examples"
    n_val = check_int("n_val", n_val, 0, smallest - 2,
                      hint=f"{about}; at least 1 support and 1 query example must remain")
    k_shot = check_int("k_shot", k_shot, 1, smallest - n_val - 1,
                       hint=f"{about}; n_val={n_val} and at least 1 query must remain")
    remaining = smallest - k_shot - n_val
    n_query = remaining if n_query is None else check_int(
        "n_query", n_query, 1, remaining,
        hint=f"{about}; k_shot={k_shot} and n_val={n_val} are taken")

    # shuffle within each class: sort by random key, then (stably) by label
    label_of = torch.full((target.n_classes,), -1, dtype=torch.long)
    label_of[classes] = torch.arange(n_way)
    rows = torch.nonzero(label_of[target.y] >= 0).squeeze(1)
    keys = torch.rand(rows.shape[0], generator=generator)
    order = keys.argsort()
    labels = label_of[target.y[rows[order]]]
    order = order[labels.argsort(stable=True)]
    rows = rows[order]
    labels = label_of[target.y[rows]]
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(rows.shape[0]) - starts[labels]

    def part(lo: int, hi: int) -> torch.Tensor:
        return rows[(rank >= lo) & (rank < hi)]

    support_idx = part(0, k_shot)
    query_idx = part(k_shot + n_val, k_shot + n_val + n_query)
    support_x, support_y = target.x[support_idx], label_of[target.y[support_idx]]
    if n_val:
        val_idx = part(k_shot, k_shot + n_val)
        val_x, val_y = target.x[val_idx], label_of[target.y[val_idx]]
    else:  # the Adapted Deep Embeddings protocol: validate on the support set itself
        val_idx, val_x, val_y = support_idx, support_x, support_y
    return KShotTask(
        support_x=support_x, support_y=support_y, val_x=val_x, val_y=val_y,
        query_x=target.x[query_idx], query_y=label_of[target.y[query_idx]],
        class_names=tuple(target.class_names[c] for c in classes.tolist()),
        n_way=n_way, k_shot=k_shot, seed=seed, n_val=n_val,
        class_groups=tuple(target.class_groups[c] for c in classes.tolist()),
        classes=tuple(classes.tolist()),
        support_idx=support_idx, val_idx=val_idx, query_idx=query_idx,
        dataset_name=target.name,
    )
