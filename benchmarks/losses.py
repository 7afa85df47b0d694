"""Time forward + backward of every dml_kit loss beside pytorch-metric-learning's
equivalent and beside the floor, over a batch sweep; peak memory per case.

Run: ``.venv/bin/python benchmarks/losses.py`` (``--quick`` for a smoke run, ``--sizes``
to change batch sizes, ``--threads 1 2`` for one sweep per intra-op thread count,
``--only`` to pick losses, ``--no-memory`` / ``--no-timing`` to skip the memory / time
tables, ``--json PATH`` to keep the rows). CPU, embedding dimension 64, 4 samples per
class; each cell is the median over repeats of one forward + backward, the kit and PML
measured alternately so that load from other processes hits both. ``ratio = kit / PML``
(below 1: the kit is faster). PML (pytorch-metric-learning 2.9.0) is a dev-only
dependency; without it only the kit column is printed. The ``uptime`` load average is
printed before and after: state it beside any figure you quote.

**Floor**: what no loss over a ``(B, B)`` similarity matrix can beat: one ``B x B``
matmul of the embeddings and a row-wise ``logsumexp``, forward and backward (for the
proxy and classification losses one ``B x C`` matmul with ``C = B / 4`` class weights).
``x floor = kit / floor`` at each size.

**Memory**: peak resident memory of one forward + backward above the memory before it,
in MiB, each case (loss, batch size, implementation) in a fresh process so that the
allocator's cache of an earlier case cannot hide it (the process's ``VmHWM``, reset just
before the step; below a few MiB it is at the resolution of the allocator).

A PML case that cannot allocate its memory shows ``OOM`` instead of a time, and ``-`` in
the memory table: its lifted structure loss asks for 26 GB at B = 2,048 and is killed at
1,024, its NT-Xent peaks at 17 GB at 1,024 (``pml_max_batch``: not run above 512).

Settings are matched where the two implement the same formula (see ``CASES``); where
they differ (semi-hard selection, N-pair pair selection, ProxyNCA's denominator) the
closest PML configuration is used and the row is marked ``~``.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn

from dml_kit import losses, regularizers

try:  # dev-only oracle
    import pytorch_metric_learning.losses as pml_losses
    import pytorch_metric_learning.miners as pml_miners
    import pytorch_metric_learning.regularizers as pml_regs

    HAVE_PML = True
except ImportError:  # pragma: no cover
    HAVE_PML = False

DIM = 64
PER_CLASS = 4
SIZES = [128, 512, 1024, 2048]


@dataclass
class Case:
    name: str
    kit: Callable[[int], nn.Module]  # num_classes -> module
    pml: Callable[[int], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] | None
    approx: bool = False  # PML's closest equivalent differs in its definition
    labels: str = "classes"  # or "views" (each label twice) or "none" (regularizer)
    proxy: bool = False  # compared with the B x C floor
    pml_max_batch: int | None = None  # larger batches: PML needs more memory than 23 GB


class Floor(nn.Module):
    """One ``B x B`` matmul (or ``B x C`` against ``num_classes`` weights) and a row-wise
    logsumexp: the least work a loss over that matrix does."""

    def __init__(self, num_classes: int | None = None) -> None:
        super().__init__()
        self.weight = None if num_classes is None else nn.Parameter(
            torch.randn(num_classes, DIM))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        s = x @ (x if self.weight is None else self.weight).t()
        return torch.logsumexp(s, 1).sum()


def _mined(loss: nn.Module, miner: nn.Module) -> Callable[[torch.Tensor, torch.Tensor],
                                                          torch.Tensor]:
    def run(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return loss(x, y, miner(x, y))

    return run


def _cases() -> list[Case]:
    pl, pm, pr = (pml_losses, pml_miners, pml_regs) if HAVE_PML else (None, None, None)

    def pml(fn: Callable[[int], object]) -> Callable[[int], object] | None:
        return fn if HAVE_PML else None

    return [
        Case("floor", lambda c: Floor(), None),
        Case("floor:proxy", lambda c: Floor(c), None, proxy=True),
        Case("contrastive",
             lambda c: losses.ContrastiveLoss(margin=1.0, power=1, normalize=True,
                                              average="nonzero"),
             pml(lambda c: pl.ContrastiveLoss(pos_margin=0.0, neg_margin=1.0))),
        Case("triplet",
             lambda c: losses.TripletLoss(margin=0.2, distance="euclidean", normalize=True),
             pml(lambda c: pl.TripletMarginLoss(margin=0.2))),
        Case("triplet_batch_hard",
             lambda c: losses.BatchHardTripletLoss(margin=0.2, normalize=True),
             pml(lambda c: _mined(pl.TripletMarginLoss(margin=0.2), pm.BatchHardMiner()))),
        Case("triplet_semi_hard",
             lambda c: losses.SemiHardTripletLoss(margin=0.2, distance="euclidean"),
             pml(lambda c: _mined(pl.TripletMarginLoss(margin=0.2),
                                  pm.TripletMarginMiner(margin=0.2,
                                                        type_of_triplets="semihard"))),
             approx=True),
        Case("lifted_structure",
             lambda c: losses.LiftedStructureLoss(margin=1.0, normalize=True),
             pml(lambda c: pl.LiftedStructureLoss(neg_margin=1.0, pos_margin=0.0)),
             pml_max_batch=512),
        Case("npair", lambda c: losses.NPairLoss(l2_reg=0.0),
             pml(lambda c: pl.NPairsLoss()), approx=True),
        Case("multi_similarity", lambda c: losses.MultiSimilarityLoss(),
             pml(lambda c: _mined(pl.MultiSimilarityLoss(alpha=2, beta=50, base=0.5),
                                  pm.MultiSimilarityMiner(epsilon=0.1)))),
        Case("histogram", lambda c: losses.HistogramLoss(num_bins=100),
             pml(lambda c: pl.HistogramLoss(n_bins=100))),
        Case("margin", lambda c: losses.MarginLoss(alpha=0.2, beta=1.2),
             pml(lambda c: pl.MarginLoss(margin=0.2, beta=1.2, learn_beta=True)),
             approx=True),
        Case("softmax", lambda c: losses.SoftmaxLoss(c, DIM), None, proxy=True),
        Case("normsoftmax", lambda c: losses.NormSoftmaxLoss(c, DIM, temperature=0.05),
             pml(lambda c: pl.NormalizedSoftmaxLoss(c, DIM, temperature=0.05)), proxy=True),
        Case("cosface", lambda c: losses.CosFaceLoss(c, DIM),
             pml(lambda c: pl.CosFaceLoss(c, DIM, margin=0.35, scale=64)), proxy=True),
        Case("arcface", lambda c: losses.ArcFaceLoss(c, DIM),
             pml(lambda c: pl.ArcFaceLoss(c, DIM, margin=28.6, scale=64)), proxy=True),
        Case("proxy_nca", lambda c: losses.ProxyNCALoss(c, DIM),
             pml(lambda c: pl.ProxyNCALoss(c, DIM)), approx=True, proxy=True),
        Case("proxy_anchor", lambda c: losses.ProxyAnchorLoss(c, DIM),
             pml(lambda c: pl.ProxyAnchorLoss(c, DIM, margin=0.1, alpha=32)), proxy=True),
        Case("prototypical", lambda c: losses.PrototypicalLoss(), None),
        Case("ntxent", lambda c: losses.NTXentLoss(temperature=0.1),
             pml(lambda c: pl.NTXentLoss(temperature=0.1)), labels="views",
             pml_max_batch=512),
        Case("reg:sec", lambda c: regularizers.SEC(), None, labels="none"),
        Case("reg:lp", lambda c: regularizers.LpNormPenalty(p=2, power=2),
             pml(lambda c: pr.LpRegularizer(p=2, power=2)), labels="none"),
        Case("reg:ring", lambda c: regularizers.RingLoss(), None, labels="none"),
    ]


def _inputs(case: Case, b: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor | None]:
    g = torch.Generator().manual_seed(seed + b)
    x = torch.randn(b, DIM, generator=g).requires_grad_(True)
    if case.labels == "classes":
        y = torch.arange(b // PER_CLASS).repeat_interleave(PER_CLASS)
        return x, y[torch.randperm(b, generator=g)]
    if case.labels == "views":
        return x, torch.arange(b // 2).repeat(2)
    return x, None


def _step(fn: Callable[..., torch.Tensor], x: torch.Tensor, y: torch.Tensor | None,
          params: list[torch.nn.Parameter]) -> float:
    x.grad = None
    for p in params:
        p.grad = None
    t0 = time.perf_counter()
    out = fn(x) if y is None else fn(x, y)
    out.backward()
    return time.perf_counter() - t0


def _params(fn: object) -> list[torch.nn.Parameter]:
    return list(fn.parameters()) if isinstance(fn, nn.Module) else []


def _time_pair(kit: nn.Module, ref: Callable[..., torch.Tensor] | None, x: torch.Tensor,
               y: torch.Tensor | None, budget_s: float
               ) -> tuple[float, float | None, str | None]:
    """Median seconds of the kit and of the reference, and why the reference has no
    time (it ran out of memory, say) or ``None``."""
    kit_params, ref_params = _params(kit), _params(ref)
    _step(kit, x, y, kit_params)  # warm-up
    failure = None
    if ref is not None:
        try:
            _step(ref, x, y, ref_params)
        except (RuntimeError, MemoryError) as exc:  # PML's lifted structure at B = 2,048
            failure = "OOM" if "alloc" in str(exc) or isinstance(exc, MemoryError) else "error"
            ref = None
    one = _step(kit, x, y, kit_params) + (_step(ref, x, y, ref_params) if ref else 0.0)
    repeats = int(min(60, max(5, budget_s / max(one, 1e-6))))
    kit_t, ref_t = [], []
    for _ in range(repeats):
        kit_t.append(_step(kit, x, y, kit_params))
        if ref is not None:
            ref_t.append(_step(ref, x, y, ref_params))
    return (statistics.median(kit_t),
            statistics.median(ref_t) if ref is not None else None, failure)


def _status_mib(field: str) -> float:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of this process, in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> bool:
    """Reset ``VmHWM`` to the current RSS (Linux >= 4.0); ``False`` where not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _memory_child(name: str, impl: str, b: int, threads: int) -> None:
    """In a fresh process: peak RSS of one forward + backward above the RSS before it."""
    torch.set_num_threads(threads)
    warnings.filterwarnings("ignore", category=UserWarning, module="pytorch_metric_learning")
    case = next(c for c in _cases() if c.name == name)
    factory = case.kit if impl == "kit" else case.pml
    assert factory is not None
    # one tiny step first: one-time set-up (autograd engine, thread pool, lazy imports)
    # is not the case's memory
    x, y = _inputs(case, 2 * PER_CLASS)
    fn = factory(2)
    _step(fn, x, y, _params(fn))
    x, y = _inputs(case, b)
    fn = factory(b // PER_CLASS)
    gc.collect()
    reset = _reset_peak()
    before = _status_mib("VmRSS")
    try:
        _step(fn, x, y, _params(fn))
    except (RuntimeError, MemoryError) as exc:
        print(json.dumps({"peak_mib": None, "failed": str(exc)[:200]}))
        return
    peak = _status_mib("VmHWM")
    print(json.dumps({"peak_mib": max(0.0, peak - before), "peak_reset": reset}))


def _memory(name: str, impl: str, b: int, threads: int) -> float | None:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--_memory-child", name, impl,
           str(b), str(threads)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        print(f"  memory of {name}/{impl}@{b} failed: {proc.stderr.strip()[-300:]}")
        return None
    peak = json.loads(proc.stdout.strip().splitlines()[-1])["peak_mib"]
    return None if peak is None else float(peak)


def _uptime() -> str:
    with open("/proc/loadavg") as f:
        return "load average " + " ".join(f.read().split()[:3])


def _fmt(v: float | None, spec: str, width: int = 9) -> str:
    return f"{'-':>{width}}" if v is None else f"{v:>{width}{spec}}"


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES)
    parser.add_argument("--threads", type=int, nargs="+", default=[1],
                        help="intra-op thread counts, one sweep each (default 1)")
    parser.add_argument("--budget", type=float, default=0.6,
                        help="seconds of timing per cell (default 0.6)")
    parser.add_argument("--quick", action="store_true", help="tiny budget (smoke test)")
    parser.add_argument("--only", nargs="*", help="only these case names (floors always run)")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the peak-memory measurement (a fresh process per case)")
    parser.add_argument("--no-timing", action="store_true",
                        help="only the memory table (it needs no quiet machine)")
    parser.add_argument("--json", type=Path, help="write the rows to this file")
    parser.add_argument("--_memory-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._memory_child:
        name, impl, b, threads = args._memory_child
        _memory_child(name, impl, int(b), int(threads))
        return []
    warnings.filterwarnings("ignore", category=UserWarning, module="pytorch_metric_learning")
    budget = 0.05 if args.quick else args.budget
    cases = [c for c in _cases()
             if not args.only or c.name in args.only or c.name.startswith("floor")]
    rows: list[dict[str, object]] = []
    print(f"torch {torch.__version__}, dim {DIM}, {PER_CLASS} per class; times are median "
          f"ms of forward+backward; ratio = kit / PML"
          f"{'' if HAVE_PML else ' (PML not installed)'}; x floor = kit / floor")
    for threads in [] if args.no_timing else args.threads:
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        print(f"\n== {threads} thread(s); before: {_uptime()}")
        head = f"{'loss':<21}" + "".join(
            f"{f'kit@{b}':>9}{f'PML@{b}':>9}{'ratio':>6}" for b in args.sizes)
        head += f"{f'xfloor@{args.sizes[-1]}':>12}"
        print(head)
        print("-" * len(head))
        floors: dict[tuple[bool, int], float] = {}
        for case in cases:
            line = f"{case.name + (' ~' if case.approx else ''):<21}"
            last_floor = None
            for b in args.sizes:
                x, y = _inputs(case, b)
                kit = case.kit(b // PER_CLASS)
                ref = case.pml(b // PER_CLASS) if case.pml is not None else None
                too_big = case.pml_max_batch is not None and b > case.pml_max_batch
                t_kit, t_ref, failure = _time_pair(kit, None if too_big else ref, x, y, budget)
                failure = "OOM" if too_big and ref is not None else failure
                if case.name.startswith("floor"):
                    floors[(case.proxy, b)] = t_kit
                floor = floors.get((case.proxy, b))
                last_floor = None if floor is None else t_kit / floor
                ratio = None if t_ref is None else t_kit / t_ref
                rows.append({"loss": case.name, "threads": threads, "batch": b,
                             "kit_ms": 1e3 * t_kit,
                             "pml_ms": None if t_ref is None else 1e3 * t_ref,
                             "ratio": ratio, "x_floor": last_floor, "pml_failed": failure})
                line += _fmt(1e3 * t_kit, ".1f") + (f"{failure:>9}" if failure else _fmt(
                    None if t_ref is None else 1e3 * t_ref, ".1f")) + _fmt(ratio, ".2f", 6)
            print(line + _fmt(last_floor, ".2f", 12), flush=True)
        print(f"after: {_uptime()}")
    if not args.no_memory:
        threads = args.threads[0]
        print(f"\n== peak memory (MiB above the step's start, fresh process per case, "
              f"{threads} thread(s)); before: {_uptime()}")
        head = f"{'loss':<21}" + "".join(
            f"{f'kit@{b}':>9}{f'PML@{b}':>9}" for b in args.sizes)
        print(head)
        print("-" * len(head))
        for case in cases:
            line = f"{case.name:<21}"
            for b in args.sizes:
                m_kit = _memory(case.name, "kit", b, threads)
                too_big = case.pml_max_batch is not None and b > case.pml_max_batch
                m_ref = _memory(case.name, "pml", b, threads) if case.pml and not too_big \
                    else None
                rows.append({"loss": case.name, "threads": threads, "batch": b,
                             "kit_mib": m_kit, "pml_mib": m_ref})
                line += _fmt(m_kit, ".1f") + _fmt(m_ref, ".1f")
            print(line, flush=True)
        print(f"after: {_uptime()}")
    print("~ : PML's closest equivalent differs in definition (see benchmarks/losses.py)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
