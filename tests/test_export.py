"""Exports: report tables to CSV / Markdown / LaTeX, figures to HTML / JSON (static images
need kaleido: refused with a clear error when it is absent)."""

from __future__ import annotations

import importlib.util
import json

import pandas as pd
import plotly.graph_objects as go
import pytest

from dml_kit import viz
from dml_kit.experiments import export, report


def _frame() -> pd.DataFrame:
    """Two conditions, six methods, three replications each, known means."""
    acc = {(1, 5): {"scratch": 0.3, "weight_transfer": 0.4, "metric": 0.7, "protonet": 0.6,
                    "adapted_metric": 0.7, "adapted_protonet": 0.6},
           (5, 5): {"scratch": 0.5, "weight_transfer": 0.6, "metric": 0.8, "protonet": 0.82,
                    "adapted_metric": 0.9, "adapted_protonet": 0.85}}
    noise = {0: -0.01, 1: 0.0, 2: 0.01}
    return pd.DataFrame([{"dataset": "glyphs_x", "method": m, "k": k, "n": n, "seed": s,
                          "accuracy": a + noise[s], "config_hash": f"{m}{k}{n}{s}",
                          "preset": "classroom", "created": 0.0}
                         for (k, n), d in acc.items() for m, a in d.items() for s in noise])


@pytest.fixture(scope="module")
def rep():
    return report(_frame())


def test_csv_round_trips_every_number(rep, tmp_path):
    written = rep.save(tmp_path / "ade.csv")
    assert [p.name for p in written] == ["ade.csv", "ade_claims.csv"]
    rows = pd.read_csv(written[0])
    assert len(rows) == 12 and set(rows["method"]) == set(rep.accuracy.columns)
    cell = rows[(rows["k"] == 5) & (rows["method"] == "adapted_metric")].iloc[0]
    assert cell["mean"] == pytest.approx(0.9) and cell["replications"] == 3
    assert cell["low"] == pytest.approx(rep.low.loc[(5, 5), "adapted_metric"])
    assert bool(cell["winner"]) and rows.groupby(["k", "n"])["winner"].sum().eq(1).all()
    claims = pd.read_csv(written[1])
    assert set(claims["conclusion"]) == {1, 2}
    c1 = claims[claims["comparison"] == "metric - weight_transfer"].iloc[0]
    assert c1["mean"] == pytest.approx(0.25) and c1["verdict"] == "holds"


def test_markdown_table_bolds_the_winner_and_states_each_verdict(rep, tmp_path):
    text = rep.to_markdown()
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| k | n |"))
    assert header.count("|") == 9                       # k, n and six methods
    row = next(line for line in lines if line.startswith("| 5 | 5 |"))
    assert "**90.0 [" in row and row.count("**") == 2   # only the winner is bold
    assert "**Conclusion 1** (holds)" in text
    assert "metric - weight_transfer: +25.0 [" in text
    assert rep.save(tmp_path / "ade.md")[0].read_text() == text


def test_latex_escapes_names_and_balances_braces(rep, tmp_path):
    text = rep.to_latex()
    assert r"weight\_transfer" in text and r"glyphs\_x" in text
    assert r"\textbf{90.0 [" in text and "%" not in text.replace(r"\%", "")
    assert text.count("{") == text.count("}")
    assert text.count(r"\begin{") == text.count(r"\end{")
    assert export.latex_escape("a_b & 5% #1") == r"a\_b \& 5\% \#1"
    assert rep.save(tmp_path / "t.txt", format="latex")[0].read_text() == text


def test_export_refuses_unknown_formats_by_name(rep, tmp_path):
    with pytest.raises(ValueError, match=r"cannot tell the format from the suffix '\.xlsx'"):
        rep.save(tmp_path / "a.xlsx")
    with pytest.raises(ValueError, match="unknown format 'word'"):
        rep.save(tmp_path / "a.md", format="word")
    with pytest.raises(ValueError, match="is a folder"):
        rep.save(tmp_path, format="csv")
    assert not list(tmp_path.glob("*.part*"))


def test_save_figure_html_and_json(tmp_path):
    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4], name="norms"))
    html = viz.save_figure(fig, tmp_path / "f.html").read_text()
    assert "<html>" in html and "plotly" in html.lower() and '"norms"' in html
    data = json.loads(viz.save_figure(fig, tmp_path / "f.json").read_text())
    assert data["data"][0]["y"] == [3, 4]
    with pytest.raises(ValueError, match=r"unknown figure format '\.bmp'"):
        viz.save_figure(fig, tmp_path / "f.bmp")
    with pytest.raises(ValueError, match="figure must be a plotly figure"):
        viz.save_figure([1, 2], tmp_path / "f.html")


@pytest.mark.skipif(importlib.util.find_spec("kaleido") is not None,
                    reason="kaleido is installed: static export works")
def test_static_images_without_kaleido_say_what_to_do(tmp_path):
    with pytest.raises(ValueError, match="needs the optional package 'kaleido'.*modebar"):
        viz.save_figure(go.Figure(), tmp_path / "f.png")
    assert not (tmp_path / "f.png").exists()


def test_exported_accuracy_cells_stop_at_the_metric_range():
    """The capstone's 0.631 [-0.657, 1.918] (two seeds) exports as 63.1 [0.0, 100.0]."""
    from dml_kit.experiments.export import _cell

    assert _cell(0.631, -0.657, 1.918) == "63.1 [0.0, 100.0]"
    assert _cell(0.5, 0.4, 0.6) == "50.0 [40.0, 60.0]"
