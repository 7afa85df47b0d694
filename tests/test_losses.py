"""Every loss against a deliberately naive reference written here with explicit loops
over pairs / triplets / samples, on values and gradients; gradcheck where smooth; edge
cases; the registry and the composition with a regularizer."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from dml_kit import losses, regularizers
from dml_kit.losses import pair, proxy

REGISTRY_NAMES = [
    "contrastive", "triplet", "triplet_batch_hard", "triplet_semi_hard", "lifted_structure",
    "npair", "multi_similarity", "histogram", "margin", "softmax", "normsoftmax", "cosface",
    "arcface", "proxy_nca", "proxy_anchor", "prototypical", "ntxent",
]
NUM_CLASSES, DIM = 3, 5


# --------------------------------------------------------------------------- helpers
def _batch(seed: int = 0, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor,
                                                                       torch.Tensor]:
    """9 embeddings in 3 classes of sizes 4, 3, 2 (shuffled)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(9, DIM, generator=g, dtype=dtype)
    y = torch.tensor([0, 1, 0, 2, 1, 0, 2, 1, 0])
    return x, y


def _d(a: torch.Tensor, b: torch.Tensor, kind: str) -> torch.Tensor:
    if kind == "euclidean":
        return (a - b).pow(2).sum().sqrt()
    if kind == "sqeuclidean":
        return (a - b).pow(2).sum()
    return 1 - (a @ b) / (a.norm() * b.norm())


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a @ b) / (a.norm() * b.norm())


def _maybe_norm(x: torch.Tensor, normalize: bool) -> torch.Tensor:
    return x / x.norm(dim=1, keepdim=True) if normalize else x


def _compare(kit_fn, ref_fn, x: torch.Tensor, y: torch.Tensor, atol: float = 1e-9) -> None:
    """Values and gradients of the kit loss and the naive reference agree."""
    xa = x.clone().requires_grad_(True)
    xb = x.clone().requires_grad_(True)
    la, lb = kit_fn(xa, y), ref_fn(xb, y)
    torch.testing.assert_close(la, lb, atol=atol, rtol=1e-7)
    la.backward()
    lb.backward()
    torch.testing.assert_close(xa.grad, xb.grad, atol=atol, rtol=1e-6)


def _build(name: str, **params) -> torch.nn.Module:
    if losses.spec(name).needs_num_classes:
        params = {"num_classes": NUM_CLASSES, "embedding_dim": DIM, **params}
    return losses.get(name, **params).double()


