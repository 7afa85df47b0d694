"""How long each course notebook takes top to bottom at its default (classroom) settings.

Runs every numbered notebook with nbclient, as a teacher's "Run All" would, and prints a
markdown table (notebook, seconds, ok) for the README. The issue's goal: each notebook's
default settings finish in under 3 minutes on a 2-core CPU.

    .venv/bin/python benchmarks/notebooks.py                 # all, in a fresh data folder
    .venv/bin/python benchmarks/notebooks.py 03 06           # some
    .venv/bin/python benchmarks/notebooks.py --data data     # the checkout's cache and store

By default the notebooks see a fresh, empty data folder (``$DML_KIT_DATA``), as on a fresh
clone: the first notebook that loads ``glyphs`` renders them (its time includes that), and
notebook 05 computes its smaller grid because the results store is empty. ``--glyphs``
copies the checkout's rendered glyph cache in first, to time the notebooks alone.
``DML_KIT_FAST`` is removed from the environment: these are the classroom settings.
Run it on a quiet machine; the load average is printed with the table. ``--verdicts FILE``
also writes every verdict the notebooks printed. ``--twice`` runs the selection a second
time in the same data folder and prints both columns: the second run finds the source
models the first one cached (``data/models``) and the grid records it stored.

    .venv/bin/python benchmarks/notebooks.py 05 06 07 08 --glyphs --twice
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
LIMIT_SECONDS = 180.0
#: the MIME type of an ipywidgets view in a notebook output
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def verdict_lines(nb: nbformat.NotebookNode) -> list[str]:
    """What the notebook's verdict cells (first line ``# verdict: <claim>``) printed: the
    claim, then the printed text (streams and plain-text results)."""
    out = []
    for cell in nb.cells:
        if cell.cell_type != "code" or not cell.source.startswith("# verdict"):
            continue
        # a widget's plain-text fallback is its repr (a progress panel's), not a verdict
        text = "".join(o.get("text", "") if o.get("output_type") == "stream"
                       else o.get("data", {}).get("text/plain", "") for o in cell.outputs
                       if WIDGET_VIEW not in o.get("data", {}))
        out += [cell.source.splitlines()[0], *("    " + line for line in text.splitlines())]
    return out


def run_notebook(path: Path, timeout: int, verdicts: list[str] | None = None
                 ) -> tuple[float, str]:
    """Execute one notebook in its folder; return (seconds, "" or the error's last line).
    With ``verdicts``, append what its verdict cells printed."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3",
                            resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    try:
        client.execute()
        error = ""
    except Exception as exc:  # report it in the table, keep timing the others
        error = (str(exc).strip().splitlines() or [type(exc).__name__])[-1][:120]
    seconds = time.perf_counter() - start
    if verdicts is not None:
        verdicts += [f"## {path.stem}", *verdict_lines(nb)]
    return seconds, error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("select", nargs="*", help="notebook number prefixes, e.g. 03 06")
    parser.add_argument("--data", help="data folder to use (default: a fresh temporary one)")
    parser.add_argument("--glyphs", action="store_true",
                        help="copy the checkout's glyph cache into the fresh data folder")
    parser.add_argument("--timeout", type=int, default=900, help="per-cell timeout (s)")
    parser.add_argument("--verdicts", help="write every verdict the notebooks printed to this "
                                           "file (to read them against their tables)")
    parser.add_argument("--twice", action="store_true",
                        help="run the selection again in the same data folder (cached "
                             "source models and stored records) and print both times")
    args = parser.parse_args(argv)

    paths = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
    if args.select:
        paths = [p for p in paths if any(p.name.startswith(s) for s in args.select)]
        if not paths:
            parser.error(f"no notebook matches {args.select}")
    data = Path(args.data) if args.data else Path(tempfile.mkdtemp(prefix="dml_kit_nb_"))
    if args.glyphs and not args.data:
        for cache in (ROOT / "data").glob("glyphs_*.npz"):
            shutil.copy2(cache, data / cache.name)
    os.environ["DML_KIT_DATA"] = str(data.resolve())
    os.environ.pop("DML_KIT_FAST", None)
    os.environ.setdefault("MPLBACKEND", "Agg")

    rows = []
    verdicts: list[str] | None = [] if args.verdicts else None
    print(f"before: load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
          file=sys.stderr, flush=True)
    for path in paths:
        seconds, error = run_notebook(path, args.timeout, verdicts)
        rows.append((path.stem, seconds, error))
        print(f"{path.stem}: {seconds:.1f} s {'ok' if not error else 'FAILED: ' + error}",
              file=sys.stderr, flush=True)
    second: dict[str, tuple[float, str]] = {}
    if args.twice:
        for path in paths:
            second[path.stem] = run_notebook(path, args.timeout)
            print(f"{path.stem} (second run): {second[path.stem][0]:.1f} s",
                  file=sys.stderr, flush=True)

    if verdicts is not None:
        Path(args.verdicts).write_text("\n".join(verdicts) + "\n")
    load = os.getloadavg()
    print(f"\nnotebooks at default settings, data folder {data}, {os.cpu_count()} CPUs, "
          f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}\n")
    if second:
        print("| notebook | first run (s) | second run (s) | second / first | ok |")
        print("|---|---:|---:|---:|---|")
        for stem, seconds, error in rows:
            again, error2 = second[stem]
            print(f"| `{stem}` | {seconds:.0f} | {again:.0f} | {again / seconds:.2f} | "
                  f"{'yes' if not (error or error2) else error or error2} |")
        return 0 if all(not e for _, _, e in rows) else 1
    print("| notebook | seconds | under 3 min | ok |")
    print("|---|---:|---|---|")
    for stem, seconds, error in rows:
        print(f"| `{stem}` | {seconds:.0f} | {'yes' if seconds < LIMIT_SECONDS else 'NO'} "
              f"| {'yes' if not error else error} |")
    return 0 if all(not e and s < LIMIT_SECONDS for _, s, e in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
