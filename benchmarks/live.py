"""Live-view benchmark: how fast the dashboard answers and what drawing costs.

Measures, on ``glyphs`` with :class:`dml_kit.widgets.MethodRunner` (the Train button
pressed through its click handler, exactly as in a notebook):

* **first frame**: seconds from pressing Train to the first live frame; *cold* in a fresh
  Python process (imports, widget construction, then the press; goal < 10 s), *warm* on
  a second press in the same process (goal < 2 s);
* **fps**: frames drawn per second of training (goal >= 2);
* **drawing share**: time spent in the dashboard's callback hooks / training time (goal
  < 10 %), and the slowdown of the same run against a run without the dashboard;
* **UMAP**: our :class:`~dml_kit.viz.projection.Projector` against calling umap-learn
  directly with the same parameters (ratio), and umap-learn's cold (empty numba cache)
  and warm (cache on disk) start-up: import plus first fit, each in a fresh process.

Usage::

    python benchmarks/live.py                 # everything but the cold UMAP compile
    python benchmarks/live.py --umap-cold     # also the cold compile (minutes on 2 cores)
    python benchmarks/live.py --json out.json

Timings depend on the machine's load; the script prints the load average next to them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RUN = dict(method="adapted_metric", loss="histogram", n_way=5, k_shot=5, epochs=3,
           adapt_epochs=10, batches_per_epoch=20, source_classes=60, fps=4.0)


def _runner(projection: str = "pca") -> Any:
    from dml_kit.widgets import MethodRunner

    return MethodRunner("glyphs", projection=projection, **RUN)


def cold_child() -> dict[str, float]:
    """Runs in a fresh process: import, build the widget, press Train once."""
    t0 = time.perf_counter()
    runner = _runner()
    t_built = time.perf_counter()
    runner.train_button.click()
    if runner.error:
        raise RuntimeError(runner.error)
    return {"import_and_build_s": t_built - t0,
            "click_to_first_frame_s": runner.timings["click_to_first_frame"],
            "run_s": runner.timings["seconds"]}


def warm(repeats: int = 2, projection: str = "pca") -> dict[str, Any]:
    """Presses Train ``repeats + 1`` times in this process (the first press is the cold
    one), then runs the same configuration without a dashboard for the baseline time."""
    from dml_kit import data, methods

    runner = _runner(projection)
    presses = []
    for _ in range(repeats + 1):
        runner.train_button.click()
        if runner.error:
            raise RuntimeError(runner.error)
        s = runner.dashboard.stats()
        presses.append({"click_to_first_frame_s": runner.timings["click_to_first_frame"],
                        "run_s": runner.timings["seconds"], **s})
    # the same run without any callback: what the dashboard costs in wall-clock time
    task = data.kshot_task(runner.target, runner.n_way.value, runner.k_shot.value,
                           seed=runner.seed.value,
                           n_query=min(10, runner.target.min_class_size - runner.k_shot.value))
    bare = []
    for _ in range(repeats):
        t = time.perf_counter()
        methods.run(runner.method.value, task, runner.source, runner.config(),
                    seed=runner.seed.value)
        bare.append(time.perf_counter() - t)
    warm_presses = presses[1:]
    with_dash = statistics.median(p["run_s"] for p in warm_presses)
    return {
        "projection": projection,
        "presses": presses,
        "warm_click_to_first_frame_s": statistics.median(
            p["click_to_first_frame_s"] for p in warm_presses),
        "fps": statistics.median(p["fps"] for p in warm_presses),
        "draw_share": statistics.median(p["draw_share"] for p in warm_presses),
        "mean_frame_ms": statistics.median(p["mean_frame_ms"] for p in warm_presses),
        "run_with_dashboard_s": with_dash,
        "run_without_dashboard_s": statistics.median(bare),
        "slowdown": with_dash / statistics.median(bare) - 1.0,
    }


def umap_ratio(n_points: int = 300, dim: int = 64, repeats: int = 3) -> dict[str, float]:
    """Projector('umap') vs umap.UMAP(...).fit_transform with the same parameters."""
    import warnings

    import numpy as np

    from dml_kit.viz.projection import Projector, wait_for_umap

    wait_for_umap()
    import umap

    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, dim)) * 4
    x = (centres[rng.integers(0, 10, n_points)] + rng.normal(size=(n_points, dim))).astype(
        np.float32)
    ours, direct, warm_start = [], [], []
    for r in range(repeats):
        proj = Projector("umap", seed=r, align=False, n_epochs=200)
        t = time.perf_counter()
        proj.fit_transform(x)
        ours.append(time.perf_counter() - t)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t = time.perf_counter()
            umap.UMAP(n_components=2, n_neighbors=15, min_dist=0.1, n_epochs=200,
                      random_state=r, n_jobs=1, low_memory=True).fit_transform(x)
            direct.append(time.perf_counter() - t)
        aligned = Projector("umap", seed=r, n_epochs=200, warm_epochs=60)
        aligned.fit_transform(x)
        t = time.perf_counter()
        aligned.fit_transform(x + 0.01 * rng.normal(size=x.shape).astype(np.float32))
        warm_start.append(time.perf_counter() - t)
    return {"points": n_points, "dim": dim,
            "ours_s": statistics.median(ours), "direct_s": statistics.median(direct),
            "ratio": statistics.median(ours) / statistics.median(direct),
            "warm_started_aligned_frame_s": statistics.median(warm_start)}


_UMAP_START = """
import json, time
t0 = time.perf_counter()
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


