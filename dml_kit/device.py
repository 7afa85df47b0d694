"""Device selection: CUDA when present, else CPU; seeding for reproducible runs."""

from __future__ import annotations

import random

import numpy as np
import torch

from dml_kit._validation import check_seed


def default_device() -> torch.device:
    """The device training uses by default: ``cuda`` when available, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


#: what :func:`resolve_device` accepts (``"cuda:1"``-style indices too)
DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` or ``"auto"`` picks :func:`default_device`; ``"cpu"``, ``"cuda"``
    (``"cuda:1"``), ``"mps"`` or a ``torch.device`` are parsed.

    Raises:
        ValueError: anything else (``"tpu"``, ``"gpu"``, a number), naming ``device`` and
            listing the allowed values; ``"cuda"``/``"mps"`` on a machine without one.
    """
    if device is None or device == "auto":
        return default_device()
    allowed = ", ".join(repr(d) for d in DEVICES)
    if isinstance(device, torch.device):
        dev = device
    elif isinstance(device, str):
        kind = device.split(":", 1)[0].strip().lower()
        if kind not in DEVICES:
            raise ValueError(f"unknown device {device!r}; choose one of: {allowed} "
                             f"(or 'cuda:N' for GPU number N)")
        try:
            dev = torch.device(device.strip().lower())
        except RuntimeError as err:
            raise ValueError(f"device={device!r} is not a valid device string ({err}); "
                             f"choose one of: {allowed}") from None
    else:
        raise ValueError(f"device must be a string ({allowed}) or a torch.device, got "
                         f"{device!r} ({type(device).__name__})")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r}, but this machine has no CUDA GPU (torch "
                         f"{torch.__version__}); use 'cpu' or 'auto'")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device={device!r}, but MPS (Apple GPU) is not available here; "
                         f"use 'cpu' or 'auto'")
    return dev


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a CPU ``torch.Generator`` seeded the same."""
    seed = check_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
