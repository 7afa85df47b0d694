"""Exercise checkers: every worked solution passes; typical mistakes get a helpful hint."""

import re

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
    assert "NOT YET" in str(result) and result._repr_markdown_().startswith("✗ ")


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


# ---- 05: the error reduction; each common mistake is named --------------------------
def _errors(base, method):
    return [(1 - b, 1 - m) for b, m in zip(base, method, strict=True)]


ER_MISTAKES = {
    "accuracy gain": (lambda b, a: sum(y - x for x, y in zip(b, a, strict=True)) / len(b),
                      "accuracy gain"),
    "divided by the baseline accuracy": (
        lambda b, a: sum((y - x) / x for x, y in zip(b, a, strict=True) if x < 1)
        / sum(x < 1 for x in b), "baseline's accuracy"),
    "divided by the method's error": (
        lambda b, a: sum((eb - ea) / ea for eb, ea in _errors(b, a) if eb > 0 and ea > 0)
        / sum(eb > 0 and ea > 0 for eb, ea in _errors(b, a)), "method's error"),
    "sign flipped": (lambda b, a: sum((ea - eb) / eb for eb, ea in _errors(b, a) if eb > 0)
                     / sum(eb > 0 for eb, _ in _errors(b, a)), "sign is flipped"),
    "arguments swapped": (lambda b, a: sum((ea - eb) / ea for eb, ea in _errors(b, a) if ea > 0)
                          / sum(ea > 0 for _, ea in _errors(b, a)), "swapped"),
    "pooled errors": (lambda b, a: (sum(1 - x for x in b) - sum(1 - y for y in a))
                      / sum(1 - x for x in b), "averaged the errors first"),
    "averaged over skipped conditions too": (
        lambda b, a: sum((eb - ea) / eb for eb, ea in _errors(b, a) if eb > 0) / len(b),
        "number of all conditions"),
    "a percentage": (lambda b, a: 100 * exercises.load_solution("error_reduction")(b, a),
                     "not a percentage"),
    "no skip (Python floats)": (lambda b, a: sum((eb - ea) / eb for eb, ea in _errors(b, a))
                                / len(b), "divided by zero"),
    "no skip (numpy: nan)": (lambda b, a: float("nan") if 1.0 in b else
                             exercises.load_solution("error_reduction")(b, a),
                             "no error to reduce"),
    "one value per condition": (lambda b, a: [(eb - ea) / eb for eb, ea in _errors(b, a)
                                              if eb > 0], "return one float"),
}


@pytest.mark.parametrize("mistake", sorted(ER_MISTAKES))
def test_error_reduction_mistakes_are_named(mistake):
    wrong, phrase = ER_MISTAKES[mistake]
    result = exercises.check("error_reduction", wrong)
    assert not result.passed
    assert phrase in result.message, result.message
    if mistake not in ("no skip (Python floats)", "no skip (numpy: nan)",
                       "one value per condition"):
        assert re.search(r"expected -?\d\.\d{4}, got -?\d+\.\d{4}", result.message), \
            result.message


def test_error_reduction_unknown_mistake_restates_the_measure():
    result = exercises.check("error_reduction", lambda b, a: 0.123)
    assert not result.passed and "(err_B - err_A) / err_B" in result.message
    assert "expected 0.2500, got 0.1230" in result.message


# ---- 06: the SEC term; each common mistake is named ---------------------------------
def _norms(e):
    return e.norm(dim=1)


SEC_MISTAKES = {
    "fixed radius 1": (lambda e: ((_norms(e) - 1) ** 2).mean(), "not towards 1"),
    "L2 norm penalty": (lambda e: (_norms(e) ** 2).mean(), "L2 penalty"),
    "absolute deviation": (lambda e: (_norms(e) - _norms(e).mean()).abs().mean(),
                           "Square the deviations"),
    "standard deviation": (lambda e: _norms(e).std(unbiased=False), "standard deviation"),
    "sum over the batch": (lambda e: ((_norms(e) - _norms(e).mean()) ** 2).sum(),
                           "not a sum"),
    "unbiased variance": (lambda e: _norms(e).var(), "not N - 1"),
    "squared norms": (lambda e: (((e ** 2).sum(1) - (e ** 2).sum(1).mean()) ** 2).mean(),
                      "not the squared norms"),
    "column norms": (lambda e: ((e.norm(dim=0) - e.norm(dim=0).mean()) ** 2).mean(),
                     "each row"),
}