def _labels_for(name: str, y: torch.Tensor) -> torch.Tensor:
    if name == "ntxent":  # each label exactly twice (even batch sizes only)
        return torch.arange(len(y) // 2).repeat(2)
    return y


# ------------------------------------------------------------------- naive references
def ref_contrastive(x, y, margin=1.0, pos_margin=0.0, distance="euclidean", power=2,
                    average="all"):
    terms = []
    for i in range(len(x)):
        for j in range(len(x)):
            if i == j:
                continue
            d = _d(x[i], x[j], distance)
            h = torch.relu(d - pos_margin) if y[i] == y[j] else torch.relu(margin - d)
            terms.append(0.5 * h**2 if power == 2 else h)
    t = torch.stack(terms)
    n = len(terms) if average == "all" else int((t > 0).sum())
    return t.sum() / n


def ref_triplet(x, y, margin=0.2, distance="sqeuclidean", normalize=True, average="nonzero"):
    x = _maybe_norm(x, normalize)
    terms = []
    for a in range(len(x)):
        for p in range(len(x)):
            for n in range(len(x)):
                if p != a and y[p] == y[a] and y[n] != y[a]:
                    terms.append(torch.relu(_d(x[a], x[p], distance) - _d(x[a], x[n], distance)
                                            + margin))
    t = torch.stack(terms)
    n = len(terms) if average == "all" else int((t > 0).sum())
    return t.sum() / n


def ref_batch_hard(x, y, margin=0.2, distance="euclidean", soft=False):
    terms = []
    for a in range(len(x)):
        dp = [_d(x[a], x[p], distance) for p in range(len(x)) if p != a and y[p] == y[a]]
        dn = [_d(x[a], x[n], distance) for n in range(len(x)) if y[n] != y[a]]
        if dp and dn:
            gap = torch.stack(dp).max() - torch.stack(dn).min()
            terms.append(F.softplus(gap) if soft else torch.relu(gap + margin))
    return torch.stack(terms).mean()


def ref_semi_hard(x, y, margin=0.2, distance="sqeuclidean", normalize=True):
    x = _maybe_norm(x, normalize)
    terms = []
    for a in range(len(x)):
        negs = [_d(x[a], x[n], distance) for n in range(len(x)) if y[n] != y[a]]
        if not negs:
            continue
        for p in range(len(x)):
            if p == a or y[p] != y[a]:
                continue
            dap = _d(x[a], x[p], distance)
            farther = [dn for dn in negs if dn > dap]
            dn = min(farther) if farther else max(negs)
            terms.append(torch.relu(dap - dn + margin))
    return torch.stack(terms).mean()


def ref_lifted(x, y, margin=1.0):
    terms = []
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            if y[i] != y[j]:
                continue
            s = 0.0
            for k in range(len(x)):
                if y[k] != y[i]:
                    s = s + torch.exp(margin - _d(x[i], x[k], "euclidean"))
                if y[k] != y[j]:
                    s = s + torch.exp(margin - _d(x[j], x[k], "euclidean"))
            jij = torch.log(s) + _d(x[i], x[j], "euclidean")
            terms.append(torch.relu(jij) ** 2)
    return torch.stack(terms).sum() / (2 * len(terms))


def ref_npair(x, y, l2_reg=0.002, normalize=False, scale=1.0):
    firsts, seconds = {}, {}
    for i in range(len(x)):
        c = int(y[i])
        if c not in firsts:
            firsts[c] = i
        elif c not in seconds:
            seconds[c] = i
    classes = sorted(seconds)
    a = torch.stack([x[firsts[c]] for c in classes])
    p = torch.stack([x[seconds[c]] for c in classes])
    if normalize:
        a, p = _maybe_norm(a, True), _maybe_norm(p, True)
    total = 0.0
    for i in range(len(a)):
        inner = 0.0
        for j in range(len(a)):
            if j != i:
                inner = inner + torch.exp(scale * (a[i] @ p[j]) - scale * (a[i] @ p[i]))
        total = total + torch.log(1 + inner)
    reg = 0.25 * l2_reg * ((a**2).sum(1).mean() + (p**2).sum(1).mean())
    return total / len(a) + reg


def ref_multi_similarity(x, y, alpha=2.0, beta=50.0, base=0.5, epsilon=0.1):
    total = 0.0
    for i in range(len(x)):
        sp = [_cos(x[i], x[j]) for j in range(len(x)) if j != i and y[j] == y[i]]
        sn = [_cos(x[i], x[j]) for j in range(len(x)) if y[j] != y[i]]
        if not sp or not sn:
            continue
        keep_n = [s for s in sn if s + epsilon > min(float(v.detach()) for v in sp)]
        keep_p = [s for s in sp if s - epsilon < max(float(v.detach()) for v in sn)]
        pos = sum(torch.exp(-alpha * (s - base)) for s in keep_p)
        neg = sum(torch.exp(beta * (s - base)) for s in keep_n)
        total = total + torch.log(1 + pos) / alpha + torch.log(1 + neg) / beta
    return total / len(x)


def ref_histogram(x, y, num_bins=200):
    nodes = [-1 + 2 * r / num_bins for r in range(num_bins + 1)]
    delta = 2 / num_bins
    hp = [0.0] * len(nodes)
    hn = [0.0] * len(nodes)
    npos = nneg = 0
    for i in range(len(x)):
        for j in range(i + 1, len(x)):
            s = _cos(x[i], x[j])
            for r, t in enumerate(nodes):
                w = torch.relu(1 - (s - t).abs() / delta)
                if y[i] == y[j]:
                    hp[r] = hp[r] + w
                else:
                    hn[r] = hn[r] + w
            if y[i] == y[j]:
                npos += 1
            else:
                nneg += 1
    loss, cdf = 0.0, 0.0
    for r in range(len(nodes)):
        cdf = cdf + hp[r] / npos
        loss = loss + hn[r] / nneg * cdf
    return loss


def ref_margin(x, y, beta, alpha=0.2):
    x = _maybe_norm(x, True)
    terms = []
    for i in range(len(x)):
        for j in range(len(x)):
            if i == j:
                continue
            b = beta[int(y[i])] if len(beta) > 1 else beta[0]
            d = _d(x[i], x[j], "euclidean")
            sign = 1.0 if y[i] == y[j] else -1.0
            terms.append(torch.relu(alpha + sign * (d - b)))
    t = torch.stack(terms)
    return t.sum() / int((t > 0).sum())


def _ce(logits_row, target):
    return -logits_row[target] + torch.log(sum(torch.exp(v) for v in logits_row))


def ref_proxy_softmax(module, x, y):
    w, b = module.classifier.weight, module.classifier.bias
    total = 0.0
    for i in range(len(x)):
        logits = torch.stack([x[i] @ w[c] + b[c] for c in range(len(w))])
        total = total + _ce(logits, int(y[i]))
    return total / len(x)


def ref_cosine_ce(module, x, y, kind):
    w = module.weight
    total = 0.0
    for i in range(len(x)):
        row = []
        for c in range(len(w)):
            cos = _cos(x[i], w[c])
            if kind == "normsoftmax":
                row.append(cos / module.temperature)
                continue
            if c == int(y[i]):
                if kind == "cosface":
                    cos = cos - module.margin
                else:
                    theta = torch.acos(cos)
                    m = module.margin
                    cos = torch.cos(theta + m) if float(theta.detach()) + m <= math.pi else (
                        cos - m * math.sin(m))
            row.append(module.scale * cos)
        total = total + _ce(torch.stack(row), int(y[i]))
    return total / len(x)


def ref_proxy_nca(module, x, y):
    w, s = module.weight, module.scale
    total = 0.0
    for i in range(len(x)):
        xi = s * x[i] / x[i].norm()
        dists = [((xi - s * w[c] / w[c].norm()) ** 2).sum() for c in range(len(w))]
        t = int(y[i])
        denom = sum(torch.exp(-dists[c]) for c in range(len(w)) if c != t)
        total = total + dists[t] + torch.log(denom)
    return total / len(x)


def ref_proxy_anchor(module, x, y):
    w, alpha, delta = module.weight, module.alpha, module.delta
    pos_total, neg_total, n_with_pos = 0.0, 0.0, 0
    for c in range(len(w)):
        pos = [torch.exp(-alpha * (_cos(x[i], w[c]) - delta)) for i in range(len(x))
               if y[i] == c]
        neg = [torch.exp(alpha * (_cos(x[i], w[c]) + delta)) for i in range(len(x))
               if y[i] != c]
        if pos:
            n_with_pos += 1
            pos_total = pos_total + torch.log(1 + sum(pos))
        neg_total = neg_total + torch.log(1 + sum(neg))
    return pos_total / n_with_pos + neg_total / len(w)


def ref_prototypical(sx, sy, qx, qy):
    classes = sorted(set(sy.tolist()))
    protos = []
    for c in classes:
        members = [sx[i] for i in range(len(sx)) if int(sy[i]) == c]
        protos.append(sum(members) / len(members))
    total = 0.0
    for q in range(len(qx)):
        logits = torch.stack([-((qx[q] - p) ** 2).sum() for p in protos])
        total = total + _ce(logits, classes.index(int(qy[q])))
    return total / len(qx)


def ref_ntxent(x, y, temperature=0.1):
    total = 0.0
    for i in range(len(x)):
        j = [k for k in range(len(x)) if k != i and y[k] == y[i]][0]
        denom = sum(torch.exp(_cos(x[i], x[k]) / temperature) for k in range(len(x)) if k != i)
        total = total - _cos(x[i], x[j]) / temperature + torch.log(denom)
    return total / len(x)


# ------------------------------------------------------------ values and gradients
@pytest.mark.parametrize("average", ["all", "nonzero"])
@pytest.mark.parametrize("distance,power", [("euclidean", 2), ("sqeuclidean", 1),
                                            ("cosine", 2)])
def test_contrastive_matches_naive(distance: str, power: int, average: str) -> None:
    x, y = _batch()
    # margin chosen so that some negative terms are zero and some are not
    kw = dict(margin=2.5 if distance != "cosine" else 1.0, pos_margin=0.3, distance=distance,
              power=power, average=average)
    _compare(pair.ContrastiveLoss(**kw), lambda a, b: ref_contrastive(a, b, **kw), x, y)


@pytest.mark.parametrize("average", ["all", "nonzero"])
@pytest.mark.parametrize("distance,normalize", [("sqeuclidean", True), ("euclidean", False),
                                                ("cosine", False)])
def test_triplet_all_matches_naive(distance: str, normalize: bool, average: str) -> None:
    x, y = _batch(1)
    kw = dict(margin=0.5, distance=distance, normalize=normalize, average=average)
    _compare(pair.TripletLoss(**kw), lambda a, b: ref_triplet(a, b, **kw), x, y)


@pytest.mark.parametrize("name", ["triplet", "triplet_semi_hard"])
@pytest.mark.parametrize("average", ["all", "nonzero"])
def test_one_big_class_matches_naive(name: str, average: str) -> None:
    x, y = _batch(21)
    y = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 2])  # one big class
    if name == "triplet":
        kw = dict(margin=0.5, distance="euclidean", normalize=False, average=average)
        _compare(pair.TripletLoss(**kw), lambda a, b: ref_triplet(a, b, **kw), x, y)
    else:
        kw = dict(margin=0.5, distance="euclidean", normalize=False)
        _compare(pair.SemiHardTripletLoss(**kw), lambda a, b: ref_semi_hard(a, b, **kw), x, y)


