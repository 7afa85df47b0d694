"""dml_kit: a notebook-first teaching kit for deep metric learning and k-shot transfer.

``import dml_kit as dk`` imports no submodule beyond :mod:`dml_kit.settings` (and no torch):
``dk.data``, ``dk.models``, ``dk.metrics``, ``dk.losses``, ``dk.regularizers``,
``dk.training``, ``dk.callbacks``, ``dk.methods``, ``dk.experiments``, ``dk.compare``,
``dk.stats``, ``dk.viz``, ``dk.widgets``, ``dk.exercises`` and ``dk.default_device`` /
``dk.seed_everything`` load on first use (``from dml_kit import data`` works as well), so
that reading a results store or printing a report starts in a second instead of waiting
for torch, and importing the kit does not start plotly or numba.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dml_kit import settings
from dml_kit._lazy import lazy_attribute

if TYPE_CHECKING:
    from dml_kit import (
        callbacks,
        compare,
        data,
        exercises,
        experiments,
        losses,
        methods,
        metrics,
        models,
        regularizers,
        stats,
        training,
        viz,
        widgets,
    )
    from dml_kit.device import default_device, seed_everything

__version__ = "0.1.0"

_LAZY = ("data", "models", "metrics", "losses", "regularizers", "training", "callbacks",
         "methods", "experiments", "viz", "compare", "stats", "widgets", "exercises")
#: functions served from a submodule
_FROM = {"default_device": "device", "seed_everything": "device"}

__all__ = ["settings", "default_device", "seed_everything", "__version__", "data", "models",
           "metrics", "losses", "regularizers", "training", "callbacks", "methods",
           "experiments", "viz", "compare", "stats", "widgets", "exercises"]


def __getattr__(name: str) -> Any:
    return lazy_attribute("dml_kit", globals(), name, modules=set(_LAZY), names=_FROM)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
