"""Every notebook runs top to bottom under the fast setting (DML_KIT_FAST=1).

Each notebook ends with cells that drive its widgets by setting ``.value`` and assert on
what updates, and that check its numbers make sense; a failing assertion fails here.
"""

import json
import os
import time
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
    assert os.path.getsize(out) > 0
