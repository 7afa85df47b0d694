"""``LiveDashboard``: watch the loss, the validation score, the embedding norms and a 2-D
projection of the probe embeddings change while a model trains.

It is both a training callback (the protocol of :mod:`dml_kit.callbacks`) and an
ipywidgets ``VBox``, so one object is displayed in a notebook and passed to a method::

    dash = LiveDashboard(fps=4, projection="umap", class_names=task.class_names)
    display(dash)
    methods.run("adapted_metric", task, split.source, callbacks=[dash])

**How a frame is drawn.** Events only *record* numbers (a list append per step). A frame
is drawn when at least ``1 / fps`` seconds passed since the last one *and* the drawing so
far stays within ``max_draw_share`` of the elapsed time (the interval grows when a frame
was slow), plus a first frame as soon as there is data and a last one at the end of each
phase. A frame first computes everything it needs (PCA layout, decimated curves, norms),
then writes it into the ``go.FigureWidget`` traces with one ``fig.plotly_update`` message
per figure (what ``fig.batch_update()`` sends, without its per-property overhead): trace
data are replaced, traces are never added per frame.

**Interrupts.** The frame's write is atomic: a ``KeyboardInterrupt`` (the notebook's stop
button) that arrives while the figures are being written is held back until the write
finished, then re-raised, so the figures always show one complete frame. After an
interrupt the training loop restores the best weights and emits ``on_train_end``; the
dashboard then draws a last frame marked "interrupted".

**UMAP.** With ``projection="umap"`` the dashboard starts umap-learn's warm-up in a
background thread when it is created and shows PCA until UMAP is ready; UMAP layouts are
then computed at epoch ends in a worker thread (latest embeddings win), initialised from
and Procrustes-aligned to the previous layout, and shown by the next frame.

**Threads (one policy, :class:`LiveThreadBudget`).** While umap-learn's warm-up compiles or
a UMAP layout is being fitted beside the training loop, training runs with
:func:`live_torch_threads` torch threads (``max(1, T - 1)``, ``T`` the count it had) so one
core is left to the UMAP thread, which runs numba with
:data:`~dml_kit.viz.projection.UMAP_THREADS` thread(s); the count is restored as soon as
that thread is idle, at the end of each phase, and on any exception when training runs
inside ``with dash.thread_budget:`` (the panels do). Oversubscribing the cores instead
made training 3x slower on a 2-core machine (issue 16).

**Images where the points are.** Under the projection, a
:class:`~dml_kit.viz.inspector.PointInspector` (``dash.inspector``) shows the image and
class of the probe point under the mouse and, on a click, its nearest neighbours under the
probe embeddings of the frame shown. The probe *images* come from the training event when
the loop sends them (an optional ``probe_inputs`` attribute of ``TrainBegin``), else from
:meth:`LiveDashboard.set_probe_images` (the panels that run training set them); without
them the inspector shows each point's class and its neighbours' classes. Hovering never
redraws a figure: the images are PNG data URIs cached per point.
"""

from __future__ import annotations

import contextlib
import html
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import ipywidgets as widgets
import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots

from dml_kit._validation import check_choice, check_float, check_int
from dml_kit.callbacks import EpochEvent, ModelLoaded, StepEvent, TrainBegin, TrainEnd
from dml_kit.viz.figures import TEMPLATE, as_numpy, palette
from dml_kit.viz.inspector import PointInspector
from dml_kit.viz.projection import UMAP_THREADS, Projector, umap_ready, umap_status, warm_up_umap

__all__ = ["LiveDashboard", "atomic_section", "LiveThreadBudget", "live_torch_threads",
           "UMAP_THREADS"]

#: UMAP epochs of a fresh layout and of one started from the previous layout (live views)
UMAP_EPOCHS = 150
UMAP_WARM_EPOCHS = 30


def live_torch_threads(threads: int) -> int:
    """Torch intra-op threads for training while a UMAP warm-up or layout runs beside it:
    ``max(1, threads - 1)``, where ``threads`` is the count training has otherwise (torch's
    default: one per core). One core is left to the UMAP thread (numba compiles on one
    thread; layouts run with :data:`~dml_kit.viz.projection.UMAP_THREADS`)."""
    threads = check_int("threads", threads, 1)
    return max(1, threads - 1)


