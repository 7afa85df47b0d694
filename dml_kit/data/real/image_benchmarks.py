"""The DML image benchmarks CUB-200-2011, Cars196 and Stanford Online Products: JPEG
archives plus their official label files, images squashed to ``size x size`` RGB."""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

from dml_kit._validation import check_int
from dml_kit.data.core import Dataset
from dml_kit.data.real.base import (
    PathLike,
    _cache_path,
    _cached_dataset,
    _fetch_all,
    _load_cache,
    _local_files,
    _save_cache,
    _to_dataset,
)


# ---- image benchmarks (CUB-200-2011, Cars196, SOP) ----------------------------------------
def _resize_rgb(data: bytes, size: int) -> np.ndarray:
    """JPEG/PNG bytes -> ``(3, size, size)`` uint8, squashed with antialiasing."""
    from PIL import Image  # noqa: PLC0415

    with Image.open(io.BytesIO(data)) as im:
        im.draft("RGB", (2 * size, 2 * size))  # JPEG: decode at a reduced scale (fast)
        rgb = im.convert("RGB").resize((size, size), Image.Resampling.LANCZOS)
    return np.asarray(rgb, dtype=np.uint8).transpose(2, 0, 1)


def _iter_tar(path: Path, progress: bool, desc: str) -> Iterator[tuple[str, bytes]]:
    """Stream the regular files of a (compressed) tar in order: (name, bytes)."""
    from tqdm.auto import tqdm  # noqa: PLC0415

    with tarfile.open(path, mode="r|*") as tf, tqdm(desc=desc, unit=" files",
                                                     disable=not progress) as bar:
        for member in tf:
            if not member.isfile():
                continue
            f = tf.extractfile(member)
            if f is None:
                continue
            bar.update(1)
            yield member.name, f.read()


def _image_dataset(dataset: str, files: Sequence[str], size: int, *, download: bool,
                   root: PathLike | None, mirror: str | None, path: PathLike | None,
                   verify: bool, progress: bool,
                   parse: Callable[[dict[str, Path], int, bool],
                                   tuple[np.ndarray, np.ndarray, list[str], list[str]]]
                   ) -> Dataset:
    size = check_int("size", size, 4, 512)
    if path is not None:
        x, y, names, groups = parse(_local_files(dataset, files, path, verify), size, progress)
        return _to_dataset(dataset, x, y, names, groups)
    cache_file = _cache_path(dataset, f"{dataset}-{size}px", root)
    cache = _load_cache(cache_file)
    if cache is not None:
        return _cached_dataset(dataset, cache)
    local = _fetch_all(dataset, files, download=download, root=root, mirror=mirror)
    x, y, names, groups = parse(local, size, progress)
    _save_cache(cache_file, x, y, names, groups)
    return _to_dataset(dataset, x, y, names, groups)


def _parse_cub(files: dict[str, Path], size: int, progress: bool
               ) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    texts: dict[str, str] = {}
    images: dict[str, np.ndarray] = {}
    for name, data in _iter_tar(files["CUB_200_2011.tgz"], progress, "cub200"):
        base = name.split("CUB_200_2011/", 1)[-1]
        if base in ("images.txt", "image_class_labels.txt", "classes.txt"):
            texts[base] = data.decode()
        elif base.startswith("images/") and base.lower().endswith((".jpg", ".jpeg", ".png")):
            images[base[len("images/"):]] = _resize_rgb(data, size)
    missing = {"images.txt", "image_class_labels.txt", "classes.txt"} - set(texts)
    if missing:
        raise ValueError(f"CUB archive lacks {sorted(missing)}")

    def table(text: str) -> dict[int, str]:
        return {int(a): b for a, b in (line.split(" ", 1) for line in text.splitlines()
                                       if line.strip())}

    paths = table(texts["images.txt"])
    labels = {k: int(v) for k, v in table(texts["image_class_labels.txt"]).items()}
    classes = table(texts["classes.txt"])
    class_ids = sorted(classes)
    cindex = {c: i for i, c in enumerate(class_ids)}
    ids = sorted(paths)
    x = np.stack([images[paths[i].strip()] for i in ids])
    y = np.array([cindex[labels[i]] for i in ids], dtype=np.int64)
    names = [classes[c].strip().split(".", 1)[-1] for c in class_ids]
    groups = [n.rsplit("_", 1)[-1] for n in names]  # "Black_footed_Albatross" -> Albatross
    return x, y, names, groups


