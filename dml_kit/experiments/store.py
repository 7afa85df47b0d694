"""Run records and the SQLite results store.

A :class:`RunRecord` is one finished (method, dataset, k, n, seed) run: its accuracy and
other metrics, timings, the hash of everything that determined it, and the library
version. :class:`ResultsStore` keeps records in one SQLite file, ``data/results.sqlite``
by default (the kit's data folder, see :mod:`dml_kit.data.paths`):

* **one row per config hash** (primary key): a grid asks :meth:`ResultsStore.done` which
  hashes exist and does not retrain them unless ``force=True``;
* **atomic**: each record is one ``INSERT`` inside its own ``BEGIN IMMEDIATE ... COMMIT``
  transaction, so a process killed at any moment leaves either the whole record or
  nothing (SQLite's journal rolls an unfinished transaction back on the next open);
* **concurrent writers**: WAL journal mode (readers never block the writer), a busy
  timeout (a writer waits for another instead of failing) and a fresh connection per
  operation, so several processes - a grid's workers, two notebooks - can share a file.
  (WAL needs a local file system; on network shares use one writer.)
* **reading never creates**: ``ResultsStore(path, create=False)`` (what reports use) refuses
  a path with no file instead of creating an empty store;
* **errors name the file**: a missing, corrupt, read-only or folder path, and a record
  that fails :func:`validate_record`, raise :class:`StoreError` (a ``ValueError``) whose
  message names the path or the field, what is wrong and what to do.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import numbers
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import pandas as pd

DEFAULT_FILENAME = "results.sqlite"
#: schema of the ``runs`` table (SQLite ``user_version``). 1: first release; 2: a ``task``
#: column (the task index within a seed); 3: ``kind`` (what produced the record) and
#: ``metric`` (what ``accuracy`` holds: "accuracy" for grid cells, "recall@1" for the
#: shift study).
SCHEMA_VERSION = 3
#: what each schema version adds to an older file (run in order, in one transaction)
_MIGRATIONS = {
    2: ["ALTER TABLE runs ADD COLUMN task INTEGER NOT NULL DEFAULT 0"],
    3: ["ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'grid'",
        "ALTER TABLE runs ADD COLUMN metric TEXT NOT NULL DEFAULT 'accuracy'",
        # before schema 3 the shift study marked its records only by a notes prefix
        "UPDATE runs SET kind = 'shift_study', metric = 'recall@1' "
        "WHERE notes LIKE 'shift study%'"],
}
BUSY_TIMEOUT_S = 60.0
#: the kinds of record a store holds, and the metric each stores in ``accuracy``
#: (``sec_study``: :mod:`dml_kit.experiments.sec_study`; a new kind needs no schema
#: change, ``kind`` is a free text column checked here)
RECORD_KINDS = {"grid": "accuracy", "shift_study": "recall@1", "sec_study": "recall@1"}


#: metrics whose values are fractions in [0, 1]
_FRACTION_METRICS = ("accuracy", "recall@1")


class StoreError(ValueError):
    """A results store that cannot be opened, read or written, or a record it refuses; the
    message names the file (or the record's field), what is wrong and what to do."""


def stable_hash(payload: dict[str, Any]) -> str:
    """sha256 (hex) of ``payload`` as sorted JSON: the one way records are keyed (grid
    cells, shift-study rows). Anything not JSON-native is written with ``str``."""
    text = json.dumps(payload, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _col(sql: str, **kw: Any) -> Any:
    """A dataclass field that also declares its SQLite column type."""
    return field(metadata={"sql": sql}, **kw)


@dataclass
class RunRecord:
    """One finished run, as stored (one row of the ``runs`` table; the table's columns
    are these fields, in this order, with the SQL types their metadata declares).

    Attributes:
        dataset, method, k, n, seed: the cell.
        accuracy: the record's headline value, named by :attr:`metric` (target query
            accuracy for grid cells).
        config_hash: sha256 of the cell and every setting that determines it
            (:func:`stable_hash`).
        task: which of the seed's target tasks (0, 1, ...; one source model per seed
            serves them all): a replication is a (seed, task) pair.
        kind: what produced the record, a key of :data:`RECORD_KINDS` (``"grid"``,
            ``"shift_study"``).
        metric: what :attr:`accuracy` holds (``"accuracy"``, ``"recall@1"``).
        loss: the embedding loss (``"cross_entropy"`` for the classifiers,
            ``"prototypical"`` for protonets).
        regularizer, regularizer_weight: the norm regularizer of embedding methods.
        metrics: other numbers (both classification rules, norm statistics, epochs ...).
        notes: remarks such as ``"k=1: no adaptation (as in the paper)"``.
        train_seconds: source (this cell's share: the full time when trained for it, 0
            when reused) + target seconds.
        source_seconds, target_seconds: the two parts.
        preset, source: preset name and source-task description.
        config: the settings as JSON.
        version: ``dml_kit.__version__`` that produced it.
        created: UNIX time of the insert.
    """

    dataset: str = _col("TEXT NOT NULL")
    method: str = _col("TEXT NOT NULL")
    k: int = _col("INTEGER NOT NULL")
    n: int = _col("INTEGER NOT NULL")
    seed: int = _col("INTEGER NOT NULL")
    accuracy: float = _col("REAL NOT NULL")
    config_hash: str = _col("TEXT PRIMARY KEY")
    task: int = _col("INTEGER NOT NULL DEFAULT 0", default=0)
    kind: str = _col("TEXT NOT NULL DEFAULT 'grid'", default="grid")
    metric: str = _col("TEXT NOT NULL DEFAULT 'accuracy'", default="accuracy")
    loss: str | None = _col("TEXT", default=None)
    regularizer: str | None = _col("TEXT", default=None)
    regularizer_weight: float = _col("REAL", default=0.0)
    metrics: dict[str, float] = _col("TEXT", default_factory=dict)
    notes: str = _col("TEXT", default="")
    train_seconds: float = _col("REAL", default=0.0)
    source_seconds: float = _col("REAL", default=0.0)
    target_seconds: float = _col("REAL", default=0.0)
    preset: str = _col("TEXT", default="")
    source: str = _col("TEXT", default="")
    config: str = _col("TEXT", default="")
    version: str = _col("TEXT", default="")
    created: float = _col("REAL", default=0.0)

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["metrics"] = json.dumps(self.metrics, sort_keys=True)
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RunRecord:
        data = dict(row)
        data["metrics"] = json.loads(data.get("metrics") or "{}")
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


#: the ``runs`` table's columns, derived from :class:`RunRecord`
_COLUMNS = tuple((f.name, f.metadata["sql"]) for f in fields(RunRecord))


def validate_record(record: RunRecord) -> dict[str, Any]:
    """Check ``record`` before it is written and return its row (integers as ``int``).

    Raises :class:`StoreError` naming the field: ``dataset``, ``method``, ``config_hash``
    and ``metric`` must be non-empty strings; ``k``, ``n``, ``seed`` and ``task``
    non-negative integers; ``kind`` a key of :data:`RECORD_KINDS`; ``accuracy`` a finite
    number, within [0, 1] when ``metric`` is a fraction (``"accuracy"``, ``"recall@1"``).
    """
    if not isinstance(record, RunRecord):
        raise StoreError(f"record must be a RunRecord, got {type(record).__name__}")
    where = f"record {record.config_hash!r}" if isinstance(record.config_hash, str) \
        else "record"
    for name in ("dataset", "method", "config_hash", "metric"):
        value = getattr(record, name)
        if not isinstance(value, str) or not value.strip():
            raise StoreError(f"{where}: {name} must be a non-empty string, got {value!r}")
    if record.kind not in RECORD_KINDS:
        raise StoreError(f"{where}: unknown record kind {record.kind!r}; choose one of: "
                         f"{', '.join(RECORD_KINDS)}")
    row = record.to_row()
    for name in ("k", "n", "seed", "task"):
        value = getattr(record, name)
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
            raise StoreError(f"{where}: {name} must be a non-negative integer, got {value!r}")
        row[name] = int(value)
    acc = record.accuracy
    if isinstance(acc, bool) or not isinstance(acc, numbers.Real) or not math.isfinite(acc):
        raise StoreError(f"{where}: accuracy must be a finite number, got {acc!r} (a run "
                         "that produced NaN or inf failed: fix it rather than store it)")
    if record.metric in _FRACTION_METRICS and not 0.0 <= acc <= 1.0:
        raise StoreError(f"{where}: accuracy must be in [0, 1] for metric "
                         f"{record.metric!r}, got {acc!r}")
    row["accuracy"] = float(acc)
    return row


#: the grid index: grid call key -> its cells' config hashes (a JSON list)
_GRID_INDEX_TABLE = ("CREATE TABLE IF NOT EXISTS grid_index (key TEXT PRIMARY KEY, "
                     "hashes TEXT NOT NULL, created REAL NOT NULL)")


def default_path() -> Path:
    """``<data folder>/results.sqlite`` (``$DML_KIT_DATA`` or the checkout's ``data/``)."""
    from dml_kit.data.paths import data_root  # noqa: PLC0415 (loads the data registry only when the default path is asked for)

    return data_root() / DEFAULT_FILENAME


class ResultsStore:
    """Run records in an SQLite file (see the module docstring for the guarantees).

    Args:
        path: the database file; ``None`` uses :func:`default_path`.
        create: create the file and its folder when missing (writers: grids, the shift
            study). ``False`` (readers: reports, ``python -m dml_kit report``) raises
            :class:`StoreError` instead, so a mistyped path never leaves an empty store
            behind.

    Raises:
        StoreError: the path is missing (``create=False``), a folder, not an SQLite file,
            not readable or writable, or from a newer dml_kit; the message names it.
    """

    def __init__(self, path: str | os.PathLike[str] | None = None, *,
                 create: bool = True) -> None:
        if path is not None and not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a file path (str or os.PathLike) or None, got "
                            f"{type(path).__name__}")
        self.path = Path(path).expanduser() if path is not None else default_path()
        self._check_path(create)
        with self._connect() as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("BEGIN IMMEDIATE")
            try:
                self._create_or_migrate(con)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    @classmethod
    def open_existing(cls, path: str | os.PathLike[str] | None = None) -> ResultsStore:
        """The store at ``path`` (default: :func:`default_path`), never creating one:
        ``ResultsStore(path, create=False)``."""
        return cls(path, create=False)

    def _check_path(self, create: bool) -> None:
        """Refuse a folder, or a missing file unless ``create`` (then make its folder)."""
        path = self.path
        if path.is_dir():
            raise StoreError(f"results store {path} is a folder, not a file: give the "
                             f"SQLite file's path (such as {path / DEFAULT_FILENAME})")
        if path.exists():
            return
        blocker = next((p for p in (path.parent, *path.parent.parents)
                        if p.exists() and not p.is_dir()), None)
        if blocker is not None:
            what = (f"cannot create the results store {path}" if create
                    else f"no results store at {path}")
            raise StoreError(f"{what}: {blocker} is a file, not a folder (check the path, "
                             "or DML_KIT_DATA)")
        if not create:
            raise StoreError(f"no results store at {path}: run a grid first "
                             "(python -m dml_kit grid ...) or check --store")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"cannot create the folder {path.parent} for the results store "
                             f"{path}: {err.strerror or err}; choose a writable location "
                             "(--store, or DML_KIT_DATA)") from err

    def _explain(self, err: sqlite3.Error) -> StoreError:
        """A :class:`StoreError` naming the file, what is wrong and what to do, for an
        SQLite error raised while using it."""
        path, text = self.path, str(err)
        low = text.lower()
        if "not a database" in low or "malformed" in low:
            return StoreError(f"results store {path} is not a valid SQLite database "
                              f"({text}): it is corrupt or another kind of file; move it "
                              "away (the next grid starts a new store) or check --store")
        if "readonly" in low or "read-only" in low or "unable to open" in low:
            problems = []
            if path.exists() and not os.access(path, os.R_OK | os.W_OK):
                problems.append(f"the file {path} is not readable and writable")
            if path.parent.exists() and not os.access(path.parent, os.W_OK | os.X_OK):
                problems.append(f"its folder {path.parent} is not writable (SQLite writes "
                                "its journal files there)")
            why = "; ".join(problems) or text
            return StoreError(f"cannot open the results store {path} for reading and "
                              f"writing: {why}; fix the permissions (chmod) or copy the "
                              "file somewhere writable and use that path (--store)")
        if "locked" in low or "busy" in low:
            return StoreError(f"results store {path} stayed locked by another process for "
                              f"over {BUSY_TIMEOUT_S:.0f} s ({text}): wait for it to finish "
                              "or use another store")
        return StoreError(f"results store {path}: {text}")

    def _create_or_migrate(self, con: sqlite3.Connection) -> None:
        """Create the table, or bring an older file up to :data:`SCHEMA_VERSION` (one
        transaction: a failed migration leaves the file as it was)."""
        version = int(con.execute("PRAGMA user_version").fetchone()[0])
        exists = con.execute("SELECT name FROM sqlite_master WHERE type='table' "
                             "AND name='runs'").fetchone() is not None
        if exists and version > SCHEMA_VERSION:
            raise StoreError(f"store {self.path} has schema version {version}, newer than "
                             f"this dml_kit's {SCHEMA_VERSION}: upgrade dml_kit or use "
                             "another store file")
        if exists and version == SCHEMA_VERSION:
            return
        if not exists:
            cols = ", ".join(f"{name} {kind}" for name, kind in _COLUMNS)
            con.execute(f"CREATE TABLE runs ({cols})")
        else:
            have = {row[1] for row in con.execute("PRAGMA table_info(runs)")}
            for step in range(max(version, 1) + 1, SCHEMA_VERSION + 1):
                for sql in _MIGRATIONS.get(step, []):
                    if "ADD COLUMN" in sql and sql.split("ADD COLUMN ")[1].split()[0] in have:
                        continue
                    con.execute(sql)
        con.execute("DROP INDEX IF EXISTS runs_cell")
        con.execute("CREATE INDEX runs_cell ON runs (dataset, method, k, n, seed, task)")
        con.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def __repr__(self) -> str:
        return f"ResultsStore({str(self.path)!r}, {len(self)} runs)"

    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves
        # every SQLite error becomes a StoreError naming the file
        try:
            con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as err:
            raise self._explain(err) from err
        try:
            con.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
            con.execute("PRAGMA synchronous=NORMAL")
            con.row_factory = sqlite3.Row
            yield con
        except sqlite3.Error as err:
            raise self._explain(err) from err
        finally:
            con.close()

    # ---- writing ------------------------------------------------------------------------
    def add(self, record: RunRecord, *, replace: bool = False) -> bool:
        """Insert one record in its own transaction. With an existing hash the old row is
        kept (returns ``False``) unless ``replace=True``. A record that fails
        :func:`validate_record` (NaN or out-of-range accuracy, a negative or non-integer
        ``k`` ...) raises :class:`StoreError` naming the field; it is never dropped
        silently."""
        row = validate_record(record)
        if not row["created"]:
            row["created"] = time.time()
        names = [name for name, _ in _COLUMNS]
        # only an existing config hash is ignored (or updated); NOT NULL and other
        # constraint failures still raise
        if replace:
            updates = ", ".join(f"{n} = excluded.{n}" for n in names if n != "config_hash")
            conflict = f"DO UPDATE SET {updates}"
        else:
            conflict = "DO NOTHING"
        sql = (f"INSERT INTO runs ({', '.join(names)}) "
               f"VALUES ({', '.join(':' + n for n in names)}) "
               f"ON CONFLICT(config_hash) {conflict}")
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                cur = con.execute(sql, row)
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        return cur.rowcount > 0

    def add_many(self, records: Iterable[RunRecord], *, replace: bool = False) -> int:
        """:meth:`add` each record (one transaction each); returns how many were written."""
        return sum(self.add(r, replace=replace) for r in records)

    def delete(self, config_hash: str) -> bool:
        """Remove one record; returns whether it existed."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            cur = con.execute("DELETE FROM runs WHERE config_hash = ?", (config_hash,))
            con.execute("COMMIT")
        return cur.rowcount > 0

    # ---- the grid index (see dml_kit.experiments.grid_index) ----------------------------
    def remember_grid(self, key: str, hashes: Sequence[str]) -> None:
        """Note that the grid call ``key`` has the cells ``hashes`` (a cache kept in its
        own table, ``grid_index``, so that a rerun finds its cells without recomputing
        them; the ``runs`` table and its schema are untouched)."""
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                con.execute(_GRID_INDEX_TABLE)
                con.execute("INSERT INTO grid_index (key, hashes, created) VALUES (?, ?, ?) "
                            "ON CONFLICT(key) DO UPDATE SET hashes = excluded.hashes, "
                            "created = excluded.created",
                            (key, json.dumps(list(hashes)), time.time()))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise

    def remembered_grid(self, key: str) -> list[str] | None:
        """The cell hashes :meth:`remember_grid` noted for ``key`` (``None``: none)."""
        with self._connect() as con:
            if con.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND "
                           "name = 'grid_index'").fetchone() is None:
                return None
            row = con.execute("SELECT hashes FROM grid_index WHERE key = ?",
                              (key,)).fetchone()
        if row is None:
            return None
        hashes = json.loads(row[0])
        return [str(h) for h in hashes] if isinstance(hashes, list) else None

    # ---- reading ------------------------------------------------------------------------
    def __len__(self) -> int:
        with self._connect() as con:
            return int(con.execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    def __contains__(self, config_hash: object) -> bool:
        return self.get(str(config_hash)) is not None

    def done(self, hashes: Iterable[str] | None = None) -> set[str]:
        """The stored config hashes (all, or those among ``hashes``)."""
        with self._connect() as con:
            stored = {r[0] for r in con.execute("SELECT config_hash FROM runs")}
        return stored if hashes is None else stored & set(hashes)

    def get(self, config_hash: str) -> RunRecord | None:
        with self._connect() as con:
            row = con.execute("SELECT * FROM runs WHERE config_hash = ?",
                              (config_hash,)).fetchone()
        return RunRecord.from_row(dict(row)) if row is not None else None

    def records(self, hashes: Iterable[str] | None = None, **where: Any) -> list[RunRecord]:
        """Records, optionally only ``hashes`` and/or matching columns
        (``records(dataset="glyphs", method="metric")``)."""
        valid = {name for name, _ in _COLUMNS}
        bad = sorted(set(where) - valid)
        if bad:
            raise ValueError(f"unknown column(s) {bad}; choose from: {', '.join(sorted(valid))}")
        sql = "SELECT * FROM runs"
        clauses = [f"{k} = :{k}" for k in where]
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        with self._connect() as con:
            rows = [dict(r) for r in con.execute(sql + " ORDER BY created, config_hash", where)]
        out = [RunRecord.from_row(r) for r in rows]
        if hashes is not None:
            keep = set(hashes)
            out = [r for r in out if r.config_hash in keep]
        return out

    def to_frame(self, hashes: Iterable[str] | None = None, **where: Any) -> pd.DataFrame:
        """Records as a DataFrame: one row per run, metrics spread into ``m_<name>`` columns."""
        return records_frame(self.records(hashes, **where))


def records_frame(records: Iterable[RunRecord]) -> pd.DataFrame:
    """One row per record; ``metrics`` become ``m_<name>`` columns; sorted by cell."""
    rows = []
    for r in records:
        row = r.to_row()
        metrics = row.pop("metrics")
        row.update({f"m_{k}": v for k, v in json.loads(metrics).items()})
        rows.append(row)
    cols = [name for name, _ in _COLUMNS if name != "metrics"]
    frame = pd.DataFrame(rows, columns=None if rows else cols)
    if rows:
        frame = frame.sort_values(["dataset", "k", "n", "method", "seed", "task"],
                                  kind="stable")
        frame = frame.reset_index(drop=True)
    return frame
