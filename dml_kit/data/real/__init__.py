"""Real datasets: MNIST, Fashion-MNIST, Omniglot (+ the 20 one-shot runs), Isolet, and the
DML benchmarks CUB-200-2011, Cars196 and Stanford Online Products.

Every loader returns a :class:`~dml_kit.data.core.Dataset` and takes the same keywords:
``download`` (fetch missing files, see :mod:`dml_kit.data.download`), ``root`` (cache
root), ``mirror`` (base URL or folder replacing the official host) and ``path`` (a copy
you already have: a file or a folder). ``seed`` is accepted for the registry's sake; the
files are fixed, so it changes nothing.

Parsed arrays are cached as ``.npz`` in ``<root>/<dataset>/`` (written atomically), so
the second load skips decoding. Copies given with ``path=`` are parsed every time and
never cached (a partial copy must not pose as the full dataset).

File formats, in brief:

* **IDX** (MNIST, Fashion-MNIST): big-endian header ``0, 0, dtype, ndim``, ``ndim`` uint32
  sizes, then the raw array; usually gzip-compressed.
* **Omniglot**: zips of ``<split>/<Alphabet>/characterNN/<id>_<drawer>.png``, 105x105
  binary images with black strokes on white. The kit inverts them (strokes bright) and
  resizes them to ``size x size`` with Lanczos antialiasing. Class = ``Alphabet/characterNN``,
  group = alphabet. ``all_runs.zip`` holds Lake et al.'s 20 one-shot runs.
* **Isolet**: UCI text lines of 617 comma-separated features and a class ``1.`` .. ``26.``,
  shipped as Unix ``compress`` (``.Z``) files in a zip; the kit decodes ``.Z`` itself.
* **CUB / Cars196 / SOP**: JPEG archives plus their official label files; images are
  squashed to ``size x size`` RGB (default 32).
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import re
import shutil
import struct
import subprocess
import tarfile
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dml_kit._validation import check_choice, check_int
from dml_kit.data import download as dl
from dml_kit.data.core import Dataset
from dml_kit.data.paths import atomic_write_npz

__all__ = [
    "DEBIAN_FASHION_MNIST",
    "LOADERS",
    "OmniglotImages",
    "OneShotRun",
    "cars196",
    "cub200",
    "evaluate_one_shot_runs",
    "fashion_mnist",
    "glyph_to_array",
    "isolet",
    "mnist",
    "omniglot",
    "omniglot_background",
    "omniglot_evaluation",
    "omniglot_one_shot_runs",
    "parse_isolet_text",
    "parse_omniglot_npz",
    "parse_omniglot_zips",
    "parse_one_shot_runs",
    "read_idx",
    "register_all",
    "sop",
    "unlzw",
]

PathLike = str | os.PathLike[str]

#: Where Debian's ``dataset-fashion-mnist`` package installs the full Fashion-MNIST.
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

CACHE_VERSION = 1
PARTS = ("all", "train", "test")
MNIST_CLASSES = tuple(str(d) for d in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
FASHION_GROUPS = ("clothing", "clothing", "clothing", "clothing", "clothing", "shoes",
                  "clothing", "shoes", "bag", "shoes")
ISOLET_CLASSES = tuple(chr(ord("A") + i) for i in range(26))


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


# ---- IDX (MNIST, Fashion-MNIST) ---------------------------------------------------------
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4",
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


# ---- Omniglot ---------------------------------------------------------------------------
OMNIGLOT_SPLITS = ("all", "background", "evaluation")
_OMNIGLOT_ZIPS = {"background": "images_background.zip", "evaluation": "images_evaluation.zip"}
_OMNI_PNG = re.compile(r"(?:^|/)([^/]+)/(character\d+)/(\d+)_(\d+)\.png$")


def glyph_to_array(image: np.ndarray | object, size: int = 28) -> np.ndarray:
    """One Omniglot glyph -> ``(size, size)`` uint8 with bright strokes on black.

    ``image`` is a PIL image or an array as stored (True / 255 = white background).
    Inverted first, then resized with Lanczos antialiasing (no resize at 105).
    """
    from PIL import Image  # noqa: PLC0415

    arr = np.asarray(image.convert("L") if isinstance(image, Image.Image) else image)
    if arr.dtype == bool:
        arr = arr.astype(np.uint8) * 255
    inverted = (255 - arr.astype(np.uint8)).astype(np.uint8)
    if inverted.shape == (size, size):
        return inverted
    return np.asarray(Image.fromarray(inverted, mode="L").resize(
        (size, size), Image.Resampling.LANCZOS), dtype=np.uint8)


@dataclass
class OmniglotImages:
    """Parsed Omniglot glyphs with their bookkeeping.

    Attributes:
        images: uint8 ``(N, size, size)``, strokes bright.
        labels: int64 ``(N,)`` class index, classes ordered by Omniglot character id.
        class_names: ``"Alphabet/characterNN"`` per class; ``class_groups``: the alphabet.
        char_ids: the official character id (file prefix) per class.
        drawers: drawer number (file suffix, 1..20) per image.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    class_groups: tuple[str, ...]
    char_ids: np.ndarray
    drawers: np.ndarray

    def counts(self) -> dict[str, int]:
        """Alphabets, characters, distinct drawers and images."""
        return {"alphabets": len(set(self.class_groups)), "characters": len(self.class_names),
                "drawers": len(np.unique(self.drawers)), "images": len(self.labels)}

    def to_dataset(self, name: str) -> Dataset:
        return _to_dataset(name, self.images[:, None], self.labels, self.class_names,
                           self.class_groups)


