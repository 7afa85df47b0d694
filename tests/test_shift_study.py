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


# ---- the full shape: several shots, two adaptations, two methods ------------------------
def test_several_shots_and_both_adaptations_share_one_source_model(ladder_and_data,
                                                                    monkeypatch):
    data, ladder = ladder_and_data
    calls = []
    real = shift_study.train_source
    monkeypatch.setattr(shift_study, "train_source",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    frame = shift_study.generalisation_study(
        data, ladder[:1], k_shot=(2, 5), adaptation=("last_layer", "full"), seeds=(0,),
        progress=False, max_test_classes=8, **TINY)
    assert len(calls) == 1 and len(frame) == 1 + 2 * 2
    units = set(zip(frame.setting, frame.k, frame.adaptation, strict=True))
    assert units == {("zero-shot", 0, "none"), ("few-shot", 2, "last_layer"),
                     ("few-shot", 2, "full"), ("few-shot", 5, "last_layer"),
                     ("few-shot", 5, "full")}
    assert set(frame.loss) == {"histogram"} and frame["recall@1"].between(0, 1).all()
    with pytest.raises(ValueError, match="adaptation"):
        shift_study.generalisation_study(data, ladder, adaptation="magic", progress=False)
    with pytest.raises(ValueError, match="k_shot"):
        shift_study.generalisation_study(data, ladder, k_shot=(), progress=False)


def test_support_subset_keeps_the_queries(make_blobs):
    import torch

    from dml_kit.data import kshot_task

    task = kshot_task(make_blobs(6, 8), 6, 5, seed=0)
    sub = shift_study._support_subset(task, 2)
    assert sub.k_shot == 2 and len(sub.support_y) == 12
    assert torch.equal(sub.query_x, task.query_x) and torch.equal(sub.val_x, sub.support_x)
    first_two = torch.cat([task.support_x[task.support_y == c][:2] for c in range(6)])
    assert torch.equal(sub.support_x, first_two)


def test_adapt_last_layer_trains_only_the_last_linear_layer():
    import torch

    from dml_kit.models import MLP

    torch.manual_seed(0)
    model = MLP(6, embedding_dim=4, hidden=(8,))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(12, 6), torch.arange(4).repeat_interleave(3)
    adapted = shift_study.adapt_last_layer(model, x, y, steps=20, lr=1e-2)
    last = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)][-1]
    for key, value in adapted.state_dict().items():
        assert torch.equal(model.state_dict()[key], before[key])     # original untouched
        if key.startswith(last + "."):
            assert not torch.equal(value, before[key]), key
        else:
            assert torch.equal(value, before[key]), key
    with pytest.raises(ValueError, match="same number"):
        shift_study.adapt_last_layer(model, x, y[:5])
    with pytest.raises(ValueError, match="no nn.Linear"):
        shift_study.adapt_last_layer(torch.nn.ReLU(), x, y)


def _two_methods(b_offsets):
    """The hand frame as method "a" and a copy shifted by ``b_offsets[split]`` as "b"."""
    import pandas as pd

    a = _hand_frame().assign(loss="a")
    b = a.assign(loss="b")
    b["recall@1"] = b["recall@1"] + b["split"].map(b_offsets)
    return pd.concat([a, b], ignore_index=True)


def test_select_and_ranking_change_rules():
    from dml_kit import stats

    swap = _two_methods({0: -0.1, 1: 0.0, 2: 0.1})   # a ahead on rung 0, b on rung 2
    with pytest.raises(ValueError, match="pass loss="):
        shift_study.ladder_table(swap)
    with pytest.raises(ValueError, match="loss='c' is not in"):
        shift_study.select(swap, loss="c")
    change = shift_study.ranking_change(swap, "a", "b")
    assert [v.label for v in change.per_rung] == [stats.HOLDS, stats.FAILS, stats.FAILS]
    # rung 1 differs by exactly 0 in every seed: "fails" by stats.verdict's rule, but a
    # tie is nobody's lead; the swap between rungs 0 and 2 is what holds
    assert change.label == stats.HOLDS
    assert change.interaction.estimate.mean == pytest.approx(0.2)
    steady = shift_study.ranking_change(_two_methods({0: -0.1, 1: -0.1, 2: -0.1}), "a", "b")
    assert steady.label == stats.FAILS
    noisy = _two_methods({0: -0.1, 1: 0.0, 2: 0.0})
    noisy.loc[(noisy.loss == "b") & (noisy.split == 2), "recall@1"] += [0.1, -0.1, 0.05] * 2
    assert shift_study.ranking_change(noisy, "a", "b").label == stats.UNRESOLVED


