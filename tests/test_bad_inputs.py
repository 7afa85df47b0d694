"""A harness of bad inputs across every public entry point (issue 15).

Each case is a callable that must raise a given exception type whose message contains a
given substring: the argument's name and, where it makes sense, the allowed range. A
"clear error" is exactly that; a bare torch / sklearn / pathlib message, an
``AttributeError``, an ``IndexError`` or a silent result counts as unclear.
``test_bad_input`` runs each case on its own (readable ids); ``test_every_bad_input_is_clear``
runs them all and prints the count, so a CI log shows e.g. "172/172 bad inputs gave a
clear error".

Everything here is tiny (a 40-example toy dataset, 6x4 embeddings) and offline; the only
training is one source model of a handful of steps. The file runs in a few seconds.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from dml_kit import data, losses, metrics, models, regularizers
from dml_kit.data.core import Dataset
from dml_kit.device import resolve_device, seed_everything

NAN, INF = float("nan"), float("inf")


@dataclass(frozen=True)
class Case:
    """One bad input: ``call()`` must raise ``exc`` with ``text`` in its message."""

    id: str
    call: Callable[[], Any]
    exc: type[BaseException] | tuple[type[BaseException], ...]
    text: str


# ---- tiny inputs ----------------------------------------------------------------------------
def emb(n: int = 6, d: int = 4, *, nan: bool = False, inf: bool = False,
        dtype: torch.dtype = torch.float32) -> torch.Tensor:
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(n * 10 + d)).to(dtype)
    if nan:
        x[0, 0] = NAN
    if inf:
        x[1, 1] = INF
    return x


Y = torch.tensor([0, 0, 1, 1, 2, 2])


@functools.lru_cache(maxsize=1)
def toy() -> Dataset:
    """8 classes x 5 images of 1x4x4, in 2 groups."""
    g = torch.Generator().manual_seed(0)
    return Dataset("toy", torch.rand(40, 1, 4, 4, generator=g), torch.arange(40) % 8,
                   tuple(f"c{i}" for i in range(8)), ("a",) * 4 + ("b",) * 4)


@functools.lru_cache(maxsize=1)
def toy_task() -> Any:
    return data.kshot_task(toy(), 3, 2, seed=0)


@functools.lru_cache(maxsize=1)
def digits_source_model() -> Any:
    """A metric source model of a few steps on 8x8 digits."""
    from dml_kit import methods

    src = data.domain_split(data.load("digits"), seed=0).source
    cfg = methods.MethodConfig(source_epochs=1, batches_per_epoch=2, batch_classes=2,
                               batch_per_class=2, source_patience=1, loss="triplet",
                               embedding_dim=8, channels=4)
    return methods.train_source("embedding", src, cfg)


def loss_of(name: str) -> Any:
    sp = losses.spec(name)
    kw = {"num_classes": 3, "embedding_dim": 4} if sp.required else {}
    return losses.get(name, **kw)


def store_at(path: Path, create: bool = True) -> Any:
    from dml_kit.experiments import ResultsStore

    return ResultsStore(path, create=create)


def record(**changes: Any) -> Any:
    from dml_kit.experiments.store import RunRecord

    base = {"dataset": "toy", "method": "metric", "k": 1, "n": 2, "seed": 0,
            "accuracy": 0.5, "config_hash": "h" + str(sorted(changes.items()))}
    return RunRecord(**{**base, **changes})


def add_record(tmp: Path, **changes: Any) -> Any:
    return store_at(tmp / "s.sqlite").add(record(**changes))


def widget_set(make: Callable[[], Any], control: str, value: Any) -> Any:
    panel = make()
    getattr(panel, control).value = value
    return panel


def task_explorer() -> Any:
    from dml_kit.widgets import TaskExplorer

    return TaskExplorer(toy(), n_way=2, k_shot=1, n_query=1)


def tmp_dir(name: str) -> Path:
    """A fresh folder under pytest's base temp (cases are built at import time)."""
    base = Path(os.environ.get("DML_KIT_BAD_INPUTS_TMP") or _TMP.name) / name
    base.mkdir(parents=True, exist_ok=True)
    return base


