"""A rerun from the store without torch: the grid index.

:func:`dml_kit.experiments.grid.run_grid` computes every cell's config hash before it
looks in the store, and the hashes need the presets, the method configs (which import
torch) and the dataset's content fingerprint (which loads the dataset). A rerun whose
cells are all stored needs none of that once the hashes are known, so the grid notes them
in the store's ``grid_index`` table (:meth:`ResultsStore.remember_grid`) under a **call
key**: sha256 of

* the call's arguments that shape the cells (dataset, methods, k, n, seeds, preset,
  source kind, tasks, compare_losses, data_path, the config overrides), with their types;
* the dml_kit source code (every ``.py`` file of the package: presets, config defaults,
  recipe and hash versions, loaders);
* the ``DML_KIT_*`` environment variables;
* the data folder's path and the name, size and modification time of every file under
  it and under ``data_path`` (the store's own SQLite files and temporary ``.part`` files
  left out), taken before and after the cells were computed and noted only when both
  agree, so the fingerprint belongs to those files.

:func:`run_grid` (what ``dml_kit.experiments.run_grid`` and ``python -m dml_kit grid``
call) looks the key up first: when it is known and every noted hash is stored, it returns
the stored records, as the full runner would, without importing torch, scikit-learn or
the dataset; otherwise it calls the full runner. Anything the key cannot describe (a
``MethodConfig`` or ``SourceSpec`` object, ``force=True``, Ray, a method or dataset
registered in this process) goes to the full runner, which then notes nothing.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from dml_kit.experiments.report import BUILTIN_METHODS
from dml_kit.experiments.store import ResultsStore, StoreError, records_frame

#: version of the call key's layout
KEY_VERSION = 1
#: file name endings left out of the data folder's identity (stores, unfinished writes)
_SKIP_SUFFIXES = (".sqlite", ".sqlite-wal", ".sqlite-shm", ".sqlite-journal", ".part")
#: arguments of ``run_grid`` that do not shape the cells (how, where and whether to run)
_RUN_ONLY = ("store", "executor", "max_workers", "progress", "download", "model_cache")

_code_digest: str | None = None


class _Unkeyable(Exception):
    """An argument the call key cannot describe: use the full runner."""


def code_digest() -> str:
    """sha256 over the path and bytes of every ``.py`` file of the installed dml_kit
    (computed once per process)."""
    global _code_digest
    if _code_digest is None:
        package = Path(__file__).resolve().parents[1]
        h = hashlib.sha256()
        for path in sorted(package.rglob("*.py")):
            h.update(path.relative_to(package).as_posix().encode() + b"\0")
            h.update(path.read_bytes() + b"\0")
        _code_digest = h.hexdigest()
    return _code_digest


def files_identity(folder: str | os.PathLike[str] | None) -> list[list[Any]]:
    """``[relative path, size, mtime_ns]`` of every file under ``folder`` (sorted; none
    when it is missing), SQLite stores and ``.part`` files left out."""
    if folder is None:
        return []
    root = Path(folder)
    out: list[list[Any]] = []
    if root.is_file():
        st = root.stat()
        return [[root.name, st.st_size, st.st_mtime_ns]]
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            if name.endswith(_SKIP_SUFFIXES):
                continue
            path = Path(dirpath, name)
            try:
                st = path.stat()
            except OSError:
                continue
            out.append([path.relative_to(root).as_posix(), st.st_size, st.st_mtime_ns])
    return out


def data_identity(data_path: str | None) -> dict[str, Any]:
    """The data folder (``$DML_KIT_DATA`` or the checkout's ``data/``) and ``data_path``:
    paths and :func:`files_identity`."""
    from dml_kit.data.paths import data_root  # noqa: PLC0415 (light; keeps this import short)

    root = data_root().resolve()
    return {"root": str(root), "files": files_identity(root),
            "data_path": data_path, "path_files": files_identity(data_path)}


def _canon(value: Any) -> Any:
    """``value`` with its types spelled out (``(1, 2)`` and ``[1, 2]``, ``1`` and ``1.0``
    and ``True`` differ), or :class:`_Unkeyable`."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return ["bool", value]
    if type(value) is int:
        return ["int", value]
    if type(value) is float:
        return ["float", repr(value)]
    if isinstance(value, (list, tuple)):
        return [type(value).__name__, [_canon(v) for v in value]]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return ["dict", {k: _canon(v) for k, v in sorted(value.items())}]
    raise _Unkeyable(type(value).__name__)


def _registries_pristine() -> bool:
    """Whether this process's method and dataset registries are the ones a fresh process
    has (nothing registered or replaced), so that equal calls give equal cells."""
    methods = sys.modules.get("dml_kit.methods")
    if methods is not None and list(getattr(methods, "METHODS", {})) != list(BUILTIN_METHODS):
        return False
    data = sys.modules.get("dml_kit.data")
    if data is None:
        return True
    loaders: Mapping[str, Any] = getattr(data, "_LOADERS", {})
    embedded = sys.modules.get("dml_kit.data.embedded")
    builtin = {"digits": getattr(embedded, "load_digits", None),
               "glyphs": getattr(embedded, "load_glyph_set", None)}
    real = sys.modules.get("dml_kit.data.real")
    if real is not None:
        builtin.update(getattr(real, "LOADERS", {}))
    return all(builtin.get(name) is loader for name, loader in loaders.items())


def call_key(dataset: Any = None, methods: Any = "all", k_values: Any = None,
             n_values: Any = None, seeds: Any = None, *, preset: Any = "classroom",
             config: Any = None, source: Any = None, force: Any = False,
             ray_address: Any = None, tasks: Any = None, compare_losses: Any = None,
             data_path: Any = None, gpus_per_job: Any = None,
             data_files: dict[str, Any] | None = None, **rest: Any) -> str | None:
    """The call key of a ``run_grid`` call (see the module docstring), or ``None`` when
    the call is not one the index serves. ``data_files``: a :func:`data_identity` taken
    earlier (default: now)."""
    if config is not None or not (source is None or isinstance(source, str)) or force \
            or ray_address is not None or gpus_per_job is not None \
            or rest.get("executor", "process") not in ("process", "serial") \
            or not _registries_pristine():
        return None
    overrides = {k: v for k, v in rest.items() if k not in _RUN_ONLY}
    if data_path is not None:
        if not isinstance(data_path, (str, os.PathLike)):
            return None
        data_path = str(Path(data_path).expanduser().resolve())
    try:
        args = _canon({"dataset": dataset, "methods": methods, "k_values": k_values,
                       "n_values": n_values, "seeds": seeds, "preset": preset,
                       "source": source, "tasks": tasks, "compare_losses": compare_losses,
                       "data_path": data_path, "overrides": overrides})
    except _Unkeyable:
        return None
    env = {k: v for k, v in sorted(os.environ.items()) if k.startswith("DML_KIT_")}
    payload = {"v": KEY_VERSION, "code": code_digest(), "env": env, "args": args,
               "data": data_files if data_files is not None else data_identity(data_path)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def remember(store: ResultsStore, hashes: list[str], before: dict[str, Any],
             after: dict[str, Any], *args: Any, **kwargs: Any) -> bool:
    """Note ``hashes`` as the cells of the call ``run_grid(*args, **kwargs)`` when the
    data files were the same before (``before``) and after (``after``) the hashes were
    computed (:func:`data_identity`) and the call has a key; returns whether it did. A
    store that cannot be written only means no note."""
    if before != after:
        return False
    key = call_key(*args, **{**kwargs, "force": False, "data_files": before})
    if key is None:
        return False
    try:
        store.remember_grid(key, hashes)
    except StoreError:
        return False
    return True


def stored_grid(*args: Any, **kwargs: Any) -> pd.DataFrame | None:
    """What ``run_grid(*args, **kwargs)`` returns when the index knows the call and every
    cell is stored; ``None`` otherwise (then run the full runner). Imports no torch."""
    store = kwargs.get("store")
    max_workers = kwargs.get("max_workers")
    if max_workers is not None and (type(max_workers) is not int
                                    or not 1 <= max_workers <= 1024):
        return None  # the full runner names the bad value
    key = call_key(*args, **kwargs)
    if key is None:
        return None
    try:
        if not isinstance(store, ResultsStore):
            store = ResultsStore(store, create=False)  # no store: nothing to rerun from
        hashes = store.remembered_grid(key)
        if hashes is None or store.done(hashes) != set(hashes):
            return None
        return records_frame(store.records(hashes))
    except (StoreError, TypeError):
        return None  # the full runner reports it


def run_grid(dataset: str | None = None, methods: Any = "all", k_values: Any = None,
             n_values: Any = None, seeds: Any = None, **kwargs: Any) -> pd.DataFrame:
    """:func:`dml_kit.experiments.grid.run_grid` (same arguments, same result), answered
    from the store without importing torch when the index knows the call and every cell
    is stored (see :mod:`dml_kit.experiments.grid_index`)."""
    frame = stored_grid(dataset, methods, k_values, n_values, seeds, **kwargs)
    if frame is not None:
        return frame
    from dml_kit.experiments import grid  # noqa: PLC0415 (imports torch: only to run cells)

    return grid.run_grid(dataset, methods, k_values, n_values, seeds, **kwargs)
