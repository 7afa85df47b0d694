"""MNIST and Fashion-MNIST: IDX files (big-endian header ``0, 0, dtype, ndim``, ``ndim``
uint32 sizes, then the raw array; usually gzip-compressed)."""

from __future__ import annotations

import gzip
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dml_kit._validation import check_choice
from dml_kit.data.core import Dataset
from dml_kit.data.real.base import (
    PARTS,
    PathLike,
    _cache_path,
    _cached_dataset,
    _fetch_all,
    _load_cache,
    _local_files,
    _save_cache,
    _to_dataset,
)

#: Where Debian's ``dataset-fashion-mnist`` package installs the full Fashion-MNIST.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
FASHION_GROUPS = ("clothing", "clothing", "clothing", "clothing", "clothing", "shoes",
                  "clothing", "shoes", "bag", "shoes")


# ---- IDX (MNIST, Fashion-MNIST) ---------------------------------------------------------
_IDX_DTYPES: dict[int, Any] = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
               0x0E: ">f8"}


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not) into a numpy array."""
    path = Path(path)
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    opener = gzip.open if gz else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise ValueError(f"{path} is not an IDX file (bad magic number {data[:4].hex()})")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    count = int(np.prod(shape)) if shape else 1
    offset = 4 + 4 * ndim
    if len(data) - offset != count * dtype.itemsize:
        raise ValueError(f"{path}: header says shape {shape} ({count * dtype.itemsize} bytes) "
                         f"but {len(data) - offset} bytes follow (truncated file?)")
    return np.frombuffer(data, dtype=dtype, offset=offset).reshape(shape).astype(
        dtype.newbyteorder("="), copy=True)


_IDX_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
              "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}


def _idx_parts(files: dict[str, Path], part: str) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for p in ("train", "test") if part == "all" else (part,):
        images, labels = (read_idx(files[f]) for f in _IDX_FILES[p])
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise ValueError(f"{p} images {images.shape} and labels {labels.shape} do not match")
        xs.append(images)
        ys.append(labels.astype(np.int64))
    x = np.concatenate(xs)[:, None]
    return x, np.concatenate(ys)


def _idx_loader(dataset: str, class_names: Sequence[str], class_groups: Sequence[str], *,
                part: str, download: bool, root: PathLike | None, mirror: str | None,
                path: PathLike | None, verify: bool,
                local_dir: Path | None = None) -> Dataset:
    check_choice("part", part, PARTS)
    names = [f for p in (("train", "test") if part == "all" else (part,)) for f in _IDX_FILES[p]]
    name = dataset if part == "all" else f"{dataset}[{part}]"
    if path is not None:
        x, y = _idx_parts(_local_files(dataset, names, path, verify), part)
        return _to_dataset(name, x, y, class_names, class_groups)
    cache_file = _cache_path(dataset, f"{dataset}-{part}", root)
    cache = _load_cache(cache_file)
    if cache is not None:
        return _cached_dataset(name, cache)
    if local_dir is not None and all((local_dir / f).is_file() for f in names):
        # a system package (dpkg verified it; re-compressed, so other .gz checksums)
        files = _local_files(dataset, names, local_dir, verify=False)
    else:
        files = _fetch_all(dataset, names, download=download, root=root, mirror=mirror)
    x, y = _idx_parts(files, part)
    _save_cache(cache_file, x, y, class_names, class_groups)
    return _to_dataset(name, x, y, class_names, class_groups)


def mnist(*, part: str = "all", seed: int = 0, download: bool = False,
          root: PathLike | None = None, mirror: str | None = None,
          path: PathLike | None = None, verify: bool = True) -> Dataset:
    """MNIST digits, 1x28x28, 10 classes (one group ``"digits"``).

    Args:
        part: ``"all"`` (70,000: the 60,000 training images, then the 10,000 test images),
            ``"train"`` or ``"test"``.
        path: a folder with the IDX ``.gz`` files (e.g. ``../shared/data/mnist`` with
            ``part="test"``); re-gzipped copies pass if their decompressed md5 is official.
    """
    return _idx_loader("mnist", MNIST_CLASSES, ("digits",) * 10, part=part,
                       download=download, root=root, mirror=mirror, path=path, verify=verify)


def fashion_mnist(*, part: str = "all", seed: int = 0, download: bool = False,
                  root: PathLike | None = None, mirror: str | None = None,
                  path: PathLike | None = None, verify: bool = True) -> Dataset:
    """Fashion-MNIST, 1x28x28, 10 classes grouped into clothing / shoes / bag.

    Where Debian's ``dataset-fashion-mnist`` package is installed
    (:data:`DEBIAN_FASHION_MNIST`), its files are used without downloading.
    """
    return _idx_loader("fashion_mnist", FASHION_CLASSES, FASHION_GROUPS, part=part,
                       download=download, root=root, mirror=mirror, path=path, verify=verify,
                       local_dir=DEBIAN_FASHION_MNIST)


