"""Saved models (dml_kit.methods.persist): round trips embed bit for bit, mismatches and
corrupt files are refused with clear errors, and the source-model cache reuses models."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

from dml_kit import data, methods, models
from dml_kit.data.core import Dataset
from dml_kit.methods import MethodConfig, SourceModel, persist
from dml_kit.metrics import embed

TINY = MethodConfig(embedding_dim=16, hidden=(32,), source_epochs=2, source_patience=2,
                    batch_classes=4, batch_per_class=4, batch_size=32, batches_per_epoch=4,
                    episodes_per_epoch=4, query_per_class=2, target_epochs=3)


@pytest.fixture(scope="module")
def blobs() -> Dataset:
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(12, 10, generator=g) * 3
    x = centres.repeat_interleave(10, 0) + torch.randn(120, 10, generator=g)
    y = torch.arange(12).repeat_interleave(10)
    return Dataset("blobs", x, y, tuple(map(str, range(12))), ("g",) * 12)


@pytest.fixture(scope="module")
def sources(blobs: Dataset) -> dict[str, SourceModel]:
    torch.set_num_threads(1)
    return {kind: methods.train_source(kind, blobs, TINY, n_way=3, k_shot=2, seed=1)
            for kind in ("classifier", "embedding", "protonet")}


def _images(n_classes: int = 6, per_class: int = 6) -> Dataset:
    g = torch.Generator().manual_seed(3)
    x = torch.rand(n_classes * per_class, 1, 28, 28, generator=g)
    y = torch.arange(n_classes).repeat_interleave(per_class)
    return Dataset("noise", x, y, tuple(map(str, range(n_classes))), ("g",) * n_classes)


@pytest.mark.parametrize("kind", ["classifier", "embedding", "protonet"])
def test_source_round_trip_is_bit_exact(kind, sources, blobs, tmp_path):
    src = sources[kind]
    path = methods.save_model(src, tmp_path / f"{kind}.pt", dataset=blobs)
    back = methods.load_model(path, expect_config=TINY, expect_fingerprint=blobs)
    assert isinstance(back, SourceModel) and back.kind == kind
    assert torch.equal(embed(back.model, blobs.x), embed(src.model, blobs.x))
    if kind == "classifier":
        assert isinstance(back.model, models.Classifier)
        assert torch.equal(back.model(blobs.x[:5]), src.model.eval()(blobs.x[:5]))
    assert back.val_score == src.val_score and back.train == src.train
    assert back.info == src.info and back.seed == 1 and (back.n_way, back.k_shot) == (3, 2)
    assert back.config is not None and back.config.hash_dict() == TINY.hash_dict()
    assert back.fingerprint == persist.data_fingerprint(blobs)


def test_loaded_source_gives_the_same_results(sources, blobs, tmp_path):
    task = data.kshot_task(blobs, n_way=3, k_shot=2, seed=0)
    back = methods.load_source(methods.save_model(sources["embedding"], tmp_path / "e.pt"))
    for name in ("metric", "adapted_metric"):
        a = methods.run(name, task, sources["embedding"], TINY, seed=0)
        b = methods.run(name, task, back, TINY, seed=0)
        assert a.accuracy == b.accuracy and a.metrics == b.metrics


@pytest.mark.parametrize("arch, role", [("conv4", None), ("ade_omniglot", "metric"),
                                        ("ade_omniglot", "protonet"),
                                        ("ade_mnist", "classifier")])
def test_bare_networks_round_trip(arch, role, tmp_path):
    images = _images()
    config = MethodConfig(architecture=arch, embedding_dim=8, channels=4)
    net = models.for_shape((1, 28, 28), 8, channels=4, architecture=arch, role=role)
    if role == "classifier":
        net = models.Classifier(net, 5)
    net.train()
    net(images.x[:8])  # move batch-norm statistics away from their defaults
    path = methods.save_model(net, tmp_path / "net.pt", config=config, dataset=images)
    info = methods.model_info(path)
    back = methods.load_model(path, expect_config=config)
    assert isinstance(back, torch.nn.Module) and back.training
    assert type(back) is type(net)
    assert torch.equal(embed(back, images.x), embed(net, images.x))
    if arch == "ade_omniglot":  # an equivalent role was found by rebuilding the net
        assert info["normalize"] == (role == "metric")
        assert (info["role"] in ("protonet", "classifier")) == (role == "protonet")
    assert info["fingerprint"] == persist.data_fingerprint(images)


def test_adapted_model_round_trip(sources, blobs, tmp_path):
    task = data.kshot_task(blobs, n_way=3, k_shot=2, seed=0)
    for name, kind in (("adapted_protonet", "protonet"), ("weight_transfer", "classifier")):
        result = methods.run(name, task, sources[kind], TINY, seed=0)
        assert result.model is not None
        path = methods.save_model(result.model, tmp_path / f"{name}.pt", config=TINY,
                                  input_shape=blobs.input_shape)
        back = methods.load_model(path)
        assert isinstance(back, torch.nn.Module)
        assert torch.equal(embed(back, task.query_x), embed(result.model, task.query_x))


def test_mismatch_is_refused_naming_the_field(sources, blobs, tmp_path, make_blobs):
    path = methods.save_model(sources["embedding"], tmp_path / "e.pt", dataset=blobs)
    with pytest.raises(ValueError, match=r"'embedding_dim': saved 16, expected 32"):
        methods.load_model(path, expect_config=TINY.replace(embedding_dim=32))
    with pytest.raises(ValueError, match=r"'loss': saved 'histogram', expected 'triplet'"):
        methods.load_model(path, expect_config=TINY.replace(loss="triplet"))
    other = make_blobs(n_classes=12, per_class=10, seed=5)
    fp = persist.data_fingerprint(blobs)
    with pytest.raises(ValueError, match=rf"data fingerprint: saved '{fp}', expected"):
        methods.load_model(path, expect_fingerprint=other)
    # target-phase fields do not change a source model: no refusal
    methods.load_model(path, expect_config=TINY.replace(target_lr=0.5, classify="prototype"))
    # a protonet depends on its episode shape
    proto = methods.save_model(sources["protonet"], tmp_path / "p.pt")
    with pytest.raises(ValueError, match=r"'way': saved 3, expected 5"):
        methods.load_model(proto, expect_config=TINY.replace(train_way=5))


def test_a_net_the_config_cannot_rebuild_is_refused_when_saving(blobs, tmp_path):
    net = torch.nn.Sequential(torch.nn.Linear(10, 4))
    with pytest.raises(ValueError, match="does not rebuild it"):
        methods.save_model(net, tmp_path / "x.pt", config=TINY, input_shape=(10,))
    with pytest.raises(ValueError, match="config is required"):
        methods.save_model(net, tmp_path / "x.pt")
    assert not (tmp_path / "x.pt").exists()


def test_corrupt_files_name_the_path(sources, tmp_path):
    path = methods.save_model(sources["embedding"], tmp_path / "e.pt")
    raw = path.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"truncated\.pt is not a readable dml_kit model.*"
                                         r"Delete it"):
        methods.load_model(truncated)
    # flip bytes inside the weights: the digest catches what the zip reader does not
    state = torch.load(path, weights_only=True)["state"]
    weight = state["embedding.weight"].numpy().tobytes()
    at = raw.find(weight[:64])
    assert at > 0
    flipped = tmp_path / "flipped.pt"
    flipped.write_bytes(raw[:at + 8] + bytes(b ^ 0xFF for b in raw[at + 8:at + 12])
                        + raw[at + 12:])
    with pytest.raises(ValueError, match=r"flipped\.pt .*sha256 digest"):
        methods.load_model(flipped)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a model at all")
    with pytest.raises(ValueError, match=r"garbage\.pt is not a readable"):
        methods.load_model(garbage)
    with pytest.raises(FileNotFoundError, match="no saved model"):
        methods.load_model(tmp_path / "missing.pt")


def test_loading_never_unpickles_objects(tmp_path):
    class Boom:
        def __reduce__(self):
            return (print, ("unpickled!",))

    path = tmp_path / "evil.pt"
    torch.save({"format": persist.FORMAT, "meta": "{}", "state": {"x": Boom()}}, path)
    with pytest.raises(ValueError, match="not a weights-only file, refused"):
        methods.load_model(path)
    plain = tmp_path / "plain.pkl"
    plain.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match="plain.pkl is not a readable"):
        methods.load_model(plain)


def test_newer_format_is_refused(sources, tmp_path):
    path = methods.save_model(sources["embedding"], tmp_path / "e.pt")
    payload = torch.load(path, weights_only=True)
    meta = json.loads(payload["meta"])
    meta["format_version"] = persist.FORMAT_VERSION + 1
    payload["meta"] = json.dumps(meta)
    torch.save(payload, path)
    with pytest.raises(ValueError, match="format version 2.*update dml_kit"):
        methods.load_model(path)


def test_cache_trains_once_and_reuses(blobs, tmp_path, monkeypatch):
    calls = []
    real = methods.registry.SourceTrainer.__call__

    def counting(self, *args, **kwargs):
        calls.append(self.kind)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(methods.registry.SourceTrainer, "__call__", counting)
    first = methods.train_source("protonet", blobs, TINY, n_way=3, k_shot=2, seed=1,
                                 cache=tmp_path)
    assert calls == ["protonet"] and first.info["cache"] == "miss"
    again = methods.train_source("protonet", blobs, TINY, n_way=3, k_shot=2, seed=1,
                                 cache=tmp_path)
    assert calls == ["protonet"] and again.info["cache"] == "hit"
    assert torch.equal(embed(again.model, blobs.x), embed(first.model, blobs.x))
    assert again.info["trained_seconds"] == first.seconds
    files = list((tmp_path / "models").glob("protonet-*.pt"))
    assert len(files) == 1
    # target-phase fields share the cached model; source fields, shape, seed, data do not
    methods.train_source("protonet", blobs, TINY.replace(target_lr=0.1), n_way=3, k_shot=2,
                         seed=1, cache=tmp_path)
    assert calls == ["protonet"]
    methods.train_source("protonet", blobs, TINY, n_way=4, k_shot=2, seed=1, cache=tmp_path)
    methods.train_source("protonet", blobs, TINY, n_way=3, k_shot=2, seed=2, cache=tmp_path)
    methods.train_source("protonet", blobs.select_classes(range(10)), TINY, n_way=3,
                         k_shot=2, seed=1, cache=tmp_path)
    assert len(calls) == 4
    # the cached model equals a fresh, uncached training bit for bit
    fresh = methods.train_source("protonet", blobs, TINY, n_way=3, k_shot=2, seed=1)
    assert torch.equal(embed(fresh.model, blobs.x), embed(again.model, blobs.x))


def test_cache_key_follows_what_the_kind_reads(blobs):
    fp = persist.data_fingerprint(blobs)

    def key(kind: str, config: MethodConfig = TINY, n: int = 5, k: int = 1) -> str:
        return persist.source_cache_key(kind, config, n_way=n, k_shot=k, seed=0,
                                        fingerprint=fp)

    assert key("classifier", n=5) == key("classifier", n=10)  # classifiers ignore the task
    assert key("classifier") == key("classifier", TINY.replace(loss="triplet"))
    assert key("embedding") != key("embedding", TINY.replace(loss="triplet"))
    assert key("protonet", n=5) != key("protonet", n=10)
    assert key("protonet", TINY.replace(train_way=5), n=5) == key(
        "protonet", TINY.replace(train_way=5), n=10)
    assert key("classifier") != key("classifier", TINY.replace(source_lr=0.01))
    assert key("classifier") != persist.source_cache_key(
        "classifier", TINY, n_way=5, k_shot=1, seed=0, fingerprint="other")


def test_corrupt_cache_file_is_trained_again(blobs, tmp_path):
    first = methods.train_source("classifier", blobs, TINY, seed=0, cache=tmp_path)
    path = first.info["cache_path"]
    with open(path, "r+b") as f:
        f.truncate(100)
    with pytest.warns(UserWarning, match="training again"):
        again = methods.train_source("classifier", blobs, TINY, seed=0, cache=tmp_path)
    assert again.info["cache"] == "miss"
    assert torch.equal(embed(again.model, blobs.x), embed(first.model, blobs.x))
    assert methods.train_source("classifier", blobs, TINY, seed=0,
                                cache=tmp_path).info["cache"] == "hit"


def test_cache_defaults_to_the_data_folder(blobs, tmp_path, monkeypatch):
    monkeypatch.setenv("DML_KIT_DATA", str(tmp_path / "kitdata"))
    model = methods.train_source("embedding", blobs, TINY, seed=0, cache=True)
    assert str(tmp_path / "kitdata" / "models") in model.info["cache_path"]


def test_cache_off_values_and_a_given_fingerprint(blobs, tmp_path, monkeypatch):
    monkeypatch.setenv("DML_KIT_DATA", str(tmp_path))
    for off in (False, None):
        model = methods.train_source("classifier", blobs, TINY, seed=0, cache=off)
        assert "cache" not in model.info and model.config is TINY and model.seed == 0
    assert not (tmp_path / "models").exists()
    fp = persist.data_fingerprint(blobs)
    first = persist.cached_train_source("classifier", blobs, TINY, seed=0, fingerprint=fp)
    assert first.fingerprint == fp and first.info["cache"] == "miss"
    hit = persist.cached_train_source("classifier", blobs, TINY, seed=0)
    assert hit.info["cache"] == "hit" and hit.info["cache_path"] == first.info["cache_path"]


def test_cache_hit_tells_the_callbacks_and_a_live_view_says_so(blobs, tmp_path):
    """A cached model sends on_model_loaded instead of training events; LiveDashboard
    then hides its empty figures and names what was loaded (notebooks 05 and 08 showed
    empty axes under 'waiting for training to start' on a second run)."""
    from dml_kit.callbacks import HistoryCallback
    from dml_kit.viz.live import LiveDashboard

    class Recorder:
        def __init__(self):
            self.loaded, self.began = [], 0

        def on_train_begin(self, event):
            self.began += 1

        def on_model_loaded(self, event):
            self.loaded.append(event)

    first = Recorder()
    methods.train_source("embedding", blobs, TINY, seed=1, cache=tmp_path, callbacks=[first])
    assert first.began >= 1 and first.loaded == []
    again, live = Recorder(), LiveDashboard(fps=30)
    hit = methods.train_source("embedding", blobs, TINY, seed=1, cache=tmp_path,
                               callbacks=[again, live, HistoryCallback()])
    assert hit.info["cache"] == "hit" and again.began == 0
    [event] = again.loaded
    assert event.kind == "embedding" and event.path == hit.info["cache_path"]
    assert event.trained_seconds == hit.info["trained_seconds"]
    assert "loaded from the model cache" in live.header.value
    assert "embedding (trained in" in live.header.value
    assert all(row.layout.display == "none" for row in live._figure_rows)
    # a training afterwards shows the figures again
    methods.train_source("embedding", blobs, TINY, seed=2, callbacks=[live])
    assert all(row.layout.display != "none" for row in live._figure_rows)
    assert "loaded from the model cache" not in live.header.value
