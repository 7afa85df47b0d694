"""Behaviours a plausible one-line bug would silently break (issue 20).

Each test states a behaviour the teaching kit relies on when it compares methods, and was
checked to fail on the planted bug named in its docstring (the library edited by hand,
the test run, the file restored): a grid's seeds reading one another's records, hybrids
that do not adapt or adapt at the wrong k, a shift ladder walking the wrong way, an
exercise checker blind to gradients, SEC's moving average with its weights swapped,
prototypes that are sums. The mutation benchmark (benchmarks/mutation.py) found the
rest of the cases below.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dml_kit import data, exercises, methods, metrics
from dml_kit.callbacks import HistoryCallback
from dml_kit.data.shift import _walk, frechet_distance
from dml_kit.experiments import GridSpec, ResultsStore, run_grid
from dml_kit.experiments import grid as grid_module
from dml_kit.methods import K1_NOTE, MethodConfig
from dml_kit.regularizers import SEC

# the tiny digits grid of tests/test_experiments.py
GRID_TINY = {"embedding_dim": 32, "hidden": (64,), "source_epochs": 3, "source_patience": 2,
             "batch_classes": 5, "batch_per_class": 8, "batches_per_epoch": 10,
             "episodes_per_epoch": 10, "target_epochs": 5, "target_patience": 3}
# a small MLP on digits for the methods: a few epochs, enough for weights to move
TINY = MethodConfig(embedding_dim=16, hidden=(32,), source_epochs=2, source_patience=2,
                    source_lr=2e-3, batch_classes=5, batch_per_class=6, batch_size=32,
                    batches_per_epoch=6, episodes_per_epoch=6, query_per_class=3,
                    target_epochs=4, target_patience=4, target_lr=5e-3)


def _params(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(p, q) for p, q in zip(a, b, strict=True))


# ---- (a) a grid's seeds each get their own record ---------------------------------------
def test_cell_hash_changes_with_the_seed_and_only_the_seed_differs():
    """Planted bug: ``cell_hash`` without ``seed`` (every seed would read seed 0's record)."""
    spec = GridSpec.create("digits", "metric", [1], [5], 1, tasks=1, **GRID_TINY)

    def cell(seed: int, **kw) -> str:
        args = {"dataset": "digits", "method": "metric", "k": 1, "n": 5, "seed": seed,
                "config": spec.config, "source": spec.source}
        args.update(kw)
        return grid_module.cell_hash(**args, fingerprint="f" * 16)

    assert cell(0) == cell(0)
    assert len({cell(0), cell(1), cell(2), cell(0, k=2), cell(0, n=3), cell(0, task=1),
                cell(0, method="protonet")}) == 7


def test_a_two_seed_grid_stores_one_record_per_seed_and_reads_each_back(tmp_path):
    """Planted bug: the seed left out of the cell hash; the second seed then finds the
    first seed's stored record and silently reports it."""
    store = ResultsStore(tmp_path / "r.sqlite")
    kw = {"store": store, "executor": "serial", "tasks": 1, "compare_losses": [],
          "progress": False, **GRID_TINY}
    first = run_grid("digits", ["metric"], [1], [5], [0], **kw)
    both = run_grid("digits", ["metric"], [1], [5], [0, 1], **kw)
    assert len(store) == 2 and sorted(both["seed"]) == [0, 1]
    assert both["config_hash"].is_unique
    by_seed = both.set_index("seed")
    # seed 0 was read back from the store, seed 1 was run: different tasks and models
    assert by_seed.loc[0, "config_hash"] == first["config_hash"].iloc[0]
    assert by_seed.loc[0, "accuracy"] == first["accuracy"].iloc[0]
    assert by_seed.loc[1, "m_source_val_score"] != by_seed.loc[0, "m_source_val_score"]
    again = run_grid("digits", ["metric"], [1], [5], [1], **kw)
    assert list(again["seed"]) == [1] and again["accuracy"].iloc[0] == by_seed.loc[1, "accuracy"]


# ---- (b), (c) the hybrids adapt at k >= 2, on a copy, and only there ---------------------
@pytest.fixture(scope="module")
def split():
    return data.domain_split(data.load("digits"), target_fraction=0.5, seed=0)


@pytest.fixture(scope="module")
def sources(split):
    torch.set_num_threads(1)
    return {kind: methods.train_source(kind, split.source, TINY, n_way=5, k_shot=2, seed=0)
            for kind in ("embedding", "protonet")}


HYBRIDS = [("adapted_metric", "metric", "embedding"),
           ("adapted_protonet", "protonet", "protonet")]


@pytest.mark.parametrize("hybrid, parent, kind", HYBRIDS)
@pytest.mark.parametrize("k", [2, 3])
def test_a_hybrid_at_k_of_two_or_more_adapts_a_copy_and_leaves_the_source(
        split, sources, hybrid, parent, kind, k):
    """Planted bugs: the adaptation optimizer given the source model's parameters instead
    of the copy's (the adapted model then equals its parent), and the hybrids' threshold
    ``k_shot < 2`` turned into ``<= 2`` (k = 2 would not adapt)."""
    task = data.kshot_task(split.target, n_way=5, k_shot=k, seed=1)
    source = sources[kind]
    before = _params(source.model)
    history = HistoryCallback(keep_norms=False)
    result = methods.run(hybrid, task, source, TINY, seed=0, callbacks=history)
    assert result.method == hybrid and result.notes != K1_NOTE
    assert history.phases == ["adapt"] and result.metrics["target_epochs"] >= 1
    assert result.model is not source.model
    assert _same(_params(source.model), before), "adaptation changed the shared source"
    assert not _same(_params(result.model), before), "the adapted model equals its source"
    # the parent scores the untouched source embedding
    assert methods.run(parent, task, source, TINY, seed=0).model is source.model


@pytest.mark.parametrize("hybrid, parent, kind", HYBRIDS)
def test_a_hybrid_at_k_one_is_its_parent_without_training(split, sources, hybrid, parent,
                                                          kind):
    task = data.kshot_task(split.target, n_way=5, k_shot=1, seed=1)
    history = HistoryCallback(keep_norms=False)
    result = methods.run(hybrid, task, sources[kind], TINY, seed=0, callbacks=history)
    p = methods.run(parent, task, sources[kind], TINY, seed=0)
    assert result.notes == K1_NOTE and history.phases == []
    assert result.model is sources[kind].model and result.accuracy == p.accuracy


# ---- (d) the shift ladder's walk moves classes the way ooDML says ------------------------
def _mixed_line() -> tuple[np.ndarray, list[int], list[int]]:
    """Eight class means on a line (a small jitter in a second dimension): a mixed split,
    train at -3, -2, -1, +1.5 and test at 3, 2, 1, -1.5."""
    pos = [-3.0, -2.0, -1.0, 1.5, 3.0, 2.0, 1.0, -1.5]
    means = np.array([[p, 0.1 * ((7 * i) % 3)] for i, p in enumerate(pos)])
    return means, [0, 1, 2, 3], [4, 5, 6, 7]


def test_a_harder_step_swaps_the_most_test_like_train_class_and_raises_the_distance():
    """ooDML (PAPERS.md 2): rank train classes by d(c, m_te) - d(c, m_tr), most test-like
    first, test classes by d(c, m_tr) - d(c, m_te); swap the top ones. Planted bug: the
    train ranking reversed (the walk then swaps the most train-like train class)."""
    means, train, test = _mixed_line()
    start = frechet_distance(means[train], means[test])
    [(new_train, new_test, step)] = _walk(means, train, test, 1, False, 1, 5, None, 2)
    assert step == 1
    # +1.5 (train, on the test side) and -1.5 (test, on the train side) change sides
    assert sorted(new_train) == [0, 1, 2, 7] and sorted(new_test) == [3, 4, 5, 6]
    assert frechet_distance(means[new_train], means[new_test]) > 2 * start


def test_an_easier_step_swaps_the_least_test_like_classes_and_lowers_the_distance():
    """The reversed ranking (ooDML's easier splits): the most train-like train class and
    the most test-like test class change sides."""
    means, train, test = _mixed_line()
    start = frechet_distance(means[train], means[test])
    [(new_train, new_test, step)] = _walk(means, train, test, 1, True, 1, 5, None, 2)
    assert step == -1
    assert sorted(new_train) == [1, 2, 3, 4] and sorted(new_test) == [0, 5, 6, 7]
    assert frechet_distance(means[new_train], means[new_test]) < start / 2


def test_the_first_harder_steps_on_blobs_raise_the_distance(make_blobs):
    """From a random split of well-separated blobs, the first harder swaps all raise the
    Fréchet distance (before any class removal)."""
    from dml_kit.data.shift import class_mean_features

    for seed in range(3):
        d = make_blobs(seed=seed)
        means = class_mean_features(d, d.x)
        perm = torch.randperm(d.n_classes, generator=torch.Generator().manual_seed(seed))
        test, train = perm[:20].tolist(), perm[20:].tolist()
        fds = [frechet_distance(means[train], means[test])]
        fds += [frechet_distance(means[tr], means[te])
                for tr, te, _ in _walk(means, train, test, 3, False, 2, 5, None, 2)]
        assert all(b > a for a, b in zip(fds, fds[1:], strict=False)), (seed, fds)


# ---- (e) the exercise checker compares gradients, and names an overlap -------------------
def _right_value_wrong_gradient(fn):
    """``fn``'s value, plus a term worth 0 whose gradient is 1 everywhere."""
    def student(x, *args):
        return fn(x, *args) + (x - x.detach()).sum()
    return student


@pytest.mark.parametrize("name, reference", [
    ("cross_entropy", F.cross_entropy),
    ("triplet_loss", None),
    ("prototypical_loss", None),
    ("sec", None),
])
def test_a_right_value_with_a_wrong_gradient_does_not_pass(name, reference):
    """Planted bug: the checker without its gradient comparison."""
    from dml_kit.losses import TripletLoss, prototypical_loss

    if name == "triplet_loss":
        loss = TripletLoss(margin=0.5, distance="sqeuclidean", normalize=False,
                           average="nonzero")
        student = _right_value_wrong_gradient(lambda e, y, m: loss(e, y))
    elif name == "prototypical_loss":
        student = _right_value_wrong_gradient(prototypical_loss)
    elif name == "sec":
        student = _right_value_wrong_gradient(SEC())
    else:
        student = _right_value_wrong_gradient(reference)
    result = exercises.check(name, student)
    # the values match, so the message is about the gradient: "batch 0, gradient: ..."
    assert not result.passed, result.message
    assert ", gradient" in result.message and ", value" not in result.message, result.message


def test_a_support_example_among_the_queries_is_named():
    """Planted bug: the overlap check of the support/query exercise removed (another check
    then fails with a message that does not say what is wrong)."""
    def overlapping(labels, k, seed):
        g = torch.Generator().manual_seed(seed)
        support = torch.cat([idx[torch.randperm(len(idx), generator=g)[:k]]
                             for idx in (torch.nonzero(labels == c).flatten()
                                         for c in labels.unique())])
        rest = torch.tensor([i for i in range(len(labels)) if i not in set(support.tolist())])
        return support, torch.cat([rest, support[:1]])  # one support example queried too

    result = exercises.check("support_query_split", overlapping)
    assert not result.passed
    assert result.message == "an example is both in the support set and among the queries"


# ---- (f) SEC's moving average: mu <- (1 - m) mu + m * batch mean -------------------------
def test_sec_moving_average_weights_the_new_batch_by_the_momentum():
    """Planted bug: ``m`` and ``1 - m`` swapped (invisible at m = 0.5)."""
    m = 0.25
    reg = SEC(momentum=m)
    a = torch.ones(3, 4, dtype=torch.float64) * torch.tensor([[1.0], [2.0], [3.0]],
                                                             dtype=torch.float64)
    reg(a)                                            # norms 2, 4, 6: mu starts at 4
    assert float(reg.running_mean_norm) == pytest.approx(4.0)
    b = (a * 2).requires_grad_(True)                  # norms 4, 8, 12: mean 8
    loss = reg(b)
    mu = (1 - m) * 4.0 + m * 8.0                      # 5 (swapped: 7)
    assert float(reg.running_mean_norm) == pytest.approx(mu)
    norms = [4.0, 8.0, 12.0]
    assert float(loss.detach()) == pytest.approx(sum((n - mu) ** 2 for n in norms) / 3)
    # mu is a constant: d/df_i = 2/B (||f_i|| - mu) f_i / ||f_i||
    (g,) = torch.autograd.grad(loss, b)
    want = torch.stack([2 / 3 * (n - mu) * b[i].detach() / n for i, n in enumerate(norms)])
    torch.testing.assert_close(g, want)
    reg(a * 4)                                        # mean 16: mu = 0.75 * 5 + 0.25 * 16
    assert float(reg.running_mean_norm) == pytest.approx((1 - m) * mu + m * 16.0)


# ---- (g) prototypes are class means -----------------------------------------------------
def test_prototypes_are_means_not_sums():
    """Planted bug: prototypes summed instead of averaged. Class 0 has two support points
    at (0, 0) and (4, 0): its prototype is (2, 0), a sum would put it at (4, 0)."""
    s = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 3.0]])
    sy = torch.tensor([0, 0, 1])
    q = torch.tensor([[0.5, 1.0], [2.0, 0.5], [0.0, 2.5]])
    qy = torch.tensor([0, 0, 1])
    # means: (0.5, 1) is 3.25 from (2, 0) and 4.25 from (0, 3); sum: 13.25 from (4, 0)
    assert metrics.prototype_accuracy(s, sy, q, qy) == 1.0
    assert metrics.prototype_accuracy(s, sy, q, qy, distance="euclidean") == 1.0
    from dml_kit.losses.distances import class_means

    classes, protos = class_means(s, sy)
    assert classes.tolist() == [0, 1]
    torch.testing.assert_close(protos, torch.tensor([[2.0, 0.0], [0.0, 3.0]]))
