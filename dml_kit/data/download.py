"""Downloads users can trust: a manifest of official files and a thin layer over pooch.

Every real dataset file the kit knows is listed in :data:`MANIFEST` with its official URL,
its size in bytes and a checksum. :func:`fetch` returns the local path of one such file:

* a file already in the cache folder (``<data root>/<dataset>/<filename>``) is returned
  at once, without any network request (it was verified before it was put there);
* otherwise, only when ``download=True``, the file is streamed by `pooch
  <https://www.fatiando.org/pooch>`_ (with a progress bar) into a private staging folder
  ``<data root>/<dataset>/.partial/<pid>-<random>/``, its checksum is verified there, its
  size too, and only then is it renamed (atomically, same file system) to its final name.
  A failed, truncated or killed transfer therefore never leaves a file under a final
  name; the next call removes the staging folders of dead processes and starts over
  (downloads are *cleanly restartable*, not resumed from the middle);
* ``path=`` points at a copy you already have (a file, or a folder holding it): it is
  verified and used in place, nothing is copied;
* ``mirror=`` (or the environment variable ``DML_KIT_MIRROR``) replaces the official
  host: an ``http(s)://`` or ``ftp://`` base URL, or a local folder, laid out like the
  cache (``<mirror>/<dataset>/<filename>``). A populated data folder served with
  ``python -m http.server`` is therefore a working mirror for a classroom. Without a
  mirror, an entry's other official locations (``alt_urls``, e.g. yann.lecun.com for
  MNIST) are tried in turn when the first fails.

Every failure is a :class:`DownloadError` whose message names the URL and the cache
folder, says what went wrong (offline, checksum mismatch, truncated transfer) and what
to do next.

Checksums: every entry has one. Where the publisher gives none (UCI's ``isolet.zip``:
searched for in vain, UCI publishes no checksum) ``known_hash`` is ``None`` and the
entry's ``verified_by`` says how it is verified instead: its loader checks the file's
structure on first use (for Isolet: a zip holding both members, 6,238 and 1,559 rows of
617 features and a label 1..26) and then records the file's SHA256 beside it
(``<file>.sha256``, :func:`record_sha256`); every later :func:`fetch` of the cached file
re-checks that hash (:func:`check_recorded_sha256`), and a mismatch is a
:class:`DownloadError` naming the file and what to do. A new download replaces the record.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import logging
import os
import secrets
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .._validation import check_choice
from . import paths

__all__ = [
    "MANIFEST",
    "DownloadError",
    "DownloadRequiredError",
    "RemoteFile",
    "check_recorded_sha256",
    "data_root",
    "dataset_folder",
    "describe",
    "fetch",
    "file_hash",
    "is_cached",
    "record_path",
    "record_sha256",
    "recorded_sha256",
]

MIRROR_ENV = "DML_KIT_MIRROR"
DATA_ENV = paths.ENV_VAR
PARTIAL_DIR = ".partial"
DEFAULT_TIMEOUT_S = 60.0
STALE_AFTER_S = 24 * 3600.0  # staging older than this is removed even if its pid lives

_log = logging.getLogger(__name__)


class DownloadError(RuntimeError):
    """A dataset file could not be fetched or verified (offline, bad checksum, ...)."""


class DownloadRequiredError(DownloadError):
    """The file is not in the cache and ``download=True`` was not given."""


@dataclass(frozen=True)
class RemoteFile:
    """One official file of a dataset.

    Attributes:
        dataset: cache sub-folder and manifest key, e.g. ``"mnist"``.
        filename: file name in the cache and on mirrors.
        url: the official download URL.
        size: size in bytes, ``None`` when not published.
        known_hash: ``"sha256:<hex>"`` or ``"md5:<hex>"``; ``None`` = not verified from a
            published source (pooch logs the SHA256 it computes).
        source: where the checksum and size were taken from.
        alt_urls: other official locations, tried in order when ``url`` fails.
        verified_by: for an entry without a published hash (``known_hash=None``), how it
            is verified instead (structure on first use, then a recorded SHA256).
        content_md5: md5 of the *decompressed* bytes of a ``.gz`` file, when published.
            Copies re-compressed by others (Debian, GitHub snapshots) have another
            ``.gz`` checksum but the same content; ``path=`` copies are accepted on it.
    """

    dataset: str
    filename: str
    url: str
    size: int | None
    known_hash: str | None
    source: str = ""
    content_md5: str | None = None
    alt_urls: tuple[str, ...] = ()
    verified_by: str = ""


def _entries(dataset: str, base: str, files: Iterable[tuple[str, int | None, str | None]],
             source: str) -> dict[str, RemoteFile]:
    return {name: RemoteFile(dataset, name, base + name, size, digest, source)
            for name, size, digest in files}


_OMNIGLOT = "https://raw.githubusercontent.com/brendenlake/omniglot/master/python/"

#: how ``isolet.zip`` is verified without a published checksum
ISOLET_VERIFIED_BY = (
    "structure on first parse (a zip holding isolet1+2+3+4.data[.Z] with 6,238 rows and "
    "isolet5.data[.Z] with 1,559, each row 617 features and a label 1..26; "
    "dml_kit.data.real.isolet_files.verify_isolet_zip), then its sha256 recorded beside it "
    "(isolet.zip.sha256) and re-checked on every later load")

#: suffix of the file that records a verified file's SHA256 (entries without a hash)
RECORD_SUFFIX = ".sha256"

#: dataset -> file name -> :class:`RemoteFile`. Edit with care: tests patch entries.
MANIFEST: dict[str, dict[str, RemoteFile]] = {
    # Official host yann.lecun.com/exdb/mnist/ has answered 403 to scripts; the ossci S3
    # bucket (PyTorch's mirror, tried first) serves the same bytes. SHA256 and sizes:
    # TensorFlow's url checksums, repeated by several independent projects.
    "mnist": _entries("mnist", "https://ossci-datasets.s3.amazonaws.com/mnist/", [
        ("train-images-idx3-ubyte.gz", 9_912_422,
         "sha256:440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        ("train-labels-idx1-ubyte.gz", 28_881,
         "sha256:3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        ("t10k-images-idx3-ubyte.gz", 1_648_877,
         "sha256:8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        ("t10k-labels-idx1-ubyte.gz", 4_542,
         "sha256:f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    ], "TFDS/keras sha256, torchvision md5; mirror of http://yann.lecun.com/exdb/mnist/"),
    # Zalando's own S3 bucket (the URLs in the fashion-mnist README); md5 = torchvision's.
    "fashion_mnist": _entries(
        "fashion_mnist", "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/", [
            ("train-images-idx3-ubyte.gz", 26_421_880, "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
            ("train-labels-idx1-ubyte.gz", 29_515, "md5:25c81989df183df01b3e8a0aad5dffbe"),
            ("t10k-images-idx3-ubyte.gz", 4_422_102, "md5:bef4ecab320f06d8554ea6380940ec79"),
            ("t10k-labels-idx1-ubyte.gz", 5_148, "md5:bb300cfdad3c16e7a12a480ee83cd310"),
        ], "torchvision md5; sizes from keras download logs"),
    # github.com/brendenlake/omniglot, python/ folder (MIT). SHA256 and sizes of the two
    # full zips: shared/data/omniglot/SOURCE.md (= TFDS url_checksums); all_runs.zip
    # hashed from the unchanged copy in shared/data.
    "omniglot": {
        **_entries("omniglot", _OMNIGLOT, [
            ("images_background.zip", 9_464_212,
             "sha256:ad41ab679c8b5d90b271ef46be6987cc81211774a695c29dcc5367b2b26ee640"),
            ("images_evaluation.zip", 6_462_886,
             "sha256:1f61a8f3366785b057fc117d9228e78a16e3d976c8953b2a10fcc74cf0609cee"),
        ], "TFDS url_checksums; torchvision md5 68d2efa1..., 6b91aef0..."),
        **_entries("omniglot", _OMNIGLOT + "one-shot-classification/", [
            ("all_runs.zip", 352_787,
             "sha256:437c1eeab0af8484112e1b4cc0f3d541ec727f7c47b9b202da738af9dfd6c325"),
        ], "hashed from an unchanged copy of the repository file"),
    },
    # UCI's current zip (holds isolet1+2+3+4.data.Z and isolet5.data.Z, Unix compress).
    # UCI publishes no checksum or size: unverified (pooch logs the SHA256).
    "isolet": {name: dataclasses.replace(entry, verified_by=ISOLET_VERIFIED_BY)
               for name, entry in _entries(
                   "isolet", "https://archive.ics.uci.edu/static/public/54/", [
                       ("isolet.zip", None, None),
                   ], "UCI publishes no checksum: structure checked, then sha256 recorded"
               ).items()},
    # CaltechDATA record of CUB-200-2011 (the old vision.caltech.edu URL redirects here).
    "cub200": _entries("cub200", "https://data.caltech.edu/records/65de6-vp158/files/", [
        ("CUB_200_2011.tgz", 1_150_585_339, "md5:97eceeb196236b17998738112f37df78"),
    ], "md5 and size used by torchvision-style loaders and fastai"),
    # Stanford's original host (ai.stanford.edu/~jkrause/car196/) has been offline at
    # times; use mirror= or path= then. md5 from pytorch-metric-learning; size unknown.
    "cars196": _entries("cars196", "http://ai.stanford.edu/~jkrause/car196/", [
        ("car_ims.tgz", None, "md5:d5c8f0aa497503f355e17dc7886c3f14"),
        ("cars_annos.mat", None, "md5:b407c6086d669747186bd1d764ff9dbc"),
    ], "md5 from pytorch-metric-learning and others; sizes unknown"),
    # Stanford Online Products from the lifted-structure project's host (also
    # ftp://cs.stanford.edu/cs/cvgl/). md5 from pytorch-metric-learning; size unknown.
    "sop": _entries("sop", "http://ftp.cs.stanford.edu/cs/cvgl/", [
        ("Stanford_Online_Products.zip", None, "md5:7f73d41a2f44250d4779881525aea32e"),
    ], "md5 from pytorch-metric-learning and others; size unknown"),
}


# md5 of the decompressed official IDX files (shared/data SOURCE.md, equal to the md5s
# published beside the raw files); lets re-gzipped copies pass verification.
_CONTENT_MD5 = {
    ("mnist", "t10k-images-idx3-ubyte.gz"): "2646ac647ad5339dbf082846283269ea",
    ("mnist", "t10k-labels-idx1-ubyte.gz"): "27ae3e4e09519cfbb04c329615203637",
    ("mnist", "train-labels-idx1-ubyte.gz"): "a25bea736e30d166cdddb491f175f624",
    ("fashion_mnist", "t10k-images-idx3-ubyte.gz"): "8181f5470baa50b63fa0f6fddb340f0a",
    ("fashion_mnist", "t10k-labels-idx1-ubyte.gz"): "15d484375f8d13e6eb1aabb0c3f46965",
}
for (_ds, _fn), _md5 in _CONTENT_MD5.items():
    MANIFEST[_ds][_fn] = dataclasses.replace(MANIFEST[_ds][_fn], content_md5=_md5)

# Other official locations of the same bytes, tried in order when the first one fails.
_ALT_BASES = {
    "mnist": ["http://yann.lecun.com/exdb/mnist/"],
    "fashion_mnist": ["https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/"
                      "master/data/fashion/"],
    "cars196": ["http://imagenet.stanford.edu/internal/car196/"],
    "sop": ["ftp://cs.stanford.edu/cs/cvgl/"],
}
for _ds, _bases in _ALT_BASES.items():
    for _fn, _e in MANIFEST[_ds].items():
        MANIFEST[_ds][_fn] = dataclasses.replace(_e, alt_urls=tuple(b + _fn for b in _bases))


# ---- folders ---------------------------------------------------------------------------
def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The cache root: ``root`` if given, else ``$DML_KIT_DATA``, else ``<checkout>/data``."""
    return paths.data_root(root)


