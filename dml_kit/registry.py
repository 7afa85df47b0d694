"""A name -> factory table with the parameters each factory takes: :class:`Registry`.

The losses (:mod:`dml_kit.losses`) and the regularizers (:mod:`dml_kit.regularizers`)
each keep one; widgets and grids list and build them by name. This module imports
nothing of the kit, so either side can use it without an import cycle.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch.nn as nn


@dataclass(frozen=True)
class Spec:
    """What a registry entry takes.

    ``params``: optional parameters and their defaults; ``required``: parameters without
    a default (for proxy losses ``num_classes`` and ``embedding_dim``);
    ``needs_num_classes`` / ``needs_embedding_dim``: whether the caller must pass them.
    """

    name: str
    description: str
    kind: str
    params: dict[str, Any] = field(default_factory=dict)
    required: tuple[str, ...] = ()

    @property
    def needs_num_classes(self) -> bool:
        return "num_classes" in self.required

    @property
    def needs_embedding_dim(self) -> bool:
        return "embedding_dim" in self.required


class Registry:
    """Name -> factory table; ``what`` ("loss", "regularizer") appears in error messages."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, tuple[Callable[..., nn.Module], Spec]] = {}

    def register(self, name: str, factory: Callable[..., nn.Module], description: str,
                 kind: str) -> None:
        """Add ``factory`` under ``name``; its signature gives the parameters and defaults."""
        params: dict[str, Any] = {}
        required: list[str] = []
        for p in inspect.signature(factory).parameters.values():
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            if p.default is inspect.Parameter.empty:
                required.append(p.name)
            else:
                params[p.name] = p.default
        self._entries[name] = (factory, Spec(name, description, kind, params, tuple(required)))

    def available(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._entries)

    def _entry(self, name: str) -> tuple[Callable[..., nn.Module], Spec]:
        if name not in self._entries:
            raise ValueError(f"unknown {self.what} {name!r}; choose one of: "
                             f"{', '.join(self._entries)}")
        return self._entries[name]

    def spec(self, name: str) -> Spec:
        """Parameters (with defaults), required parameters and description of ``name``."""
        return self._entry(name)[1]

    def get(self, name: str, **params: Any) -> nn.Module:
        """Build ``name`` with ``params``; unknown or missing parameters raise ValueError."""
        factory, spec = self._entry(name)
        allowed = [*spec.required, *spec.params]
        for key in params:
            if key not in allowed:
                raise ValueError(f"unknown parameter {key!r} for {self.what} {name!r}; "
                                 f"allowed: {', '.join(allowed) or '(none)'}")
        missing = [key for key in spec.required if key not in params]
        if missing:
            raise ValueError(f"{self.what} {name!r} needs {', '.join(missing)} "
                             f"(e.g. get({name!r}, num_classes=10, embedding_dim=64))")
        return factory(**params)


__all__ = ["Registry", "Spec"]