import tempfile  # noqa: E402

_TMP = tempfile.TemporaryDirectory(prefix="dml_bad_inputs_")


def corrupt_file(name: str, content: bytes) -> Path:
    p = tmp_dir(name) / "bad.sqlite"
    p.write_bytes(content)
    return p


def isolet_from(zip_bytes: bytes, name: str) -> Any:
    from dml_kit.data.real import isolet

    root = tmp_dir(name)
    folder = root / "isolet"
    folder.mkdir(exist_ok=True)
    (folder / "isolet.zip").write_bytes(zip_bytes)
    return isolet(root=root)


def _download_error() -> type[BaseException]:
    from dml_kit.data.download import DownloadError

    return DownloadError


# ---- the cases ------------------------------------------------------------------------------
V = ValueError
CASES: list[Case] = []


def case(id: str, call: Callable[[], Any], text: str,
         exc: type[BaseException] | tuple[type[BaseException], ...] = V) -> None:
    CASES.append(Case(id, call, exc, text))


M = metrics
# metrics
case("proto_nan_query", lambda: M.prototype_accuracy(emb(), Y, emb(nan=True), Y), "query_emb")
case("proto_inf_support", lambda: M.prototype_accuracy(emb(inf=True), Y, emb(), Y),
     "support_emb")
case("proto_empty_query", lambda: M.prototype_accuracy(emb(), Y, emb(0), Y[:0]), "query_emb")
case("proto_dim_mismatch", lambda: M.prototype_accuracy(emb(6, 4), Y, emb(6, 6), Y),
     "embedding dimension")
case("proto_float_labels", lambda: M.prototype_accuracy(emb(), Y.float(), emb(), Y),
     "support_y")
case("proto_negative_labels", lambda: M.prototype_accuracy(emb(), Y, emb(), Y - 3), "query_y")
case("proto_labels_length", lambda: M.prototype_accuracy(emb(), Y, emb(), Y[:4]), "query_y")
case("proto_numpy_support", lambda: M.prototype_accuracy(emb().numpy(), Y, emb(), Y),
     "support_emb")
case("proto_1d_support", lambda: M.prototype_accuracy(emb()[:, 0], Y, emb(), Y), "support_emb")
case("proto_int_support", lambda: M.prototype_accuracy(emb().long(), Y, emb(), Y),
     "support_emb")
case("proto_bad_distance", lambda: M.prototype_accuracy(emb(), Y, emb(), Y, distance="l1"),
     "distance")
case("knn_k0", lambda: M.knn_accuracy(emb(), Y, emb(), Y, k=0), "k=0")
case("knn_k_too_big", lambda: M.knn_accuracy(emb(), Y, emb(), Y, k=100), "k=100")
case("knn_k_float", lambda: M.knn_accuracy(emb(), Y, emb(), Y, k=1.5), "k must be an int")
case("knn_nan_support", lambda: M.knn_accuracy(emb(nan=True), Y, emb(), Y), "support_emb")
case("knn_bool_labels", lambda: M.knn_accuracy(emb(), Y.bool(), emb(), Y), "support_y")
case("recall_nan", lambda: M.recall_at_k(emb(nan=True), Y), "emb")
case("recall_k0", lambda: M.recall_at_k(emb(), Y, ks=[0]), "k=0")
case("recall_k_too_big", lambda: M.recall_at_k(emb(), Y, ks=[6]), "k=6")
case("recall_no_ks", lambda: M.recall_at_k(emb(), Y, ks=[]), "ks")
case("recall_one_row", lambda: M.recall_at_k(emb(1), Y[:1]), "at least 2")
case("recall_bad_distance", lambda: M.recall_at_k(emb(), Y, distance="hamming"), "distance")
case("map_nan", lambda: M.map_at_r(emb(nan=True), Y), "emb")
case("map_all_singletons", lambda: M.map_at_r(emb(), torch.arange(6)), "two or more")
case("map_float_labels", lambda: M.map_at_r(emb(), Y.double()), "labels")
case("nmi_nan", lambda: M.nmi(emb(nan=True), Y), "emb")
case("nmi_inf", lambda: M.nmi(emb(inf=True), Y), "emb")
case("nmi_rows_le_classes", lambda: M.nmi(emb(3), torch.arange(3)), "labels")
case("nmi_one_class", lambda: M.nmi(emb(), torch.zeros(6, dtype=torch.long)), "labels")
case("nmi_bad_seed", lambda: M.nmi(emb(), Y, seed=-1), "seed")
case("nmi_empty", lambda: M.nmi(emb(0), Y[:0]), "emb")
case("norms_nan", lambda: M.norm_stats(emb(nan=True)), "emb")
case("norms_empty", lambda: M.norm_stats(emb(0)), "emb")
case("norms_list", lambda: M.norm_stats([[1.0, 2.0]]), "emb")
case("embed_numpy", lambda: M.embed(models.MLP(16, 4), emb(2, 16).numpy()), "x must be")
case("embed_batch0", lambda: M.embed(models.MLP(16, 4), emb(2, 16), batch_size=0),
     "batch_size")
