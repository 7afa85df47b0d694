"""Embedding networks: an MLP for vectors and 8x8 digits, Conv-4 for 28x28 images.

Every embedder maps a batch to ``(B, embedding_dim)``; with ``normalize=True`` the
output is L2-normalised (the histogram-loss nets of Adapted Deep Embeddings are; its
protonets are not). :class:`Classifier` puts a linear output layer on an embedder for
the classification baselines (scratch, weight transfer).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from dml_kit._validation import check_int
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


def for_shape(input_shape: Sequence[int], embedding_dim: int = 64, *, channels: int = 64,
              hidden: Sequence[int] = (256,), normalize: bool = False) -> nn.Module:
    """The kit's one model choice for an input of shape ``input_shape`` (one example):
    :class:`Conv4` (``channels`` filters) for images ``(C, H, W)`` of at least 16x16
    pixels, else an :class:`MLP` (``hidden`` widths) over the flattened input (vectors,
    scikit-learn's 8x8 digits). Outputs are L2-normalised only with ``normalize``."""
    shape = tuple(input_shape)
    if len(shape) == 3 and min(shape[-2:]) >= 16:
        return Conv4(shape[0], embedding_dim=embedding_dim, channels=channels,
                     normalize=normalize)
    return MLP(math.prod(shape), embedding_dim=embedding_dim, hidden=hidden,
               normalize=normalize)


def for_data(data: Dataset, embedding_dim: int = 64, normalize: bool = False) -> nn.Module:
    """Pick the embedder that suits ``data`` (:func:`for_shape` with its defaults: Conv4
    with 64 filters for images of at least 16x16 pixels, an MLP with one hidden layer of
    256 units for vectors and small images such as scikit-learn's 8x8 digits)."""
    return for_shape(data.input_shape, embedding_dim, normalize=normalize)
