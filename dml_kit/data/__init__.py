"""Datasets, class-disjoint domain splits, k-shot tasks and batch samplers.

``load(name)`` returns a :class:`Dataset`. Loaders live in a small registry: the
embedded ``digits`` and ``glyphs`` are registered below, and a module that adds
downloadable datasets (``dml_kit/data/real.py``) registers its own at import time::

    from dml_kit.data import register

    def load_mnist(*, seed=0, download=False, root=None) -> Dataset: ...
    register("mnist", load_mnist)

This package imports ``dml_kit.data.real`` (when that module exists) after the registry
is defined, so its datasets show up in :func:`available` without further wiring.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
from collections.abc import Callable

from dml_kit._validation import check_seed
from dml_kit.data.core import Dataset
from dml_kit.data.samplers import BalancedBatchSampler, Episode, EpisodeSampler
from dml_kit.data.shift import ShiftSplit, frechet_distance, shift_splits
from dml_kit.data.tasks import DomainSplit, KShotTask, domain_split, kshot_task

__all__ = [
    "Dataset", "load", "available", "register", "domain_split", "DomainSplit", "kshot_task",
    "KShotTask", "BalancedBatchSampler", "EpisodeSampler", "Episode", "ShiftSplit",
    "frechet_distance", "shift_splits",
]


_LOADERS: dict[str, Callable[..., Dataset]] = {}


def register(name: str, loader: Callable[..., Dataset], *, replace: bool = False) -> None:
    """Make ``load(name)`` call ``loader(seed=..., download=..., root=...)``.

    Names are case-insensitive. Registering a taken name raises ``ValueError`` unless
    ``replace=True``.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if not callable(loader):
        raise ValueError(f"loader must be callable, got {loader!r}")
    key = name.strip().lower()
    if key in _LOADERS and not replace:
        raise ValueError(f"dataset {key!r} is already registered; pass replace=True")
    _LOADERS[key] = loader


def available() -> list[str]:
    """Names accepted by :func:`load`, sorted."""
    return sorted(_LOADERS)


def load(name: str, *, seed: int = 0, download: bool = False,
         root: str | os.PathLike[str] | None = None, **options: object) -> Dataset:
    """Load a dataset by name (see :func:`available`).

    Args:
        name: e.g. ``"digits"`` or ``"glyphs"`` (case-insensitive).
        seed: for datasets that are generated (``glyphs``: the jitter); an int >= 0.
        download: allow downloadable datasets to fetch their files; embedded ones ignore it.
        root: cache folder; default ``$DML_KIT_DATA`` or the checkout's ``data/``.
        options: loader-specific settings passed through, e.g. ``path=`` (files you
            already have), ``mirror=``, ``part="test"`` or ``size=`` for the real datasets
            (:mod:`dml_kit.data.real`).

    Raises:
        ValueError: unknown name (the message lists the known ones), a bad seed, or an
            option the loader does not take (the message lists the ones it does).
    """
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in _LOADERS:
        raise ValueError(f"unknown dataset name {name!r}; choose one of: "
                         f"{', '.join(available())}")
    seed = check_seed(seed)
    loader = _LOADERS[key]
    if options:
        params = inspect.signature(loader).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        unknown = sorted(set(options) - set(params))
        if unknown and not takes_any:
            allowed = sorted(set(params) - {"seed", "download", "root"})
            raise ValueError(f"dataset {key!r} does not take option(s) {unknown}; "
                             f"it takes: {', '.join(allowed) or 'no options'}")
    return loader(seed=seed, download=bool(download), root=root, **options)


def _register_embedded() -> None:
    from dml_kit.data.embedded import load_digits, load_glyph_set

    register("digits", load_digits, replace=True)
    register("glyphs", load_glyph_set, replace=True)


_register_embedded()

if importlib.util.find_spec("dml_kit.data.real") is not None:
    importlib.import_module("dml_kit.data.real")  # registers the downloadable datasets
