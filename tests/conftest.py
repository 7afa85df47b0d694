"""Shared test settings: one torch thread per test; a Gaussian-blob dataset factory.

The models in the tests are tiny; on a 2-core CI machine two threads per process cost more
in synchronisation than they gain, and one thread keeps timings and results steady. The
fixture restores the count afterwards, so a test that changes it (the Omniglot benchmark
asks for 2) cannot leak that into the next one.
"""

from collections.abc import Callable

import pytest
import torch

from dml_kit.data.core import Dataset


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _blobs(n_classes: int = 40, per_class: int = 6, dim: int = 10, seed: int = 0) -> Dataset:
    """``n_classes`` Gaussian blobs in ``dim`` dimensions (centres N(0, 9 I), unit noise),
    ``per_class`` points each, one group: a vector dataset that trains in milliseconds."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(n_classes, dim, generator=g) * 3
    x = centres.repeat_interleave(per_class, 0) + torch.randn(n_classes * per_class, dim,
                                                              generator=g)
    y = torch.arange(n_classes).repeat_interleave(per_class)
    return Dataset("blobs", x, y, tuple(map(str, range(n_classes))), ("g",) * n_classes)


@pytest.fixture(scope="session")
def make_blobs() -> Callable[..., Dataset]:
    """The blob factory: ``make_blobs(n_classes=40, per_class=6, dim=10, seed=0)``."""
    return _blobs