case("embed_wrong_shape", lambda: M.embed(models.MLP(16, 4), emb(2, 9)), "shape")
case("embed_empty", lambda: M.embed(models.MLP(16, 4), emb(0, 16)), "x is empty")
case("embed_bad_device", lambda: M.embed(models.MLP(16, 4), emb(2, 16), device="tpu"),
     "device")
case("err_red_shapes", lambda: M.error_reduction([0.5, 0.6], [0.7]), "same shape")
case("err_red_above_one", lambda: M.error_reduction(0.5, 1.5), "method_acc")
case("err_red_nan", lambda: M.error_reduction(NAN, 0.5), "baseline_acc")
case("err_red_perfect_baseline", lambda: M.error_reduction(1.0, 0.5), "undefined")
case("pairwise_bad_distance", lambda: M.pairwise_scores(emb(), emb(), "l1"), "distance")

# losses: every registered loss refuses NaN embeddings by name, and float labels
for _name in losses.available():
    case(f"loss_{_name}_nan", functools.partial(lambda n: loss_of(n)(emb(nan=True), Y), _name),
         "embeddings")
    case(f"loss_{_name}_float_labels",
         functools.partial(lambda n: loss_of(n)(emb(), Y.float()), _name), "labels")
case("loss_unknown", lambda: losses.get("tripplet"), "triplet")
case("loss_unknown_param", lambda: losses.get("triplet", marign=0.1), "marign")
case("loss_negative_margin", lambda: losses.get("triplet", margin=-1.0), "margin")
case("loss_nan_margin", lambda: losses.get("contrastive", margin=NAN), "margin")
case("loss_bad_distance", lambda: losses.get("triplet", distance="l1"), "distance")
case("loss_bad_average", lambda: losses.get("triplet", average="some"), "average")
case("loss_histogram_bins0", lambda: losses.get("histogram", num_bins=0), "num_bins")
case("loss_arcface_missing", lambda: losses.get("arcface"), "num_classes")
case("loss_arcface_zero_classes", lambda: losses.get("arcface", num_classes=0, embedding_dim=4),
     "num_classes")
case("loss_arcface_margin_big",
     lambda: losses.get("arcface", num_classes=3, embedding_dim=4, margin=4.0), "margin")
case("loss_normsoftmax_temp0",
     lambda: losses.get("normsoftmax", num_classes=3, embedding_dim=4, temperature=0.0),
     "temperature")
case("loss_proxy_nca_one_class",
     lambda: losses.get("proxy_nca", num_classes=1, embedding_dim=4), "num_classes")
case("loss_proxy_anchor_alpha_inf",
     lambda: losses.get("proxy_anchor", num_classes=3, embedding_dim=4, alpha=INF), "alpha")
