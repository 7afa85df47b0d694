"""The kit's statistics: how a set of runs becomes an estimate, a comparison and a verdict.

One module, so that ``report``, the studies and the notebooks share one rule book
(see ``docs/architecture.md``, "Evidence"):

* **Replication unit.** A (seed, task) pair. Methods are compared *paired*: on the same
  replications (same source seed, same target classes and images), so that the
  difference of two methods is computed per replication before it is averaged.
* **Estimate.** A mean with a 95% interval (:func:`mean_ci`): Student's t-interval
  ``mean +- t_{0.975, n-1} * s / sqrt(n)`` over ``n < 20`` replications, a percentile
  bootstrap over ``n >= 20``. It prints as ``0.862 [0.841, 0.880]``.
* **Verdict** (:func:`verdict`). "A beats B" is decided on the interval of the mean
  paired difference ``A - B``: entirely above the threshold (0 unless the claim names
  another) -> **holds**; entirely below -> **fails**; straddling it -> **not resolved at
  this sample size (n = ...)**.
* **Error reduction** (:func:`error_reduction_ci`): per condition
  ``(err_B - err_A) / err_B`` with ``err = 1 - accuracy``, averaged over conditions
  (*Adapted Deep Embeddings*, Scott et al. 2018, report 34%; the paper does not define
  it, this is our reading); its interval comes from resampling the replications within
  each condition (a paired bootstrap).
* **Bounded quantities** (:func:`metric_bounds`). An accuracy or a Recall@k lies in
  ``[0, 1]`` and a difference of two of them in ``[-1, 1]``; with two or three
  replications a t-interval can still reach past that range. It is right for its sample,
  but a negative accuracy on screen is wrong: an :class:`Estimate` given ``bounds``
  *shows* its interval clipped to them and says so (``"0.631 [0.000, 1.000] (clipped to
  [0, 1], n = 2)"``: more seeds or tasks are needed), while
  ``low``/``high`` and every verdict keep the unclipped interval. (With the threshold
  inside the range, clipping never moves an interval end across it, so the shown
  interval always agrees with the verdict.) Unbounded quantities (Fréchet distances,
  norms, losses) have ``bounds=None`` and are never clipped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

#: confidence level of every interval the kit prints
LEVEL = 0.95
#: from this many replications on, intervals come from a percentile bootstrap
BOOTSTRAP_FROM = 20
#: bootstrap resamples
N_BOOT = 4000

#: a quantity's range ``(lowest, highest)``; ``math.inf`` for an open end
Bounds = tuple[float, float]

HOLDS = "holds"
FAILS = "fails"
UNRESOLVED = "not resolved at this sample size"
VERDICTS = (HOLDS, FAILS, UNRESOLVED)


def _values(name: str, values: Iterable[float] | np.ndarray) -> np.ndarray:
    """``values`` as a finite 1-d float array, refusing NaN/inf and empty input by name."""
    arr = np.asarray(list(values) if not isinstance(values, np.ndarray) else values,
                     dtype=float).ravel()
    if arr.size == 0:
        raise ValueError(f"{name} is empty: an estimate needs at least one replication")
    bad = ~np.isfinite(arr)
    if bad.any():
        raise ValueError(f"{name} holds {int(bad.sum())} non-finite value(s) (NaN or inf) at "
                         f"position(s) {np.flatnonzero(bad)[:5].tolist()}: every replication "
                         "must give a finite number")
    return arr


#: the range of the bounded metrics the kit reports, by (lower-case) column name; names
#: starting ``recall@``, ``precision@``, ``map@`` or ending in ``accuracy`` count too
METRIC_BOUNDS: dict[str, Bounds] = {
    "accuracy": (0.0, 1.0), "error": (0.0, 1.0), "error_rate": (0.0, 1.0),
    "nmi": (0.0, 1.0), "map@r": (0.0, 1.0), "map": (0.0, 1.0),
    # non-negative, open above: embedding norms and their coefficient of variation
    "norm_mean": (0.0, math.inf), "norm_std": (0.0, math.inf), "norm_cv": (0.0, math.inf),
    "cv": (0.0, math.inf),
}
_BOUNDED_PREFIXES = ("recall@", "precision@", "map@", "r@", "p@")


def metric_bounds(name: str | None) -> Bounds | None:
    """The range of the metric called ``name``: ``(0, 1)`` for accuracies, error rates,
    Recall@k, Precision@k, MAP@R and NMI; ``(0, inf)`` for embedding norms and their
    coefficient of variation (``norm_mean``, ``norm_std``, ``norm_cv``, ``cv``; see
    :data:`METRIC_BOUNDS`); ``None`` for anything else (losses, and any unknown name, are
    never clipped)."""
    if not isinstance(name, str):
        return None
    key = name.strip().lower()
    if key in METRIC_BOUNDS:
        return METRIC_BOUNDS[key]
    if key.startswith(_BOUNDED_PREFIXES) or key.endswith("accuracy"):
        return (0.0, 1.0)
    return None


def check_bounds(bounds: object, name: str = "bounds") -> Bounds:
    """``bounds`` as ``(lo, hi)`` floats with ``lo < hi`` (``math.inf`` allowed for an open
    end); anything else raises ``ValueError`` naming ``name``."""
    try:
        lo, hi = (float(b) for b in bounds)  # type: ignore[attr-defined]
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a pair (lowest, highest) of numbers, e.g. (0, 1) "
                         f"for an accuracy, got {bounds!r}") from None
    if math.isnan(lo) or math.isnan(hi) or not lo < hi:
        raise ValueError(f"{name} must be (lowest, highest) with lowest < highest, got "
                         f"{bounds!r}")
    return lo, hi


def difference_bounds(bounds: Bounds | None) -> Bounds | None:
    """The range of a difference ``a - b`` of two quantities that each lie in
    ``bounds = (lo, hi)``: ``(lo - hi, hi - lo)`` (two accuracies: ``[-1, 1]``)."""
    if bounds is None:
        return None
    lo, hi = check_bounds(bounds)
    return (lo - hi, hi - lo)


def _check_within(name: str, arr: np.ndarray, bounds: Bounds | None) -> None:
    """Refuse values outside ``bounds`` (an accuracy of 1.2 is a bug upstream)."""
    if bounds is None:
        return
    out = (arr < bounds[0]) | (arr > bounds[1])
    if out.any():
        where = np.flatnonzero(out)[:5].tolist()
        raise ValueError(f"{name} holds {int(out.sum())} value(s) outside its range "
                         f"bounds=[{bounds[0]:g}, {bounds[1]:g}] at position(s) {where} "
                         f"(e.g. {arr[where[0]]:g}): check the metric, or pass the right "
                         "bounds (None: unbounded)")


def _range_text(bounds: Bounds, scale: float = 1.0) -> str:
    return f"[{scale * bounds[0]:g}, {scale * bounds[1]:g}]"


def t_quantile(n: int, level: float = LEVEL) -> float:
    """The two-sided Student-t quantile ``t_{(1+level)/2, n-1}`` for ``n`` replications."""
    from scipy.stats import t

    return float(t.ppf(0.5 + level / 2, n - 1))


@dataclass(frozen=True)
class Estimate:
    """A mean with its interval over ``n`` replications.

    Attributes:
        mean: the sample mean.
        low, high: the interval's ends (``nan`` with a single replication: one draw has
            no interval).
        n: number of replications.
        method: ``"t"`` (Student's t), ``"bootstrap"`` (percentile), ``"wilson"`` (a
            proportion over ``n`` items: :func:`proportion_ci`) or ``"none"`` (n = 1).
        level: confidence level (0.95).
        bounds: the quantity's range ``(lo, hi)`` (an accuracy: ``(0, 1)``), or ``None``
            when it has none. ``low``/``high`` stay the unclipped interval (verdicts use
            them); :attr:`shown_low`/:attr:`shown_high` and :meth:`format` clip it to
            the range for display, and :attr:`clipped` says whether they had to.
    """

    mean: float
    low: float
    high: float
    n: int
    method: str = "t"
    level: float = LEVEL
    bounds: Bounds | None = None

    @property
    def half_width(self) -> float:
        """Half the (unclipped) interval's width (``nan`` without an interval)."""
        return (self.high - self.low) / 2

    @property
    def clipped(self) -> bool:
        """Whether the unclipped interval reaches past :attr:`bounds` (so that the shown
        one is cut at the range's end)."""
        if self.bounds is None or math.isnan(self.low):
            return False
        return self.low < self.bounds[0] or self.high > self.bounds[1]

    @property
    def shown_low(self) -> float:
        """The interval's lower end as displayed: ``low`` clipped to :attr:`bounds`."""
        if self.bounds is None or math.isnan(self.low):
            return self.low
        return min(max(self.low, self.bounds[0]), self.bounds[1])

    @property
    def shown_high(self) -> float:
        """The interval's upper end as displayed: ``high`` clipped to :attr:`bounds`."""
        if self.bounds is None or math.isnan(self.high):
            return self.high
        return max(min(self.high, self.bounds[1]), self.bounds[0])

    def note(self, percent: bool = False) -> str:
        """Why the shown interval differs from the computed one, short enough for a table
        cell: ``"clipped to [0, 1], n = 2"`` (``""`` when it is not clipped). The
        computed interval reaches past the metric's range: more seeds or tasks needed."""
        if not self.clipped or self.bounds is None:
            return ""
        return (f"clipped to {_range_text(self.bounds, 100.0 if percent else 1.0)}, "
                f"n = {self.n}")

    def with_bounds(self, bounds: Bounds | None) -> Estimate:
        """This estimate with its range set to ``bounds`` (``None``: unbounded)."""
        return replace(self, bounds=None if bounds is None else check_bounds(bounds))

    def format(self, digits: int = 3, percent: bool = False, *, note: bool = True) -> str:
        """``"0.862 [0.841, 0.880]"`` (``percent=True``: ``"86.2 [84.1, 88.0]"``). The
        interval is shown clipped to :attr:`bounds`; a clipped one is followed by its
        :meth:`note` in parentheses (``note=False`` leaves it out)."""
        scale = 100.0 if percent else 1.0
        d = max(digits - 2, 0) if percent else digits
        if math.isnan(self.low):
            return f"{scale * self.mean:.{d}f} [no interval: n = {self.n}]"
        text = (f"{scale * self.mean:.{d}f} [{scale * self.shown_low:.{d}f}, "
                f"{scale * self.shown_high:.{d}f}]")
        return f"{text} ({self.note(percent)})" if note and self.clipped else text

    def __str__(self) -> str:
        return self.format()


