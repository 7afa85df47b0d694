"""Exercise checkers: every worked solution passes; typical mistakes get a helpful hint."""

import pytest
import torch

from dml_kit import exercises


@pytest.mark.parametrize("name", sorted(exercises.EXERCISES))
def test_every_solution_passes(name):
    result = exercises.check(name, exercises.load_solution(name))
    assert result.passed, result.message


def test_not_attempted_is_reported_not_raised():
    def stub(*args):
        raise NotImplementedError

    result = exercises.check("triplet_loss", stub)
    assert not result and "not attempted" in result.message
    assert "NOT YET" in str(result) and "❌" in result._repr_markdown_()


def test_crashing_code_is_reported():
    result = exercises.check("sec", lambda e: e.foo())
    assert not result.passed and "AttributeError" in result.message


def test_triplet_average_over_all_triplets_gets_the_hint():
    from dml_kit.losses import TripletLoss

    wrong = TripletLoss(margin=0.5, distance="sqeuclidean", normalize=False, average="all")
    result = exercises.check("triplet_loss", lambda e, y, m: wrong(e, y))
    assert not result.passed and "active" in result.message


def test_sec_detach_does_not_change_the_batch_mean_gradient():
    # a teaching point of notebook 06: d/df of mean_i (n_i - mean(n))^2 is the same with
    # and without detaching the mean, because the deviations sum to zero
    def sec_no_detach(e):
        n = e.norm(dim=1)
        return ((n - n.mean()) ** 2).mean()

    assert exercises.check("sec", sec_no_detach).passed
    wrong = exercises.check("sec", lambda e: ((e.norm(dim=1) - 1.0) ** 2).mean())
    assert not wrong.passed and "value" in wrong.message


def test_prototypical_with_plain_euclidean_gets_the_hint():
    from dml_kit.losses import prototypical_loss

    result = exercises.check("prototypical_loss",
                             lambda s, sy, q, qy: prototypical_loss(s, sy, q, qy, "euclidean"))
    assert not result.passed and "squared Euclidean" in result.message


def test_detached_result_is_refused():
    result = exercises.check("cross_entropy",
                             lambda z, y: torch.nn.functional.cross_entropy(z, y).detach())
    assert not result.passed and "no gradient" in result.message


def test_support_split_without_randomness_is_caught():
    def first_k(labels, k, seed):
        support = torch.cat([torch.nonzero(labels == c).flatten()[:k] for c in labels.unique()])
        mask = torch.ones(len(labels), dtype=torch.bool)
        mask[support] = False
        return support, torch.nonzero(mask).flatten()

    result = exercises.check("support_query_split", first_k)
    assert not result.passed and "seed" in result.message


def test_error_reduction_confused_with_accuracy_gain():
    def accuracy_gain(base, method):
        return sum(m - b for b, m in zip(base, method, strict=True)) / len(base)

    result = exercises.check("error_reduction", accuracy_gain)
    assert not result.passed and "accuracy gain" in result.message


def test_unknown_exercise_lists_the_known_ones():
    with pytest.raises(ValueError, match="triplet_loss"):
        exercises.check("tripplet", lambda: None)
