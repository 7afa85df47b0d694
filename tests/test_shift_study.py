"""The generalisation study along a split ladder: shape of the result, store reuse."""

import pytest

from dml_kit.data.shift import shift_splits
from dml_kit.experiments import shift_study
from dml_kit.experiments.store import ResultsStore

TINY = dict(source_epochs=1, batches_per_epoch=3, target_epochs=2, target_patience=1,
            embedding_dim=8, hidden=(16,), val_classes=4)


@pytest.fixture(scope="module")
def ladder_and_data(make_blobs):
    data = make_blobs(30, 8, dim=12)
    return data, shift_splits(data, n_splits=3, min_classes=6, feature_dim=6, seed=0)


def test_study_returns_one_row_per_rung_seed_setting(ladder_and_data, tmp_path):
    data, ladder = ladder_and_data
    store = ResultsStore(tmp_path / "r.sqlite")
    frame = shift_study.generalisation_study(data, ladder, k_shot=2, seeds=(0,), store=store,
                                             progress=False, max_test_classes=8, **TINY)
    assert list(frame.columns) == shift_study.COLUMNS
    assert len(frame) == 3 * 2
    assert set(frame.setting) == {"zero-shot", "few-shot"}
    assert frame.groupby("split").distance.first().is_monotonic_increasing
    assert frame["recall@1"].between(0, 1).all() and frame["map@r"].between(0, 1).all()
    assert (frame.n_test_classes <= 8).all()
    assert len(store) == 6


def test_study_rerun_reads_the_store(ladder_and_data, tmp_path, monkeypatch):
    data, ladder = ladder_and_data
    store = ResultsStore(tmp_path / "r.sqlite")
    kwargs = dict(k_shot=2, seeds=(0,), store=store, progress=False, max_test_classes=8, **TINY)
    first = shift_study.generalisation_study(data, ladder[:1], **kwargs)

    def no_training(*args, **kw):
        raise AssertionError("the store should have answered")

    monkeypatch.setattr(shift_study, "train_source", no_training)
    again = shift_study.generalisation_study(data, ladder[:1], **kwargs)
    assert again[["recall@1", "map@r"]].equals(first[["recall@1", "map@r"]])


def test_study_errors(ladder_and_data):
    data, ladder = ladder_and_data
    with pytest.raises(ValueError, match="method"):
        shift_study.generalisation_study(data, ladder, method="scratch")
    with pytest.raises(ValueError, match="ladder is empty"):
        shift_study.generalisation_study(data, [])
    with pytest.raises(ValueError, match="k_shot=8 is out of range"):
        shift_study.generalisation_study(data, ladder, k_shot=8, progress=False)


