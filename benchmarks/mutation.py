"""Mutation testing of the library's core with mutmut, one shard per module.

mutmut (a dev dependency) plants one small change at a time in a module (``<`` for
``<=``, ``m`` for ``1 - m``, a dropped argument, a string changed ...) and runs the tests
that execute the changed function; a mutant that no test notices *survives* and points
at a behaviour nothing checks. Each shard mutates one part of the core and runs only its
own test files (``SHARDS``), so that a shard fits on a 2-core machine. Run::

    .venv/bin/python benchmarks/mutation.py --list
    .venv/bin/python benchmarks/mutation.py --shard metrics --shard regularizers
    .venv/bin/python benchmarks/mutation.py --max-mutants 60     # every shard, sampled
    .venv/bin/python benchmarks/mutation.py --shard methods --max-mutants 80 --seed 1

Per shard it prints the mutants tried, killed, survived (``no tests``: the function is
not run by the shard's tests, counted as survived), timed out, the score ``(killed +
timed out) / (tried - equivalent)``, the wall time and the load average before and after,
then every surviving mutant as ``file:line`` and its diff. ``--max-mutants N`` draws N
of a shard's mutants at random (seeded by ``--seed``, sorted by name), for a quick run;
without it every mutant is tried. ``EQUIVALENT`` lists mutants that cannot change
behaviour, with the reason: they are reported apart and left out of the score.

Nothing in the checkout is modified: each shard runs in a fresh temporary folder holding
a copy of ``dml_kit/``, ``tests/``, ``notebooks/solutions/`` (the exercise checker's
worked solutions) and ``pyproject.toml`` with the shard's ``[tool.mutmut]`` settings
(mutmut writes its mutated tree under ``mutants/`` there); ``$DML_KIT_DATA`` points at a
temporary folder with links to the checkout's cached data files. One mutmut worker, one
torch thread (``OMP_NUM_THREADS=1``; the tests' conftest sets torch's count). The JSON
summary goes to ``data/mutation/<time>.json`` (``--json PATH``), the mutmut log of each
shard beside it.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GUARDS = "tests/test_behaviour_guards.py"
BAD_INPUTS = "tests/test_bad_inputs.py"


@dataclass(frozen=True)
class Shard:
    """Source files to mutate (globs relative to the checkout) and the tests that run."""

    sources: tuple[str, ...]
    tests: tuple[str, ...]
    deselect: str = ""   # a pytest -k expression of tests to leave out (processes, Ray)


SHARDS: dict[str, Shard] = {
    "losses": Shard(("dml_kit/losses/*.py",),
                    ("tests/test_losses.py", "tests/test_distances.py", GUARDS, BAD_INPUTS)),
    "regularizers": Shard(("dml_kit/regularizers.py",),
                          ("tests/test_regularizers.py", GUARDS, BAD_INPUTS)),
    "metrics": Shard(("dml_kit/metrics.py",), ("tests/test_metrics.py", GUARDS, BAD_INPUTS)),
    "tasks": Shard(("dml_kit/data/tasks.py",),
                   ("tests/test_tasks.py", "tests/test_data.py", GUARDS, BAD_INPUTS)),
    "shift": Shard(("dml_kit/data/shift.py",), ("tests/test_shift.py", GUARDS, BAD_INPUTS)),
    "training": Shard(("dml_kit/training.py",),
                      ("tests/test_training.py", GUARDS, BAD_INPUTS)),
    "methods": Shard(("dml_kit/methods/*.py",),
                     ("tests/test_methods.py", "tests/test_persist.py",
                      "tests/test_guards_methods.py", GUARDS, BAD_INPUTS)),
    # the grid's process and Ray executors start fresh interpreters: left out
    "experiments": Shard(("dml_kit/experiments/store.py", "dml_kit/experiments/grid.py",
                          "dml_kit/experiments/report.py"),
                         ("tests/test_experiments.py", "tests/test_guards_experiments.py",
                          "tests/test_progress.py", GUARDS, BAD_INPUTS),
                         deselect="not ray and not process_executor and not every_executor"),
    "exercises": Shard(("dml_kit/exercises.py",),
                       ("tests/test_exercises.py", "tests/test_guards_exercises.py", GUARDS,
                        BAD_INPUTS)),
    # intervals, verdicts and their display (every claim of the course is printed from it)
    "stats": Shard(("dml_kit/stats.py",), ("tests/test_stats.py", GUARDS, BAD_INPUTS)),
    # rules on the same tasks, the loss and SEC loops of notebooks 01, 03 and 06
    "compare": Shard(("dml_kit/compare.py",),
                     ("tests/test_compare.py", "tests/test_live_progress.py", GUARDS,
                      BAD_INPUTS)),
}

_NONE_FALSY = "low_inclusive=None is falsy: the same open bound as False"
_CPU = "device placement: the same on the CPU (only a CUDA run could tell)"
_PROMOTE = ".to(None) keeps the float32 tensor; type promotion converts it exactly"
_INPUTS = "another fixed input of the checker"

#: mutants that cannot change what the code does, and why (left out of the score). Names
#: are mutmut's: they hold while the mutated function's text is unchanged.
EQUIVALENT: dict[str, str] = {
    # regularizers
    "dml_kit.regularizers.x__norms__mutmut_11": "ord=2 is vector_norm's default",
    "dml_kit.regularizers.xǁLpNormPenaltyǁ__init____mutmut_7": _NONE_FALSY,
    "dml_kit.regularizers.xǁLpNormPenaltyǁ__init____mutmut_20": _NONE_FALSY,
    "dml_kit.regularizers.xǁSECǁ__init____mutmut_7": _NONE_FALSY,
    "dml_kit.regularizers.xǁLpNormPenaltyǁforward__mutmut_11":
        "skips the fast path at p = power = 2; the general path computes the same value",
    "dml_kit.regularizers.xǁRingLossǁ__init____mutmut_15":
        "without a given radius the start value is overwritten by the first batch's mean norm",
    "dml_kit.regularizers.xǁRingLossǁforward__mutmut_13": _PROMOTE,
    "dml_kit.regularizers.xǁSECǁforward__mutmut_18": _PROMOTE,
    "dml_kit.regularizers.xǁSECǁforward__mutmut_12":
        "the float64 batch mean is added into the float32 buffer either way (the same value "
        "up to one float32 rounding)",
    "dml_kit.regularizers.xǁSECǁ__init____mutmut_32": "the 'initialised' flag as float 0/1: "
                                                     "the same truth values",
    "dml_kit.regularizers.xǁSECǁ__init____mutmut_34": "the 'initialised' flag as float 0/1: "
                                                     "the same truth values",
    # metrics
    "dml_kit.metrics.x_knn_accuracy__mutmut_63": "every vote scaled by 2: the same argmax",
    "dml_kit.metrics.x_error_reductions__mutmut_8":
        "an int or float method_acc gives the same float result",
    "dml_kit.metrics.x_knn_accuracy__mutmut_1":
        "k=2 as the default: a 2-vote tie goes to the nearest, a 2-0 vote is the nearest's "
        "class, so 2-NN always agrees with 1-NN",
    "dml_kit.metrics.x_map_at_r__mutmut_45":
        "integer ranks: the division by them promotes to float64, the same values",
    # exercises
    "dml_kit.exercises.x__compare__mutmut_10": "rtol=1e-5 is torch.allclose's default",
    "dml_kit.exercises.x__check_loss_like__mutmut_40":
        "both hint functions always return a non-empty hint",
    # the checkers' own seeded inputs, changed: still fixed and seeded, and judged the
    # same way (every worked solution passes, every mistake of the tests fails); only a
    # test pinning the printed numbers could tell, a test of the one line
    "dml_kit.exercises.x__batches__mutmut_22": _INPUTS,
    "dml_kit.exercises.x__check_frechet_distance__mutmut_3": _INPUTS,
    "dml_kit.exercises.x__check_frechet_distance__mutmut_8":
        _INPUTS + " (the first sample drawn in float32, then compared in float64)",
    "dml_kit.exercises.x__check_frechet_distance__mutmut_16": _INPUTS,
    "dml_kit.exercises.x__check_sec__mutmut_6":
        _INPUTS + " (norms spread by 1/linspace instead of linspace: still unequal)",
    "dml_kit.exercises.x__check_support_query_split__mutmut_99":
        "seed 0 joins seeds 1-5 in the 'different seeds' check: only a split with one "
        "support set for seeds 1-5 and another for seed 0 would be judged differently",
    "dml_kit.exercises.x__check_support_query_split__mutmut_102":
        "seed 6 joins seeds 1-5 in the 'different seeds' check: only a split with one "
        "support set for seeds 1-5 and another for seed 6 would be judged differently",
    "dml_kit.exercises.x__check_support_query_split__mutmut_108":
        "all equal to the first <=> all equal to the second",
    "dml_kit.exercises.x__check_prototypical_loss__mutmut_9": _INPUTS + " (5 queries, not 4)",
    "dml_kit.exercises.x__check_sec__mutmut_15":
        _INPUTS + " (norm multipliers in float32, promoted to float64)",
    "dml_kit.exercises.x__check_sec__mutmut_16": _INPUTS + " (norms spread from 1.5, not 0.5)",
    "dml_kit.exercises.x__check_support_query_split__mutmut_95":
        "k = 4 in the 'different seeds' check: class 1's four examples all go to the "
        "support, the other classes' choices still vary with the seed",
    "dml_kit.exercises.x__check_recall_at_1__mutmut_9": "ks=(1,) is recall_at_k's default",
    "dml_kit.exercises.x__check_triplet_loss__mutmut_20":
        "normalize=None is falsy: TripletLoss stores bool(normalize), the same False",
    "dml_kit.exercises.x__check_triplet_loss__mutmut_46":
        "normalize=None is falsy: TripletLoss stores bool(normalize), the same False",
    "dml_kit.exercises.x__check_error_reduction__mutmut_25":
        "a float difference is never exactly the tolerance 1e-9",
    "dml_kit.exercises.x__check_recall_at_1__mutmut_20":
        "a float difference is never exactly the tolerance 1e-6",
    # data/shift
    "dml_kit.data.shift.x__walk__mutmut_64": "numpy reads sort kinds case-insensitively",
    "dml_kit.data.shift.x__walk__mutmut_67":
        "quicksort instead of stable: differs only for exactly equal scores",
    "dml_kit.data.shift.x_shift_splits__mutmut_117":
        "the easier walk never removes classes, so its min_classes is unused",
    "dml_kit.data.shift.x_shift_splits__mutmut_153":
        "sorting the (distance, ...) tuples orders by distance first: the same order unless "
        "two splits have exactly equal distances",
    # training
    "dml_kit.training.x_fit__mutmut_60": "reset to 0 at the first epoch, always a new best",
    "dml_kit.training.x_fit__mutmut_217": "emb is never None inside that branch",
    "dml_kit.training.x__to_device__mutmut_1": _CPU,
    "dml_kit.training.x_fit__mutmut_35": _CPU,
    "dml_kit.training.x_fit__mutmut_71": _CPU,
    "dml_kit.training.x_fit__mutmut_113": _CPU,
    # data/tasks
    "dml_kit.data.tasks.x_domain_split__mutmut_37": _NONE_FALSY,
    # losses
    "dml_kit.losses.proxy.xǁArcFaceLossǁforward__mutmut_10": "dim=1 is F.normalize's default",
    # methods
    "dml_kit.methods.scores.x_classify_accuracy__mutmut_14": "k=1 is knn_accuracy's default",
    "dml_kit.methods.x_run__mutmut_26": "every KShotTask has a seed: the default is unused",
    "dml_kit.methods.persist.x__read__mutmut_19": _CPU,
    "dml_kit.methods.persist.x__json_default__mutmut_1":
        "unreachable: json.dumps writes tuples as lists itself and never calls default= "
        "with one (dead code in persist.py)",
    "dml_kit.methods.persist.x_cached_train_source__mutmut_57":
        "the file's cache key already holds the data fingerprint and must equal the "
        "expected key: the second fingerprint check can only fail on a forged file",
    # experiments
    "dml_kit.experiments.store.xǁResultsStoreǁremembered_grid__mutmut_3":
        "SQL keywords in lower case: SQLite reads them case-insensitively",
}

DETECTED = ("killed", "timeout", "segfault", "caught by type check")
UNDETECTED = ("survived", "no tests")


@dataclass
class ShardResult:
    name: str
    tried: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    equivalent: list[str] = field(default_factory=list)
    survivors: list[dict[str, str]] = field(default_factory=list)
    wall_s: float = 0.0
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    sampled_from: int = 0
    error: str = ""

    @property
    def score(self) -> float | None:
        detected = sum(self.counts.get(s, 0) for s in DETECTED)
        undetected = sum(self.counts.get(s, 0) for s in UNDETECTED)
        return detected / (detected + undetected) if detected + undetected else None


# ---- the temporary copy ---------------------------------------------------------------
def _ignore(_dir: str, names: list[str]) -> set[str]:
    return {n for n in names if n in ("__pycache__", ".pytest_cache") or n.endswith(".pyc")}


def mutmut_config(shard: Shard) -> dict[str, object]:
    """The checkout's ``[tool.mutmut]`` with the shard's files and tests."""
    base = tomllib.loads((ROOT / "pyproject.toml").read_text())
    cfg = dict(base.get("tool", {}).get("mutmut", {}))
    cfg.setdefault("source_paths", ["dml_kit"])
    cfg["only_mutate"] = list(shard.sources)
    cfg["pytest_add_cli_args_test_selection"] = list(shard.tests)
    extra = list(cfg.get("pytest_add_cli_args", []))
    if shard.deselect:
        extra += ["-k", shard.deselect]
    cfg["pytest_add_cli_args"] = extra
    cfg["use_git_change_detection"] = False   # the temporary copy is no git checkout
    return cfg


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)   # strings and numbers: JSON's syntax is TOML's here


COPIED = ("dml_kit", "tests", "notebooks/solutions")


def prepare(shard: Shard, tmp: Path, ref: str | None = None) -> None:
    """Copy what the shard's tests need into ``tmp`` (from the working tree, or from the
    git commit ``ref``); write the shard's ``[tool.mutmut]``."""
    if ref is not None:
        archive = subprocess.run(["git", "archive", "--format=tar", ref, *COPIED], cwd=ROOT,
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
    else:
        for part in COPIED:
            if (ROOT / part).is_dir():
                shutil.copytree(ROOT / part, tmp / part, ignore=_ignore)
    text = (ROOT / "pyproject.toml").read_text()
    text = re.sub(r"(?ms)^\[tool\.mutmut\]\n.*?(?=^\[|\Z)", "", text)
    section = "\n".join(f"{k} = {_toml_value(v)}" for k, v in mutmut_config(shard).items())
    (tmp / "pyproject.toml").write_text(f"{text.rstrip()}\n\n[tool.mutmut]\n{section}\n")
    # mutmut writes the mutated tree here; it must exist before mutmut starts, or the
    # interpreter caches $PYTHONPATH's missing folder as "no importer" and the tests then
    # import the checkout's dml_kit (through its editable install) instead of the mutants
    (tmp / "mutants").mkdir()
    data = tmp / "data"
    data.mkdir()
    for cached in sorted((ROOT / "data").glob("*.npz")):
        (data / cached.name).symlink_to(cached)


def shard_files(shard: Shard, tmp: Path) -> list[Path]:
    return sorted({p.relative_to(tmp) for g in shard.sources for p in tmp.glob(g)})


LIST_CODE = """
import json, sys
from pathlib import Path
from mutmut.mutation.file_mutation import mutate_file_contents
from mutmut.utils.format_utils import get_mutant_name
names = []
for f in sys.argv[1:]:
    names += [get_mutant_name(Path(f), n)
              for n in mutate_file_contents(f, Path(f).read_text()).mutant_names]
print(json.dumps(names))
"""


def list_mutants(files: list[Path], tmp: Path, env: dict[str, str]) -> list[str]:
    out = subprocess.run([sys.executable, "-c", LIST_CODE, *map(str, files)], cwd=tmp,
                         env=env, capture_output=True, text=True, check=True)
    return sorted(json.loads(out.stdout.strip().splitlines()[-1]))


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "DML_KIT_DATA": str(tmp / "data"),
                # subprocesses started by tests (store writers) import the mutated copy
                "PYTHONPATH": str(tmp / "mutants"), "PYTHONDONTWRITEBYTECODE": "1"})
    return env


