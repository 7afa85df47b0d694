"""2-D projections of embeddings (PCA and UMAP) that stay aligned from frame to frame.

``Projector(method="pca" | "umap", seed=0)`` maps ``(N, D)`` embeddings to ``(N, 2)``
points. Successive calls on the same probe set (same ``N``) are aligned to the previous
layout, so an animation does not jump, spin or mirror between frames:

* every new layout is fitted to the previous one with an orthogonal Procrustes map
  (rotation, reflection allowed, plus uniform scale and shift): :func:`procrustes_align`;
* UMAP is additionally *initialised* from the previous layout and run for fewer epochs
  (``warm_epochs``), which is both faster and smoother.

**UMAP's neighbour graph.** For fewer than 4,096 points umap-learn builds its kNN graph from
a dense distance matrix computed by scikit-learn with umap's numba metric as a *Python
callable*: about N^2 / 2 Python calls, several seconds at N = 2,000, and the same again on
every frame, so a warm-started frame saved almost nothing (1.5 % at 2,000 points). The
:class:`Projector` instead computes the exact kNN itself with one matrix product
(:func:`exact_knn`, milliseconds) and hands it to umap-learn as ``precomputed_knn``; the
fuzzy graph built from it is the one umap would have built (same neighbours, same
distances up to float32 rounding).

**UMAP's compile cost.** umap-learn compiles its numba kernels the first time it is
imported and used in a process (measured on the 2-core machine: see
``benchmarks/live.py``). Three things keep that out of the reader's way:

1. :func:`configure_numba_cache` points ``NUMBA_CACHE_DIR`` at a persistent folder
   (``$DML_KIT_NUMBA_CACHE``, else ``~/.cache/dml_kit/numba``) *before* numba is imported,
   so the compiled kernels are written to disk once per machine and reloaded later;
2. :func:`warm_up_umap` imports umap and runs a tiny fit in a background thread; the live
   views call it when they are first created (not on plain ``import dml_kit``);
3. ``Projector("umap", when_cold="pca")`` returns a PCA layout until the warm-up has
   finished (``projector.last_method`` says which one was drawn).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from dml_kit._validation import check_choice, check_float, check_int, check_seed

__all__ = [
    "Projector", "procrustes_align", "pca_2d", "exact_knn", "configure_numba_cache",
    "numba_cache_dir", "warm_up_umap", "UMAP_THREADS", "EXACT_KNN_MAX_POINTS",
    "enable_umap_caching", "umap_status", "umap_ready", "wait_for_umap", "METHODS",
]

METHODS = ("pca", "umap")
CACHE_ENV = "DML_KIT_NUMBA_CACHE"
#: up to this many points the Projector computes UMAP's kNN exactly (:func:`exact_knn`);
#: above, umap-learn's own approximate search (pynndescent) is used
EXACT_KNN_MAX_POINTS = 10_000
#: numba threads of a UMAP fit (umap-learn's ``n_jobs``; it sets them for the calling thread
#: only and restores them afterwards): live views fit beside training and leave it the rest
UMAP_THREADS = 1


# ---------------------------------------------------------------------------------------
# numba cache and UMAP warm-up
# ---------------------------------------------------------------------------------------
def numba_cache_dir() -> Path:
    """The persistent folder for numba's compiled kernels: ``$DML_KIT_NUMBA_CACHE``, else an
    already set ``$NUMBA_CACHE_DIR``, else ``$XDG_CACHE_HOME/dml_kit/numba`` (default
    ``~/.cache/dml_kit/numba``). Per machine, not per checkout, so every clone shares it."""
    env = os.environ.get(CACHE_ENV) or os.environ.get("NUMBA_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "dml_kit" / "numba"


def configure_numba_cache() -> Path:
    """Set ``NUMBA_CACHE_DIR`` to :func:`numba_cache_dir` (creating it) and return it.

    Must run before numba is imported to take effect through the environment; if numba is
    already loaded, its configuration is reloaded so the setting still applies to kernels
    compiled from now on.
    """
    path = numba_cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:  # read-only home: fall back to numba's own default (__pycache__)
        return path
    if os.environ.get("NUMBA_CACHE_DIR") != str(path):
        os.environ["NUMBA_CACHE_DIR"] = str(path)
        if "numba" in sys.modules:
            try:
                from numba.core import config as numba_config

                numba_config.reload_config()
            except Exception:  # pragma: no cover - numba internals moved
                pass
    return path


_lock = threading.Lock()
_state: dict[str, Any] = {"status": "cold", "thread": None, "error": None,
                          "seconds": None, "import_seconds": None}
_ready = threading.Event()


def umap_status() -> str:
    """``"cold"`` (not started), ``"warming"``, ``"ready"`` or ``"failed"``."""
    return str(_state["status"])


def umap_ready() -> bool:
    """True once umap-learn is imported and its fit kernels are compiled."""
    return _ready.is_set()


def wait_for_umap(timeout: float | None = None) -> bool:
    """Block until the warm-up finished (or ``timeout`` seconds passed); return readiness.
    Starts the warm-up if nobody did."""
    if umap_status() == "cold":
        warm_up_umap(background=True)
    _ready.wait(timeout)
    if umap_status() == "failed":
        raise RuntimeError(f"UMAP could not be loaded: {_state['error']}")
    return _ready.is_set()


def warmup_seconds() -> dict[str, float | None]:
    """How long the warm-up took: ``import_seconds`` (import umap) and ``seconds`` (all)."""
    return {"import_seconds": _state["import_seconds"], "seconds": _state["seconds"]}


def enable_umap_caching() -> int:
    """Turn on numba's on-disk cache for umap-learn's and pynndescent's kernels that do not
    ask for it themselves (``smooth_knn_dist``, ``compute_membership_strengths``, the
    layout optimiser, ...): without this, every new process recompiles them on its first
    fit (about 30 s on a busy 2-core machine). Returns how many kernels were switched.

    Uses numba's ``Dispatcher.enable_caching()``; kernels that were already compiled in
    this process are left alone.
    """
    try:
        from numba.core.dispatcher import Dispatcher
    except ImportError:  # pragma: no cover
        return 0
    switched = 0
    for name, module in list(sys.modules.items()):
        if module is None or not name.startswith(("umap", "pynndescent")):
            continue
        for obj in list(vars(module).values()):
            if (isinstance(obj, Dispatcher) and not obj.signatures
                    and type(obj._cache).__name__ == "NullCache"):  # type: ignore[attr-defined]
                try:
                    obj.enable_caching()
                    switched += 1
                except Exception:  # pragma: no cover - e.g. functions defined in exec
                    pass
    return switched


def _warm_up() -> None:
    t0 = time.perf_counter()
    try:
        configure_numba_cache()
        import umap  # noqa: F401 - the import itself compiles (or loads) kernels

        enable_umap_caching()
        _state["import_seconds"] = time.perf_counter() - t0
        rng = np.random.default_rng(0)
        x = rng.normal(size=(60, 8)).astype(np.float32)
        _umap_fit(x, seed=0, n_neighbors=10, min_dist=0.1, n_epochs=20, init="spectral")
        _umap_fit(x, seed=0, n_neighbors=10, min_dist=0.1, n_epochs=5,
                  init=rng.normal(size=(60, 2)).astype(np.float32))
        _state["seconds"] = time.perf_counter() - t0
        _state["status"] = "ready"
        _ready.set()
    except Exception as exc:  # pragma: no cover - depends on the installation
        _state["status"] = "failed"
        _state["error"] = repr(exc)
        _ready.set()


def warm_up_umap(background: bool = True) -> threading.Thread | None:
    """Import umap-learn and compile its kernels, once per process.

    With ``background=True`` (default) this returns at once and the work runs in a daemon
    thread (returned; ``None`` if already started or done). ``background=False`` blocks.
    """
    with _lock:
        if _state["status"] != "cold":
            thread = _state["thread"]
            if not background and thread is not None:
                thread.join()
            return None
        _state["status"] = "warming"
        if background:
            thread = threading.Thread(target=_warm_up, name="dml_kit-umap-warmup", daemon=True)
            _state["thread"] = thread
            thread.start()
            return thread
    _warm_up()
    return None


def _umap_fit(x: np.ndarray, *, seed: int, n_neighbors: int, min_dist: float,
              n_epochs: int | None, init: Any, metric: str = "euclidean",
              precomputed: bool = True, learning_rate: float = 1.0) -> np.ndarray:
    """umap-learn's ``fit_transform`` with :data:`UMAP_THREADS` numba threads (``n_jobs``,
    which umap-learn applies to the calling thread only and resets afterwards) and, when
    ``precomputed`` and ``N <= EXACT_KNN_MAX_POINTS``, the exact kNN of
    :func:`exact_knn`."""
    import warnings

    import umap

    if not _state.get("caching"):
        _state["caching"] = enable_umap_caching() >= 0
    n_neighbors = min(n_neighbors, x.shape[0] - 1)
    knn: tuple[Any, ...] = (None, None, None)
    if precomputed and x.shape[0] <= EXACT_KNN_MAX_POINTS:
        knn = (*exact_knn(x, n_neighbors, metric=metric), None)
    reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=min_dist,
                        n_epochs=n_epochs, init=init, random_state=seed, metric=metric,
                        n_jobs=UMAP_THREADS, low_memory=True, verbose=False,
                        precomputed_knn=knn, learning_rate=learning_rate)
    with warnings.catch_warnings():
        # "n_jobs value 1 overridden..." and the spectral-init fallback chatter
        warnings.simplefilter("ignore")
        # "precomputed_knn[2] is not an NNDescent object": we never call .transform
        return np.asarray(reducer.fit_transform(x), dtype=np.float64)


# ---------------------------------------------------------------------------------------
# exact nearest neighbours
# ---------------------------------------------------------------------------------------
def exact_knn(x: Any, k: int, *, metric: str = "euclidean", block: int = 1024
              ) -> tuple[np.ndarray, np.ndarray]:
    """The exact ``k`` nearest neighbours of every row of ``x`` ``(N, D)``, itself included
    (first, at distance 0), as umap-learn's ``precomputed_knn`` expects them:
    ``(indices (N, k) int32, distances (N, k) float32)``, each row sorted by distance.

    Distances (computed in float64, ``block`` rows at a time so memory stays
    ``block x N``): ``euclidean`` ``d(a, b) = sqrt(|a|^2 + |b|^2 - 2 a.b)`` (clipped at 0);
    ``cosine`` ``d(a, b) = 1 - a.b / (|a| |b|)`` as umap-learn defines it (two zero rows are
    at distance 0, a zero row and a non-zero one at 1). One matrix product per block plus a
    partial sort: O(N^2 D), milliseconds for the few thousand probe points of a live view.
    """
    arr = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x,
                     dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 2:
        raise ValueError(f"x must be (N, D) with N >= 2, got shape {arr.shape}")
    n = arr.shape[0]
    k = check_int("k", k, 1, n)
    metric = check_choice("metric", metric, ("euclidean", "cosine"))
    block = check_int("block", block, 1)
    if metric == "cosine":
        norms = np.linalg.norm(arr, axis=1)
        zero = norms == 0
        arr = arr / np.where(zero, 1.0, norms)[:, None]
    sq = (arr ** 2).sum(axis=1)
    indices = np.empty((n, k), dtype=np.int32)
    distances = np.empty((n, k), dtype=np.float32)
    for start in range(0, n, block):
        rows = np.arange(start, min(start + block, n))
        # a per-row key with the order of the distance: |b|^2 - 2 a.b (adding |a|^2 and the
        # square root are monotone, so they are applied to the k survivors only) or -a.b
        key = arr[rows] @ arr.T
        if metric == "euclidean":
            key *= -2.0
            key += sq[None, :]
        else:
            np.negative(key, out=key)
            both_zero = zero[rows, None] & zero[None, :]
            key[zero[rows, None] ^ zero[None, :]] = 0.0  # distance 1
            key[both_zero] = -1.0  # distance 0
        key[np.arange(rows.size), rows] = -np.inf  # itself first, whatever the rounding
        if k < n:
            part = np.argpartition(key, k - 1, axis=1)[:, :k]
        else:
            part = np.broadcast_to(np.arange(n), (rows.size, n)).copy()
        part.sort(axis=1)  # ties broken by index, whatever argpartition returned
        part_key = np.take_along_axis(key, part, axis=1)
        order = np.argsort(part_key, axis=1, kind="stable")
        chosen = np.take_along_axis(part, order, axis=1)
        chosen_key = np.take_along_axis(part_key, order, axis=1)
        if metric == "euclidean":
            dist = np.sqrt(np.maximum(chosen_key + sq[rows, None], 0.0))
        else:
            dist = np.clip(1.0 + chosen_key, 0.0, 2.0)
        dist[:, 0] = 0.0
        indices[rows] = chosen
        distances[rows] = dist
    return indices, distances


# ---------------------------------------------------------------------------------------
# PCA and Procrustes
# ---------------------------------------------------------------------------------------
def _as_array(emb: Any) -> np.ndarray:
    if hasattr(emb, "detach"):
        emb = emb.detach().cpu().numpy()
    arr = np.asarray(emb, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] < 3:
        raise ValueError(f"emb must be (N, D) with N >= 3, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError("emb holds NaN or infinite values")
    return arr


def pca_2d(emb: Any) -> np.ndarray:
    """The first two principal components of ``emb`` ``(N, D)`` as ``(N, 2)`` scores.

    With centred ``X`` the scores are ``X v_1, X v_2`` for the top eigenvectors ``v`` of the
    ``D x D`` scatter ``X^T X`` (or, when ``D > N``, ``sqrt(lambda_i) u_i`` from the
    ``N x N`` Gram matrix ``X X^T``): the SVD's ``U S`` without the SVD, whose multi-threaded
    LAPACK call cost 10-100x more per live frame on a loaded 2-core machine. Signs are made
    deterministic (each component's largest-magnitude score is positive); one-dimensional
    input gets a zero second column.
    """
    x = _as_array(emb)
    x = x - x.mean(axis=0)
    n, d = x.shape
    if d <= n:
        values, vectors = np.linalg.eigh(x.T @ x)
        order = np.argsort(values)[::-1][:2]
        scores = x @ vectors[:, order]
    else:
        values, vectors = np.linalg.eigh(x @ x.T)
        order = np.argsort(values)[::-1][:2]
        scores = vectors[:, order] * np.sqrt(np.maximum(values[order], 0.0))
    if scores.shape[1] < 2:
        scores = np.hstack([scores, np.zeros((n, 2 - scores.shape[1]))])
    for j in range(2):
        i = int(np.argmax(np.abs(scores[:, j])))
        if scores[i, j] < 0:
            scores[:, j] *= -1
    return scores


def procrustes_align(points: Any, reference: Any, *, scale: bool = True,
                     allow_reflection: bool = True) -> np.ndarray:
    """Map ``points`` ``(N, 2)`` onto ``reference`` ``(N, 2)`` (rows correspond) with the
    orthogonal transform ``R`` (rotation, and reflection if allowed), uniform scale ``s``
    (if ``scale``) and shift ``t`` minimising ``||s * (P - mean P) R + t - Q||_F``.

    Solution (Schönemann 1966): with centred ``P0, Q0`` and ``P0^T Q0 = U S V^T``, take
    ``R = U V^T`` (for rotations only, flip the sign of the last singular pair when
    ``det(U V^T) < 0``), ``s = trace(S) / ||P0||^2``, ``t = mean Q``.
    """
    p = np.asarray(points, dtype=np.float64)
    q = np.asarray(reference, dtype=np.float64)
    if p.shape != q.shape or p.ndim != 2:
        raise ValueError(f"points and reference must have the same (N, d) shape, "
                         f"got {p.shape} and {q.shape}")
    p_mean, q_mean = p.mean(axis=0), q.mean(axis=0)
    p0, q0 = p - p_mean, q - q_mean
    u, s, vt = np.linalg.svd(p0.T @ q0)
    if not allow_reflection and np.linalg.det(u @ vt) < 0:
        u[:, -1] *= -1
        s[-1] *= -1
    r = u @ vt
    denom = float((p0 ** 2).sum())
    factor = float(s.sum()) / denom if (scale and denom > 0) else 1.0
    return factor * (p0 @ r) + q_mean


# ---------------------------------------------------------------------------------------
# the Projector
# ---------------------------------------------------------------------------------------
class Projector:
    """PCA or UMAP to 2-D, with each layout aligned to the previous one.

    Args:
        method: ``"pca"`` (milliseconds) or ``"umap"`` (umap-learn; seconds).
        seed: random seed for UMAP.
        align: Procrustes-align every layout to the previous one of the same probe set.
        scale: let the alignment rescale (keeps the picture's size steady; the norm
            histogram shows the actual growth of the embeddings).
        n_neighbors, min_dist, metric: UMAP's parameters (``n_neighbors`` is capped at
            ``N - 1``).
        n_epochs: UMAP optimisation epochs for a fresh layout (``None``: umap's default,
            200 for small data).
        warm_epochs: epochs for a layout initialised from the previous one.
        warm_learning_rate: UMAP's initial learning rate for such a layout (a fresh one
            uses umap's 1.0); lower keeps successive frames closer (measured on 8 blob
            clusters, 30 warm epochs: the largest cluster move fell from 13 % of the
            layout's extent at 1.0 to 10 % at 0.25).
        when_cold: with ``method="umap"`` before umap-learn is warm: ``"wait"`` blocks
            until it is, ``"pca"`` returns a PCA layout meanwhile (what live views use).
        knn: how UMAP finds each point's neighbours: ``"exact"`` (default; :func:`exact_knn`
            passed as ``precomputed_knn``, up to ``EXACT_KNN_MAX_POINTS`` points) or
            ``"umap"`` (umap-learn's own search; slow below 4,096 points, see above).

    A warm frame (UMAP started from the previous layout) costs the kNN, the fuzzy graph
    and ``warm_epochs`` optimisation epochs; a fresh one adds the spectral initialisation
    and ``n_epochs`` epochs (``benchmarks/live.py`` times both).

    ``last_method`` tells which method produced the most recent layout, ``last_seconds``
    how long it took.
    """

    def __init__(self, method: str = "pca", *, seed: int = 0, align: bool = True,
                 scale: bool = True, n_neighbors: int = 15, min_dist: float = 0.1,
                 metric: str = "euclidean", n_epochs: int | None = 200,
                 warm_epochs: int = 60, warm_learning_rate: float = 0.25,
                 when_cold: str = "wait", knn: str = "exact") -> None:
        self.method = check_choice("method", method, METHODS)
        self.seed = check_seed(seed)
        self.align = bool(align)
        self.scale = bool(scale)
        self.n_neighbors = check_int("n_neighbors", n_neighbors, 2, 200)
        self.min_dist = check_float("min_dist", min_dist, 0.0, 1.0)
        self.metric = check_choice("metric", metric, ("euclidean", "cosine"))
        self.n_epochs = None if n_epochs is None else check_int("n_epochs", n_epochs, 1, 5000)
        self.warm_epochs = check_int("warm_epochs", warm_epochs, 1, 5000)
        self.warm_learning_rate = check_float("warm_learning_rate", warm_learning_rate,
                                              1e-3, 10.0)
        self.when_cold = check_choice("when_cold", when_cold, ("wait", "pca"))
        self.knn = check_choice("knn", knn, ("exact", "umap"))
        self._previous: np.ndarray | None = None
        self._previous_method: str | None = None
        self.last_method: str | None = None
        self.last_seconds: float = 0.0
        if self.method == "umap":
            warm_up_umap(background=True)

    def reset(self) -> None:
        """Forget the previous layout (the next one starts fresh)."""
        self._previous = None
        self._previous_method = None

    def set_reference(self, points: Any) -> None:
        """Use ``points`` ``(N, 2)`` as the previous layout: the next layout of ``N`` points is
        aligned to it (and UMAP starts from it), e.g. to hand over from PCA to UMAP."""
        ref = np.asarray(points, dtype=np.float64)
        if ref.ndim != 2 or ref.shape[1] != 2:
            raise ValueError(f"points must be (N, 2), got shape {ref.shape}")
        self._previous = ref

    def fit_transform(self, emb: Any) -> np.ndarray:
        """Project ``emb`` ``(N, D)`` (tensor or array) to ``(N, 2)``, aligned to the previous
        layout when it had the same ``N``."""
        x = _as_array(emb)
        t0 = time.perf_counter()
        prev = self._previous if (self._previous is not None
                                  and self._previous.shape[0] == x.shape[0]) else None
        method = self.method
        if method == "umap" and not umap_ready():
            if self.when_cold == "pca":
                method = "pca"
            else:
                wait_for_umap()
        if method == "umap" and x.shape[0] < 5:
            method = "pca"  # UMAP needs a handful of neighbours
        if method == "pca":
            y = pca_2d(x)
        else:
            init: Any = "spectral"
            epochs, learning_rate = self.n_epochs, 1.0
            if prev is not None:
                # start from the previous layout, standardised to UMAP's usual scale (~10)
                p0 = prev - prev.mean(axis=0)
                init = (10.0 * p0 / (np.abs(p0).max() or 1.0)).astype(np.float32)
                epochs, learning_rate = self.warm_epochs, self.warm_learning_rate
            y = _umap_fit(x.astype(np.float32), seed=self.seed, n_neighbors=self.n_neighbors,
                          min_dist=self.min_dist, n_epochs=epochs, init=init,
                          metric=self.metric, precomputed=self.knn == "exact",
                          learning_rate=learning_rate)
        if self.align and prev is not None:
            y = procrustes_align(y, prev, scale=self.scale)
        self._previous = y
        self._previous_method = method
        self.last_method = method
        self.last_seconds = time.perf_counter() - t0
        return y

    def __repr__(self) -> str:
        return (f"Projector(method={self.method!r}, seed={self.seed}, align={self.align}, "
                f"umap={umap_status()})")
