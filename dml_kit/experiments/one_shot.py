"""Omniglot's official one-shot task (Lake, Salakhutdinov & Tenenbaum, Science 2015) as
the kit's real-data yardstick: a prototypical network (Snell et al. 2017) trained on the
background alphabets, scored on the 20 official runs of 20-way 1-shot classification.

Each run holds one training image of each of 20 characters of one evaluation alphabet
and 20 test images; a test image takes the class of its nearest training image in
embedding space (squared Euclidean; with one shot the prototype is that image), and the
error is the share of the 400 test images classified wrongly. Baselines on the same
runs: raw-pixel 1-NN (computed here), Lake et al.'s modified Hausdorff distance on the
strokes (38.8%) and people (4.5%).

:func:`one_shot_error` trains and scores (``benchmarks/omniglot_one_shot.py`` is its
command line and writes :data:`RESULT_FILE`); :func:`stored_result`, :func:`describe`
and :func:`comparison_figure` show a stored result (notebook 04).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import torch

from dml_kit import metrics, stats
from dml_kit._validation import check_int
from dml_kit.data import paths, real
from dml_kit.methods import MethodConfig, train_source
from dml_kit.viz.figures import TEMPLATE, palette

#: the stored result in the data folder (``$DML_KIT_DATA`` or the checkout's ``data/``)
RESULT_FILE = "omniglot_one_shot.json"
#: published error rates on the 20 runs (Lake et al. 2015)
PEOPLE_ERROR = 0.045
HAUSDORFF_ERROR = 0.388
#: classes per training episode (Snell et al. train Omniglot with 60-way episodes)
TRAIN_WAY = 60
#: the command that produces the stored result
COMMAND = ".venv/bin/python benchmarks/omniglot_one_shot.py --path ../shared/data/omniglot"


def one_shot_error(path: str | os.PathLike[str] | None = None, episodes: int = 1600, *,
                   way: int = TRAIN_WAY, rotations: bool = True, threads: int = 2,
                   seed: int = 0, episodes_per_epoch: int = 100,
                   download: bool = False) -> dict[str, Any]:
    """Train a ``way``-way 1-shot protonet (Conv-4, 64 filters, 5 queries per class, Adam
    at 1e-3) for ``episodes`` episodes on Omniglot's background set (``rotations``: the
    964 characters and their 90/180/270-degree rotations, 3,856 classes) with ``threads``
    torch threads; return its error on the 20 official runs beside the baselines'. Two
    drawings of each class are held out; the weights kept are those of the epoch (100
    episodes) with the best prototype accuracy on the held-out drawings of 400 classes.

    ``path``: a folder holding the official files (e.g. ``../shared/data/omniglot``);
    ``None`` reads the cache (``download=True`` fetches it)."""
    episodes = check_int("episodes", episodes, 1)
    threads = check_int("threads", threads, 1, 256)
    check_int("way", way, 2, 3_856)
    files: dict[str, Any] = ({"path": path} if path is not None else {"download": download})
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        background = real.omniglot("background", rotations=rotations, **files)
        runs = real.omniglot_one_shot_runs(**files)
        pixels = real.evaluate_one_shot_runs(lambda x: x.flatten(1), runs)
        per_epoch = min(check_int("episodes_per_epoch", episodes_per_epoch, 1), episodes)
        epochs = -(-episodes // per_epoch)
        config = MethodConfig(channels=64, embedding_dim=64, source_epochs=epochs,
                              source_patience=epochs, episodes_per_epoch=per_epoch,
                              query_per_class=5, source_lr=1e-3, val_fraction=0.1,
                              val_classes=min(400, background.n_classes))
        start = time.perf_counter()
        source = train_source("protonet", background, config, n_way=way, k_shot=1,
                              seed=seed)
        seconds = time.perf_counter() - start
        error = real.evaluate_one_shot_runs(lambda x: metrics.embed(source.model, x), runs)
    finally:
        torch.set_num_threads(previous)
    queries = sum(len(run.test_y) for run in runs)
    return {"classes": background.n_classes, "alphabets": len(background.groups),
            "queries": queries,
            "rotations": rotations, "way": way, "episodes": epochs * per_epoch,
            "threads": threads, "seed": seed, "pixel_1nn_error": pixels,
            "protonet_error": error, "hausdorff_error": HAUSDORFF_ERROR,
            "people_error": PEOPLE_ERROR, "train_seconds": seconds}


def save_result(result: dict[str, Any], path: str | os.PathLike[str] | None = None) -> Path:
    """Write ``result`` as JSON (atomically) to ``path`` (default: :data:`RESULT_FILE` in
    the data folder); return the path."""
    target = Path(path) if path is not None else paths.cache_file(RESULT_FILE)
    with paths.atomic_write(target) as handle:
        handle.write(json.dumps(result, indent=1).encode())
    return target


def stored_result(path: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """The stored result (:func:`save_result`), or ``None`` when there is none; a file that
    is not such a result raises ``ValueError`` naming it."""
    target = Path(path) if path is not None else paths.cache_file(RESULT_FILE)
    if not target.is_file():
        return None
    try:
        result = json.loads(target.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{target} is not a one-shot result ({err}); delete it and run "
                         f"{COMMAND}") from None
    needed = {"protonet_error", "pixel_1nn_error", "episodes", "train_seconds"}
    if not isinstance(result, dict) or not needed <= set(result):
        raise ValueError(f"{target} lacks {sorted(needed)}; delete it and run {COMMAND}")
    return result


def error_interval(result: dict[str, Any], key: str = "protonet_error") -> stats.Estimate:
    """The error rate ``result[key]`` over the result's test images (400: 20 runs of 20)
    with its 95% Wilson interval (:func:`dml_kit.stats.proportion_ci`): one trained
    network, scored on 400 images, is one draw of the test set, not of the training."""
    queries = int(result.get("queries", 400))
    return stats.proportion_ci(round(result[key] * queries), queries)


def describe(result: dict[str, Any]) -> str:
    """The result as text: training (classes, episodes, seconds, threads, load) and the
    error of each approach on the 20 runs, with 95% intervals over the test images."""
    rotated = " (with rotations)" if result.get("rotations") else ""
    load = result.get("load_before")
    ours, pixels = error_interval(result), error_interval(result, "pixel_1nn_error")
    return "\n".join([
        f"background: {result.get('classes')} classes{rotated} in "
        f"{result.get('alphabets')} alphabets; {result.get('way')}-way 1-shot episodes: "
        f"{result['episodes']} in {result['train_seconds']:.0f} s on "
        f"{result.get('threads')} threads" + (f" (load average before: {load})" if load
                                              else ""),
        f"20-way 1-shot error over the 20 official runs ({ours.n} test images; 95% "
        f"intervals over them):",
        f"  raw-pixel 1-NN         {pixels.format(percent=True)}%",
        f"  modified Hausdorff     {100 * HAUSDORFF_ERROR:.1f}%  (Lake et al. 2015)",
        f"  this protonet          {ours.format(percent=True)}%",
        f"  people                 {100 * PEOPLE_ERROR:.1f}%  (Lake et al. 2015)",
    ])


def comparison_figure(result: dict[str, Any]) -> go.Figure:
    """Bar chart of the error of raw pixels, Lake's Hausdorff baseline, the protonet and
    people on the 20 runs (lower is better), in the kit's style. Each bar's value (with
    the 95% Wilson interval over the test images where the run measured it) is written
    under its name on the axis, so no label sits on an error bar."""
    names = ["raw-pixel 1-NN", "modified Hausdorff (Lake)", "prototypical network",
             "people (Lake)"]
    errors = [result["pixel_1nn_error"], HAUSDORFF_ERROR, result["protonet_error"],
              PEOPLE_ERROR]
    kit = palette(3)
    colors = ["#9aa5b1", "#9aa5b1", kit[0], kit[2]]
    ours, pixels = error_interval(result), error_interval(result, "pixel_1nn_error")
    measured = {0: pixels, 2: ours}
    labels = [f"{name}<br>{100 * e:.1f}%" + (
        f" [{100 * measured[i].low:.1f}, {100 * measured[i].high:.1f}]" if i in measured
        else " (published)") for i, (name, e) in enumerate(zip(names, errors, strict=True))]
    plus = [pixels.high - pixels.mean, 0.0, ours.high - ours.mean, 0.0]
    minus = [pixels.mean - pixels.low, 0.0, ours.mean - ours.low, 0.0]
    fig = go.Figure(go.Bar(x=labels, y=[100 * e for e in errors], marker_color=colors,
                           hovertemplate="%{x}<extra></extra>",
                           error_y={"type": "data", "symmetric": False,
                                    "array": [100 * v for v in plus],
                                    "arrayminus": [100 * v for v in minus]}))
    fig.update_layout(template=TEMPLATE,
                      title="Omniglot one-shot: error on the 20 official runs (lower is "
                            "better)", yaxis_title="error (%)", height=380,
                      yaxis_range=[0, 100 * max(max(errors), pixels.high) * 1.1])
    return fig
