"""Solution: k support examples per class, the rest as queries (notebook 01)."""

import torch


def support_query_split(labels: torch.Tensor, k_shot: int, seed: int):
    generator = torch.Generator().manual_seed(seed)
    support = []
    for c in torch.unique(labels):
        members = torch.nonzero(labels == c).flatten()
        shuffled = members[torch.randperm(len(members), generator=generator)]
        support.append(shuffled[:k_shot])
    support = torch.cat(support)
    is_query = torch.ones(len(labels), dtype=torch.bool)
    is_query[support] = False
    return support, torch.nonzero(is_query).flatten()
