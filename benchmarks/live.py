"""Live-view benchmark: what the dashboard costs a training run, counted honestly.

Runs :class:`dml_kit.widgets.MethodRunner` on ``glyphs`` with the classroom settings (the
Train button pressed through its click handler, as in a notebook) and reports, per run:

* **first frame**: seconds from pressing Train to the first live frame; *cold* in a fresh
  Python process (imports, widget construction, then the press), *warm* on a later press
  in the same process;
* **fps**: frames drawn per second of training, with the projection ``pca`` and ``umap``
  (frames are drawn on training events, so fps is at most the events per second, shown
  beside it);
  UMAP *cold* is the first press in a fresh process (umap-learn imported and its kernels
  loaded from the numba cache beside training), *warm* a later press;
* **overhead**, each as a share of the training time, reported separately:
  *drawing* (the dashboard's hooks, less the serialisation below), *serialisation* (every
  widget message serialised as a connected kernel would: the figures' comms are replaced
  by :class:`RecordingComm`, which runs ``jupyter_client``'s ``Session.serialize`` on each
  message and records its bytes and time, sending nothing) and the *probe* forward pass
  (the loop embeds the probe set every epoch for the dashboard: ``dml_kit.training.embed``
  is timed); their sum is the live view's total overhead. The UMAP warm-up and layouts
  run in their own thread: their time is shown beside, not in the overhead, and the
  slowdown of the run against the same run without a dashboard includes them;
* **UMAP frame at 2,000 points**: a warm-started frame (previous layout as ``init``,
  ``UMAP_WARM_EPOCHS`` epochs) against a fresh fit (spectral init, ``UMAP_EPOCHS``), both
  with the dashboard's :class:`~dml_kit.viz.projection.Projector` settings, and a fresh fit
  that lets umap-learn find the neighbours itself (``knn="umap"``, the old path).

**Threads (set and stated).** Training runs with ``--threads`` torch threads (default: one
per core, what a notebook has); while a UMAP warm-up or layout runs, the dashboard's
:class:`~dml_kit.viz.live.LiveThreadBudget` lowers that to ``max(1, T - 1)``; UMAP runs
numba with ``UMAP_THREADS``. The UMAP timings at 2,000 points use one torch thread.

Goals (issue 16, for a quiet 2-core machine): first frame <= 2 s warm and <= 10 s cold,
>= 2 frames/s, total overhead <= 15 % of training time, a warm UMAP frame at 2,000 points
<= 30 % of a fresh fit. They are printed as met / not met, never asserted. Each figure is
printed with the ``uptime`` taken right after it was measured: on a loaded machine the
figures are inflated and only their ratios are meaningful.

Usage::

    python benchmarks/live.py                 # everything (a few minutes on 2 cores)
    python benchmarks/live.py --threads 1     # train with one torch thread
    python benchmarks/live.py --umap-cold     # also umap-learn with an empty numba cache
    python benchmarks/live.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RUN = dict(method="adapted_metric", loss="histogram", n_way=5, k_shot=5, epochs=3,
           adapt_epochs=10, batches_per_epoch=20, source_classes=60, fps=4.0)
GOALS = {"first_frame_warm_s": 2.0, "first_frame_cold_s": 10.0, "fps": 2.0,
         "overhead_share": 0.15, "umap_warm_over_fresh": 0.30}


def uptime() -> str:
    """The ``uptime`` line (load averages), printed beside every figure."""
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):  # pragma: no cover - no uptime binary
        return "load average: " + ", ".join(f"{v:.2f}" for v in os.getloadavg())


def set_threads(threads: int) -> None:
    """Torch intra-op threads for training (the live budget lowers them while UMAP works)."""
    import torch

    torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------
# counting serialisation and the probe pass
# ---------------------------------------------------------------------------------------
class Recorder:
    """Messages (seconds, bytes, thread) and probe forward passes (seconds) since reset."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self.lock:
            self.messages: list[tuple[float, int, int]] = []
            self.probes: list[float] = []

    def summary(self, thread: int | None = None) -> dict[str, float]:
        """Totals; messages only from ``thread`` (an ident) when given."""
        with self.lock:
            msgs, probes = list(self.messages), list(self.probes)
        if thread is not None:
            msgs = [m for m in msgs if m[2] == thread]
        return {"messages": float(len(msgs)),
                "serialise_s": sum(m[0] for m in msgs),
                "message_bytes": float(sum(m[1] for m in msgs)),
                "probe_s": sum(probes), "probe_passes": float(len(probes))}


