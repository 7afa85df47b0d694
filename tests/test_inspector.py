"""The point inspector: hovering a projection's point shows its image and class, clicking
it its nearest neighbours. Driven headless through the FigureWidget's own callback path
(:func:`dml_kit.viz.inspector.hover` / ``click`` set the trait the browser sets) and
checked against images and neighbours worked out independently (by hand on a five-point
set, by brute-force cosine similarity on the panels)."""

from __future__ import annotations

import re
import types

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from dml_kit import widgets as W
from dml_kit.viz.figures import decode_image, projection_scatter
from dml_kit.viz.gallery import CORRECT_COLOR, WRONG_COLOR
from dml_kit.viz.inspector import PointInspector, click, hover, point_index

_SRC = re.compile(r"src='(data:image/png;base64,[^']+)'")


def _shown_images(html: str) -> list[np.ndarray]:
    return [decode_image(uri) for uri in _SRC.findall(html)]


def _pixels(img) -> np.ndarray:
    """What the inspector should draw for one ``(C, H, W)`` / ``(H, W)`` image."""
    a = np.asarray(img, dtype=np.float32)
    if a.ndim == 3:
        a = a[0]
    return np.repeat((np.clip(a, 0, 1) * 255).round().astype(np.uint8)[..., None], 3, -1)


def _brute_neighbours(features, i: int, k: int) -> list[int]:
    f = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    unit = f / np.linalg.norm(f, axis=1, keepdims=True)
    sim = unit @ unit[i]
    sim[i] = -np.inf
    return [int(j) for j in np.argsort(-sim, kind="stable")[:k]]


def _trace_point(fig, index: int) -> tuple[int, int]:
    """(trace, point) of the point whose customdata index is ``index``."""
    for t, trace in enumerate(fig.data):
        for p in range(len(trace.x if trace.x is not None else [])):
            if point_index(trace, p) == index:
                return t, p
    raise AssertionError(f"no point with index {index}")


def _check_hover_and_click(fig, inspector, index: int, images, labels, names, features,
                           k: int = 5) -> None:
    """Hover and click point ``index`` of ``fig``; the panes must show its image, class
    and its true nearest neighbours under ``features``."""
    t, p = _trace_point(fig, index)
    hover(fig, t, p)
    assert inspector.index == index and inspector.class_name == names[int(labels[index])]
    assert f"<b class='dml-inspector-class'>{names[int(labels[index])]}</b>" in \
        inspector.image_pane.value
    if images is not None:
        np.testing.assert_array_equal(_shown_images(inspector.image_pane.value)[0],
                                      _pixels(images[index]))
    click(fig, t, p)
    expected = _brute_neighbours(features, index, k)
    assert inspector.selected == index and inspector.neighbours == expected
    assert inspector.correct == [int(labels[j]) == int(labels[index]) for j in expected]
    strip = inspector.neighbours_pane.value
    assert [int(m) for m in re.findall(r"dml-inspector-neighbour' data-index='(\d+)'",
                                       strip)] == expected
    if images is not None:
        for shown, j in zip(_shown_images(strip), expected, strict=True):
            np.testing.assert_array_equal(shown, _pixels(images[j]))


# ---- the component on a set small enough to check by hand --------------------------------
def _five_points():
    features = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.7, 0.7]])
    labels = np.array([0, 0, 1, 1, 0])
    images = np.zeros((5, 1, 3, 3), dtype=np.float32)
    for i in range(5):                      # image i: pixel i lit, the rest black
        images[i, 0].flat[i] = 1.0
    return features, labels, images


