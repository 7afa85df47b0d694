"""The SEC study: its rows, the store, the weight sweep's data, the tables and verdicts."""

import math

import pandas as pd
import pytest
import torch

from dml_kit import stats
from dml_kit.experiments import sec_study
from dml_kit.experiments.store import ResultsStore
from dml_kit.methods.config import MethodConfig

TINY_CONFIG = MethodConfig(embedding_dim=8, hidden=(16,), source_epochs=2, source_patience=2,
                           batches_per_epoch=2, batch_classes=4, batch_per_class=3,
                           val_fraction=0.25, val_classes=4)
TINY = sec_study.SecSetting(name="tiny", description="test", dataset="blobs",
                            train_classes=12, test_classes=8, val_fraction=0.25,
                            seeds=(0, 1, 2), losses=("triplet", "cosface"), sweep=(0.1, 1.0),
                            config=TINY_CONFIG)


@pytest.fixture(scope="module")
def blobs(make_blobs):
    return make_blobs(30, 8, dim=12)


@pytest.fixture(scope="module")
def study(blobs, tmp_path_factory):
    store = ResultsStore(tmp_path_factory.mktemp("sec") / "r.sqlite")
    return sec_study.sec_study(blobs, TINY, store=store, progress=False), store


def test_study_rows_records_and_weights(study):
    frame, store = study
    assert list(frame.columns) == sec_study.COLUMNS
    sweep, test = frame[frame.role == "sweep"], frame[frame.role == "test"]
    # triplet has the paper's weight (no sweep); cosface sweeps its 2 weights
    assert set(sweep.loss) == {"cosface"} and sorted(sweep.weight) == [0.1, 1.0]
    assert len(test) == 2 * 2 * 3 and len(store) == len(frame) == 14
    assert {r.kind for r in store.records()} == {"sec_study"}
    assert set(test[test.loss == "triplet"].weight) == {0.0, sec_study.PAPER_WEIGHTS["triplet"]}
    best = sweep.sort_values(["recall@1", "weight"], ascending=[False, True]).weight.iloc[0]
    assert set(test[(test.loss == "cosface") & test.sec].weight) == {best}
    assert (test[~test.sec].weight == 0).all()
    for col in ("recall@1", "recall@2", "recall@4", "map@r", "nmi"):
        assert test[col].between(0, 1).all()
    assert (test["recall@1"] <= test["recall@2"]).all()
    assert (test["recall@2"] <= test["recall@4"]).all()
    assert (test.eval_classes == 8).all() and (sweep.eval_classes == 3).all()
    assert (test.epochs == 2).all() and all(len(c) == 2 for c in test.epoch_norm_cv)
    assert sweep.nmi.isna().all()       # the sweep needs only Recall@1


def test_rerun_reads_the_store(study, blobs, monkeypatch):
    frame, store = study

    def no_training(*args, **kwargs):
        raise AssertionError("the store should have answered")

    monkeypatch.setattr(sec_study, "train_source", no_training)
    again = sec_study.sec_study(blobs, TINY, store=store, progress=False)
    pd.testing.assert_frame_equal(again.drop(columns="seconds"), frame.drop(columns="seconds"))
    stored = sec_study.stored_sec_study(store, "tiny")
    assert len(stored) == len(frame)
    assert sec_study.stored_sec_study(store, "other").empty


def test_weight_sweep_never_sees_test_classes(blobs, monkeypatch):
    split = sec_study.sec_split(blobs, 12, 8, 0.25, 0)
    test_names = {blobs.class_names[c] for c in split.test}
    seen = []
    real = sec_study.train_source

    def spy(kind, data, *args, **kwargs):
        seen.append((data.name, set(data.class_names)))
        return real(kind, data, *args, **kwargs)

    monkeypatch.setattr(sec_study, "train_source", spy)
    setting = TINY.replace(losses=("cosface",), seeds=(0,))
    sec_study.sec_study(blobs, setting, progress=False)
    sweeps = [names for name, names in seen if "sweep" in name]
    assert len(sweeps) == 2
    val_names = {blobs.class_names[c] for c in split.val}
    for names in sweeps:
        assert not names & test_names and not names & val_names
    finals = [names for name, names in seen if "sweep" not in name]
    assert all(names == {blobs.class_names[c] for c in split.train} for names in finals)