case("loss_proxy_wrong_dim", lambda: loss_of("arcface")(emb(6, 5), Y), "embedding_dim")
case("loss_proxy_label_range", lambda: loss_of("cosface")(emb(), Y + 5), "labels")
case("loss_softmax_wrong_dim", lambda: loss_of("softmax")(emb(6, 7), Y), "embedding_dim")
case("loss_triplet_int_emb", lambda: loss_of("triplet")(emb().long(), Y), "embeddings")
case("loss_triplet_labels_len", lambda: loss_of("triplet")(emb(), Y[:3]), "labels")
case("loss_triplet_3d", lambda: loss_of("triplet")(emb().unsqueeze(0), Y), "embeddings")
case("loss_prototypical_dims",
     lambda: losses.prototypical_loss(emb(6, 4), Y, emb(6, 5), Y), "query_emb")
case("loss_prototypical_fraction", lambda: losses.get("prototypical", support_fraction=1.5),
     "support_fraction")
case("loss_ntxent_temp", lambda: losses.get("ntxent", temperature=-0.1), "temperature")
case("loss_spec_unknown", lambda: losses.spec("nope"), "nope")
case("loss_with_reg_weight", lambda: losses.with_regularizer(loss_of("triplet"), "sec", -1.0),
     "weight")
case("loss_with_reg_unknown", lambda: losses.with_regularizer(loss_of("triplet"), "l3"), "l3")

# regularizers
R = regularizers
case("reg_unknown", lambda: R.get("l3"), "l3")
case("reg_sec_momentum", lambda: R.get("sec", momentum=2.0), "momentum")
case("reg_lp_p0", lambda: R.get("lp", p=0.0), "p")
case("reg_lp_power_nan", lambda: R.get("lp", power=NAN), "power")
case("reg_ring_radius", lambda: R.get("ring", radius=-1.0), "radius")
case("reg_ring_lam_inf", lambda: R.get("ring", lam=INF), "lam")
for _name in R.available():
    case(f"reg_{_name}_nan", functools.partial(lambda n: R.get(n)(emb(nan=True)), _name),
         "embeddings")
    case(f"reg_{_name}_1d", functools.partial(lambda n: R.get(n)(emb()[0]), _name),
         "embeddings")

# data
D = data
case("load_unknown", lambda: D.load("mnits"), "mnist")
case("load_not_str", lambda: D.load(42), "42")
case("load_seed_negative", lambda: D.load("digits", seed=-1), "seed")
case("load_seed_float", lambda: D.load("digits", seed=1.5), "seed")
case("load_unknown_option", lambda: D.load("digits", size=3), "size")
case("register_empty_name", lambda: D.register(" ", lambda **kw: toy()), "name")
case("register_not_callable", lambda: D.register("x_bad", 3), "loader")
case("dataset_long_x", lambda: Dataset("x", torch.ones(10, 4, dtype=torch.long),
                                       torch.zeros(10, dtype=torch.long), ("a",), ("g",)), "x")
case("dataset_uint8_x", lambda: Dataset("x", torch.ones(10, 4, dtype=torch.uint8),
                                        torch.zeros(10, dtype=torch.long), ("a",), ("g",)), "x")
case("dataset_bool_x", lambda: Dataset("x", torch.ones(10, 4, dtype=torch.bool),
                                       torch.zeros(10, dtype=torch.long), ("a",), ("g",)), "x")
case("dataset_numpy_x", lambda: Dataset("x", torch.ones(10, 4).numpy(),
                                        torch.zeros(10, dtype=torch.long), ("a",), ("g",)), "x")
case("dataset_3d_x", lambda: Dataset("x", torch.ones(10, 4, 4),
                                     torch.zeros(10, dtype=torch.long), ("a",), ("g",)), "x")
case("dataset_float_y", lambda: Dataset("x", torch.ones(10, 4), torch.zeros(10),
                                        ("a",), ("g",)), "y")
case("dataset_negative_y", lambda: Dataset("x", torch.ones(10, 4),
                                           torch.full((10,), -1), ("a",), ("g",)), "y")
case("dataset_y_length", lambda: Dataset("x", torch.ones(10, 4),
                                         torch.zeros(9, dtype=torch.long), ("a",), ("g",)), "y")
