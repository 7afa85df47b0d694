"""dml_kit: a notebook-first teaching kit for deep metric learning and k-shot transfer.

``import dml_kit as dk`` loads ``dk.data``, ``dk.models``, ``dk.metrics`` and
``dk.settings`` at once, and with metrics (which score with ``losses.distances``)
``dk.losses`` and ``dk.regularizers``; the other modules (``dk.training``,
``dk.callbacks``, ``dk.methods``, ``dk.experiments``, ``dk.compare``, ``dk.stats``,
``dk.viz``, ``dk.widgets``, ``dk.exercises``) load on first use, so that importing the
kit stays fast and does not start plotly or numba.
"""

from __future__ import annotations

import importlib
from typing import Any

from dml_kit import data, metrics, models, settings
from dml_kit.device import default_device, seed_everything

__version__ = "0.1.0"

_LAZY = ("losses", "regularizers", "training", "callbacks", "methods", "experiments", "viz",
         "compare", "stats", "widgets", "exercises")

__all__ = ["data", "models", "metrics", "settings", "default_device", "seed_everything",
           "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(f"dml_kit.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'dml_kit' has no attribute {name!r}")
