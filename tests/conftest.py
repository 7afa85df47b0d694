"""Shared test settings: one torch thread per test.

The models in the tests are tiny; on a 2-core CI machine two threads per process cost more
in synchronisation than they gain, and one thread keeps timings and results steady. The
fixture restores the count afterwards, so a test that changes it (the Omniglot benchmark
asks for 2) cannot leak that into the next one.
"""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