class LiveThreadBudget:
    """The live-training thread policy, in one place: while ``side_work_busy()`` is true
    (the UMAP warm-up or a UMAP layout is running), the training thread uses
    :func:`live_torch_threads` torch threads; otherwise, and after :meth:`stop`, the count
    it had at :meth:`start`.

    torch's thread count belongs to the thread that sets it (ATen's OpenMP backend), so the
    budget is switched from the *training* thread: :meth:`start`, :meth:`update` and
    :meth:`stop` do nothing when called from another thread. The dashboard calls them from
    its hooks (``on_train_begin``, every step and epoch, ``on_train_end``); use it as a
    context manager around training (``with dash.thread_budget: methods.run(...)``) so the
    count is also restored when training raises (an exception the loop does not turn into
    ``on_train_end``)::

        with budget:        # start(): remember T = torch.get_num_threads()
            ...             # update(): max(1, T - 1) while UMAP works, T when it is idle
        # stop(): T again, whatever happened

    **Numbers.** The thread count changes how float reductions are split, so a run whose
    count changes gives (slightly) different weights and can give a different accuracy
    than the same run at a fixed count (measured: the classroom run, 1 vs 2 threads, 0.86
    vs 0.88 target accuracy). Live runs are for viewing; the numbers of record come from
    grids, which run every job with one thread
    (:data:`dml_kit.experiments.grid.JOB_THREADS`).
    """

    def __init__(self, side_work_busy: Callable[[], bool]) -> None:
        self.side_work_busy = side_work_busy
        self.threads: int | None = None   # the count restored by stop()
        self.current: int | None = None   # the count this budget set last
        self._owner: threading.Thread | None = None

    @property
    def active(self) -> bool:
        """Whether the budget is between :meth:`start` and :meth:`stop`."""
        return self._owner is not None

    def start(self) -> None:
        """Remember the calling (training) thread's torch thread count and apply the budget;
        when already active this is :meth:`update`."""
        if self._owner is None:
            self._owner = threading.current_thread()
            self.threads = self.current = torch.get_num_threads()
        self.update()

    def update(self) -> int:
        """Apply the policy now (from the training thread) and return the count in force."""
        if self._owner is not threading.current_thread() or self.threads is None:
            return self.current or 0
        wanted = live_torch_threads(self.threads) if self.side_work_busy() else self.threads
        if wanted != self.current:
            torch.set_num_threads(wanted)
            self.current = wanted
        return wanted

    def stop(self) -> None:
        """Restore the count remembered by :meth:`start` (from the training thread)."""
        if self._owner is not threading.current_thread() or self.threads is None:
            return
        if self.current != self.threads:
            torch.set_num_threads(self.threads)
        self._owner = None
        self.threads = self.current = None

    def __enter__(self) -> LiveThreadBudget:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def atomic_section() -> Iterator[None]:
    """Hold back ``SIGINT`` (``KeyboardInterrupt``) while the body runs, then deliver it.

    Only possible in the main thread (Python delivers signals there); elsewhere, or when
    the handler cannot be swapped, the body simply runs.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        received.append(signum)

    try:
        previous = signal.signal(signal.SIGINT, hold)
    except (ValueError, TypeError, OSError):  # pragma: no cover - exotic embedding
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if received:
        if callable(previous):
            previous(signal.SIGINT, None)
        else:
            raise KeyboardInterrupt


def _decimate(xs: list[float], ys: list[float], limit: int) -> tuple[list[float], list[float]]:
    """At most about ``limit`` points (every m-th, always keeping the last)."""
    if len(xs) <= limit:
        return xs, ys
    step = int(np.ceil(len(xs) / limit))
    idx = list(range(0, len(xs), step))
    if idx[-1] != len(xs) - 1:
        idx.append(len(xs) - 1)
    return [xs[i] for i in idx], [ys[i] for i in idx]


class _UmapWorker:
    """Runs UMAP layouts in one background thread; only the newest request is kept."""

    def __init__(self, projector: Projector, on_done: Any) -> None:
        self.projector = projector
        self.on_done = on_done
        self._pending: tuple[np.ndarray, int, np.ndarray | None] | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.busy = False
        self.seconds: list[float] = []

    def submit(self, emb: np.ndarray, tag: int, reference: np.ndarray | None) -> None:
        with self._lock:
            self._pending = (emb, tag, reference)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="dml_kit-umap-layout",
                                                daemon=True)
                self.busy = True
                self._thread.start()

    def _loop(self) -> None:
        while True:
            with self._lock:
                job, self._pending = self._pending, None
                if job is None:
                    self.busy = False
                    return
            emb, tag, reference = job
            try:
                if reference is not None:
                    self.projector.set_reference(reference)
                t0 = time.perf_counter()
                layout = self.projector.fit_transform(emb)
                self.seconds.append(time.perf_counter() - t0)
            except Exception as exc:  # pragma: no cover - reported in the status line
                self.on_done(None, tag, exc)
                continue
            self.on_done(layout, tag, None)

    def join(self, timeout: float | None = None) -> None:
        thread = self._thread
        if thread is not None:
            thread.join(timeout)


class LiveDashboard(widgets.VBox):
    """A training callback that is also an ipywidgets box of live figures.

    Args:
        fps: target frames per second (0.2 to 30); frames are dropped, never queued.
        max_draw_share: keep the time spent in this callback below this fraction of the
            training time (the interval between frames grows after slow frames).
        projection: ``"pca"`` (every frame) or ``"umap"`` (PCA until umap-learn is warm,
            then UMAP layouts computed in the background at epoch ends).
        probe_every: also ask the loop for probe embeddings every that many steps (more
            projection frames within long epochs, at the cost of embedding the probe set);
            0 = at epoch ends only.
        class_names: names of the probe classes for the legends (``{phase: names}`` for
            different names per phase); default ``"class i"``.
        per_class_norms: one norm histogram per class instead of one overall.
        title: shown above the figures.
        seed: UMAP's seed.
        max_points: curves are decimated to at most this many points per trace.
        probe_images: ``{phase: images}`` or ``{phase: (images, labels)}`` of the probe
            set, for the point inspector (see :meth:`set_probe_images`).
        neighbours: how many nearest neighbours a click on a probe point shows.

    After (or during) training, :meth:`stats` reports frames, fps and the share of the
    training time spent in the dashboard.
    """

    wants_probe = True
    wants_norms = True

    def __init__(self, *, fps: float = 4.0, max_draw_share: float = 0.08,
                 projection: str = "pca", probe_every: int = 0,
                 class_names: Sequence[str] | dict[str, Sequence[str]] | None = None,
                 per_class_norms: bool = False, title: str = "", seed: int = 0,
                 max_points: int = 1500, width: int = 460, height: int = 340,
                 probe_images: Mapping[str, Any] | None = None, neighbours: int = 5) -> None:
        self.fps = check_float("fps", fps, 0.2, 30.0)
        self.max_draw_share = check_float("max_draw_share", max_draw_share, 0.001, 1.0)
        self.probe_every = check_int("probe_every", probe_every, 0)
        self.max_points = check_int("max_points", max_points, 10)
        self.per_class_norms = bool(per_class_norms)
        self._class_names = class_names
        self._fig_w, self._fig_h = check_int("width", width, 200), check_int("height", height, 150)
        self._lock = threading.RLock()
        self._seed = seed
        self._pca = Projector("pca", seed=seed)
        self._umap_worker: _UmapWorker | None = None
        self.thread_budget = LiveThreadBudget(self._side_work_busy)
        self.set_projection(projection)
        self.curves = self._make_curves()
        self.norms_fig = self._make_norms()
        self.projection_fig = self._make_projection()
        self.header = widgets.HTML(value=self._header_html("waiting for training to start"))
        self.inspector = PointInspector(k=neighbours,
                                        features_label="this frame's probe embeddings")
        self._probe_images: dict[str, Any] = {}
        self.set_probe_images(probe_images or {})
        self._figure_rows = (widgets.HBox([self.curves, self.norms_fig]),
                             widgets.HBox([self.projection_fig]), self.inspector)
        self.loaded: list[ModelLoaded] = []
        self.title_html = widgets.HTML()
        super().__init__(children=[self.title_html, self.header, *self._figure_rows])
        self.set_title(title)
        self.reset()

    # ---- figures ----------------------------------------------------------------------
    def _make_curves(self) -> go.FigureWidget:
        base = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12,
                             subplot_titles=("training loss", "validation score"))
        fig = go.FigureWidget(base)
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines", name="step loss", opacity=0.4,
                                 line=dict(width=1, color=palette(1)[0])), row=1, col=1)
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name="epoch loss",
                                 line=dict(color=palette(1)[0])), row=1, col=1)
        fig.add_trace(go.Scatter(x=[], y=[], mode="lines+markers", name="val score",
                                 line=dict(color=palette(3)[2])), row=2, col=1)
        fig.update_xaxes(title_text="epoch", row=2, col=1)
        fig.update_layout(template=TEMPLATE, width=self._fig_w, height=self._fig_h + 60,
                          margin=dict(l=55, r=15, t=60, b=45), showlegend=False,
                          title="Learning curves")
        return fig

    def _make_norms(self) -> go.FigureWidget:
        fig = go.FigureWidget()
        fig.update_layout(template=TEMPLATE, width=self._fig_w, height=self._fig_h + 60,
                          margin=dict(l=55, r=15, t=60, b=45), barmode="overlay",
                          title="Embedding norms", xaxis_title="‖f(x)‖₂",
                          yaxis_title="count", showlegend=False)
        fig.add_shape(type="line", x0=0, x1=0, y0=0, y1=1, yref="paper", visible=False,
                      line=dict(color="#444", dash="dash", width=2), name="sec_target")
        return fig

    def _make_projection(self) -> go.FigureWidget:
        fig = go.FigureWidget()
        fig.update_layout(template=TEMPLATE, width=2 * self._fig_w,
                          height=self._fig_h + 100, margin=dict(l=55, r=15, t=60, b=45),
                          title="Probe embeddings (waiting)", xaxis_title="component 1",
                          yaxis_title="component 2", legend_title_text="class")
        return fig

    def _header_html(self, text: str) -> str:
        return f"<div style='font-family:monospace;font-size:13px'>{text}</div>"

    # ---- state ------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget everything recorded (figures keep their last frame until the next one)."""
        with self._lock:
            self.phase = ""
            self.method = ""
            self.max_epochs = 0
            self._steps: list[tuple[int, int, float]] = []  # (epoch, step in epoch, loss)
            self._epochs: list[tuple[int, float, float | None]] = []  # (epoch, loss, score)
            self._epoch_steps: dict[int, int] = {}
            self._last_epoch_step = 0
            self._probe: tuple[np.ndarray, np.ndarray, int] | None = None  # emb, labels, tag
            self._layout: tuple[np.ndarray, str, int] | None = None  # points, method, tag
            self._umap_layout: tuple[np.ndarray, int] | None = None
            self._probe_labels: np.ndarray | None = None
            self._dirty = False
            self._status = "waiting for training to start"
            self._phase_t0 = time.perf_counter()
            self._last_draw_end = 0.0
            self._next_allowed = 0.0
            self.frames = 0
            self.steps_seen = 0
            self.draw_seconds = 0.0          # time spent inside this callback's hooks
            self.frame_seconds: list[float] = []
            self.train_seconds = 0.0
            self.t_train_begin: float | None = None
            self.t_first_frame: float | None = None
            self.t_first_projection: float | None = None
            self.interrupted = False
            self.finished = False
            self._pca.reset()
            if self._umap_worker is not None:
                self._umap_worker.projector.reset()

    def _names(self) -> list[str]:
        labels = self._probe_labels
        n = int(labels.max()) + 1 if labels is not None and labels.size else 0
        names = self._class_names
        if isinstance(names, dict):
            names = names.get(self.phase)
        if names is None or len(names) < n:
            return [f"class {i}" for i in range(n)]
        return [str(c) for c in names]

    def set_projection(self, projection: str) -> None:
        """Switch between ``"pca"`` and ``"umap"`` (takes effect at the next epoch end;
        choosing UMAP starts umap-learn's warm-up in the background)."""
        self.projection = check_choice("projection", projection, ("pca", "umap"))
        if projection == "umap" and self._umap_worker is None:
            warm_up_umap(background=True)
            self._umap_worker = _UmapWorker(
                Projector("umap", seed=self._seed, when_cold="wait", n_epochs=UMAP_EPOCHS,
                          warm_epochs=UMAP_WARM_EPOCHS), self._umap_done)
        elif projection == "pca":
            self._umap_worker = None
            with self._lock:
                self._umap_layout = None

    def set_class_names(self, names: Sequence[str] | dict[str, Sequence[str]] | None) -> None:
        """Names for the probe classes (one list, or ``{phase: names}``)."""
        self._class_names = names

    @property
    def class_names(self) -> Sequence[str] | dict[str, Sequence[str]] | None:
        """The probe classes' names set so far (``None``: ``"class i"``)."""
        return self._class_names

    def set_title(self, title: str) -> None:
        """Show ``title`` above the figures (bold; ``""`` hides it): e.g. which of several
        trainings a panel runs now."""
        self.title = str(title)
        self.title_html.value = f"<b>{html.escape(self.title)}</b>" if self.title else ""
        self.title_html.layout.display = None if self.title else "none"

    def set_probe_images(self, images: Mapping[str, Any]) -> None:
        """The probe images of each phase for the point inspector: ``{phase: images}``
        (one image per probe point, in the loop's order) or ``{phase: (images, labels)}``
        (checked at the phase start: the first ``P`` labels must equal the probe labels
        the loop sends, and the first ``P`` images are used). Images the loop sends with
        the event take precedence; a set that does not match is ignored (the inspector then
        shows classes only)."""
        if not isinstance(images, Mapping):
            raise ValueError("images must be a mapping {phase: images} or "
                             f"{{phase: (images, labels)}}, got {type(images).__name__}")
        self._probe_images = dict(images)

    def _images_for(self, event: TrainBegin, labels: np.ndarray | None) -> Any:
        """The probe images of the phase starting with ``event``, or ``None``."""
        if labels is None:
            return None
        sent = getattr(event, "probe_inputs", None)
        if sent is not None and len(sent) == len(labels):
            return sent
        given = self._probe_images.get(event.phase)
        if given is None:
            return None
        n = len(labels)
        if isinstance(given, tuple):
            x, y = given
            y = as_numpy(y, np.int64)
            if len(x) >= n and len(y) >= n and np.array_equal(y[:n], labels):
                return x[:n]
            return None
        return given if len(given) == n else None

    # ---- callback hooks ---------------------------------------------------------------
    def on_model_loaded(self, event: ModelLoaded) -> None:
        """A source model came from the model cache: nothing trains. Until something does,
        the panel hides its empty figures and says which models were loaded."""
        with self._lock:
            self.loaded.append(event)
            if self.t_train_begin is not None:   # something trained here: keep its frames
                return
            said = ", ".join(
                f"{e.kind} (trained in {e.trained_seconds:.1f} s)"
                if isinstance(e.trained_seconds, (int, float)) else e.kind
                for e in self.loaded)
            folder = os.path.dirname(event.path) or "."
            self._status = (f"loaded from the model cache, nothing to train: {said}. "
                            f"Delete their files in {folder} to watch them train.")
            for row in self._figure_rows:
                row.layout.display = "none"
            self.header.value = self._header_html(self._status)

    def on_train_begin(self, event: TrainBegin) -> None:
        t0 = time.perf_counter()
        for row in self._figure_rows:
            row.layout.display = None
        with self._lock:
            first_begin = self.t_train_begin
            keep = (self.frames, self.steps_seen, self.draw_seconds, self.frame_seconds,
                    self.train_seconds, self.t_first_frame, self.t_first_projection)
            self.reset()
            (self.frames, self.steps_seen, self.draw_seconds, self.frame_seconds,
             self.train_seconds, self.t_first_frame, self.t_first_projection) = keep
            self.t_train_begin = first_begin if first_begin is not None else t0
            self.phase, self.method, self.max_epochs = event.phase, event.method, event.max_epochs
            self._phase_t0 = t0
            self._probe_labels = (None if event.probe_labels is None
                                  else as_numpy(event.probe_labels, np.int64))
            self._status = "training started"
            self._setup_projection_traces()
            self._setup_norm_traces()
            if self._probe_labels is not None:
                self.inspector.set_points(self._probe_labels, self._names(),
                                          images=self._images_for(event, self._probe_labels))
            self.inspector.attach(self.projection_fig)
        self.thread_budget.start()
        self.draw_seconds += time.perf_counter() - t0

    def on_step(self, event: StepEvent) -> None:
        t0 = time.perf_counter()
        with self._lock:
            self._steps.append((event.epoch, event.step - self._last_epoch_step,
                                float(event.loss)))
            self.steps_seen += 1
            if event.probe_embeddings is not None:
                self._probe = (as_numpy(event.probe_embeddings),
                               as_numpy(event.probe_labels, np.int64), event.step)
            self._dirty = True
        self.thread_budget.update()
        self._maybe_draw(t0)
        self.draw_seconds += time.perf_counter() - t0

    def on_epoch(self, event: EpochEvent) -> None:
        t0 = time.perf_counter()
        with self._lock:
            self._epoch_steps[event.epoch] = event.step - self._last_epoch_step
            self._last_epoch_step = event.step
            self._epochs.append((event.epoch, float(event.loss), event.score))
            if event.probe_embeddings is not None:
                labels = event.probe_labels if event.probe_labels is not None \
                    else self._probe_labels
                self._probe = (as_numpy(event.probe_embeddings),
                               as_numpy(labels, np.int64), event.step)
                if self._umap_worker is not None and umap_ready():
                    reference = self._layout[0] if (self._layout is not None
                                                    and self._umap_layout is None) else None
                    self._umap_worker.submit(self._probe[0], event.step, reference)
            self._status = "training"
            self._dirty = True
        self.thread_budget.update()
        self._maybe_draw(t0)
        self.draw_seconds += time.perf_counter() - t0

    def on_train_end(self, event: TrainEnd) -> None:
        t0 = time.perf_counter()
        self.thread_budget.stop()
        result = event.result
        with self._lock:
            self.interrupted = self.interrupted or bool(result.interrupted)
            if result.interrupted:
                self._status = (f"interrupted: best weights restored (epoch {result.best_epoch})")
            else:
                stop = "early stop" if result.stopped_early else "done"
                self._status = f"{stop}: best epoch {result.best_epoch}"
            self.train_seconds += time.perf_counter() - self._phase_t0
            self.finished = True
            self._dirty = True
        self.draw(force=True)
        self.draw_seconds += time.perf_counter() - t0

    def _side_work_busy(self) -> bool:
        """Whether a UMAP thread works beside training now (warm-up or a layout)."""
        worker = self._umap_worker
        return umap_status() == "warming" or (worker is not None and worker.busy)

    # ---- drawing ----------------------------------------------------------------------
    def _maybe_draw(self, now: float) -> None:
        if not self._dirty or now < self._next_allowed:
            return
        if self.t_first_frame is not None:
            elapsed = now - (self.t_train_begin or now)
            if elapsed > 0 and self.draw_seconds / elapsed > self.max_draw_share:
                return
        self.draw()

    def _umap_done(self, layout: np.ndarray | None, tag: int, error: Exception | None) -> None:
        with self._lock:
            if error is not None:
                self._status = f"UMAP failed ({error!r}); showing PCA"
                self._umap_worker = None
                return
            assert layout is not None
            self._umap_layout = (layout, tag)
            self._dirty = True
            over = self.finished
        if over:  # no more training events will come: draw the late layout ourselves
            self.draw(force=True)

    def _setup_projection_traces(self) -> None:
        """One scatter trace per probe class; (re)built only when the class count changes
        (at a phase start), never per frame."""
        names = self._names()
        fig = self.projection_fig
        # a new phase starts empty: say so instead of the last phase's "(epoch N)" title
        fig.layout.title.text = (f"Probe embeddings ({self.phase or 'training'}: waiting for "
                                 "the first epoch)")
        if len(fig.data) == len(names) and all(t.name == n for t, n in
                                                zip(fig.data, names, strict=True)):
            with fig.batch_update():
                for t in fig.data:
                    t.x, t.y = [], []
            return
        # the qualitative palette over the classes the probe set holds (a probe of 10
        # classes out of 60 gets 10 clearly different colours, not 10 neighbouring shades
        # of a 60-step scale); absent classes keep an empty grey trace
        labels = self._probe_labels
        present = sorted({int(v) for v in labels}) if labels is not None else []
        rank = {c: i for i, c in enumerate(present)}
        shades = palette(len(present))
        fig.data = ()
        for c, name in enumerate(names):
            fig.add_trace(go.Scatter(x=[], y=[], mode="markers", name=name,
                                     showlegend=c in rank,
                                     marker=dict(size=7,
                                                 color=shades[rank[c]] if c in rank
                                                 else "#bbbbbb",
                                                 line=dict(width=0.5, color="white")),
                                     hovertemplate=f"class {name}<br>index %{{customdata}}"
                                     "<br>click: nearest neighbours<extra></extra>"))

    def _setup_norm_traces(self) -> None:
        names = self._names() if self.per_class_norms else ["all"]
        fig = self.norms_fig
        if len(fig.data) == len(names):
            return
        colors = palette(max(len(names), 1))
        fig.data = ()
        for c, name in enumerate(names):
            fig.add_trace(go.Histogram(x=[], name=name, nbinsx=30,
                                       opacity=0.55 if self.per_class_norms else 0.85,
                                       marker_color=colors[c]))

    def _step_positions(self, steps: list[tuple[int, int, float]]) -> list[float]:
        """Fractional epochs of the recorded steps: an epoch's steps spread over
        ``(epoch - 1, epoch]`` (the current epoch's count guessed from the last one)."""
        counts = dict(self._epoch_steps)
        guess = counts[max(counts)] if counts else max((s[1] for s in steps), default=1)
        return [e - 1 + j / max(counts.get(e, guess), j, 1) for e, j, _ in steps]

    def _build_frame(self) -> dict[str, Any]:
        """Everything one frame shows, computed before any figure is touched."""
        with self._lock:
            steps = list(self._steps)
            epochs = list(self._epochs)
            probe = self._probe
            umap_layout = self._umap_layout
            status = self._status
        frame: dict[str, Any] = {"status": status}
        sx, sy = _decimate(self._step_positions(steps), [s[2] for s in steps], self.max_points)
        frame["step"] = (sx, sy)
        frame["epoch"] = ([e[0] for e in epochs], [e[1] for e in epochs])
        scored = [e for e in epochs if e[2] is not None]
        frame["score"] = ([e[0] for e in scored], [e[2] for e in scored])
        frame["last_loss"] = steps[-1][2] if steps else None
        frame["last_score"] = scored[-1][2] if scored else None
        frame["epoch_now"] = epochs[-1][0] if epochs else 0
        if probe is not None:
            emb, labels, tag = probe
            norms = np.linalg.norm(emb, axis=1)
            frame["norms"] = (norms, labels)
            if umap_layout is not None and umap_layout[0].shape[0] == emb.shape[0]:
                points, kind, ptag = umap_layout[0], "UMAP", umap_layout[1]
            elif self._layout is not None and self._layout[2] == tag:
                points, kind, ptag = self._layout[0], self._layout[1], tag
            else:
                points, kind, ptag = self._pca.fit_transform(emb), "PCA", tag
                self._layout = (points, "PCA", tag)
            frame["projection"] = (points, labels, kind, ptag)
            frame["probe_embeddings"] = emb
        return frame

    @staticmethod
    def _update(fig: go.FigureWidget, traces: list[dict[str, Any]],
                layout: dict[str, Any]) -> None:
        """One ``plotly_update`` message per figure: the same trace keys for every trace in
        ``traces`` (index i -> ``fig.data[i]``) and the layout changes. This is what
        ``fig.batch_update()`` sends on exit, without its per-property bookkeeping
        (about 4x cheaper per frame, measured)."""
        restyle: dict[str, list[Any]] = {}
        if traces:
            for key in traces[0]:
                restyle[key] = [t[key] for t in traces]
        fig.plotly_update(restyle_data=restyle, relayout_data=layout,
                          trace_indexes=list(range(len(traces))))

    def _apply_frame(self, frame: dict[str, Any]) -> None:
        """Write one frame into the figures (atomic with respect to Ctrl-C: a
        ``KeyboardInterrupt`` arriving meanwhile is delivered after the last write)."""
        f64 = np.float64
        with atomic_section():
            (sx, sy), (ex, ey), (vx, vy) = frame["step"], frame["epoch"], frame["score"]
            phase = f" ({self.phase})" if self.phase else ""
            self._update(self.curves, [
                {"x": np.asarray(sx, f64), "y": np.asarray(sy, f64)},
                {"x": np.asarray(ex, f64), "y": np.asarray(ey, f64)},
                {"x": np.asarray(vx, f64), "y": np.asarray(vy, f64)}],
                {"title.text": f"Learning curves{phase}"})
            if "norms" in frame:
                norms, labels = frame["norms"]
                mean, std = float(norms.mean()), float(norms.std())
                cv = std / mean if mean > 0 else float("nan")
                if self.per_class_norms:
                    hist = [{"x": norms[labels == c]} for c in range(len(self.norms_fig.data))]
                else:
                    hist = [{"x": norms}]
                self._update(self.norms_fig, hist, {
                    "shapes[0].x0": mean, "shapes[0].x1": mean, "shapes[0].visible": True,
                    "title.text": f"Embedding norms: mean {mean:.3g}, CV {cv:.3f}",
                    "meta": {"mean": mean, "std": std, "cv": cv}})
            if "projection" in frame:
                points, labels, kind, tag = frame["projection"]
                idx = np.arange(points.shape[0])
                scatter = []
                for c in range(len(self.projection_fig.data)):
                    m = labels == c
                    scatter.append({"x": points[m, 0], "y": points[m, 1],
                                    "customdata": idx[m]})
                where = f"epoch {frame['epoch_now']}" if frame["epoch_now"] else "start"
                note = ""
                if self.projection == "umap" and kind == "PCA":
                    note = " - UMAP warming up" if not umap_ready() else " - UMAP next"
                self._update(self.projection_fig, scatter, {
                    "title.text": f"Probe embeddings: {kind} ({where}){note}",
                    "meta": {"method": kind, "tag": int(tag)}})
                if self.inspector.n_points == points.shape[0]:
                    self.inspector.set_features(frame["probe_embeddings"])
            self.header.value = self._header_html(self._header_text(frame))

    def _header_text(self, frame: dict[str, Any]) -> str:
        parts = [f"{self.method or 'train'} [{self.phase}]" if self.phase else "",
                 f"epoch {frame['epoch_now']}/{self.max_epochs}"]
        if frame["last_loss"] is not None:
            parts.append(f"loss {frame['last_loss']:.4f}")
        if frame["last_score"] is not None:
            parts.append(f"val {frame['last_score']:.3f}")
        s = self.stats()
        parts.append(f"{s['fps']:.1f} fps, drawing {100 * s['draw_share']:.1f}% of time")
        parts.append(frame["status"])
        return " · ".join(p for p in parts if p)

    def draw(self, force: bool = False) -> None:
        """Draw a frame now (``force``: even when nothing changed)."""
        if not (self._dirty or force):
            return
        t0 = time.perf_counter()
        with self._lock:
            self._dirty = False
            frame = self._build_frame()
            self._apply_frame(frame)
            t1 = time.perf_counter()
            self.frames += 1
            self.frame_seconds.append(t1 - t0)
            if self.t_first_frame is None and frame["step"][0]:
                self.t_first_frame = t1
            if self.t_first_projection is None and "projection" in frame:
                self.t_first_projection = t1
            cost = t1 - t0
            interval = max(1.0 / self.fps, cost * (1.0 / self.max_draw_share - 1.0))
            self._last_draw_end = t1
            self._next_allowed = t1 + interval

    # ---- reporting --------------------------------------------------------------------
    def stats(self) -> dict[str, float]:
        """``frames``, ``fps`` (frames per second of training so far), ``draw_seconds``
        (time in this callback), ``train_seconds``, ``draw_share`` (their ratio),
        ``mean_frame_ms``, ``steps_per_second`` (training events per second: frames are
        drawn on events, so ``fps <= min(self.fps, steps_per_second)`` plus the first and
        last frames) and ``umap_layouts``."""
        now = time.perf_counter()
        elapsed = self.train_seconds if self.finished else (
            now - self.t_train_begin if self.t_train_begin is not None else 0.0)
        elapsed = max(elapsed, 1e-9)
        frames = self.frames
        return {
            "frames": float(frames),
            "fps": frames / elapsed if self.t_train_begin is not None else 0.0,
            "draw_seconds": self.draw_seconds,
            "train_seconds": elapsed,
            "draw_share": self.draw_seconds / elapsed if self.t_train_begin else 0.0,
            "mean_frame_ms": 1000 * float(np.mean(self.frame_seconds))
            if self.frame_seconds else 0.0,
            "steps_per_second": self.steps_seen / elapsed if self.t_train_begin else 0.0,
            "umap_layouts": float(len(self._umap_worker.seconds)) if self._umap_worker else 0.0,
        }

    def wait_for_projection(self, timeout: float = 30.0) -> None:
        """Wait for a running background UMAP layout (tests, benchmarks)."""
        if self._umap_worker is not None:
            self._umap_worker.join(timeout)