def _assemble_omniglot(records: dict[tuple[int, int], tuple[str, str, np.ndarray]]
                       ) -> OmniglotImages:
    """records: (char_id, drawer) -> (alphabet, character, image)."""
    if not records:
        raise ValueError("no Omniglot images found")
    keys = sorted(records)
    char_ids = sorted({c for c, _ in keys})
    index = {c: i for i, c in enumerate(char_ids)}
    names: dict[int, tuple[str, str]] = {}
    for (c, _), (alphabet, character, _img) in records.items():
        names[c] = (alphabet, character)
    return OmniglotImages(
        images=np.stack([records[k][2] for k in keys]),
        labels=np.array([index[c] for c, _ in keys], dtype=np.int64),
        class_names=tuple(f"{names[c][0]}/{names[c][1]}" for c in char_ids),
        class_groups=tuple(names[c][0] for c in char_ids),
        char_ids=np.array(char_ids, dtype=np.int64),
        drawers=np.array([d for _, d in keys], dtype=np.int64))


def parse_omniglot_zips(zips: PathLike | Iterable[PathLike], size: int = 28) -> OmniglotImages:
    """Parse official Omniglot image zips (``images_background.zip``, the small zips, ...).

    Images repeated across zips (Greek and Latin are in both small zips) are kept once.
    """
    from PIL import Image  # noqa: PLC0415

    size = check_int("size", size, 4, 105)
    paths = [zips] if isinstance(zips, str | os.PathLike) else list(zips)
    records: dict[tuple[int, int], tuple[str, str, np.ndarray]] = {}
    for zp in paths:
        with zipfile.ZipFile(zp) as zf:
            for info in zf.infolist():
                m = _OMNI_PNG.search(info.filename)
                if m is None or "__MACOSX" in info.filename:
                    continue
                alphabet, character, cid, drawer = m.groups()
                key = (int(cid), int(drawer))
                if key in records:
                    continue
                with Image.open(io.BytesIO(zf.read(info))) as im:
                    records[key] = (alphabet, character, glyph_to_array(im, size))
    return _assemble_omniglot(records)


