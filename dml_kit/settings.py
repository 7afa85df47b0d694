"""Run-time settings read from the environment.

``DML_KIT_FAST=1`` is the fast setting CI uses to execute every notebook top to bottom:
it shrinks epochs, episodes and grid sizes (never skips a cell). Notebooks call
:func:`pick` so that one line says both the classroom value and the fast one.

``DATASET = "omniglot"`` alone switches a notebook to a real dataset: the notebooks load
it with :func:`load_dataset`, which downloads what is missing (saying what and where).
A copy you already have is read with ``load_dataset(DATASET, path=...)``; the notebooks'
grids then pass ``data_path=data_path(DATASET)`` (:func:`data_path`), so that they read
the same files instead of looking for the set in the data folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from dml_kit.data.core import Dataset

T = TypeVar("T")


def fast_mode() -> bool:
    """True when the environment variable ``DML_KIT_FAST`` is set to a true value."""
    return os.environ.get("DML_KIT_FAST", "").strip().lower() in {"1", "true", "yes", "on"}


def pick(default: T, fast: T) -> T:
    """``fast`` under ``DML_KIT_FAST=1``, else ``default`` (e.g. ``epochs = pick(30, 2)``)."""
    return fast if fast_mode() else default


#: the datasets the kit ships or renders itself: they never download anything
EMBEDDED = ("digits", "glyphs")
#: per dataset name (lower case), the ``path=`` the last :func:`load_dataset` read it from
_PATHS: dict[str, str | None] = {}


def data_path(name: str) -> str | None:
    """The files :func:`load_dataset` last read dataset ``name`` from, as an absolute path
    (its ``path=`` option), or ``None`` when it was loaded from the data folder (or not
    yet). Pass it on to grids: ``run_grid(DATASET, ..., data_path=data_path(DATASET))``."""
    if not isinstance(name, str):
        raise ValueError(f"name must be a dataset name (a string), got {name!r}")
    return _PATHS.get(name.strip().lower())


def download_plan(name: str, root: str | os.PathLike[str] | None = None) -> str:
    """What loading the real dataset ``name`` would download, and where: the missing
    files with their sizes and URLs and the cache folder (``""`` when nothing is missing
    or ``name`` is embedded)."""
    from dml_kit.data import download as dl  # noqa: PLC0415 (keep this module light)
    from dml_kit.data.real.omniglot_files import OMNIGLOT_FILES  # noqa: PLC0415

    key = name.strip().lower()
    # the Omniglot variants read some of the "omniglot" entry's files; others all of theirs
    manifest, files = (("omniglot", OMNIGLOT_FILES[key]) if key in OMNIGLOT_FILES
                       else (key, None))
    if key in EMBEDDED or manifest not in dl.MANIFEST:
        return ""
    wanted = list(dl.MANIFEST[manifest]) if files is None else list(files)
    missing = [f for f in wanted if not dl.is_cached(manifest, f, root)]
    if not missing:
        return ""
    return (f"{name}: downloading {dl.describe(manifest, missing)}\ninto "
            f"{dl.dataset_folder(manifest, root)} (once: later runs read it from there)")


def load_dataset(name: str, *, root: str | os.PathLike[str] | None = None,
                 **options: Any) -> Dataset:
    """The notebooks' ``DATASET`` switch: ``load_dataset(DATASET)`` loads an embedded set
    (``"digits"``, ``"glyphs"``) as :func:`dml_kit.data.load` does, and a real one
    (``"mnist"``, ``"omniglot"``, ...) with downloading allowed. It first tries without
    downloading (files already in the data folder, or a copy given with ``path=``: nothing
    is printed); when files are missing it prints which ones it downloads, how large they
    are, from where and into which folder, then downloads them. ``options`` go to the
    loader (``path=``, ``mirror=``, ``size=`` ...); an unknown ``name`` raises
    ``ValueError`` listing the known ones. The ``path=`` given is remembered for
    :func:`data_path`, for the grids to read the same files."""
    if not isinstance(name, str):
        raise ValueError(f"name must be a dataset name (a string), got {name!r}")
    loaded = _load(name, root, options)
    path = options.get("path")   # remembered once the files were read from it
    _PATHS[name.strip().lower()] = (None if path is None
                                    else str(Path(path).expanduser().resolve()))
    return loaded


def _load(name: str, root: str | os.PathLike[str] | None, options: dict[str, Any]) -> Dataset:
    from dml_kit import data  # noqa: PLC0415 (keep this module light)

    if name.strip().lower() in EMBEDDED:
        return data.load(name, root=root, **options)
    from dml_kit.data.download import DownloadRequiredError  # noqa: PLC0415

    try:   # files already there (or a copy given with path=): no download, nothing printed
        return data.load(name, root=root, **options)
    except DownloadRequiredError:
        pass
    print(download_plan(name, root) or f"{name}: downloading its files")
    return data.load(name, download=True, root=root, **options)


def panel_data(name: str, split: object) -> object:
    """What a training panel (``MethodRunner``, ``SECExplorer``) takes for the notebook's
    ``DATASET``: the name of an embedded set (the panel caches its split), else the
    notebook's own ``split`` (a ``DomainSplit`` of the real set, already loaded)."""
    return name if isinstance(name, str) and name.strip().lower() in EMBEDDED else split
