"""Command line: ``python -m dml_kit grid | sec | shift | report ...``.

Examples::

    python -m dml_kit grid --dataset glyphs --methods all --k 1 5 10 --n 5 10 --seeds 3
    python -m dml_kit grid --preset classroom --store /tmp/results.sqlite --force
    python -m dml_kit report --store /tmp/results.sqlite
    python -m dml_kit sec --setting classroom          # the SEC paper's table on glyphs
    python -m dml_kit shift --setting omniglot --data-path ../shared/data/omniglot
    python -m dml_kit report --kind sec                # the stored SEC study, with verdicts

``sec`` runs :func:`dml_kit.experiments.sec_study.sec_study` and ``shift``
:func:`dml_kit.experiments.shift_study.oodml_study` in one of their named settings
(``classroom``: glyphs; ``omniglot``: real Omniglot files), with progress bars, storing
every unit (a rerun reads them back) and printing the tables with verdicts;
``report --kind sec|shift`` prints what is stored.

``grid`` fills the results store (``data/results.sqlite`` unless ``--store``) with a
progress bar, skipping cells already stored (``--force`` reruns them), then prints the
accuracy table and the report; ``report`` prints the report of what is stored (one per
dataset, in turn, unless ``--dataset`` names one). Invalid
arguments exit with status 2 and a message that names the argument.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    import pandas as pd


#: the named settings of the SEC and ooDML studies (``sec_study.SETTINGS``,
#: ``shift_study.SHIFT_SETTINGS``; listed here so that parsing imports no torch)
STUDY_SETTINGS = ("classroom", "omniglot")
REPORT_KINDS = ("grid", "sec", "shift")


class _ParseError(Exception):
    """Raised instead of exiting by the light parser (:func:`_parser` ``light=True``)."""


class _LightParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise _ParseError(message)


def _parser(light: bool = False) -> argparse.ArgumentParser:
    """The command line's parser. ``light``: without the choices of ``--preset``,
    ``--source`` and ``--executor`` (they come from the presets, which import torch) and
    raising :class:`_ParseError` instead of exiting, for a first pass that lets
    ``report`` and a stored ``grid`` run without torch; the full parser then checks (and
    explains) every argument of a grid that has to run."""
    if light:
        presets: list[str] | None = None
        executors: tuple[str, ...] | None = None
        source_kinds: tuple[str, ...] | None = None
    else:
        from dml_kit.experiments.config import EXECUTORS, PRESETS, SOURCE_KINDS

        presets, executors, source_kinds = sorted(PRESETS), EXECUTORS, SOURCE_KINDS
    parser_class = _LightParser if light else argparse.ArgumentParser
    parser = parser_class(prog="python -m dml_kit",
                          description="dml_kit experiments from the command line")
    sub = parser.add_subparsers(dest="command", required=True)

    grid = sub.add_parser("grid", help="run methods x k x n x seeds and store the results")
    grid.add_argument("--dataset", default=None, help="dataset name (default: the preset's)")
    grid.add_argument("--methods", nargs="+", default=["all"],
                      help="method names or 'all' (default: all)")
    grid.add_argument("--k", nargs="+", type=int, default=None, help="shots per class")
    grid.add_argument("--n", nargs="+", type=int, default=None, help="ways (target classes)")
    grid.add_argument("--seeds", type=int, default=None,
                      help="number of seeds (seeds 0..s-1; default: the preset's)")
    grid.add_argument("--tasks", type=int, default=None,
                      help="target tasks per seed and (k, n), sharing the seed's source "
                           "models (default: the preset's)")
    grid.add_argument("--compare-losses", nargs="*", default=None,
                      help="embedding losses run for 'metric' beside the histogram loss, "
                           "for conclusion 3 (default: the preset's; none: --compare-losses)")
    grid.add_argument("--preset", default="classroom", choices=presets)
    grid.add_argument("--source", default=None, choices=source_kinds,
                      help="'split': T1 = the whole source part (default); "
                           "'paper': T1 = n other classes")
    grid.add_argument("--store", default=None, help="SQLite file (default data/results.sqlite)")
    grid.add_argument("--force", action="store_true", help="rerun cells already stored")
    grid.add_argument("--executor", default="process", choices=executors)
    grid.add_argument("--workers", type=int, default=None, help="parallel workers")
    grid.add_argument("--ray-address", default=None,
                      help="Ray cluster address ('local' starts a local Ray)")
    grid.add_argument("--download", action="store_true", help="allow dataset downloads")
    grid.add_argument("--data-path", default=None,
                      help="the dataset's files you already have (e.g. "
                           "../shared/data/omniglot), passed to its loader as path=")
    grid.add_argument("--no-progress", action="store_true", help="hide the progress bar")

    rep = sub.add_parser("report", help="print the report of the stored results")
    rep.add_argument("--store", default=None, help="SQLite file (default data/results.sqlite)")
    rep.add_argument("--kind", default="grid", choices=REPORT_KINDS,
                     help="grid: the Adapted Deep Embeddings grid (default); sec: the SEC "
                          "study; shift: the ooDML study")
    rep.add_argument("--dataset", default=None,
                     help="report only this dataset (default: each in turn)")
    rep.add_argument("--preset", default=None, help="only records of this preset")
    rep.add_argument("--setting", default=None, choices=STUDY_SETTINGS,
                     help="sec/shift: only this setting (default: each stored one)")
    for name, text in (("sec", "the SEC study: angular losses with and without SEC"),
                       ("shift", "the ooDML study: zero- and few-shot along a shift ladder")):
        study = sub.add_parser(name, help=text)
        study.add_argument("--setting", default="classroom", choices=STUDY_SETTINGS,
                           help="classroom: glyphs (default); omniglot: real Omniglot "
                                "(give --data-path)")
        study.add_argument("--store", default=None,
                           help="SQLite file (default data/results.sqlite)")
        study.add_argument("--data-path", default=None,
                           help="the dataset's files (e.g. ../shared/data/omniglot)")
        study.add_argument("--seeds", type=int, default=None,
                           help="number of seeds (default: the setting's, 3)")
        study.add_argument("--force", action="store_true", help="retrain stored units")
        study.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return parser


def _grid_args(args: argparse.Namespace) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """``run_grid``'s positional and keyword arguments for ``args``."""
    return ((args.dataset, args.methods, args.k, args.n, args.seeds),
            {"preset": args.preset, "source": args.source, "store": args.store,
             "force": args.force, "executor": args.executor, "max_workers": args.workers,
             "ray_address": args.ray_address, "progress": not args.no_progress,
             "download": args.download, "tasks": args.tasks,
             "compare_losses": args.compare_losses, "data_path": args.data_path})