def test_inspector_on_five_points_matches_the_hand_worked_neighbours():
    features, labels, images = _five_points()
    fig = go.FigureWidget(projection_scatter(features, labels, ["round", "square"]))
    inspector = PointInspector(k=3).attach(fig)
    inspector.set_points(labels, ["round", "square"], images=images, features=features)
    assert "hover a point" in inspector.image_pane.value and inspector.index is None
    # point 0 = [1, 0]: cosine 0.994 to #1, 0.707 to #4, 0.110 to #3, 0 to #2
    hover(fig, 0, 0)
    assert (inspector.index, inspector.class_name, inspector.selected) == (0, "round", None)
    assert inspector.neighbours_pane.value == ""              # a hover opens no neighbours
    lit = _shown_images(inspector.image_pane.value)[0]
    assert lit[0, 0].tolist() == [255, 255, 255] and lit.sum() == 3 * 255
    click(fig, 0, 0)
    assert inspector.neighbours == [1, 4, 3] and inspector.correct == [True, True, False]
    strip = inspector.neighbours_pane.value
    assert re.findall(r"data-correct='(\d)'", strip) == ["1", "1", "0"]
    assert strip.count(CORRECT_COLOR) >= 2 and WRONG_COLOR in strip
    assert "2 of 3 same class" in strip and "✗ other class" in strip
    # point 2 (square, trace 1 point 0) = [0, 1]: #3 (0.994), #4 (0.707), #1 (0.110)
    click(fig, 1, 0)
    assert inspector.index == 2 and inspector.class_name == "square"
    assert inspector.neighbours == [3, 4, 1] and inspector.correct == [True, False, False]
    # new features (the next training frame): the clicked point's strip follows them
    inspector.set_features(np.array([[1.0, 0.0], [0.0, 1.0], [0.1, 1.0], [1.0, 0.1],
                                     [0.5, 0.5]]))
    assert inspector.neighbours == [1, 4, 3]
    assert inspector.events == 3
    # thumbnails are encoded once per point
    assert set(inspector._uris) == {0, 1, 2, 3, 4}


def test_inspector_reads_scalar_customdata_and_ignores_points_without_it():
    features, labels, images = _five_points()
    fig = go.FigureWidget([
        go.Scatter(x=[0, 1], y=[0, 1], customdata=[4, 2], mode="markers"),
        go.Scatter(x=[2], y=[2], mode="markers", name="prototypes")])
    inspector = PointInspector(k=2)
    inspector.set_points(labels, ["a", "b"], images=images, features=features)
    inspector.attach(fig).attach(fig)                   # attaching twice binds once
    click(fig, 0, 0)    # point 4 = [0.7, 0.7]: #1 and #3 tie at cosine 0.781 (lower index first)
    assert inspector.index == 4 and inspector.neighbours == [1, 3] and inspector.events == 1
    hover(fig, 1, 0)                                    # a star: nothing changes
    assert inspector.index == 4 and inspector.events == 1


def test_inspector_without_images_or_features_still_tells_the_class():
    features, labels, _ = _five_points()
    fig = go.FigureWidget(projection_scatter(features, labels, ["a", "b"]))
    inspector = PointInspector().attach(fig)
    inspector.set_points(labels, ["a", "b"], images=features)   # vectors: not images
    click(fig, 1, 1)
    assert inspector.index == 3 and "no image" in inspector.image_pane.value
    assert inspector.class_name == "b" and "no features yet" in inspector.neighbours_pane.value
    inspector.set_features(features)
    assert inspector.neighbours == [2, 4, 1, 0]                 # k capped at N - 1


def test_inspector_errors_name_the_argument():
    features, labels, images = _five_points()
    inspector = PointInspector()
    with pytest.raises(ValueError, match="no points"):
        inspector.show(0)
    inspector.set_points(labels, ["a", "b"], images=images)
    with pytest.raises(ValueError, match="index=5 is out of range"):
        inspector.show(5)
    with pytest.raises(ValueError, match=r"features must be \(N, D\) with N=5"):
        inspector.set_features(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="one image per point"):
        inspector.set_points(labels, images=images[:3])
    with pytest.raises(ValueError, match="FigureWidget"):
        inspector.attach(go.Figure())
    with pytest.raises(ValueError, match="k=0 is out of range"):
        PointInspector(k=0)
    with pytest.raises(ValueError, match="trace=3 is out of range"):
        click(go.FigureWidget(projection_scatter(features, labels)), 3, 0)