def test_triplet_averaging_choices_differ_as_documented() -> None:
    x, y = _batch(2)
    total_all = pair.TripletLoss(margin=0.3, average="all")(x, y)
    total_nz = pair.TripletLoss(margin=0.3, average="nonzero")(x, y)
    # all-valid: 4*3*5 + 3*2*6 + 2*1*7 valid triplets
    n_valid = 4 * 3 * 5 + 3 * 2 * 6 + 2 * 1 * 7
    n_active = n_valid * float(total_all) / float(total_nz)
    assert n_active == pytest.approx(round(n_active)) and 0 < round(n_active) <= n_valid


@pytest.mark.parametrize("soft", [False, True])
@pytest.mark.parametrize("distance", ["euclidean", "cosine"])
def test_batch_hard_matches_naive(distance: str, soft: bool) -> None:
    x, y = _batch(3)
    kw = dict(margin=1.0, distance=distance, soft=soft)
    _compare(pair.BatchHardTripletLoss(**kw), lambda a, b: ref_batch_hard(a, b, **kw), x, y)


@pytest.mark.parametrize("distance,normalize", [("sqeuclidean", True), ("euclidean", False)])
def test_semi_hard_matches_naive(distance: str, normalize: bool) -> None:
    x, y = _batch(4)
    kw = dict(margin=0.3, distance=distance, normalize=normalize)
    _compare(pair.SemiHardTripletLoss(**kw), lambda a, b: ref_semi_hard(a, b, **kw), x, y)


