"""Run-time settings read from the environment.

``DML_KIT_FAST=1`` is the fast setting CI uses to execute every notebook top to bottom:
it shrinks epochs, episodes and grid sizes (never skips a cell). Notebooks call
:func:`pick` so that one line says both the classroom value and the fast one.
"""

from __future__ import annotations

import os
from typing import TypeVar

T = TypeVar("T")


def fast_mode() -> bool:
    """True when the environment variable ``DML_KIT_FAST`` is set to a true value."""
    return os.environ.get("DML_KIT_FAST", "").strip().lower() in {"1", "true", "yes", "on"}


def pick(default: T, fast: T) -> T:
    """``fast`` under ``DML_KIT_FAST=1``, else ``default`` (e.g. ``epochs = pick(30, 2)``)."""
    return fast if fast_mode() else default
