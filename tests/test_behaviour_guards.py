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

import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from dml_kit import data, exercises, methods, metrics
from dml_kit.callbacks import HistoryCallback
from dml_kit.data.shift import _walk, class_mean_features, frechet_distance, shift_splits
from dml_kit.experiments import GridSpec, ResultsStore, run_grid
from dml_kit.experiments import grid as grid_module
from dml_kit.losses import TripletLoss, prototypical_loss
from dml_kit.methods import K1_NOTE, MethodConfig
from dml_kit.regularizers import SEC, LpNormPenalty, RingLoss
from dml_kit.regularizers import get as get_regularizer

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
    # seed 0 was read back from the store, seed 1 was run and stored beside it
    assert by_seed.loc[0, "config_hash"] == first["config_hash"].iloc[0]
    assert by_seed.loc[0, "accuracy"] == first["accuracy"].iloc[0]
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


# ---- found by the mutation benchmark: regularizer defaults, bounds and modes -------------
def _rows(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(5, 3, generator=g, dtype=torch.float64) * torch.arange(
        1, 6, dtype=torch.float64).unsqueeze(1)


def test_plain_sec_scores_the_current_batch_in_training_and_in_eval():
    """SEC's default (momentum 1) is the plain batch mean, whatever the mode: no running
    mean of earlier batches creeps in (mutants ``momentum <= 1`` and ``< 2``)."""
    reg = SEC()
    for batch in (_rows(0), _rows(1)):
        n = batch.norm(dim=1)
        assert float(reg(batch)) == pytest.approx(float(((n - n.mean()) ** 2).mean()))
    reg.eval()
    c = _rows(4)                          # not the last training batch
    n = c.norm(dim=1)
    assert float(reg(c)) == pytest.approx(float(((n - n.mean()) ** 2).mean()))


def test_lp_penalty_defaults_to_the_mean_squared_l2_norm():
    x = _rows(2)
    want = float((x.norm(dim=1) ** 2).mean())
    assert float(LpNormPenalty()(x)) == pytest.approx(want)
    assert float(get_regularizer("lp")(x)) == pytest.approx(want)
    # the general path (p, power given) agrees with the fast default path
    assert float(LpNormPenalty(p=2.0, power=1.0)(x)) == pytest.approx(
        float(x.norm(dim=1).mean()))


def test_ring_loss_defaults_to_lam_001_and_starts_at_the_first_batch_mean_norm():
    x = _rows(3)
    n = x.norm(dim=1)
    reg = RingLoss().double()
    want = 0.5 * 0.01 * float(((n - n.mean()) ** 2).mean())
    assert float(reg(x).detach()) == pytest.approx(want)
    assert float(reg.radius.detach()) == pytest.approx(float(n.mean()))
    given = RingLoss(radius=0.5)          # any radius >= 0 may be given
    assert float(given.radius.detach()) == 0.5 and RingLoss(radius=0.0, lam=0.0).lam == 0.0


@pytest.mark.parametrize("build, name", [
    (lambda: LpNormPenalty(power=0.0), "power"),
    (lambda: LpNormPenalty(p=0.0), "p"),
    (lambda: SEC(momentum=0.0), "momentum"),
    (lambda: RingLoss(lam=-0.1), "lam"),
    (lambda: RingLoss(radius=-0.1), "radius"),
])
def test_regularizer_settings_outside_their_range_are_refused(build, name):
    """The message starts with the setting's own name (a bad-input case only checks that
    the name appears, in any case, so ``XXpowerXX`` and ``POWER`` would pass it)."""
    with pytest.raises(ValueError, match=rf"^{name}=.* is out of range"):
        build()


@pytest.mark.parametrize("name", ["sec", "lp", "ring"])
def test_each_regularizer_names_its_embeddings_argument_exactly(name):
    with pytest.raises(ValueError, match=r"^embeddings must have shape \(N, D\), got \(3,\)"):
        get_regularizer(name)(torch.ones(3))


# ---- found by the mutation benchmark: the shift ladder's walk and its settings -----------
def test_a_walk_ranks_classes_by_distances_to_the_side_means_not_their_coordinates():
    """The ranking uses each side's mean vector: moving every class mean by the same
    offset changes nothing (a mean over all coordinates would)."""
    means, train, test = _mixed_line()
    for shift in ([0.0, 10.0], [-25.0, 4.0]):
        [(new_train, new_test, _)] = _walk(means + shift, train, test, 1, False, 1, 5, None, 2)
        assert sorted(new_train) == [0, 1, 2, 7] and sorted(new_test) == [3, 4, 5, 6]
        [(new_train, new_test, _)] = _walk(means + shift, train, test, 1, True, 1, 5, None, 2)
        assert sorted(new_train) == [1, 2, 3, 4] and sorted(new_test) == [0, 5, 6, 7]


def test_class_removal_waits_for_removal_after_swaps():
    """Before ``removal_after`` swaps every step is a swap (both sides keep their size),
    even one that lowers the distance (the second step here)."""
    means, train, test = _mixed_line()
    steps = _walk(means, train, test, 2, False, 1, 5, 2, 2)
    assert [(len(tr), len(te)) for tr, te, _ in steps] == [(4, 4), (4, 4)]
    assert [s for _, _, s in steps] == [1, 2]
    # the first step's swap raises the distance: with removal allowed from the start it
    # deletes both classes instead; allowed only after one swap, it still swaps
    steps = _walk(means, train, test, 2, False, 1, 5, 0, 2)
    assert [(len(tr), len(te)) for tr, te, _ in steps][0] == (3, 3)
    steps = _walk(means, train, test, 2, False, 1, 5, 1, 2)
    assert [(len(tr), len(te)) for tr, te, _ in steps][0] == (4, 4)


def test_class_removal_follows_oodml_when_a_swap_would_raise_the_distance():
    # ooDML's code (split_maker_with_class_removal: `if adjusted_fid >= fid`) and PAPERS.md
    # section 2: a swap that would leave the FD at or above its value is undone and both
    # classes are deleted
    means, train, test = _mixed_line()
    [(new_train, new_test, _)] = _walk(means, train, test, 1, False, 1, 5, 0, 2)
    # the swap of +1.5 and -1.5 raises the FD: ooDML undoes it and deletes both classes
    assert sorted(new_train) == [0, 1, 2] and sorted(new_test) == [4, 5, 6]


def test_a_walk_stops_when_every_class_was_moved_recently():
    means, train, test = _mixed_line()
    steps = _walk(means, train, test, 10, False, 1, 8, None, 2)
    assert len(steps) == 4      # 8 classes, each swapped once, all within the history


def test_the_ladder_honours_removal_after(make_blobs):
    d = make_blobs()
    never = shift_splits(d, n_splits=5, min_classes=8, feature_dim=8, removal_after=10**6)
    assert all(len(s.train_classes) == len(s.test_classes) == 20 for s in never)
    early = shift_splits(d, n_splits=5, min_classes=8, feature_dim=8, removal_after=0)
    assert min(len(s.train_classes) for s in early) < 20


def test_ladder_size_limits_are_exact(make_blobs):
    """2 * min_classes + 2 classes suffice, and a side of exactly min_classes is allowed."""
    assert len(shift_splits(make_blobs(22, 4), n_splits=3, min_classes=10, feature_dim=8)) == 3
    assert len(shift_splits(make_blobs(24, 4), n_splits=3, min_classes=11, test_fraction=0.46,
                            feature_dim=8)) == 3
    with pytest.raises(ValueError, match=r"^test_fraction=0\.3 leaves fewer than "
                                         r"min_classes=10 classes on one side$"):
        shift_splits(make_blobs(30, 3), test_fraction=0.3, min_classes=10)
    with pytest.raises(ValueError, match=r"^dim=50 is out of range: must be between 1 and "):
        class_mean_features(make_blobs(), dim=50)
    with pytest.raises(ValueError, match=r"^min_classes=1 is out of range"):
        shift_splits(make_blobs(), min_classes=1)
    with pytest.raises(ValueError, match=r"^only \d+ distinct splits were reached; ask for "
                                         r"fewer than n_splits=50"):
        shift_splits(make_blobs(), n_splits=50, min_classes=8, feature_dim=8)


def test_class_mean_features_of_a_network_are_the_class_means_of_its_embeddings(make_blobs):
    d = make_blobs(5, 4)
    torch.manual_seed(0)
    net = torch.nn.Linear(10, 3)
    feats = class_mean_features(d, net)
    with torch.no_grad():
        emb = net(d.x).double()
    want = torch.stack([emb[d.y == c].mean(0) for c in range(5)]).numpy()
    np.testing.assert_allclose(feats, want, rtol=1e-6, atol=1e-6)


def test_pixel_features_are_seeded_on_a_large_set():
    """Above 500 classes and dimensions scikit-learn's PCA is randomized: the seed must
    reach it for the ladder to be reproducible."""
    from dml_kit.data.core import Dataset

    g = torch.Generator().manual_seed(0)
    d = Dataset("big", torch.rand(600, 1, 25, 25, generator=g), torch.arange(600),
                tuple(map(str, range(600))), ("g",) * 600)
    a = class_mean_features(d, dim=8, seed=3)
    np.testing.assert_array_equal(a, class_mean_features(d, dim=8, seed=3))


def test_fewer_train_classes_measures_with_the_ladders_pixel_features(make_blobs):
    from dml_kit.data.shift import ShiftSplit, fewer_train_classes

    d = make_blobs()
    split = ShiftSplit(tuple(range(20)), tuple(range(20, 40)), 1.0, 3)
    control = fewer_train_classes(d, split, 8, feature_dim=4, seed=1)
    means = class_mean_features(d, dim=4, seed=1)
    want = frechet_distance(means[list(control.train_classes)], means[20:40])
    assert control.distance == pytest.approx(want, rel=1e-9)


def test_split_datasets_are_named_after_their_side(make_blobs):
    from dml_kit.data.shift import ShiftSplit

    train, test = ShiftSplit((0, 1), (2, 3), 1.0, 0).datasets(make_blobs(4, 3))
    assert (train.name, test.name) == ("blobs[train]", "blobs[test]")


# ---- found by the mutation benchmark: what the exercise checker tells the reader ---------
SUCCESS = {
    "support_query_split": "k per class, disjoint, complete, and reproducible for a seed",
    "cross_entropy": "values and gradients match the library on 3 batches",
    "triplet_loss": "values and gradients match the library on 3 batches",
    "prototypical_loss": "values and gradients match on a 3-way 1-shot and a 5-way 3-shot "
                         "episode",
    "error_reduction": "matches the library on three grids of conditions, one with a perfect "
                       "baseline to skip",
    "sec": "value and gradient match. Did you detach mu? With the plain batch mean it makes "
           "no difference to the gradient: the deviations ||f_i|| - mu sum to zero",
    "frechet_distance": "matches the library on identical and on shifted Gaussian samples",
    "recall_at_1": "matches the library's leave-one-out Recall@1 on 3 batches",
}


@pytest.mark.parametrize("name", sorted(SUCCESS))
def test_a_worked_solution_gets_its_exercises_message(name):
    result = exercises.check(name, exercises.load_solution(name))
    assert result.passed and result.name == name and result.message == SUCCESS[name]
    assert str(result) == f"PASS {name}: {SUCCESS[name]}"
    assert result._repr_markdown_() == f"✓ **{name}**: {SUCCESS[name]}"


def _triplet(**kw):
    return TripletLoss(margin=0.5, normalize=False, **kw)


def _index_masks(labels, k, seed):
    support, query = exercises.load_solution("support_query_split")(labels, k, seed)
    mask = torch.zeros(len(labels), dtype=torch.bool)
    mask[support] = True
    return mask, ~mask


def _unseeded():
    """A split that ignores its seed: every call draws with the next seed."""
    calls = iter(range(10**6))
    solution = exercises.load_solution("support_query_split")
    return lambda labels, k, seed: solution(labels, k, next(calls))


def _recall_with_itself(emb, y):
    z = F.normalize(emb, dim=1)
    return float((y[(z @ z.T).argmax(1)] == y).float().mean())   # each row finds itself


def _frechet_biased(a, b):
    """The Fréchet distance with 1/n covariances instead of 1/(n-1)."""
    from dml_kit.data.shift import frechet_distance

    na, nb = len(a), len(b)
    a2 = (a - a.mean(0)) * ((na - 1) / na) ** 0.5 + a.mean(0)
    b2 = (b - b.mean(0)) * ((nb - 1) / nb) ** 0.5 + b.mean(0)
    return frechet_distance(a2, b2)


MISTAKES = [
    ("cross_entropy", lambda z, y: F.cross_entropy(z, y, reduction="sum"),
     r"^batch 0 \(labels \[0, 0, 1, 1, 2, 2\]\), value: expected \S+, got \S+ \(ratio 6\)\. "
     r"you return the sum over examples; take the mean$"),
    ("cross_entropy", lambda z, y: F.nll_loss(z, y),
     r"value: .*\. did you subtract the log-sum-exp of each row \(log-softmax\)\?$"),
    ("cross_entropy", lambda z, y: F.cross_entropy(z, y, reduction="none"),
     r"^the function must return a scalar tensor \(a 0-d torch.Tensor\), got Tensor \(6,\)$"),
    ("triplet_loss", lambda e, y, m: _triplet(distance="sqeuclidean", average="all")(e, y),
     r"\. you average over all valid triplets; average over the active ones \(loss > 0\) "
     r"instead$"),
    ("triplet_loss", lambda e, y, m: _triplet(distance="euclidean")(e, y),
     r"\. use the squared Euclidean distance \|\|a - b\|\|\^2$"),
    ("triplet_loss", lambda e, y, m: 2 * _triplet(distance="sqeuclidean")(e, y),
     r"\(ratio 2\)\. check the triplet set: p != a with the anchor's label, n with another "
     r"label$"),
    ("prototypical_loss", lambda s, sy, q, qy: 2 * prototypical_loss(s, sy, q, qy),
     r"^3-way 1-shot episode, value: .*\(ratio 2\)\. Logits are minus the squared distances "
     r"to the prototypes\.$"),
    ("error_reduction", lambda base, meth: (sum(meth) - sum(base)) / len(base),
     r"^baseline \[0\.5, 0\.8\], method \[0\.75, 0\.8\]: expected 0\.2500, got 0\.1250\. That "
     r"is the accuracy gain \(acc_A - acc_B, not divided by anything\); divide each "
     r"condition's error gap err_B - err_A by the baseline's error err_B = 1 - acc_B\.$"),
    ("error_reduction", lambda base, meth: 0.0,
     r"^baseline \[0\.5, 0\.8\], method \[0\.75, 0\.8\]: expected 0\.2500, got 0\.0000\. The "
     r"measure: per condition \(err_B - err_A\) / err_B with err = 1 - accuracy, then the "
     r"plain mean over the conditions whose baseline makes errors\.$"),
    ("recall_at_1", _recall_with_itself,
     r"^labels \[.*\]: expected \S+, got 1\.0000\. Every point is its own nearest "
     r"neighbour: leave each example out of its own neighbour list \(set the diagonal to "
     r"-inf\)$"),
    ("frechet_distance", _frechet_biased,
     r"^expected \S+, got \S+: use sample covariances with 1/\(n-1\) \(np\.cov's default, "
     r"bias=False\), not 1/n$"),
    ("support_query_split", _index_masks,
     r"^return index tensors \(torch.long\), not boolean masks or values$"),
    ("support_query_split", _unseeded(),
     r"^the same seed must give the same split \(use a torch.Generator\)$"),
    ("support_query_split",
     lambda labels, k, seed: exercises.load_solution("support_query_split")(labels, k + 1, seed),
     r"^k_shot=1: the support set must hold exactly 1 examples of every class, "
     r"got \[2, 2, 2, 2\]$"),
]


@pytest.mark.parametrize("name, student, message", MISTAKES,
                         ids=[f"{m[0]}-{i}" for i, m in enumerate(MISTAKES)])
def test_a_typical_mistake_gets_its_hint(name, student, message):
    result = exercises.check(name, student)
    assert not result.passed and result.name == name
    assert re.search(message, result.message), result.message
    assert str(result).startswith(f"NOT YET {name}: ")
    assert result._repr_markdown_().startswith(f"✗ **{name}**: ")


def test_an_unattempted_exercise_and_an_unknown_name():
    def stub(*args):
        raise NotImplementedError

    result = exercises.check("sec", stub)
    assert result.name == "sec" and not result.passed
    assert result.message == ("not attempted yet: replace `raise NotImplementedError` with "
                              "your code and run the cell again")
    with pytest.raises(ValueError, match=r"^unknown exercise 'tripplet'; choose one of: "):
        exercises.check("tripplet", stub)


# ---- found by the mutation benchmark: metric defaults, edges and messages ----------------
def test_recall_at_k_is_cosine_by_default():
    """(0, 0) class: (1, 0) and (5, 0); class 1: (1, 0.6), (0.2, 1). By angle (1, 0)'s
    nearest is (5, 0), a hit; by distance it is (1, 0.6), a miss."""
    e = torch.tensor([[1.0, 0.0], [5.0, 0.0], [1.0, 0.6], [0.2, 1.0]])
    y = torch.tensor([0, 0, 1, 1])
    assert metrics.recall_at_k(e, y) == {1: 0.75} == metrics.recall_at_k(e, y, distance="cosine")
    assert metrics.recall_at_k(e, y, distance="euclidean") == {1: 0.5}


def test_norm_stats_of_zero_embeddings_have_no_coefficient_of_variation():
    stats = metrics.norm_stats(torch.zeros(3, 2))
    assert stats["mean"] == stats["std"] == stats["min"] == stats["max"] == 0.0
    assert np.isnan(stats["cv"])


@pytest.mark.parametrize("call, message", [
    (lambda e, y: metrics.map_at_r(e[:1], y[:1]),
     r"^emb and labels have 1 row: need at least 2 rows$"),
    (lambda e, y: metrics.recall_at_k(e, y, ks=(0,)),
     r"^k=0 is out of range: must be between 1 and 3$"),
    (lambda e, y: metrics.knn_accuracy(e, y, e, y, k=5),
     r"^k=5 is out of range: must be between 1 and 4 \(at most the number of support "
     r"examples\)$"),
    (lambda e, y: metrics.nmi(e, y[:3]),
     r"^labels must be a \(4,\) tensor, one label per embedding, got shape \(3,\)$"),
    (lambda e, y: metrics.nmi(e, torch.zeros(4, dtype=torch.long)),
     r"^labels hold a single class: NMI needs at least 2 classes \(with one it is 1\.0 for "
     r"any embedding\)$"),
])
def test_metric_errors_say_exactly_what_is_wrong(call, message):
    e = torch.tensor([[1.0, 0.0], [5.0, 0.0], [1.0, 0.6], [0.2, 1.0]])
    y = torch.tensor([0, 0, 1, 1])
    with pytest.raises(ValueError, match=message):
        call(e, y)


def test_nmi_takes_the_largest_seed():
    g = torch.Generator().manual_seed(0)
    e = torch.cat([torch.randn(4, 2, generator=g), torch.randn(4, 2, generator=g) + 5])
    y = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    assert metrics.nmi(e, y, seed=2**32 - 1) == pytest.approx(1.0)


def test_knn_majority_of_three_overrides_the_nearest_neighbour():
    """Euclidean, on a line: class 0 at 0 and 0.1, class 1 at 1, 1.5, 2. A query at 0.6
    has class 1 nearest (0.4) but two class-0 examples next (0.5, 0.6): 3-NN says 0,
    1-NN says 1 (likewise at 0.62). Five queries in two dimensions (the vote table has a
    row per query)."""
    support = torch.tensor([[0.0, 0.0], [0.1, 0.0], [1.0, 0.0], [1.5, 0.0], [2.0, 0.0]])
    support_y = torch.tensor([0, 0, 1, 1, 1])
    query = torch.tensor([[0.6, 0.0], [0.62, 0.0], [0.0, 0.1], [1.3, 0.0], [1.15, 0.1]])
    query_y = torch.tensor([0, 0, 0, 1, 1])
    assert metrics.knn_accuracy(support, support_y, query, query_y, k=3,
                                distance="euclidean") == pytest.approx(1.0)
    assert metrics.knn_accuracy(support, support_y, query, query_y,
                                distance="euclidean") == pytest.approx(3 / 5)


def test_set_metric_messages_count_rows_and_bound_the_seed():
    single = torch.tensor([0, 1, 2])
    with pytest.raises(ValueError, match=r"^map_at_r needs at least one class with two or "
                                         r"more examples$"):
        metrics.map_at_r(torch.randn(3, 4), single)
    with pytest.raises(ValueError, match=r"^emb has 3 rows for 3 classes in labels: NMI "
                                         r"needs more rows than classes"):
        metrics.nmi(torch.randn(3, 4), single)
    with pytest.raises(ValueError, match=r"^seed=4294967296 is out of range: must be "
                                         r"between 0 and 4294967295$"):
        metrics.nmi(torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2]), seed=2**32)


