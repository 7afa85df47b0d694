"""Build the course notebooks from their percent-format sources in this folder.

The sources (``notebooks/src/NN_name.py``, jupytext "percent" format) are what you edit
and review: plain Python with ``# %% [markdown]`` cells, readable in a diff. This script
writes ``notebooks/NN_name.ipynb`` with outputs stripped and a python3 kernelspec;
``tests/test_notebooks.py`` checks that each notebook matches its source.

    .venv/bin/python notebooks/src/build.py            # all sources
    .venv/bin/python notebooks/src/build.py 03_*.py    # some
"""

import sys
from pathlib import Path

import jupytext
import nbformat

HERE = Path(__file__).resolve().parent


def build(src: Path) -> nbformat.NotebookNode:
    """The notebook a source file describes (stripped, python3 kernel)."""
    nb = jupytext.read(src)
    nb.metadata = {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                  "language": "python"},
                   "language_info": {"name": "python"}}
    for index, cell in enumerate(nb.cells):
        cell.metadata = {}
        cell.id = f"cell-{index:02d}"  # stable ids: rebuilding does not churn the diff
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def main(args: list[str]) -> None:
    sources = [HERE / a for a in args] if args else sorted(HERE.glob("[0-9][0-9]_*.py"))
    for src in sources:
        out = HERE.parent / (src.stem + ".ipynb")
        nbformat.write(build(src), out)
        print("wrote", out.relative_to(HERE.parent.parent))


if __name__ == "__main__":
    main(sys.argv[1:])
