"""Solution: the triplet loss over all valid triplets, averaged over active ones (03)."""

import torch


def triplet_loss(embeddings: torch.Tensor, labels: torch.Tensor, margin: float) -> torch.Tensor:
    d = torch.cdist(embeddings, embeddings).pow(2)          # squared Euclidean, (B, B)
    same = labels.unsqueeze(0) == labels.unsqueeze(1)
    eye = torch.eye(len(labels), dtype=torch.bool)
    positive = same & ~eye                                  # (a, p)
    negative = ~same                                        # (a, n)
    # l[a, p, n] = relu(d(a, p) - d(a, n) + margin) on valid triplets only
    l = (d.unsqueeze(2) - d.unsqueeze(1) + margin).clamp_min(0)
    valid = positive.unsqueeze(2) & negative.unsqueeze(1)
    l = l * valid
    active = (l > 0).sum()
    return l.sum() / active.clamp_min(1)