case("dataset_y_beyond_names", lambda: Dataset("x", torch.ones(10, 4),
                                               torch.arange(10), ("a",), ("g",)), "class names")
case("dataset_groups_length", lambda: Dataset("x", torch.ones(10, 4),
                                              torch.zeros(10, dtype=torch.long), ("a",),
                                              ("g", "h")), "class_groups")
case("dataset_name_not_str", lambda: Dataset(3, torch.ones(10, 4),
                                             torch.zeros(10, dtype=torch.long), ("a",), ("g",)),
     "name")
case("select_repeat", lambda: toy().select_classes([0, 0]), "repeat")
case("select_out_of_range", lambda: toy().select_classes([99]), "out of range")
case("split_fraction", lambda: D.domain_split(toy(), target_fraction=1.5), "target_fraction")
case("split_fraction_nan", lambda: D.domain_split(toy(), target_fraction=NAN),
     "target_fraction")
case("split_n_target0", lambda: D.domain_split(toy(), n_target_classes=0), "n_target_classes")
case("split_n_target_all", lambda: D.domain_split(toy(), n_target_classes=8),
     "n_target_classes")
case("split_by", lambda: D.domain_split(toy(), by="alphabet"), "by")
case("split_not_dataset", lambda: D.domain_split("digits"), "data")
case("split_seed", lambda: D.domain_split(toy(), seed=-3), "seed")
case("task_n0", lambda: D.kshot_task(toy(), 0, 1), "n_way")
case("task_n_too_many", lambda: D.kshot_task(toy(), 9, 1), "n_way")
case("task_k0", lambda: D.kshot_task(toy(), 2, 0), "k_shot")
case("task_k_too_many", lambda: D.kshot_task(toy(), 2, 5), "k_shot")
case("task_k_float", lambda: D.kshot_task(toy(), 2, 1.0), "k_shot")
case("task_query0", lambda: D.kshot_task(toy(), 2, 1, n_query=0), "n_query")
case("task_val_negative", lambda: D.kshot_task(toy(), 2, 1, n_val=-1), "n_val")
case("task_not_dataset", lambda: D.kshot_task([1, 2], 2, 1), "target")
case("task_seed_str", lambda: D.kshot_task(toy(), 2, 1, seed="0"), "seed")
case("balanced_classes0", lambda: D.BalancedBatchSampler(toy().y, 0, 2), "classes_per_batch")
case("balanced_classes_many", lambda: D.BalancedBatchSampler(toy().y, 9, 2),
     "classes_per_batch")
case("balanced_samples0", lambda: D.BalancedBatchSampler(toy().y, 2, 0), "samples_per_class")
case("balanced_float_labels", lambda: D.BalancedBatchSampler(toy().y.float(), 2, 2), "labels")
case("episode_k0", lambda: D.EpisodeSampler(toy().y, 2, 0, 1, n_episodes=1), "k_shot")
case("episode_q0", lambda: D.EpisodeSampler(toy().y, 2, 1, 0, n_episodes=1), "q_query")
case("episode_n_way", lambda: D.EpisodeSampler(toy().y, 20, 1, 1, n_episodes=1), "n_way")
case("episode_episodes0", lambda: D.EpisodeSampler(toy().y, 2, 1, 1, n_episodes=0),
     "n_episodes")
case("frechet_dims", lambda: D.frechet_distance(emb(6, 3), emb(6, 4)), "features_b")
case("frechet_nan", lambda: D.frechet_distance(emb(6, 3, nan=True), emb(6, 3)), "features_a")
case("shift_splits0", lambda: D.shift_splits(toy(), n_splits=0), "n_splits")
case("glyphs_file_in_the_way", lambda: D.load("glyphs", root=corrupt_file("gl", b"x") / "sub"),
     "DML_KIT_DATA")
case("isolet_html_zip", lambda: isolet_from(b"<html>Not found</html>", "iso_html"), "isolet.zip",
     _download_error())
case("isolet_missing_offline", lambda: D.load("isolet", root=tmp_dir("iso_none")), "download",
     _download_error())

# methods
def _methods() -> Any:
    from dml_kit import methods

    return methods


