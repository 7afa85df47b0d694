"""Behaviours of dml_kit.methods found unguarded by the mutation benchmark (issue 20,
benchmarks/mutation.py --shard methods): the source phase's probe and parameters, what a
source model records, the protonet source's episode bound, the leave-one-out scores,
every config range, the saved-model errors and the cache key's payload.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings

import pytest
import torch

from dml_kit import methods
from dml_kit.data.core import Dataset
from dml_kit.methods import MethodConfig, persist
from dml_kit.methods.batches import probe_subset
from dml_kit.methods.phases import Objective
from dml_kit.methods.registry import source_trainers
from dml_kit.methods.scores import loo_1nn_accuracy, loo_prototype_accuracy

TINY = MethodConfig(embedding_dim=8, hidden=(16,), source_epochs=2, source_patience=2,
                    source_lr=1e-2, batch_classes=4, batch_per_class=3, batch_size=16,
                    batches_per_epoch=3, episodes_per_epoch=3, query_per_class=3,
                    target_epochs=2)


def _blobs(n_classes: int = 6, per_class: int = 6, seed: int = 0) -> Dataset:
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_classes, 5, generator=g) * 3
    x = centres.repeat_interleave(per_class, 0) + torch.randn(n_classes * per_class, 5,
                                                              generator=g)
    y = torch.arange(n_classes).repeat_interleave(per_class)
    return Dataset("blobs", x, y, tuple(map(str, range(n_classes))), ("g",) * n_classes)


# ---- the probe the callbacks see ----------------------------------------------------------
def test_a_probe_subset_is_a_seeded_draw_from_each_of_the_first_classes():
    """The live views follow one fixed probe set per seed: the same seed draws the same
    examples (whatever torch's global generator did meanwhile), another seed others."""
    data = _blobs(n_classes=5, per_class=8)
    x, y = probe_subset(data, max_classes=3, per_class=4, seed=7)
    assert y.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    rows = [int(torch.nonzero((data.x == r).all(1)).flatten()[0]) for r in x]
    assert len(set(rows)) == 12 and all(int(data.y[i]) == c for i, c in zip(rows, y.tolist(),
                                                                           strict=True))
    torch.manual_seed(123)
    again = probe_subset(data, max_classes=3, per_class=4, seed=7)
    torch.randn(50)
    assert torch.equal(again[0], x)
    assert torch.equal(probe_subset(data, max_classes=3, per_class=4, seed=7)[0], x)
    others = [probe_subset(data, max_classes=3, per_class=4, seed=s)[0] for s in range(3)]
    assert not all(torch.equal(o, x) for o in others)
    # fewer classes than max_classes, fewer examples than per_class: all of them
    x_all, y_all = probe_subset(data, max_classes=10, per_class=20, seed=0)
    assert torch.equal(torch.bincount(y_all), torch.full((5,), 8))


# ---- the source phase trains what it should and records it ---------------------------------
def test_a_proxy_losss_proxies_train_with_the_embedder(monkeypatch):
    """The source optimizer gets the loss's parameters too: ProxyNCA's proxies move."""
    built = []
    original = Objective.build

    def spy(self, num_classes):
        loss = original(self, num_classes)
        built.append((loss, [p.detach().clone() for p in loss.parameters()]))
        return loss

    monkeypatch.setattr(Objective, "build", spy)
    config = TINY.replace(loss="proxy_nca")
    methods.train_source("embedding", _blobs(), config, n_way=3, k_shot=1, seed=0)
    (loss, before), = built
    after = list(loss.parameters())
    assert before and len(after) == len(before)
    assert all(not torch.equal(b, a.detach()) for b, a in zip(before, after, strict=True))


@pytest.mark.parametrize("kind", ["classifier", "embedding", "protonet"])
def test_a_source_models_val_score_is_its_best_validation_score(kind):
    source = methods.train_source(kind, _blobs(), TINY, n_way=3, k_shot=1, seed=0)
    assert source.val_score is not None and 0.0 <= source.val_score <= 1.0
    assert source.val_score == source.train.best_score
    assert source.source_metrics() == {"source_val_score": source.val_score,
                                       "source_epochs": source.train.epochs}


@pytest.mark.parametrize("changes, n_way, k_shot, shape",
                         [({}, 3, 2, (3, 2, 3)),
                          ({"train_way": 4, "train_shot": 1}, 3, 2, (4, 1, 3)),
                          ({"train_way": 50}, 3, 1, (6, 1, 3))])
def test_a_protonet_source_records_its_episode_shape(changes, n_way, k_shot, shape):
    """``info`` says which episodes trained the model: the target's n and k unless the
    config fixes them, the way capped by the source classes, the queries by the class
    sizes (5 training examples per class here)."""
    source = methods.train_source("protonet", _blobs(), TINY.replace(**changes), n_way=n_way,
                                  k_shot=k_shot, seed=0)
    assert (source.info["way"], source.info["shot"], source.info["query"]) == shape
    assert source.info["input_shape"] == (5,)


def test_protonet_source_episodes_need_shot_plus_one_examples_per_class():
    """6 examples per class, 1 held out: 5 train, so shot 4 (plus 1 query) fits and
    shot 5 does not."""
    data = _blobs(per_class=6)
    source = methods.train_source("protonet", data, TINY, n_way=3, k_shot=4, seed=0)
    assert (source.info["shot"], source.info["query"]) == (4, 1)
    with pytest.raises(ValueError, match=r"^k_shot=5 is out of range for protonet source "
                                         r"episodes: the source training part has only 5 "
                                         r"examples in its smallest class \(need shot \+ 1\)$"):
        methods.train_source("protonet", data, TINY, n_way=3, k_shot=5, seed=0)


# ---- leave-one-out scores (early stopping on the support) ------------------------------------
def test_loo_1nn_needs_two_examples():
    one_class = torch.tensor([[1.0, 0.0], [0.9, 0.1]])
    assert loo_1nn_accuracy(one_class, torch.tensor([0, 0])) == 1.0
    assert loo_1nn_accuracy(one_class, torch.tensor([0, 1])) == 0.0
    assert loo_1nn_accuracy(one_class[:1], torch.tensor([0])) == 0.0


def test_loo_prototype_accuracy_removes_each_example_from_its_own_mean():
    """1-d: class 0 at 0 and 2, class 1 only at 10. Without itself, 0's own mean is 2
    (distance 4, class 1's mean at distance 100): right; likewise 2. The singleton has
    no own mean left and goes to class 0 (mean 1): wrong. 2/3."""
    emb, y = torch.tensor([[0.0], [2.0], [10.0]]), torch.tensor([0, 0, 1])
    assert loo_prototype_accuracy(emb, y) == pytest.approx(2 / 3)
    # class 0 at 0 and 4, class 1 at 7 and 8: 4 is nearer its full class mean (2, distance
    # 4) than class 1's (7.5, distance 12.25), but without itself its own mean is 0
    # (distance 16): wrong. The others stay right (own means 4, 8, 7): 3/4
    emb, y = torch.tensor([[0.0], [4.0], [7.0], [8.0]]), torch.tensor([0, 0, 1, 1])
    assert loo_prototype_accuracy(emb, y) == pytest.approx(3 / 4)


# ---- every config range ------------------------------------------------------------------------
INT_LOWS = [("embedding_dim", 1), ("channels", 1), ("source_epochs", 1),
            ("source_patience", 1), ("val_classes", 2), ("batch_classes", 2),
            ("batch_per_class", 2), ("batch_size", 1), ("batches_per_epoch", 1),
            ("episodes_per_epoch", 1), ("query_per_class", 1), ("train_way", 2),
            ("train_shot", 1), ("max_episodes", 1), ("episode_patience", 1),
            ("target_epochs", 1), ("target_patience", 1), ("adapt_patience", 1),
            ("adapt_episodes_per_epoch", 1)]


@pytest.mark.parametrize("name, low", INT_LOWS, ids=[n for n, _ in INT_LOWS])
def test_each_int_setting_accepts_its_lowest_value_and_refuses_below(name, low):
    assert getattr(MethodConfig(**{name: low}), name) == low
    with pytest.raises(ValueError, match=rf"^{name}={low - 1} is out of range: must be "
                                         rf">= {low}$"):
        MethodConfig(**{name: low - 1})
    with pytest.raises(ValueError, match=rf"^{name} must be an int, got 2\.0 \(float\)$"):
        MethodConfig(**{name: 2.0})


FLOAT_BOUNDS = [("source_lr", 1e-9, 0.0, "(0, inf)"), ("target_lr", 1e-9, 0.0, "(0, inf)"),
                ("adapt_lr", 1e-9, 0.0, "(0, inf)"), ("episode_lr", 1e-9, 0.0, "(0, inf)"),
                ("val_fraction", 0.9, 0.0, "(0, 0.9]"), ("val_fraction", 1e-3, 0.95, "(0, 0.9]"),
                ("regularizer_weight", 0.0, -1e-3, "[0, inf)")]


@pytest.mark.parametrize("name, ok, bad, interval", FLOAT_BOUNDS)
def test_each_float_setting_has_its_interval(name, ok, bad, interval):
    assert getattr(MethodConfig(**{name: ok}), name) == ok
    with pytest.raises(ValueError, match=rf"^{name}=\S+ is out of range: must be in "
                                         rf"{re.escape(interval)}$"):
        MethodConfig(**{name: bad})


# ---- saved models ----------------------------------------------------------------------------
def test_an_unreadable_model_file_says_what_to_do(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a model at all")
    with pytest.raises(ValueError) as err:
        methods.load_model(garbage)
    assert str(err.value).startswith(f"{garbage} is not a readable dml_kit model file (")
    assert str(err.value).endswith(
        "): it is truncated, corrupt or was not written by dml_kit.methods.save_model. "
        "Delete it and save the model again (a cached source model is trained again on "
        "the next run once the file is gone)")


def test_loading_hides_only_the_pickle_protocol_note(tmp_path, monkeypatch):
    """torch's note about a foreign pickle protocol is noise; any other warning of the
    load reaches the caller."""
    source = methods.train_source("embedding", _blobs(), TINY, n_way=3, k_shot=1, seed=0)
    path = methods.save_model(source, tmp_path / "s.pt")
    real_load = torch.load

    def noisy_load(*args, **kwargs):
        warnings.warn("Detected pickle protocol 4 in the checkpoint", UserWarning,
                      stacklevel=2)
        warnings.warn("something else about this file", UserWarning, stacklevel=2)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", noisy_load)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = methods.load_source(path)
    assert [str(w.message) for w in caught] == ["something else about this file"]
    assert loaded.kind == "embedding"


def test_the_source_cache_key_is_the_documented_payload():
    """Cached source models are found by this key, the sha256 of a sorted JSON payload: it
    changes with the format or recipe version, never by a renamed entry (every cached
    model would be trained again)."""
    config = TINY.replace(train_way=4)
    fields = source_trainers()["protonet"].key_fields(config, 3, 2)
    assert (fields["way"], fields["shot"]) == (4, 2)
    payload = {"v": persist.FORMAT_VERSION, "recipe": methods.RECIPE_VERSION,
               "kind": "protonet", "fields": fields, "seed": 5, "data": "d" * 16}
    text = json.dumps(payload, sort_keys=True, default=str)
    assert persist.source_cache_key("protonet", config, n_way=3, k_shot=2, seed=5,
                                    fingerprint="d" * 16) == hashlib.sha256(
        text.encode()).hexdigest()
