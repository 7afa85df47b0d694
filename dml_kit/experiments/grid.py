"""The grid runner: methods x k x n x seeds, with shared source training and a store.

How :func:`run_grid` works:

1. **Cells and hashes.** Every (method, k, n, seed) cell gets a config hash (sha256 of the
   dataset's name and content fingerprint, the cell, the source spec, every
   result-changing setting and :data:`~dml_kit.methods.RECIPE_VERSION`). Cells whose
   hash is in the store are not run again (``force=True`` reruns them); a regenerated
   dataset or a changed recipe gives new hashes, so stale records are never reused.
2. **Jobs share source training.** Cells that need the same source model are one job:
   per seed, one classifier (weight transfer), one metric embedding (metric and
   adapted metric, every n and k) and, because protonets train on the target's n-way
   k-shot episodes as in the paper, one protonet per (seed, n, k) shared by protonet
   and adapted protonet. ``scratch`` cells of a seed form one job. With
   ``SourceSpec(kind="paper")`` the source also depends on n. A job trains its source
   model once, in memory, and runs all its cells.
3. **Executors.** ``"process"`` (default): a ``ProcessPoolExecutor`` of ``spawn``-ed
   workers, one torch thread each, as many workers as CPU cores; each worker dies with
   the grid's process (Linux ``PR_SET_PDEATHSIG``), and an interrupt (Jupyter's Stop,
   Ctrl-C) terminates the running workers instead of waiting for them; ``"serial"``: in
   this process; ``"ray"``: one Ray task per job (``ray_address`` = a cluster address,
   or ``"local"`` / ``None`` for a local ``ray.init()``; pass ``executor="ray"``, or only
   ``ray_address``). Jobs are deterministic given their seeds, so all executors give the
   same numbers.
4. **Storing.** The driver writes each finished record to the store in its own
   transaction as soon as its job returns, so an interrupted grid keeps the finished
   jobs. An interrupted run (``KeyboardInterrupt``) is never stored.
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import hashlib
import json
import multiprocessing as mp
import os
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd
import torch

import dml_kit
from dml_kit import data, methods
from dml_kit._lazy import progress_reporting
from dml_kit._validation import check_choice, check_float, check_int
from dml_kit.data.core import Dataset
from dml_kit.experiments import grid_index
from dml_kit.experiments.config import EXECUTORS, GridSpec, SourceSpec
from dml_kit.experiments.store import ResultsStore, RunRecord, records_frame, stable_hash
from dml_kit.methods import METHODS, RECIPE_VERSION
from dml_kit.methods.config import MethodConfig

#: version of the hash payload's layout (2: data fingerprint and recipe version added;
#: 3: the task index within a seed)
HASH_VERSION = 3
#: the seed of task t of grid seed s is s + TASK_SEED_STRIDE * t (:func:`task_seed`)
TASK_SEED_STRIDE = 10_007
#: examples whose pixel bytes enter a dataset fingerprint (evenly spaced over the set)
FINGERPRINT_SAMPLES = 256


@dataclass(frozen=True)
class Cell:
    """One (method, k, n, seed, task) run of a grid and its config hash.

    ``task`` indexes the seed's target tasks (:func:`task_seed`); ``loss`` is set for the
    extra-loss cells of ``GridSpec.compare_losses`` (``None``: the config's loss)."""

    method: str
    k: int
    n: int
    seed: int
    config_hash: str
    task: int = 0
    loss: str | None = None


def task_seed(seed: int, task: int) -> int:
    """The seed of task ``task`` of grid seed ``seed``: the seed itself for task 0 (so a
    one-task grid draws the tasks it always drew), ``seed + 10_007 * task`` after (at
    most 100 tasks, so that per-epoch seeds ``seed * 1000 + epoch`` stay below 2**32).
    It seeds the k-shot draw (classes, support, queries) and the target phase."""
    return seed + TASK_SEED_STRIDE * task


def cell_config(config: MethodConfig, loss: str | None) -> MethodConfig:
    """The config of a cell: ``config`` itself, or with another embedding ``loss`` (and
    that loss's default parameters)."""
    if loss is None or loss == config.loss:
        return config
    return config.replace(loss=loss, loss_params={})


@dataclass
class Job:
    """Cells that share one source model (or, for scratch, one seed)."""

    dataset: str
    seed: int
    source_kind: str | None
    source_n: int | None   # n of the source data (paper-style T1), else None
    train_n: int           # n, k that shape protonet source episodes
    train_k: int
    cells: list[Cell] = field(default_factory=list)
    config: MethodConfig | None = None
    source: SourceSpec | None = None
    preset: str = ""
    download: bool = False
    data_path: str | None = None
    model_cache: str | None = None  # folder whose models/ caches source models, or None


def dataset_fingerprint(data: Dataset, samples: int = FINGERPRINT_SAMPLES) -> str:
    """A short content fingerprint of ``data``: the first 16 hex digits of sha256 over
    its name, the shape and dtype of ``x``, the label array, the class names and groups,
    and the bytes of ``samples`` evenly spaced examples (all of them when fewer).

    Cheap (a few hundred examples, not every pixel) yet it changes when a dataset is
    regenerated with other images, labels, classes or size."""
    h = hashlib.sha256()
    h.update(json.dumps([data.name, list(data.x.shape), str(data.x.dtype),
                         list(data.class_names), list(data.class_groups)]).encode())
    h.update(data.y.contiguous().numpy().tobytes())
    n = len(data.y)
    if n:
        idx = torch.linspace(0, n - 1, min(samples, n)).round().long()
        h.update(data.x[idx].contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def cell_hash(dataset: str, method: str, k: int, n: int, seed: int, config: MethodConfig,
              source: SourceSpec, *, fingerprint: str, task: int = 0) -> str:
    """sha256 of everything that determines a cell's result: the dataset's name and
    content ``fingerprint`` (:func:`dataset_fingerprint`), the cell (with its task
    index), every result-changing setting, the source spec and the recipe version (not
    the library version, not the device, not the progress bar)."""
    return stable_hash({"v": HASH_VERSION, "recipe": RECIPE_VERSION, "dataset": dataset,
                        "data": fingerprint, "method": method, "k": k, "n": n, "seed": seed,
                        "task": task, "config": config.hash_dict(),
                        "source": asdict(source)})


def grid_cells(spec: GridSpec, download: bool = False,
               data_path: str | None = None) -> list[Cell]:
    """Every cell of ``spec`` with its hash, in (seed, n, k, task, method) order, the
    ``metric`` cells of ``spec.compare_losses`` after each condition's methods. Loads the
    dataset (once per process) for its fingerprint; ``download`` as in
    :func:`dml_kit.data.load`; ``data_path`` its ``path=`` option (default: the spec's
    own ``data_path``)."""
    data_path = spec.data_path if data_path is None else data_path
    fp = _fingerprint(spec.dataset, spec.source.data_seed, download, data_path)
    runs: list[tuple[str, str | None]] = [(m, None) for m in spec.methods]
    runs += [("metric", loss) for loss in spec.compare_losses]
    return [Cell(m, k, n, s, cell_hash(spec.dataset, m, k, n, s,
                                       cell_config(spec.config, loss), spec.source,
                                       fingerprint=fp, task=t), task=t, loss=loss)
            for s in spec.seeds for n in spec.n_values for k in spec.k_values
            for t in range(spec.tasks_for(n)) for m, loss in runs]


def plan_jobs(spec: GridSpec, cells: Sequence[Cell], download: bool = False,
              data_path: str | None = None) -> list[Job]:
    """Group ``cells`` into jobs that share a source model (see the module docstring);
    the biggest jobs come first so that parallel workers finish together. Each job loads
    the dataset from ``data_path`` (default: the spec's)."""
    data_path = spec.data_path if data_path is None else data_path
    jobs: dict[tuple[Any, ...], Job] = {}
    for c in cells:
        entry = METHODS[c.method]
        config = cell_config(spec.config, c.loss)
        source_n = c.n if spec.source.kind == "paper" else None
        # equal source keys (kind + settings, and n-way k-shot for protonets) share a model
        key = (c.seed, source_n, entry.source_key(config, c.n, c.k))
        train_n, train_k = c.n, c.k
        if key not in jobs:
            jobs[key] = Job(spec.dataset, c.seed, entry.source_kind, source_n, train_n,
                            train_k, config=config, source=spec.source,
                            preset=spec.preset, download=download, data_path=data_path)
        jobs[key].cells.append(c)
    weight = {METHODS[c.method].source_kind: METHODS[c.method].source_cost for c in cells}
    return sorted(jobs.values(), key=lambda j: (-weight[j.source_kind], -len(j.cells), j.seed))


# ---- data for a job ---------------------------------------------------------------------
@lru_cache(maxsize=4)
def _load(dataset: str, data_seed: int, download: bool, data_path: str | None = None):
    options = {} if data_path is None else {"path": data_path}
    return data.load(dataset, seed=data_seed, download=download, **options)


@lru_cache(maxsize=4)
def _fingerprint(dataset: str, data_seed: int, download: bool,
                 data_path: str | None = None) -> str:
    return dataset_fingerprint(_load(dataset, data_seed, download, data_path))


def _split(dataset: str, source: SourceSpec, seed: int, download: bool,
           data_path: str | None = None):

    full = _load(dataset, source.data_seed, download, data_path)
    return data.domain_split(full, target_fraction=source.target_fraction, by=source.by,
                             seed=seed)


def source_data(dataset: str, source: SourceSpec, seed: int, n: int | None,
                download: bool = False, data_path: str | None = None):
    """The T1 dataset of a cell: the source part of the split, or ``n`` random classes of
    it (``source.kind == "paper"``). ``data_path``: the dataset's files, passed to the
    loader as ``path=`` (e.g. ``../shared/data/omniglot``)."""

    part = _split(dataset, source, seed, download, data_path).source
    if source.kind == "paper":
        if n is None:
            raise ValueError("a paper-style source needs n")
        if n > part.n_classes:
            raise ValueError(f"n_values: n={n} is out of range: the source part of "
                             f"{dataset!r} has only {part.n_classes} classes")
        g = torch.Generator().manual_seed(seed)
        pick = torch.randperm(part.n_classes, generator=g)[:n].tolist()
        part = part.select_classes(pick, name=f"{dataset}[T1 n={n}]")
    return part


def target_task(dataset: str, source: SourceSpec, seed: int, n: int, k: int,
                download: bool = False, task: int = 0, data_path: str | None = None):
    """The T2 k-shot task of a cell, drawn from the target part of the split of ``seed``
    with :func:`task_seed` ``(seed, task)``."""

    target = _split(dataset, source, seed, download, data_path).target
    return data.kshot_task(target, n_way=n, k_shot=k, n_query=source.n_query,
                           n_val=source.n_val, seed=task_seed(seed, task))


def check_grid_fits(spec: GridSpec, download: bool = False,
                    data_path: str | None = None) -> None:
    """Raise ``ValueError`` naming ``n_values``/``k_values`` when a cell cannot be built
    from the dataset (too few target classes or examples per class). ``data_path``:
    as in :func:`grid_cells`."""
    data_path = spec.data_path if data_path is None else data_path
    target = _split(spec.dataset, spec.source, spec.seeds[0], download, data_path).target
    max_n = target.n_classes
    for n in spec.n_values:
        check_int("n_values", n, 2, max_n,
                  hint=f"the target part of {spec.dataset!r} has {max_n} classes")
    # at least one query per class after the support (and validation) examples
    max_k = target.min_class_size - 1 - spec.source.n_val
    for k in spec.k_values:
        check_int("k_values", k, 1, max_k,
                  hint=f"the smallest target class of {spec.dataset!r} has "
                       f"{target.min_class_size} examples")


# ---- running one job --------------------------------------------------------------------
def _loss_name(method: str, config: MethodConfig) -> str:
    return METHODS[method].loss_name(config)


#: torch threads a job runs with, whatever the executor: float reductions depend on the
#: thread count, so this is what makes serial, process and Ray runs give the same numbers
JOB_THREADS = 1


def run_job(job: Job, threads: int | None = JOB_THREADS) -> list[RunRecord]:
    """Train the job's source model once and run all its cells; returns their records.
    Runs with ``threads`` torch threads (restored afterwards; ``None``: as they are).

    Raises ``KeyboardInterrupt`` when a run was interrupted (nothing partial is returned).
    """
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _run_cells(job)
    finally:
        torch.set_num_threads(previous)


def _run_cells(job: Job) -> list[RunRecord]:
    assert job.config is not None and job.source is not None
    config = job.config
    source_model = None
    source_seconds = 0.0
    if job.source_kind is not None:
        src = source_data(job.dataset, job.source, job.seed, job.source_n, job.download,
                          job.data_path)
        source_model = methods.train_source(job.source_kind, src, config, n_way=job.train_n,
                                            k_shot=job.train_k, seed=job.seed,
                                            cache=job.model_cache or False)
        if source_model.interrupted:
            raise KeyboardInterrupt
        source_seconds = source_model.seconds
    cached = source_model is not None and source_model.info.get("cache") == "hit"
    records = []
    charged = False
    for cell in job.cells:
        task = target_task(job.dataset, job.source, cell.seed, cell.n, cell.k, job.download,
                           cell.task, job.data_path)
        result = methods.run(cell.method, task, source_model, config,
                             seed=task_seed(cell.seed, cell.task))
        if result.interrupted:
            raise KeyboardInterrupt
        # the source time is charged to the first cell that used the model
        src_s = 0.0 if charged else source_seconds
        charged = True
        uses_reg = METHODS[cell.method].uses_regularizer
        records.append(RunRecord(
            dataset=job.dataset, method=cell.method, k=cell.k, n=cell.n, seed=cell.seed,
            task=cell.task, accuracy=result.accuracy, config_hash=cell.config_hash,
            loss=_loss_name(cell.method, config),
            regularizer=config.regularizer if uses_reg and config.regularized else None,
            regularizer_weight=config.regularizer_weight if uses_reg else 0.0,
            metrics={k: float(v) for k, v in result.metrics.items()},
            notes=_notes(result.notes, cached, source_model),
            train_seconds=src_s + result.target_seconds, source_seconds=src_s,
            target_seconds=result.target_seconds, preset=job.preset,
            source=json.dumps(asdict(job.source), sort_keys=True),
            config=json.dumps(config.hash_dict(), sort_keys=True, default=str),
            version=dml_kit.__version__))
    return records


def _notes(notes: str, loaded: bool, source_model: Any) -> str:
    """A record's notes, with where its source model came from when it was loaded from
    the model cache (its ``source_seconds`` is then the load time)."""
    if not loaded:
        return notes
    trained = source_model.info.get("trained_seconds")
    said = (f"source model loaded from the model cache (trained in {trained:.1f} s)"
            if isinstance(trained, float) else "source model loaded from the model cache")
    return f"{notes}; {said}" if notes else said


#: Linux's prctl option that sends a signal to a process when its parent dies
_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """Ask the kernel (Linux) to kill this worker when the process that started it
    (``parent``) dies, so a killed grid (SIGKILL, a closed terminal) leaves no worker
    behind; a worker whose grid died while it was starting exits at once. Elsewhere a
    no-op: workers then end when they find their task queue closed."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # pragma: no cover - exotic libc
        return
    if os.getppid() != parent:           # the grid died before the request was made
        os._exit(1)


def _worker_init(parent: int) -> None:
    _die_with_parent(parent)
    torch.set_num_threads(1)


def _run_job_in_worker(job: Job) -> list[RunRecord]:
    return run_job(job, threads=1)


def _mp_context() -> mp.context.BaseContext:
    """``spawn``: each worker is a child of the grid's own process, so it can die with it
    (:func:`_die_with_parent`); a forkserver would outlive a killed grid with its workers."""
    return mp.get_context("spawn")


def _stop_workers(pool: cf.ProcessPoolExecutor) -> None:
    """Interrupted (Jupyter's Stop, Ctrl-C): drop the queued jobs and end the running ones
    now instead of waiting for them (their results would be thrown away anyway)."""
    processes = list(getattr(pool, "_processes", {}).values())  # no public handle on them
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=10)


# ---- the runner -------------------------------------------------------------------------
#: what ``run_grid(progress=...)`` calls as jobs finish: ``(records, done, total)``
ProgressHook = Callable[[list[RunRecord], int, int], None]


def run_grid(dataset: str | None = None, methods: str | Sequence[str] = "all",
             k_values: Sequence[int] | int | None = None,
             n_values: Sequence[int] | int | None = None,
             seeds: int | Sequence[int] | None = None, *, preset: str = "classroom",
             config: MethodConfig | None = None, source: SourceSpec | str | None = None,
             store: ResultsStore | str | os.PathLike[str] | None = None, force: bool = False,
             executor: str = "process", max_workers: int | None = None,
             ray_address: str | None = None, progress: bool | str | ProgressHook = True,
             download: bool = False, tasks: int | None = None,
             compare_losses: Sequence[str] | None = None,
             data_path: str | os.PathLike[str] | None = None,
             gpus_per_job: float | None = None,
             model_cache: bool | str | os.PathLike[str] = True,
             **config_overrides: Any) -> pd.DataFrame:
    """Run ``methods x k_values x n_values x seeds x tasks`` on ``dataset`` and return the
    records.

    Args:
        dataset: a :func:`dml_kit.data.available` name (default: the preset's, glyphs).
        methods: ``"all"`` or method names.
        k_values, n_values: shots and ways (default: the preset's).
        seeds: a count (seeds ``0..s-1``) or explicit seeds (default: the preset's).
        preset: ``"classroom"`` or ``"paper"``: default grid and training lengths.
        config: a :class:`~dml_kit.methods.MethodConfig` replacing the preset's;
            ``config_overrides`` change single fields (``target_lr=1e-3``).
        source: a :class:`SourceSpec` or its kind (``"split"``, ``"paper"``).
        store: a :class:`ResultsStore`, a path, or ``None`` for ``data/results.sqlite``.
        force: rerun cells whose config hash is already stored (and replace them).
        executor: ``"process"`` (local processes, default), ``"serial"`` or ``"ray"``.
        max_workers: parallel workers (default: CPU cores; the job count at most).
        ray_address: a Ray cluster address (implies ``executor="ray"``); ``"local"``
            starts a local Ray.
        progress: as every loop of the kit (:mod:`dml_kit.viz.progress`): ``True`` a bar
            with a running table under a notebook cell, a tqdm text bar elsewhere;
            ``"auto"`` the notebook bar only; ``False`` nothing; or a callable
            ``progress(records, done, total)``, called once with no records before the
            first job and then with each job's records as they arrive (e.g.
            :class:`dml_kit.viz.progress.GridProgress`); told ``stop(reason)`` when it
            has that method and the grid is interrupted.
        download: let real datasets download (see :func:`dml_kit.data.load`).
        tasks: target tasks per (seed, n, k), all served by the seed's source models
            (default: the preset's; the classroom preset uses several).
        compare_losses: embedding losses run for ``metric`` beside the config's own, on
            the same tasks (default: the preset's when ``methods`` are all six).
        data_path: files of the dataset you already have, passed to its loader as
            ``path=`` (e.g. ``"../shared/data/omniglot"`` for ``omniglot_rotated``, or
            :func:`dml_kit.settings.data_path` of a set loaded with ``path=``); it
            travels with the spec (``GridSpec.data_path``) to every job, so no cell looks
            for the files elsewhere or downloads them. Not part of a cell's hash, which
            holds the data's content fingerprint instead.
        gpus_per_job: Ray only: GPUs per job (default: 1 on a cluster with GPUs, else 0;
            :func:`ray_gpus_per_job`). Each job trains one source model on its GPU.
        model_cache: where source models are cached between runs
            (:func:`dml_kit.methods.persist.cached_train_source`, keyed by kind,
            settings, seed, data fingerprint and recipe): ``True`` (default) under
            ``models/`` beside the store (the default store's is ``data/models``, which
            the notebooks share), a folder for ``<folder>/models``, ``False`` to train
            every source model. A grid that adds cells (another k, more tasks) loads the
            source models it already trained; a loaded model embeds bit for bit as the
            trained one, so the records are the same either way, and their notes say
            "loaded from the model cache" (``source_seconds`` is then the load time).

    Returns:
        One row per cell of the grid (stored earlier or just run), the columns of
        :func:`~dml_kit.experiments.store.records_frame`.
    """
    spec = GridSpec.create(dataset, methods, k_values, n_values, seeds, preset=preset,
                           config=config, source=source, tasks=tasks,
                           compare_losses=compare_losses, data_path=data_path,
                           **config_overrides)
    if ray_address is not None:
        executor = "ray"
    check_choice("executor", executor, EXECUTORS)
    if max_workers is not None:
        check_int("max_workers", max_workers, 1, 1024)
    if gpus_per_job is not None:
        check_float("gpus_per_job", gpus_per_job, 0.0, 1.0)
        if executor != "ray":
            raise ValueError(f"gpus_per_job is for executor='ray' (got executor={executor!r}); "
                             "the local executors use the device auto-detection of "
                             "MethodConfig.device")
    if not isinstance(store, ResultsStore):
        store = ResultsStore(store)
    data_path = spec.data_path
    files_before = grid_index.data_identity(data_path)
    cells = grid_cells(spec, download, data_path)
    files_after = grid_index.data_identity(data_path)
    hashes = [c.config_hash for c in cells]
    todo = cells if force else [c for c in cells if c.config_hash not in store.done(hashes)]
    if todo:
        check_grid_fits(spec, download, data_path)
        jobs = plan_jobs(spec, todo, download, data_path)
        cache_root = _model_cache_root(model_cache, store)
        for job in jobs:
            job.model_cache = cache_root
        _execute(jobs, store, executor, max_workers, ray_address, progress, replace=force,
                 total=len(todo), gpus_per_job=gpus_per_job)
    # a rerun of this call then finds its hashes without torch (grid_index.run_grid)
    grid_index.remember(store, hashes, files_before, files_after, dataset, methods,
                        k_values, n_values, seeds, preset=preset, config=config,
                        source=source, ray_address=ray_address, tasks=tasks,
                        compare_losses=compare_losses, data_path=data_path,
                        gpus_per_job=gpus_per_job, executor=executor, **config_overrides)
    return records_frame(store.records(hashes))


def _model_cache_root(model_cache: bool | str | os.PathLike[str],
                      store: ResultsStore) -> str | None:
    """The folder whose ``models/`` caches source models (``None``: no cache)."""
    if model_cache is True:
        return str(store.path.resolve().parent)
    if model_cache is False:
        return None
    if not isinstance(model_cache, (str, os.PathLike)):
        raise TypeError(f"model_cache must be True, False or a folder path, got "
                        f"{type(model_cache).__name__}: {model_cache!r:.60}")
    return str(Path(model_cache).expanduser().resolve())


def _execute(jobs: list[Job], store: ResultsStore, executor: str, max_workers: int | None,
             ray_address: str | None, progress: bool | str | ProgressHook, replace: bool,
             total: int,
             gpus_per_job: float | None = None) -> None:

    # the one progress mechanism of the kit's loops (dml_kit.viz.progress): True gives a
    # bar with the running table in a notebook, a tqdm text bar elsewhere; a callable is
    # told (records, done, total); a stop or an error is reported to it
    with progress_reporting(progress, total, "grid", condition=("k", "n")) as report:
        def finished(records: list[RunRecord]) -> None:
            store.add_many(records, replace=replace)
            report(records)

        _run_jobs(jobs, executor, max_workers, ray_address, finished, gpus_per_job)


def _run_jobs(jobs: list[Job], executor: str, max_workers: int | None,
              ray_address: str | None, finished: Callable[[list[RunRecord]], None],
              gpus_per_job: float | None) -> None:
    """Run ``jobs`` on ``executor`` and hand each job's records to ``finished`` in the
    calling process, as they arrive."""
    if executor == "serial" or len(jobs) == 1 and executor != "ray":
        for job in jobs:
            finished(run_job(job))
    elif executor == "process":
        workers = min(max_workers or os.cpu_count() or 1, len(jobs))
        pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context(),
                                      initializer=_worker_init, initargs=(os.getpid(),))
        try:
            futures = [pool.submit(_run_job_in_worker, job) for job in jobs]
            for fut in cf.as_completed(futures):
                finished(fut.result())
        except BaseException:
            _stop_workers(pool)
            raise
        pool.shutdown(wait=True)
    else:
        _execute_ray(jobs, ray_address, max_workers, finished, gpus_per_job)


def ray_gpus_per_job(gpus_per_job: float | None = None) -> float:
    """GPUs a Ray job asks for: ``gpus_per_job`` when given (0 to 1; a fraction packs
    several jobs on one GPU), else 1 when the connected cluster has GPUs and 0 when it
    has none. Ray then sets ``CUDA_VISIBLE_DEVICES`` for the job, and the job's device
    auto-detection (``MethodConfig.device=None``) trains its one source model there."""
    import ray  # noqa: PLC0415 (Ray is an optional extra)

    if gpus_per_job is not None:
        return check_float("gpus_per_job", gpus_per_job, 0.0, 1.0)
    return 1.0 if ray.cluster_resources().get("GPU", 0) >= 1 else 0.0


def _execute_ray(jobs: list[Job], ray_address: str | None, max_workers: int | None,
                 finished, gpus_per_job: float | None = None) -> None:
    try:
        import ray  # noqa: PLC0415 (Ray is an optional extra)
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("executor='ray' needs Ray: pip install 'dml_kit[ray]'") from err
    if not ray.is_initialized():
        if ray_address in (None, "local"):
            ray.init(num_cpus=max_workers, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address=ray_address, log_to_driver=False)
    remote = ray.remote(num_cpus=1, num_gpus=ray_gpus_per_job(gpus_per_job))(_run_job_in_worker)
    pending = [remote.remote(job) for job in jobs]
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        finished(ray.get(done[0]))