def _grid(args: argparse.Namespace, frame: pd.DataFrame | None = None,
          start: float | None = None) -> int:
    """Run the grid (or print ``frame``, the stored one) and its report."""
    from dml_kit.experiments import report, run_grid

    start = time.perf_counter() if start is None else start
    if frame is None:
        positional, keywords = _grid_args(args)
        frame = run_grid(*positional, **keywords)
    seconds = time.perf_counter() - start
    print(report(frame).to_text())
    print(f"\n{len(frame)} runs in the grid; finished in {seconds:.1f} s")
    return 0


def _study(args: argparse.Namespace, start: float) -> int:
    """Run the SEC (``sec``) or ooDML (``shift``) study in its setting and print it, on
    one torch thread (deterministic, and on a shared 2-core machine 2 threads spin
    against other processes: a margin-loss step ran 10x slower at load 8)."""
    import torch

    torch.set_num_threads(1)
    overrides: dict[str, Any] = {} if args.seeds is None else {"seeds": args.seeds}
    common = {"store": args.store or _default_store(), "force": args.force,
              "progress": not args.no_progress, "data_path": args.data_path}
    if args.command == "sec":
        from dml_kit.experiments import sec_study

        frame = sec_study.sec_study(None, args.setting, **common, **overrides)
        print(sec_study.report_text(frame))
    else:
        from dml_kit.experiments import shift_study

        frame = shift_study.oodml_study(None, args.setting, **common, **overrides)
        print(shift_study.report_text(frame))
    print(f"\n{len(frame)} rows ({args.command} study, setting {args.setting}); store "
          f"{common['store']}; finished in {time.perf_counter() - start:.1f} s")
    return 0


