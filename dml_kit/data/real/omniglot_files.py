"""Omniglot: the background/evaluation zips (or the ``.npz`` copy), its rotated form (the
90/180/270-degree rotations as new classes, as prototypical networks and Adapted Deep
Embeddings use it), and Lake et al.'s 20 one-shot runs with their evaluation."""

from __future__ import annotations

import csv
import io
import os
import re
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dml_kit._validation import check_choice, check_int
from dml_kit.data import download as dl
from dml_kit.data.core import Dataset
from dml_kit.data.real.base import (
    PathLike,
    _cache_path,
    _cached_dataset,
    _fetch_all,
    _load_cache,
    _save_cache,
    _to_dataset,
)

# ---- Omniglot ---------------------------------------------------------------------------
OMNIGLOT_SPLITS = ("all", "background", "evaluation")
_OMNIGLOT_ZIPS = {"background": "images_background.zip", "evaluation": "images_evaluation.zip"}
#: registry name -> the download-manifest files its loader reads (what a switch to it fetches)
OMNIGLOT_FILES: dict[str, tuple[str, ...]] = {
    "omniglot": tuple(_OMNIGLOT_ZIPS.values()),
    "omniglot_rotated": tuple(_OMNIGLOT_ZIPS.values()),
    "omniglot_background": (_OMNIGLOT_ZIPS["background"],),
    "omniglot_evaluation": (_OMNIGLOT_ZIPS["evaluation"],),
}
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


#: the rotations (degrees, counter-clockwise) of ``omniglot(rotations=True)``, in class order
ROTATIONS = (0, 90, 180, 270)


def rotate_omniglot(parsed: OmniglotImages) -> OmniglotImages:
    """Add the 90/180/270-degree rotations of every character as new classes.

    The protocol of prototypical networks (Snell et al. 2017, after Vinyals et al. 2016)
    and of Adapted Deep Embeddings' official code (../shared/PAPERS.md, section 1:
    "all 1,623 characters plus three rotations (6,492 classes)"). Class ``r * C + c``
    (``C`` characters, ``r`` the index in :data:`ROTATIONS`) holds the images of class
    ``c`` turned by ``ROTATIONS[r]`` degrees counter-clockwise (``np.rot90(image, r)``),
    named ``"Alphabet/characterNN@90"`` (the unrotated ones keep their plain names);
    groups stay the alphabets; ``char_ids`` and ``drawers`` are repeated per rotation.
    """
    c = len(parsed.class_names)
    return OmniglotImages(
        images=np.concatenate([np.rot90(parsed.images, r, axes=(1, 2))
                               for r in range(len(ROTATIONS))]),
        labels=np.concatenate([parsed.labels + r * c for r in range(len(ROTATIONS))]),
        class_names=tuple(name if deg == 0 else f"{name}@{deg}"
                          for deg in ROTATIONS for name in parsed.class_names),
        class_groups=parsed.class_groups * len(ROTATIONS),
        char_ids=np.tile(parsed.char_ids, len(ROTATIONS)),
        drawers=np.tile(parsed.drawers, len(ROTATIONS)))


def _omniglot_parsed(split: str, size: int, download: bool, root: PathLike | None,
                     mirror: str | None) -> OmniglotImages:
    """The plain split from the parse cache, or fetched, parsed and cached."""
    cache_file = _cache_path("omniglot", f"omniglot-{split}-{size}px", root)
    cache = _load_cache(cache_file)
    if cache is not None:
        return _cached_images(cache)
    names = [_OMNIGLOT_ZIPS[s] for s in (("background", "evaluation") if split == "all"
                                         else (split,))]
    files = _fetch_all("omniglot", names, download=download, root=root, mirror=mirror)
    parsed = parse_omniglot_zips([files[n] for n in names], size)
    _save_images(cache_file, parsed)
    return parsed


def _cached_images(cache: dict[str, np.ndarray]) -> OmniglotImages:
    return OmniglotImages(images=cache["x"][:, 0], labels=cache["y"],
                          class_names=tuple(cache["class_names"].tolist()),
                          class_groups=tuple(cache["class_groups"].tolist()),
                          char_ids=cache["char_ids"], drawers=cache["drawers"])


def _save_images(path: Path, parsed: OmniglotImages) -> None:
    _save_cache(path, parsed.images[:, None], parsed.labels, parsed.class_names,
                parsed.class_groups, char_ids=parsed.char_ids, drawers=parsed.drawers)


def omniglot(split: str = "all", *, size: int = 28, rotations: bool = False, seed: int = 0,
             download: bool = False, root: PathLike | None = None, mirror: str | None = None,
             path: PathLike | None = None, verify: bool = True) -> Dataset:
    """Omniglot, 1 x size x size (default 28), strokes bright; class = ``Alphabet/characterNN``,
    group = alphabet.

    Args:
        split: ``"all"`` (50 alphabets, 1,623 characters, 32,460 images), ``"background"``
            (30 alphabets, 964 characters) or ``"evaluation"`` (20 alphabets, 659).
        size: output side in pixels (4..105).
        rotations: add the 90/180/270-degree rotations of every character as new classes
            (:func:`rotate_omniglot`; ``"all"``: 1,623 x 4 = 6,492 classes of 20 drawers,
            129,840 images), named ``"Alphabet/characterNN@90"`` etc.; groups stay the
            alphabets. The dataset is then called ``omniglot_rotated`` (``"all"``) or
            ``omniglot_<split>_rotated``; it is cached beside the plain one.
        path: an official zip, a folder holding ``images_background.zip`` /
            ``images_evaluation.zip``, or a folder holding ``omniglot_images_<split>.npz`` and
            ``omniglot_alphabets.csv`` (the layout of ``../shared/data/omniglot``).
    """
    check_choice("split", split, OMNIGLOT_SPLITS)
    size = check_int("size", size, 4, 105)
    name = "omniglot" if split == "all" else f"omniglot_{split}"
    if rotations:
        name += "_rotated"
    if path is not None:
        parsed = _omniglot_local(split, path, size, verify)
        return (rotate_omniglot(parsed) if rotations else parsed).to_dataset(name)
    if not rotations:
        return _omniglot_parsed(split, size, download, root, mirror).to_dataset(name)
    cache_file = _cache_path("omniglot", f"omniglot-{split}-{size}px-rotated", root)
    cache = _load_cache(cache_file)
    if cache is not None:
        return _cached_dataset(name, cache)
    rotated = rotate_omniglot(_omniglot_parsed(split, size, download, root, mirror))
    _save_images(cache_file, rotated)
    return rotated.to_dataset(name)


def omniglot_rotated(**kwargs: object) -> Dataset:
    """Rotated Omniglot as Adapted Deep Embeddings uses it: all 1,623 characters and their
    90/180/270-degree rotations, 6,492 classes of 20 images (``omniglot("all",
    rotations=True)``; see :func:`omniglot`). Groups are the alphabets; the paper's T1/T2
    draw classes ignoring them (``SourceSpec(kind="paper", by="class")``)."""
    return omniglot("all", rotations=True, **kwargs)  # type: ignore[arg-type]


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