def test_study_scores_every_rung_on_the_smallest_test_side_by_default(ladder_and_data, tmp_path,
                                                                     monkeypatch):
    data, ladder = ladder_and_data
    smallest = min(len(s.test_classes) for s in ladder)
    store = ResultsStore(tmp_path / "r.sqlite")
    kwargs = dict(k_shot=2, seeds=(0, 1), store=store, progress=False, **TINY)
    frame = shift_study.generalisation_study(data, ladder, few_shot=False, eval_draws=3,
                                             **kwargs)
    assert set(frame.setting) == {"zero-shot"} and len(frame) == len(ladder) * 2
    assert (frame.n_test_classes == smallest).all()
    # a different number of scoring draws is a different measurement: not read from the store
    calls = []
    real = shift_study.train_source
    monkeypatch.setattr(shift_study, "train_source",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    shift_study.generalisation_study(data, ladder[:1], few_shot=False, eval_draws=4, **kwargs)
    assert len(calls) == 2
    with pytest.raises(ValueError, match="eval_draws"):
        shift_study.generalisation_study(data, ladder, eval_draws=0, progress=False)


def test_class_draws_are_seeded_subsets_or_everything():
    import torch

    draws = shift_study.class_draws(10, 4, 5, seed=3)
    assert len(draws) == 5 and all(len(d) == 4 and len(set(d.tolist())) == 4 for d in draws)
    assert all(d.tolist() == sorted(d.tolist()) and d.max() < 10 for d in draws)
    again = shift_study.class_draws(10, 4, 5, seed=3)
    assert all(torch.equal(a, b) for a, b in zip(draws, again, strict=True))
    everything = shift_study.class_draws(4, 4, 5, seed=0)
    assert len(everything) == 1 and everything[0].tolist() == [0, 1, 2, 3]


def test_drawn_retrieval_averages_over_class_subsets():
    import torch

    # cosine neighbours: a and b (class 0) both find e (class 2) first, c and d (class 1) find
    # each other, e finds a, f (alone on the left) finds c. All six: R@1 = 2/6. Without
    # class 2: a <-> b and c <-> d, R@1 = 1 and MAP@R = 1.
    emb = torch.tensor([[1, 0], [1, 0.1], [0, 1], [0.1, 1], [1, 0.03], [-1, 0]])
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    r1, mapr = shift_study.drawn_retrieval(emb, labels, [torch.tensor([0, 1])])
    assert r1 == pytest.approx(1.0) and mapr == pytest.approx(1.0)
    r1, _ = shift_study.drawn_retrieval(emb, labels, [torch.tensor([0, 1, 2])])
    assert r1 == pytest.approx(2 / 6)
    both = [torch.tensor([0, 1]), torch.tensor([0, 1, 2])]
    r1, _ = shift_study.drawn_retrieval(emb, labels, both)
    assert r1 == pytest.approx((1 + 2 / 6) / 2)


T_975_2 = 4.302652729911275  # Student's t quantile, 2 degrees of freedom (three seeds)
ZERO = {0: [0.8, 0.7, 0.6], 1: [0.6, 0.55, 0.5], 2: [0.5, 0.4, 0.45]}
GAIN = {0: [0.05, 0.05, 0.08], 1: [0.1, 0.1, 0.1], 2: [0.1, 0.12, 0.11]}


def _hand_frame():
    import pandas as pd

    rows = []
    for split, distance, train in ((0, 1.0, 40), (1, 5.0, 40), (2, 9.0, 30)):
        for seed in range(3):
            z = ZERO[split][seed]
            for setting, k, value in (("zero-shot", 0, z), ("few-shot", 5, z + GAIN[split][seed])):
                rows.append(dict(split=split, distance=distance, seed=seed, setting=setting,
                                 method="metric", k=k, n_test_classes=20,
                                 **{"recall@1": value, "map@r": value / 2},
                                 train_classes=train, seconds=1.0, loss="histogram",
                                 adaptation="none" if k == 0 else "full"))
    frame = pd.DataFrame(rows)
    assert list(frame.columns) == shift_study.COLUMNS
    return frame


def test_ladder_table_gives_t_intervals_over_seeds():
    table = shift_study.ladder_table(_hand_frame())
    assert table["split"].tolist() == [0, 1, 2] and table["seeds"].tolist() == [3, 3, 3]
    assert table["train_classes"].tolist() == [40, 40, 30]
    row = table.iloc[0]
    # zero-shot rung 0: mean 0.7, sd 0.1 -> half-width t * 0.1 / sqrt(3)
    half = T_975_2 * 0.1 / 3 ** 0.5
    assert row["zero_shot_mean"] == pytest.approx(0.7)
    assert (row["zero_shot_low"], row["zero_shot_high"]) == pytest.approx((0.7 - half, 0.7 + half))
    # gain rung 0 (paired by seed): 0.05, 0.05, 0.08 -> mean 0.06, sd sqrt(3e-4) -> half t * 0.01
    assert row["gain_mean"] == pytest.approx(0.06)
    assert (row["gain_low"], row["gain_high"]) == pytest.approx((0.06 - T_975_2 * 0.01,
                                                                  0.06 + T_975_2 * 0.01))
    assert row["few_shot_mean"] == pytest.approx(0.76)
    assert row["zero-shot"] == "0.700 [0.452, 0.948]"
    zero_only = shift_study.ladder_table(_hand_frame().query("setting == 'zero-shot'"))
    assert "gain" not in zero_only and "few_shot_mean" not in zero_only


def test_shift_verdicts_pair_by_seed():
    from dml_kit import stats

    v = shift_study.shift_verdicts(_hand_frame())
    assert v.spearman == pytest.approx(-1.0)
    # easiest minus hardest: 0.3, 0.3, 0.15 -> mean 0.25, sd sqrt(0.0075) -> half t * 0.05
    assert v.falls.estimate.mean == pytest.approx(0.25)
    assert v.falls.estimate.low == pytest.approx(0.25 - T_975_2 * 0.05)
    assert v.falls.label == stats.HOLDS
    # rung 1 minus rung 2: 0.1, 0.15, 0.05 -> mean 0.1, sd 0.05 -> low 0.1 - 0.124 < 0
    assert [s.label for s in v.steps] == [stats.HOLDS, stats.UNRESOLVED]
    assert v.gains[1].estimate.mean == pytest.approx(0.1) and v.gains[1].label == stats.HOLDS
    # gain on the hardest minus the easiest: 0.05, 0.07, 0.03 -> mean 0.05, sd 0.02
    assert v.harder_gain.estimate.mean == pytest.approx(0.05)
    assert v.harder_gain.estimate.low == pytest.approx(0.05 - T_975_2 * 0.02 / 3 ** 0.5)
    # the gap: zero-shot rung 0 minus few-shot rung 2 = 0.2, 0.18, 0.04
    assert v.gap.estimate.mean == pytest.approx(0.14)
    only_zero = shift_study.shift_verdicts(_hand_frame().query("setting == 'zero-shot'"))
    assert only_zero.gains is None and only_zero.falls == v.falls
    with pytest.raises(ValueError, match="at least 3"):
        shift_study.shift_verdicts(_hand_frame().query("split < 2"))


def test_count_control_separates_class_count_from_shift():
    import pandas as pd

    from dml_kit import stats

    control = pd.DataFrame({"split": 0, "seed": [0, 1, 2], "setting": "zero-shot",
                            "recall@1": [0.78, 0.69, 0.62]})
    c = shift_study.count_control(_hand_frame(), control)
    # rung 0 minus control: 0.02, 0.01, -0.02 -> straddles 0
    assert c.count_effect.estimate.mean == pytest.approx(0.01 / 3)
    assert c.count_effect.label == stats.UNRESOLVED
    # control minus the hardest rung: 0.28, 0.29, 0.17 -> mean 0.74/3, clearly above 0
    assert c.shift_effect.estimate.mean == pytest.approx(0.74 / 3)
    assert c.shift_effect.label == stats.HOLDS
    with pytest.raises(ValueError, match="share no seed"):
        shift_study.count_control(_hand_frame(), control.assign(seed=[7, 8, 9]))
