"""The six methods on a tiny seeded digits task: they learn, are deterministic, share
source models, handle k = 1 and interrupts."""

from __future__ import annotations

import pytest
import torch

from dml_kit import data, methods
from dml_kit.callbacks import Callback, HistoryCallback
from dml_kit.methods import K1_NOTE, MethodConfig, SourceModel

TINY = MethodConfig(embedding_dim=32, hidden=(64,), source_epochs=6, source_patience=3,
                    source_lr=2e-3, batch_classes=5, batch_per_class=8, batch_size=64,
                    batches_per_epoch=15, episodes_per_epoch=15, query_per_class=5,
                    target_epochs=30, target_patience=10, target_lr=5e-3)


@pytest.fixture(scope="module")
def split():
    return data.domain_split(data.load("digits"), target_fraction=0.5, seed=0)


@pytest.fixture(scope="module")
def task(split):
    return data.kshot_task(split.target, n_way=5, k_shot=5, seed=0)


@pytest.fixture(scope="module")
def sources(split):
    torch.set_num_threads(1)
    return {kind: methods.train_source(kind, split.source, TINY, n_way=5, k_shot=5, seed=0)
            for kind in ("classifier", "embedding", "protonet")}


@pytest.mark.parametrize("name", methods.available())
def test_each_method_learns(name, split, task, sources):
    kind = methods.get(name).source_kind
    result = methods.run(name, task, sources.get(kind) if kind else None, TINY, seed=0)
    assert result.method == name and result.n_way == 5 and result.k_shot == 5
    assert result.accuracy > 0.5, f"{name}: {result.accuracy:.3f} (chance 0.2)"
    assert not result.interrupted


def test_embedding_methods_report_both_rules(task, sources):
    result = methods.run("metric", task, sources["embedding"], TINY)
    assert {"acc_1nn", "acc_prototype", "norm_mean", "norm_cv"} <= set(result.metrics)
    assert result.accuracy == result.metrics["acc_1nn"]
    proto = methods.run("metric", task, sources["embedding"], TINY, classify="prototype")
    assert proto.accuracy == proto.metrics["acc_prototype"]


def test_same_seed_same_result(split, task):
    runs = [methods.run("adapted_metric", task, split.source, TINY, seed=1) for _ in range(2)]
    assert runs[0].accuracy == runs[1].accuracy
    for p, q in zip(runs[0].model.parameters(), runs[1].model.parameters(), strict=True):
        assert torch.equal(p, q)
    assert runs[0].source_seconds > 0


