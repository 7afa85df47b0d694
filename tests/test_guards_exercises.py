"""What the exercise checker promises the reader, found by the mutation benchmark
(issue 20, benchmarks/mutation.py): its feedback is reproducible, it looks at a k > 1
episode where a mistake invisible at one shot shows, and its Fréchet tolerance is 1e-4,
absolute below a distance of 1 and relative above.
"""

from __future__ import annotations

import re

import pytest
import torch
import torch.nn.functional as F

from dml_kit import exercises
from dml_kit.data.shift import frechet_distance
from dml_kit.losses import TripletLoss, prototypical_loss


def _summed_prototypes(support, support_y, query, query_y):
    """The prototypical loss with class *sums* as prototypes (a mean at one shot only)."""
    classes = torch.unique(support_y)
    protos = torch.stack([support[support_y == c].sum(0) for c in classes])
    logits = -torch.cdist(query, protos).pow(2)
    return F.cross_entropy(logits, torch.searchsorted(classes, query_y))


# a wrong answer for each exercise whose checker draws random inputs; each message quotes
# numbers computed on those inputs
WRONG = {
    "cross_entropy": lambda z, y: F.cross_entropy(z, y, reduction="sum"),
    "triplet_loss": lambda e, y, m: 2 * TripletLoss(margin=m, distance="sqeuclidean",
                                                    normalize=False)(e, y),
    "prototypical_loss": lambda s, sy, q, qy: 2 * prototypical_loss(s, sy, q, qy),
    "sec": lambda emb: 3 * emb.norm(dim=1).var(),
    "frechet_distance": lambda a, b: frechet_distance(a, b) + 1.0,
    "recall_at_1": lambda emb, y: 0.5,
}


@pytest.mark.parametrize("name", sorted(WRONG))
def test_a_wrong_answer_gets_the_same_feedback_every_time(name):
    """The checker's inputs are seeded: checking the same wrong answer twice quotes the
    same expected and obtained numbers (a checker drawing from torch's global generator
    would give a different expected value on every call)."""
    first = exercises.check(name, WRONG[name])
    torch.randn(100)  # the global generator moves on between the two checks
    second = exercises.check(name, WRONG[name])
    assert not first.passed and re.search(r"\d\.\d", first.message), first.message
    assert second.message == first.message


def test_prototypes_summed_pass_one_shot_and_fail_the_three_shot_episode():
    """Sum and mean prototypes agree at k = 1, so the checker needs an episode with k > 1;
    its message names the episode that failed, the one its success message promises."""
    g = torch.Generator().manual_seed(0)
    s, q = torch.randn(3, 4, generator=g), torch.randn(6, 4, generator=g)
    sy, qy = torch.arange(3), torch.arange(3).repeat_interleave(2)
    assert torch.allclose(_summed_prototypes(s, sy, q, qy), prototypical_loss(s, sy, q, qy))
    result = exercises.check("prototypical_loss", _summed_prototypes)
    assert not result.passed
    assert re.match(r"^5-way 3-shot episode, value: expected \S+, got \S+ \(ratio \S+\)\. "
                    r"Logits are minus the squared distances to the prototypes\.$",
                    result.message), result.message


@pytest.mark.parametrize("offset, passes", [(0.5e-4, True), (1.5e-4, False)])
def test_frechet_answers_are_judged_to_1e4_absolute_near_zero(offset, passes):
    """On identical samples the distance is 0: an answer off by 1.5e-4 there is wrong,
    one off by 0.5e-4 is within the tolerance (1e-4 for distances below 1)."""
    result = exercises.check("frechet_distance", lambda a, b: frechet_distance(a, b) + offset)
    assert result.passed is passes, result.message
    if not passes:
        assert re.match(r"^expected -?0\.00000, got 0\.00015: FD = ", result.message), \
            result.message


@pytest.mark.parametrize("factor, passes", [(1 + 5e-5, True), (1 + 2e-4, False)])
def test_frechet_answers_are_judged_to_1e4_relative_above_one(factor, passes):
    """The shifted samples are more than 1 apart: there the tolerance is relative (an
    answer 5e-5 too large passes, one 2e-4 too large fails on the shifted pair)."""
    result = exercises.check("frechet_distance", lambda a, b: frechet_distance(a, b) * factor)
    assert result.passed is passes, result.message
    if not passes:
        want = float(re.match(r"^expected (\S+), got (\S+):", result.message).group(1))
        assert want > 1.0


FLOAT32 = {
    "cross_entropy": lambda z, y: F.cross_entropy(z.float(), y).double(),
    "triplet_loss": lambda e, y, m: TripletLoss(margin=m, distance="sqeuclidean",
                                                normalize=False)(e.float(), y).double(),
    "prototypical_loss": lambda s, sy, q, qy: prototypical_loss(s.float(), sy, q.float(),
                                                                qy).double(),
}


@pytest.mark.parametrize("name", sorted(FLOAT32))
def test_a_right_answer_computed_in_float32_passes(name):
    """torch's default dtype is float32: a right answer computed in it differs from the
    float64 reference by round-off (gradient entries near 0 by ~1e-7 absolute), which
    the checker forgives."""
    result = exercises.check(name, FLOAT32[name])
    assert result.passed, result.message


def test_a_split_that_loses_an_example_is_told_to_cover_each_once():
    solution = exercises.load_solution("support_query_split")

    def drops_the_last(labels, k, seed):
        support, query = solution(labels, k, seed)
        query = torch.as_tensor(query)
        return support, query[query != len(labels) - 1]

    result = exercises.check("support_query_split", drops_the_last)
    assert result.message == "support and queries together must cover every example once"


def test_a_python_number_is_refused_as_a_scalar_tensor():
    result = exercises.check("sec", lambda emb: emb.detach().norm(dim=1).var().item())
    assert result.message == ("the function must return a scalar tensor (a 0-d "
                              "torch.Tensor), got float ()")