def _default_store() -> str:
    from dml_kit.experiments.store import default_path

    return str(default_path())


def _study_report(args: argparse.Namespace, store: Any) -> int:
    """Print the stored SEC or ooDML study (each stored setting, or ``--setting``)."""
    kind = "sec_study" if args.kind == "sec" else "shift_study"
    presets = sorted({r.preset for r in store.records(kind=kind)})
    from dml_kit.experiments import sec_study, shift_study

    if args.kind == "sec":
        settings = [args.setting] if args.setting else [p for p in presets
                                                        if p in STUDY_SETTINGS]
        frames = {s: sec_study.stored_sec_study(store, s) for s in settings}
        text = sec_study.report_text
    else:
        settings = [args.setting] if args.setting else [
            p.removeprefix("oodml-") for p in presets if p.startswith("oodml-")]
        frames = {s: shift_study.stored_oodml_study(store, s) for s in settings}
        text = shift_study.report_text
    frames = {s: f for s, f in frames.items() if not f.empty}
    if not frames:
        which = f" of setting {args.setting!r}" if args.setting else ""
        raise ValueError(f"no {args.kind} study records{which} in {store.path}: run "
                         f"python -m dml_kit {args.kind} --setting "
                         f"{args.setting or 'classroom'} --store {store.path}")
    for setting, frame in frames.items():
        print(f"\n{args.kind} study, setting {setting} ({len(frame)} rows)")
        print(text(frame))
    return 0


def _report(args: argparse.Namespace) -> int:
    from dml_kit.experiments import ResultsStore, report, report_datasets

    store = ResultsStore(args.store, create=False)  # reading never creates a store
    if args.kind != "grid":
        print(f"store: {store.path} ({len(store)} runs)")
        return _study_report(args, store)
    print(f"store: {store.path} ({len(store)} runs)")
    if args.dataset is not None:
        reports = [report(store, dataset=args.dataset, preset=args.preset)]
    else:
        reports = report_datasets(store, preset=args.preset)
        if len(reports) > 1:
            print(f"{len(reports)} datasets in the store, reported in turn: "
                  f"{', '.join(r.dataset for r in reports)} (--dataset picks one)")
    print("\n\n".join(r.to_text() for r in reports))
    return 0


def _light_pass(argv: Sequence[str] | None) -> tuple[argparse.Namespace,
                                                      pd.DataFrame | None] | None:
    """Parse without the presets (no torch): ``(args, None)`` for ``report``, ``(args,
    stored frame)`` for a grid whose cells are all stored
    (:func:`dml_kit.experiments.grid_index.stored_grid`); ``None`` when the full parser
    must parse (help, a bad argument, a grid that has to run)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a in ("-h", "--help") or a.startswith("--h") for a in argv):
        if argv and argv[0] != "grid":   # only the grid's help lists the presets (torch)
            _parser(light=True).parse_args(argv)   # prints the help and exits
        return None
    try:
        args = _parser(light=True).parse_args(argv)
    except _ParseError:
        return None
    if args.command != "grid":
        return args, None
    from dml_kit.experiments.grid_index import stored_grid

    positional, keywords = _grid_args(args)
    frame = stored_grid(*positional, **keywords)
    return (args, frame) if frame is not None else None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m dml_kit`` and the ``dml-kit`` script."""
    start = time.perf_counter()
    light = _light_pass(argv)
    if light is not None:
        parser = _parser(light=True)
        args, stored = light
    else:
        parser = _parser()
        args, stored = parser.parse_args(argv), None
    try:
        if args.command == "grid":
            return _grid(args, stored, start)
        if args.command in ("sec", "shift"):
            return _study(args, start)
        return _report(args)
    except ValueError as err:
        parser.exit(2, f"{parser.prog} {args.command}: error: {err}\n")
    except KeyboardInterrupt:
        print("\ninterrupted: finished runs are in the store", file=sys.stderr)
        return 130
    return 0  # pragma: no cover


if __name__ == "__main__":
    sys.exit(main())