def _cfg(**kw: Any) -> Any:
    return _methods().MethodConfig(**kw)


case("run_unknown_method", lambda: _methods().run("metrics", toy_task(), toy()), "metric")
case("run_not_task", lambda: _methods().run("metric", "not a task", toy()), "task")
case("run_one_way", lambda: _methods().run("metric", D.kshot_task(toy(), 1, 1), toy()),
     "n_way")
case("run_no_source", lambda: _methods().run("metric", toy_task(), None), "source")
case("run_source_int", lambda: _methods().run("metric", toy_task(), 42), "source")
case("run_target_lr_inf", lambda: _methods().run("scratch", toy_task(), None, target_lr=INF),
     "target_lr")
case("run_unknown_override", lambda: _methods().run("scratch", toy_task(), None, lr=0.1), "lr")
case("run_source_other_shape", lambda: _methods().run("metric", toy_task(),
                                                      digits_source_model()), "1x8x8")
case("run_source_wrong_kind", lambda: _methods().run("weight_transfer", toy_task(),
                                                     digits_source_model()), "source")
case("train_source_unknown", lambda: _methods().train_source("nope", toy()), "nope")
case("cfg_source_lr_nan", lambda: _cfg(source_lr=NAN), "source_lr")
case("cfg_target_lr_negative", lambda: _cfg(target_lr=-0.1), "target_lr")
case("cfg_adapt_lr_nan", lambda: _cfg(adapt_lr=NAN), "adapt_lr")
case("cfg_episode_lr_inf", lambda: _cfg(episode_lr=INF), "episode_lr")
case("cfg_reg_weight_nan", lambda: _cfg(regularizer_weight=NAN), "regularizer_weight")
case("cfg_val_fraction_one", lambda: _cfg(val_fraction=1.0), "val_fraction")
case("cfg_val_fraction_nan", lambda: _cfg(val_fraction=NAN), "val_fraction")
case("cfg_embedding_dim0", lambda: _cfg(embedding_dim=0), "embedding_dim")
case("cfg_embedding_dim_nan", lambda: _cfg(embedding_dim=NAN), "embedding_dim")
case("cfg_hidden0", lambda: _cfg(hidden=(0,)), "hidden[0]")
case("cfg_loss_unknown", lambda: _cfg(loss="tripplet"), "loss")
case("cfg_regularizer_unknown", lambda: _cfg(regularizer="l3"), "regularizer")
case("cfg_architecture", lambda: _cfg(architecture="resnet"), "architecture")
case("cfg_classify", lambda: _cfg(classify="vote"), "classify")
case("cfg_batch_classes1", lambda: _cfg(batch_classes=1), "batch_classes")
case("cfg_epochs0", lambda: _cfg(source_epochs=0), "source_epochs")
case("cfg_replace_unknown", lambda: _cfg().replace(epochs=3), "epochs")
case("cfg_replace_nan", lambda: _cfg().replace(target_lr=NAN), "target_lr")


# experiments
def _ex() -> Any:
    from dml_kit import experiments

    return experiments


def _grid(**kw: Any) -> Any:
    return _ex().GridSpec.create(**{"dataset": "digits", **kw})


case("grid_unknown_dataset", lambda: _grid(dataset="mnits"), "dataset")
case("grid_unknown_method", lambda: _grid(methods=["metrics"]), "metric")
case("grid_k0", lambda: _grid(k_values=[0]), "k_values")
case("grid_n1", lambda: _grid(n_values=[1]), "n_values")
case("grid_seed_negative", lambda: _grid(seeds=[-1]), "seeds")
case("grid_tasks0", lambda: _grid(tasks=0), "tasks")
case("grid_preset", lambda: _grid(preset="huge"), "preset")
case("grid_source", lambda: _grid(source="imagenet"), "source")
case("grid_compare_losses", lambda: _grid(compare_losses=["tripplet"]), "triplet")
case("grid_override_nan", lambda: _grid(source_lr=NAN), "source_lr")
case("run_grid_unknown_dataset", lambda: _ex().run_grid("mnits", store=tmp_dir("rg") / "s.db",
                                                      progress=False), "dataset")