def dataset_folder(dataset: str, root: str | os.PathLike[str] | None = None) -> Path:
    """``<data root>/<dataset>`` (not created)."""
    return data_root(root) / dataset


def _entry(dataset: str, filename: str) -> RemoteFile:
    check_choice("dataset", dataset, sorted(MANIFEST))
    check_choice("filename", filename, list(MANIFEST[dataset]))
    return MANIFEST[dataset][filename]


def _human(n: int | None) -> str:
    if n is None:
        return "size unknown"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"


def describe(dataset: str, filenames: Iterable[str] | None = None) -> str:
    """One line per file: name, size and URL (used in "pass download=True" errors)."""
    check_choice("dataset", dataset, sorted(MANIFEST))
    names = list(MANIFEST[dataset]) if filenames is None else list(filenames)
    entries = [_entry(dataset, n) for n in names]
    sizes = [e.size for e in entries]
    total = None if any(s is None for s in sizes) else sum(s for s in sizes if s is not None)
    lines = [f"  {e.filename} ({_human(e.size)}) from {e.url}" for e in entries]
    head = f"{len(entries)} file(s), {_human(total) if total is not None else 'total size unknown'}"
    return head + ":\n" + "\n".join(lines)


def is_cached(dataset: str, filename: str, root: str | os.PathLike[str] | None = None) -> bool:
    """Whether the file is in the cache folder under its final name."""
    _entry(dataset, filename)
    return (dataset_folder(dataset, root) / filename).is_file()