def test_sec_split_is_disjoint_and_seeded(blobs):
    split = sec_study.sec_split(blobs, 12, 8, 0.25, seed=3)
    assert len(split.train) == 12 and len(split.test) == 8 and len(split.val) == 3
    assert not set(split.train) & set(split.test) and set(split.val) <= set(split.train)
    assert set(split.fit) == set(split.train) - set(split.val)
    assert split == sec_study.sec_split(blobs, 12, 8, 0.25, seed=3)
    with pytest.raises(ValueError, match="exceeds the 30 classes"):
        sec_study.sec_split(blobs, 25, 8, 0.25)
    with pytest.raises(ValueError, match="val_fraction"):
        sec_study.sec_split(blobs, 12, 8, 0.9)


def test_bad_settings_are_refused_by_name(blobs):
    with pytest.raises(ValueError, match="setting"):
        sec_study.sec_study(blobs, "huge")
    with pytest.raises(ValueError, match="losses"):
        TINY.replace(losses=("no_such_loss",))
    with pytest.raises(ValueError, match="sweep"):
        TINY.replace(sweep=())
    with pytest.raises(ValueError, match="unknown setting field"):
        TINY.replace(colour="red")
    with pytest.raises(ValueError, match="source_epochs"):
        TINY.replace(source_epochs=0)
    assert TINY.replace(seeds=2).seeds == (0, 1)
    with pytest.raises(FloatingPointError, match="NaN"):
        sec_study.retrieval_scores(torch.full((4, 2), math.nan), torch.tensor([0, 0, 1, 1]))
    with pytest.raises(ValueError, match="val_classes"):
        sec_study.choose_weight(blobs, [0], "cosface", TINY)


T_975_2 = 4.302652729911275  # Student's t quantile, 2 degrees of freedom (three seeds)


def _hand_frame():
    """Two losses, three seeds: triplet gains 0.05, 0.07, 0.03 R@1 with SEC and its CV
    falls 0.3 -> 0.1; cosface loses 0.01, gains 0.01, 0.0 and its CV barely moves."""
    rows = []
    gains = {"triplet": [0.05, 0.07, 0.03], "cosface": [-0.01, 0.01, 0.0]}
    cv = {"triplet": (0.3, 0.1), "cosface": (0.2, 0.19)}
    for loss in gains:
        for seed in range(3):
            for sec in (False, True):
                r1 = 0.5 + 0.1 * seed + (gains[loss][seed] if sec else 0.0)
                c = cv[loss][sec] + 0.01 * seed
                rows.append(dict(role="test", loss=loss, sec=sec, weight=1.0 if sec else 0.0,
                                 seed=seed, **{"recall@1": r1, "recall@2": r1, "recall@4": r1,
                                               "map@r": r1 / 2, "nmi": 0.5, "norm_mean": 2.0,
                                               "norm_cv": c},
                                 epochs=2, epoch_norm_mean=[1.0 + seed, 2.0 + seed],
                                 epoch_norm_cv=[c, c], train_classes=10, eval_classes=5,
                                 seconds=1.0))
    frame = pd.DataFrame(rows)
    assert list(frame.columns) == sec_study.COLUMNS
    return frame


def test_sec_table_gives_paired_t_intervals():
    table = sec_study.sec_table(_hand_frame())
    row = table[(table.loss == "triplet") & (table.score == "recall@1")].iloc[0]
    # gains 0.05, 0.07, 0.03: mean 0.05, sd 0.02 -> half-width t * 0.02 / sqrt(3)
    half = T_975_2 * 0.02 / 3 ** 0.5
    assert row.gain_mean == pytest.approx(0.05)
    assert (row.gain_low, row.gain_high) == pytest.approx((0.05 - half, 0.05 + half))
    assert row.without_mean == pytest.approx(0.6) and row.verdict == stats.HOLDS
    cv = table[(table.loss == "triplet") & (table.score == "norm_cv")].iloc[0]
    assert cv.gain_mean == pytest.approx(-0.2) and cv.verdict == stats.HOLDS  # CV falls
    cos = table[(table.loss == "cosface") & (table.score == "recall@1")].iloc[0]
    assert cos.verdict == stats.UNRESOLVED
    summary = sec_study.sec_summary(_hand_frame())
    assert list(summary.index) == ["triplet", "cosface"]
    assert summary.loc["triplet", "R@1 verdict"] == stats.HOLDS


