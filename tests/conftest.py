"""Shared test settings: one torch thread per test process.

The models in the tests are tiny; on a 2-core CI machine two threads per process cost more
in synchronisation than they gain, and one thread keeps timings and results steady.
"""

import torch

torch.set_num_threads(1)