def parse_omniglot_npz(npz: PathLike, alphabets_csv: PathLike, *, size: int = 28,
                       split: str | None = None) -> OmniglotImages:
    """Parse an ``images`` (C, 20, 105, 105) bool npz (True = background) with the table
    ``omniglot_alphabets.csv`` (split, alphabet, first/last character id, npz rows).

    ``split`` (``"background"`` / ``"evaluation"``) defaults to the one whose row count
    equals the npz's number of characters.
    """
    size = check_int("size", size, 4, 105)
    with np.load(npz, allow_pickle=False) as z:
        images = z["images"]
    with open(alphabets_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    if split is None:
        fits = sorted({r["split"] for r in rows} - {
            r["split"] for r in rows if int(r["npz_row_stop"]) > len(images)})
        fits = [s for s in fits if sum(int(r["n_characters"]) for r in rows
                                       if r["split"] == s) == len(images)]
        if len(fits) != 1:
            raise ValueError(f"cannot tell which split of {alphabets_csv} describes {npz} "
                             f"({len(images)} characters); pass split=")
        split = fits[0]
    check_choice("split", split, ("background", "evaluation"))
    records: dict[tuple[int, int], tuple[str, str, np.ndarray]] = {}
    for r in rows:
        if r["split"] != split:
            continue
        lo, hi, first = int(r["npz_row_start"]), int(r["npz_row_stop"]), int(r["first_char_id"])
        for row in range(lo, hi):
            cid = first + row - lo
            for d in range(images.shape[1]):
                records[(cid, d + 1)] = (r["alphabet"], f"character{cid - first + 1:02d}",
                                         glyph_to_array(images[row, d], size))
    if len({k[0] for k in records}) != len(images):
        raise ValueError(f"{alphabets_csv} does not cover the {len(images)} characters of {npz}")
    return _assemble_omniglot(records)


def _omniglot_local(split: str, path: PathLike, size: int, verify: bool) -> OmniglotImages:
    p = Path(path).expanduser()
    splits = ("background", "evaluation") if split == "all" else (split,)
    if p.is_file():
        return parse_omniglot_zips(p, size)
    zips = [p / _OMNIGLOT_ZIPS[s] for s in splits]
    if all(z.is_file() for z in zips):
        for z in zips:
            dl.fetch("omniglot", z.name, path=z, verify=verify)
        return parse_omniglot_zips(zips, size)
    npzs = [p / f"omniglot_images_{s}.npz" for s in splits]
    table = p / "omniglot_alphabets.csv"
    if all(n.is_file() for n in npzs) and table.is_file():
        parts = [parse_omniglot_npz(n, table, size=size, split=s) for n, s in zip(npzs, splits,
                                                                            strict=True)]
        if len(parts) == 1:
            return parts[0]
        a, b = parts
        return OmniglotImages(
            images=np.concatenate([a.images, b.images]),
            labels=np.concatenate([a.labels, b.labels + len(a.class_names)]),
            class_names=a.class_names + b.class_names, class_groups=a.class_groups + b.class_groups,
            char_ids=np.concatenate([a.char_ids, b.char_ids]),
            drawers=np.concatenate([a.drawers, b.drawers]))
    raise dl.DownloadError(
        f"path={str(path)!r} holds neither {[z.name for z in zips]} nor "
        f"{[n.name for n in npzs]} + omniglot_alphabets.csv")


def omniglot(split: str = "all", *, size: int = 28, seed: int = 0, download: bool = False,
             root: PathLike | None = None, mirror: str | None = None,
             path: PathLike | None = None, verify: bool = True) -> Dataset:
    """Omniglot, 1 x size x size (default 28), strokes bright; class = ``Alphabet/characterNN``,
    group = alphabet.

    Args:
        split: ``"all"`` (50 alphabets, 1,623 characters, 32,460 images), ``"background"``
            (30 alphabets, 964 characters) or ``"evaluation"`` (20 alphabets, 659).
        size: output side in pixels (4..105).
        path: an official zip, a folder holding ``images_background.zip`` /
            ``images_evaluation.zip``, or a folder holding ``omniglot_images_<split>.npz`` and
            ``omniglot_alphabets.csv`` (the layout of ``../shared/data/omniglot``).
    """
    check_choice("split", split, OMNIGLOT_SPLITS)
    size = check_int("size", size, 4, 105)
    name = "omniglot" if split == "all" else f"omniglot_{split}"
    if path is not None:
        return _omniglot_local(split, path, size, verify).to_dataset(name)
    cache_file = _cache_path("omniglot", f"omniglot-{split}-{size}px", root)
    cache = _load_cache(cache_file)
    if cache is not None:
        return _cached_dataset(name, cache)
    names = [_OMNIGLOT_ZIPS[s] for s in (("background", "evaluation") if split == "all"
                                         else (split,))]
    files = _fetch_all("omniglot", names, download=download, root=root, mirror=mirror)
    parsed = parse_omniglot_zips([files[n] for n in names], size)
    _save_cache(cache_file, parsed.images[:, None], parsed.labels, parsed.class_names,
                parsed.class_groups, char_ids=parsed.char_ids, drawers=parsed.drawers)
    return parsed.to_dataset(name)


def omniglot_background(**kwargs: object) -> Dataset:
    """Omniglot's background set (30 alphabets, 964 characters); see :func:`omniglot`."""
    return omniglot("background", **kwargs)  # type: ignore[arg-type]


def omniglot_evaluation(**kwargs: object) -> Dataset:
    """Omniglot's evaluation set (20 alphabets, 659 characters); see :func:`omniglot`."""
    return omniglot("evaluation", **kwargs)  # type: ignore[arg-type]


# ---- Omniglot one-shot runs --------------------------------------------------------------
@dataclass
class OneShotRun:
    """One of Lake et al.'s 20-way 1-shot runs.

    Attributes:
        name: ``"run01"`` .. ``"run20"``.
        train_x: ``(20, 1, size, size)`` float32, one image per class (``training/classNN``).
        test_x: ``(20, 1, size, size)`` float32 queries (``test/itemNN``).
        test_y: ``(20,)`` int64, the index in ``train_x`` of each query's class.
        train_files, test_files: file names in the run, in tensor order.
    """

    name: str
    train_x: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]


