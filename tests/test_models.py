"""Models: shapes, normalisation, head replacement, validation."""

import pytest
import torch

from dml_kit import models
from dml_kit.data.core import Dataset


def _toy(shape: tuple[int, ...]) -> Dataset:
    x = torch.rand(6, *shape)
    return Dataset("toy", x, torch.tensor([0, 0, 1, 1, 2, 2]), ("a", "b", "c"), ("g", "g", "h"))


def test_mlp_shapes_and_flatten():
    net = models.MLP(64, embedding_dim=16, hidden=(32, 32))
    assert net(torch.rand(5, 1, 8, 8)).shape == (5, 16)
    assert net(torch.rand(5, 64)).shape == (5, 16)


def test_conv4_reduces_28x28_to_one_pixel_and_embeds():
    net = models.Conv4(1, embedding_dim=32)
    assert net.features(torch.rand(3, 1, 28, 28)).shape == (3, 64)
    assert net(torch.rand(3, 1, 28, 28)).shape == (3, 32)
    # four conv blocks, each: conv, batch norm, relu, max-pool
    blocks = list(net.body)
    assert len(blocks) == 4
    assert [type(m).__name__ for m in blocks[0]] == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]
    assert blocks[0][0].kernel_size == (3, 3) and blocks[0][0].out_channels == 64


def test_normalize_gives_unit_norm():
    torch.manual_seed(0)
    for net in (models.MLP(10, 8, normalize=True), models.Conv4(1, 8, normalize=True)):
        x = torch.rand(4, 10) if isinstance(net, models.MLP) else torch.rand(4, 1, 28, 28)
        assert torch.allclose(net(x).norm(dim=1), torch.ones(4), atol=1e-5)


def test_classifier_replace_head():
    clf = models.Classifier(models.MLP(10, 8), n_classes=5)
    assert clf(torch.rand(3, 10)).shape == (3, 5)
    old_body = clf.embedder.embedding.weight.clone()
    clf.replace_head(7)
    assert clf.n_classes == 7 and clf(torch.rand(3, 10)).shape == (3, 7)
    assert torch.equal(clf.embedder.embedding.weight, old_body)


def test_for_data_picks_by_input():
    assert isinstance(models.for_data(_toy((1, 28, 28))), models.Conv4)
    assert isinstance(models.for_data(_toy((1, 8, 8))), models.MLP)
    assert isinstance(models.for_data(_toy((617,)), embedding_dim=4), models.MLP)
    assert models.for_data(_toy((617,)), embedding_dim=4)(torch.rand(2, 617)).shape == (2, 4)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_embedding_dim_validated(bad):
    with pytest.raises(ValueError, match="embedding_dim"):
        models.MLP(10, embedding_dim=bad)
    with pytest.raises(ValueError, match="embedding_dim"):
        models.Conv4(1, embedding_dim=bad)


def test_conv4_rejects_wrong_input():
    net = models.Conv4(1, 8)
    with pytest.raises(ValueError, match="16x16"):
        net(torch.rand(2, 1, 8, 8))
    with pytest.raises(ValueError, match=r"\(B, 1, H, W\)"):
        net(torch.rand(2, 3, 28, 28))