# ---- hashing ---------------------------------------------------------------------------
def file_hash(path: str | os.PathLike[str], algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _hash_ok(path: Path, known_hash: str | None) -> bool:
    if known_hash is None:
        return True
    algorithm, _, digest = known_hash.rpartition(":")
    return file_hash(path, algorithm or "sha256") == digest.lower()


def record_path(path: str | os.PathLike[str]) -> Path:
    """Where the SHA256 of ``path`` is recorded: ``<path>.sha256``."""
    p = Path(path)
    return p.with_name(p.name + RECORD_SUFFIX)


def record_sha256(path: str | os.PathLike[str]) -> str:
    """Record the SHA256 of ``path`` beside it (atomically); return the digest. Call it
    once a file without a published hash has passed its structural check."""
    digest = file_hash(path, "sha256")
    with paths.atomic_write(record_path(path)) as handle:
        handle.write(f"{digest}  {Path(path).name}\n".encode())
    return digest


def recorded_sha256(path: str | os.PathLike[str]) -> str | None:
    """The SHA256 recorded for ``path``, or ``None`` when none was (or it is unreadable)."""
    try:
        text = record_path(path).read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError):
        return None
    return text[0].lower() if text and len(text[0]) == 64 else None


def check_recorded_sha256(path: str | os.PathLike[str]) -> bool:
    """Re-check ``path`` against its recorded SHA256: ``False`` when nothing is recorded
    (not yet verified), ``True`` when it matches; a mismatch raises
    :class:`DownloadError` naming the file, the record and the remedy."""
    expected = recorded_sha256(path)
    if expected is None:
        return False
    actual = file_hash(path, "sha256")
    if actual != expected:
        raise DownloadError(
            f"{path} changed since it was verified: sha256 {actual}, recorded "
            f"{expected} in {record_path(path)}. The file is damaged or was replaced; "
            f"delete {path} (and {record_path(path).name}) and load it again with "
            f"download=True, or pass path= to a good copy")
    return True