# ---- reading mutmut's results ------------------------------------------------------------
def _status_names() -> dict[int | None, str]:
    from mutmut.stats import status_by_exit_code
    return status_by_exit_code


def read_statuses(files: list[Path], tmp: Path) -> dict[str, str]:
    status_by_exit_code = _status_names()
    out: dict[str, str] = {}
    for f in files:
        meta = tmp / "mutants" / (str(f) + ".meta")
        if meta.exists():
            codes = json.loads(meta.read_text())["exit_code_by_key"]
            out.update({k: status_by_exit_code[v] for k, v in codes.items()})
    return out


def _function_lines(source: str) -> dict[str, int]:
    """``func`` and ``Class.method`` -> first line (decorators included)."""
    lines: dict[str, int] = {}

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                start = min([node.lineno] + [d.lineno for d in node.decorator_list])
                lines[prefix + node.name] = start
            elif isinstance(node, ast.ClassDef):
                visit(node.body, prefix + node.name + ".")

    visit(ast.parse(source).body, "")
    return lines


def locate(name: str, diff: str, root: Path) -> str:
    """``file:line`` of the first line a mutant changes, in the original file."""
    module, _, func = name.partition("__mutmut_")[0].rpartition(".")
    path = Path(*module.split(".")).with_suffix(".py")
    if not (root / path).exists():
        path = Path(*module.split("."), "__init__.py")
    func = func[2:] if func.startswith("x_") else func[1:]   # x_f, or xǁClassǁmethod
    func = func.replace("ǁ", ".").strip(".")
    try:
        source = (root / path).read_text()
        start = _function_lines(source)[func]
    except (OSError, KeyError, SyntaxError):
        return str(path)
    lines = source.splitlines()
    rel, removed = None, None
    for line in diff.splitlines():
        m = re.match(r"@@ -(\d+)", line)
        if m:
            rel = int(m.group(1))
            continue
        if rel is None or line.startswith(("---", "+++")):
            continue
        if line.startswith("-"):
            removed = line[1:].strip()
            break
        if not line.startswith("+"):
            rel += 1
    if rel is None:
        return f"{path}:{start}"
    guess = start + rel - 1
    if removed:   # the function's first line may differ (renamed); find the exact text
        for offset in sorted(range(-3, 200), key=abs):
            i = guess + offset - 1
            if 0 <= i < len(lines) and i >= start - 1 and lines[i].strip() == removed:
                return f"{path}:{i + 1}"
    return f"{path}:{guess}"


