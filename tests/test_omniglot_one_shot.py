"""Omniglot's official 20-way 1-shot runs score a protonet trained on the background set
(real files from ../shared/data/omniglot; skipped when they are absent)."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "omniglot"
NEEDED = ("omniglot_images_background.npz", "omniglot_alphabets.csv", "all_runs.zip")


@pytest.mark.timeout(600)
def test_protonet_beats_pixels_on_the_official_one_shot_runs():
    missing = [f for f in NEEDED if not (SHARED / f).exists()]
    if missing:
        pytest.skip(f"real Omniglot files absent from {SHARED}: {', '.join(missing)}")
    spec = importlib.util.spec_from_file_location("bench", ROOT / "benchmarks/omniglot_one_shot.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = bench.one_shot_error(SHARED, epochs=2, episodes=30)
    assert out["classes"] == 964 and out["alphabets"] == 30
    assert out["pixel_1nn_error"] == pytest.approx(0.79, abs=0.01)  # 316 of 400 wrong
    # a protonet trained for ~20 s already cuts the error of raw pixels by more than half
    assert out["protonet_error"] < 0.4
