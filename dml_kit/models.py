"""Embedding networks: an MLP for vectors and 8x8 digits, Conv-4 for 28x28 images, and
the networks of Adapted Deep Embeddings' official code (:class:`ADEConvNet`, ADE's MLP).

Every embedder maps a batch to ``(B, embedding_dim)``; with ``normalize=True`` the
output is L2-normalised (the histogram-loss nets of Adapted Deep Embeddings are; its
protonets are not). :class:`Classifier` puts a linear output layer on an embedder for
the classification baselines (scratch, weight transfer).

**Architectures** (:data:`ARCHITECTURES`, chosen by ``MethodConfig.architecture`` through
:func:`for_shape`): ``conv4`` (the kit's classroom net, the default: batch norm in every
net, raw outputs) and the three nets of Adapted Deep Embeddings (Scott, Ridgeway & Mozer,
NeurIPS 2018; ../shared/PAPERS.md section 1, "Protocol in the official code",
tylersco/adapted_deep_embeddings ``models/``): ``ade_omniglot`` (3x3 convs of 32 filters,
"same" padding, ReLU, 2x2 max-pool: (conv, pool) x 2, conv, then a linear 128-d
embedding), ``ade_mnist`` (conv, conv, pool, linear 128) and ``ade_isolet`` (MLP 617 ->
128 (ReLU) -> 64). What differs between a method's nets is the method's *role*
(:data:`NET_ROLES`: ``"metric"``, ``"protonet"``, ``"classifier"``), which the method
passes; each architecture says which roles get L2-normalised outputs and batch norm
(:class:`Architecture`): in the official code the histogram-loss (metric) outputs are
L2-normalised and protonet outputs raw, and batch norm is only in the Omniglot (and
tinyImageNet) protonet and classifier nets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dml_kit._validation import check_choice, check_int
from dml_kit.data.core import Dataset


class _Embedder(nn.Module):
    """Shared tail: ``features -> Linear -> (optional) L2 normalisation``."""

    embedding_dim: int
    normalize: bool

    def _init_head(self, in_features: int, embedding_dim: int, normalize: bool) -> None:
        self.embedding_dim = check_int("embedding_dim", embedding_dim, 1)
        self.normalize = bool(normalize)
        self.embedding = nn.Linear(in_features, self.embedding_dim)

    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.embedding(self.features(x))
        return F.normalize(z, dim=1) if self.normalize else z


class MLP(_Embedder):
    """Multi-layer perceptron embedder: ``x -> [Linear, ReLU] * len(hidden) -> Linear``.

    Images are flattened first, so 8x8 digits work as they are. The Isolet net of
    Adapted Deep Embeddings is ``MLP(617, 64, hidden=(128,))``.
    """

    def __init__(self, in_features: int, embedding_dim: int = 64,
                 hidden: Sequence[int] = (256,), normalize: bool = False) -> None:
        super().__init__()
        in_features = check_int("in_features", in_features, 1)
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for i, h in enumerate(hidden):
            layers += [nn.Linear(width, check_int(f"hidden[{i}]", h, 1)), nn.ReLU()]
            width = h
        self.body = nn.Sequential(*layers)
        self.in_features = in_features
        self._init_head(width, embedding_dim, normalize)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """3x3 conv (padding 1), batch norm, ReLU, 2x2 max-pool (Snell et al., Vinyals et al.)."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
        nn.MaxPool2d(2),
    )


class Conv4(_Embedder):
    """The Conv-4 few-shot backbone: four blocks of (3x3 conv with ``channels`` filters,
    batch norm, ReLU, 2x2 max-pool), then a linear embedding head.

    A 28x28 input leaves ``channels x 1 x 1`` features (28 -> 14 -> 7 -> 3 -> 1); other
    sizes work too (the spatial map is averaged to 1x1 when it is larger).
    """

    def __init__(self, in_channels: int = 1, embedding_dim: int = 64, channels: int = 64,
                 normalize: bool = False) -> None:
        super().__init__()
        in_channels = check_int("in_channels", in_channels, 1)
        channels = check_int("channels", channels, 1)
        self.body = nn.Sequential(
            _conv_block(in_channels, channels),
            _conv_block(channels, channels),
            _conv_block(channels, channels),
            _conv_block(channels, channels),
        )
        self.in_channels = in_channels
        self._init_head(channels, embedding_dim, normalize)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"Conv4 expects images (B, {self.in_channels}, H, W), "
                             f"got shape {tuple(x.shape)}")
        if min(x.shape[-2:]) < 16:
            raise ValueError(f"Conv4 needs images of at least 16x16 pixels, got "
                             f"{tuple(x.shape[-2:])}; use MLP for small inputs such as 8x8 digits")
        h = self.body(x)
        return h.mean(dim=(2, 3))