def parse_one_shot_runs(zip_path: PathLike, size: int = 28) -> list[OneShotRun]:
    """Parse ``all_runs.zip``: each ``runNN/class_labels.txt`` pairs a test image with the
    training image of its class (``runNN/test/itemMM.png runNN/training/classKK.png``)."""
    from PIL import Image  # noqa: PLC0415

    size = check_int("size", size, 4, 105)
    runs = []
    with zipfile.ZipFile(zip_path) as zf:
        label_files = sorted(n for n in zf.namelist() if n.endswith("class_labels.txt")
                             and "__MACOSX" not in n)
        if not label_files:
            raise ValueError(f"{zip_path} holds no runNN/class_labels.txt")
        prefix_of = {lf: lf[: -len("class_labels.txt")] for lf in label_files}

        def image(name: str) -> np.ndarray:
            with Image.open(io.BytesIO(zf.read(name))) as im:
                return glyph_to_array(im, size)

        for lf in label_files:
            pairs = [line.split() for line in zf.read(lf).decode().splitlines() if line.strip()]
            base = prefix_of[lf]
            run_prefix = base.rstrip("/").rsplit("/", 1)[-1] + "/"
            train_files = sorted({t for _, t in pairs})
            tindex = {t: i for i, t in enumerate(train_files)}

            def member(rel: str, base: str = base, run_prefix: str = run_prefix) -> str:
                # paths in class_labels.txt start with "runNN/"
                return base + rel[len(run_prefix):] if rel.startswith(run_prefix) else base + rel

            train = np.stack([image(member(t)) for t in train_files])
            test = np.stack([image(member(q)) for q, _ in pairs])
            runs.append(OneShotRun(
                name=run_prefix.rstrip("/"),
                train_x=torch.from_numpy(train[:, None]).float().div_(255.0),
                test_x=torch.from_numpy(test[:, None]).float().div_(255.0),
                test_y=torch.tensor([tindex[t] for _, t in pairs], dtype=torch.long),
                train_files=tuple(train_files), test_files=tuple(q for q, _ in pairs)))
    return runs