def test_semi_hard_uses_farthest_negative_when_none_is_farther() -> None:
    # anchor 0, positive 1 far away; negatives 2, 3 closer than the positive
    x = torch.tensor([[0.0, 0.0], [5.0, 0.0], [1.0, 0.0], [2.0, 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 0, 1, 1])
    loss = pair.SemiHardTripletLoss(margin=0.0, distance="euclidean", normalize=False)
    # (0,1): d=5, no negative farther, farthest at 2 -> 3; (1,0): d=5, negatives at 4 and
    # 3 -> farthest 4 -> 1; (2,3) and (3,2): d=1, semi-hard negatives at 4 and 2 -> 0
    assert float(loss(x, y)) == pytest.approx((3 + 1 + 0 + 0) / 4)


def test_lifted_structure_matches_naive() -> None:
    x, y = _batch(5)
    _compare(pair.LiftedStructureLoss(margin=1.0), ref_lifted, x, y)


@pytest.mark.parametrize("normalize,scale,l2", [(False, 1.0, 0.002), (True, 5.0, 0.0)])
def test_npair_matches_naive(normalize: bool, scale: float, l2: float) -> None:
    x, y = _batch(6)
    kw = dict(normalize=normalize, scale=scale, l2_reg=l2)
    _compare(pair.NPairLoss(**kw), lambda a, b: ref_npair(a, b, **kw), x, y)


@pytest.mark.parametrize("epsilon,base", [(0.1, 0.5), (0.5, 0.2)])
def test_multi_similarity_matches_naive(epsilon: float, base: float) -> None:
    x, y = _batch(7)
    kw = dict(alpha=2.0, beta=10.0, base=base, epsilon=epsilon)
    _compare(pair.MultiSimilarityLoss(**kw), lambda a, b: ref_multi_similarity(a, b, **kw),
             x, y)


@pytest.mark.parametrize("num_bins", [4, 25, 200])
def test_histogram_matches_naive(num_bins: int) -> None:
    x, y = _batch(8)
    _compare(pair.HistogramLoss(num_bins=num_bins),
             lambda a, b: ref_histogram(a, b, num_bins), x, y)


def test_histogram_is_probability_of_reversed_order() -> None:
    # perfectly separated similarities: positives near 1, negatives near -1 -> 0
    x = torch.tensor([[1.0, 0.0], [1.0, 0.01], [-1.0, 0.0], [-1.0, 0.01]])
    assert float(pair.HistogramLoss()(x, torch.tensor([0, 0, 1, 1]))) == 0.0
    # reversed: the positive pairs are opposite, most negative pairs identical -> near 1
    assert float(pair.HistogramLoss()(x, torch.tensor([0, 1, 1, 0]))) > 0.9


@pytest.mark.parametrize("num_classes", [None, NUM_CLASSES])
def test_margin_matches_naive_and_learns_beta(num_classes: int | None) -> None:
    x, y = _batch(9)
    loss = pair.MarginLoss(alpha=0.2, beta=1.2, num_classes=num_classes).double()
    with torch.no_grad():
        loss.beta.add_(torch.linspace(-0.1, 0.1, len(loss.beta), dtype=torch.float64))
    beta = loss.beta.detach().clone().requires_grad_(True)
    _compare(loss, lambda a, b: ref_margin(a, b, beta), x, y)
    loss.beta.grad = None
    beta.grad = None
    loss(x, y).backward()
    ref_margin(x, y, beta).backward()
    torch.testing.assert_close(loss.beta.grad, beta.grad)
    assert float(loss.beta.grad.abs().sum()) > 0


def test_softmax_matches_naive() -> None:
    x, y = _batch(10)
    m = proxy.SoftmaxLoss(NUM_CLASSES, DIM).double()
    _compare(m, lambda a, b: ref_proxy_softmax(m, a, b), x, y)


@pytest.mark.parametrize("kind", ["normsoftmax", "cosface", "arcface"])
def test_cosine_softmax_family_matches_naive(kind: str) -> None:
    x, y = _batch(11)
    cls = {"normsoftmax": proxy.NormSoftmaxLoss, "cosface": proxy.CosFaceLoss,
           "arcface": proxy.ArcFaceLoss}[kind]
    kw = {"temperature": 0.5} if kind == "normsoftmax" else {"scale": 4.0}
    m = cls(NUM_CLASSES, DIM, **kw).double()
    _compare(m, lambda a, b: ref_cosine_ce(m, a, b, kind), x, y)


def test_arcface_fallback_branch_matches_naive() -> None:
    # a sample pointing away from its proxy: theta + m > pi uses cos - m sin m
    m = proxy.ArcFaceLoss(2, 2, margin=0.5, scale=2.0).double()
    with torch.no_grad():
        m.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    x = torch.tensor([[-1.0, 0.05], [0.3, 1.0]], dtype=torch.float64)
    y = torch.tensor([0, 1])
    _compare(m, lambda a, b: ref_cosine_ce(m, a, b, "arcface"), x, y)


def test_proxy_nca_matches_naive() -> None:
    x, y = _batch(12)
    m = proxy.ProxyNCALoss(NUM_CLASSES, DIM).double()
    _compare(m, lambda a, b: ref_proxy_nca(m, a, b), x, y)


def test_proxy_anchor_matches_naive_with_an_absent_class() -> None:
    x, y = _batch(13)
    m = proxy.ProxyAnchorLoss(NUM_CLASSES + 2, DIM, alpha=8.0).double()  # 2 proxies unused
    _compare(m, lambda a, b: ref_proxy_anchor(m, a, b), x, y)


def test_proxy_losses_update_their_proxies() -> None:
    x, y = _batch(14)
    for name in ["softmax", "normsoftmax", "cosface", "arcface", "proxy_nca", "proxy_anchor"]:
        m = _build(name)
        m(x, y).backward()
        grads = [p.grad for p in m.parameters()]
        assert grads and all(g is not None and float(g.abs().sum()) > 0 for g in grads), name


def test_prototypical_matches_naive_and_relabels() -> None:
    g = torch.Generator().manual_seed(15)
    sx = torch.randn(6, DIM, generator=g, dtype=torch.float64)
    qx = torch.randn(5, DIM, generator=g, dtype=torch.float64)
    sy = torch.tensor([7, 3, 7, 9, 3, 9])
    qy = torch.tensor([3, 9, 9, 7, 3])
    sa, qa = sx.clone().requires_grad_(True), qx.clone().requires_grad_(True)
    sb, qb = sx.clone().requires_grad_(True), qx.clone().requires_grad_(True)
    la = losses.prototypical_loss(sa, sy, qa, qy)
    lb = ref_prototypical(sb, sy, qb, qy)
    torch.testing.assert_close(la, lb)
    la.backward()
    lb.backward()
    torch.testing.assert_close(sa.grad, sb.grad)
    torch.testing.assert_close(qa.grad, qb.grad)
    with pytest.raises(ValueError, match="no support"):
        losses.prototypical_loss(sx, sy, qx, torch.tensor([3, 9, 9, 7, 4]))


def test_prototypical_module_split_is_deterministic_per_class() -> None:
    x, y = _batch(16)  # class sizes 4, 3, 2 -> support 2, 1, 1
    m = losses.PrototypicalLoss(support_fraction=0.5)
    support = m.split(y)
    assert support.tolist() == [True, True, True, True, False, False, False, False, False]

    def ref(a, b):
        return ref_prototypical(a[support], b[support], a[~support], b[~support])

    _compare(m, ref, x, y)
    # a class with one sample is support only (a distractor prototype)
    assert losses.PrototypicalLoss().split(torch.tensor([0, 0, 1])).tolist() == [True, False,
                                                                                True]


def test_ntxent_matches_naive_and_two_view_helper() -> None:
    g = torch.Generator().manual_seed(17)
    x = torch.randn(8, DIM, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 1, 0, 3, 2])
    _compare(losses.NTXentLoss(0.5), lambda a, b: ref_ntxent(a, b, 0.5), x, y)
    v1, v2 = x[:4], x[4:]
    expected = ref_ntxent(x, torch.arange(4).repeat(2), 0.1)
    torch.testing.assert_close(losses.ntxent_loss(v1, v2), expected)
    with pytest.raises(ValueError, match="exactly twice"):
        losses.NTXentLoss()(x, torch.tensor([0, 0, 0, 1, 1, 2, 2, 3]))