def mean_ci(values: Iterable[float] | np.ndarray, *, level: float = LEVEL,
            bootstrap_from: int = BOOTSTRAP_FROM, n_boot: int = N_BOOT,
            seed: int = 0, name: str = "values", bounds: Bounds | None = None
            ) -> Estimate:
    """The mean of ``values`` (one per replication) with a ``level`` interval.

    Below ``bootstrap_from`` replications: Student's t-interval
    ``mean +- t_{(1+level)/2, n-1} * s / sqrt(n)`` (``s``: sample standard deviation,
    ``ddof=1``); from ``bootstrap_from`` on: the percentile bootstrap (``n_boot``
    resamples with replacement, seeded, so the same values give the same interval).
    One value gives no interval (``low = high = nan``). Non-finite values are refused.

    ``bounds``: the quantity's range (``(0, 1)`` for an accuracy, :func:`metric_bounds`);
    values outside it are refused, and the estimate *shows* its interval clipped to it
    (:attr:`Estimate.shown_low`), while ``low``/``high`` stay the interval's own.
    """
    arr = _values(name, values)
    if bounds is not None:
        bounds = check_bounds(bounds)
        _check_within(name, arr, bounds)
    n = arr.size
    mean = float(arr.mean())
    if n == 1:
        return Estimate(mean, math.nan, math.nan, 1, "none", level, bounds)
    if n >= bootstrap_from:
        rng = np.random.default_rng(seed)
        means = arr[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
        low, high = np.quantile(means, [0.5 - level / 2, 0.5 + level / 2])
        return Estimate(mean, float(low), float(high), n, "bootstrap", level, bounds)
    half = t_quantile(n, level) * float(arr.std(ddof=1)) / math.sqrt(n)
    return Estimate(mean, mean - half, mean + half, n, "t", level, bounds)


def condition_mean_ci(per_condition: Mapping[object, Mapping[object, float]], *,
                      level: float = LEVEL, name: str = "per_condition",
                      bounds: Bounds | None = None) -> Estimate:
    """The mean over conditions of each condition's mean, with an interval, when the
    conditions may hold different replications (more tasks where they are cheap).

    ``per_condition[c]`` maps replication keys (``(seed, task)``) to one value each, e.g.
    a paired difference ``A - B``. With ``C`` conditions, ``n_c`` replications in ``c``
    and ``n_cc'`` shared by ``c`` and ``c'``::

        m = (1/C) sum_c mean_c
        Var(m) = (1/C^2) sum_{c, c'} n_cc' / (n_c n_c') * s_cc'

    where ``s_cc'`` is the sample covariance (``ddof=1``) of ``c`` and ``c'`` over their
    shared replications (a replication's conditions share its source model, so their
    values are correlated; pairs sharing fewer than 2 replications count as
    independent); the interval is ``m +- t_{(1+level)/2, df} sqrt(Var(m))`` with
    ``df = min_c n_c - 1`` (conservative). When every condition holds the same
    replications this is exactly :func:`mean_ci` of the per-replication averages over
    conditions (and it delegates to it, bootstrap included). ``bounds``: the
    quantity's range, as in :func:`mean_ci`.
    """
    if not per_condition:
        raise ValueError(f"{name} is empty: need at least one condition")
    conds = []
    for c, values in per_condition.items():
        keys = list(values)
        if not keys:
            raise ValueError(f"{name}[{c!r}] holds no replication")
        conds.append((keys, _values(f"{name}[{c!r}]", [values[k] for k in keys])))
    if bounds is not None:   # every value, not only the per-replication averages
        bounds = check_bounds(bounds)
        for c, (_, v) in zip(per_condition, conds, strict=True):
            _check_within(f"{name}[{c!r}]", v, bounds)
    shared = set(conds[0][0])
    if all(set(keys) == shared and len(keys) == len(shared) for keys, _ in conds):
        order = conds[0][0]
        rows = np.stack([np.array([dict(zip(keys, v, strict=True))[k] for k in order])
                         for keys, v in conds])
        return mean_ci(rows.mean(axis=0), level=level, name=name, bounds=bounds)
    n_min = min(v.size for _, v in conds)
    mean = float(np.mean([v.mean() for _, v in conds]))
    if n_min < 2:
        return Estimate(mean, math.nan, math.nan, n_min, "none", level, bounds)
    lookup = [dict(zip(keys, v, strict=True)) for keys, v in conds]
    var = 0.0
    for i, (keys_i, v_i) in enumerate(conds):
        for j, (_, v_j) in enumerate(conds):
            common = [k for k in keys_i if k in lookup[j]]
            if len(common) < 2:
                continue
            a = np.array([lookup[i][k] for k in common])
            b = np.array([lookup[j][k] for k in common])
            cov = float(np.cov(a, b, ddof=1)[0, 1])
            var += len(common) / (v_i.size * v_j.size) * cov
    var = max(var, 0.0) / len(conds) ** 2
    half = t_quantile(n_min, level) * math.sqrt(var)
    return Estimate(mean, mean - half, mean + half, n_min, "t", level, bounds)


def proportion_ci(successes: int, trials: int, *, level: float = LEVEL) -> Estimate:
    """A proportion ``successes / trials`` with its Wilson score interval (Wilson 1927):

    ``(p + z^2/2n +- z * sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)``, ``z`` the normal
    quantile of ``(1+level)/2``. For one run scored on many independent items (e.g. an
    error rate over 400 test images), where there are no replications to average."""
    from scipy.stats import norm  # noqa: PLC0415 (scipy loads only when asked)

    if isinstance(trials, bool) or not isinstance(trials, int | np.integer) or trials < 1:
        raise ValueError(f"trials must be an int >= 1, got {trials!r}")
    if (isinstance(successes, bool) or not isinstance(successes, int | np.integer)
            or not 0 <= successes <= trials):
        raise ValueError(f"successes must be an int between 0 and trials={trials}, "
                         f"got {successes!r}")
    n, p = int(trials), int(successes) / int(trials)
    z = float(norm.ppf(0.5 + level / 2))
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return Estimate(p, max(centre - half, 0.0), min(centre + half, 1.0), n, "wilson", level,
                    (0.0, 1.0))


def paired_difference(a: Iterable[float] | np.ndarray, b: Iterable[float] | np.ndarray,
                      *, bounds: Bounds | None = None, **kwargs: Any) -> Estimate:
    """The mean paired difference ``a - b`` with its interval (:func:`mean_ci` of the
    per-replication differences). ``a[i]`` and ``b[i]`` must come from the same
    replication (same seed and task). ``bounds``: the range of ``a`` and ``b`` themselves
    (two accuracies: ``(0, 1)``); the difference lies in :func:`difference_bounds`
    (``[-1, 1]``), to which its shown interval is clipped."""
    a_arr, b_arr = _values("a", a), _values("b", b)
    if a_arr.shape != b_arr.shape:
        raise ValueError(f"a and b must pair up replication by replication: got "
                         f"{a_arr.size} and {b_arr.size} values")
    if bounds is not None:
        bounds = check_bounds(bounds)
        _check_within("a", a_arr, bounds)
        _check_within("b", b_arr, bounds)
    return mean_ci(a_arr - b_arr, name="a - b", bounds=difference_bounds(bounds), **kwargs)


@dataclass(frozen=True)
class Verdict:
    """The outcome of checking ``estimate > threshold``.

    Attributes:
        label: :data:`HOLDS`, :data:`FAILS` or :data:`UNRESOLVED`.
        estimate: the estimate it was decided on.
        threshold: the value the claim names (0 for "A beats B").
    """

    label: str
    estimate: Estimate
    threshold: float = 0.0

    @property
    def resolved(self) -> bool:
        return self.label != UNRESOLVED

    @property
    def holds(self) -> bool:
        return self.label == HOLDS

    def text(self, digits: int = 3, percent: bool = False) -> str:
        """``"holds: +0.041 [+0.012, +0.070] vs +0.000"`` style, with the numbers. An
        interval end that would print as the threshold although it lies on one side of it
        gets more digits (up to 3 more), so a printed bound never looks like a tie. The
        interval is shown clipped to the estimate's range, followed by its note (the label
        was decided on the unclipped interval; with the threshold inside the range the two
        always agree)."""
        scale = 100.0 if percent else 1.0
        d = max(digits - 2, 0) if percent else digits
        e = self.estimate
        low, high = e.shown_low, e.shown_high
        for _ in range(3):
            ties = [b for b in (low, high) if not math.isnan(b) and b != self.threshold
                    and round(scale * b, d) == round(scale * self.threshold, d)]
            if not ties:
                break
            d += 1
        nums = (f"{scale * e.mean:+.{d}f} [{scale * low:+.{d}f}, {scale * high:+.{d}f}]"
                if not math.isnan(e.low) else f"{scale * e.mean:+.{d}f} (one replication)")
        label = self.label if self.resolved else f"{UNRESOLVED} (n = {e.n})"
        note = f" ({e.note(percent)})" if e.clipped else ""
        return f"{label}: {nums} vs {scale * self.threshold:+.{d}f}{note}"

    def __str__(self) -> str:
        return self.text()


def verdict(estimate: Estimate, threshold: float = 0.0) -> Verdict:
    """Decide "the mean exceeds ``threshold``" from ``estimate``'s interval: the whole
    interval above -> holds, the whole interval below (or every replication exactly at
    the threshold, e.g. two methods that are equal by construction) -> fails, otherwise
    (or with no interval, n = 1) -> not resolved at this sample size. Always on the
    unclipped interval (``low``, ``high``): clipping to a metric's range is for display."""
    if math.isnan(estimate.low):
        return Verdict(UNRESOLVED, estimate, threshold)
    if estimate.low > threshold:
        return Verdict(HOLDS, estimate, threshold)
    if estimate.high < threshold or estimate.low == estimate.high == threshold:
        # below, or exactly at the threshold in every replication: not above it
        return Verdict(FAILS, estimate, threshold)
    return Verdict(UNRESOLVED, estimate, threshold)


def compare(a: Iterable[float] | np.ndarray, b: Iterable[float] | np.ndarray,
            threshold: float = 0.0, **kwargs: Any) -> Verdict:
    """"A beats B (by more than ``threshold``)", decided on the paired difference
    (``kwargs`` go to :func:`paired_difference`, e.g. ``bounds=(0, 1)``)."""
    return verdict(paired_difference(a, b, **kwargs), threshold)


def combine(verdicts: Sequence[Verdict]) -> str:
    """The verdict of "every one of these holds": fails if any fails, holds if all hold,
    otherwise not resolved."""
    labels = [v.label for v in verdicts]
    if not labels:
        raise ValueError("verdicts is empty: nothing to combine")
    if FAILS in labels:
        return FAILS
    if all(label == HOLDS for label in labels):
        return HOLDS
    return UNRESOLVED


@dataclass(frozen=True)
class ErrorReduction:
    """The mean error reduction of A over B with its interval.

    Attributes:
        estimate: mean over conditions of ``(err_B - err_A) / err_B`` with a paired
            bootstrap interval (replications resampled within each condition).
        per_condition: the point value of each condition, in input order.
        conditions: how many conditions entered the mean (those where B makes errors).
    """

    estimate: Estimate
    per_condition: list[float] = field(default_factory=list)
    conditions: int = 0


def error_reduction_ci(pairs: Mapping[object, tuple[Sequence[float], Sequence[float]]]
                       | Sequence[tuple[Sequence[float], Sequence[float]]], *,
                       level: float = LEVEL, n_boot: int = N_BOOT,
                       seed: int = 0) -> ErrorReduction:
    """Mean relative error reduction of A over B with a paired bootstrap interval.

    ``pairs`` holds, per condition, ``(acc_A, acc_B)``: the two methods' accuracies over
    the *same* replications of that condition. The point value is
    ``mean_c (err_B,c - err_A,c) / err_B,c`` with ``err = 1 - mean accuracy`` of the
    condition; a resample draws each condition's replications with replacement (the same
    draw for A and B) and recomputes it. Conditions where B makes no error are skipped.
    (Adapted Deep Embeddings' 34%; :func:`dml_kit.metrics.error_reduction` is the point
    value.)
    """
    items = list(pairs.values()) if isinstance(pairs, Mapping) else list(pairs)
    if not items:
        raise ValueError("pairs is empty: the error reduction needs at least one condition")
    conds = []
    for i, (acc_a, acc_b) in enumerate(items):
        a, b = _values(f"pairs[{i}] A", acc_a), _values(f"pairs[{i}] B", acc_b)
        if a.shape != b.shape:
            raise ValueError(f"pairs[{i}]: A and B must pair up replication by replication, "
                             f"got {a.size} and {b.size} values")
        if ((a < 0) | (a > 1) | (b < 0) | (b > 1)).any():
            raise ValueError(f"pairs[{i}] must hold accuracies between 0 and 1")
        conds.append((a, b))

    def reduction(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        err_a, err_b = 1 - a.mean(axis=-1), 1 - b.mean(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(err_b > 0, (err_b - err_a) / np.where(err_b > 0, err_b, 1), np.nan)

    point = np.array([float(reduction(a, b)) for a, b in conds])
    keep = ~np.isnan(point)
    if not keep.any():
        raise ValueError("B makes no error in any condition: error reduction is undefined")
    mean = float(point[keep].mean())
    n_rep = min(a.size for a, _ in conds)
    if all(a.size == 1 for a, _ in conds):
        est = Estimate(mean, math.nan, math.nan, 1, "none", level)
    else:
        rng = np.random.default_rng(seed)
        boot = np.zeros((n_boot, len(conds)))
        for c, (a, b) in enumerate(conds):
            idx = rng.integers(0, a.size, size=(n_boot, a.size))
            boot[:, c] = reduction(a[idx], b[idx])
        means = np.nanmean(boot[:, keep], axis=1)
        low, high = np.quantile(means, [0.5 - level / 2, 0.5 + level / 2])
        est = Estimate(mean, float(low), float(high), n_rep, "bootstrap", level)
    return ErrorReduction(est, point.tolist(), int(keep.sum()))


def spearman(x: Iterable[float], y: Iterable[float]) -> float:
    """Spearman's rank correlation of ``x`` and ``y`` (ties get their mean rank)."""
    from scipy.stats import spearmanr

    xa, ya = _values("x", x), _values("y", y)
    if xa.size != ya.size or xa.size < 3:
        raise ValueError(f"x and y must have the same length, at least 3; got {xa.size} "
                         f"and {ya.size}")
    return float(spearmanr(xa, ya).statistic)


# ---- tables: a results frame in, estimates and verdicts out -------------------------------
#: columns that identify a replication in the kit's results frames (those present are used)
REPLICATION_COLUMNS = ("seed", "task")


def _unit(frame, unit: Sequence[str] | None) -> list[str]:
    cols = [c for c in (REPLICATION_COLUMNS if unit is None else unit) if c in frame.columns]
    if not cols:
        wanted = list(unit or REPLICATION_COLUMNS)
        raise ValueError(f"the frame has none of the replication columns {wanted}; it has: "
                         f"{', '.join(map(str, frame.columns))}")
    return cols


def _frame_bounds(value: str, bounds: Bounds | None) -> Bounds | None:
    """``bounds`` when given (``(-inf, inf)``: none), else the range of the metric
    ``value`` (:func:`metric_bounds`)."""
    return metric_bounds(value) if bounds is None else check_bounds(bounds)


def summarise(frame, *, by: Sequence[str] = ("method",), value: str = "accuracy",
              unit: Sequence[str] | None = None, bounds: Bounds | None = None):
    """Mean and interval of ``value`` per group of ``by`` (one row per replication in
    ``frame``; replications identified by ``unit``, default the ``seed``/``task`` columns
    present). Returns a DataFrame with ``by``, ``mean``, ``low``, ``high`` (the unclipped
    interval), ``n``, ``estimate`` (``"0.862 [0.841, 0.880]"``, the interval clipped to
    the metric's range and flagged when it had to be) and ``clipped``.

    ``bounds``: the range of ``value`` (default: :func:`metric_bounds` of its name, so
    ``"accuracy"`` is clipped to ``[0, 1]``; ``(-math.inf, math.inf)`` clips nothing)."""
    import pandas as pd

    _unit(frame, unit)
    rng = _frame_bounds(value, bounds)
    rows = []
    for key, part in frame.groupby(list(by), sort=False):
        key = key if isinstance(key, tuple) else (key,)
        est = mean_ci(part[value].to_numpy(), name=f"{value} of {dict(zip(by, key, strict=True))}",
                      bounds=rng)
        rows.append({**dict(zip(by, key, strict=True)), "mean": est.mean, "low": est.low,
                     "high": est.high, "n": est.n, "estimate": est.format(),
                     "clipped": est.clipped})
    return pd.DataFrame(rows)


def paired_values(frame, a: str, b: str, *, column: str = "method", value: str = "accuracy",
                  unit: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The values of ``a`` and ``b`` (rows where ``column`` equals them) on the
    replications both have, aligned replication by replication."""
    cols = _unit(frame, unit)
    wide = frame[frame[column].isin([a, b])].pivot_table(index=cols, columns=column,
                                                         values=value, aggfunc="mean")
    for name in (a, b):
        if name not in wide.columns:
            raise ValueError(f"no rows with {column} == {name!r} in the frame")
    wide = wide[[a, b]].dropna()
    if wide.empty:
        raise ValueError(f"{a!r} and {b!r} share no replication ({', '.join(cols)})")
    return wide[a].to_numpy(), wide[b].to_numpy()


def paired_table(frame, a: str, b: str, *, by: Sequence[str] = ("k",), column: str = "method",
                 value: str = "accuracy", unit: Sequence[str] | None = None,
                 threshold: float = 0.0, bounds: Bounds | None = None):
    """"``a`` beats ``b``" checked per group of ``by``, paired on the replications.

    Returns a DataFrame with ``by``, the two means, ``difference`` (the mean paired
    difference ``a - b`` with its interval, as text: shown clipped to the difference's
    range, :func:`difference_bounds`, and flagged when it had to be), ``low``/``high`` of
    the unclipped interval, ``n`` and ``verdict`` (:func:`verdict` against ``threshold``,
    on the unclipped interval). ``bounds``: the range of ``value`` (default:
    :func:`metric_bounds` of its name)."""
    import pandas as pd

    rng = _frame_bounds(value, bounds)
    rows = []
    groups = frame.groupby(list(by), sort=True) if by else [((), frame)]
    for key, part in groups:
        key = key if isinstance(key, tuple) else (key,)
        va, vb = paired_values(part, a, b, column=column, value=value, unit=unit)
        v = compare(va, vb, threshold, bounds=rng)
        rows.append({**dict(zip(by, key, strict=True)), a: float(va.mean()), b: float(vb.mean()),
                     "difference": v.estimate.format(), "low": v.estimate.low,
                     "high": v.estimate.high, "n": v.estimate.n, "verdict": v.label})
    return pd.DataFrame(rows)
