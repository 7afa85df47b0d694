"""dml_kit.data: the registry, digits, the cache folder, samplers and the acceptance path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

import dml_kit.data as data
from dml_kit.data import (
    BalancedBatchSampler,
    Dataset,
    Episode,
    EpisodeSampler,
    domain_split,
    kshot_task,
)
from dml_kit.data.paths import atomic_write, atomic_write_npz, cache_file, data_root


# ---- registry --------------------------------------------------------------------------
def test_available_lists_the_embedded_datasets() -> None:
    names = data.available()
    assert {"digits", "glyphs"} <= set(names)
    assert names == sorted(names)


def test_unknown_dataset_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown dataset name 'mnisst'.*digits.*glyphs"):
        data.load("mnisst")


def test_load_checks_the_seed() -> None:
    with pytest.raises(ValueError, match="seed"):
        data.load("digits", seed="0")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="seed"):
        data.load("digits", seed=-1)


def test_register_adds_a_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(data, "_LOADERS", dict(data._LOADERS))
    calls = []

    def loader(*, seed: int, download: bool, root: object) -> Dataset:
        calls.append((seed, download, root))
        return Dataset("tiny", torch.zeros(2, 3), torch.tensor([0, 1]), ("a", "b"), ("g", "g"))

    data.register("Tiny", loader)
    assert "tiny" in data.available()
    loaded = data.load("TINY", seed=4, download=True, root="/somewhere")
    assert loaded.name == "tiny" and calls == [(4, True, "/somewhere")]
    with pytest.raises(ValueError, match="already registered"):
        data.register("tiny", loader)
    data.register("tiny", loader, replace=True)
    with pytest.raises(ValueError, match="name"):
        data.register("", loader)
    with pytest.raises(ValueError, match="loader"):
        data.register("other", 3)  # type: ignore[arg-type]


# ---- digits ----------------------------------------------------------------------------
def test_digits_values() -> None:
    from sklearn.datasets import load_digits

    digits = data.load("digits")
    assert digits.name == "digits"
    assert digits.x.shape == (1797, 1, 8, 8) and digits.x.dtype == torch.float32
    assert digits.y.dtype == torch.int64
    assert digits.class_names == tuple("0123456789")
    assert digits.groups == ("digits",)
    assert float(digits.x.min()) == 0.0 and float(digits.x.max()) == 1.0
    reference = load_digits()
    assert np.allclose(digits.x[5, 0].numpy(), reference.images[5] / 16.0)
    assert digits.y[:10].tolist() == reference.target[:10].tolist()
    assert digits.class_counts.sum() == 1797 and digits.min_class_size == 174


# ---- cache folder ----------------------------------------------------------------------
def test_data_root_default_env_and_argument(monkeypatch: pytest.MonkeyPatch,
                                            tmp_path: Path) -> None:
    monkeypatch.delenv("DML_KIT_DATA", raising=False)
    repo = Path(data.__file__).resolve().parents[2]
    assert data_root() == repo / "data"
    monkeypatch.setenv("DML_KIT_DATA", str(tmp_path))
    assert data_root() == tmp_path
    assert cache_file("a.npz") == tmp_path / "a.npz"
    assert data_root(tmp_path / "x") == tmp_path / "x"


def test_atomic_write_npz_round_trip(tmp_path: Path) -> None:
    path = atomic_write_npz(tmp_path / "sub" / "a.npz", x=np.arange(5), name=np.asarray("hi"))
    with np.load(path) as loaded:
        assert loaded["x"].tolist() == [0, 1, 2, 3, 4] and str(loaded["name"]) == "hi"
    assert os.listdir(tmp_path / "sub") == ["a.npz"]  # no temporary file left
    assert (path.stat().st_mode & 0o777) == 0o644


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "b.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_write(target) as handle:
        handle.write(b"half")
        raise RuntimeError("crash while writing")
    assert target.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["b.bin"]


# ---- samplers --------------------------------------------------------------------------
LABELS = torch.tensor([0] * 6 + [1] * 2 + [2] * 5 + [3] * 9 + [5] * 4)  # label 4 unused


def test_balanced_batches_have_p_classes_times_m_samples() -> None:
    sampler = BalancedBatchSampler(LABELS, classes_per_batch=3, samples_per_class=4, seed=0,
                                   batches_per_epoch=50)
    assert len(sampler) == 50 and sampler.batch_size == 12
    batches = list(sampler)
    assert len(batches) == 50
    for batch in batches:
        assert batch.dtype == torch.int64 and batch.shape == (12,)
        per_class = LABELS[batch].view(3, 4)
        assert (per_class == per_class[:, :1]).all()          # grouped by class
        assert len(set(per_class[:, 0].tolist())) == 3        # P distinct classes
        for row, labels in zip(batch.view(3, 4), per_class, strict=True):
            if int(labels[0]) != 1:                           # classes with >= M examples
                assert len(set(row.tolist())) == 4            # ... draw without replacement
            else:                                             # class 1 has 2 < M = 4
                assert set(row.tolist()) == {6, 7}            # all of it, then repeats
    seen = torch.cat(batches)
    assert set(LABELS[seen].tolist()) == {0, 1, 2, 3, 5}      # every class is reachable


def test_balanced_sampler_default_length_and_determinism() -> None:
    sampler = BalancedBatchSampler(LABELS, 2, 3)
    assert len(sampler) == len(LABELS) // 6
    again = BalancedBatchSampler(LABELS, 2, 3)
    first = list(sampler)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    second_epoch = list(sampler)  # the stream continues: a new epoch differs
    assert not all(torch.equal(a, b) for a, b in zip(first, second_epoch, strict=True))
    other_seed = list(BalancedBatchSampler(LABELS, 2, 3, seed=1))
    assert not all(torch.equal(a, b) for a, b in zip(first, other_seed, strict=True))
    assert "2 classes x 3 samples" in repr(sampler)


def test_balanced_sampler_works_as_a_dataloader_batch_sampler() -> None:
    dataset = torch.utils.data.TensorDataset(torch.arange(len(LABELS)), LABELS)
    sampler = BalancedBatchSampler(LABELS, 2, 2, batches_per_epoch=3)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler)
    batches = list(loader)
    assert len(batches) == 3 and batches[0][0].shape == (4,)


@pytest.mark.parametrize(("args", "kwargs", "match"), [
    ((6, 2), {}, r"classes_per_batch=6 is out of range: must be between 1 and 5"),
    ((0, 2), {}, "classes_per_batch"),
    ((2, 0), {}, "samples_per_class"),
    ((2, 2), {"seed": "x"}, "seed"),
    ((2, 2), {"batches_per_epoch": 0}, "batches_per_epoch"),
])
def test_balanced_sampler_errors(args: tuple, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        BalancedBatchSampler(LABELS, *args, **kwargs)


def test_sampler_label_checks() -> None:
    with pytest.raises(ValueError, match="labels"):
        BalancedBatchSampler(torch.tensor([0.5, 1.0]), 1, 1)
    with pytest.raises(ValueError, match="labels"):
        EpisodeSampler([], 1, 1, 1, n_episodes=1)


def test_episodes_are_disjoint_and_relabelled() -> None:
    sampler = EpisodeSampler(LABELS, n_way=3, k_shot=2, q_query=2, n_episodes=40, seed=3)
    assert len(sampler) == 40
    episodes = list(sampler)
    assert len(episodes) == 40
    used = set()
    for episode in episodes:
        assert isinstance(episode, Episode)
        assert episode.support_idx.shape == (6,) and episode.query_idx.shape == (6,)
        assert episode.support_y.tolist() == [0, 0, 1, 1, 2, 2]
        assert episode.query_y.tolist() == [0, 0, 1, 1, 2, 2]
        assert (episode.n_way, episode.k_shot, episode.q_query) == (3, 2, 2)
        assert set(episode.support_idx.tolist()).isdisjoint(episode.query_idx.tolist())
        assert torch.equal(LABELS[episode.support_idx], episode.classes[episode.support_y])
        assert torch.equal(LABELS[episode.query_idx], episode.classes[episode.query_y])
        assert len(set(episode.classes.tolist())) == 3
        used.update(episode.classes.tolist())
    assert used == {0, 2, 3, 5}  # class 1 (2 examples) cannot fill 2 + 2
    again = list(EpisodeSampler(LABELS, 3, 2, 2, n_episodes=40, seed=3))
    assert all(torch.equal(a.support_idx, b.support_idx) and torch.equal(a.query_idx, b.query_idx)
               for a, b in zip(episodes, again, strict=True))
    assert "3-way 2-shot 2-query" in repr(sampler) and "3-way" in repr(episodes[0])


@pytest.mark.parametrize(("args", "kwargs", "match"), [
    ((5, 2, 2), {"n_episodes": 1}, r"n_way=5 is out of range: must be between 1 and 4"),
    ((2, 5, 5), {"n_episodes": 1}, r"k_shot=5 \+ q_query=5 = 10 is out of range"),
    ((2, 0, 2), {"n_episodes": 1}, "k_shot"),
    ((2, 1, 0), {"n_episodes": 1}, "q_query"),
    ((2, 1, 1), {"n_episodes": 0}, "n_episodes"),
    ((2, 1, 1), {"n_episodes": 1, "seed": 2.0}, "seed"),
])
def test_episode_sampler_errors(args: tuple, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        EpisodeSampler(LABELS, *args, **kwargs)


# ---- acceptance ------------------------------------------------------------------------
def _acceptance_run(glyphs: Dataset) -> list[torch.Tensor]:
    """Load, split, draw the tasks; return every tensor that must be reproducible."""
    out: list[torch.Tensor] = []
    digits = data.load("digits")
    for dataset in (digits, glyphs):
        source, target = domain_split(dataset, seed=7)
        one_shot = kshot_task(target, n_way=5, k_shot=1, seed=7)
        assert one_shot.support_x.shape[0] == 5
        out += [one_shot.support_x, one_shot.support_y, one_shot.query_x, one_shot.query_y]
    # 20 ways need a target with >= 20 classes: glyphs (digits has 5 after the split)
    _, target = domain_split(glyphs, by="group", seed=7)
    task = kshot_task(target, n_way=20, k_shot=10, n_val=5, seed=7)
    assert task.support_x.shape == (200, 1, 28, 28)
    assert task.val_x.shape == (100, 1, 28, 28)
    assert task.query_x.shape == (20 * task.n_query, 1, 28, 28) and task.n_query >= 10
    out += [task.support_x, task.val_x, task.query_x, task.query_y]
    return out


def test_acceptance_two_seeded_runs_are_identical(glyphs: Dataset) -> None:
    first = _acceptance_run(glyphs)
    second = _acceptance_run(data.load("glyphs"))
    assert len(first) == len(second)
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


@pytest.fixture(scope="module")
def glyphs() -> Dataset:
    """The cached glyph set (generated into the data folder on first use)."""
    return data.load("glyphs")


def test_load_passes_loader_options_and_names_unknown_ones():
    import dml_kit.data as data

    with pytest.raises(ValueError, match=r"does not take option\(s\) \['path'\]"):
        data.load("digits", path="/nowhere")
    with pytest.raises(Exception, match="nowhere"):
        data.load("mnist", path="/nowhere/at/all")


def test_atomic_write_removes_a_killed_writers_part(tmp_path: Path) -> None:
    """Every cache write (real datasets, records) cleans the parts of dead writers first;
    a live writer's part stays."""
    target = tmp_path / "cache.npz"
    dead = tmp_path / f".{target.name}.999999999-abcd1234.part"   # no such pid
    live = tmp_path / f".{target.name}.{os.getppid()}-abcd1234.part"
    dead.write_bytes(b"half")
    live.write_bytes(b"half")
    atomic_write_npz(target, x=np.arange(3))
    assert not dead.exists() and live.exists()
    assert np.load(target)["x"].tolist() == [0, 1, 2]
