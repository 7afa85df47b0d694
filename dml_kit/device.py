"""Device selection: CUDA when present, else CPU; seeding for reproducible runs."""

from __future__ import annotations

import random

import numpy as np
import torch

from dml_kit._validation import check_seed


def default_device() -> torch.device:
    """The device training uses by default: ``cuda`` when available, else ``cpu``."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``None`` or ``"auto"`` picks :func:`default_device`; anything else is parsed."""
    if device is None or device == "auto":
        return default_device()
    return torch.device(device)


def seed_everything(seed: int) -> torch.Generator:
    """Seed python, numpy and torch; return a CPU ``torch.Generator`` seeded the same."""
    seed = check_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