# --------------------------------------------------------------------------- gradcheck
SMOOTH = {
    "lifted_structure": {},
    "npair": {},
    "multi_similarity": {"beta": 10.0},
    "softmax": {},
    "normsoftmax": {"temperature": 0.5},
    "cosface": {"scale": 4.0},
    "arcface": {"scale": 4.0},
    "proxy_nca": {},
    "proxy_anchor": {"alpha": 4.0},
    "prototypical": {},
    "ntxent": {"temperature": 0.5},
    "contrastive": {"margin": 10.0},  # squared hinge, all negatives active: smooth
}


@pytest.mark.parametrize("name", sorted(SMOOTH))
def test_gradcheck_smooth_losses(name: str) -> None:
    x, y = _batch(20)
    y = _labels_for(name, torch.tensor([0, 1, 0, 2, 1, 0, 2, 1]))
    x = x[: len(y)].clone().requires_grad_(True)
    m = _build(name, **SMOOTH[name])
    assert torch.autograd.gradcheck(lambda a: m(a, y), (x,))


# -------------------------------------------------------------------------- edge cases
@pytest.mark.parametrize("name", REGISTRY_NAMES)
def test_one_class_batch_is_finite(name: str) -> None:
    if name == "ntxent":
        pytest.skip("NT-Xent labels mark pairs; one label for all is invalid by definition")
    x = torch.randn(6, DIM, dtype=torch.float64, requires_grad=True)
    y = torch.zeros(6, dtype=torch.long)
    loss = _build(name)(x, y)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("name", REGISTRY_NAMES)
