"""Every notebook runs top to bottom under the fast setting (DML_KIT_FAST=1).

Each notebook ends with cells that drive its widgets by setting ``.value`` and assert on
what updates, and that check its numbers make sense; a failing assertion fails here.
"""

import io
import json
import os
import re
import time
import tokenize
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "notebooks/ holds no numbered notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_matches_its_source(path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("nb_build", ROOT / "notebooks/src/build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    source = ROOT / "notebooks" / "src" / (path.stem + ".py")
    assert source.exists(), f"{path.name} has no source {source.name}: edit sources, then build"
    want = [(c.cell_type, c.source) for c in build.build(source).cells]
    got = [(c.cell_type, c.source) for c in nbformat.read(path, as_version=4).cells]
    assert got == want, (f"{path.name} differs from notebooks/src/{source.name}: "
                         "run .venv/bin/python notebooks/src/build.py")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_committed_without_outputs(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs") and cell.get("execution_count") is None, (
                f"{path.name} carries outputs: strip them before committing")


MAX_CELL_LINES = 15


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_code_cells_are_short(path):
    """Notebooks hold the story; machinery longer than a screenful belongs in dml_kit."""
    nb = nbformat.read(path, as_version=4)
    long = [(i, n) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
            for n in [sum(1 for line in cell.source.splitlines() if line.strip())]
            if n > MAX_CELL_LINES]
    assert not long, "; ".join(
        f"{path.name} cell {i} has {n} non-blank lines (at most {MAX_CELL_LINES}): move "
        "the machinery into dml_kit and call it" for i, n in long)


#: a verdict cell: its first line is "# verdict: <the claim>" (see docs/architecture.md)
VERDICT_MARK = "# verdict"
VERDICT_LABELS = ("holds", "fails", "not resolved")
#: what a printed verdict looks like: a label from dml_kit.stats, and figures
VERDICT_PRINTED = re.compile(r"\b(holds|fails|not resolved at this sample size)\b")
FIGURE = re.compile(r"\d\.\d")


def verdict_cells(nb) -> list[tuple[int, nbformat.NotebookNode]]:
    return [(i, c) for i, c in enumerate(nb.cells)
            if c.cell_type == "code" and c.source.lstrip().startswith(VERDICT_MARK)]


def cell_text(cell) -> str:
    """Everything a cell showed as text: streams and the plain-text form of results."""
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out.get("text", ""))
        elif "data" in out:
            parts.append(out["data"].get("text/plain", ""))
    return "".join(parts)


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if not p.stem.startswith("00")],
                         ids=[p.stem for p in NOTEBOOKS if not p.stem.startswith("00")])
def test_claims_are_verdict_cells_computed_from_the_run(path):
    """Every notebook after the tour states what its run shows in verdict cells, whose
    label comes from dml_kit.stats, never from a string written in advance."""
    nb = nbformat.read(path, as_version=4)
    cells = verdict_cells(nb)
    assert cells, f"{path.name} has no verdict cell ('{VERDICT_MARK}: <claim>' first line)"
    for i, cell in cells:
        strings = [tok.string.lower() for tok in tokenize.generate_tokens(
            io.StringIO(cell.source).readline) if tok.type == tokenize.STRING]
        for label in VERDICT_LABELS:
            assert not any(label in text for text in strings), (
                f"{path.name} cell {i} writes the verdict {label!r} in a string: print the "
                "label dml_kit.stats computes from the numbers")