class Classifier(nn.Module):
    """An embedder with a linear output layer: ``logits = head(embedder(x))``.

    Weight transfer (Adapted Deep Embeddings) trains this on the source classes, then
    :meth:`replace_head` swaps in a fresh layer for the ``n`` target classes.
    """

    def __init__(self, embedder: nn.Module, n_classes: int) -> None:
        super().__init__()
        self.embedder = embedder
        if not hasattr(embedder, "embedding_dim"):
            raise ValueError("embedder must have an embedding_dim attribute (MLP, Conv4)")
        self.embedding_dim = int(embedder.embedding_dim)  # type: ignore[arg-type]
        self.head = nn.Linear(self.embedding_dim, check_int("n_classes", n_classes, 1))

    @property
    def n_classes(self) -> int:
        return self.head.out_features

    def replace_head(self, n_classes: int) -> nn.Linear:
        """Swap the output layer for a freshly initialised one with ``n_classes`` outputs."""
        device = self.head.weight.device
        self.head = nn.Linear(self.embedding_dim, check_int("n_classes", n_classes, 1)).to(device)
        return self.head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embedder(x))


# ---- Adapted Deep Embeddings' networks ---------------------------------------------------
#: weight initialisations of the ADE nets: ``"xavier"`` (the kit's choice) or ``"normal"``
#: (the official code's N(0, 1))
INITS = ("xavier", "normal")


def ade_init(module: nn.Module, init: str = "xavier") -> None:
    """Initialise the conv and linear layers of ``module`` in place.

    ``"xavier"``: Glorot normal, ``W ~ N(0, 2 / (fan_in + fan_out))``, biases 0.
    ``"normal"``: the official code's ``W ~ N(0, 1)`` and, as its ``models/utils.py``
    does, biases ``N(0, 1)`` too (``tf.initializers.random_normal`` for both; PAPERS.md
    says biases 0). The kit chooses
    Xavier: with N(0, 1) a 3x3 conv of 32 filters multiplies the activation scale by about
    sqrt(9 * 32) = 17 per layer, and the repository's 2019 note ("A Note on Weight
    Initialization") reports that Xavier helps the baseline and weight transfer, hurts the
    plain embeddings a little, and leaves the paper's conclusions unchanged
    (../shared/PAPERS.md section 1). Batch-norm layers keep gamma = 1, beta = 0."""
    check_choice("init", init, INITS)
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            if init == "xavier":
                nn.init.xavier_normal_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            else:
                nn.init.normal_(m.weight, 0.0, 1.0)
                if m.bias is not None:
                    nn.init.normal_(m.bias, 0.0, 1.0)


class ADEConvNet(_Embedder):
    """A convolutional net of Adapted Deep Embeddings' official code.

    ``layout`` is a string of ``c`` (3x3 conv with ``channels`` filters, "same" padding,
    optional batch norm, ReLU) and ``p`` (2x2 max-pool, stride 2), then the features are
    flattened into a linear ``embedding_dim`` layer (a pool floors odd sizes, where the
    code's TensorFlow "SAME" pooling would round up; the official layouts never pool an
    odd size on their 28x28 and 64x64 inputs). The official layouts
    (../shared/PAPERS.md section 1): Omniglot ``"cpcpc"`` ((conv, pool) x 2, conv),
    MNIST ``"ccp"`` (conv, conv, pool), tinyImageNet ``"cpcpcpc"``; 32 filters, 128-d.

    On 1 x 28 x 28 Omniglot images (``"cpcpc"``): 28 -> 14 -> 7, features 32 x 7 x 7 =
    1,568; parameters 320 + 9,248 + 9,248 (convs) + 200,832 (linear) = 219,648, plus
    2 x 32 per conv with batch norm (219,840).
    """

    def __init__(self, input_shape: Sequence[int], layout: str = "cpcpc",
                 embedding_dim: int = 128, channels: int = 32, *, batch_norm: bool = False,
                 normalize: bool = False, init: str = "xavier") -> None:
        super().__init__()
        shape = tuple(int(v) for v in input_shape)
        if len(shape) != 3:
            raise ValueError(f"ADEConvNet expects an image shape (C, H, W), got {shape}")
        if not layout or set(layout) - {"c", "p"}:
            raise ValueError(f"layout must be a string of 'c' (conv) and 'p' (pool), "
                             f"got {layout!r}")
        channels = check_int("channels", channels, 1)
        self.in_channels, self.layout, self.batch_norm = shape[0], layout, bool(batch_norm)
        layers: list[nn.Module] = []
        width, (h, w) = shape[0], shape[1:]
        for op in layout:
            if op == "c":
                layers.append(nn.Conv2d(width, channels, kernel_size=3, padding=1))
                if batch_norm:
                    layers.append(nn.BatchNorm2d(channels))
                layers.append(nn.ReLU())
                width = channels
            else:
                if min(h, w) < 2:
                    raise ValueError(f"input {shape} is too small for layout {layout!r}")
                layers.append(nn.MaxPool2d(2))
                h, w = h // 2, w // 2
        self.body = nn.Sequential(*layers, nn.Flatten())
        self._init_head(width * h * w, embedding_dim, normalize)
        ade_init(self, init)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"ADEConvNet expects images (B, {self.in_channels}, H, W), "
                             f"got shape {tuple(x.shape)}")
        return self.body(x)