RECORD = Recorder()


def install_recording() -> None:
    """Replace ``comm.create_comm`` (what ipywidgets calls when a widget opens) by
    :class:`RecordingComm`, and time the loop's probe forward pass. Call before any widget
    is created."""
    import comm
    from comm.base_comm import BaseComm
    from jupyter_client.session import Session

    session = Session(key=b"dml_kit-benchmark")

    class RecordingComm(BaseComm):
        """A connected comm without a kernel: each message is built and serialised as
        ipykernel's comm does (``Session.msg`` + ``Session.serialize``, HMAC-signed JSON),
        its size (frames plus binary buffers) and time recorded; nothing is sent."""

        def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None,
                        buffers: Any = None, **keys: Any) -> None:
            t0 = time.perf_counter()
            content = dict(data={} if data is None else data, comm_id=self.comm_id, **keys)
            msg = session.msg(msg_type, content=content, parent={},
                              metadata={} if metadata is None else metadata)
            frames = session.serialize(msg, ident=self.topic)
            size = sum(len(f) for f in frames) + sum(memoryview(b).nbytes
                                                     for b in buffers or [])
            with RECORD.lock:
                RECORD.messages.append((time.perf_counter() - t0, size,
                                        threading.get_ident()))

    comm.create_comm = RecordingComm  # type: ignore[assignment]

    import dml_kit.training as training

    embed = training.embed

    def timed_embed(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return embed(*args, **kwargs)
        finally:
            with RECORD.lock:
                RECORD.probes.append(time.perf_counter() - t0)

    training.embed = timed_embed  # type: ignore[assignment]


# ---------------------------------------------------------------------------------------
# presses of the Train button
# ---------------------------------------------------------------------------------------
def _runner(projection: str) -> Any:
    from dml_kit.widgets import MethodRunner

    return MethodRunner("glyphs", projection=projection, **RUN)


def press(runner: Any) -> dict[str, Any]:
    """Press Train once; the run's figures, each overhead as a share of training time."""
    import torch

    threads_before = torch.get_num_threads()
    RECORD.reset()
    runner.train_button.click()
    if runner.error:
        raise RuntimeError(runner.error)
    dash = runner.dashboard
    dash.wait_for_projection(60)
    s = dash.stats()
    # messages the training (main) thread serialised: part of the hooks' time; a late
    # UMAP frame drawn from the worker thread after training is not training overhead
    rec = RECORD.summary(threading.get_ident())
    train = s["train_seconds"]
    drawing = max(s["draw_seconds"] - rec["serialise_s"], 0.0)
    worker = dash._umap_worker
    layouts = list(worker.seconds) if worker is not None else []
    from dml_kit.viz.projection import warmup_seconds
    return {
        "click_to_first_frame_s": runner.timings["click_to_first_frame"],
        "run_s": runner.timings["seconds"], "train_s": train,
        "frames": s["frames"], "fps": s["fps"], "events_per_s": s["steps_per_second"],
        "drawing_share": drawing / train, "serialise_share": rec["serialise_s"] / train,
        "probe_share": rec["probe_s"] / train,
        "overhead_share": (drawing + rec["serialise_s"] + rec["probe_s"]) / train,
        "drawing_s": drawing, **rec,
        "umap_layouts": float(len(layouts)),
        "umap_layout_s": statistics.median(layouts) if layouts else 0.0,
        "umap_layouts_share": sum(layouts) / train,
        "umap_warmup_s": warmup_seconds()["seconds"] or 0.0,
        "threads_restored": float(torch.get_num_threads() == threads_before),
        "uptime": uptime(),
    }


def cold_child(projection: str, threads: int) -> dict[str, Any]:
    """In a fresh process: import, build the panel, press Train once."""
    set_threads(threads)
    install_recording()
    t0 = time.perf_counter()
    runner = _runner(projection)
    built = time.perf_counter() - t0
    return {"import_and_build_s": built, **press(runner)}


def cold(projection: str, threads: int, cache_dir: str | None = None) -> dict[str, Any]:
    env = dict(os.environ)
    if cache_dir is not None:
        env["DML_KIT_NUMBA_CACHE"] = cache_dir
        env.pop("NUMBA_CACHE_DIR", None)
    out = subprocess.run([sys.executable, __file__, "--cold-child", projection,
                          "--threads", str(threads)], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def warm(projection: str, presses: int) -> dict[str, Any]:
    """Presses Train ``presses + 1`` times in this process (the first press warms up; the
    others are reported), then the same run without a dashboard for the bare time."""
    from dml_kit import data, methods
    from dml_kit.viz.projection import wait_for_umap

    runner = _runner(projection)
    if projection == "umap":
        wait_for_umap()
    runs = [press(runner) for _ in range(presses + 1)][1:]
    task = data.kshot_task(runner.target, runner.n_way.value, runner.k_shot.value,
                           seed=runner.seed.value,
                           n_query=min(10, runner.target.min_class_size - runner.k_shot.value))
    bare_runs = []
    for _ in range(presses):
        t = time.perf_counter()
        methods.run(runner.method.value, task, runner.source, runner.config(),
                    seed=runner.seed.value)
        bare_runs.append(time.perf_counter() - t)
    bare = statistics.median(bare_runs)
    out: dict[str, Any] = {key: statistics.median(r[key] for r in runs)
                           for key in runs[0] if key != "uptime"}
    out["uptime"] = runs[-1]["uptime"]
    out["run_without_dashboard_s"] = bare
    out["slowdown_vs_no_dashboard"] = out["run_s"] / bare - 1.0
    return out


# ---------------------------------------------------------------------------------------
# UMAP frames
# ---------------------------------------------------------------------------------------
def umap_frames(n_points: int = 2000, dim: int = 64, repeats: int = 3) -> dict[str, Any]:
    """Fresh fit vs warm-started frame with the dashboard's Projector settings (one torch
    thread, UMAP_THREADS numba threads); a fresh fit with umap-learn's own kNN for
    reference."""
    import numpy as np

    from dml_kit.viz.live import UMAP_EPOCHS, UMAP_WARM_EPOCHS
    from dml_kit.viz.projection import Projector, exact_knn, wait_for_umap

    set_threads(1)
    wait_for_umap()
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, dim)) * 4
    x = (centres[rng.integers(0, 20, n_points)] + rng.normal(size=(n_points, dim))
         ).astype(np.float32)
    fresh, warm_frames, own, knn = [], [], [], []
    for r in range(repeats):
        proj = Projector("umap", seed=r, n_epochs=UMAP_EPOCHS, warm_epochs=UMAP_WARM_EPOCHS)
        t = time.perf_counter()
        proj.fit_transform(x)
        fresh.append(time.perf_counter() - t)
        moved = x + 0.05 * rng.normal(size=x.shape).astype(np.float32)
        t = time.perf_counter()
        proj.fit_transform(moved)
        warm_frames.append(time.perf_counter() - t)
        t = time.perf_counter()
        exact_knn(moved, 15)
        knn.append(time.perf_counter() - t)
        if r == 0:  # the old path is slow: once
            t = time.perf_counter()
            Projector("umap", seed=r, n_epochs=UMAP_EPOCHS, knn="umap").fit_transform(x)
            own.append(time.perf_counter() - t)
    f, w = statistics.median(fresh), statistics.median(warm_frames)
    return {"points": n_points, "dim": dim, "fresh_fit_s": f, "warm_frame_s": w,
            "warm_over_fresh": w / f, "exact_knn_s": statistics.median(knn),
            "fresh_fit_umap_own_knn_s": own[0], "uptime": uptime()}