def cub200(*, size: int = 32, seed: int = 0, download: bool = False,
           root: PathLike | None = None, mirror: str | None = None,
           path: PathLike | None = None, verify: bool = True, progress: bool = True
           ) -> Dataset:
    """CUB-200-2011 birds: 11,788 images, 200 species, resized to 3 x size x size.

    Groups are the last word of the species name (``Albatross``, ``Warbler``, ...).
    The archive is 1.15 GB; the resized arrays are cached (``cub200-<size>px.npz``).
    """
    return _image_dataset("cub200", ["CUB_200_2011.tgz"], size, download=download, root=root,
                          mirror=mirror, path=path, verify=verify, progress=progress,
                          parse=_parse_cub)


def _parse_cars(files: dict[str, Path], size: int, progress: bool
                ) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    from scipy.io import loadmat  # noqa: PLC0415

    mat = loadmat(files["cars_annos.mat"], squeeze_me=True, struct_as_record=False)
    annos = np.atleast_1d(mat["annotations"])
    class_names = [str(c) for c in np.atleast_1d(mat["class_names"])]
    images: dict[str, np.ndarray] = {}
    for name, data in _iter_tar(files["car_ims.tgz"], progress, "cars196"):
        if name.lower().endswith((".jpg", ".jpeg", ".png")):
            images[name.rsplit("/", 1)[-1]] = _resize_rgb(data, size)
    x = np.stack([images[str(a.relative_im_path).rsplit("/", 1)[-1]] for a in annos])
    y = np.array([int(getattr(a, "class")) - 1 for a in annos], dtype=np.int64)
    groups = [c.split(" ", 1)[0] for c in class_names]  # the make: "Audi", "BMW", ...
    return x, y, class_names, groups


def cars196(*, size: int = 32, seed: int = 0, download: bool = False,
            root: PathLike | None = None, mirror: str | None = None,
            path: PathLike | None = None, verify: bool = True, progress: bool = True
            ) -> Dataset:
    """Cars196 (Stanford Cars): 16,185 images, 196 models, resized to 3 x size x size;
    groups are the makes. Needs ``car_ims.tgz`` and ``cars_annos.mat``."""
    return _image_dataset("cars196", ["car_ims.tgz", "cars_annos.mat"], size,
                          download=download, root=root, mirror=mirror, path=path,
                          verify=verify, progress=progress, parse=_parse_cars)


def _parse_sop(files: dict[str, Path], size: int, progress: bool
               ) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    from tqdm.auto import tqdm  # noqa: PLC0415

    with zipfile.ZipFile(files["Stanford_Online_Products.zip"]) as zf:
        info_name = next((n for n in zf.namelist() if n.endswith("Ebay_info.txt")), None)
        if info_name is None:
            raise ValueError("the SOP archive lacks Ebay_info.txt")
        base = info_name[: -len("Ebay_info.txt")]
        lines = zf.read(info_name).decode().splitlines()[1:]  # header: image_id class_id ...
        rows = [line.split() for line in lines if line.strip()]
        class_ids = sorted({int(r[1]) for r in rows})
        cindex = {c: i for i, c in enumerate(class_ids)}
        super_of: dict[int, str] = {}
        xs = []
        for r in tqdm(rows, desc="sop", unit=" images", disable=not progress):
            super_of[int(r[1])] = r[3].split("/", 1)[0].removesuffix("_final")
            xs.append(_resize_rgb(zf.read(base + r[3]), size))
    y = np.array([cindex[int(r[1])] for r in rows], dtype=np.int64)
    names = [f"{super_of[c]}/{c}" for c in class_ids]
    groups = [super_of[c] for c in class_ids]
    return np.stack(xs), y, names, groups


def sop(*, size: int = 32, seed: int = 0, download: bool = False,
        root: PathLike | None = None, mirror: str | None = None,
        path: PathLike | None = None, verify: bool = True, progress: bool = True) -> Dataset:
    """Stanford Online Products: 120,053 images of 22,634 products in 12 super-classes
    (the groups), resized to 3 x size x size. Class names are ``<super>/<product id>``."""
    return _image_dataset("sop", ["Stanford_Online_Products.zip"], size, download=download,
                          root=root, mirror=mirror, path=path, verify=verify,
                          progress=progress, parse=_parse_sop)