#: the roles a method's network plays; the method passes its role to :func:`for_shape`
NET_ROLES = ("metric", "protonet", "classifier")


@dataclass(frozen=True)
class Architecture:
    """One choice of ``MethodConfig.architecture``.

    Attributes:
        name: the config value.
        description: one line.
        normalized_roles: roles whose outputs are L2-normalised.
        batch_norm_roles: roles whose convolutions are followed by batch norm.
        layout: :class:`ADEConvNet` layout (``""``: not an ADE conv net).
        mlp: an ADE MLP over the flattened input (``hidden`` widths, ReLU).
    """

    name: str
    description: str
    normalized_roles: tuple[str, ...] = ()
    batch_norm_roles: tuple[str, ...] = ()
    layout: str = ""
    mlp: bool = False


#: ``MethodConfig.architecture`` -> :class:`Architecture` (roles as in the official ADE code)
ARCHITECTURES: dict[str, Architecture] = {a.name: a for a in (
    Architecture("conv4", "the kit's Conv-4 (images of >= 16x16) or MLP: batch norm, raw "
                 "outputs, for every method", batch_norm_roles=NET_ROLES),
    Architecture("ade_omniglot", "ADE's Omniglot net: (conv, pool) x 2, conv, linear",
                 normalized_roles=("metric",), batch_norm_roles=("protonet", "classifier"),
                 layout="cpcpc"),
    Architecture("ade_mnist", "ADE's MNIST net: conv, conv, pool, linear (no batch norm)",
                 normalized_roles=("metric",), layout="ccp"),
    Architecture("ade_isolet", "ADE's Isolet MLP: 617 -> 128 (ReLU) -> 64",
                 normalized_roles=("metric",), mlp=True),
)}


def for_shape(input_shape: Sequence[int], embedding_dim: int = 64, *, channels: int = 64,
              hidden: Sequence[int] = (256,), normalize: bool = False,
              architecture: str = "conv4", role: str | None = None) -> nn.Module:
    """The kit's one model choice for an input of shape ``input_shape`` (one example).

    ``architecture="conv4"`` (the default, as before): :class:`Conv4` (``channels``
    filters) for images ``(C, H, W)`` of at least 16x16 pixels, else an :class:`MLP`
    (``hidden`` widths) over the flattened input (vectors, scikit-learn's 8x8 digits);
    ``role`` changes nothing. The ADE architectures (:data:`ARCHITECTURES`) build
    :class:`ADEConvNet` (``ade_omniglot``, ``ade_mnist``: ``channels`` filters, paper 32;
    ``embedding_dim``, paper 128) or an MLP (``ade_isolet``: ``hidden``, paper (128,);
    ``embedding_dim``, paper 64) with Xavier weights (:func:`ade_init`), and the method's
    ``role`` (:data:`NET_ROLES`) decides, as in the official code, whether the outputs are
    L2-normalised and whether batch norm is used. Outputs are also normalised with
    ``normalize``."""
    arch = ARCHITECTURES[check_choice("architecture", architecture, ARCHITECTURES)]
    if role is not None:
        check_choice("role", role, NET_ROLES)
    shape = tuple(input_shape)
    if arch.name == "conv4":
        if len(shape) == 3 and min(shape[-2:]) >= 16:
            return Conv4(shape[0], embedding_dim=embedding_dim, channels=channels,
                         normalize=normalize)
        return MLP(math.prod(shape), embedding_dim=embedding_dim, hidden=hidden,
                   normalize=normalize)
    normalize = normalize or role in arch.normalized_roles
    if arch.mlp:
        mlp = MLP(math.prod(shape), embedding_dim=embedding_dim, hidden=hidden,
                  normalize=normalize)
        ade_init(mlp)
        return mlp
    return ADEConvNet(shape, arch.layout, embedding_dim, channels,
                      batch_norm=role in arch.batch_norm_roles, normalize=normalize)


def for_data(data: Dataset, embedding_dim: int = 64, normalize: bool = False) -> nn.Module:
    """Pick the embedder that suits ``data`` (:func:`for_shape` with its defaults: Conv4
    with 64 filters for images of at least 16x16 pixels, an MLP with one hidden layer of
    256 units for vectors and small images such as scikit-learn's 8x8 digits)."""
    return for_shape(data.input_shape, embedding_dim, normalize=normalize)
