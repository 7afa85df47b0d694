"""Isolet: UCI text lines of 617 comma-separated features and a class ``1.`` .. ``26.``,
shipped as ``.Z`` files in a zip (decoded by :mod:`dml_kit.data.real.lzw`).

UCI publishes no checksum for ``isolet.zip``, so it is verified by its structure
(:func:`verify_isolet_zip`: the zip magic, both members, 6,238 and 1,559 rows of 617
features and a label 1..26) the first time it is parsed; its SHA256 is then recorded
beside it (``isolet.zip.sha256``) and re-checked on every later load that reads it
(:func:`dml_kit.data.download.check_recorded_sha256`). A file that fails (an HTML error
page saved as ``isolet.zip``, a truncated transfer) raises
:class:`~dml_kit.data.download.DownloadError` naming its path and the remedy.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from dml_kit._validation import check_choice
from dml_kit.data import download as dl
from dml_kit.data.core import Dataset
from dml_kit.data.real.base import (
    PARTS,
    PathLike,
    _cache_path,
    _cached_dataset,
    _fetch_all,
    _load_cache,
    _save_cache,
    _to_dataset,
)
from dml_kit.data.real.lzw import _decompress_z

ISOLET_CLASSES = tuple(chr(ord("A") + i) for i in range(26))


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
#: rows of each member of UCI's isolet.zip (the structural check of verify_isolet_zip)
ISOLET_ROWS = {"train": 6238, "test": 1559}
_ZIP_MAGIC = b"PK\x03\x04"
_PARSE_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, KeyError, EOFError,
                 OSError, UnicodeDecodeError, RuntimeError)


def _bad_zip(zp: Path, problem: str, remedy: str) -> dl.DownloadError:
    return dl.DownloadError(f"{zp} is not a usable copy of UCI's isolet.zip: {problem}. "
                            f"{remedy}")


def _read_member(zp: Path, zf: zipfile.ZipFile, part: str) -> tuple[np.ndarray, np.ndarray]:
    names = zf.namelist()
    stem = _ISOLET_MEMBERS[part]
    found = [n for n in names if n.rsplit("/", 1)[-1] in (stem, stem + ".Z")]
    if not found:
        raise ValueError(f"{zp} has no {stem}[.Z]; members: {names}")
    raw = zf.read(found[0])
    return parse_isolet_text(_decompress_z(raw) if found[0].endswith(".Z") else raw)


def _isolet_from_zip(zp: Path, part: str, *, check_rows: bool = False,
                     remedy: str = "") -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``part`` (``"all"``: train then test); any failure to read or parse
    is a :class:`DownloadError` naming ``zp`` and ``remedy``. ``check_rows`` also
    requires the official row counts (:data:`ISOLET_ROWS`)."""
    remedy = remedy or (f"Delete {zp} and load it again with download=True, or pass "
                        f"path= to a good copy")
    try:
        with open(zp, "rb") as handle:
            magic = handle.read(4)
    except OSError as err:
        raise _bad_zip(zp, f"cannot read it ({err})", remedy) from None
    if magic != _ZIP_MAGIC:
        head = magic.decode("latin-1").strip() or repr(magic)
        raise _bad_zip(zp, f"it does not start like a zip file (starts with {head!r}; an "
                           f"HTML error page saved under that name?)", remedy)
    xs, ys = [], []
    try:
        with zipfile.ZipFile(zp) as zf:
            for p in ("train", "test") if part == "all" else (part,):
                x, y = _read_member(zp, zf, p)
                if check_rows and len(y) != ISOLET_ROWS[p]:
                    raise ValueError(f"{_ISOLET_MEMBERS[p]} has {len(y):,} rows, the official "
                                     f"file has {ISOLET_ROWS[p]:,}")
                xs.append(x)
                ys.append(y)
    except dl.DownloadError:
        raise
    except _PARSE_ERRORS as err:
        raise _bad_zip(zp, f"{type(err).__name__}: {err}", remedy) from None
    return np.concatenate(xs), np.concatenate(ys)


def verify_isolet_zip(zp: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """The structural check that stands in for the checksum UCI does not publish: ``zp``
    starts with the zip magic, holds ``isolet1+2+3+4.data[.Z]`` and ``isolet5.data[.Z]``
    with :data:`ISOLET_ROWS` rows (6,238 and 1,559), every row 617 features and a label
    1..26. Returns all rows (train then test); raises :class:`DownloadError` naming
    ``zp`` and the remedy."""
    return _isolet_from_zip(Path(zp), "all", check_rows=True)


def _select_part(x: np.ndarray, y: np.ndarray, part: str) -> tuple[np.ndarray, np.ndarray]:
    """``part`` of the rows :func:`verify_isolet_zip` returned (train rows first)."""
    n_train = ISOLET_ROWS["train"]
    if part == "train":
        return x[:n_train], y[:n_train]
    if part == "test":
        return x[n_train:], y[n_train:]
    return x, y


def _isolet_cached_zip(zp: Path, part: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``part`` from the cached ``isolet.zip``: verified by structure (then its
    sha256 recorded) when no hash was recorded yet; :func:`dml_kit.data.download.fetch`
    has already re-checked a recorded one."""
    if dl.recorded_sha256(zp) is None:
        x, y = verify_isolet_zip(zp)
        dl.record_sha256(zp)
        return _select_part(x, y, part)
    return _isolet_from_zip(zp, part)


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
        return _isolet_from_zip(p, part, remedy="Pass path= to a good copy of UCI's isolet.zip")
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
    x, y = _isolet_cached_zip(zp, part)
    _save_cache(cache_file, x, y, ISOLET_CLASSES, groups)
    return _to_dataset(name, x, y, ISOLET_CLASSES, groups)


