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