def omniglot_one_shot_runs(*, size: int = 28, download: bool = False,
                           root: PathLike | None = None, mirror: str | None = None,
                           path: PathLike | None = None, verify: bool = True
                           ) -> list[OneShotRun]:
    """The 20 official 20-way 1-shot runs (``all_runs.zip``, evaluation alphabets).

    ``path`` may be the zip or a folder holding it (e.g. ``../shared/data/omniglot``).
    """
    if path is not None:
        zp = dl.fetch("omniglot", "all_runs.zip", path=path, verify=verify)
    else:
        zp = _fetch_all("omniglot", ["all_runs.zip"], download=download, root=root,
                        mirror=mirror)["all_runs.zip"]
    return parse_one_shot_runs(zp, size)


def evaluate_one_shot_runs(embed_fn: Callable[[torch.Tensor], torch.Tensor],
                           runs: Sequence[OneShotRun] | None = None, *,
                           distance: str = "sqeuclidean", **fetch_kwargs: object) -> float:
    """Error rate of ``embed_fn`` in the official 20-way 1-shot protocol.

    Each test image of a run takes the class of its nearest training image in embedding
    space; the error rate is the fraction of wrong answers over all runs (20 x 20 = 400
    queries; every run weighs the same). Lake et al. report 4.5% for people.

    Args:
        embed_fn: maps ``(B, 1, H, W)`` float images in [0, 1] to ``(B, D)`` embeddings
            (e.g. ``lambda x: dml_kit.metrics.embed(model, x)``).
        runs: parsed runs; default :func:`omniglot_one_shot_runs` with ``fetch_kwargs``.
        distance: ``"sqeuclidean"`` (prototypical networks) or ``"cosine"``.
    """
    check_choice("distance", distance, ("sqeuclidean", "cosine"))
    if runs is None:
        runs = omniglot_one_shot_runs(**fetch_kwargs)  # type: ignore[arg-type]
    if not runs:
        raise ValueError("runs must hold at least one run")
    wrong = total = 0
    with torch.no_grad():
        for run in runs:
            s = torch.as_tensor(embed_fn(run.train_x)).float().cpu()
            q = torch.as_tensor(embed_fn(run.test_x)).float().cpu()
            if distance == "cosine":
                s = torch.nn.functional.normalize(s, dim=1)
                q = torch.nn.functional.normalize(q, dim=1)
                pred = (q @ s.T).argmax(dim=1)
            else:
                pred = torch.cdist(q, s).argmin(dim=1)
            wrong += int((pred != run.test_y).sum())
            total += len(run.test_y)
    return wrong / total