# ---- staging ---------------------------------------------------------------------------
def _clean_stale_partials(folder: Path) -> None:
    """Remove staging folders left by killed processes (their pid is gone, or they are
    older than a day, in case the pid was reused)."""
    staging = folder / PARTIAL_DIR
    if not staging.is_dir():
        return
    for sub in staging.iterdir():
        pid_text = sub.name.split("-", 1)[0]
        try:
            age = time.time() - sub.stat().st_mtime
        except OSError:
            continue
        alive = pid_text.isdigit() and (int(pid_text) == os.getpid()
                                        or paths.pid_alive(int(pid_text)))
        if alive and age < STALE_AFTER_S:
            continue  # a live download (this process or another) is using it
        if sub.is_dir():
            shutil.rmtree(sub, ignore_errors=True)
        else:
            sub.unlink(missing_ok=True)
    try:
        staging.rmdir()
    except OSError:
        pass


def _new_staging(folder: Path) -> Path:
    staging = folder / PARTIAL_DIR / f"{os.getpid()}-{secrets.token_hex(4)}"
    staging.mkdir(parents=True, exist_ok=False)
    return staging


def _remove_staging(staging: Path) -> None:
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.parent.rmdir()  # .partial, when no other download uses it
    except OSError:
        pass


# ---- the one entry point ---------------------------------------------------------------
def _mirror_location(mirror: str, entry: RemoteFile) -> str:
    return f"{mirror.rstrip('/')}/{entry.dataset}/{entry.filename}"


