"""Solution: 1-NN on pixels by cosine similarity (notebook 00)."""

import torch
import torch.nn.functional as F


def nearest_neighbour(support_x: torch.Tensor, support_y: torch.Tensor,
                      query_x: torch.Tensor) -> torch.Tensor:
    s = F.normalize(support_x.flatten(1), dim=1)
    q = F.normalize(query_x.flatten(1), dim=1)
    return support_y[(q @ s.T).argmax(1)]
