"""Deprecated: the old home of the steps the recipes share, kept so that old imports work.

Its contents now live in modules named for what they hold:
:mod:`~dml_kit.methods.results` (RunResult, SourceModel, K1_NOTE),
:mod:`~dml_kit.methods.batches` (holdout, batches, episodes, ``epoch_seed``),
:mod:`~dml_kit.methods.scores` (classification rules and their leave-one-out forms) and
:mod:`~dml_kit.methods.phases` (phase objects and shared steps such as
``recalibrate_batchnorm``). Setting ``recalibrate_batchnorm`` here (as
``dml_kit.compare.without_bn_recalibration`` does with ``mock.patch.object``) sets it in
:mod:`~dml_kit.methods.phases`, where the recipes look it up.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from dml_kit.methods import phases as _phases
from dml_kit.methods.batches import (  # noqa: F401
    balanced_batches,
    episodes,
    holdout,
    probe_subset,
    scoring_classes,
    shuffled_batches,
)
from dml_kit.methods.phases import (  # noqa: F401
    RECALIBRATION_BATCH,
    adapt_embedder,
    cross_entropy_step,
    fine_tune_classifier,
    fit_source,
    recalibrate_batchnorm,
    source_parts,
    unadapted,
)
from dml_kit.methods.results import K1_NOTE, CallbacksArg, RunResult, SourceModel  # noqa: F401
from dml_kit.methods.scores import (  # noqa: F401
    classifier_accuracy,
    classify_accuracy,
    embedding_metrics,
    has_val,
    loo_1nn_accuracy,
    loo_prototype_accuracy,
)

_FORWARDED = ("recalibrate_batchnorm",)


class _Forwarding(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name in _FORWARDED:
            setattr(_phases, name, value)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Forwarding
