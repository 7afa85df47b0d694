"""The two datasets that need no network: ``digits`` and ``glyphs``.

Each loader takes the keyword arguments of :func:`dml_kit.data.load` (``seed``,
``download``, ``root``) and returns a :class:`~dml_kit.data.core.Dataset`.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from dml_kit._validation import check_seed
from dml_kit.data.core import Dataset


def load_digits(*, seed: int = 0, download: bool = False,
                root: str | os.PathLike[str] | None = None) -> Dataset:
    """scikit-learn's handwritten digits: 1,797 images of 1x8x8 in [0, 1], 10 classes.

    Class names are ``"0"`` .. ``"9"``, all in one group ``"digits"``. The data ship with
    scikit-learn, so ``seed``, ``download`` and ``root`` change nothing (they are accepted
    so that every loader has the same signature).
    """
    from sklearn.datasets import load_digits as sklearn_digits

    check_seed(seed)
    bunch = sklearn_digits()
    images = np.asarray(bunch.images, dtype=np.float32) / 16.0  # pixel values are 0..16
    return Dataset(
        name="digits",
        x=torch.from_numpy(images).unsqueeze(1),
        y=torch.from_numpy(np.asarray(bunch.target, dtype=np.int64)),
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