case("run_grid_executor", lambda: _ex().run_grid("digits", executor="threads",
                                                 store=tmp_dir("rg2") / "s.db",
                                                 progress=False), "executor")
case("store_path_int", lambda: store_at(42), "path", TypeError)
case("store_missing_read", lambda: store_at(tmp_dir("st1") / "typo.sqlite", create=False),
     "typo.sqlite")
case("store_is_folder", lambda: store_at(tmp_dir("st2")), "st2")
case("store_corrupt", lambda: store_at(corrupt_file("st3", b"not a database" * 100)),
     "bad.sqlite")
case("store_nan_accuracy", lambda: add_record(tmp_dir("st4"), accuracy=NAN), "accuracy")
case("store_accuracy_above_one", lambda: add_record(tmp_dir("st5"), accuracy=1.7), "accuracy")
case("store_k_str", lambda: add_record(tmp_dir("st6"), k="five"), "k")
case("store_seed_negative", lambda: add_record(tmp_dir("st7"), seed=-1), "seed")
case("store_empty_method", lambda: add_record(tmp_dir("st8"), method=""), "method")
case("report_int", lambda: _ex().report(42), "results", TypeError)
case("report_missing_store", lambda: _ex().report(str(tmp_dir("rp") / "nope" / "x.sqlite")),
     "x.sqlite")

# models
case("mlp_in0", lambda: models.MLP(0), "in_features")
case("mlp_dim0", lambda: models.MLP(4, embedding_dim=0), "embedding_dim")
case("mlp_hidden0", lambda: models.MLP(4, hidden=(0,)), "hidden[0]")
case("conv4_in0", lambda: models.Conv4(in_channels=0), "in_channels")
case("conv4_channels0", lambda: models.Conv4(channels=0), "channels")
case("classifier_classes0", lambda: models.Classifier(models.MLP(4, 2), 0), "n_classes")
case("conv4_dim0", lambda: models.Conv4(embedding_dim=0), "embedding_dim")

# device
case("device_tpu", lambda: resolve_device("tpu"), "cpu")
case("device_int", lambda: resolve_device(42), "device")
case("device_typo", lambda: resolve_device("gpu"), "cuda")
case("seed_negative", lambda: seed_everything(-1), "seed")
case("seed_str", lambda: seed_everything("1"), "seed")


# widgets
def _w() -> Any:
    from dml_kit import widgets

    return widgets


case("taskexp_unknown_dataset", lambda: _w().TaskExplorer("mnist"), "dataset")
case("taskexp_max_way0", lambda: _w().TaskExplorer(toy(), max_way=0), "max_way")
case("taskexp_set_dataset", lambda: widget_set(task_explorer, "dataset", "mnist"), "dataset",
     Exception)
case("taskexp_set_k_too_big", lambda: widget_set(task_explorer, "k_shot", 99), "k (shots)",
     Exception)
case("taskexp_set_n_str", lambda: widget_set(task_explorer, "n_way", "two"), "n (classes)",
     Exception)
case("taskexp_set_seed_negative", lambda: widget_set(task_explorer, "seed", -5), "seed",
     Exception)
case("cosgrad_size_mismatch", lambda: _w().CosineGradientExplorer(torch.randn(3),
                                                                 torch.randn(2)), "partner")
case("cosgrad_lr", lambda: _w().CosineGradientExplorer(torch.randn(3), torch.randn(3), lr=-1),
     "lr")
case("cosgrad_norm", lambda: _w().CosineGradientExplorer(torch.randn(3), torch.randn(3),
                                                        norm=50.0), "norm")
case("cosgrad_set_norm", lambda: widget_set(
    lambda: _w().CosineGradientExplorer(torch.randn(3), torch.randn(3)), "norm", 50.0), "norm",
    Exception)
case("protoexp_target", lambda: _w().PrototypeExplorer(42, models.MLP(16, 4)), "target")
case("protoexp_n_way", lambda: _w().PrototypeExplorer(toy(), models.MLP(16, 4), n_way=1),
     "n_way")
