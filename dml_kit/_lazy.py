"""Lazy package attributes (PEP 562), one mechanism for ``dml_kit`` and ``dml_kit.data``:
a package names what it offers, and nothing is imported until first use, so ``import
dml_kit`` loads no torch. :func:`progress_reporting` does the same for the loops'
progress widgets."""

from __future__ import annotations

import contextlib
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


def progress_reporting(*args: Any, **kwargs: Any) -> Any:
    """:func:`dml_kit.viz.progress.reporting`, imported when a loop first reports: the
    modules whose loops take ``progress=`` (:mod:`dml_kit.compare`, the SEC study) then
    import no ipywidgets, IPython or plotly (``dml_kit.viz``) until a loop runs (about
    0.25 s of import saved for scripts and the command line). With ``progress`` (the
    first argument) ``False`` or ``None`` nothing is imported at all."""
    if not args or args[0] is None or args[0] is False:
        return contextlib.nullcontext(_no_report)
    from dml_kit.viz.progress import reporting  # noqa: PLC0415

    return reporting(*args, **kwargs)


def _no_report(rows: Any) -> None:
    """The ``report`` of a loop that shows no progress."""