def _local_mirror_dir(mirror: str) -> Path | None:
    if mirror.startswith("file://"):
        return Path(mirror[len("file://"):])
    if "://" in mirror:
        return None
    return Path(mirror).expanduser()


def _resolve_local(path: str | os.PathLike[str], entry: RemoteFile) -> Path:
    p = Path(path).expanduser()
    if p.is_dir():
        for candidate in (p / entry.filename, p / entry.dataset / entry.filename):
            if candidate.is_file():
                return candidate
        raise DownloadError(f"path={str(path)!r} is a folder without {entry.filename!r} "
                            f"(looked in {p} and {p / entry.dataset})")
    if not p.is_file():
        raise DownloadError(f"path={str(path)!r} does not exist; point it at "
                            f"{entry.filename!r} or at a folder holding it")
    return p


def _content_md5(p: Path) -> str | None:
    h = hashlib.md5()
    try:
        with gzip.open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except (OSError, EOFError):
        return None
    return h.hexdigest()


def _check_local(p: Path, entry: RemoteFile, verify: bool, what: str) -> Path:
    """Accept ``p`` when its size and checksum match (or its decompressed md5 does)."""
    if not verify:
        return p
    size = p.stat().st_size
    if (entry.size is None or size == entry.size) and _hash_ok(p, entry.known_hash):
        return p
    if entry.content_md5 is not None and _content_md5(p) == entry.content_md5:
        return p  # re-compressed copy of the official content
    if entry.size is not None and size != entry.size:
        problem = f"has {size:,} bytes, but the official {entry.filename} has {entry.size:,}"
    else:
        problem = f"does not match the official checksum {entry.known_hash} of {entry.filename}"
    raise DownloadError(f"{what} {p} {problem}; pass verify=False to use it anyway")


def _cached_ok(target: Path, entry: RemoteFile) -> bool:
    """Whether the cached ``target`` can be used as it is: present, of the right size
    (logged when not), and for an entry without a published hash equal to its recorded
    SHA256 (:func:`check_recorded_sha256` raises, naming it, when it changed)."""
    if not target.is_file():
        return False
    if entry.size is not None and target.stat().st_size != entry.size:
        _log.warning("%s has the wrong size; downloading it again", target)
        return False
    if entry.known_hash is None:
        check_recorded_sha256(target)
    return True


def fetch(dataset: str, filename: str, *, root: str | os.PathLike[str] | None = None,
          download: bool = False, mirror: str | None = None,
          path: str | os.PathLike[str] | None = None, verify: bool = True,
          progress: bool = True, timeout: float = DEFAULT_TIMEOUT_S) -> Path:
    """Local path of one manifest file, downloading it when asked.

    Args:
        dataset, filename: a :data:`MANIFEST` entry.
        root: cache root (default ``$DML_KIT_DATA`` or ``<checkout>/data``).
        download: fetch the file when it is not cached; without it a missing file raises
            :class:`DownloadRequiredError` saying what would be downloaded.
        mirror: base URL or local folder laid out as ``<mirror>/<dataset>/<filename>``;
            default ``$DML_KIT_MIRROR``, else the official URL.
        path: an already-downloaded copy (file, or folder holding it), used in place.
        verify: check size and checksum of a ``path=`` or local-mirror copy.
        progress: show a tqdm progress bar while downloading.
        timeout: seconds without data before a connection is given up.

    Raises:
        DownloadError: offline, HTTP error, truncated transfer, checksum or size mismatch;
            the message names the URL and the cache folder.
    """
    entry = _entry(dataset, filename)
    if path is not None:
        return _check_local(_resolve_local(path, entry), entry, verify, "path=")
    folder = dataset_folder(dataset, root)
    target = folder / filename
    if _cached_ok(target, entry):
        return target
    mirror = mirror if mirror is not None else (os.environ.get(MIRROR_ENV) or None)
    if not download:
        raise DownloadRequiredError(
            f"{dataset}: {filename} is not in the cache folder {folder}. Pass download=True "
            f"to fetch {describe(dataset, [filename])}\n"
            f"(or path= to use a copy you already have, or mirror= / ${MIRROR_ENV}).")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DownloadError(f"cannot create the cache folder {folder}: {err}; set "
                            f"${DATA_ENV} or root= to a writable folder") from err
    _clean_stale_partials(folder)
    local = _local_mirror_dir(mirror) if mirror else None
    url = _mirror_location(mirror, entry) if mirror else entry.url
    staging = _new_staging(folder)
    try:
        if local is not None:
            src = _resolve_local(local, entry)
            staged = staging / filename
            shutil.copyfile(src, staged)
            try:
                _check_local(staged, entry, True, f"mirror copy of {src} as")
            except DownloadError as err:
                raise DownloadError(f"{err} (mirror {mirror}; nothing was kept in the cache "
                                    f"folder {folder})") from None
        else:
            urls = [url] if mirror else [entry.url, *entry.alt_urls]
            errors: list[DownloadError] = []
            for candidate in urls:
                try:
                    staged = _pooch_download(candidate, entry, staging, folder, progress,
                                             timeout)
                    break
                except DownloadError as err:
                    errors.append(err)
                    if candidate != urls[-1]:
                        _log.warning("%s; trying %s", err, urls[len(errors)])
            else:
                if len(errors) == 1:
                    raise errors[0]
                raise DownloadError("every source failed:\n" + "\n".join(
                    f"  - {e}" for e in errors)) from errors[-1]
        record_path(target).unlink(missing_ok=True)  # it described the old file
        os.replace(staged, target)  # atomic: same folder tree, same file system
    finally:
        _remove_staging(staging)
    return target


