"""The two datasets that need no network: ``digits`` and ``glyphs``.

Each loader takes the keyword arguments of :func:`dml_kit.data.load` (``seed``,
``download``, ``root``) and returns a :class:`~dml_kit.data.core.Dataset`. Both cache
their arrays as a file in the data folder (``digits_v1.npz``, ``glyphs_seed0_v1.npz``), so
a load after the first reads one small file and imports neither scikit-learn nor
matplotlib.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from dml_kit._validation import check_seed
from dml_kit.data.paths import atomic_write_npz, cache_file

if TYPE_CHECKING:
    from dml_kit.data.core import Dataset

#: cache file of the digits (raw pixel values 0..16 as uint8, and the labels)
DIGITS_CACHE = "digits_v1.npz"
DIGITS_SHAPE = (1797, 8, 8)


def _digits_arrays_from_sklearn() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits as (uint8 pixels 0..16 of shape (1797, 8, 8), int64 labels)."""
    from sklearn.datasets import load_digits as sklearn_digits  # noqa: PLC0415 (4 s import)

    bunch = sklearn_digits()
    images = np.asarray(bunch.images)
    if images.shape != DIGITS_SHAPE or not np.array_equal(images, np.round(images)) \
            or images.min() < 0 or images.max() > 16:  # pragma: no cover - sklearn changed
        raise ValueError(f"scikit-learn's digits changed: shape {images.shape}, values "
                         f"{images.min()}..{images.max()} (expected {DIGITS_SHAPE}, 0..16)")
    return images.astype(np.uint8), np.asarray(bunch.target, dtype=np.int64)


def _read_digits_cache(path: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached arrays, or ``None`` when the file is absent or not a valid cache."""
    try:
        with np.load(path) as cached:
            images, labels = cached["images"], cached["labels"]
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError):
        return None
    if (images.shape != DIGITS_SHAPE or images.dtype != np.uint8
            or labels.shape != DIGITS_SHAPE[:1] or labels.dtype != np.int64):
        return None
    return images, labels


def digits_arrays(root: str | os.PathLike[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The digits' uint8 pixels (0..16) and labels, from ``root``'s cache file
    (:data:`DIGITS_CACHE`) or, the first time, from scikit-learn (then cached there; a
    folder that cannot be written only means no cache)."""
    path = cache_file(DIGITS_CACHE, root)
    cached = _read_digits_cache(path)
    if cached is not None:
        return cached
    images, labels = _digits_arrays_from_sklearn()
    try:
        atomic_write_npz(path, compress=False, images=images, labels=labels)
    except OSError:
        pass  # read-only data folder: served from scikit-learn every time
    return images, labels


def load_digits(*, seed: int = 0, download: bool = False,
                root: str | os.PathLike[str] | None = None) -> Dataset:
    """scikit-learn's handwritten digits: 1,797 images of 1x8x8 in [0, 1], 10 classes.

    Class names are ``"0"`` .. ``"9"``, all in one group ``"digits"``. The data ship with
    scikit-learn; the first load caches them as ``digits_v1.npz`` under ``root`` (default:
    the kit's data folder) and later loads read that file (no scikit-learn import).
    ``seed`` and ``download`` change nothing (they are accepted so that every loader has
    the same signature).
    """
    import torch  # noqa: PLC0415 (dml_kit.data imports no torch until a dataset is made)

    from dml_kit.data.core import Dataset  # noqa: PLC0415

    check_seed(seed)
    raw, labels = digits_arrays(root)
    images = raw.astype(np.float32) / 16.0  # pixel values are 0..16
    return Dataset(
        name="digits",
        x=torch.from_numpy(images).unsqueeze(1),
        y=torch.from_numpy(labels),
        class_names=tuple(str(d) for d in range(10)),
        class_groups=("digits",) * 10,
    )


def load_glyph_set(*, seed: int = 0, download: bool = False,
                   root: str | os.PathLike[str] | None = None) -> Dataset:
    """The Omniglot-like glyph set (see :mod:`dml_kit.data.glyphs`): 1x28x28 images,
    characters as classes, scripts and symbol families as groups.

    Generated from matplotlib's fonts on first use (a few seconds) and cached under
    ``root`` (default: the kit's data folder); ``download`` changes nothing.
    """
    from dml_kit.data.glyphs import load_glyphs  # imports matplotlib: only when needed

    return load_glyphs(seed=seed, root=root)