def test_class_with_one_sample_is_finite(name: str) -> None:
    if name == "ntxent":
        pytest.skip("NT-Xent labels mark pairs; a single label is invalid by definition")
    x = torch.randn(7, DIM, dtype=torch.float64, requires_grad=True)
    y = _labels_for(name, torch.tensor([0, 0, 1, 1, 1, 2, 0]))
    x = x[: len(y)]
    loss = _build(name)(x, y)
    loss.backward()
    assert torch.isfinite(loss)


@pytest.mark.parametrize("fill", [1.0, 0.0], ids=["identical", "zero"])
@pytest.mark.parametrize("name", REGISTRY_NAMES)
def test_degenerate_embeddings_give_no_nan(name: str, fill: float) -> None:
    # all rows equal (distances 0), or all rows zero (norms 0 too)
    x = torch.full((8, DIM), fill, dtype=torch.float64, requires_grad=True)
    y = _labels_for(name, torch.tensor([0, 0, 1, 1, 2, 2, 0, 1]))
    loss = _build(name)(x, y)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(x.grad).all(), name


def _separated() -> tuple[torch.Tensor, torch.Tensor]:
    """Three classes, members identical, classes orthogonal unit vectors."""
    x = torch.eye(3, DIM, dtype=torch.float64).repeat_interleave(3, 0)
    return x, torch.arange(3).repeat_interleave(3)


@pytest.mark.parametrize("name,params,spread", [
    ("contrastive", {"margin": 1.0}, 1.0),
    ("triplet", {}, 1.0),
    ("triplet_batch_hard", {}, 1.0),
    ("triplet_semi_hard", {}, 1.0),
    ("lifted_structure", {"margin": 1.0}, 10.0),  # needs negatives far beyond the margin
    ("multi_similarity", {}, 1.0),
    ("histogram", {}, 1.0),
    ("margin", {}, 1.0),
])
def test_all_zero_loss_when_perfectly_separated(name: str, params: dict,
                                                spread: float) -> None:
    x, y = _separated()
    x = (x * spread).requires_grad_(True)
    loss = _build(name, **params)(x, y)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(0.0, abs=1e-6)
    assert float(x.grad.abs().max()) == pytest.approx(0.0, abs=1e-6)


def test_nonzero_average_ignores_zero_terms() -> None:
    x, y = _separated()
    x = x.clone()
    x[0] = x[0] * 0.5 + 0.5 * x[3]  # one sample drifts towards another class
    nz = pair.ContrastiveLoss(margin=1.0, average="nonzero")(x, y)
    al = pair.ContrastiveLoss(margin=1.0, average="all")(x, y)
    assert float(nz) > float(al) > 0


# ---------------------------------------------------------------------------- registry
def test_registry_lists_exactly_the_documented_names() -> None:
    assert losses.available() == REGISTRY_NAMES
    assert regularizers.available() == ["sec", "lp", "ring"]


@pytest.mark.parametrize("name", REGISTRY_NAMES)
def test_spec_describes_parameters(name: str) -> None:
    s = losses.spec(name)
    assert s.name == name and s.description and "\n" not in s.description
    proxy_like = name in {"softmax", "normsoftmax", "cosface", "arcface", "proxy_nca",
                          "proxy_anchor"}
    assert s.needs_num_classes == proxy_like and s.needs_embedding_dim == proxy_like
    module = _build(name)
    for param, default in s.params.items():
        assert default is None or isinstance(default, bool | int | float | str), param
    assert isinstance(module, torch.nn.Module)


def test_registry_defaults() -> None:
    assert losses.spec("histogram").params == {"num_bins": 200}
    assert losses.spec("triplet").params["margin"] == 0.2
    assert losses.spec("arcface").params == {"margin": 0.5, "scale": 64.0}
    assert losses.spec("arcface").required == ("num_classes", "embedding_dim")
    assert regularizers.spec("sec").params == {"momentum": 1.0}


def test_registry_errors_name_what_is_allowed() -> None:
    with pytest.raises(ValueError, match="unknown loss 'tripletz'.*triplet_batch_hard"):
        losses.get("tripletz")
    with pytest.raises(ValueError, match="unknown parameter 'margn'.*allowed: margin"):
        losses.get("triplet", margn=0.1)
    with pytest.raises(ValueError, match="needs num_classes, embedding_dim"):
        losses.get("arcface")
    with pytest.raises(ValueError, match="unknown regularizer 'l1'.*sec, lp, ring"):
        regularizers.get("l1")
    with pytest.raises(ValueError, match="margin"):
        losses.get("triplet", margin=-1.0)
    with pytest.raises(ValueError, match="distance"):
        losses.get("contrastive", distance="manhattan")


def test_bad_inputs_are_reported() -> None:
    with pytest.raises(ValueError, match="shape"):
        losses.get("triplet")(torch.zeros(4, 2), torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="labels must lie in 0..2"):
        _build("cosface")(torch.zeros(2, DIM, dtype=torch.float64), torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="embedding_dim=5"):
        _build("cosface")(torch.zeros(2, 4, dtype=torch.float64), torch.tensor([0, 1]))


