"""Omniglot's official one-shot task (Lake et al. 2015) as the kit's real-data yardstick:
a prototypical network trained on the CPU on the background alphabets with their
rotations, scored on the 20 official runs of 20-way 1-shot classification, beside raw
pixels, Lake's modified-Hausdorff baseline and people (:mod:`dml_kit.experiments.one_shot`).

Uses the real files in ../shared/data/omniglot (or a folder given with --path). Run::

    .venv/bin/python benchmarks/omniglot_one_shot.py                 # ~4 min on 2 cores
    .venv/bin/python benchmarks/omniglot_one_shot.py --episodes 200  # a quick look

The result goes to ``data/omniglot_one_shot.json`` (``--out``), which notebook 04 shows.
Not a test: the time depends on the machine and its load (the load average is printed and
stored beside it).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from dml_kit.experiments import one_shot

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "omniglot"


def _load_average() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:  # pragma: no cover - not on every platform
        return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", type=Path, default=SHARED)
    parser.add_argument("--episodes", type=int, default=1600)
    parser.add_argument("--way", type=int, default=one_shot.TRAIN_WAY)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-rotations", action="store_true")
    parser.add_argument("--out", type=Path, default=None,
                        help="result file (default: data/omniglot_one_shot.json)")
    args = parser.parse_args()
    before = _load_average()
    out = one_shot.one_shot_error(args.path, args.episodes, way=args.way,
                                  threads=args.threads, rotations=not args.no_rotations)
    out["load_before"], out["load_after"] = before, _load_average()
    print(one_shot.describe(out))
    print(f"load average after: {out['load_after']}")
    print(f"written to {one_shot.save_result(out, args.out)}")


if __name__ == "__main__":
    main()