def test_adaptation_does_not_touch_the_shared_source(task, sources):
    before = [p.detach().clone() for p in sources["embedding"].model.parameters()]
    methods.run("adapted_metric", task, sources["embedding"], TINY)
    methods.run("weight_transfer", task, sources["classifier"], TINY)
    for p, q in zip(sources["embedding"].model.parameters(), before, strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("hybrid, parent, kind", [
    ("adapted_metric", "metric", "embedding"), ("adapted_protonet", "protonet", "protonet")])
def test_k1_hybrid_equals_parent(split, sources, hybrid, parent, kind):
    task1 = data.kshot_task(split.target, n_way=5, k_shot=1, seed=0)
    h = methods.run(hybrid, task1, sources[kind], TINY)
    p = methods.run(parent, task1, sources[kind], TINY)
    assert h.accuracy == p.accuracy and h.notes == K1_NOTE and h.method == hybrid


def test_regularizer_and_other_losses(split, task):
    cfg = TINY.replace(source_epochs=2)
    for overrides in ({"regularizer": "sec", "regularizer_weight": 1.0},
                      {"loss": "triplet"}, {"loss": "proxy_anchor"}):
        result = methods.run("adapted_metric", task, split.source, cfg, **overrides)
        assert 0.0 <= result.accuracy <= 1.0
    result = methods.run("adapted_protonet", task, split.source, cfg, regularizer="ring",
                         regularizer_weight=0.1)
    assert result.accuracy > 0.2


def test_head_only_weight_transfer_keeps_the_body(task, sources):
    result = methods.run("weight_transfer", task, sources["classifier"], TINY, head_only=True)
    src = sources["classifier"].model.embedder.state_dict()
    for k, v in result.model.embedder.state_dict().items():
        assert torch.equal(v, src[k])
    assert result.notes == "head only"


def test_callbacks_see_source_then_adapt(split, task):
    history = HistoryCallback()
    methods.run("adapted_protonet", task, split.source, TINY.replace(source_epochs=2),
                callbacks=[history])
    assert history.phases == ["source", "adapt"]
    assert history.epochs[0]["norm_mean"] > 0


def test_interrupt_in_adaptation_is_marked(task, sources):
    class Stop(Callback):
        def on_step(self, event):
            if event.phase == "adapt" and event.step == 3:
                raise KeyboardInterrupt

    result = methods.run("adapted_metric", task, sources["embedding"], TINY,
                         callbacks=[Stop()])
    assert result.interrupted and 0.0 <= result.accuracy <= 1.0


def test_errors_name_the_problem(task, sources):
    with pytest.raises(ValueError, match="unknown method 'hybrid'"):
        methods.run("hybrid", task)
    with pytest.raises(ValueError, match="source is required"):
        methods.run("metric", task)
    with pytest.raises(ValueError, match="needs a 'embedding'"):
        methods.run("metric", task, sources["protonet"])
    with pytest.raises(ValueError, match="regularizer"):
        TINY.replace(regularizer="l7")
    with pytest.raises(ValueError, match="classify"):
        TINY.replace(classify="knn")
    with pytest.raises(ValueError, match="unknown config field"):
        TINY.replace(epochs=3)
    assert isinstance(sources["embedding"], SourceModel)


def test_recalibrate_batchnorm_sets_the_support_statistics():
    from torch import nn

    from dml_kit.methods.phases import recalibrate_batchnorm

    torch.manual_seed(0)
    conv, bn = nn.Conv2d(1, 3, kernel_size=3), nn.BatchNorm2d(3)
    model = nn.Sequential(conv, bn, nn.ReLU(), nn.Flatten()).eval()
    x = torch.rand(8, 1, 6, 6) * 4 + 1   # far from the initial statistics (0, 1)
    h = torch.nn.functional.conv2d(x, conv.weight, conv.bias).detach()  # bn's input
    mean = h.mean(dim=(0, 2, 3))
    var = h.permute(1, 0, 2, 3).reshape(3, -1).var(dim=1, unbiased=True)
    assert recalibrate_batchnorm(model, x) == 1
    assert torch.allclose(bn.running_mean, mean, atol=1e-5)
    assert torch.allclose(bn.running_var, var, rtol=1e-4)
    assert bn.momentum == 0.1 and not bn.training and not model.training
    # in two equal chunks the mean is the average of the chunk means: the same mean
    bn.reset_running_stats()
    recalibrate_batchnorm(model, x, batch_size=4)
    assert torch.allclose(bn.running_mean, mean, atol=1e-5)
    # a network without batch norm is left alone
    mlp = nn.Sequential(nn.Linear(4, 2))
    before = {k: v.clone() for k, v in mlp.state_dict().items()}
    assert recalibrate_batchnorm(mlp, torch.randn(5, 4)) == 0
    assert all(torch.equal(v, before[k]) for k, v in mlp.state_dict().items())


def test_very_short_scratch_training_beats_chance():
    # Conv-4 on 5-way 5-shot glyphs, three one-step epochs: without recomputing the
    # batch-norm statistics on the support this scored 0.20 (chance)
    split = data.domain_split(data.load("glyphs"), seed=0)
    task = data.kshot_task(split.target, n_way=5, k_shot=5, seed=0)
    config = MethodConfig(channels=8, embedding_dim=32, target_epochs=3, target_patience=2,
                          target_lr=5e-3)
    result = methods.run("scratch", task, config=config, seed=0)
    assert result.accuracy > 0.4, f"{result.accuracy:.3f} (chance 0.2)"


def test_a_seventh_method_needs_one_new_module(tmp_path):
    """A new method is one Method object (here a namespace standing for its module): once
    registered, run, run_grid and report know it; nothing else changes."""
    import types

    from dml_kit.experiments import report, run_grid
    from dml_kit.losses import class_means, pairwise_scores
    from dml_kit.methods.phases import TargetPhase
    from dml_kit.methods.results import RunResult

    def evaluate(source, task, phase: TargetPhase, *, seed, callbacks=None):
        """Nearest class mean on raw pixels (squared Euclidean): no training at all."""
        classes, protos = class_means(task.support_x.flatten(1).double(), task.support_y)
        scores = pairwise_scores(task.query_x.flatten(1).double(), protos, "sqeuclidean")
        acc = float((classes[scores.argmax(1)] == task.query_y).double().mean())
        return RunResult("raw_prototype", acc, task.n_way, task.k_shot, seed)

    module = types.SimpleNamespace(METHOD=methods.Method(
        "raw_prototype", "nearest class mean on raw pixels", evaluate))
    tiny = {"embedding_dim": 32, "hidden": (64,), "source_epochs": 3, "source_patience": 2,
            "batch_classes": 5, "batch_per_class": 8, "batches_per_epoch": 10,
            "episodes_per_epoch": 10, "target_epochs": 5, "target_patience": 3}
    with methods.registered(module.METHOD):
        assert methods.available()[-1] == "raw_prototype"
        assert module.METHOD.source_key(MethodConfig(), 5, 1) is None
        assert module.METHOD.loss_name(MethodConfig()) == "none"
        frame = run_grid("digits", ["raw_prototype", "scratch"], [1, 5], [5], [0], tasks=2,
                         store=tmp_path / "r.sqlite", executor="serial", progress=False,
                         compare_losses=[], **tiny)
        rows = frame[frame["method"] == "raw_prototype"]
        assert len(rows) == 4 and (rows["accuracy"] > 0.5).all()
        assert set(rows["loss"]) == {"none"}
        table = report(tmp_path / "r.sqlite", dataset="digits")
        assert "raw_prototype" in table.accuracy.columns
        assert table.accuracy.loc[(5, 5), "raw_prototype"] == pytest.approx(
            rows[rows["k"] == 5]["accuracy"].mean())
    assert "raw_prototype" not in methods.available()
    with pytest.raises(ValueError, match="raw_prototype"):
        methods.get("raw_prototype")
    with pytest.raises(ValueError, match="already registered"):
        methods.register(methods.get("metric"))


def test_methods_declare_their_loss_regularizer_and_source():
    config = MethodConfig(loss="triplet")
    assert {m: methods.get(m).loss_name(config) for m in methods.available()} == {
        "scratch": "cross_entropy", "weight_transfer": "cross_entropy", "metric": "triplet",
        "protonet": "prototypical", "adapted_metric": "triplet",
        "adapted_protonet": "prototypical"}
    assert [m for m in methods.available() if methods.get(m).uses_regularizer] == [
        "metric", "protonet", "adapted_metric", "adapted_protonet"]
    assert methods.get("adapted_metric").source is methods.get("metric").source


def test_source_keys_ignore_every_target_phase_field():
    from dml_kit.methods.config import fields_of, phase_of

    assert set(fields_of("target", "adapt")) >= {"adapt_lr", "adapt_patience", "classify"}
    assert phase_of("loss") == ("embedding", "loss")
    base = MethodConfig()
    changed = base.replace(adapt_lr=0.5, adapt_patience=2, target_lr=0.1, target_epochs=3,
                           target_patience=1, adapt_episodes_per_epoch=9, classify="prototype",
                           head_only=True)
    for name in methods.available():
        entry = methods.get(name)
        assert entry.source_key(base, 5, 5) == entry.source_key(changed, 5, 5), name
    # the config hash (results stores) still sees them
    assert base.hash_dict() != changed.hash_dict()


def test_epoch_seed_is_the_one_rule():
    from dml_kit.methods.batches import epoch_seed

    assert epoch_seed(3, 7) == 3007


# ---- Adapted Deep Embeddings' nets and the protonets' own lengths ----------------------------
ADE_FIELDS = ("architecture", "episode_lr", "max_episodes", "episode_patience")


def test_new_fields_stay_out_of_hashes_at_their_defaults():
    from dml_kit.methods.config import HASHED_WHEN_SET

    assert tuple(HASHED_WHEN_SET) == ADE_FIELDS
    d = MethodConfig().hash_dict()
    assert not set(ADE_FIELDS) & set(d)  # earlier configs hash as before the fields existed
    assert TINY.hash_dict() == TINY.replace(architecture="conv4").hash_dict()
    for field, value in (("architecture", "ade_omniglot"), ("episode_lr", 1e-4),
                         ("max_episodes", 400), ("episode_patience", 200)):
        changed = TINY.replace(**{field: value}).hash_dict()
        assert changed[field] == value and changed != TINY.hash_dict()
    proto, emb = methods.get("protonet"), methods.get("metric")
    ade = TINY.replace(architecture="ade_omniglot")
    assert proto.source_key(ade, 5, 5) != proto.source_key(TINY, 5, 5)
    assert emb.source_key(ade, 5, 5) != emb.source_key(TINY, 5, 5)
    # the protonets' lengths key protonet sources only
    longer = TINY.replace(max_episodes=400)
    assert proto.source_key(longer, 5, 5) != proto.source_key(TINY, 5, 5)
    assert emb.source_key(longer, 5, 5) == emb.source_key(TINY, 5, 5)


@pytest.mark.parametrize(("field", "value"), [("architecture", "resnet"), ("episode_lr", 0.0),
                                              ("max_episodes", 0), ("episode_patience", 0)])
def test_new_fields_are_validated(field, value):
    with pytest.raises(ValueError, match=field):
        TINY.replace(**{field: value})


def test_episodic_lengths_in_episodes_become_validations():
    from dml_kit.methods.phases import phases

    assert phases(TINY).source.episodic_train is None
    assert phases(TINY).source.episodic == phases(TINY).source.train
    paper = TINY.replace(episodes_per_epoch=200, episode_lr=1e-4, max_episodes=10_000,
                         episode_patience=4_000)
    train = phases(paper).source.episodic
    assert (train.max_epochs, train.patience, train.lr, train.max_steps) == (50, 20, 1e-4, 10_000)
    assert phases(paper).source.train.lr == TINY.source_lr  # other sources keep source_lr
    odd = phases(TINY.replace(max_episodes=31)).source.episodic  # 15 per epoch: 3 epochs
    assert (odd.max_epochs, odd.max_steps, odd.patience) == (3, 31, TINY.source_patience)


def test_ade_nets_follow_the_methods_roles(split, task):
    torch.set_num_threads(1)
    cfg = TINY.replace(architecture="ade_omniglot", channels=8, source_epochs=2,
                       target_epochs=3, max_episodes=20)
    built = {kind: methods.train_source(kind, split.source, cfg, n_way=5, k_shot=5, seed=0)
             for kind in ("classifier", "embedding", "protonet")}

    def bn(model: torch.nn.Module) -> bool:
        return any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())

    emb = built["embedding"].model.eval()
    assert not bn(emb)
    assert torch.allclose(emb(task.query_x).norm(dim=1), torch.ones(len(task.query_x)),
                          atol=1e-5)
    proto = built["protonet"].model.eval()
    assert bn(proto) and not torch.allclose(proto(task.query_x).norm(dim=1),
                                            torch.ones(len(task.query_x)))
    assert built["protonet"].train.steps <= 20  # max_episodes
    assert bn(built["classifier"].model)
    scratch = methods.run("scratch", task, None, cfg, seed=0)
    assert bn(scratch.model)
    for name in ("metric", "protonet", "weight_transfer", "adapted_metric"):
        kind = methods.get(name).source_kind
        assert 0.0 <= methods.run(name, task, built[kind], cfg, seed=0).accuracy <= 1.0


