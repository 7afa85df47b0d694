"""Grid specifications, source-task choice and presets.

**Source task.** The paper's official code trains T1 on ``n`` classes disjoint from the
``n`` target classes (``SourceSpec(kind="paper")``). For the teaching story we default to
``SourceSpec(kind="split")``: :func:`dml_kit.data.domain_split` cuts the dataset into
class-disjoint source and target halves and the *whole* source half (hundreds of glyph
classes) is T1, the situation that motivates transfer in the first place ("a big
labelled source domain, a new domain with k examples per class"), and one source model
per seed then serves every n and k. Both are one argument away.

**Presets** (:data:`PRESETS`):

* ``classroom``: glyphs, k in {1, 5, 10}, n in {5, 10}, 4 seeds x 5 tasks (20 paired
  replications per cell, enough to resolve each of Adapted Deep Embeddings' three
  conclusions on glyphs; 3 seeds x 1 task left most unresolved), ``metric`` also with
  the contrastive, semi-hard triplet and N-pair losses (conclusion 3), a 16-filter Conv-4 and
  short source training (at most 6 epochs of 40 balanced batches or 40 episodes, patience
  2, Adam 2e-3, validation on 100 held-out classes), sized for the 6 methods x 18 cells on
  2 CPU cores. Target phase: scratch and weight transfer train for up to 150 one- or
  two-step epochs with patience 30 (set when eval-mode batch norm still used barely-moved
  running statistics; now that they are recomputed on the support the
  support accuracy saturates within a few epochs, so most runs stop near epoch 35);
  the hybrids fine-tune at 5e-4 (a quarter of the source rate) with patience 5;
* ``paper``: Adapted Deep Embeddings' Omniglot protocol as far as the config expresses it
  (../shared/PAPERS.md section 1, checked against the official code's option files):
  rotated Omniglot (``omniglot_rotated``: 6,492 classes of 20 drawers; T1 = n random
  classes and T2 = n other random classes, ``SourceSpec(kind="paper", by="class")``,
  which draws classes ignoring alphabets and the background/evaluation division, as the
  code does; a character's rotations may fall on both sides, as there), ADE's Omniglot
  net (``architecture="ade_omniglot"``: (conv, pool) x 2, conv, 32 filters, 128-d;
  histogram outputs L2-normalised, batch norm in the protonet and classifier nets),
  T1 15 train + 5 validation images per class (``val_fraction=0.25``), its grid (k in
  {1, 5, 10}, n in {5, 10, 100, 1000}, 10 replications). Histogram loss and classifiers:
  Adam at 0.005, at most 500 epochs, patience 70 epochs (the Omniglot value; MNIST 20,
  Isolet 50, tinyImageNet 100). The histogram batch is 2,048 at n = 1,000 in the code;
  the config cannot vary the batch with n, so batches are ``batch_classes`` 136 x
  ``batch_per_class`` 15 (capped by the T1 classes): 2,040 at n = 1,000 and the whole T1
  training part (15 n images) for n <= 136, where the code's batch also exceeds it.
  Protonets: Adam at 1e-4 (``episode_lr``; MNIST 1e-3), at most 10,000 episodes
  (``max_episodes``) validated every 200 (``episodes_per_epoch``), patience 4,000 episodes
  (``episode_patience``; 20 validations), 5 queries per class. The T2 rule of the code
  (every ``patience`` epochs stop when the best support score rose < 1%) is approximated
  by plain patience (70 epochs).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dml_kit import data
from dml_kit import losses as loss_registry
from dml_kit._validation import check_choice, check_float, check_int, check_seed
from dml_kit.methods import METHODS
from dml_kit.methods.config import MethodConfig

SOURCE_KINDS = ("split", "paper")
SPLIT_BY = ("class", "group")
EXECUTORS = ("process", "serial", "ray")


@dataclass(frozen=True)
class SourceSpec:
    """How the source (T1) and target (T2) data of a cell are made from one dataset.

    Attributes:
        kind: ``"split"``: T1 = the whole source part of
            ``domain_split(data, target_fraction, by, seed)``; T2 tasks come from the
            target part. ``"paper"``: the same split, but T1 keeps only ``n`` random source
            classes (the paper's code: T1 has n classes too).
        target_fraction: share of classes (or groups) in the target part, in (0, 1).
        by: split by ``"class"`` (target classes from every script) or ``"group"``
            (whole scripts are unseen: a harder, cross-alphabet transfer).
        n_query: queries per class of each task (``None``: every remaining example of
            the smallest chosen class).
        n_val: extra labelled validation examples per class of each task (0: the paper's
            protocol, where the support set is also the validation set).
        data_seed: seed of :func:`dml_kit.data.load` (the dataset itself, fixed).
    """

    kind: str = "split"
    target_fraction: float = 0.5
    by: str = "class"
    n_query: int | None = None
    n_val: int = 0
    data_seed: int = 0

    def __post_init__(self) -> None:
        check_choice("source", self.kind, SOURCE_KINDS)
        check_float("target_fraction", self.target_fraction, 0.0, 1.0,
                    low_inclusive=False, high_inclusive=False)
        check_choice("by", self.by, SPLIT_BY)
        if self.n_query is not None:
            check_int("n_query", self.n_query, 1)
        check_int("n_val", self.n_val, 0)
        check_seed(self.data_seed, "data_seed")


@dataclass(frozen=True)
class Preset:
    """A named bundle: dataset, grid values and training lengths.

    ``tasks`` is the number of target tasks per (seed, n, k): each seed trains its source
    models once and every task reuses them, so a replication is a (seed, task) pair.
    ``tasks_by_n`` gives some ``n`` another task count, ``((5, 10), (10, 10))``: more
    replications where a condition is cheap (small ``n``) tighten the pooled intervals
    (:func:`dml_kit.stats.condition_mean_ci`) for little time.
    ``compare_losses`` are embedding losses run beside the preset's own (``config.loss``)
    for the ``metric`` method, on the same tasks: Adapted Deep Embeddings' third
    conclusion compares the histogram loss with other losses.
    """

    name: str
    description: str
    dataset: str
    k_values: tuple[int, ...]
    n_values: tuple[int, ...]
    seeds: int
    config: MethodConfig
    source: SourceSpec = field(default_factory=SourceSpec)
    tasks: int = 1
    compare_losses: tuple[str, ...] = ()
    tasks_by_n: tuple[tuple[int, int], ...] = ()


CLASSROOM = Preset(
    name="classroom",
    description="glyphs, k in {1,5,10}, n in {5,10}, 4 seeds x 5 tasks, 3 extra losses for "
                "metric: a few minutes on 2 CPU cores",
    dataset="glyphs",
    k_values=(1, 5, 10),
    n_values=(5, 10),
    seeds=4,
    tasks=5,
    compare_losses=("contrastive", "triplet_semi_hard", "npair"),
    config=MethodConfig(
        embedding_dim=64, channels=16,
        source_epochs=6, source_patience=2, source_lr=2e-3, val_fraction=0.15, val_classes=100,
        batch_classes=16, batch_per_class=6, batch_size=96, batches_per_epoch=40,
        episodes_per_epoch=40, query_per_class=5,
        target_epochs=150, target_patience=30, target_lr=5e-3, adapt_lr=5e-4,
        adapt_patience=5,
        adapt_episodes_per_epoch=5,
    ),
    source=SourceSpec(kind="split", target_fraction=0.5, by="class"),
)

PAPER = Preset(
    name="paper",
    description="Adapted Deep Embeddings on rotated Omniglot (6,492 classes) with its nets and "
                "training lengths, k x n = {1,5,10} x {5,10,100,1000}, 10 seeds, T1 = n other "
                "classes: for big machines",
    dataset="omniglot_rotated",
    k_values=(1, 5, 10),
    n_values=(5, 10, 100, 1000),
    seeds=10,
    config=MethodConfig(
        architecture="ade_omniglot", embedding_dim=128, channels=32,
        source_epochs=500, source_patience=70, source_lr=5e-3, val_fraction=0.25,
        batch_classes=136, batch_per_class=15, batch_size=1024, batches_per_epoch=None,
        episodes_per_epoch=200, query_per_class=5,
        episode_lr=1e-4, max_episodes=10_000, episode_patience=4_000,
        target_epochs=500, target_patience=70, target_lr=5e-3, adapt_episodes_per_epoch=200,
    ),
    source=SourceSpec(kind="paper", target_fraction=0.5, by="class"),
)

OMNIGLOT_CPU = Preset(
    name="omniglot_cpu",
    description="Adapted Deep Embeddings on rotated Omniglot with its nets and T1 = n other "
                "classes, k x n = {1,5,10} x {5,10,100}, 3 seeds x 6 tasks (10 tasks at the "
                "cheap n = 5 and 10), semi-hard triplet beside the histogram loss, 1,638 runs: "
                "about 24 minutes on 2 CPU cores (measured in two parts, see the README)",
    dataset="omniglot_rotated",
    k_values=(1, 5, 10),
    n_values=(5, 10, 100),
    seeds=3,
    tasks=6,
    tasks_by_n=((5, 10), (10, 10)),
    compare_losses=("triplet_semi_hard",),
    config=MethodConfig(
        architecture="ade_omniglot", embedding_dim=128, channels=32,
        source_epochs=60, source_patience=10, source_lr=5e-3, val_fraction=0.25,
        val_classes=None,
        batch_classes=136, batch_per_class=15, batch_size=1024, batches_per_epoch=None,
        episodes_per_epoch=25, query_per_class=5,
        episode_lr=1e-3, max_episodes=100, episode_patience=50,
        target_epochs=50, target_patience=5, target_lr=5e-3, adapt_lr=5e-4,
        adapt_patience=5, adapt_episodes_per_epoch=5,
    ),
    source=SourceSpec(kind="paper", target_fraction=0.5, by="class"),
)

ISOLET_CPU = Preset(
    name="isolet_cpu",
    description="Adapted Deep Embeddings on Isolet (617 acoustic features, 26 letters) with "
                "its MLP and T1 = n other letters, k x n = {1,5,10} x {5,10}, 5 seeds x 4 "
                "tasks: a few minutes on 2 CPU cores (the full set or the 1,560-utterance "
                "subset)",
    dataset="isolet",
    k_values=(1, 5, 10),
    n_values=(5, 10),
    seeds=5,
    tasks=4,
    compare_losses=("triplet_semi_hard",),
    config=MethodConfig(
        architecture="ade_isolet", embedding_dim=64, hidden=(128,),
        source_epochs=200, source_patience=50, source_lr=5e-3, val_fraction=0.2,
        val_classes=None,
        batch_classes=10, batch_per_class=48, batch_size=1024, batches_per_epoch=None,
        episodes_per_epoch=50, query_per_class=10,
        episode_lr=1e-4, max_episodes=2_000, episode_patience=1_000,
        target_epochs=200, target_patience=20, target_lr=5e-3, adapt_lr=5e-4,
        adapt_patience=10, adapt_episodes_per_epoch=5,
    ),
    source=SourceSpec(kind="paper", target_fraction=0.5, by="class"),
)

PRESETS: dict[str, Preset] = {p.name: p for p in (CLASSROOM, PAPER, OMNIGLOT_CPU, ISOLET_CPU)}


def get_preset(name: str) -> Preset:
    """The preset called ``name``; unknown names raise ``ValueError`` listing the choices."""
    check_choice("preset", name, PRESETS)
    return PRESETS[name]


def _int_tuple(name: str, values: Iterable[int] | int, low: int) -> tuple[int, ...]:
    if isinstance(values, int) and not isinstance(values, bool):
        values = (values,)
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise ValueError(f"{name} must be a list of ints, got {values!r}")
    out = tuple(dict.fromkeys(check_int(f"{name}[{i}]", v, low)
                              for i, v in enumerate(values)))
    if not out:
        raise ValueError(f"{name} must not be empty")
    return out


def resolve_methods(methods: str | Sequence[str]) -> tuple[str, ...]:
    """``"all"`` or a list of names (``"all"`` may appear in the list) -> method names."""
    if isinstance(methods, str):
        methods = [methods]
    names: list[str] = []
    for m in methods:
        names.extend(METHODS if m == "all" else [m])
    if not names:
        raise ValueError("methods must name at least one method (or 'all')")
    for m in names:
        if m not in METHODS:
            raise ValueError(f"unknown method {m!r} in methods; choose from: all, "
                             f"{', '.join(METHODS)}")
    return tuple(dict.fromkeys(names))


def resolve_losses(losses: str | Sequence[str], main_loss: str) -> tuple[str, ...]:
    """Extra embedding losses for the ``metric`` method: registered loss names other than
    ``main_loss`` (the config's own, already run), refused by name when unknown."""

    if isinstance(losses, str):
        losses = [losses]
    known = loss_registry.available()
    out = []
    for name in losses:
        check_choice("compare_losses", name, known)
        if name != main_loss and name not in out:
            out.append(name)
    return tuple(out)


def resolve_seeds(seeds: int | Sequence[int]) -> tuple[int, ...]:
    """An int ``s`` means seeds ``0..s-1``; a list is taken as it is."""
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        check_int("seeds", seeds, 1, 10_000, hint="a count; pass a list for explicit seeds")
        return tuple(range(seeds))
    if isinstance(seeds, str) or not isinstance(seeds, Iterable):
        raise ValueError(f"seeds must be a count or a list of seeds, got {seeds!r}")
    out = tuple(dict.fromkeys(check_seed(s, f"seeds[{i}]") for i, s in enumerate(seeds)))
    if not out:
        raise ValueError("seeds must not be empty")
    return out


def resolve_data_path(data_path: object) -> str | None:
    """``data_path`` (a folder or file of a dataset, ``str`` or ``os.PathLike``) as an
    absolute path string, ``None`` as ``None``; anything else raises ``ValueError`` naming
    ``data_path``. (Existence is the loader's to check: it says which files it wants.)"""
    if data_path is None:
        return None
    if not isinstance(data_path, (str, os.PathLike)) or not str(data_path).strip():
        raise ValueError(f"data_path must be a folder path (str or os.PathLike) or None, "
                         f"got {data_path!r}")
    return str(Path(data_path).expanduser().resolve())


@dataclass(frozen=True)
class GridSpec:
    """A validated grid: ``methods x k_values x n_values x seeds`` on ``dataset``.

    Build it with :meth:`create` (which accepts ``"all"``, a seed count and preset
    defaults); every error names the offending argument. ``data_path`` travels with the
    spec: the folder of the dataset's files (its loader's ``path=``), absolute, or
    ``None`` for the data folder; :func:`~dml_kit.experiments.grid.grid_cells`,
    :func:`~dml_kit.experiments.grid.plan_jobs` and the jobs load from it.
    """

    dataset: str
    methods: tuple[str, ...]
    k_values: tuple[int, ...]
    n_values: tuple[int, ...]
    seeds: tuple[int, ...]
    config: MethodConfig
    source: SourceSpec
    preset: str = ""
    tasks: int = 1
    compare_losses: tuple[str, ...] = ()
    tasks_by_n: tuple[tuple[int, int], ...] = ()
    data_path: str | None = None

    def tasks_for(self, n: int) -> int:
        """Target tasks per (seed, k) at ``n`` ways: ``tasks_by_n``'s entry, else ``tasks``."""
        return dict(self.tasks_by_n).get(n, self.tasks)

    @classmethod
    def create(cls, dataset: str | None = None, methods: str | Sequence[str] = "all",
               k_values: Iterable[int] | int | None = None,
               n_values: Iterable[int] | int | None = None,
               seeds: int | Sequence[int] | None = None, *, preset: str = "classroom",
               config: MethodConfig | None = None, source: SourceSpec | str | None = None,
               tasks: int | None = None, compare_losses: Sequence[str] | None = None,
               data_path: str | os.PathLike[str] | None = None,
               **config_overrides: Any) -> GridSpec:
        """Fill unset values from ``preset`` and validate everything.

        ``tasks``: target tasks per (seed, n, k) (default: the preset's, with its
        ``tasks_by_n``; a ``tasks`` given here applies to every ``n``);
        ``compare_losses``: extra embedding losses for the ``metric`` method (default:
        the preset's when the grid runs all six methods, the paper's comparison;
        otherwise none); ``data_path``: the dataset's files (e.g. the ``path=`` given to
        :func:`dml_kit.settings.load_dataset`), made absolute."""
        p = get_preset(preset)

        dataset = p.dataset if dataset is None else dataset
        names = data.available()
        if dataset not in names:
            raise ValueError(f"unknown dataset {dataset!r}; choose one of: {', '.join(names)}")
        if isinstance(source, str):
            source = dataclasses.replace(p.source, kind=check_choice("source", source,
                                                                     SOURCE_KINDS))
        cfg = config or p.config
        if config_overrides:
            cfg = cfg.replace(**config_overrides)
        chosen = resolve_methods(methods)
        return cls(dataset=dataset, methods=chosen,
                   k_values=_int_tuple("k_values", p.k_values if k_values is None else k_values,
                                       1),
                   n_values=_int_tuple("n_values", p.n_values if n_values is None else n_values,
                                       2),
                   seeds=resolve_seeds(p.seeds if seeds is None else seeds),
                   config=cfg, source=source or p.source, preset=p.name,
                   tasks=check_int("tasks", p.tasks if tasks is None else tasks, 1, 100),
                   tasks_by_n=(() if tasks is not None else tuple(
                       (n, check_int(f"tasks_by_n[{n}]", t, 1, 100))
                       for n, t in p.tasks_by_n)),
                   compare_losses=resolve_losses(
                       (p.compare_losses if set(chosen) == set(METHODS) else ())
                       if compare_losses is None else compare_losses, cfg.loss),
                   data_path=resolve_data_path(data_path))

    @property
    def n_cells(self) -> int:
        per_condition = len(self.methods) + len(self.compare_losses)
        return (per_condition * len(self.k_values) * len(self.seeds)
                * sum(self.tasks_for(n) for n in self.n_values))
