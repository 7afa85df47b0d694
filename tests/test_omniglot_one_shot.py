"""Omniglot's official 20-way 1-shot runs score a protonet trained on the background set
(real files from ../shared/data/omniglot; skipped when they are absent), and a stored
result is read back and shown."""

import json
from pathlib import Path

import pytest

from dml_kit.experiments import one_shot

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "omniglot"
NEEDED = ("omniglot_images_background.npz", "omniglot_alphabets.csv", "all_runs.zip")


@pytest.mark.timeout(600)
def test_protonet_beats_pixels_on_the_official_one_shot_runs(tmp_path):
    missing = [f for f in NEEDED if not (SHARED / f).exists()]
    if missing:
        pytest.skip(f"real Omniglot files absent from {SHARED}: {', '.join(missing)}")
    out = one_shot.one_shot_error(SHARED, episodes=90, way=20, rotations=False, threads=1,
                                  episodes_per_epoch=30)
    assert out["classes"] == 964 and out["alphabets"] == 30 and out["episodes"] == 90
    assert out["pixel_1nn_error"] == pytest.approx(0.79, abs=0.01)  # 316 of 400 wrong
    # a protonet trained for ~20 s already cuts the error of raw pixels by more than half
    assert out["protonet_error"] < 0.4
    saved = one_shot.save_result(out, tmp_path / "r.json")
    assert one_shot.stored_result(saved) == json.loads(json.dumps(out))


def test_a_stored_result_is_described_and_drawn(tmp_path):
    result = {"classes": 3856, "alphabets": 30, "rotations": True, "way": 60,
              "episodes": 1000, "threads": 2, "pixel_1nn_error": 0.79,
              "protonet_error": 0.085, "train_seconds": 540.0, "load_before": [0.1, 0.2, 0.3]}
    text = one_shot.describe(result)
    assert "3856 classes (with rotations)" in text and "1000 in 540 s on 2 threads" in text
    assert "this protonet          8.5 [6.1, 11.6]%" in text  # Wilson, 34 of 400
    assert "people                 4.5%" in text
    figure = one_shot.comparison_figure(result)
    bars = figure.data[0]
    assert list(bars.y) == pytest.approx([79.0, 38.8, 8.5, 4.5])
    # values and the measured intervals under the names, none on the bars (where they sat
    # on the error bars); the kit's template, not plotly's grey default
    assert bars.text is None
    assert bars.x[2] == "prototypical network<br>8.5% [6.1, 11.6]"
    assert bars.x[3] == "people (Lake)<br>4.5% (published)"
    assert figure.layout.template.layout.plot_bgcolor == "white"
    assert one_shot.stored_result(tmp_path / "absent.json") is None


def test_a_bad_stored_result_names_its_file(tmp_path):
    bad = tmp_path / "r.json"
    bad.write_text("<html>not json</html>")
    with pytest.raises(ValueError, match=r"r\.json is not a one-shot result"):
        one_shot.stored_result(bad)
    bad.write_text(json.dumps({"protonet_error": 0.1}))
    with pytest.raises(ValueError, match="lacks"):
        one_shot.stored_result(bad)
    with pytest.raises(ValueError, match="episodes"):
        one_shot.one_shot_error(SHARED, episodes=0)
