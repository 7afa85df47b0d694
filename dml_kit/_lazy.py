"""Lazy package attributes (PEP 562), one mechanism for ``dml_kit`` and ``dml_kit.data``:
a package names what it offers, and nothing is imported until first use, so ``import
dml_kit`` loads no torch."""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from typing import Any


def lazy_attribute(package: str, namespace: dict[str, Any], name: str, *,
                   modules: frozenset[str] | set[str] = frozenset(),
                   names: Mapping[str, str] | None = None) -> Any:
    """The value of ``package.name`` on first use, cached in ``namespace`` (the package's
    globals): a submodule listed in ``modules``, a name defined by the submodule
    ``names[name]``, or any other submodule of ``package``; else ``AttributeError``."""
    if name in modules:
        value = importlib.import_module(f"{package}.{name}")
    elif names and name in names:
        value = getattr(importlib.import_module(f"{package}.{names[name]}"), name)
    elif not name.startswith("_") and importlib.util.find_spec(f"{package}.{name}") is not None:
        return importlib.import_module(f"{package}.{name}")  # any other submodule
    else:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    namespace[name] = value
    return value