def _pooch_download(url: str, entry: RemoteFile, staging: Path, folder: Path,
                    progress: bool, timeout: float) -> Path:
    """Stream ``url`` with pooch into ``staging`` (temp file + hash check + rename)."""
    import pooch  # noqa: PLC0415 (import cost only when downloading)
    import requests  # noqa: PLC0415

    if url.startswith(("http://", "https://")):
        downloader = pooch.HTTPDownloader(progressbar=progress, timeout=timeout)
    elif url.startswith("ftp://"):
        downloader = pooch.FTPDownloader(progressbar=progress, timeout=timeout)
    else:
        raise DownloadError(f"unsupported URL {url!r}: use http(s)://, ftp:// or a local "
                            f"folder for mirror=")
    where = f"{url} into the cache folder {folder}"
    try:
        out = pooch.retrieve(url, known_hash=entry.known_hash, fname=entry.filename,
                             path=staging, downloader=downloader, progressbar=progress)
    except requests.exceptions.ChunkedEncodingError as err:
        raise DownloadError(f"transfer of {where} was cut short ({err}); nothing was "
                            f"kept; run again to restart it") from err
    except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as err:
        raise DownloadError(
            f"cannot reach {url} (offline?) to download into the cache folder {folder}: "
            f"{type(err).__name__}. Check the connection, or set mirror= / ${MIRROR_ENV} "
            f"to a reachable mirror, or download the file by hand and pass path=.") from err
    except requests.exceptions.HTTPError as err:
        raise DownloadError(f"server refused {where}: {err}; try mirror= or path=") from err
    except requests.exceptions.RequestException as err:
        raise DownloadError(f"download of {where} failed: {err}; nothing was kept; run "
                            f"again to restart it") from err
    except ValueError as err:  # pooch: hash mismatch
        if "hash" in str(err).lower():
            raise DownloadError(
                f"checksum mismatch for {where}: expected {entry.known_hash} ({err}). The "
                f"file was deleted, nothing was kept in the cache folder; the transfer was "
                f"corrupted or the file changed upstream.") from err
        raise DownloadError(f"download of {where} failed: {err}") from err
    except OSError as err:
        raise DownloadError(f"download of {where} failed: {err}") from err
    staged = Path(out)
    if entry.size is not None and staged.stat().st_size != entry.size:
        size = staged.stat().st_size
        staged.unlink()
        raise DownloadError(
            f"downloaded {url} has {size:,} bytes, expected {entry.size:,} (truncated or "
            f"changed upstream); nothing was kept in the cache folder {folder}")
    return staged