def test_sec_verdicts_per_loss_and_overall():
    v = sec_study.sec_verdicts(_hand_frame())
    assert v.gains["triplet"].label == stats.HOLDS
    assert v.gains["cosface"].label == stats.UNRESOLVED
    # mean over losses per seed: 0.02, 0.04, 0.015 -> mean 0.025
    assert v.overall.estimate.mean == pytest.approx(0.025)
    assert v.cv["triplet"].label == stats.HOLDS and v.cv["cosface"].label == stats.HOLDS
    assert v.not_worse["triplet"].label == stats.HOLDS
    assert any("mean over losses" in line for line in v.lines())
    with pytest.raises(ValueError, match="no test rows"):
        sec_study.sec_verdicts(_hand_frame().assign(role="sweep"))
    one_sided = _hand_frame().query("not (loss == 'cosface' and sec)")
    with pytest.raises(ValueError, match="cosface"):
        sec_study.sec_verdicts(one_sided)


def test_norm_curves_average_over_seeds():
    curves = sec_study.norm_curves(_hand_frame())
    row = curves[(curves.loss == "triplet") & ~curves.sec & (curves.epoch == 2)].iloc[0]
    assert row.norm_mean == pytest.approx(3.0) and row.seeds == 3   # 2, 3, 4
    assert row.norm_cv == pytest.approx(0.31)
    assert len(curves) == 2 * 2 * 2


def test_study_figures_build():
    from dml_kit.viz import studies

    fig = studies.sec_norm_curves(sec_study.norm_curves(_hand_frame()))
    assert len(fig.data) == 2 * 2 * 2
    bars = studies.sec_gain_bars(sec_study.sec_table(_hand_frame()))
    assert list(bars.data[0].x) == ["triplet", "cosface"]
    with pytest.raises(ValueError, match="losses"):
        studies.sec_norm_curves(sec_study.norm_curves(_hand_frame()), losses=["arcface"])


def test_cli_settings_match_the_studies():
    from dml_kit.__main__ import STUDY_SETTINGS
    from dml_kit.experiments import shift_study

    assert set(STUDY_SETTINGS) == set(sec_study.SETTINGS) == set(shift_study.SHIFT_SETTINGS)


def test_stored_or_quick_reads_a_complete_study_or_says_how_to_make_one(study, blobs,
                                                                        tmp_path):
    frame, store = study
    stored, note = sec_study.stored_or_quick(TINY, store)
    assert "stored tiny study (12 final runs)" in note and len(stored) == len(frame)
    quick, note = sec_study.stored_or_quick(TINY, tmp_path / "none.sqlite", data=blobs,
                                            losses=("triplet",), seeds=2)
    assert "holds 0 of the 12 final runs" in note
    assert "python -m dml_kit sec --setting tiny" in note
    assert set(quick.loss) == {"triplet"} and len(quick) == 4
    assert not (tmp_path / "none.sqlite").exists()


def test_sec_table_clips_shown_recall_intervals_not_norm_ones():
    """Recall@1 without SEC of 0.95, 0.6, 0.99 over three seeds: the t-interval passes 1;
    the text stops at 1.000 and says so, the numbers and the verdict keep the raw interval;
    the norm CV (non-negative, open above) is cut at 0 below and never above."""
    frame = _hand_frame()
    plain = (frame["loss"] == "triplet") & ~frame["sec"]
    frame.loc[plain, "recall@1"] = [0.95, 0.6, 0.99]
    frame.loc[plain & (frame["seed"] == 0), "norm_cv"] = 30.0
    table = sec_study.sec_table(frame)
    row = table[(table.loss == "triplet") & (table.score == "recall@1")].iloc[0]
    assert row.without_high > 1.0 and row.without.endswith(", 1.000] (clipped to [0, 1], n = 3)")
    cv = table[(table.loss == "triplet") & (table.score == "norm_cv")].iloc[0]
    assert cv.without_low < 0 and cv.without.split("[")[1].startswith("0.000, ")
    assert cv.without_high > 30.0 / 3 and f"{cv.without_high:.3f}]" in cv.without