# ------------------------------------------------------------------------- composition
def test_with_regularizer_adds_weighted_term_and_logs_parts() -> None:
    x, y = _batch(30)
    base = losses.get("triplet")
    reg = regularizers.SEC()
    combined = losses.with_regularizer(base, reg, weight=0.5)
    total = combined(x, y)
    expected = base(x, y) + 0.5 * reg(x)
    torch.testing.assert_close(total, expected)
    parts = combined.last_parts
    torch.testing.assert_close(parts["total"], parts["loss"] + 0.5 * parts["reg"])
    assert not parts["total"].requires_grad


def test_with_regularizer_exposes_all_parameters_and_accepts_names() -> None:
    combined = losses.with_regularizer(_build("proxy_anchor"), "ring", weight=1.0)
    names = {n for n, _ in combined.named_parameters()}
    assert names == {"loss.weight", "reg.radius"}
    x, y = _batch(31)
    combined.double()(x, y).backward()
    assert combined.reg.radius.grad is not None


# ------------------------------------------------------------- non-finite input (issue 15)
@pytest.mark.parametrize("name", losses.available())
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_every_loss_refuses_non_finite_embeddings_by_name(name: str, bad: float) -> None:
    """Never NaN, never a finite value with NaN gradients: a ValueError naming embeddings."""
    x, y = _batch()
    x = x[:8].clone()
    x[0, 0] = bad
    x.requires_grad_(True)
    with pytest.raises(ValueError, match=r"embeddings holds 1 non-finite value \(NaN or inf\)"):
        _build(name)(x, _labels_for(name, y[:8]))


def test_multi_similarity_and_histogram_issue_cases_refuse_nan() -> None:
    # the issue's cases: a finite loss with all-NaN gradients / IndexError
    x = torch.randn(4, 2)
    x[0, 0] = float("nan")
    y = torch.tensor([0, 0, 1, 1])
    for name in ("multi_similarity", "histogram"):
        with pytest.raises(ValueError, match="embeddings holds 1 non-finite"):
            losses.get(name)(x, y)


def test_episode_losses_name_their_non_finite_argument() -> None:
    x, y = _batch()
    x[7, 1] = float("nan")
    support_y, query_y = y[:6], y[6:]
    with pytest.raises(ValueError, match="embeddings holds 1 non-finite"):
        losses.EpisodeLoss()(x, support_y, query_y)
    with pytest.raises(ValueError, match="query_emb holds 1 non-finite"):
        losses.prototypical_loss(x[:6], support_y, x[6:], query_y)
    with pytest.raises(ValueError, match="support_emb holds 1 non-finite"):
        losses.prototypical_loss(x[6:], query_y, x[:6], support_y)
    q = torch.randn(3, 4, dtype=x.dtype)
    with pytest.raises(ValueError, match=r"support_emb and query_emb .* \(6, 5\) and \(3, 4\)"):
        losses.prototypical_loss(x[:6], support_y, q, query_y)
    with pytest.raises(ValueError, match="embeddings holds 1 non-finite"):
        losses.with_regularizer(losses.EpisodeLoss(), "sec")(x, support_y, query_y)


def test_losses_refuse_integer_embeddings_and_float_labels() -> None:
    x, y = _batch()
    with pytest.raises(ValueError, match="embeddings must be a floating-point tensor"):
        losses.get("triplet")(x.long(), y)
    with pytest.raises(ValueError, match="labels must hold integer class labels"):
        losses.get("triplet")(x, y.double())


@pytest.mark.parametrize("name", ["softmax", "normsoftmax", "cosface", "arcface", "proxy_nca",
                                  "proxy_anchor"])
def test_proxy_losses_cast_float64_embeddings(name: str) -> None:
    """float64 embeddings (numpy's default) give the float32 loss, not a dtype error, and
    their gradient comes back in float64."""
    torch.manual_seed(0)
    loss = losses.get(name, num_classes=3, embedding_dim=4)
    x32 = torch.randn(6, 4)
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    x64 = x32.double().requires_grad_(True)
    value = loss(x64, y)
    assert value.dtype == torch.float32
    assert torch.equal(value, loss(x32, y))
    value.backward()
    assert x64.grad is not None and x64.grad.dtype == torch.float64
    assert torch.isfinite(x64.grad).all()


# ------------------------------------------- regression pins for the fused kernels
#: Value and gradient norm of every registry loss (default parameters, float64) on
#: ``_batch(40)`` (NT-Xent: its first 8 rows), proxies drawn after ``manual_seed(0)``.
#: Recorded when the kernels were fused (one ``exp``, custom backwards); they equal the
#: earlier straightforward implementations to 1e-15 except Proxy-Anchor (2e-9: the old
#: ``softplus`` returned ``x`` for ``x > 20``, the fused form is exact).
PINNED = {
    "contrastive": (1.4643459274555353, 0.5303405408060102),
    "triplet": (1.4149594210158418, 0.5867905831025868),
    "triplet_batch_hard": (1.6905526877767438, 0.6865493320183106),
    "triplet_semi_hard": (0.09256584764576578, 0.29782212063743146),
    "lifted_structure": (7.19970864340786, 1.813015537029955),
    "npair": (6.509436266051856, 2.9851282364863025),
    "multi_similarity": (1.0286394800008616, 0.22559956694155806),
    "histogram": (0.44992877603188275, 0.32953248751759545),
    "margin": (0.4631878298226131, 0.17028985382506087),
    "softmax": (1.439635825006162, 0.18716393545154805),
    "normsoftmax": (13.326080048935827, 2.9580074299103893),
    "cosface": (59.82631861923432, 9.611638914797673),
    "arcface": (60.16675688130931, 9.201728200328496),
    "proxy_nca": (8.613703926010023, 3.3304729302159033),
    "proxy_anchor": (47.79959243885732, 8.075010667913121),
    "prototypical": (4.791076605319893, 4.5284817814020055),
    "ntxent": (12.31461901887927, 3.9716749623836045),
}


