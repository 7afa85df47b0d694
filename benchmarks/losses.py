"""Time forward + backward of every dml_kit loss beside pytorch-metric-learning's equivalent.

Run: ``.venv/bin/python benchmarks/losses.py`` (``--quick`` for a smoke run, ``--sizes``
to change batch sizes). CPU, ``torch.set_num_threads(2)``, embedding dimension 64,
4 samples per class; each cell is the median over repeats of one forward + backward,
the kit and PML measured alternately so that load from other processes hits both.
``ratio = kit / PML`` (below 1: the kit is faster). PML (pytorch-metric-learning 2.9.0)
is a dev-only dependency; without it only the kit column is printed.

Settings are matched where the two implement the same formula (see ``CASES``); where
they differ (semi-hard selection, N-pair pair selection, ProxyNCA's denominator) the
closest PML configuration is used and the row is marked ``~``.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass

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


@dataclass
class Case:
    name: str
    kit: Callable[[int], nn.Module]  # num_classes -> module
    pml: Callable[[int], Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] | None
    approx: bool = False  # PML's closest equivalent differs in its definition
    labels: str = "classes"  # or "views" (each label twice) or "none" (regularizer)


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
             pml(lambda c: pl.LiftedStructureLoss(neg_margin=1.0, pos_margin=0.0))),
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
        Case("softmax", lambda c: losses.SoftmaxLoss(c, DIM), None),
        Case("normsoftmax", lambda c: losses.NormSoftmaxLoss(c, DIM, temperature=0.05),
             pml(lambda c: pl.NormalizedSoftmaxLoss(c, DIM, temperature=0.05))),
        Case("cosface", lambda c: losses.CosFaceLoss(c, DIM),
             pml(lambda c: pl.CosFaceLoss(c, DIM, margin=0.35, scale=64))),
        Case("arcface", lambda c: losses.ArcFaceLoss(c, DIM),
             pml(lambda c: pl.ArcFaceLoss(c, DIM, margin=28.6, scale=64))),
        Case("proxy_nca", lambda c: losses.ProxyNCALoss(c, DIM),
             pml(lambda c: pl.ProxyNCALoss(c, DIM)), approx=True),
        Case("proxy_anchor", lambda c: losses.ProxyAnchorLoss(c, DIM),
             pml(lambda c: pl.ProxyAnchorLoss(c, DIM, margin=0.1, alpha=32))),
        Case("prototypical", lambda c: losses.PrototypicalLoss(), None),
        Case("ntxent", lambda c: losses.NTXentLoss(temperature=0.1),
             pml(lambda c: pl.NTXentLoss(temperature=0.1)), labels="views"),
        Case("reg:sec", lambda c: regularizers.SEC(), None, labels="none"),
        Case("reg:lp", lambda c: regularizers.LpNormPenalty(p=2, power=2),
             pml(lambda c: pr.LpRegularizer(p=2, power=2)), labels="none"),
        Case("reg:ring", lambda c: regularizers.RingLoss(), None, labels="none"),
    ]


def _step(fn: Callable[..., torch.Tensor], x: torch.Tensor, y: torch.Tensor | None,
          params: list[torch.nn.Parameter]) -> float:
    x.grad = None
    for p in params:
        p.grad = None
    t0 = time.perf_counter()
    out = fn(x) if y is None else fn(x, y)
    out.backward()
    return time.perf_counter() - t0


def _time_pair(kit: nn.Module, ref: Callable[..., torch.Tensor] | None, x: torch.Tensor,
               y: torch.Tensor | None, budget_s: float) -> tuple[float, float | None]:
    kit_params = list(kit.parameters())
    ref_params = list(ref.parameters()) if isinstance(ref, nn.Module) else []
    for _ in range(3):  # warm-up
        _step(kit, x, y, kit_params)
        if ref is not None:
            _step(ref, x, y, ref_params)
    one = _step(kit, x, y, kit_params) + (_step(ref, x, y, ref_params) if ref else 0.0)
    repeats = int(min(60, max(7, budget_s / max(one, 1e-6))))
    kit_t, ref_t = [], []
    for _ in range(repeats):
        kit_t.append(_step(kit, x, y, kit_params))
        if ref is not None:
            ref_t.append(_step(ref, x, y, ref_params))
    return statistics.median(kit_t), (statistics.median(ref_t) if ref is not None else None)


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 512])
    parser.add_argument("--budget", type=float, default=0.6,
                        help="seconds of timing per cell (default 0.6)")
    parser.add_argument("--quick", action="store_true", help="tiny budget (smoke test)")
    parser.add_argument("--only", nargs="*", help="only these case names")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    torch.manual_seed(0)
    warnings.filterwarnings("ignore", category=UserWarning, module="pytorch_metric_learning")
    budget = 0.05 if args.quick else args.budget
    rows: list[dict[str, object]] = []
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, dim {DIM}, "
          f"{PER_CLASS} per class; times are median ms of forward+backward; "
          f"ratio = kit / PML{'' if HAVE_PML else ' (PML not installed)'}")
    header = f"{'loss':<20}" + "".join(
        f"{f'kit@{b}':>10}{f'PML@{b}':>10}{f'ratio@{b}':>10}" for b in args.sizes)
    print(header)
    print("-" * len(header))
    for case in _cases():
        if args.only and case.name not in args.only:
            continue
        line = f"{case.name + (' ~' if case.approx else ''):<20}"
        for b in args.sizes:
            n_classes = b // PER_CLASS
            x = torch.randn(b, DIM, requires_grad=True)
            if case.labels == "classes":
                y = torch.arange(n_classes).repeat_interleave(PER_CLASS)
                y = y[torch.randperm(b)]
            elif case.labels == "views":
                y = torch.arange(b // 2).repeat(2)
            else:
                y = None
            kit = case.kit(n_classes)
            ref = case.pml(n_classes) if case.pml is not None else None
            t_kit, t_ref = _time_pair(kit, ref, x, y, budget)
            ratio = None if t_ref is None else t_kit / t_ref
            rows.append({"loss": case.name, "batch": b, "kit_ms": 1e3 * t_kit,
                         "pml_ms": None if t_ref is None else 1e3 * t_ref, "ratio": ratio})
            line += f"{1e3 * t_kit:>10.3f}"
            line += f"{'-':>10}{'-':>10}" if t_ref is None else (
                f"{1e3 * t_ref:>10.3f}{ratio:>10.2f}")
        print(line, flush=True)
    print("~ : PML's closest equivalent differs in definition (see benchmarks/losses.py)")
    return rows


if __name__ == "__main__":
    main()
