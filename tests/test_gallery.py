"""The retrieval gallery and the per-task confusions: figure builders and widgets, driven
headless (set ``.value``, press buttons, click images through the widget's own message
path) and checked against the metrics they show."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from traitlets import TraitError

import dml_kit as dk
from dml_kit import metrics
from dml_kit import widgets as W
from dml_kit.viz import figure_fingerprint
from dml_kit.viz import gallery as G
from dml_kit.viz.figures import decode_image


@pytest.fixture(scope="module")
def target():
    return W.split_cached("digits").target


def _small_set(n_classes: int = 3, per_class: int = 4, side: int = 6, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n_classes * per_class, 1, side, side, generator=g)
    y = torch.arange(n_classes).repeat_interleave(per_class)
    return x, y


# ---- builders ----------------------------------------------------------------------------
def test_nearest_neighbours_leave_the_query_out_and_match_brute_force():
    x, _ = _small_set()
    f = x.flatten(1)
    idx, scores = G.nearest_neighbours(f, 2, 4)
    cos = torch.nn.functional.normalize(f.double(), dim=1)
    brute = (cos @ cos[2]).numpy()
    brute[2] = -np.inf
    assert idx == list(np.argsort(-brute, kind="stable")[:4]) and 2 not in idx
    np.testing.assert_allclose(scores, brute[idx])
    assert scores == sorted(scores, reverse=True)
    idx_e, _ = G.nearest_neighbours(f, 2, 11, distance="euclidean")
    assert sorted(idx_e) == [i for i in range(12) if i != 2]          # every other row
    with pytest.raises(ValueError, match=r"k=12 is out of range.*11 other rows"):
        G.nearest_neighbours(f, 0, 12)
    with pytest.raises(ValueError, match="query=12 is out of range"):
        G.nearest_neighbours(f, 12, 1)
    with pytest.raises(ValueError, match="unknown distance"):
        G.nearest_neighbours(f, 0, 1, distance="manhattan")


def test_retrieval_gallery_rows_marks_and_recall_agree_with_the_metrics():
    x, y = _small_set()
    perfect = torch.nn.functional.one_hot(y).double() + 0.01 * torch.rand(len(y), 3)
    feats = {"raw pixels": x.flatten(1), "labels": perfect}
    fig = G.retrieval_gallery(x, y, 5, feats, k=3, class_names=["a", "b", "c"])
    meta = fig.layout.meta
    assert meta["query"] == 5 and meta["query_class"] == "b" and meta["k"] == 3
    pixels, oracle = meta["rows"]
    assert oracle["correct"] == [True] * 3 and oracle["precision_at_k"] == 1.0
    assert oracle["recall_at_1"] == 1.0 and set(oracle["indices"]) <= {4, 6, 7}
    assert pixels["indices"] == G.nearest_neighbours(x.flatten(1), 5, 3)[0]
    assert pixels["correct"] == [bool(y[i] == y[5]) for i in pixels["indices"]]
    # one mosaic, two rows of (query + 3) framed 6-px images; the frames say right/wrong
    img = decode_image(fig.data[0].source)
    cell = 6 + 2 * 1
    assert img.shape == (2 * cell + 3, cell + 14 + 3 * cell + 2 * 3, 3)
    green = np.array([int(G.CORRECT_COLOR[i:i + 2], 16) for i in (1, 3, 5)])
    red = np.array([int(G.WRONG_COLOR[i:i + 2], 16) for i in (1, 3, 5)])
    for j, ok in enumerate(pixels["correct"]):
        corner = img[0, cell + 14 + j * (cell + 3)]
        np.testing.assert_array_equal(corner, green if ok else red)
    # hover points: the query and each neighbour of each row, with what they are
    cd = fig.data[1].customdata
    assert len(cd) == 2 * 4 and [c[2] for c in cd[:4]] == [5] + pixels["indices"]
    assert "R@1 1 · P@3 1.00" in fig.layout.yaxis.ticktext[1]
    # averaged over every query, the per-query Recall@1 is the set's Recall@1
    r1 = np.mean([G.retrieval_gallery(x, y, q, feats, k=1).layout.meta["rows"][0]
                  ["recall_at_1"] for q in range(len(y))])
    assert r1 == pytest.approx(metrics.recall_at_k(x.flatten(1), y, ks=(1,))[1])


def test_retrieval_gallery_refuses_bad_input_by_name():
    x, y = _small_set()
    f = {"raw pixels": x.flatten(1)}
    with pytest.raises(ValueError, match=r"k=12 is out of range.*11 other images"):
        G.retrieval_gallery(x, y, 0, f, k=12)
    with pytest.raises(ValueError, match="query=-1 is out of range"):
        G.retrieval_gallery(x, y, -1, f)
    with pytest.raises(ValueError, match="query must be an int"):
        G.retrieval_gallery(x, y, 1.0, f)
    with pytest.raises(ValueError, match=r"features\['e'\] has 3 rows"):
        G.retrieval_gallery(x, y, 0, {"e": torch.zeros(3, 2)})
    with pytest.raises(ValueError, match="at least one representation"):
        G.retrieval_gallery(x, y, 0, {})
    with pytest.raises(ValueError, match="labels must be"):
        G.retrieval_gallery(x, y[:-1], 0, f)
    with pytest.raises(ValueError, match="non-finite"):
        G.retrieval_gallery(x, y, 0, {"e": torch.full((12, 2), float("nan"))})


def test_confusion_counts_and_pairs():
    true = [0, 0, 0, 1, 1, 2, 2, 2]
    pred = [0, 1, 1, 2, 1, 0, 1, 2]
    m = G.confusion_counts(true, pred)
    np.testing.assert_array_equal(m, [[1, 2, 0], [0, 1, 1], [1, 1, 1]])
    assert G.confused_pairs(m) == [(0, 1, 2), (1, 2, 1), (2, 0, 1), (2, 1, 1)]
    assert G.confused_pairs(m, top=1) == [(0, 1, 2)]
    assert G.confusion_counts(true, pred, 5).shape == (5, 5)
    with pytest.raises(ValueError, match="n_classes=2 is out of range"):
        G.confusion_counts(true, pred, 2)
    with pytest.raises(ValueError, match="same length"):
        G.confusion_counts(true, pred[:-1])
    fig = G.confusion_heatmap(true, pred, ["x", "y", "z"])
    assert fig.layout.meta["accuracy"] == pytest.approx(3 / 8)
    assert fig.layout.meta["matrix"] == m.tolist()
    z = np.asarray(fig.data[0].z, dtype=float)
    assert np.isnan(np.diag(z)).all() and z[0, 1] == pytest.approx(2 / 3)
    assert fig.data[0].text[0][1] == "2" and list(fig.data[0].x) == ["x", "y", "z"]


def test_confused_pairs_gallery_shows_the_mistaken_queries_beside_both_supports(target):
    task = dk.data.kshot_task(target, 3, 2, n_query=4, seed=0)
    pred = task.query_y.clone()
    wrong = (task.query_y == 0).nonzero().flatten()[:3]
    pred[wrong] = 2                        # three queries of class 0 taken for class 2
    pred[(task.query_y == 1).nonzero().flatten()[0]] = 0
    fig = G.confused_pairs_gallery(task, pred, shots=2)
    assert fig.layout.meta["pairs"] == [(0, 2, 3), (1, 0, 1)]
    cd = fig.data[1].customdata
    first = [c for c in cd if c[1] == 0]
    assert [c[2] for c in first if c[0] == "query"] == wrong.tolist()
    assert [c[3] for c in first if c[0] == "support of true"] == [0, 0]
    assert [c[3] for c in first if c[0] == "support of predicted"] == [2, 2]
    assert list(fig.layout.yaxis.ticktext) == [
        f"{task.class_names[0]} → {task.class_names[2]} (3×)",
        f"{task.class_names[1]} → {task.class_names[0]} (1×)"]
    h = decode_image(fig.data[0].source).shape
    assert h[0] == 2 * 8 + 2 and h[1] == (3 + 2 + 2) * 8 + 4 * 2 + 2 * 12   # 3 query columns
    none = G.confused_pairs_gallery(task, task.query_y)
    assert none.layout.meta["pairs"] == [] and "no confusions" in none.layout.title.text
    with pytest.raises(ValueError, match="one class id per query"):
        G.confused_pairs_gallery(task, pred[:-1])


# ---- RetrievalGallery ---------------------------------------------------------------------
def test_retrieval_gallery_widget_follows_index_clicks_random_and_k(target):
    oracle = torch.nn.functional.one_hot(target.y).double()
    oracle += 0.01 * torch.rand(oracle.shape, generator=torch.Generator().manual_seed(0))
    g = W.RetrievalGallery(target, embeddings=oracle, query=3, k=4, label="oracle")
    assert g.error is None and list(g.neighbours) == ["raw pixels", "oracle"]
    # query 3 is one of digits' two Recall@1 misses on pixels; the oracle never misses
    assert g.recall_at_1 == {"raw pixels": 0.0, "oracle": 1.0}
    assert g.precision_at_k["oracle"] == 1.0
    assert "Recall@1 = 0" in g.summary.value and "Recall@1 = 1" in g.summary.value
    before = figure_fingerprint(g.figure)
    g.query.value = 10
    assert g.error is None and figure_fingerprint(g.figure) != before
    assert g.neighbours["raw pixels"] == G.nearest_neighbours(target.x.flatten(1), 10, 4)[0]
    assert "query #10" in g.summary.value and g.figure.layout.meta["query"] == 10
    # clicking a neighbour of the gallery makes it the query
    third = g.neighbours["raw pixels"][2]
    W.click(g.figure, 1, 3)                      # point 0 is the query, 3 the 3rd neighbour
    assert g.error is None and g.query.value == third and g.history[-1] == third
    # clicking the candidate strip (one image per class)
    W.click(g.candidates, 1, 2)
    assert g.query.value == g.candidate_indices[2]
    assert len(g.candidates.data[1].x) == target.n_classes        # 5 classes < 12
    # a random pick is another image
    shown = g.query.value
    g.random_button.click()
    assert g.error is None and g.query.value != shown and g.history[-1] == g.query.value
    seen = list(g.history)
    g.k.value = 7
    assert len(g.figure.data[1].x) == 2 * 8 and len(g.neighbours["oracle"]) == 7
    assert g.history == seen                                  # same query, more neighbours
    assert "precision@7" in g.summary.value
    with pytest.raises(TraitError, match=r"RetrievalGallery.k: 100 is out of range"):
        g.k.value = 100
    with pytest.raises(TraitError, match=r"RetrievalGallery.query .*907 is out of range"):
        g.query.value = len(target.y)


def test_retrieval_gallery_widget_takes_a_model_and_a_new_one(target):
    g = W.RetrievalGallery(target, torch.nn.Flatten(), query=0, k=2)
    assert g.neighbours["embedding"] == g.neighbours["raw pixels"]   # the same features
    before = figure_fingerprint(g.figure)
    flipped = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    g.set_model(flipped)
    assert g.error is None and figure_fingerprint(g.figure) != before
    want = G.nearest_neighbours(metrics.embed(flipped, target.x), 0, 2)[0]
    assert g.neighbours["embedding"] == want


def test_retrieval_gallery_widget_refuses_bad_arguments(target):
    with pytest.raises(ValueError, match="k=13 is out of range"):
        W.RetrievalGallery(target, k=13)
    with pytest.raises(ValueError, match="query=907 is out of range"):
        W.RetrievalGallery(target, query=907)
    with pytest.raises(ValueError, match="model or embeddings, not both"):
        W.RetrievalGallery(target, torch.nn.Flatten(), embeddings=torch.zeros(907, 2))
    with pytest.raises(ValueError, match=r"embeddings must be \(N, D\) with N=907"):
        W.RetrievalGallery(target, embeddings=torch.zeros(3, 2))
    with pytest.raises(ValueError, match="holds no images"):
        W.RetrievalGallery(dk.data.Dataset("v", torch.zeros(4, 3), torch.tensor([0, 0, 1, 1]),
                                           ("a", "b"), ("g", "g")))
    with pytest.raises(ValueError, match="dataset must be a dml_kit.data.Dataset"):
        W.RetrievalGallery(target.x)
    with pytest.raises(ValueError, match="unknown distance"):
        W.RetrievalGallery(target, distance="l1")


# ---- ConfusionExplorer ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def sources():
    split = W.split_cached("digits")
    config = dk.experiments.PRESETS["classroom"].config.replace(
        source_epochs=1, batches_per_epoch=4, episodes_per_epoch=4, target_epochs=2,
        train_way=5, train_shot=5)
    kinds = ("classifier", "embedding", "protonet")
    return {kind: dk.methods.train_source(kind, split.source, config, seed=0)
            for kind in kinds}, config


def test_query_predictions_reproduce_every_methods_accuracy(target, sources):
    models, config = sources
    task = dk.data.kshot_task(target, 4, 3, n_query=6, seed=1)
    for name in dk.methods.available():
        result = dk.methods.run(name, task, models.get(dk.methods.get(name).source_kind or ""),
                                config)
        pred = W.query_predictions(result, task)
        assert pred.shape == task.query_y.shape
        assert float((pred == task.query_y).double().mean()) == pytest.approx(
            result.accuracy), name
    with pytest.raises(ValueError, match="unknown rule"):
        W.query_predictions(result, task, rule="vote")


def test_confusion_explorer_follows_method_and_task(target, sources):
    models, config = sources
    ce = W.ConfusionExplorer(target, models, config, methods=["metric", "weight_transfer"],
                             n_way=5, k_shot=1, n_query=10)
    assert ce.error is None and ce.method.value == "metric"
    t = ce.task
    assert (t.n_way, t.k_shot, t.n_query) == (5, 1, 10)
    m = np.asarray(ce.heatmap.layout.meta["matrix"])
    assert m.sum() == 50 and np.trace(m) / 50 == pytest.approx(ce.result.accuracy)
    assert ce.confusions == G.confused_pairs(m)
    assert [tuple(p) for p in ce.pairs.layout.meta["pairs"]] == ce.confusions[:4]
    assert f"{int(50 - np.trace(m))} of 50 queries wrong" in ce.status.value
    before = figure_fingerprint(ce.heatmap, layout=True)
    ce.method.value = "weight_transfer"
    assert ce.error is None and ce.result.method == "weight_transfer"
    assert figure_fingerprint(ce.heatmap, layout=True) != before
    assert "weight_transfer on a 5-way 1-shot task" in ce.heatmap.layout.title.text
    ce.k_shot.value = 3
    assert ce.task.k_shot == 3 and len(ce.runs) == 3
    ce.method.value, ce.k_shot.value = "metric", 1           # back: recalled, not rerun
    assert len(ce.runs) == 4 and ce.error is None
    ce.k_shot.value = 1
    ce.seed.value = 4
    assert ce.task.seed == 4 and ce.error is None
    with pytest.raises(TraitError, match="ConfusionExplorer.method"):
        ce.method.value = "protonet"
    with pytest.raises(ValueError, match="unknown method"):
        W.ConfusionExplorer(target, models, config, method="nope")
    with pytest.raises(ValueError, match="k_shot=200 is out of range"):
        W.ConfusionExplorer(target, models, config, k_shot=200)
