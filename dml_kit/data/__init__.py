"""Datasets, class-disjoint domain splits, k-shot tasks and batch samplers.

``load(name)`` returns a :class:`Dataset`. Loaders live in a small registry: the
embedded ``digits`` and ``glyphs`` are registered below, and a module that adds
downloadable datasets (``dml_kit/data/real.py``) registers its own at import time::

    from dml_kit.data import register

    def load_mnist(*, seed=0, download=False, root=None) -> Dataset: ...
    register("mnist", load_mnist)

This package imports ``dml_kit.data.real`` (when that module exists) the first time the
registry is used (:func:`load`, :func:`available`, :func:`register`), so its datasets
show up in :func:`available` without further wiring.

Importing this package does not import torch: :class:`Dataset`, the samplers, splits,
tasks and the shift ladder load on first use (``data.Dataset``, ``from dml_kit.data
import kshot_task``), so that reading a results store (which only needs
:mod:`dml_kit.data.paths`) stays light.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from dml_kit._lazy import lazy_attribute
from dml_kit._validation import check_seed

if TYPE_CHECKING:
    from dml_kit.data.core import Dataset
    from dml_kit.data.samplers import BalancedBatchSampler, Episode, EpisodeSampler
    from dml_kit.data.shift import ShiftSplit, frechet_distance, shift_splits
    from dml_kit.data.tasks import DomainSplit, KShotTask, domain_split, kshot_task

__all__ = [
    "Dataset", "load", "available", "register", "domain_split", "DomainSplit", "kshot_task",
    "KShotTask", "BalancedBatchSampler", "EpisodeSampler", "Episode", "ShiftSplit",
    "frechet_distance", "shift_splits",
]


#: public name -> the submodule that defines it, imported on first use (PEP 562)
_LAZY = {
    "Dataset": "core", "BalancedBatchSampler": "samplers", "Episode": "samplers",
    "EpisodeSampler": "samplers", "ShiftSplit": "shift", "frechet_distance": "shift",
    "shift_splits": "shift", "DomainSplit": "tasks", "KShotTask": "tasks",
    "domain_split": "tasks", "kshot_task": "tasks",
}


def __getattr__(name: str) -> Any:
    return lazy_attribute("dml_kit.data", globals(), name, names=_LAZY)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


_LOADERS: dict[str, Callable[..., Dataset]] = {}
#: the registry dict the real datasets were registered in (None: not yet)
_REAL_IN: dict[str, Callable[..., Dataset]] | None = None


def _ensure_real() -> None:
    """Register the downloadable datasets of ``dml_kit.data.real`` (it imports torch) the
    first time the registry is used, and again if ``_LOADERS`` was swapped for another."""
    global _REAL_IN
    if _REAL_IN is _LOADERS or importlib.util.find_spec("dml_kit.data.real") is None:
        return
    _REAL_IN = _LOADERS
    real = importlib.import_module("dml_kit.data.real")  # registers at its first import
    real.register_all(register)


def register(name: str, loader: Callable[..., Dataset], *, replace: bool = False) -> None:
    """Make ``load(name)`` call ``loader(seed=..., download=..., root=...)``.

    Names are case-insensitive. Registering a taken name raises ``ValueError`` unless
    ``replace=True``.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    if not callable(loader):
        raise ValueError(f"loader must be callable, got {loader!r}")
    _ensure_real()
    key = name.strip().lower()
    if key in _LOADERS and not replace:
        raise ValueError(f"dataset {key!r} is already registered; pass replace=True")
    _LOADERS[key] = loader


def available() -> list[str]:
    """Names accepted by :func:`load`, sorted."""
    _ensure_real()
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
    _ensure_real()
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

    # straight into the table: register() would import the real datasets (and torch) now
    _LOADERS["digits"] = load_digits
    _LOADERS["glyphs"] = load_glyph_set


_register_embedded()
