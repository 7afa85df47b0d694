"""Argument checks shared by every public entry point.

Each helper raises ``ValueError`` (or ``TypeError`` for a wrong type that is not a
number) whose message names the argument and the allowed range, so a student sees
"k_shot=30 is out of range: must be between 1 and 20 ..." instead of a traceback from
deep inside torch.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch loads only when a tensor check runs (the CLI imports this module)
    import torch


def check_int(name: str, value: object, low: int | None = None, high: int | None = None,
              hint: str = "") -> int:
    """Return ``value`` as an int after checking ``low <= value <= high``.

    Booleans and floats are refused (``k_shot=2.0`` is almost always a bug).
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
    value = int(value)
    if (low is not None and value < low) or (high is not None and value > high):
        if low is not None and high is not None:
            allowed = f"between {low} and {high}"
        elif low is not None:
            allowed = f">= {low}"
        else:
            allowed = f"<= {high}"
        extra = f" ({hint})" if hint else ""
        raise ValueError(f"{name}={value} is out of range: must be {allowed}{extra}")
    return value


def check_float(name: str, value: object, low: float | None = None, high: float | None = None,
                low_inclusive: bool = True, high_inclusive: bool = True) -> float:
    """Return ``value`` as a float after checking it lies in the given interval."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if value != value or value in (float("inf"), float("-inf")) or too_low or too_high:
        # NaN and inf fail too: no setting of the kit is meaningful at infinity
        lo = "-inf" if low is None else f"{low:g}"
        hi = "inf" if high is None else f"{high:g}"
        lb = "[" if low_inclusive and low is not None else "("
        hb = "]" if high_inclusive and high is not None else ")"
        raise ValueError(f"{name}={value:g} is out of range: must be in {lb}{lo}, {hi}{hb}")
    return value


def check_seed(seed: object, name: str = "seed") -> int:
    """Seeds are non-negative ints (what ``torch.manual_seed`` and numpy accept)."""
    return check_int(name, seed, 0, 2**32 - 1)


def check_choice(name: str, value: object, choices: Iterable[str]) -> str:
    """Check that ``value`` is one of ``choices`` and list them when it is not."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"unknown {name} {value!r}; choose one of: {', '.join(map(str, choices))}")
    return value  # type: ignore[return-value]


def check_embeddings(name: str, value: object) -> torch.Tensor:
    """Check that ``value`` is a finite floating-point ``(N, D)`` tensor and return it.

    One ``torch.isfinite(x).all()`` per call; the non-finite values are counted only when
    there are some, for the message ("query_emb holds 3 non-finite values (NaN or inf)").
    """
    import torch  # noqa: PLC0415 (see the TYPE_CHECKING import)

    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape (N, D), "
                         f"got {type(value).__name__}")
    if value.ndim != 2:
        raise ValueError(f"{name} must have shape (N, D), got {tuple(value.shape)}")
    if not value.dtype.is_floating_point:
        raise ValueError(f"{name} must be a floating-point tensor (e.g. float32), "
                         f"got dtype {value.dtype}")
    if not bool(torch.isfinite(value).all()):
        bad = int((~torch.isfinite(value.detach())).sum())
        raise ValueError(f"{name} holds {bad} non-finite value{'s' if bad != 1 else ''} "
                         f"(NaN or inf)")
    return value


def check_labels(name: str, value: object, n: int, *, non_negative: bool = True) -> torch.Tensor:
    """Check that ``value`` is an integer ``(n,)`` tensor (no negatives when
    ``non_negative``) and return it."""
    import torch  # noqa: PLC0415 (see the TYPE_CHECKING import)

    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of integer labels, "
                         f"got {type(value).__name__}")
    if value.ndim != 1 or value.shape[0] != n:
        raise ValueError(f"{name} must be a ({n},) tensor, one label per embedding, "
                         f"got shape {tuple(value.shape)}")
    if value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer class labels (e.g. torch.long), "
                         f"got dtype {value.dtype}")
    if non_negative and value.numel() and int(value.min()) < 0:
        raise ValueError(f"{name} must hold non-negative class labels, "
                         f"got minimum {int(value.min())}")
    return value
