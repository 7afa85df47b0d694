"""Saved models: :func:`save_model` / :func:`load_model` for trained embedders, classifiers
and :class:`~dml_kit.methods.SourceModel` objects, and the on-disk cache of source models
(:func:`cached_train_source`, ``train_source(..., cache=True)``).

**The format.** One file written by :func:`torch.save` (atomically,
:func:`dml_kit.data.paths.atomic_write`) holding a plain dict of three entries:
``"format"`` (:data:`FORMAT`), ``"meta"`` (a JSON *string*: format version, what was saved,
the :class:`~dml_kit.methods.MethodConfig` fields and their hash, input shape, role,
classes, the source model's scores and timings, the data fingerprint, the recipe version
and a sha256 digest of the weights) and ``"state"`` (the network's state dict: tensors
only). :func:`load_model` reads it with ``torch.load(weights_only=True)``, which never
unpickles arbitrary objects, checks the digest, rebuilds the network from the config
(:func:`dml_kit.models.for_shape`, the kit's one model choice) and loads the weights:
the loaded network embeds bit for bit as the saved one. Only networks the kit builds can
be saved (a structure the config cannot rebuild is refused when saving, not when
loading).

**Checks.** ``load_model(path, expect_config=..., expect_fingerprint=...)`` refuses a
file whose config fields or data fingerprint differ from the expected ones with a
``ValueError`` naming each field, its saved and its expected value. A truncated,
corrupt or foreign file raises ``ValueError`` naming the path and what to do.

**The cache.** :func:`cached_train_source` keys a source model by
:func:`source_cache_key`: its kind, the config fields it depends on
(:meth:`~dml_kit.methods.SourceTrainer.key_fields`: model and source fields, episode
fields and the task's way and shot for protonets, loss and regularizer fields when the
kind reads them), the seed, the source data's content fingerprint and
:data:`~dml_kit.methods.RECIPE_VERSION`; it keeps one file per key under
``<data folder>/models/`` (:func:`model_dir`). A second notebook run or a grid with new
cells loads the model instead of training it again. Interrupted trainings are not cached.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import pickle
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from dml_kit import models
from dml_kit.callbacks import ModelLoaded, as_callback_list
from dml_kit.data.core import Dataset
from dml_kit.data.paths import atomic_write, check_writable, data_root
from dml_kit.device import resolve_device
from dml_kit.methods.config import MethodConfig, fields_of
from dml_kit.methods.registry import SourceTrainer, source_trainers
from dml_kit.methods.results import CallbacksArg, SourceModel
from dml_kit.training import TrainResult

#: the ``"format"`` entry of every saved model file
FORMAT = "dml_kit.model"
#: the layout of ``"meta"``; files of a newer version are refused
FORMAT_VERSION = 1
#: the file name ending :func:`cached_train_source` uses
SUFFIX = ".pt"
#: the sub-folder of the data folder that holds cached source models
MODELS_DIR = "models"
#: the net's role (:data:`dml_kit.models.NET_ROLES`) for each built-in source kind
KIND_ROLES = {"classifier": "classifier", "embedding": "metric", "protonet": "protonet"}

PathLike = str | os.PathLike[str]


# ---- fingerprints and keys ----------------------------------------------------------------
def data_fingerprint(dataset: Dataset) -> str:
    """The content fingerprint of ``dataset`` that grids use
    (:func:`dml_kit.experiments.grid.dataset_fingerprint`: its name, shapes, labels,
    classes and a few hundred examples' bytes)."""
    from dml_kit.experiments.grid import dataset_fingerprint  # noqa: PLC0415 (pandas loads only here)

    return dataset_fingerprint(dataset)


def _sha256(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _trainer(kind: str) -> SourceTrainer:
    trainers = source_trainers()
    if kind not in trainers:
        raise ValueError(f"unknown source kind {kind!r}; choose one of: {', '.join(trainers)}")
    return trainers[kind]


def source_cache_key(kind: str, config: MethodConfig, *, n_way: int, k_shot: int, seed: int,
                     fingerprint: str) -> str:
    """sha256 (hex) of everything a source model of ``kind`` depends on: the config fields
    it reads (:meth:`~dml_kit.methods.SourceTrainer.key_fields`, with the episode way and
    shot for episodic kinds only), ``seed``, the data ``fingerprint`` and
    :data:`~dml_kit.methods.RECIPE_VERSION` (not the device, not the library version)."""
    from dml_kit.methods import RECIPE_VERSION  # noqa: PLC0415 (the package imports this module)

    return _sha256({"v": FORMAT_VERSION, "recipe": RECIPE_VERSION, "kind": kind,
                    "fields": _trainer(kind).key_fields(config, n_way, k_shot),
                    "seed": int(seed), "data": fingerprint})


def model_dir(root: PathLike | None = None) -> Path:
    """Where cached source models live: ``<data folder>/models`` (see
    :func:`dml_kit.data.paths.data_root`; ``root`` overrides the data folder)."""
    return data_root(root) / MODELS_DIR


# ---- saving ---------------------------------------------------------------------------------
def _structure(module: nn.Module) -> dict[str, tuple[tuple[int, ...], str]]:
    return {k: (tuple(v.shape), str(v.dtype)) for k, v in module.state_dict().items()}


def _build(input_shape: tuple[int, ...], model_fields: dict[str, Any], role: str | None,
           normalize: bool, n_classes: int | None) -> nn.Module:
    """The network a file describes, freshly initialised."""
    config = MethodConfig(**model_fields)
    embedder = models.for_shape(input_shape, config.embedding_dim, channels=config.channels,
                                hidden=config.hidden, normalize=normalize,
                                architecture=config.architecture, role=role)
    return embedder if n_classes is None else models.Classifier(embedder, n_classes)


def _model_fields(config: MethodConfig) -> dict[str, Any]:
    return {name: getattr(config, name) for name in fields_of("model")}


def _describe(module: nn.Module, config: MethodConfig, input_shape: tuple[int, ...],
              role: str | None) -> dict[str, Any]:
    """How to rebuild ``module``: its role, normalisation and classes, checked by building
    it again (``ValueError`` when the config cannot rebuild it)."""
    n_classes = module.n_classes if isinstance(module, models.Classifier) else None
    embedder = module.embedder if isinstance(module, models.Classifier) else module
    normalize = bool(getattr(embedder, "normalize", False))
    fields = _model_fields(config)
    want = _structure(module)
    roles = [role] if role is not None else [None, *models.NET_ROLES]
    for candidate in roles:
        try:
            built = _build(input_shape, fields, candidate, normalize, n_classes)
        except ValueError:
            continue
        if _structure(built) == want:
            return {"role": candidate, "normalize": normalize, "n_classes": n_classes}
    raise ValueError(
        f"cannot save a {type(module).__name__} for inputs {input_shape}: the config "
        f"(architecture={config.architecture!r}, embedding_dim={config.embedding_dim}, "
        f"channels={config.channels}, hidden={config.hidden}) does not rebuild it "
        f"(role={role!r}). save_model stores nets built by dml_kit.models.for_shape (or a "
        "Classifier on one) with the config they were built from; pass that config")


def _digest(state: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name]
        h.update(f"{name}:{tuple(t.shape)}:{t.dtype}".encode())
        h.update(t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
                 if t.numel() else b"")
    return h.hexdigest()


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}


def _config_fields(config: MethodConfig, kind: str | None, n_way: int | None,
                   k_shot: int | None) -> dict[str, Any]:
    """The config fields a saved model depends on: a source model's key fields
    (:meth:`~dml_kit.methods.SourceTrainer.key_fields`), every hashed field otherwise."""
    if kind is not None:
        return _trainer(kind).key_fields(config, n_way or 0, k_shot or 0)
    return config.hash_dict()


def save_model(model: nn.Module | SourceModel, path: PathLike, *,
               config: MethodConfig | None = None, input_shape: tuple[int, ...] | None = None,
               role: str | None = None, dataset: Dataset | None = None,
               fingerprint: str | None = None, info: dict[str, Any] | None = None) -> Path:
    """Save a trained network or :class:`~dml_kit.methods.SourceModel` to ``path``
    (atomically; see the module docstring for the format); return the path.

    Args:
        model: a :class:`~dml_kit.methods.SourceModel` (from
            :func:`~dml_kit.methods.train_source`, which records its config, seed and task
            shape) or a network the kit built: an embedder from
            :func:`dml_kit.models.for_shape` or a :class:`~dml_kit.models.Classifier` on one
            (``RunResult.model``).
        path: the file to write (folders are created).
        config: the :class:`~dml_kit.methods.MethodConfig` the net was built and trained
            with (default: the source model's own; required for a bare network).
        input_shape: the shape of one input (default: the source model's, or
            ``dataset.input_shape``).
        role: the net's role (:data:`dml_kit.models.NET_ROLES`); default: the source
            kind's, or found by rebuilding the net.
        dataset: the data it was trained on; its fingerprint is recorded (see
            :func:`data_fingerprint`). ``fingerprint`` gives it directly.
        info: extra JSON-friendly notes stored with it.

    Raises:
        ValueError: no config or input shape, or a net the config cannot rebuild.
    """
    from dml_kit.methods import RECIPE_VERSION  # noqa: PLC0415 (the package imports this module)

    source = model if isinstance(model, SourceModel) else None
    module = source.model if source is not None else model
    if not isinstance(module, nn.Module):
        raise ValueError(f"model must be an nn.Module or a SourceModel, got "
                         f"{type(model).__name__}")
    config = config or (source.config if source is not None else None)
    if config is None:
        raise ValueError("config is required: pass config= (the MethodConfig the model was "
                         "built and trained with)")
    if input_shape is None:
        if source is not None and source.info.get("input_shape") is not None:
            input_shape = tuple(source.info["input_shape"])
        elif dataset is not None:
            input_shape = tuple(dataset.input_shape)
        else:
            raise ValueError("input_shape is required for a bare network: pass input_shape= "
                             "(one example's shape) or dataset=")
    input_shape = tuple(int(d) for d in input_shape)
    if role is None and source is not None:
        role = KIND_ROLES.get(source.kind)
    if fingerprint is None and dataset is not None:
        fingerprint = data_fingerprint(dataset)
    if fingerprint is None and source is not None:
        fingerprint = source.fingerprint
    kind = source.kind if source is not None else None
    n_way = source.n_way if source is not None else None
    k_shot = source.k_shot if source is not None else None
    fields = _config_fields(config, kind, n_way, k_shot)
    state = _cpu_state(module)
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION, "recipe_version": RECIPE_VERSION,
        "torch": torch.__version__, "saved": "source" if source is not None else "module",
        "input_shape": list(input_shape), "model": _model_fields(config),
        **_describe(module, config, input_shape, role),
        "config": config.hash_dict(), "config_fields": fields,
        "config_hash": _sha256(fields), "fingerprint": fingerprint,
        "training": module.training, "digest": _digest(state), "info": info or {}}
    meta["model"]["hidden"] = list(config.hidden)
    if source is not None:
        meta["source"] = {
            "kind": source.kind, "val_score": source.val_score, "seconds": source.seconds,
            "seed": source.seed, "n_way": source.n_way, "k_shot": source.k_shot,
            "info": source.info, "train": dataclasses.asdict(source.train)}
    payload = {"format": FORMAT, "meta": json.dumps(meta, default=_json_default),
               "state": state}
    path = Path(path)
    with atomic_write(path) as handle:
        torch.save(payload, handle)
    return path


