"""Interactive panels for the notebooks: ipywidgets controls bound to tasks, runs and figures.

* :class:`TaskExplorer`: dataset, n, k, seed -> the support/query gallery of a k-shot task;
* :class:`MethodRunner`: method, loss, regularizer and weight, k, n, epochs -> trains with a
  :class:`~dml_kit.viz.live.LiveDashboard` and shows the target accuracy;
* :class:`SECExplorer`: one loss trained with and without SEC, side by side (norm
  histograms, coefficient of variation, accuracy);
* :class:`ShiftExplorer`: a slider over a ladder of class splits of growing shift;
* :class:`GridBrowser`: filters over a results table -> heatmap and accuracy-vs-k curves;
* :class:`EpochReplay`: a slider over the probe embeddings a run recorded, epoch by epoch;
* :class:`PrototypeExplorer`: k -> queries and prototypes of a task in a frozen embedding;
* :class:`MethodComparison`: n, k -> several methods on one task, one bar each;
* :class:`CosineGradientExplorer`: the embedding norm -> the step size of a cosine loss;
* :class:`RetrievalGallery`: a query image -> its top-k neighbours under pixels and under
  an embedding, with its Recall@1 and precision@k;
* :class:`ConfusionExplorer`: method, n, k -> which classes it confuses on a task, with
  images of the confused pairs;
* :class:`Sketchpad`: draw a character with the mouse -> its nearest support images, the
  class probabilities of an n-way k-shot task and where it lands in the projection;
* :class:`PointInspector` (from :mod:`dml_kit.viz.inspector`): the image pane and
  neighbours strip every projection carries (hover a point: its image and class; click
  it: its nearest neighbours); :func:`click` and :func:`hover` drive it headless.

Every panel is an ``ipywidgets.VBox`` and can be driven from Python without a browser:
set a control's ``.value`` (observers redraw at once) or press a button with
``panel.train_button.click()``; the figures are ``go.FigureWidget`` objects whose
``.data`` the tests read. Controls are validated: the k slider's maximum follows the data
(the smallest class minus at least one query), n's maximum follows the available classes.
Errors inside a button's handler are shown in the panel's status line (and kept in
``panel.error``) instead of disappearing into the kernel's log.

Layout: :mod:`dml_kit.widgets.base` holds the panel framework (``_Panel``,
``_TrainingPanel``, ``_replace_figure``, ...) and the cached data helpers; one module per
panel family: :mod:`~dml_kit.widgets.tasks`, :mod:`~dml_kit.widgets.training`,
:mod:`~dml_kit.widgets.replay`, :mod:`~dml_kit.widgets.comparison`,
:mod:`~dml_kit.widgets.gradients`, :mod:`~dml_kit.widgets.shift`,
:mod:`~dml_kit.widgets.gallery`. Panels wire controls to
library functions (``dml_kit.methods``, ``dml_kit.metrics``, ``dml_kit.compare``,
``dml_kit.experiments``) and draw with the builders of :mod:`dml_kit.viz.figures`.
"""

from __future__ import annotations

from dml_kit.viz.inspector import PointInspector, hover
from dml_kit.widgets.base import (
    DATASETS,
    _check_dataset_name,
    _config_or_classroom,
    _disabled,
    _figure_widget,
    _Panel,
    _replace_figure,
    _set_range,
    _status,
    _task_sliders,
    _training_data,
    _TrainingPanel,
    _with_resets,
    load_cached,
    split_cached,
    task_limits,
)
from dml_kit.widgets.comparison import GridBrowser, MethodComparison
from dml_kit.widgets.gallery import ConfusionExplorer, RetrievalGallery, click, query_predictions
from dml_kit.widgets.gradients import CosineGradientExplorer
from dml_kit.widgets.replay import EpochReplay, PrototypeExplorer
from dml_kit.widgets.shift import ShiftExplorer, score_rows, zero_shot_evaluator
from dml_kit.widgets.sketchpad import Sketchpad
from dml_kit.widgets.tasks import TaskExplorer
from dml_kit.widgets.training import MethodRunner, SECExplorer, uses_loss, uses_regularizer

__all__ = ["TaskExplorer", "MethodRunner", "SECExplorer", "ShiftExplorer", "GridBrowser",
           "EpochReplay", "PrototypeExplorer", "MethodComparison", "CosineGradientExplorer",
           "task_limits", "load_cached", "split_cached", "zero_shot_evaluator", "score_rows",
           "uses_loss", "uses_regularizer", "DATASETS", "RetrievalGallery",
           "ConfusionExplorer", "query_predictions", "click", "hover", "PointInspector",
           "Sketchpad"]

# the panel framework's private names stay importable from here (tests and older code use
# ``from dml_kit.widgets import _replace_figure``)
_PRIVATE = (_check_dataset_name, _config_or_classroom, _disabled, _figure_widget, _Panel,
            _replace_figure, _set_range, _status, _task_sliders, _training_data,
            _TrainingPanel, _with_resets)