def test_a_perfect_baseline_gives_nan_without_a_warning():
    """Where the baseline makes no error there is nothing to reduce: nan, and no numpy
    'divide by zero' warning in the reader's notebook (the division never meets 0)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = metrics.error_reductions([1.0, 0.5, 0.8], [1.0, 0.75, 0.7])
    assert np.isnan(got[0]) and got[1:] == pytest.approx([0.5, -0.5])


# ---- found by the mutation benchmark: the training loop ----------------------------------
def _linear(w: tuple[float, float] = (1.0, -2.0)) -> torch.nn.Linear:
    model = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([w]))
    return model


def _constant_batches(values):
    """``batches(epoch)`` whose step losses are exactly ``values`` (zero gradient)."""
    return lambda epoch: [torch.tensor(v) for v in values]


def _constant_step(model):
    return lambda batch: batch + 0.0 * model.weight.sum()


def test_sgd_steps_with_the_configured_learning_rate():
    from dml_kit.training import TrainConfig, fit

    model = _linear()
    x = torch.tensor([[3.0, 1.0]])
    fit(model, lambda epoch: [x], lambda b: model(b).sum(),
        TrainConfig(max_epochs=1, optimizer="sgd", lr=0.1, patience=None))
    # first SGD step (momentum buffer = gradient): w <- w - lr * x
    torch.testing.assert_close(model.weight.detach(), torch.tensor([[1.0 - 0.3, -2.0 - 0.1]]))


def test_adam_applies_the_configured_weight_decay():
    from dml_kit.training import TrainConfig, fit

    for decay, moved in ((0.0, False), (0.1, True)):
        model = _linear()
        fit(model, _constant_batches([1.0]), _constant_step(model),
            TrainConfig(max_epochs=1, lr=0.01, weight_decay=decay, patience=None))
        # with a zero loss gradient only the decay term moves the weights (by ~lr)
        changed = not torch.equal(model.weight.detach(), torch.tensor([[1.0, -2.0]]))
        assert changed is moved, decay


def test_an_epoch_loss_is_the_mean_of_its_step_losses():
    from dml_kit.training import TrainConfig, fit

    model = _linear()
    result = fit(model, _constant_batches([1.0, 2.0, 6.0]), _constant_step(model),
                 TrainConfig(max_epochs=2, patience=None))
    assert result.losses == [3.0, 3.0] and result.steps == 6


def test_max_steps_ends_training_inside_an_epoch_and_returns_the_result():
    from dml_kit.training import TrainConfig, TrainResult, fit

    model = _linear()
    result = fit(model, _constant_batches([1.0, 2.0, 6.0]), _constant_step(model),
                 TrainConfig(max_epochs=5, max_steps=2, patience=None))
    assert isinstance(result, TrainResult)
    assert (result.steps, result.epochs, result.losses) == (2, 1, [1.5])


def test_an_equal_score_is_no_new_best_and_patience_counts_from_the_best():
    from dml_kit.training import TrainConfig, fit

    model = _linear()
    result = fit(model, _constant_batches([1.0]), _constant_step(model),
                 TrainConfig(max_epochs=10, patience=2), validate=lambda: 0.5)
    assert (result.best_epoch, result.epochs, result.stopped_early) == (1, 3, True)
    scores = iter([0.5, 0.55, 0.58, 0.7, 0.7, 0.7])
    result = fit(model, _constant_batches([1.0]), _constant_step(model),
                 TrainConfig(max_epochs=6, patience=5, min_delta=0.1),
                 validate=lambda: next(scores))
    assert result.best_epoch == 4 and result.best_score == 0.7


def test_without_validation_the_last_epoch_is_kept():
    from dml_kit.training import TrainConfig, fit

    model = _linear()
    x = torch.tensor([[1.0, 1.0]])
    result = fit(model, lambda epoch: [x], lambda b: model(b).sum(),
                 TrainConfig(max_epochs=3, optimizer="sgd", lr=0.1, patience=None))
    assert result.best_epoch == 3 and result.best_score is None
    assert not torch.equal(model.weight.detach(), torch.tensor([[1.0, -2.0]]))


def test_callbacks_get_the_phase_the_method_and_the_probe_norms():
    from dml_kit.callbacks import Callback
    from dml_kit.training import TrainConfig, fit

    class Events(Callback):
        def __init__(self):
            self.begin, self.end = [], []

        def on_train_begin(self, event):
            self.begin.append((event.phase, event.method))

        def on_train_end(self, event):
            self.end.append(event.phase)

    model = _linear()
    history, events = HistoryCallback(), Events()
    probe = (torch.tensor([[3.0, 4.0], [0.0, 1.0]]), torch.tensor([0, 1]))
    fit(model, _constant_batches([1.0, 2.0]), _constant_step(model),
        TrainConfig(max_epochs=2, patience=None), callbacks=[history, events], probe=probe,
        phase="adapt", method="m")
    assert events.begin == [("adapt", "m")] and events.end == ["adapt"]
    assert {s["phase"] for s in history.steps} == {"adapt"} and len(history.steps) == 4
    # the probe's norms (|model(x)| = |3 - 8| and |-2|) at every epoch end
    assert [(e["norm_min"], e["norm_max"]) for e in history.epochs] == [(2.0, 5.0)] * 2


@pytest.mark.parametrize("field, value", [("max_steps", 0), ("grad_clip", 0.0),
                                          ("grad_clip", -1.0)])
def test_train_config_refuses_steps_and_clips_out_of_range(field, value):
    from dml_kit.training import TrainConfig

    with pytest.raises(ValueError, match=rf"^{field}=.* is out of range"):
        TrainConfig(**{field: value})


# ---- found by the mutation benchmark: tasks and splits -----------------------------------
def test_a_two_class_dataset_splits_one_and_one(make_blobs):
    split = data.domain_split(make_blobs(2, 3))
    assert (split.source.n_classes, split.target.n_classes) == (1, 1)


def test_splits_and_tasks_default_to_seed_zero(make_blobs):
    d = make_blobs(12, 6)
    a, b = data.domain_split(d), data.domain_split(d, seed=0)
    assert a.target.class_names == b.target.class_names
    assert data.domain_split(d, seed=1).target.class_names != a.target.class_names
    t0, t = data.kshot_task(d, 5, 2, seed=0), data.kshot_task(d, 5, 2)
    assert t.class_names == t0.class_names and torch.equal(t.support_x, t0.support_x)


def test_a_task_shows_at_most_five_class_names(make_blobs):
    d = make_blobs(8, 6)
    assert repr(data.kshot_task(d, 5, 2)).endswith("; classes: 0, 2, 3, 4, 7)")
    assert repr(data.kshot_task(d, 7, 2)).endswith("; classes: 0, 1, 2, 3, 4, ...)")


@pytest.mark.parametrize("call, message", [
    (lambda d: data.kshot_task(d, 9, 1),
     r"^n_way=9 is out of range: must be between 1 and 8 \('blobs' has 8 classes\)$"),
    (lambda d: data.kshot_task(d, 3, 2, n_query=5),
     r"^n_query=5 is out of range: must be between 1 and 4 \(the smallest chosen class '0' "
     r"has 6 examples; k_shot=2 and n_val=0 are taken\)$"),
    (lambda d: data.kshot_task(d, 3, 1, n_val=-1), r"^n_val=-1 is out of range: must be >= 0$"),
    (lambda d: data.domain_split("x"), r"^data must be a dml_kit.data.Dataset, got str$"),
])
def test_task_errors_say_exactly_what_is_wrong(make_blobs, call, message):
    with pytest.raises(ValueError, match=message):
        call(make_blobs(8, 6))


# ---- found by the mutation benchmark: losses ---------------------------------------------
def test_semi_hard_with_many_positives_matches_the_per_column_pass(monkeypatch):
    """Above SEMI_HARD_LOOP_POSITIVES positives per anchor the loss takes its sorted path;
    it must give the value and gradient of the per-column pass (checked against a naive
    loop in test_losses)."""
    from dml_kit.losses import pair

    g = torch.Generator().manual_seed(0)
    y = torch.arange(3).repeat_interleave(pair.SEMI_HARD_LOOP_POSITIVES + 4)
    x = torch.randn(len(y), 6, generator=g, dtype=torch.float64)
    loss = pair.SemiHardTripletLoss(margin=0.3)

    def value_and_grad():
        xa = x.clone().requires_grad_(True)
        value = loss(xa, y)
        value.backward()
        return value.detach(), xa.grad

    sorted_path = value_and_grad()
    monkeypatch.setattr(pair, "SEMI_HARD_LOOP_POSITIVES", 10**6)
    column_pass = value_and_grad()
    torch.testing.assert_close(sorted_path[0], column_pass[0])
    torch.testing.assert_close(sorted_path[1], column_pass[1])
    assert float(sorted_path[0]) > 0


def test_pairwise_distance_between_two_sets_ignores_exact_diagonal():
    from dml_kit.losses.distances import pairwise_distance

    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(4, 3, generator=g), torch.randn(6, 3, generator=g)
    for distance in ("euclidean", "sqeuclidean"):
        torch.testing.assert_close(pairwise_distance(x, y, distance, exact_diagonal=False),
                                   pairwise_distance(x, y, distance))
        assert pairwise_distance(x, y, distance, exact_diagonal=False).shape == (4, 6)


def test_margin_loss_adds_nu_times_the_betas():
    from dml_kit.losses.pair import MarginLoss

    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(8, 4, generator=g), torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    plain = MarginLoss(beta=1.2)(x, y)
    assert float((MarginLoss(beta=1.2, nu=0.5)(x, y) - plain).detach()) == pytest.approx(0.6)


# ---- found by the mutation benchmark: hash layout, classifier target phases --------------
def test_the_cell_hash_is_the_documented_payload():
    """Stored records are found by this hash: its payload changes only with HASH_VERSION
    (or the recipe), never by a renamed key."""
    from dataclasses import asdict

    from dml_kit.experiments.store import stable_hash

    spec = GridSpec.create("digits", "metric", [1], [5], 1, tasks=1, **GRID_TINY)
    payload = {"v": grid_module.HASH_VERSION, "recipe": grid_module.RECIPE_VERSION,
               "dataset": "digits", "data": "f" * 16, "method": "metric", "k": 1, "n": 5,
               "seed": 3, "task": 2, "config": spec.config.hash_dict(),
               "source": asdict(spec.source)}
    assert grid_module.cell_hash("digits", "metric", 1, 5, 3, spec.config, spec.source,
                                 fingerprint="f" * 16, task=2) == stable_hash(payload)


@pytest.mark.parametrize("name", ["scratch", "weight_transfer"])
def test_classifier_methods_report_their_target_phase(split, name):
    task = data.kshot_task(split.target, n_way=5, k_shot=2, seed=1)
    history = HistoryCallback(keep_norms=False)
    source = None if name == "scratch" else split.source
    result = methods.run(name, task, source, TINY, seed=0, callbacks=history)
    assert history.phases[-1] == "adapt" and history.steps[-1]["phase"] == "adapt"
    assert result.metrics["target_epochs"] >= result.metrics["target_best_epoch"] >= 1