# ---- Isolet -----------------------------------------------------------------------------
def unlzw(data: bytes) -> bytes:
    """Decompress Unix ``compress`` (``.Z``, LZW) data, as ``uncompress`` does.

    Codes start at 9 bits and grow to the header's maximum; in block mode code 256
    clears the table. Codes are written in groups of 8; when the width changes, the rest
    of the current group is padding and is skipped.
    """
    if len(data) < 3 or data[:2] != b"\x1f\x9d":
        raise ValueError("not a .Z (compress) stream: bad magic number")
    maxbits = data[2] & 0x1F
    block_mode = bool(data[2] & 0x80)
    if not 9 <= maxbits <= 16:
        raise ValueError(f"unsupported .Z maximum code width {maxbits}")
    bits = int.from_bytes(data[3:], "little")
    total_bits = (len(data) - 3) * 8
    maxmaxcode = 1 << maxbits
    prefix = [0] * maxmaxcode
    suffix = bytearray(maxmaxcode)
    suffix[:256] = bytes(range(256))
    n_bits = 9
    maxcode = (1 << n_bits) - 1
    free_ent = 257 if block_mode else 256
    pos = group_start = 0
    out = bytearray()
    oldcode = -1
    finchar = 0
    stack = bytearray()

    def align(pos: int, group_start: int, n_bits: int) -> int:
        group = n_bits * 8
        used = pos - group_start
        return group_start + -(-used // group) * group

    while True:
        if free_ent > maxcode:  # width grows: skip the rest of the current group
            pos = group_start = align(pos, group_start, n_bits)
            n_bits += 1
            maxcode = maxmaxcode if n_bits == maxbits else (1 << n_bits) - 1
        if pos + n_bits > total_bits:
            break
        code = (bits >> pos) & ((1 << n_bits) - 1)
        pos += n_bits
        if oldcode == -1:
            if code >= 256:
                raise ValueError("corrupt .Z stream: first code is not a literal")
            oldcode = finchar = code
            out.append(code)
            continue
        if code == 256 and block_mode:
            pos = group_start = align(pos, group_start, n_bits)
            free_ent = 256  # the next code adds (and wastes) entry 256, as compress does
            n_bits = 9
            maxcode = (1 << n_bits) - 1
            continue
        incode = code
        stack.clear()
        if code >= free_ent:  # KwKwK case
            if code > free_ent:
                raise ValueError("corrupt .Z stream: code beyond the table")
            stack.append(finchar)
            code = oldcode
        while code >= 256:
            stack.append(suffix[code])
            code = prefix[code]
        finchar = suffix[code]
        stack.append(finchar)
        stack.reverse()
        out += stack
        if free_ent < maxmaxcode:
            prefix[free_ent] = oldcode
            suffix[free_ent] = finchar
            free_ent += 1
        oldcode = incode
    return bytes(out)


def _decompress_z(data: bytes) -> bytes:
    """``.Z`` bytes -> raw bytes; uses the system ``gzip -dc`` when present (fast)."""
    gz = shutil.which("gzip")
    if gz is not None:
        try:
            done = subprocess.run([gz, "-dc"], input=data, capture_output=True, check=True,
                                  timeout=600)
            return done.stdout
        except (OSError, subprocess.SubprocessError):
            pass
    return unlzw(data)


def parse_isolet_text(text: str | bytes) -> tuple[np.ndarray, np.ndarray]:
    """UCI Isolet lines (617 features, then the class 1..26) -> ``(x float32, y 0..25)``."""
    if isinstance(text, bytes):
        text = text.decode("ascii")
    values = np.array(text.replace(",", " ").split(), dtype=np.float64)
    if values.size == 0 or values.size % 618:
        raise ValueError(f"Isolet text must hold rows of 617 features + 1 label; got "
                         f"{values.size} numbers")
    table = values.reshape(-1, 618)
    labels = table[:, 617]
    if not np.all((labels >= 1) & (labels <= 26) & (labels == np.round(labels))):
        raise ValueError("Isolet labels must be whole numbers 1..26")
    return table[:, :617].astype(np.float32), labels.astype(np.int64) - 1


_ISOLET_MEMBERS = {"train": "isolet1+2+3+4.data", "test": "isolet5.data"}


def _isolet_from_zip(zp: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    with zipfile.ZipFile(zp) as zf:
        names = zf.namelist()
        for p in ("train", "test") if part == "all" else (part,):
            stem = _ISOLET_MEMBERS[p]
            found = [n for n in names if n.rsplit("/", 1)[-1] in (stem, stem + ".Z")]
            if not found:
                raise ValueError(f"{zp} has no {stem}[.Z]; members: {names}")
            raw = zf.read(found[0])
            x, y = parse_isolet_text(_decompress_z(raw) if found[0].endswith(".Z") else raw)
            xs.append(x)
            ys.append(y)
    return np.concatenate(xs), np.concatenate(ys)


def _isolet_local(path: PathLike, part: str) -> tuple[np.ndarray, np.ndarray]:
    p = Path(path).expanduser()
    if p.is_dir():
        for cand in ("isolet.zip", "isolet1_subset_cai.mat"):
            if (p / cand).is_file():
                return _isolet_local(p / cand, part)
        files = [p / (_ISOLET_MEMBERS[q] + ext) for q in
                 (("train", "test") if part == "all" else (part,)) for ext in ("", ".Z")]
        present = [f for f in files if f.is_file()]
        if not present:
            raise dl.DownloadError(f"path={str(path)!r} holds no isolet.zip, isolet*.data[.Z] "
                                   f"or isolet1_subset_cai.mat")
        parts = [parse_isolet_text(_decompress_z(f.read_bytes()) if f.suffix == ".Z"
                                   else f.read_bytes()) for f in present]
        return np.concatenate([a for a, _ in parts]), np.concatenate([b for _, b in parts])
    if not p.is_file():
        raise dl.DownloadError(f"path={str(path)!r} does not exist")
    if p.suffix == ".zip":
        return _isolet_from_zip(p, part)
    if p.suffix == ".mat":  # Deng Cai's 1,560-utterance subset: fea (N, 617), gnd 1..26
        from scipy.io import loadmat  # noqa: PLC0415

        mat = loadmat(p, variable_names=["fea", "gnd"])
        return (np.asarray(mat["fea"], dtype=np.float32),
                np.asarray(mat["gnd"]).ravel().astype(np.int64) - 1)
    raw = p.read_bytes()
    return parse_isolet_text(_decompress_z(raw) if raw[:2] == b"\x1f\x9d" else raw)


def isolet(part: str = "all", *, seed: int = 0, download: bool = False,
           root: PathLike | None = None, mirror: str | None = None,
           path: PathLike | None = None, verify: bool = True) -> Dataset:
    """ISOLET spoken letters: 617 acoustic features in [-1, 1], 26 classes ``A``..``Z``.

    Args:
        part: ``"all"`` (7,797 utterances), ``"train"`` (isolet1+2+3+4, 6,238) or
            ``"test"`` (isolet5, 1,559).
        path: UCI's ``isolet.zip``, an ``isolet*.data[.Z]`` file, a folder holding them,
            or the 1,560-utterance ``.mat`` subset (``../shared/data/isolet``; ``part`` is
            then ignored).
    """
    check_choice("part", part, PARTS)
    name = "isolet" if part == "all" else f"isolet[{part}]"
    groups = ("letters",) * 26
    if path is not None:
        x, y = _isolet_local(path, part)
        return _to_dataset(name, x, y, ISOLET_CLASSES, groups)
    cache_file = _cache_path("isolet", f"isolet-{part}", root)
    cache = _load_cache(cache_file)
    if cache is not None:
        return _cached_dataset(name, cache)
    zp = _fetch_all("isolet", ["isolet.zip"], download=download, root=root,
                    mirror=mirror)["isolet.zip"]
    x, y = _isolet_from_zip(zp, part)
    _save_cache(cache_file, x, y, ISOLET_CLASSES, groups)
    return _to_dataset(name, x, y, ISOLET_CLASSES, groups)


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


# ---- registry ---------------------------------------------------------------------------
#: Registry name -> loader; each is called as ``loader(seed=..., download=..., root=...)``.
LOADERS: dict[str, Callable[..., Dataset]] = {
    "mnist": mnist,
    "fashion_mnist": fashion_mnist,
    "omniglot": omniglot,
    "omniglot_background": omniglot_background,
    "omniglot_evaluation": omniglot_evaluation,
    "isolet": isolet,
    "cub200": cub200,
    "cars196": cars196,
    "sop": sop,
}


def register_all(register: Callable[..., object] | None = None) -> None:
    """Register every real dataset with ``dml_kit.data``'s registry (done at import)."""
    if register is None:
        from dml_kit.data import register as register  # noqa: PLC0415 (defined before we are imported)
    for name, loader in LOADERS.items():
        register(name, loader, replace=True)


register_all()