def test_run_refuses_a_non_task_a_one_way_task_and_an_infinite_learning_rate():
    from dml_kit import data, methods

    target = data.domain_split(data.load("digits"), seed=0).target
    with pytest.raises(ValueError, match="task must be a dml_kit.data.KShotTask.*got str"):
        methods.run("scratch", "not a task", None)
    with pytest.raises(ValueError, match=r"task.n_way=1 is out of range: must be >= 2"):
        methods.run("scratch", data.kshot_task(target, 1, 1, seed=0), None)
    with pytest.raises(ValueError, match="target_lr=inf is out of range"):
        methods.run("scratch", data.kshot_task(target, 2, 1, seed=0), None,
                    target_lr=float("inf"))


@pytest.mark.parametrize("kind,method", [("embedding", "metric"), ("classifier", "weight_transfer"),
                                         ("protonet", "protonet")])
def test_source_model_of_another_input_shape_is_refused_by_shape(sources, kind, method):
    """A source model trained on 8x8 digits used on a 1x4x4 task: a message about the
    shapes, not a torch matmul error from the target phase."""
    assert sources[kind].info["input_shape"] == (1, 8, 8)
    g = torch.Generator().manual_seed(0)
    other = data.Dataset("tiny", torch.rand(30, 1, 4, 4, generator=g), torch.arange(30) % 6,
                         tuple("abcdef"), ("g",) * 6)
    with pytest.raises(ValueError, match="source model expects 1x8x8 inputs, task has 1x4x4"):
        methods.run(method, data.kshot_task(other, 3, 2, seed=0), sources[kind], TINY)


def test_config_nan_and_unknown_loss_are_refused_by_name():
    for field in ("source_lr", "target_lr", "regularizer_weight", "val_fraction"):
        with pytest.raises(ValueError, match=field):
            TINY.replace(**{field: float("nan")})
    with pytest.raises(ValueError, match="unknown loss 'tripplet'; choose one of"):
        TINY.replace(loss="tripplet")
