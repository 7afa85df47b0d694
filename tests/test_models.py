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


# ---- Adapted Deep Embeddings' nets (../shared/PAPERS.md section 1) --------------------------
def _n_params(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def test_ade_omniglot_net_shapes_and_parameter_count():
    # (conv, pool) x 2, conv; 3x3 convs of 32 filters, "same" padding; linear 128.
    # 28x28 -> pool 14x14 -> pool 7x7; features 32 * 7 * 7 = 1,568.
    conv1 = 1 * 32 * 3 * 3 + 32          # 320
    conv23 = 32 * 32 * 3 * 3 + 32        # 9,248 each
    linear = 32 * 7 * 7 * 128 + 128      # 200,832
    assert (conv1, conv23, linear) == (320, 9_248, 200_832)
    plain = models.for_shape((1, 28, 28), 128, channels=32, architecture="ade_omniglot",
                             role="metric")
    assert _n_params(plain) == conv1 + 2 * conv23 + linear == 219_648
    assert plain.features(torch.rand(2, 1, 28, 28)).shape == (2, 1_568)
    assert plain(torch.rand(2, 1, 28, 28)).shape == (2, 128)
    # batch norm (gamma and beta of 32 channels) after each of the 3 convs
    bn = models.for_shape((1, 28, 28), 128, channels=32, architecture="ade_omniglot",
                          role="protonet")
    assert _n_params(bn) == 219_648 + 3 * 2 * 32 == 219_840
    kinds = [type(m).__name__ for m in bn.body]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d", "Conv2d", "BatchNorm2d",
                     "ReLU", "MaxPool2d", "Conv2d", "BatchNorm2d", "ReLU", "Flatten"]


def test_ade_mnist_net_and_isolet_mlp_parameter_counts():
    # MNIST: conv, conv, pool -> 32 x 14 x 14 = 6,272 features, linear 128
    mnist = models.for_shape((1, 28, 28), 128, channels=32, architecture="ade_mnist",
                             role="protonet")
    assert _n_params(mnist) == 320 + 9_248 + (6_272 * 128 + 128) == 812_512
    assert mnist(torch.rand(3, 1, 28, 28)).shape == (3, 128)
    # Isolet: 617 -> 128 (ReLU) -> 64
    isolet = models.for_shape((617,), 64, hidden=(128,), architecture="ade_isolet",
                              role="metric")
    assert _n_params(isolet) == (617 * 128 + 128) + (128 * 64 + 64) == 87_360
    assert isolet(torch.rand(4, 617)).shape == (4, 64)


@pytest.mark.parametrize("architecture", ["ade_omniglot", "ade_mnist", "ade_isolet"])
def test_ade_roles_normalise_metric_outputs_only(architecture):
    shape = (617,) if architecture == "ade_isolet" else (1, 28, 28)
    x = torch.rand(5, *shape)
    for role, unit in (("metric", True), ("protonet", False), ("classifier", False)):
        net = models.for_shape(shape, 64, channels=8, hidden=(16,), architecture=architecture,
                               role=role).eval()
        norms = net(x).norm(dim=1)
        assert torch.allclose(norms, torch.ones(5), atol=1e-5) is unit, (role, norms)


def test_batch_norm_only_where_the_paper_has_it():
    def has_bn(architecture: str, role: str) -> bool:
        net = models.for_shape((1, 28, 28), 16, channels=8, architecture=architecture,
                               role=role)
        return any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())

    assert [has_bn("ade_omniglot", r) for r in models.NET_ROLES] == [False, True, True]
    assert [has_bn("ade_mnist", r) for r in models.NET_ROLES] == [False, False, False]
    # the classroom Conv-4 is unchanged: batch norm in every role, raw outputs
    assert [has_bn("conv4", r) for r in models.NET_ROLES] == [True, True, True]
    conv4 = models.for_shape((1, 28, 28), 16, channels=8, role="metric").eval()
    assert not torch.allclose(conv4(torch.rand(3, 1, 28, 28)).norm(dim=1), torch.ones(3))


def test_conv4_default_is_unchanged_by_the_architecture_field():
    torch.manual_seed(0)
    a = models.for_shape((1, 28, 28), 16, channels=8)
    torch.manual_seed(0)
    b = models.for_shape((1, 28, 28), 16, channels=8, architecture="conv4", role="protonet")
    assert type(a) is type(b) is models.Conv4
    for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q)


def test_ade_init_xavier_by_default_official_normal_on_request():
    torch.manual_seed(0)
    net = models.ADEConvNet((1, 28, 28), "cpcpc", 128, 32)
    w = net.body[3].weight  # second conv: fan_in = fan_out = 32 * 9 = 288
    assert abs(w.std().item() - (2 / (288 + 288)) ** 0.5) < 0.005
    assert all(torch.equal(m.bias, torch.zeros_like(m.bias)) for m in net.modules()
               if isinstance(m, torch.nn.Conv2d | torch.nn.Linear))
    official = models.ADEConvNet((1, 28, 28), "cpcpc", 128, 32, init="normal")
    assert abs(official.embedding.weight.std().item() - 1.0) < 0.01
    assert abs(official.embedding.bias.std().item() - 1.0) < 0.2  # N(0, 1) as the code
    with pytest.raises(ValueError, match="init"):
        models.ADEConvNet((1, 28, 28), init="he")


def test_architecture_and_role_names_are_checked():
    with pytest.raises(ValueError, match="architecture"):
        models.for_shape((1, 28, 28), architecture="resnet")
    with pytest.raises(ValueError, match="role"):
        models.for_shape((1, 28, 28), architecture="ade_omniglot", role="hybrid")
    with pytest.raises(ValueError, match="layout"):
        models.ADEConvNet((1, 28, 28), "cxp")
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        models.ADEConvNet((617,))
