"""Checkers for the notebooks' exercises.

A notebook asks the reader to write a function (the triplet loss, the prototypical
loss, the SEC term, ...) and calls ``check("triplet_loss", my_triplet_loss)``. The
checker runs the reader's function and the library's own implementation on a few
seeded inputs, compares values **and gradients**, and prints what went wrong with a
hint ("your loss is 2x the reference: average over active triplets, not all"). It never
raises for a wrong answer, so a notebook still runs top to bottom; it returns an
:class:`ExerciseResult` for code that wants to branch on it.

Worked solutions live outside the student's notebook, in ``notebooks/solutions/``
(:func:`solution_path` tells where); the tests check that each one passes.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from dml_kit._validation import check_choice

SOLUTIONS = Path(__file__).resolve().parents[1] / "notebooks" / "solutions"


@dataclass(frozen=True)
class ExerciseResult:
    """Outcome of a check: ``passed`` and a message for the reader."""

    name: str
    passed: bool
    message: str

    def __bool__(self) -> bool:
        return self.passed

    def _repr_markdown_(self) -> str:
        # text-style check and ballot marks (U+2713, U+2717): common fonts such as DejaVu
        # Sans have them, where the emoji marks showed as an empty box in a browser
        # without an emoji font (seen in headless Chromium on Debian)
        mark = "✓" if self.passed else "✗"
        return f"{mark} **{self.name}**: {self.message}"

    def __str__(self) -> str:
        return f"{'PASS' if self.passed else 'NOT YET'} {self.name}: {self.message}"


class _Mismatch(Exception):
    """Raised inside a checker with the message the reader should see."""


# ---- input generators ------------------------------------------------------------------
def _batches(seed: int, dim: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A few small labelled batches in float64, including an uneven one (labels < ``dim``,
    so that the rows also serve as logits)."""
    g = torch.Generator().manual_seed(seed)
    labels = [torch.tensor([0, 0, 1, 1, 2, 2]), torch.tensor([0, 1, 0, 1, 2, 2, 2, 0]),
              torch.tensor([3, 3, 3, 5, 5, 7, 7, 7, 7])]
    return [(torch.randn(len(y), dim, generator=g, dtype=torch.float64), y) for y in labels]


def _compare(got: torch.Tensor, want: torch.Tensor, what: str,
             rtol: float = 1e-5, atol: float = 1e-7) -> None:
    """``got`` against ``want``, both from :func:`_value_and_grad`: 0-d values (it refuses
    anything else) or gradients with the input's shape, so type and shape always agree."""
    if not torch.allclose(got.double(), want.double(), rtol=rtol, atol=atol):
        if want.numel() == 1 and float(want) != 0:
            ratio = float(got) / float(want)
            raise _Mismatch(f"{what}: expected {float(want):.6g}, got {float(got):.6g} "
                            f"(ratio {ratio:.3g})")
        raise _Mismatch(f"{what}: values differ (largest gap "
                        f"{float((got.double() - want.double()).abs().max()):.3g})")


def _value_and_grad(fn: Callable[..., torch.Tensor], emb: torch.Tensor, *args: object
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    x = emb.clone().requires_grad_(True)
    out = fn(x, *args)
    if not isinstance(out, torch.Tensor) or out.ndim != 0:
        raise _Mismatch("the function must return a scalar tensor (a 0-d torch.Tensor), got "
                        f"{type(out).__name__} {tuple(getattr(out, 'shape', ()))}")
    if not out.requires_grad:
        raise _Mismatch("the result has no gradient: build it from the embeddings with torch "
                        "operations (no .item(), .numpy() or .detach() on the way)")
    (grad,) = torch.autograd.grad(out, x)
    return out.detach(), grad


def _check_loss_like(student: Callable[..., torch.Tensor],
                     reference: Callable[..., torch.Tensor], extra: tuple = (),
                     hints: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
                                     str] | None = None) -> str:
    for i, (emb, y) in enumerate(_batches(0)):
        want, want_grad = _value_and_grad(reference, emb, y, *extra)
        got, got_grad = _value_and_grad(student, emb, y, *extra)
        try:
            _compare(got, want, f"batch {i} (labels {y.tolist()}), value")
        except _Mismatch as err:
            hint = hints(emb, y, got, want) if hints else ""
            raise _Mismatch(f"{err}{'. ' + hint if hint else ''}") from None
        _compare(got_grad, want_grad, f"batch {i}, gradient")
    return "values and gradients match the library on 3 batches"


