"""``scratch``: the paper's non-transfer baseline.

Recipe (Adapted Deep Embeddings, "baseline"): a fresh classifier (the same embedder
plus a linear n-way output layer) is trained with cross-entropy on the target support
set only (k x n examples), early-stopped on the task's validation part when it has one
and on the support accuracy otherwise (the paper's T2 rule), and scored on the queries.
No source data is used. Before each score the batch-norm running statistics are
recomputed on the support (a fresh network's are 0 and 1, and a few momentum-0.1 steps
barely move them: eval mode would otherwise sit near chance).
"""

from __future__ import annotations

from dml_kit.data import KShotTask
from dml_kit.methods.phases import TargetPhase, train_classifier
from dml_kit.methods.registry import Method
from dml_kit.methods.results import CallbacksArg, RunResult, SourceModel
from dml_kit.models import Classifier

NAME = "scratch"


def evaluate(source: SourceModel | None, task: KShotTask, phase: TargetPhase, *, seed: int,
             callbacks: CallbacksArg = None) -> RunResult:
    """Train a classifier from scratch on ``task.support_*``; accuracy on ``task.query_*``."""
    def build() -> Classifier:
        shape = tuple(task.support_x.shape[1:])
        return Classifier(phase.model.build(shape, role="classifier"), task.n_way)

    return train_classifier(NAME, build, task, phase, seed=seed, callbacks=callbacks)


METHOD = Method(NAME, "classifier trained on the target support only (baseline)", evaluate,
                loss="cross_entropy")