case("runner_dataset", lambda: _w().MethodRunner("mnist"), "dataset")
case("sec_dataset_int", lambda: _w().SECExplorer(42), "dataset")
case("task_limits_tiny", lambda: _w().task_limits(Dataset(
    "one", torch.rand(3, 4), torch.arange(3), ("a", "b", "c"), ("g",) * 3)), "too small")


# viz
def _F() -> Any:
    from dml_kit.viz import figures

    return figures


def _toy_viz() -> Any:
    from dml_kit.viz import toy as t

    return t


def _proj() -> Any:
    from dml_kit.viz import projection

    return projection


def _live() -> Any:
    from dml_kit.viz.live import LiveDashboard

    return LiveDashboard


case("live_fps0", lambda: _live()(fps=0), "fps")
case("live_projection", lambda: _live()(projection="tsne"), "projection")
case("live_max_points", lambda: _live()(max_points=1), "max_points")
case("viz_cosgrad_mismatch", lambda: _toy_viz().cosine_gradient(torch.randn(3), torch.randn(2)),
     "g")
case("viz_cosgrad_zero", lambda: _toy_viz().cosine_gradient(torch.zeros(3), torch.randn(3)),
     "f")
case("viz_turn_lr", lambda: _toy_viz().sgd_turn_degrees(torch.randn(3), torch.randn(3), lr=NAN),
     "lr")
case("viz_pca_nan", lambda: _proj().pca_2d(emb(nan=True)), "emb")
case("viz_pca_1d", lambda: _proj().pca_2d(emb()[0]), "emb")
case("viz_procrustes_shapes", lambda: _proj().procrustes_align(emb(6, 2), emb(5, 2)),
     "reference")
case("viz_norm_hist_nan", lambda: _F().norm_histogram(emb(nan=True)), "values")
case("viz_scatter_labels_len", lambda: _F().projection_scatter(emb(6, 2), Y[:3]), "labels")
case("viz_pair_sims_nan", lambda: _F().pair_similarities(emb(nan=True), Y), "embeddings")
case("viz_acc_vs_k_column", lambda: _F().accuracy_vs_k([{"method": "m", "k": 1}]), "accuracy")
case("viz_palette_negative", lambda: _F().palette(-1), "n")
case("viz_decode_image", lambda: _F().decode_image("not an image"), "source")


# ---- the tests ------------------------------------------------------------------------------
def _check(c: Case) -> str | None:
    """``None`` when ``c`` raised the right exception naming ``c.text`` (case-sensitive, as a
    whole word: a renamed argument in a message is caught), else what went wrong."""
    try:
        result = c.call()
    except c.exc as err:
        message = str(err)
        if re.search(rf"(?<![\w]){re.escape(c.text)}(?![\w])", message):
            return None
        return f"{type(err).__name__} without {c.text!r}: {message[:300]}"
    except Exception as err:  # noqa: BLE001 (the point: any other exception is unclear)
        return f"unclear {type(err).__name__}: {str(err)[:300]}"
    return f"no error: returned {result!r:.200}"


def test_cases_are_many_and_distinct() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)), "case ids repeat"
    assert len(CASES) >= 150


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_bad_input(c: Case) -> None:
    problem = _check(c)
    assert problem is None, f"{c.id}: {problem}"


def test_every_bad_input_is_clear(capsys: pytest.CaptureFixture[str]) -> None:
    problems = {c.id: p for c in CASES if (p := _check(c)) is not None}
    clear = len(CASES) - len(problems)
    with capsys.disabled():
        print(f"\n{clear}/{len(CASES)} bad inputs gave a clear error")
    assert not problems, problems


def test_valid_devices_still_resolve() -> None:
    """The device check refuses only what torch cannot use here."""
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ".strip()) == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device(None).type in ("cpu", "cuda")
    assert resolve_device("auto") == resolve_device(None)
    with pytest.raises(ValueError, match="choose one of: 'auto', 'cpu', 'cuda', 'mps'"):
        resolve_device("tpu")