def umap_start(cache_dir: str | None) -> dict[str, float]:
    """umap-learn start-up in a fresh process with the given numba cache folder."""
    env = dict(os.environ)
    if cache_dir is not None:
        env["DML_KIT_NUMBA_CACHE"] = cache_dir
        env.pop("NUMBA_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", _UMAP_START], cwd=ROOT, env=env,
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _progress(what: str, values: dict[str, Any]) -> None:
    shown = {k: round(v, 3) for k, v in values.items() if isinstance(v, float)}
    print(f"[{what}] {shown}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cold-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--umap-cold", action="store_true",
                        help="also time umap-learn with an empty numba cache (slow)")
    parser.add_argument("--skip-umap", action="store_true", help="skip the UMAP timings")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args(argv)
    if args.cold_child:
        print(json.dumps(cold_child()))
        return {}
    report: dict[str, Any] = {"load_average": os.getloadavg(), "cpus": os.cpu_count()}
    # the same glyphs cache as the parent (built on first use), then a fresh process
    from dml_kit.widgets import load_cached

    load_cached("glyphs")
    out = subprocess.run([sys.executable, __file__, "--cold-child"], cwd=ROOT,
                         capture_output=True, text=True, check=True)
    report["cold_kernel"] = json.loads(out.stdout.strip().splitlines()[-1])
    _progress("cold kernel", report["cold_kernel"])
    report["warm_pca"] = warm(args.repeats, "pca")
    _progress("warm, PCA", report["warm_pca"])
    if not args.skip_umap:
        report["umap_warm_start"] = umap_start(None)
        _progress("umap start, cache on disk", report["umap_warm_start"])
        if args.umap_cold:
            with tempfile.TemporaryDirectory() as empty:
                report["umap_cold_start"] = umap_start(empty)
            _progress("umap start, empty cache", report["umap_cold_start"])
        report["umap_ratio"] = umap_ratio()
        _progress("umap ratio", report["umap_ratio"])
        report["warm_umap"] = warm(1, "umap")
        _progress("warm, UMAP", report["warm_umap"])
    report["load_average_after"] = os.getloadavg()
    text = json.dumps(report, indent=2, default=float)
    print(text)
    if args.json:
        args.json.write_text(text)
    summary = report["warm_pca"]
    print(f"\nfirst frame: cold kernel {report['cold_kernel']['click_to_first_frame_s']:.2f} s, "
          f"warm {summary['warm_click_to_first_frame_s']:.2f} s; "
          f"{summary['fps']:.1f} fps; drawing {100 * summary['draw_share']:.1f}% of training "
          f"(slowdown vs no dashboard {100 * summary['slowdown']:+.1f}%)", file=sys.stderr)
    return report


if __name__ == "__main__":
    main()
