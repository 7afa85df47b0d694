"""What the ``paper`` preset's full grid would cost: measured seconds per training step
times the steps its settings allow, per source model and per target run, summed over
the grid's cells (Adapted Deep Embeddings on rotated Omniglot: k x n = {1,5,10} x
{5,10,100,1000}, 10 seeds, the six methods).

Usage::

    .venv/bin/python benchmarks/paper_cost.py [--threads 1] [--repeats 2]

Each step is timed on random 28x28 inputs with ADE's Omniglot net (forward, loss,
backward, Adam step) on ``--threads`` torch threads (1: a grid worker), with the
allocator policy grid jobs run with (:mod:`dml_kit.allocator`). The bound uses
the preset's maxima (500 epochs, 10,000 episodes); early stopping (patience 70 epochs,
4,000 episodes) usually ends runs sooner, so the table also gives the cost if every run
stopped at ``patience x 2`` (a typical stop, stated as an assumption, not measured).
Prints the machine load beside the figures. Not a test.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from dml_kit import losses, models
from dml_kit.allocator import keep_freed_memory
from dml_kit.experiments import get_preset


def _load() -> str:
    try:
        return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:  # pragma: no cover
        return "load average unknown"


def step_seconds(role: str, images: int, classes: int, repeats: int) -> float:
    """Seconds of one training step of ADE's Omniglot net in ``role`` on ``images``
    images of ``classes`` classes (the median of ``repeats`` after a warm-up)."""
    torch.manual_seed(0)
    net = models.for_shape((1, 28, 28), 128, channels=32, architecture="ade_omniglot",
                           role=role)
    head = torch.nn.Linear(128, classes) if role == "classifier" else None
    params = list(net.parameters()) + (list(head.parameters()) if head else [])
    opt = torch.optim.Adam(params, 1e-3)
    x = torch.rand(images, 1, 28, 28)
    y = torch.arange(images) % classes
    histogram = losses.get("histogram") if role == "metric" else None
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        emb = net(x)
        if role == "classifier":
            loss = torch.nn.functional.cross_entropy(head(emb), y)
        elif role == "metric":
            loss = histogram(emb, y)
        else:
            support = images - 5 * classes
            loss = losses.prototypical_loss(emb[:support], y[:support], emb[support:],
                                            y[support:])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    keep_freed_memory()   # as every grid job does (training.fit applies it)
    preset = get_preset("paper")
    c = preset.config
    seeds = preset.seeds
    print(f"cpus: {os.cpu_count()}, torch threads: {args.threads}; before: {_load()}")
    total_max = total_typical = 0.0
    rows = []
    for n in preset.n_values:
        train_images = 15 * n
        batch = min(c.batch_classes, n) * min(c.batch_per_class, 15)
        batches = -(-train_images // batch)
        hist = step_seconds("metric", batch, min(c.batch_classes, n), args.repeats)
        cls_batch = min(c.batch_size, train_images)
        cls = step_seconds("classifier", cls_batch, n, args.repeats)
        cls_batches = -(-train_images // cls_batch)
        # source models per seed: one histogram embedding, one classifier, a protonet per k
        metric_s = hist * batches * c.source_epochs
        classifier_s = cls * cls_batches * c.source_epochs
        proto = {k: step_seconds("protonet", n * (k + c.query_per_class), n, args.repeats)
                 for k in preset.k_values}
        proto_s = sum(t * (c.max_episodes or 0) for t in proto.values())
        # target phases: scratch and weight transfer train on the k x n support for at most
        # target_epochs; the hybrids fine-tune (histogram batches / episodes) likewise
        target_s = 0.0
        for k in preset.k_values:
            support = k * n
            step = step_seconds("classifier", min(support, c.batch_size), n, 1)
            target_s += 2 * step * -(-support // c.batch_size) * c.target_epochs
            if k > 1:
                target_s += hist * c.target_epochs + proto[k] * c.target_epochs
        per_seed = metric_s + classifier_s + proto_s + target_s
        epochs_share = min(1.0, 2 * c.source_patience / c.source_epochs)
        episodes_share = min(1.0, 2 * (c.episode_patience or 0) / (c.max_episodes or 1))
        typical = ((metric_s + classifier_s + target_s) * epochs_share
                   + proto_s * episodes_share)
        total_max += per_seed * seeds
        total_typical += typical * seeds
        rows.append((n, hist, cls, proto, per_seed / 3600, typical / 3600))
    print(f"\n{'n':>5} {'hist step':>10} {'clf step':>9} {'protonet step (k=1/5/10)':>26} "
          f"{'max h/seed':>11} {'typ. h/seed':>12}")
    for n, hist, cls, proto, hmax, htyp in rows:
        steps = "/".join(f"{t:.2f}" for t in proto.values())
        print(f"{n:>5} {hist:>9.2f}s {cls:>8.2f}s {steps:>25}s {hmax:>11.1f} {htyp:>12.1f}")
    print(f"\npaper grid ({seeds} seeds, {len(preset.k_values)} k x {len(preset.n_values)} n, "
          f"6 methods): at most {total_max / 3600:,.0f} CPU-hours on {args.threads} thread(s); "
          f"~{total_typical / 3600:,.0f} if runs stop at twice their patience")
    print(f"after: {_load()}")


if __name__ == "__main__":
    main()