# ---- every projection panel --------------------------------------------------------------
@pytest.mark.timeout(240)
def test_live_dashboard_after_training_shows_probe_images_and_neighbours():
    mr = W.MethodRunner("digits", method="scratch", n_way=3, k_shot=2, epochs=1,
                        adapt_epochs=2, fps=30)
    mr.train_button.click()
    assert mr.error is None, mr.error
    dash = mr.dashboard
    task = W.split_cached("digits").target
    from dml_kit import data
    task = data.kshot_task(task, 3, 2, seed=0, n_query=min(10, task.min_class_size - 2))
    emb, labels, _ = dash._probe                     # the frame the projection shows
    assert dash.inspector.n_points == 6 and dash.inspector in dash.children
    np.testing.assert_array_equal(labels, task.support_y.numpy())   # probe = the support
    _check_hover_and_click(dash.projection_fig, dash.inspector, 4, task.support_x, labels,
                           task.class_names, emb)
    assert "class " in dash.projection_fig.data[0].hovertemplate
    # a second run with another k: the inspector follows the new probe set
    mr.k_shot.value = 3
    mr.train_button.click()
    assert mr.error is None and dash.inspector.n_points == 9 and dash.inspector.index is None


@pytest.mark.timeout(240)
def test_live_dashboard_source_phase_gets_the_probe_images_the_loop_used(monkeypatch):
    from dml_kit.methods import phases

    used = {}
    real_fit = phases.fit

    def recording_fit(*args, **kwargs):
        used[kwargs["phase"]] = kwargs["probe"]
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(phases, "fit", recording_fit)
    mr = W.MethodRunner("digits", method="metric", loss="triplet", n_way=3, k_shot=2,
                        epochs=1, batches_per_epoch=3, fps=30)
    mr.train_button.click()
    assert mr.error is None, mr.error
    px, py = used["source"]
    dash = mr.dashboard
    assert dash.phase == "source" and dash.inspector.n_points == len(py)
    emb, labels, _ = dash._probe
    names = list(mr.source.class_names)
    _check_hover_and_click(dash.projection_fig, dash.inspector, 7, px, py.numpy(), names,
                           emb)
    _check_hover_and_click(dash.projection_fig, dash.inspector, len(py) - 1, px, py.numpy(),
                           names, emb)


def test_live_dashboard_prefers_images_sent_with_the_event_and_ignores_a_mismatch():
    from dml_kit.viz.live import LiveDashboard

    labels = torch.tensor([0, 0, 1, 1])
    sent = torch.rand(4, 1, 5, 5, generator=torch.Generator().manual_seed(1))
    dash = LiveDashboard(probe_images={"source": (torch.zeros(4, 1, 5, 5),
                                                  torch.tensor([1, 1, 0, 0]))})
    dash.on_train_begin(types.SimpleNamespace(phase="source", max_epochs=1, method="m",
                                              probe_labels=labels, probe_inputs=None))
    assert dash.inspector._images is None                       # labels differ: ignored
    dash.on_train_begin(types.SimpleNamespace(phase="source", max_epochs=1, method="m",
                                              probe_labels=labels, probe_inputs=sent))
    dash.inspector.show(2)
    np.testing.assert_array_equal(_shown_images(dash.inspector.image_pane.value)[0],
                                  _pixels(sent[2]))
    with pytest.raises(ValueError, match="mapping"):
        dash.set_probe_images([sent])