@pytest.mark.parametrize("mistake", sorted(SEC_MISTAKES))
def test_sec_mistakes_are_named(mistake):
    wrong, phrase = SEC_MISTAKES[mistake]
    result = exercises.check("sec", wrong)
    assert not result.passed
    assert phrase in result.message, result.message
    assert result.message.startswith("batch 0, value: expected "), result.message


def test_sec_unknown_mistake_restates_the_formula():
    result = exercises.check("sec", lambda e: 3 * _norms(e).var())
    assert not result.passed and "1/N sum_i (||f_i|| - mu)^2" in result.message


# ---- 00: 1-NN on pixels ---------------------------------------------------------------
def _flat(x):
    return torch.nn.functional.normalize(x.flatten(1), dim=1)


NN_MISTAKES = {
    "index instead of label": (lambda s, y, q: (_flat(q) @ _flat(s).T).argmax(1), "index"),
    "euclidean": (lambda s, y, q: y[torch.cdist(q.flatten(1), s.flatten(1)).argmin(1)],
                  "Euclidean"),
    "least similar": (lambda s, y, q: y[(_flat(q) @ _flat(s).T).argmin(1)], "least"),
    "one label for all": (lambda s, y, q: y[:1], "one label per query"),
}


@pytest.mark.parametrize("mistake", sorted(NN_MISTAKES))
def test_nearest_neighbour_mistakes_are_named(mistake):
    wrong, phrase = NN_MISTAKES[mistake]
    result = exercises.check("nearest_neighbour", wrong)
    assert not result.passed and phrase in result.message, result.message


# ---- 07 and 08: the Fréchet distance and Recall@1 --------------------------------------
def _fd(a, b, *, bias=False, square=True, root=True, trace=True):
    import numpy as np
    from scipy import linalg

    a, b = np.asarray(a), np.asarray(b)
    mu = a.mean(0) - b.mean(0)
    gap = float(mu @ mu) if square else float(np.linalg.norm(mu))
    if not trace:
        return gap
    sa, sb = np.cov(a, rowvar=False, bias=bias), np.cov(b, rowvar=False, bias=bias)
    cross = np.real(linalg.sqrtm(sa @ sb)) if root else sa @ sb
    return gap + float(np.trace(sa + sb - 2 * cross))


@pytest.mark.parametrize("mistake, phrase", [
    (dict(bias=True), "1/(n-1)"), (dict(trace=False), "left out the covariance term"),
    (dict(square=False), "*squared* distance"), (dict(root=False), "matrix square root")])
def test_frechet_mistakes_are_named(mistake, phrase):
    result = exercises.check("frechet_distance", lambda a, b: _fd(a, b, **mistake))
    assert not result.passed and phrase in result.message, result.message
    assert exercises.check("frechet_distance", _fd).passed      # the helper itself is right


def _recall(emb, labels, *, leave_out=True, cosine=True):
    if cosine:
        z = torch.nn.functional.normalize(emb, dim=1)
        score = z @ z.T
    else:
        score = -torch.cdist(emb, emb)
    if leave_out:
        score.fill_diagonal_(-float("inf"))
    return float((labels[score.argmax(1)] == labels).double().mean())


@pytest.mark.parametrize("mistake, phrase", [
    (dict(leave_out=False), "its own nearest neighbour"), (dict(cosine=False), "Euclidean")])
def test_recall_at_1_mistakes_are_named(mistake, phrase):
    result = exercises.check("recall_at_1", lambda e, y: _recall(e, y, **mistake))
    assert not result.passed and phrase in result.message, result.message
    assert exercises.check("recall_at_1", _recall).passed