def test_oodml_table_verdicts_and_figure():
    from dml_kit import stats
    from dml_kit.viz import studies

    frame = _two_methods({0: -0.1, 1: 0.0, 2: 0.1})
    table = shift_study.oodml_table(frame)
    assert list(table.loss) == ["a"] * 3 + ["b"] * 3
    assert {"zero-shot", "5-shot full", "gain 5-shot full"} <= set(table.columns)
    assert table.loc[0, "zero-shot"] == "0.700 [0.452, 0.948]"
    v = shift_study.oodml_verdicts(frame)
    assert v.falls["a"].label == stats.HOLDS
    assert v.falls_all in (stats.HOLDS, stats.FAILS, stats.UNRESOLVED)
    assert v.harder_gain[("a", 5, "full")].estimate.mean == pytest.approx(0.05)
    assert len(v.ranking) == 1 and v.ranking[0].label == stats.HOLDS
    assert any("ranking of a vs b" in line for line in v.lines())
    fig = studies.oodml_ladder(table)
    assert len(fig.data) == 2 * 2                       # 2 methods x (zero-shot, 5-shot full)
    # a second few-shot setting (2 shots): every verdict still finds its rows
    import pandas as pd

    two = frame[frame.setting == "few-shot"].assign(k=2)
    both = pd.concat([frame, two], ignore_index=True)
    v2 = shift_study.oodml_verdicts(both)
    assert set(v2.harder_gain) == {(m, k, "full") for m in "ab" for k in (2, 5)}
    assert v2.ranking[0].label == stats.HOLDS
    assert {"2-shot full", "5-shot full"} <= set(shift_study.oodml_table(both).columns)


def test_oodml_study_stores_and_reads_back(ladder_and_data, tmp_path):
    data, ladder = ladder_and_data
    setting = shift_study.ShiftSetting(name="tiny", description="test", dataset="blobs",
                                       class_step=1, n_splits=3, seeds=(0, 1),
                                       losses=("histogram", "proxy_anchor"), k_shots=(2,),
                                       adaptations=("last_layer",))
    store = ResultsStore(tmp_path / "r.sqlite")
    frame = shift_study.oodml_study(data, setting, ladder=ladder, store=store, progress=False,
                                    **TINY)
    assert len(frame) == 2 * 3 * 2 * 2 and set(frame.loss) == {"histogram", "proxy_anchor"}
    stored = shift_study.stored_oodml_study(store, "tiny")
    assert len(stored) == len(frame)
    again, note = shift_study.stored_or_quick(setting, store)
    assert "stored" in note and len(again) == len(frame)
    with pytest.raises(ValueError, match="setting"):
        shift_study.oodml_study(data, "huge")
    with pytest.raises(ValueError, match="n_splits"):
        setting.replace(n_splits=2)


def test_ladder_table_shows_recall_intervals_clipped_to_their_range():
    """Three seeds of Recall@1 0.95, 0.6, 0.99 on rung 0: the t-interval runs past 1; the
    table's text shows it cut at 1 with the note, the numbers stay the raw interval."""
    frame = _hand_frame()
    rung0 = (frame["split"] == 0) & (frame["setting"] == "zero-shot")
    frame.loc[rung0, "recall@1"] = [0.95, 0.6, 0.99]
    row = shift_study.ladder_table(frame).iloc[0]
    assert row["zero_shot_high"] > 1.0
    assert row["zero-shot"].startswith(f"{row['zero_shot_mean']:.3f} [")
    assert row["zero-shot"].endswith(", 1.000] (clipped to [0, 1], n = 3)")
    assert len(row["zero-shot"]) <= 50       # pandas shows 50 characters of a cell
    assert "clipped" not in table_text(shift_study.ladder_table(_hand_frame()))


def table_text(table) -> str:
    return " ".join(table.astype(str).to_numpy().ravel())