def test_epoch_replay_inspector_follows_the_selected_epoch():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(3).repeat(6)
    centres = torch.randn(3, 8, generator=g)
    probes = [("source", e, centres[labels] * e + torch.randn(18, 8, generator=g), labels)
              for e in (1, 2, 3)]
    images = torch.rand(18, 1, 6, 6, generator=g)
    replay = W.EpochReplay(probes, ["a", "b", "c"], images=images, index=0)
    assert replay.error is None and replay.inspector in replay.children
    _check_hover_and_click(replay.scatter, replay.inspector, 5, images, labels.numpy(),
                           ["a", "b", "c"], probes[0][2])
    replay.epoch.value = 2               # the clicked point's neighbours under epoch 3
    assert replay.inspector.selected == 5
    assert replay.inspector.neighbours == _brute_neighbours(probes[2][2], 5, 5)
    _check_hover_and_click(replay.scatter, replay.inspector, 11, images, labels.numpy(),
                           ["a", "b", "c"], probes[2][2])
    plain = W.EpochReplay(probes, ["a", "b", "c"])          # no images: classes only
    click(plain.scatter, 1, 0)
    assert plain.inspector.class_name == "b" and "no image" in plain.inspector.image_pane.value


def test_prototype_explorer_inspector_shows_query_images_and_neighbours():
    target = W.split_cached("digits").target
    view = W.PrototypeExplorer(target, torch.nn.Flatten(), n_way=3, k_shot=1, n_query=5)
    t = view.task
    assert "prototype of class" in view.figure.data[-1].hovertext[0]
    feats = t.query_x.flatten(1)
    for index in (0, 7, 14):
        _check_hover_and_click(view.figure, view.inspector, index, t.query_x,
                               t.query_y.numpy(), t.class_names, feats)
    view.k_shot.value = 3                # a new task: the panes are cleared, then follow it
    assert view.inspector.index is None
    t = view.task
    _check_hover_and_click(view.figure, view.inspector, 9, t.query_x, t.query_y.numpy(),
                           t.class_names, t.query_x.flatten(1))


def test_shift_explorer_projection_shows_images_of_the_split_classes():
    digits = W.load_cached("digits")
    mk = types.SimpleNamespace
    ladder = [mk(train_classes=(0, 1, 2, 3, 4), test_classes=(5, 6, 7, 8, 9), distance=10.0),
              mk(train_classes=(0, 5, 6, 7, 8), test_classes=(1, 2, 3, 4, 9), distance=35.0)]
    se = W.ShiftExplorer(digits, ladder, max_classes=3)
    assert se.error is None
    rows = se.projection_rows
    assert len(rows) == 6 * 4 and {int(digits.y[i]) for i in rows} == {0, 1, 2, 5, 6, 7}
    assert [t.name for t in se.projection.data] == ["train classes", "test classes"]
    images, labels = digits.x[rows], digits.y[rows].numpy()
    feats = digits.x[rows].flatten(1)
    _check_hover_and_click(se.projection, se.inspector, 2, images, labels,
                           digits.class_names, feats)
    _check_hover_and_click(se.projection, se.inspector, 20, images, labels,
                           digits.class_names, feats)
    assert "test side" in se.projection.data[1].hovertemplate
    se.split.value = 1
    rows = se.projection_rows
    assert {int(digits.y[i]) for i in rows} == {0, 5, 6, 1, 2, 3}
    _check_hover_and_click(se.projection, se.inspector, 13, digits.x[rows],
                           digits.y[rows].numpy(), digits.class_names,
                           digits.x[rows].flatten(1))


@pytest.mark.timeout(300)
def test_sec_explorer_projections_show_each_runs_neighbours():
    se = W.SECExplorer("digits", loss="triplet", n_way=3, k_shot=2, epochs=1,
                       batches_per_epoch=3)
    se.train_button.click()
    assert se.error is None, se.error
    task = se.runs[0]
    from dml_kit import data
    t = data.kshot_task(se.target, 3, 2, seed=0)
    images = torch.cat([t.support_x, t.query_x])
    labels = torch.cat([t.support_y, t.query_y]).numpy()
    assert task is not None
    for fig, inspector, emb in zip(se.projections, se.inspectors, se.embeddings, strict=True):
        _check_hover_and_click(fig, inspector, 3, images, labels, t.class_names, emb)
