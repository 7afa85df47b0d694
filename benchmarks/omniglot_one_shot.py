"""Omniglot's official one-shot task (Lake et al.): a protonet trained on the background
alphabets, scored on the 20 runs of 20-way 1-shot classification.

Uses the real files in ../shared/data/omniglot (or a folder given with --path). Run:

    .venv/bin/python benchmarks/omniglot_one_shot.py [--epochs 10] [--path DIR]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from dml_kit import metrics
from dml_kit.data import real
from dml_kit.methods import MethodConfig, train_source

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "omniglot"


def one_shot_error(path: Path, epochs: int, episodes: int, seed: int = 0) -> dict[str, float]:
    """Train a 20-way 1-shot protonet on the background set, return the official error."""
    torch.set_num_threads(2)
    background = real.omniglot("background", path=path)
    runs = real.omniglot_one_shot_runs(path=path)
    raw = real.evaluate_one_shot_runs(lambda x: x.flatten(1), runs)
    config = MethodConfig(channels=64, embedding_dim=64, source_epochs=epochs,
                          source_patience=epochs, episodes_per_epoch=episodes,
                          query_per_class=5, source_lr=1e-3, val_classes=50)
    start = time.perf_counter()
    source = train_source("protonet", background, config, n_way=20, k_shot=1, seed=seed)
    seconds = time.perf_counter() - start
    error = real.evaluate_one_shot_runs(lambda x: metrics.embed(source.model, x), runs)
    return {"classes": background.n_classes, "alphabets": len(background.groups),
            "pixel_1nn_error": raw, "protonet_error": error, "train_seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=SHARED)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--episodes", type=int, default=100)
    args = parser.parse_args()
    out = one_shot_error(args.path, args.epochs, args.episodes)
    print(f"background: {out['classes']} characters in {out['alphabets']} alphabets")
    print(f"20-way 1-shot error over the 20 official runs: raw-pixel 1-NN "
          f"{out['pixel_1nn_error']:.1%}, protonet {out['protonet_error']:.1%} "
          f"(trained {out['train_seconds']:.0f} s; people: 4.5%, Lake et al.)")


if __name__ == "__main__":
    main()