def show(name: str, tmp: Path, env: dict[str, str]) -> str:
    mutmut = Path(sys.executable).with_name("mutmut")
    out = subprocess.run([str(mutmut), "show", name], cwd=tmp, env=env, capture_output=True,
                         text=True)
    lines = out.stdout.splitlines()
    return "\n".join(line for line in lines if not line.startswith("# "))


# ---- one shard ------------------------------------------------------------------------------
def run_shard(name: str, max_mutants: int | None, seed: int, log_dir: Path,
              keep: bool, ref: str | None = None) -> ShardResult:
    shard = SHARDS[name]
    result = ShardResult(name, load_before=os.getloadavg())
    tmp = Path(tempfile.mkdtemp(prefix=f"dml_kit_mutation_{name}_"))
    env = _env(tmp)
    start = time.perf_counter()
    try:
        prepare(shard, tmp, ref)
        files = shard_files(shard, tmp)
        names = list_mutants(files, tmp, env)
        result.sampled_from = len(names)
        chosen = names
        if max_mutants is not None and max_mutants < len(names):
            chosen = sorted(random.Random(seed).sample(names, max_mutants))
        mutmut = Path(sys.executable).with_name("mutmut")
        log = log_dir / f"{name}.log"
        # all mutants: no names (mutmut then also tries mutants it generates but we did
        # not list, none in practice); a sample: the names, in batches for argv's sake
        batches = [chosen[i:i + 400] for i in range(0, len(chosen), 400)] \
            if chosen is not names else [[]]
        with log.open("w") as out:
            for batch in batches:
                proc = subprocess.run([str(mutmut), "run", "--max-children", "1", *batch],
                                      cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT)
                if proc.returncode != 0:
                    result.error = f"mutmut exited with {proc.returncode}; see {log}"
                    break
        statuses = read_statuses(files, tmp)
        wanted = set(chosen)
        statuses = {k: v for k, v in statuses.items() if k in wanted}
        result.tried = len(statuses)
        for mutant, status in sorted(statuses.items()):
            if mutant in EQUIVALENT:
                result.equivalent.append(mutant)
                continue
            result.counts[status] = result.counts.get(status, 0) + 1
            if status in UNDETECTED:
                diff = show(mutant, tmp, env)
                result.survivors.append({"mutant": mutant, "status": status,
                                         "where": locate(mutant, diff, ROOT), "diff": diff})
    except Exception as err:   # report the shard's failure and go on with the next
        result.error = f"{type(err).__name__}: {err}"
    finally:
        result.wall_s = time.perf_counter() - start
        result.load_after = os.getloadavg()
        if keep:
            print(f"  (kept {tmp})")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return result