@pytest.mark.parametrize("name", REGISTRY_NAMES)
def test_pinned_value_and_gradient_norm(name: str) -> None:
    x, y = _batch(40)
    if name == "ntxent":
        x, y = x[:8], y[:8]
    torch.manual_seed(0)
    loss = _build(name)
    xg = x.clone().requires_grad_(True)
    value = loss(xg, _labels_for(name, y))
    value.backward()
    assert xg.grad is not None
    expected_value, expected_grad_norm = PINNED[name]
    assert value.item() == pytest.approx(expected_value, rel=1e-9)
    assert xg.grad.norm().item() == pytest.approx(expected_grad_norm, rel=1e-9)


def test_triplet_losses_by_hand() -> None:
    # 1-D points 0, 1 (class 0) and 1.2 (class 1), squared distances, margin 0.5:
    # (a, p, n) = (0, 1, 2): 1 - 1.44 + 0.5 = 0.06; (1, 0, 2): 1 - 0.04 + 0.5 = 1.46
    x = torch.tensor([[0.0], [1.0], [1.2]], dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 0, 1])
    kw = dict(margin=0.5, distance="sqeuclidean", normalize=False)
    for loss in (pair.TripletLoss(**kw), pair.TripletLoss(**kw, average="all"),
                 # semi-hard: (0, 1) has the farther negative 2; (1, 0) none -> farthest
                 pair.SemiHardTripletLoss(**kw)):
        x.grad = None
        value = loss(x, y)
        value.backward()
        assert value.item() == pytest.approx(0.76, abs=1e-12)
        # d/dx of ((x0-x1)^2 - (x0-x2)^2 + (x1-x0)^2 - (x1-x2)^2 + 1) / 2
        torch.testing.assert_close(x.grad, torch.tensor([[-0.8], [2.2], [-1.4]],
                                                        dtype=torch.float64))


@pytest.mark.parametrize("name", ["triplet", "triplet_semi_hard"])
def test_triplet_losses_with_singletons_and_ragged_classes(name: str) -> None:
    x, _ = _batch(41)
    x = torch.cat([x, x[:3] + 0.1])
    y = torch.tensor([0, 0, 0, 1, 2, 2, 3, 3, 3, 3, 4, 5])  # 1, 4 and 5: one sample
    if name == "triplet":
        for average in ("all", "nonzero"):
            kw = dict(margin=0.5, distance="euclidean", normalize=False, average=average)
            _compare(pair.TripletLoss(**kw), lambda a, b, kw=kw: ref_triplet(a, b, **kw), x, y)
    else:
        kw = dict(margin=0.5, distance="euclidean", normalize=False)
        _compare(pair.SemiHardTripletLoss(**kw), lambda a, b: ref_semi_hard(a, b, **kw),
                 x, y)


@pytest.mark.parametrize("alpha, beta", [(40.0, 60.0), (0.5, 200.0)])
@pytest.mark.parametrize("base", [0.0, 0.5])
def test_multi_similarity_large_scales_match_naive(alpha: float, beta: float,
                                                   base: float) -> None:
    # exponents above 0: the fused kernel shifts by them (log1p_shifted)
    x, y = _batch(42)
    kw = dict(alpha=alpha, beta=beta, base=base, epsilon=0.5)
    _compare(pair.MultiSimilarityLoss(**kw), lambda a, b: ref_multi_similarity(a, b, **kw),
             x, y, atol=1e-8)


@pytest.mark.parametrize("alpha", [8.0, 32.0, 70.0, 120.0])
def test_proxy_anchor_matches_naive_for_every_alpha(alpha: float) -> None:
    # 70: the fixed shift is > 0; 120: the two-logsumexp form
    x, y = _batch(43)
    m = proxy.ProxyAnchorLoss(NUM_CLASSES + 1, DIM, alpha=alpha).double()
    _compare(m, lambda a, b: ref_proxy_anchor(m, a, b), x, y, atol=1e-8)


def test_histogram_with_duplicates_matches_naive() -> None:
    # identical rows: similarities at (or a rounding above) 1, where the clamp has no slope
    x, y = _batch(44)
    x = torch.cat([x, x[:2]])
    y = torch.cat([y, y[:2]])
    _compare(pair.HistogramLoss(num_bins=20), lambda a, b: ref_histogram(a, b, 20), x, y)