def _json_default(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return value.item()
    return str(value)


# ---- loading --------------------------------------------------------------------------------
def _corrupt(path: Path, why: str) -> ValueError:
    return ValueError(f"{path} is not a readable dml_kit model file ({why}): it is truncated, "
                      "corrupt or was not written by dml_kit.methods.save_model. Delete it and "
                      "save the model again (a cached source model is trained again on the "
                      "next run once the file is gone)")


def _read(path: PathLike) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """``(meta, state)`` of a model file, checked (format, version, digest)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no saved model at {path}")
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol note is noise here
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise _corrupt(path, f"not a weights-only file, refused: {first}") from None
    except (RuntimeError, EOFError, OSError, zipfile.BadZipFile, ValueError, KeyError,
            io.UnsupportedOperation) as err:
        raise _corrupt(path, f"{type(err).__name__}: {str(err)[:200]}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise _corrupt(path, f"no {FORMAT!r} format entry")
    state = payload.get("state")
    try:
        meta = json.loads(payload.get("meta", ""))
    except (TypeError, ValueError) as err:
        raise _corrupt(path, f"bad metadata: {err}") from None
    if not isinstance(meta, dict) or not isinstance(state, dict) or not all(
            isinstance(v, torch.Tensor) for v in state.values()):
        raise _corrupt(path, "bad metadata or weights")
    version = meta.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(f"{path} was saved in model format version {version!r}; this "
                         f"dml_kit reads versions up to {FORMAT_VERSION}: update dml_kit")
    if _digest(state) != meta.get("digest"):
        raise _corrupt(path, "the weights do not match their recorded sha256 digest")
    return meta, state


def model_info(path: PathLike) -> dict[str, Any]:
    """The metadata of a saved model (format and recipe versions, config fields and hash,
    input shape, role, fingerprint, source-model scores), without building the net."""
    return _read(path)[0]


def _check(path: Path, meta: dict[str, Any], expect_config: MethodConfig | None,
           expect_fingerprint: str | Dataset | None) -> None:
    """Refuse a file whose config fields or data fingerprint differ from the expected."""
    problems = []
    if expect_config is not None:
        src = meta.get("source") or {}
        kind = src.get("kind") if meta.get("saved") == "source" else None
        want = json.loads(json.dumps(_config_fields(expect_config, kind, src.get("n_way"),
                                                    src.get("k_shot")), default=str))
        have = meta.get("config_fields", {})
        for name in sorted(set(want) | set(have)):
            if have.get(name) != want.get(name):
                problems.append(f"config field {name!r}: saved {have.get(name)!r}, expected "
                                f"{want.get(name)!r}")
    if expect_fingerprint is not None:
        want_fp = (data_fingerprint(expect_fingerprint)
                   if isinstance(expect_fingerprint, Dataset) else str(expect_fingerprint))
        if meta.get("fingerprint") != want_fp:
            problems.append(f"data fingerprint: saved {meta.get('fingerprint')!r}, expected "
                            f"{want_fp!r}")
    if problems:
        raise ValueError(f"{path} does not match what was expected (config hash "
                         f"{str(meta.get('config_hash'))[:12]}): " + "; ".join(problems)
                         + ". Train the model with these settings on this data, or load "
                         "it without the expectation")


def load_model(path: PathLike, expect_config: MethodConfig | None = None,
               expect_fingerprint: str | Dataset | None = None, *,
               device: str | torch.device | None = "cpu") -> nn.Module | SourceModel:
    """Load a model saved by :func:`save_model`: a
    :class:`~dml_kit.methods.SourceModel` when a source model was saved, else the network.

    The weights are read with ``torch.load(weights_only=True)`` (no arbitrary objects are
    unpickled) and checked against their digest; the network is rebuilt from the saved
    config and embeds bit for bit as the saved one did.

    Args:
        path: the file.
        expect_config: refuse the file unless the config fields the model depends on
            equal this config's (a source model's key fields; every hashed field for a
            bare net).
        expect_fingerprint: refuse the file unless it was trained on this data (a
            :class:`~dml_kit.data.Dataset` or a fingerprint string).
        device: where to put the network (``None``: CUDA when present).

    Raises:
        FileNotFoundError: no file at ``path``.
        ValueError: a mismatch (naming each field with its saved and expected value), or a
            truncated, corrupt or foreign file (naming the path and what to do).
    """
    path = Path(path)
    meta, state = _read(path)
    _check(path, meta, expect_config, expect_fingerprint)
    try:
        module = _build(tuple(meta["input_shape"]), meta["model"], meta["role"],
                        bool(meta["normalize"]), meta["n_classes"])
        module.load_state_dict(state, strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise _corrupt(path, f"cannot rebuild the network: {str(err)[:200]}") from None
    module.train(bool(meta.get("training", False)))
    module.to(resolve_device(device))
    if meta.get("saved") != "source":
        return module
    try:
        src = meta["source"]
        info = dict(src.get("info") or {})
        if info.get("input_shape") is not None:
            info["input_shape"] = tuple(info["input_shape"])
        return SourceModel(kind=src["kind"], model=module, train=TrainResult(**src["train"]),
                           val_score=src["val_score"], seconds=float(src["seconds"]),
                           info=info, config=MethodConfig(**meta["config"]),
                           seed=src.get("seed"), n_way=src.get("n_way"),
                           k_shot=src.get("k_shot"), fingerprint=meta.get("fingerprint"))
    except (KeyError, TypeError, ValueError) as err:
        raise _corrupt(path, f"bad source-model record: {str(err)[:200]}") from None


def load_source(path: PathLike, expect_config: MethodConfig | None = None,
                expect_fingerprint: str | Dataset | None = None, *,
                device: str | torch.device | None = "cpu") -> SourceModel:
    """:func:`load_model` for a file that holds a source model (``ValueError`` otherwise)."""
    loaded = load_model(path, expect_config, expect_fingerprint, device=device)
    if not isinstance(loaded, SourceModel):
        raise ValueError(f"{path} holds a bare {type(loaded).__name__}, not a source model: "
                         "use load_model")
    return loaded


# ---- the source-model cache -------------------------------------------------------------------
def cache_path(kind: str, config: MethodConfig, *, n_way: int, k_shot: int, seed: int,
               fingerprint: str, root: PathLike | None = None) -> Path:
    """The cache file of a source model: ``<data folder>/models/<kind>-<key[:20]>.pt``."""
    key = source_cache_key(kind, config, n_way=n_way, k_shot=k_shot, seed=seed,
                           fingerprint=fingerprint)
    return model_dir(root) / f"{kind}-{key[:20]}{SUFFIX}"


def cached_train_source(kind: str, source: Dataset, config: MethodConfig | None = None, *,
                        n_way: int = 5, k_shot: int = 1, seed: int = 0,
                        callbacks: CallbacksArg = None, root: PathLike | None = None,
                        refresh: bool = False, fingerprint: str | None = None) -> SourceModel:
    """:func:`~dml_kit.methods.train_source` through the disk cache: load the source model
    of these settings from :func:`cache_path` when it is there, else train it and save it.

    A hit returns the model saved by the first run (the same weights training would give
    again, without training: no training events but one ``on_model_loaded``
    (:class:`~dml_kit.callbacks.ModelLoaded`), ``seconds`` is the load time and
    ``info["cache"]`` says ``"hit"`` with the original ``info["trained_seconds"]``). A
    corrupt cache file is trained again (with a warning); an unwritable cache folder
    trains without caching (with a warning); interrupted trainings are not saved.
    ``refresh=True`` trains again and overwrites the file; ``fingerprint`` passes the
    data fingerprint when the caller has it (:func:`data_fingerprint` of ``source``
    otherwise)."""
    from dml_kit.methods import train_source  # noqa: PLC0415 (the package imports this module)

    config = config or MethodConfig()
    start = time.perf_counter()
    fingerprint = fingerprint or data_fingerprint(source)
    key = source_cache_key(kind, config, n_way=n_way, k_shot=k_shot, seed=seed,
                           fingerprint=fingerprint)
    path = cache_path(kind, config, n_way=n_way, k_shot=k_shot, seed=seed,
                      fingerprint=fingerprint, root=root)
    if path.is_file() and not refresh:
        try:
            meta_key = model_info(path).get("info", {}).get("cache_key")
            if meta_key != key:
                raise ValueError(f"{path} holds another model (key {meta_key!r})")
            loaded = load_source(path, config, fingerprint, device=config.device)
        except ValueError as err:
            warnings.warn(f"training again: {err}", stacklevel=2)
        else:
            loaded.info.update(cache="hit", cache_path=str(path),
                               trained_seconds=loaded.seconds)
            loaded.seconds = time.perf_counter() - start
            as_callback_list(callbacks).on_model_loaded(ModelLoaded(
                kind=kind, trained_seconds=loaded.info["trained_seconds"], path=str(path)))
            return loaded
    model = train_source(kind, source, config, n_way=n_way, k_shot=k_shot, seed=seed,
                         callbacks=callbacks)
    model.fingerprint = fingerprint
    if model.interrupted:
        return model
    try:
        check_writable(path.parent, "cached source models")
    except ValueError as err:
        warnings.warn(f"not caching the source model: {err}", stacklevel=2)
        return model
    save_model(model, path, info={"cache_key": key})
    model.info.update(cache="miss", cache_path=str(path))
    return model


__all__ = ["FORMAT", "FORMAT_VERSION", "MODELS_DIR", "cache_path", "cached_train_source",
           "data_fingerprint", "load_model", "load_source", "model_dir", "model_info",
           "save_model", "source_cache_key"]
