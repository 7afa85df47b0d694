"""Shared helpers of the real-dataset loaders: the ``.npz`` parse cache, fetching
several manifest files at once, local copies, arrays -> :class:`~dml_kit.data.Dataset`."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from dml_kit.data import download as dl
from dml_kit.data.core import Dataset
from dml_kit.data.paths import atomic_write_npz

PathLike = str | os.PathLike[str]

CACHE_VERSION = 1
PARTS = ("all", "train", "test")


# ---- shared helpers --------------------------------------------------------------------
def _to_dataset(name: str, x: np.ndarray, y: np.ndarray, class_names: Sequence[str],
                class_groups: Sequence[str]) -> Dataset:
    """uint8 images become float32 in [0, 1]; float vectors stay as they are."""
    xt = torch.from_numpy(np.ascontiguousarray(x))
    xt = xt.float().div_(255.0) if xt.dtype == torch.uint8 else xt.float()
    return Dataset(name=name, x=xt, y=torch.from_numpy(np.asarray(y, dtype=np.int64)),
                   class_names=tuple(str(c) for c in class_names),
                   class_groups=tuple(str(g) for g in class_groups))


def _cache_path(dataset: str, stem: str, root: PathLike | None) -> Path:
    return dl.dataset_folder(dataset, root) / f"{stem}.npz"


def _save_cache(path: Path, x: np.ndarray, y: np.ndarray, class_names: Sequence[str],
                class_groups: Sequence[str], **extra: np.ndarray) -> None:
    atomic_write_npz(path, compress=False, x=x, y=y, version=np.array(CACHE_VERSION),
                     class_names=np.array(list(class_names), dtype=str),
                     class_groups=np.array(list(class_groups), dtype=str), **extra)


def _load_cache(path: Path) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if int(z["version"]) != CACHE_VERSION:
                return None
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None  # unreadable cache: parse again (the atomic rewrite replaces it)


def _cached_dataset(name: str, cache: dict[str, np.ndarray]) -> Dataset:
    return _to_dataset(name, cache["x"], cache["y"], cache["class_names"].tolist(),
                       cache["class_groups"].tolist())


def _fetch_all(dataset: str, filenames: Sequence[str], *, download: bool,
               root: PathLike | None, mirror: str | None) -> dict[str, Path]:
    """Fetch several manifest files; without ``download`` name every missing one at once."""
    missing = [f for f in filenames if not dl.is_cached(dataset, f, root)]
    if missing and not download:
        raise dl.DownloadRequiredError(
            f"{dataset} is not in the cache folder {dl.dataset_folder(dataset, root)}. Pass "
            f"download=True to fetch {dl.describe(dataset, missing)}\n(or use a copy you "
            f"already have: dml_kit.data.real.{dataset}(path=...); or a local mirror: "
            f"mirror= or ${dl.MIRROR_ENV}).")
    return {f: dl.fetch(dataset, f, root=root, download=download, mirror=mirror)
            for f in filenames}


def _local_files(dataset: str, filenames: Sequence[str], path: PathLike,
                 verify: bool) -> dict[str, Path]:
    return {f: dl.fetch(dataset, f, path=path, verify=verify) for f in filenames}