# ---- the exercises -----------------------------------------------------------------------
def _nn_inputs(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A 4-way 2-shot support set of 1x4x4 'images' (non-negative, like pixels) whose
    brightness differs a lot from image to image, and 12 queries: cosine and Euclidean
    nearest neighbours disagree on some queries."""
    g = torch.Generator().manual_seed(seed)
    support_y = torch.arange(4).repeat_interleave(2)
    support_x = torch.rand(8, 1, 4, 4, generator=g, dtype=torch.float64)
    support_x = support_x * torch.tensor([0.2, 3.0] * 4, dtype=torch.float64).view(8, 1, 1, 1)
    query_x = (support_x[torch.arange(12) % 8] / support_x[torch.arange(12) % 8].amax()
               + 0.3 * torch.rand(12, 1, 4, 4, generator=g, dtype=torch.float64))
    return support_x, support_y, query_x


def _cosine_nn(support_x: torch.Tensor, query_x: torch.Tensor) -> torch.Tensor:
    s = torch.nn.functional.normalize(support_x.flatten(1), dim=1)
    q = torch.nn.functional.normalize(query_x.flatten(1), dim=1)
    return (q @ s.T).argmax(1)


def _check_nearest_neighbour(student: Callable) -> str:
    for seed in (0, 1):
        support_x, support_y, query_x = _nn_inputs(seed)
        want = support_y[_cosine_nn(support_x, query_x)]
        got = torch.as_tensor(student(support_x.clone(), support_y.clone(), query_x.clone()))
        if got.shape != want.shape:
            raise _Mismatch(f"return one label per query: {len(query_x)} queries, got a "
                            f"result of shape {tuple(got.shape)}")
        if torch.equal(got.long(), want):
            continue
        wrong = f"{int((got.long() != want).sum())} of {len(want)} queries get another label"
        sims = (torch.nn.functional.normalize(query_x.flatten(1), dim=1)
                @ torch.nn.functional.normalize(support_x.flatten(1), dim=1).T)
        euclid = support_y[torch.cdist(query_x.flatten(1), support_x.flatten(1)).argmin(1)]
        if torch.equal(got.long(), _cosine_nn(support_x, query_x)):
            hint = ("you return the index of the nearest support image; return its label "
                    "(support_y[index])")
        elif torch.equal(got.long(), euclid):
            hint = ("that is the nearest image by Euclidean distance; use the cosine "
                    "similarity (normalise the flattened images first), which ignores "
                    "brightness")
        elif torch.equal(got.long(), support_y[sims.argmin(1)]):
            hint = ("you took the *least* similar support image: argmax of the cosine "
                    "similarity (or argmin of a distance)")
        else:
            hint = ("flatten each image to a vector, compute cosine similarities of every "
                    "query with every support image, take the argmax per query")
        raise _Mismatch(f"{wrong}: {hint}")
    return "the same labels as the library's 1-NN on pixels (cosine) on two tasks"


def _check_support_query_split(student: Callable) -> str:
    labels = torch.tensor([0] * 6 + [1] * 4 + [2] * 7 + [3] * 5)
    for k in (1, 3):
        support, query = student(labels, k, 0)
        support, query = torch.as_tensor(support), torch.as_tensor(query)
        if support.dtype not in (torch.int64, torch.int32):
            raise _Mismatch("return index tensors (torch.long), not boolean masks or values")
        counts = torch.bincount(labels[support], minlength=4)
        if not torch.equal(counts, torch.full((4,), k)):
            raise _Mismatch(f"k_shot={k}: the support set must hold exactly {k} examples of "
                            f"every class, got {counts.tolist()}")
        both = torch.cat([support, query])
        if len(set(both.tolist())) != len(both):
            raise _Mismatch("an example is both in the support set and among the queries")
        if sorted(both.tolist()) != list(range(len(labels))):
            raise _Mismatch("support and queries together must cover every example once")
        again = torch.as_tensor(student(labels, k, 0)[0])
        if not torch.equal(torch.sort(again).values, torch.sort(support).values):
            raise _Mismatch("the same seed must give the same split (use a torch.Generator)")
    other = [torch.sort(torch.as_tensor(student(labels, 3, s)[0])).values for s in range(1, 6)]
    if all(torch.equal(o, other[0]) for o in other):
        raise _Mismatch("different seeds always give the same support set: sample at random")
    return "k per class, disjoint, complete, and reproducible for a seed"


def _check_cross_entropy(student: Callable) -> str:
    import torch.nn.functional as F

    def hints(logits, y, got, want):
        if torch.allclose(got, want * len(y)):
            return "you return the sum over examples; take the mean"
        return "did you subtract the log-sum-exp of each row (log-softmax)?"

    return _check_loss_like(student, F.cross_entropy, hints=hints)


def _check_triplet_loss(student: Callable) -> str:
    from dml_kit.losses import TripletLoss

    margin = 0.5
    reference = TripletLoss(margin=margin, distance="sqeuclidean", normalize=False,
                            average="nonzero")
    ref_all = TripletLoss(margin=margin, distance="sqeuclidean", normalize=False, average="all")

    def hints(emb, y, got, want):
        if torch.allclose(got, ref_all(emb, y)):
            return ("you average over all valid triplets; average over the active ones "
                    "(loss > 0) instead")
        plain = TripletLoss(margin=margin, distance="euclidean", normalize=False)
        if torch.allclose(got, plain(emb, y)):
            return "use the squared Euclidean distance ||a - b||^2"
        return "check the triplet set: p != a with the anchor's label, n with another label"

    return _check_loss_like(lambda e, y: student(e, y, margin), reference, hints=hints)


def _check_prototypical_loss(student: Callable) -> str:
    from dml_kit.losses import prototypical_loss

    g = torch.Generator().manual_seed(1)
    for n_way, k_shot, q in ((3, 1, 2), (5, 3, 4)):
        sy = torch.arange(n_way).repeat_interleave(k_shot)
        qy = torch.arange(n_way).repeat_interleave(q)
        s = torch.randn(len(sy), 4, generator=g, dtype=torch.float64)
        qe = torch.randn(len(qy), 4, generator=g, dtype=torch.float64)
        want, want_g = _value_and_grad(prototypical_loss, s, sy, qe, qy)
        got, got_g = _value_and_grad(student, s, sy, qe, qy)
        try:
            _compare(got, want, f"{n_way}-way {k_shot}-shot episode, value")
        except _Mismatch as err:
            euclid = prototypical_loss(s, sy, qe, qy, distance="euclidean")
            hint = (" Use the squared Euclidean distance, as Snell et al. do."
                    if torch.allclose(got, euclid) else
                    " Logits are minus the squared distances to the prototypes.")
            raise _Mismatch(f"{err}.{hint}") from None
        _compare(got_g, want_g,
                 f"{n_way}-way {k_shot}-shot episode, gradient w.r.t. the support embeddings")
    return "values and gradients match on a 3-way 1-shot and a 5-way 3-shot episode"


#: mistakes of the error-reduction exercise: (name, the wrong formula on per-condition
#: accuracies of the baseline B and the method A, what the reader is told)
_ER_MISTAKES: tuple[tuple[str, Callable[[list[float], list[float]], float], str], ...] = (
    ("accuracy gain", lambda b, a: _mean([y - x for x, y in zip(b, a, strict=True)]),
     "That is the accuracy gain (acc_A - acc_B, not divided by anything); divide each "
     "condition's error gap err_B - err_A by the baseline's error err_B = 1 - acc_B"),
    ("relative accuracy gain",
     lambda b, a: _mean([(y - x) / x for x, y in zip(b, a, strict=True) if x < 1]),
     "You divided by the baseline's accuracy: the measure is about errors, "
     "(err_B - err_A) / err_B with err = 1 - accuracy"),
    ("divided by the method's error",
     lambda b, a: _mean([((1 - x) - (1 - y)) / (1 - y) for x, y in zip(b, a, strict=True)
                         if x < 1 and y < 1]),
     "You divided by the method's error err_A; divide by the baseline's error err_B"),
    ("sign flipped",
     lambda b, a: _mean([((1 - y) - (1 - x)) / (1 - x) for x, y in zip(b, a, strict=True)
                         if x < 1]),
     "The sign is flipped: (err_B - err_A) / err_B is positive when the method makes fewer "
     "errors than the baseline"),
    ("baseline and method swapped",
     lambda b, a: _mean([((1 - y) - (1 - x)) / (1 - y) for x, y in zip(b, a, strict=True)
                         if y < 1]),
     "Baseline and method are swapped: the first argument is the baseline B, the second "
     "the method A"),
    ("pooled errors",
     lambda b, a: (_mean([1 - x for x in b]) - _mean([1 - y for y in a]))
     / _mean([1 - x for x in b]),
     "You averaged the errors first and took one ratio (a pooled reduction); compute the "
     "reduction in each condition, then average the reductions"),
    ("skipped conditions counted",
     lambda b, a: sum(((1 - x) - (1 - y)) / (1 - x) for x, y in zip(b, a, strict=True)
                      if x < 1) / len(b),
     "You divided by the number of all conditions; a condition whose baseline is perfect is "
     "skipped, so average over the others only"),
)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def _diagnose_error_reduction(base: list[float], meth: list[float], got: float,
                              want: float) -> str:
    """The hint for a wrong error reduction: which known mistake gives ``got``."""
    if got != got:  # NaN
        return (" A condition whose baseline accuracy is 1 has no error to reduce (err_B = "
                "0): skip it instead of dividing by zero.")
    if abs(got - 100 * want) < 1e-6:
        return " Return a fraction (0.34 for 34%), not a percentage."
    for _, formula, hint in _ER_MISTAKES:
        try:
            wrong = formula(base, meth)
        except ZeroDivisionError:
            continue
        if abs(got - wrong) < 1e-9:
            return f" {hint}."
    return (" The measure: per condition (err_B - err_A) / err_B with err = 1 - accuracy, "
            "then the plain mean over the conditions whose baseline makes errors.")


def _check_error_reduction(student: Callable) -> str:
    from dml_kit.metrics import error_reduction

    cases = [([0.5, 0.8], [0.75, 0.8]), ([0.9, 0.6, 0.7], [0.95, 0.7, 0.65]),
             ([0.6, 1.0, 0.8], [0.7, 1.0, 0.9])]
    for base, meth in cases:
        want = error_reduction(base, meth)
        where = f"baseline {base}, method {meth}"
        try:
            out = student(list(base), list(meth))
        except ZeroDivisionError:
            raise _Mismatch(f"{where}: your function divided by zero. A condition whose "
                            "baseline accuracy is 1 has no error to reduce (err_B = 0): "
                            "skip it.") from None
        if isinstance(out, (list, tuple)) or getattr(out, "ndim", 0) > 0:
            raise _Mismatch(f"{where}: you returned {len(out)} values; return one float, "
                            "the mean over the conditions")
        got = float(out)
        if not abs(got - want) <= 1e-9:
            hint = _diagnose_error_reduction(base, meth, got, want)
            raise _Mismatch(f"{where}: expected {want:.4f}, got {got:.4f}.{hint}")
    return ("matches the library on three grids of conditions, one with a perfect "
            "baseline to skip")


def _sec_mistakes(emb: torch.Tensor) -> list[tuple[torch.Tensor, str]]:
    """Values of the common wrong SEC terms on ``emb``, each with what the reader is told."""
    n = emb.norm(dim=1)
    sq = (emb ** 2).sum(1)
    cols = emb.norm(dim=0)
    return [
        (((n - 1.0) ** 2).mean(),
         "SEC pulls every norm towards the batch's mean norm mu = mean_i ||f_i||, not "
         "towards 1: compute mu from the batch"),
        ((n ** 2).mean(),
         "that is the L2 penalty on the norms (the paper's baseline): it shrinks them. SEC "
         "penalises their spread around the batch mean mu"),
        ((n - n.mean()).abs().mean(),
         "square the deviations ||f_i|| - mu (you took their absolute value)"),
        (n.std(unbiased=False),
         "that is the standard deviation of the norms; SEC is its square, the mean squared "
         "deviation"),
        (n.std(),
         "that is the standard deviation of the norms; SEC is the mean squared deviation, "
         "divided by N"),
        (((n - n.mean()) ** 2).sum(),
         "average the squared deviations over the batch (mean), not a sum"),
        (n.var(),
         "divide by N, not N - 1: torch.var is unbiased by default (unbiased=False, or "
         "take the mean of the squared deviations)"),
        (((sq - sq.mean()) ** 2).mean(),
         "use the norms ||f_i||, not the squared norms ||f_i||^2"),
        (((cols - cols.mean()) ** 2).mean(),
         "take the norm of each row (one embedding each: dim=1), not of each column"),
    ]


def _check_sec(student: Callable) -> str:
    from dml_kit.regularizers import SEC

    reference = SEC()
    for i, (emb, _) in enumerate(_batches(2)):
        emb = emb * torch.linspace(0.5, 3.0, emb.shape[0], dtype=torch.float64).unsqueeze(1)
        want, want_g = _value_and_grad(reference, emb)
        got, got_g = _value_and_grad(student, emb)
        try:
            _compare(got, want, f"batch {i}, value")
        except _Mismatch as err:
            hints = [hint for value, hint in _sec_mistakes(emb)
                     if torch.allclose(got, value.detach(), rtol=1e-5, atol=1e-7)]
            hint = hints[0] if hints else (
                "SEC = 1/N sum_i (||f_i|| - mu)^2 with mu the batch's mean norm; check each of "
                "the three steps: row norms, their mean, the mean squared deviation")
            raise _Mismatch(f"{err}. {hint[0].upper()}{hint[1:]}") from None
        _compare(got_g, want_g, f"batch {i}, gradient")
    return ("value and gradient match. Did you detach mu? With the plain batch mean it makes "
            "no difference to the gradient: the deviations ||f_i|| - mu sum to zero")


def _fd_variants(a: torch.Tensor, b: torch.Tensor) -> list[tuple[float, str]]:
    """The Fréchet distance computed with each common mistake, with what the reader is
    told (numpy/scipy, float64)."""
    import numpy as np
    from scipy import linalg

    x, y = a.numpy(), b.numpy()
    mu = x.mean(0) - y.mean(0)

    def fd(bias: bool = False, square: bool = True, root: bool = True) -> float:
        sa, sb = np.cov(x, rowvar=False, bias=bias), np.cov(y, rowvar=False, bias=bias)
        cross = np.real(linalg.sqrtm(sa @ sb)) if root else sa @ sb
        gap = float(mu @ mu) if square else float(np.linalg.norm(mu))
        return gap + float(np.trace(sa + sb - 2 * cross))

    return [
        (fd(bias=True), "use sample covariances with 1/(n-1) (np.cov's default, bias=False), "
                        "not 1/n"),
        (float(mu @ mu), "you left out the covariance term Tr(S_a + S_b - 2 (S_a S_b)^(1/2))"),
        (fd(square=False), "the mean term is the *squared* distance ||mu_a - mu_b||^2"),
        (fd(root=False), "take the matrix square root of S_a S_b (scipy.linalg.sqrtm), not "
                         "the product itself"),
    ]


def _check_frechet_distance(student: Callable) -> str:
    from dml_kit.data.shift import frechet_distance

    g = torch.Generator().manual_seed(3)
    a = torch.randn(200, 3, generator=g, dtype=torch.float64)
    b = torch.randn(150, 3, generator=g, dtype=torch.float64) * 1.5 + 0.7
    for x, y in ((a, a), (a, b), (b, a)):
        want = float(frechet_distance(x, y))
        got = float(student(x, y))
        if abs(got - want) > 1e-4 * max(1.0, abs(want)):
            hints = [hint for value, hint in _fd_variants(x, y)
                     if abs(got - value) <= 1e-6 * max(1.0, abs(value))]
            hint = hints[0] if hints else ("FD = ||mu_a - mu_b||^2 + "
                                           "Tr(S_a + S_b - 2 (S_a S_b)^(1/2)), covariances "
                                           "with 1/(n-1)")
            raise _Mismatch(f"expected {want:.5f}, got {got:.5f}: {hint}")
    return "matches the library on identical and on shifted Gaussian samples"


def _check_recall_at_1(student: Callable) -> str:
    from dml_kit.metrics import recall_at_k

    for emb, y in _batches(4):
        want = recall_at_k(emb, y, ks=(1,))[1]
        got = float(student(emb, y))
        if abs(got - want) > 1e-6:
            euclid = recall_at_k(emb, y, ks=(1,), distance="euclidean")[1]
            if got == 1.0:
                hint = ("every point is its own nearest neighbour: leave each example out "
                        "of its own neighbour list (set the diagonal to -inf)")
            elif abs(got - euclid) <= 1e-6:
                hint = "that is the Euclidean nearest neighbour; use cosine similarity"
            else:
                hint = ("Leave each example out of its own neighbour list; use cosine "
                        "similarity; count a hit when the nearest other example shares the "
                        "label")
            raise _Mismatch(f"labels {y.tolist()}: expected {want:.4f}, got {got:.4f}. "
                            f"{hint[0].upper()}{hint[1:]}")
    return "matches the library's leave-one-out Recall@1 on 3 batches"


EXERCISES: dict[str, tuple[str, Callable[[Callable], str]]] = {
    "nearest_neighbour": ("00 start here: 1-NN on pixels by cosine similarity",
                          _check_nearest_neighbour),
    "support_query_split": ("01 tasks: split a class-labelled set into k support examples "
                            "per class and queries", _check_support_query_split),
    "cross_entropy": ("02 weight transfer: softmax cross-entropy from logits",
                      _check_cross_entropy),
    "triplet_loss": ("03 metric learning: the triplet loss over all valid triplets",
                     _check_triplet_loss),
    "prototypical_loss": ("04 few-shot: the prototypical-network loss", _check_prototypical_loss),
    "error_reduction": ("05 adapted embeddings: mean relative error reduction",
                        _check_error_reduction),
    "sec": ("06 SEC: the spherical embedding constraint", _check_sec),
    "frechet_distance": ("07 distribution shift: Fréchet distance between two feature sets",
                         _check_frechet_distance),
    "recall_at_1": ("08 capstone: leave-one-out Recall@1", _check_recall_at_1),
}


def check(name: str, student_fn: Callable) -> ExerciseResult:
    """Check the reader's ``student_fn`` for exercise ``name`` against the library.

    Prints nothing and raises nothing for a wrong answer: the returned
    :class:`ExerciseResult` displays itself in a notebook (✓ or ✗ with a hint).
    """
    check_choice("exercise", name, EXERCISES)
    _, checker = EXERCISES[name]
    try:
        message = checker(student_fn)
        return ExerciseResult(name, True, message)
    except NotImplementedError:
        return ExerciseResult(name, False, "not attempted yet: replace `raise "
                              "NotImplementedError` with your code and run the cell again")
    except _Mismatch as err:
        return ExerciseResult(name, False, str(err))
    except Exception as err:  # the reader's code crashed: show it, do not kill the notebook
        return ExerciseResult(name, False, f"your function raised {type(err).__name__}: {err}")


def solution_path(name: str) -> Path:
    """Where the worked solution of exercise ``name`` lives (outside the notebooks)."""
    check_choice("exercise", name, EXERCISES)
    return SOLUTIONS / f"{name}.py"


def load_solution(name: str) -> Callable:
    """Import the worked solution of ``name`` (for instructors, and for the tests)."""
    path = solution_path(name)
    spec = importlib.util.spec_from_file_location(f"dml_kit_solution_{name}", path)
    if spec is None or spec.loader is None or not path.exists():
        raise FileNotFoundError(f"no solution file at {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)