@pytest.mark.timeout(900)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes_in_fast_mode(path, tmp_path, monkeypatch):
    monkeypatch.setenv("DML_KIT_FAST", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.monotonic()
    client.execute()
    elapsed = time.monotonic() - start
    out = tmp_path / path.name
    nbformat.write(nb, out)
    print(f"{path.name}: executed in {elapsed:.1f} s (fast setting)")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    for i, cell in verdict_cells(nb):
        shown = cell_text(cell)
        assert VERDICT_PRINTED.search(shown) and FIGURE.search(shown), (
            f"{path.name} verdict cell {i} printed no verdict with its figures: {shown!r}")
    assert os.path.getsize(out) > 0


# ---- the DATASET switch (dml_kit.settings.load_dataset), without any network -----------
class _FakeLoad:
    """Stands in for dml_kit.data.load: records its calls; a real set is 'missing' until
    a call allows the download."""

    def __init__(self, cached: bool = False):
        self.calls, self.cached = [], cached

    def __call__(self, name, download=False, root=None, **options):
        from dml_kit.data.download import DownloadRequiredError

        self.calls.append((name, download, options))
        if name not in ("digits", "glyphs") and not (download or self.cached):
            raise DownloadRequiredError(f"{name} is not in the cache folder")
        return f"dataset {name}"


def test_dataset_switch_downloads_a_real_set_and_says_what_and_where(monkeypatch, tmp_path,
                                                                     capsys):
    from dml_kit import data, settings

    monkeypatch.setenv("DML_KIT_DATA", str(tmp_path))
    fake = _FakeLoad()
    monkeypatch.setattr(data, "load", fake)
    assert settings.load_dataset("omniglot") == "dataset omniglot"
    assert [(n, d) for n, d, _ in fake.calls] == [("omniglot", False), ("omniglot", True)]
    said = capsys.readouterr().out
    assert "images_background.zip (9.5 MB)" in said and "images_evaluation.zip" in said
    assert "all_runs.zip" not in said                    # the loader does not read it
    assert str(tmp_path / "omniglot") in said and "github" in said


def test_dataset_switch_reads_files_already_there_quietly(monkeypatch, capsys):
    from dml_kit import data, settings

    fake = _FakeLoad(cached=True)
    monkeypatch.setattr(data, "load", fake)
    assert settings.load_dataset("mnist", path="/some/copy") == "dataset mnist"
    assert fake.calls == [("mnist", False, {"path": "/some/copy"})]
    assert capsys.readouterr().out == ""


def test_dataset_switch_loads_embedded_sets_without_download(monkeypatch, capsys):
    from dml_kit import data, settings

    fake = _FakeLoad()
    monkeypatch.setattr(data, "load", fake)
    assert settings.load_dataset("glyphs") == "dataset glyphs"
    assert fake.calls == [("glyphs", False, {})] and capsys.readouterr().out == ""
    assert settings.download_plan("digits") == ""
    with pytest.raises(ValueError, match="name"):
        settings.load_dataset(3)


def test_download_plan_lists_only_missing_files(tmp_path):
    from dml_kit import settings

    (tmp_path / "omniglot").mkdir()
    (tmp_path / "omniglot" / "images_background.zip").write_bytes(b"x")
    plan = settings.download_plan("omniglot", root=tmp_path)
    assert "images_evaluation.zip" in plan and "images_background.zip" not in plan
    assert "1 file(s)" in plan
    (tmp_path / "omniglot" / "images_evaluation.zip").write_bytes(b"x")
    assert settings.download_plan("omniglot", root=tmp_path) == ""


def test_panels_get_the_name_of_an_embedded_set_and_the_split_of_a_real_one():
    from dml_kit.settings import panel_data

    split = object()
    assert panel_data("glyphs", split) == "glyphs" and panel_data("Digits", split) == "Digits"
    assert panel_data("omniglot", split) is split


# ---- the teacher's checklist of issue 19, as far as the text can show it ---------------
TRAINS_LIVE = ("02", "03", "04", "05", "07", "08")   # a model trains in the notebook itself
GRIDS = ("05", "08")                                  # a grid runs: bar and running table


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_meets_the_teachers_checklist(path):
    nb = nbformat.read(path, as_version=4)
    md = [c.source for c in nb.cells if c.cell_type == "markdown"]
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    top = md[0]
    assert "**After this notebook you can**" in top, f"{path.name}: no 'after this' top cell"
    assert re.search(r"\*\*Time:\*\*[^*]*measured \d+ s", top), f"{path.name}: no measured time"
    assert re.search(r'^DATASET = "', code, re.M) and "load_dataset(DATASET)" in code, (
        f"{path.name}: no one-variable DATASET switch through load_dataset")
    assert any("**Predict first" in m for m in md), f"{path.name}: no predict-first prompt"
    assert "dk.exercises.check(" in code, f"{path.name}: no checked exercise"
    assert "$$" in "".join(md), f"{path.name}: no displayed formula"
    closing = [m for m in md if "## What to remember" in m]
    assert closing, f"{path.name}: no closing cell with takeaways"
    section = closing[-1].split("## What to remember", 1)[1].split("\n## ", 1)[0]
    bullets = [line for line in section.splitlines() if line.startswith("* ")]
    assert 3 <= len(bullets) <= 5, f"{path.name}: {len(bullets)} takeaways (3-5 wanted)"
    assert re.search(r"\*\*Papers?\.\*\*", section), f"{path.name}: no paper reference"
    if path.stem[:2] in TRAINS_LIVE:
        assert "LiveDashboard(" in code, f"{path.name}: trains with no live view"
    if path.stem[:2] in GRIDS:
        assert "GridProgress(" in code and "progress=tracker" in code, (
            f"{path.name}: its grid runs with no running table")


def _passes_data_path(call, dicts) -> bool:
    """Whether a grid call passes ``data_path=data_path(DATASET)``, directly or inside a
    ``dict(...)`` it unpacks (``**STUDY``)."""
    import ast

    for kw in call.keywords:
        value = kw.value if kw.arg == "data_path" else None
        if kw.arg is None and isinstance(kw.value, ast.Name):
            spread = dicts.get(kw.value.id)
            if isinstance(spread, ast.Call) and ast.unparse(spread.func) == "dict":
                value = next((k.value for k in spread.keywords if k.arg == "data_path"), None)
        if value is not None and ast.unparse(value) == "data_path(DATASET)":
            return True
    return False


def test_grids_read_the_files_the_notebook_loaded():
    """A reader who loads a copy with ``load_dataset(DATASET, path=...)`` must not see the
    grid look for the set by name and ask for a download: every grid call of 05 and 08
    passes ``data_path=data_path(DATASET)`` (directly or in the dict it unpacks)."""
    import ast

    for path in (p for p in NOTEBOOKS if p.stem[:2] in GRIDS):
        nb = nbformat.read(path, as_version=4)
        tree = ast.parse("\n".join(c.source for c in nb.cells if c.cell_type == "code"))
        dicts = {t.id: node.value for node in ast.walk(tree) if isinstance(node, ast.Assign)
                 for t in node.targets if isinstance(t, ast.Name)}
        grids = [node for node in ast.walk(tree) if isinstance(node, ast.Call)
                 and isinstance(node.func, ast.Attribute)
                 and (node.func.attr == "run_grid"
                      or ast.unparse(node.func).endswith("GridSpec.create"))]
        assert grids, f"{path.name}: no grid call found"
        for call in grids:
            assert _passes_data_path(call, dicts), (
                f"{path.name}: {ast.unparse(call)[:80]} does not pass data_path=data_path(DATASET)")