def report(r: ShardResult) -> None:
    c = r.counts
    score = "-" if r.score is None else f"{100 * r.score:.1f}%"
    sample = f" (sampled from {r.sampled_from})" if r.sampled_from > r.tried else ""
    print(f"\n== {r.name}: {r.tried} mutants{sample}, killed {c.get('killed', 0)}, "
          f"survived {c.get('survived', 0)}, no tests {c.get('no tests', 0)}, "
          f"timed out {c.get('timeout', 0)}, equivalent {len(r.equivalent)}, "
          f"other {sum(v for k, v in c.items() if k not in DETECTED + UNDETECTED)}: "
          f"score {score}; wall {r.wall_s:.0f} s; load "
          f"{' '.join(f'{x:.2f}' for x in r.load_before)} -> "
          f"{' '.join(f'{x:.2f}' for x in r.load_after)}")
    if r.error:
        print(f"  ERROR: {r.error}")
    for s in r.survivors:
        print(f"\n  {s['where']}  {s['mutant']} ({s['status']})")
        print("    " + "\n    ".join(s["diff"].splitlines()[2:]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shard", action="append", choices=sorted(SHARDS),
                        help="a shard to run (repeatable; default: all)")
    parser.add_argument("--list", action="store_true", help="list the shards and exit")
    parser.add_argument("--max-mutants", type=int, default=None,
                        help="try a seeded random sample of at most N mutants per shard")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample")
    parser.add_argument("--json", type=Path, default=None,
                        help="summary file (default data/mutation/<time>.json)")
    parser.add_argument("--ref", default=None,
                        help="test this git commit's dml_kit/ and tests/ (e.g. HEAD) instead "
                             "of the working tree's")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folders")
    args = parser.parse_args(argv)
    if args.list:
        for name, shard in SHARDS.items():
            print(f"{name:13s} {' '.join(shard.sources)}\n{'':13s} tests: "
                  f"{' '.join(shard.tests)}" + (f" -k '{shard.deselect}'" if shard.deselect
                                                 else ""))
        return 0
    if args.max_mutants is not None and args.max_mutants < 1:
        parser.error("--max-mutants must be >= 1")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = args.json or ROOT / "data" / "mutation" / f"{stamp}.json"
    log_dir = out.parent / f"{out.stem}-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for name in args.shard or list(SHARDS):
        print(f"-- {name}: mutating {' '.join(SHARDS[name].sources)} ...", flush=True)
        results.append(run_shard(name, args.max_mutants, args.seed, log_dir, args.keep,
                                 args.ref))
        report(results[-1])
        sys.stdout.flush()
        out.write_text(json.dumps({
            "tool": "mutmut " + _mutmut_version(), "max_mutants": args.max_mutants,
            "ref": args.ref or "working tree",
            "seed": args.seed, "cpu_count": os.cpu_count(),
            "shards": [{**r.__dict__, "score": r.score} for r in results]}, indent=1))
    print(f"\n{'shard':13s} {'tried':>5s} {'killed':>6s} {'surv.':>5s} {'no t.':>5s} "
          f"{'t/out':>5s} {'score':>6s} {'wall s':>6s}  load 1-min before/after")
    for r in results:
        c = r.counts
        score = "-" if r.score is None else f"{100 * r.score:.1f}%"
        print(f"{r.name:13s} {r.tried:5d} {c.get('killed', 0):6d} {c.get('survived', 0):5d} "
              f"{c.get('no tests', 0):5d} {c.get('timeout', 0):5d} {score:>6s} "
              f"{r.wall_s:6.0f}  {r.load_before[0]:.2f} / {r.load_after[0]:.2f}")
    print(f"\nsummary: {out}")
    return 1 if any(r.error for r in results) else 0


def _mutmut_version() -> str:
    from importlib.metadata import version
    return version("mutmut")


if __name__ == "__main__":
    sys.exit(main())