_UMAP_START = """
import json, time
from dml_kit.viz import projection as P
P.configure_numba_cache()
t = time.perf_counter(); import umap; P.enable_umap_caching(); imp = time.perf_counter() - t
import numpy as np
x = np.random.default_rng(0).normal(size=(300, 64)).astype(np.float32)
def fit():
    t = time.perf_counter()
    P.Projector("umap", align=False).fit_transform(x)
    return time.perf_counter() - t
f1 = fit()
f2 = fit()
print(json.dumps({"import_s": imp, "first_fit_s": f1, "second_fit_s": f2,
                  "import_plus_first_fit_s": imp + f1}))
"""


def umap_start(cache_dir: str) -> dict[str, Any]:
    """umap-learn start-up in a fresh process with an (empty) numba cache folder."""
    env = dict(os.environ, DML_KIT_NUMBA_CACHE=cache_dir)
    env.pop("NUMBA_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", _UMAP_START], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True)
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "uptime": uptime()}


# ---------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------
def _load(line: str) -> str:
    return line.split("load average:")[-1].strip() if "load average" in line else line


def table(report: dict[str, Any]) -> str:
    """The figures, one per row, each with the load average measured right after it."""
    rows: list[tuple[str, str, str]] = []

    def run_rows(name: str, r: dict[str, Any] | None) -> None:
        if not r:
            return
        load = _load(r["uptime"])
        rows.extend([
            (f"{name}: first frame", f"{r['click_to_first_frame_s']:.2f} s", load),
            (f"{name}: frames/s", f"{r['fps']:.2f} ({r['frames']:.0f} frames, "
             f"{r['train_s']:.1f} s training, {r['events_per_s']:.1f} events/s)", load),
            (f"{name}: drawing", f"{100 * r['drawing_share']:.1f} %", load),
            (f"{name}: serialisation", f"{100 * r['serialise_share']:.1f} % "
             f"({r['messages']:.0f} msgs, {r['message_bytes'] / 1e6:.2f} MB)", load),
            (f"{name}: probe forward", f"{100 * r['probe_share']:.1f} % "
             f"({r['probe_passes']:.0f} passes)", load),
            (f"{name}: total overhead", f"{100 * r['overhead_share']:.1f} %", load),
        ])
        if r.get("umap_layouts"):
            rows.append((f"{name}: UMAP layouts (own thread)", f"{r['umap_layouts']:.0f}, "
                         f"median {r['umap_layout_s']:.2f} s, sum "
                         f"{100 * r['umap_layouts_share']:.1f} % of training", load))
        if r.get("umap_warmup_s") and name.startswith("UMAP cold"):
            rows.append((f"{name}: UMAP warm-up (own thread)",
                         f"{r['umap_warmup_s']:.1f} s", load))
        if "run_without_dashboard_s" in r:
            rows.append((f"{name}: run vs no dashboard", f"{r['run_s']:.1f} s vs "
                         f"{r['run_without_dashboard_s']:.1f} s "
                         f"({100 * r['slowdown_vs_no_dashboard']:+.0f} %)", load))
        rows.append((f"{name}: threads restored", "yes" if r["threads_restored"] else "NO",
                     load))

    run_rows("PCA cold kernel", report.get("cold_pca"))
    run_rows("PCA warm", report.get("warm_pca"))
    run_rows("UMAP cold kernel", report.get("cold_umap"))
    run_rows("UMAP warm", report.get("warm_umap"))
    u = report.get("umap_frames")
    if u:
        load = _load(u["uptime"])
        rows.extend([
            (f"UMAP {u['points']} pts: fresh fit", f"{u['fresh_fit_s']:.2f} s", load),
            (f"UMAP {u['points']} pts: warm frame", f"{u['warm_frame_s']:.2f} s "
             f"({100 * u['warm_over_fresh']:.0f} % of fresh)", load),
            (f"UMAP {u['points']} pts: exact kNN", f"{u['exact_knn_s']:.3f} s", load),
            (f"UMAP {u['points']} pts: fresh, umap's kNN",
             f"{u['fresh_fit_umap_own_knn_s']:.2f} s", load)])
    c = report.get("umap_cold_start")
    if c:
        rows.append(("umap import + first fit, empty cache",
                     f"{c['import_plus_first_fit_s']:.1f} s", _load(c["uptime"])))
    width = max(len(r[0]) for r in rows)
    value_width = max(len(r[1]) for r in rows)
    lines = [f"{'figure':<{width}}  {'value':<{value_width}}  load average (1, 5, 15 min)"]
    lines += [f"{a:<{width}}  {b:<{value_width}}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def goals(report: dict[str, Any]) -> str:
    """Each goal of issue 16: the measured figure and met / not met."""
    checks: list[tuple[str, float | None, float, bool]] = []

    def add(name: str, value: float | None, goal: float, at_most: bool = True) -> None:
        if value is not None:
            checks.append((name, value, goal, value <= goal if at_most else value >= goal))

    warm_pca, cold_pca = report.get("warm_pca") or {}, report.get("cold_pca") or {}
    add("first frame, warm (s) <= 2", warm_pca.get("click_to_first_frame_s"),
        GOALS["first_frame_warm_s"])
    add("first frame, cold kernel (s) <= 10", cold_pca.get("click_to_first_frame_s"),
        GOALS["first_frame_cold_s"])
    for key in ("warm_pca", "cold_umap", "warm_umap"):
        r = report.get(key)
        if r:
            add(f"frames/s >= 2 ({key})", r["fps"], GOALS["fps"], at_most=False)
            add(f"total overhead share <= 0.15 ({key})", r["overhead_share"],
                GOALS["overhead_share"])
    u = report.get("umap_frames")
    if u:
        add("warm UMAP frame / fresh fit at 2,000 points <= 0.30", u["warm_over_fresh"],
            GOALS["umap_warm_over_fresh"])
    return "\n".join(f"{'met    ' if ok else 'NOT met'}  {name}: {value:.3g}"
                     for name, value, goal, ok in checks)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--cold-child", choices=("pca", "umap"), help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch threads for training (default: one per core)")
    parser.add_argument("--presses", type=int, default=2,
                        help="warm presses per projection (after one warm-up press)")
    parser.add_argument("--umap-cold", action="store_true",
                        help="also time umap-learn with an empty numba cache (slow)")
    parser.add_argument("--skip-umap", action="store_true", help="PCA only")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args(argv)
    if args.cold_child:
        print(json.dumps(cold_child(args.cold_child, args.threads)))
        return {}
    from dml_kit.viz.live import live_torch_threads
    from dml_kit.viz.projection import UMAP_THREADS

    threads = {"training_torch_threads": args.threads,
               "training_torch_threads_while_umap_works": live_torch_threads(args.threads),
               "umap_numba_threads": UMAP_THREADS, "umap_benchmark_torch_threads": 1}
    print(f"threads: {threads}", file=sys.stderr)
    print(f"start: {uptime()}", file=sys.stderr)
    report: dict[str, Any] = {"cpus": os.cpu_count(), "threads": threads,
                              "uptime_start": uptime()}
    from dml_kit.widgets import load_cached

    load_cached("glyphs")  # the glyphs cache the children read
    steps: list[tuple[str, Any]] = [("cold_pca", lambda: cold("pca", args.threads))]
    if not args.skip_umap:
        steps.append(("cold_umap", lambda: cold("umap", args.threads)))
    install_recording()
    set_threads(args.threads)
    steps.append(("warm_pca", lambda: warm("pca", args.presses)))
    if not args.skip_umap:
        steps.append(("warm_umap", lambda: warm("umap", args.presses)))
        steps.append(("umap_frames", umap_frames))
        if args.umap_cold:
            def empty_cache() -> dict[str, Any]:
                with tempfile.TemporaryDirectory() as empty:
                    return umap_start(empty)
            steps.append(("umap_cold_start", empty_cache))
    for name, step in steps:
        report[name] = step()
        print(f"[{name}] done; {uptime()}", file=sys.stderr, flush=True)
        if name.startswith("warm"):
            set_threads(args.threads)
    report["uptime_end"] = uptime()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=float))
    print(f"threads: {threads}")
    print(table(report))
    print("\ngoals (issue 16; meaningful on a quiet machine only):")
    print(goals(report))
    print(f"\nstart: {report['uptime_start']}\nend:   {report['uptime_end']}")
    return report


if __name__ == "__main__":
    main()
