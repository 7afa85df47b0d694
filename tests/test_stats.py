"""dml_kit.stats against hand-computed intervals, paired differences and verdict rules."""

import math

import numpy as np
import pandas as pd
import pytest

from dml_kit import stats

T_975_DF2 = 4.302652729911275   # Student t, 97.5% quantile, 2 degrees of freedom
T_975_DF3 = 3.182446305284263   # ... 3 degrees of freedom


def test_t_interval_by_hand():
    # values 1, 2, 3: mean 2, s = 1, half width t_{0.975,2} * 1 / sqrt(3)
    est = stats.mean_ci([1.0, 2.0, 3.0])
    half = T_975_DF2 / math.sqrt(3)
    assert est.method == "t" and est.n == 3
    assert est.mean == pytest.approx(2.0)
    assert (est.low, est.high) == pytest.approx((2 - half, 2 + half))
    assert str(est) == f"2.000 [{2 - half:.3f}, {2 + half:.3f}]"


def test_t_interval_uses_sample_sd_not_population_sd():
    # 0, 0, 0, 4: mean 1, sample sd 2 (ddof=1); the population sd would be sqrt(3)
    est = stats.mean_ci([0.0, 0.0, 0.0, 4.0])
    assert est.half_width == pytest.approx(T_975_DF3 * 2 / 2)


def test_percent_format():
    est = stats.Estimate(0.8625, 0.8412, 0.8801, 5)
    assert est.format(percent=True) == "86.2 [84.1, 88.0]"


def test_one_value_has_no_interval_and_no_verdict():
    est = stats.mean_ci([0.7])
    assert est.n == 1 and math.isnan(est.low) and "no interval" in str(est)
    v = stats.verdict(est)
    assert v.label == stats.UNRESOLVED and "n = 1" in v.text()


def test_constant_values_give_a_zero_width_interval():
    est = stats.mean_ci([0.5] * 4)
    assert (est.low, est.high) == (0.5, 0.5)


def test_bootstrap_from_twenty_replications_is_seeded_and_close_to_t():
    values = np.random.default_rng(1).normal(0.8, 0.05, size=40)
    a = stats.mean_ci(values)
    b = stats.mean_ci(values)
    assert a.method == "bootstrap" and a == b
    t_half = stats.t_quantile(40) * values.std(ddof=1) / math.sqrt(40)
    # the percentile bootstrap of a mean is close to the t-interval (a bit narrower)
    assert a.half_width == pytest.approx(t_half, rel=0.2)
    assert a.low < values.mean() < a.high
    assert stats.mean_ci(values[:19]).method == "t"


def test_non_finite_and_empty_input_are_refused_by_name():
    with pytest.raises(ValueError, match=r"values holds 1 non-finite.*position\(s\) \[1\]"):
        stats.mean_ci([0.5, float("nan"), 0.7])
    with pytest.raises(ValueError, match="values is empty"):
        stats.mean_ci([])
    with pytest.raises(ValueError, match="b holds 1 non-finite"):
        stats.paired_difference([1.0, 2.0], [1.0, float("inf")])


def test_paired_difference_by_hand_and_unpaired_lengths():
    # differences 0.1, 0.0, 0.1: mean 1/15, sd 0.057735
    est = stats.paired_difference([0.9, 0.8, 0.7], [0.8, 0.8, 0.6])
    half = T_975_DF2 * 0.05773502691896258 / math.sqrt(3)
    assert est.mean == pytest.approx(1 / 15)
    assert (est.low, est.high) == pytest.approx((1 / 15 - half, 1 / 15 + half))
    with pytest.raises(ValueError, match="pair up"):
        stats.paired_difference([1.0, 2.0, 3.0], [1.0, 2.0])


def test_pairing_matters():
    # a constant offset of +0.01 over very different tasks: paired it is certain,
    # the two unpaired intervals overlap almost entirely
    b = np.array([0.5, 0.9, 0.6, 0.8, 0.7])
    a = b + 0.01
    assert stats.compare(a, b).label == stats.HOLDS
    ea, eb = stats.mean_ci(a), stats.mean_ci(b)
    assert ea.low < eb.high


@pytest.mark.parametrize("low, high, label", [
    (0.01, 0.05, stats.HOLDS), (-0.05, -0.01, stats.FAILS), (-0.01, 0.05, stats.UNRESOLVED),
    (0.0, 0.05, stats.UNRESOLVED),   # touching the threshold is not above it
    (0.0, 0.0, stats.FAILS),         # exactly equal in every replication: not above
])
def test_verdict_rule(low, high, label):
    v = stats.verdict(stats.Estimate((low + high) / 2, low, high, 5))
    assert v.label == label
    assert v.resolved == (label != stats.UNRESOLVED)
    assert v.text().startswith(label)


def test_verdict_against_a_named_threshold():
    est = stats.Estimate(0.30, 0.25, 0.35, 8)
    assert stats.verdict(est, threshold=0.2).label == stats.HOLDS
    assert stats.verdict(est, threshold=0.34).label == stats.UNRESOLVED
    assert stats.verdict(est, threshold=0.4).label == stats.FAILS
    assert "(n = 8)" in stats.verdict(est, threshold=0.34).text()
    assert stats.verdict(est, 0.2).text(percent=True) == "holds: +30.0 [+25.0, +35.0] vs +20.0"


def test_verdict_text_never_prints_a_bound_as_the_threshold():
    v = stats.verdict(stats.Estimate(0.005, 0.0003, 0.0094, 8))
    assert v.label == stats.HOLDS
    assert v.text(percent=True) == "holds: +0.50 [+0.03, +0.94] vs +0.00"
    assert stats.verdict(stats.Estimate(0.05, 0.02, 0.08, 8)).text() == (
        "holds: +0.050 [+0.020, +0.080] vs +0.000")


def test_combine_is_all_of():
    h = stats.Verdict(stats.HOLDS, stats.Estimate(1, 0.5, 1.5, 3))
    f = stats.Verdict(stats.FAILS, stats.Estimate(-1, -1.5, -0.5, 3))
    u = stats.Verdict(stats.UNRESOLVED, stats.Estimate(0, -1, 1, 3))
    assert stats.combine([h, h]) == stats.HOLDS
    assert stats.combine([h, u]) == stats.UNRESOLVED
    assert stats.combine([h, u, f]) == stats.FAILS
    with pytest.raises(ValueError, match="empty"):
        stats.combine([])


def test_error_reduction_by_hand():
    # condition 1: err_B 0.2, err_A 0.1 -> 0.5; condition 2: equal -> 0; mean 0.25
    er = stats.error_reduction_ci({(5, 5): ([0.9, 0.9], [0.8, 0.8]),
                                   (5, 10): ([0.5, 0.6], [0.5, 0.6])})
    assert er.per_condition == pytest.approx([0.5, 0.0])
    assert er.estimate.mean == pytest.approx(0.25) and er.conditions == 2
    # every resample of identical replications gives the same value
    assert (er.estimate.low, er.estimate.high) == pytest.approx((0.25, 0.25))


def test_error_reduction_uses_condition_means_and_pairs_the_resample():
    # per replication A is exactly B + 0.05; B's errors 0.5 and 0.3 (mean 0.4) -> ER 0.125
    b = [0.5, 0.7]
    a = [0.55, 0.75]
    er = stats.error_reduction_ci([(a, b)], n_boot=2000)
    assert er.estimate.mean == pytest.approx(0.05 / 0.4)
    # resamples: both replications 1 -> 0.05/0.5, both 2 -> 0.05/0.3; paired, never A of
    # one replication against B of another
    assert er.estimate.low == pytest.approx(0.1, abs=1e-9)
    assert er.estimate.high == pytest.approx(0.05 / 0.3, abs=1e-9)


def test_error_reduction_skips_perfect_baselines_and_checks_range():
    er = stats.error_reduction_ci([([1.0, 1.0], [1.0, 1.0]), ([0.9, 0.9], [0.8, 0.8])])
    assert er.conditions == 1 and er.estimate.mean == pytest.approx(0.5)
    with pytest.raises(ValueError, match="no error in any condition"):
        stats.error_reduction_ci([([1.0], [1.0])])
    with pytest.raises(ValueError, match="between 0 and 1"):
        stats.error_reduction_ci([([1.2], [0.5])])
    with pytest.raises(ValueError, match=r"pairs\[0\] A holds 1 non-finite"):
        stats.error_reduction_ci([([float("nan")], [0.5])])


def test_spearman_by_hand():
    assert stats.spearman([1, 2, 3, 4], [0.9, 0.8, 0.7, 0.1]) == pytest.approx(-1.0)
    # ranks x: 1 2 3 4, y: 1 3 2 4 -> 1 - 6 * 2 / (4 * 15) = 0.8
    assert stats.spearman([1, 2, 3, 4], [10, 30, 20, 40]) == pytest.approx(0.8)
    with pytest.raises(ValueError, match="at least 3"):
        stats.spearman([1, 2], [1, 2])


def _frame():
    rows = []
    for seed, (a, b) in enumerate([(0.9, 0.8), (0.8, 0.7), (0.95, 0.8), (0.9, 0.85)]):
        rows += [{"method": "a", "seed": seed, "k": 1, "accuracy": a},
                 {"method": "b", "seed": seed, "k": 1, "accuracy": b},
                 {"method": "a", "seed": seed, "k": 5, "accuracy": 0.9},
                 {"method": "b", "seed": seed, "k": 5, "accuracy": 0.9 + 0.01 * seed - 0.015}]
    return pd.DataFrame(rows)


def test_paired_table_by_k():
    table = stats.paired_table(_frame(), "a", "b", by=("k",))
    k1 = table.set_index("k").loc[1]
    # differences 0.1, 0.1, 0.15, 0.05: mean 0.1, sd 0.0408248
    half = T_975_DF3 * 0.04082482904638631 / 2
    assert k1["a"] == pytest.approx(0.8875) and k1["n"] == 4
    assert (k1["low"], k1["high"]) == pytest.approx((0.1 - half, 0.1 + half))
    assert k1["verdict"] == stats.HOLDS
    assert table.set_index("k").loc[5, "verdict"] == stats.UNRESOLVED


def test_paired_values_align_replications_and_name_missing_methods():
    frame = _frame().sample(frac=1.0, random_state=0)       # shuffled rows
    a, b = stats.paired_values(frame[frame["k"] == 1], "a", "b")
    assert a.tolist() == [0.9, 0.8, 0.95, 0.9] and b.tolist() == [0.8, 0.7, 0.8, 0.85]
    with pytest.raises(ValueError, match="no rows with method == 'c'"):
        stats.paired_values(frame, "c", "b")
    with pytest.raises(ValueError, match="replication columns"):
        stats.paired_values(frame.drop(columns="seed"), "a", "b")


def test_summarise():
    table = stats.summarise(_frame()[lambda f: f["k"] == 1], by=("method",))
    row = table.set_index("method").loc["a"]
    assert row["mean"] == pytest.approx(0.8875) and row["n"] == 4
    assert row["estimate"] == stats.Estimate(row["mean"], row["low"], row["high"], 4).format()


def test_proportion_ci_is_wilsons_interval():
    """Hand-computed: 34 errors in 400 -> centre 0.088948, half-width 0.027486;
    0 of 10 -> [0, 2 * 0.13877] (Wilson's interval never leaves [0, 1])."""
    e = stats.proportion_ci(34, 400)
    assert e.mean == 0.085 and e.n == 400 and e.method == "wilson"
    assert e.low == pytest.approx(0.088948 - 0.027486, abs=2e-5)
    assert e.high == pytest.approx(0.088948 + 0.027486, abs=2e-5)
    zero = stats.proportion_ci(0, 10)
    assert zero.low == 0.0 and zero.high == pytest.approx(0.27754, abs=2e-4)
    with pytest.raises(ValueError, match="successes"):
        stats.proportion_ci(11, 10)
    with pytest.raises(ValueError, match="trials"):
        stats.proportion_ci(1, 0)


def test_condition_mean_ci_by_hand_with_unequal_replications():
    # c1 holds replications a, b; c2 holds a, b, c.  mean = (2 + 4) / 2 = 3
    # Var = (1/4) [2/(2*2)*2 + 3/(3*3)*4 + 2 * 2/(2*3)*cov((1,3),(2,4)) = 2 * 2/6 * 2]
    #     = (1/4) (1 + 4/3 + 4/3) = 11/12; df = min n - 1 = 1
    est = stats.condition_mean_ci({"c1": {"a": 1.0, "b": 3.0},
                                   "c2": {"a": 2.0, "b": 4.0, "c": 6.0}})
    half = stats.t_quantile(2) * math.sqrt(11 / 12)
    assert est.mean == pytest.approx(3.0) and est.n == 2 and est.method == "t"
    assert (est.low, est.high) == pytest.approx((3 - half, 3 + half))
    # uncorrelated conditions (no shared replications) add their variances only
    est = stats.condition_mean_ci({"c1": {"a": 1.0, "b": 3.0}, "c2": {"x": 2.0, "y": 6.0}})
    half = stats.t_quantile(2) * math.sqrt((2 / 2 + 8 / 2) / 4)
    assert (est.mean, est.low, est.high) == pytest.approx((3.0, 3 - half, 3 + half))


def test_condition_mean_ci_equals_mean_ci_of_row_means_when_replications_match():
    rng = np.random.default_rng(3)
    values = rng.normal(size=(3, 7))
    per = {c: {(r // 3, r % 3): values[c, r] for r in range(7)} for c in range(3)}
    assert stats.condition_mean_ci(per) == stats.mean_ci(values.mean(axis=0))
    # more replications in a cheap condition narrow the interval of the pooled mean
    base = stats.condition_mean_ci({0: per[0], 1: per[1]})
    more = dict(per[0]) | {(9, r): v for r, v in enumerate(rng.normal(size=20))}
    assert stats.condition_mean_ci({0: more, 1: per[1]}).half_width < base.half_width * 1.05
    with pytest.raises(ValueError, match=r"per_condition\[1\] holds no replication"):
        stats.condition_mean_ci({0: per[0], 1: {}})
    with pytest.raises(ValueError, match="per_condition is empty"):
        stats.condition_mean_ci({})
    with pytest.raises(ValueError, match="non-finite"):
        stats.condition_mean_ci({0: {"a": math.nan, "b": 1.0}})


# ---- bounded metrics: the shown interval is clipped to the range, the verdict is not ----
def test_a_bounded_interval_is_shown_clipped_and_flagged_but_kept_raw():
    values = [0.2, 0.9, 1.0]                  # mean 0.7, s = 0.436: t-interval -0.38 .. 1.78
    raw = stats.mean_ci(values)
    est = stats.mean_ci(values, bounds=(0, 1))
    assert (est.low, est.high) == (raw.low, raw.high) and raw.low < 0 and raw.high > 1
    assert est.clipped and not raw.clipped
    assert (est.shown_low, est.shown_high) == (0.0, 1.0)
    assert str(est) == "0.700 [0.000, 1.000] (clipped to [0, 1], n = 3)"
    assert est.format(percent=True) == "70.0 [0.0, 100.0] (clipped to [0, 100], n = 3)"
    assert est.format(note=False) == "0.700 [0.000, 1.000]"
    # an interval inside the range is shown as it is, with no note
    inside = stats.mean_ci([0.80, 0.82, 0.84], bounds=(0, 1))
    assert not inside.clipped and str(inside) == str(stats.mean_ci([0.80, 0.82, 0.84]))


def test_clipping_never_changes_a_verdict():
    # verdicts read the raw interval: against a threshold below the range (-0.1) the
    # clipped [0, 1] would claim "holds" where the t-interval (-0.38 .. 1.78) cannot tell
    for values, threshold in (([0.2, 0.9, 1.0], 0.5), ([0.2, 0.9, 1.0], 0.0),
                              ([0.2, 0.9, 1.0], -0.1), ([0.0, 0.1, 0.9], 0.05)):
        raw, clipped = stats.mean_ci(values), stats.mean_ci(values, bounds=(0, 1))
        assert stats.verdict(clipped, threshold).label == stats.verdict(raw, threshold).label
        assert stats.verdict(clipped, threshold).label == stats.UNRESOLVED
    v = stats.verdict(stats.mean_ci([0.2, 0.9, 1.0], bounds=(0, 1)), 0.0)
    assert "[+0.000, +1.000]" in v.text() and v.text().endswith("(clipped to [0, 1], n = 3)")


def test_differences_of_bounded_metrics_clip_to_minus_one_one():
    a, b = [0.95, 0.10], [0.05, 0.90]        # differences +0.9, -0.8: t-interval -10.7 .. 10.8
    v = stats.compare(a, b, bounds=(0, 1))
    assert v.estimate.bounds == (-1.0, 1.0) and v.estimate.low < -1
    assert (v.estimate.shown_low, v.estimate.shown_high) == (-1.0, 1.0)
    assert v.label == stats.compare(a, b).label == stats.UNRESOLVED
    assert stats.difference_bounds((0, 1)) == (-1.0, 1.0)
    table = stats.paired_table(pd.DataFrame({
        "method": ["A", "B"] * 2, "k": [1] * 4, "seed": [0, 0, 1, 1],
        "accuracy": [0.95, 0.05, 0.10, 0.90]}), "A", "B")
    assert table.loc[0, "difference"].startswith(
        "0.050 [-1.000, 1.000] (clipped to [-1, 1], n = 2)")
    assert table.loc[0, "low"] < -1                  # the numbers stay the raw interval


def test_summarise_clips_accuracy_by_its_name_and_leaves_unbounded_metrics_alone():
    frame = pd.DataFrame({"method": ["m", "m"], "seed": [0, 1], "accuracy": [0.2, 0.95],
                          "fd": [0.2, 0.95]})
    acc = stats.summarise(frame)
    assert acc.loc[0, "estimate"].startswith("0.575 [0.000, 1.000] (clipped to [0, 1], n = 2)")
    assert bool(acc.loc[0, "clipped"]) and acc.loc[0, "low"] < 0
    fd = stats.summarise(frame, value="fd")           # a Fréchet distance: no range
    assert not fd.loc[0, "clipped"] and fd.loc[0, "estimate"].startswith("0.575 [-")
    opt_out = stats.summarise(frame, bounds=(-math.inf, math.inf))
    assert not opt_out.loc[0, "clipped"]


def test_metric_bounds_know_the_bounded_metrics_only():
    for name in ("accuracy", "query accuracy", "Recall@1", "recall@4", "map@r", "nmi"):
        assert stats.metric_bounds(name) == (0.0, 1.0), name
    for name in ("norm_mean", "norm_cv", "cv"):
        assert stats.metric_bounds(name) == (0.0, math.inf), name
    for name in ("frechet_distance", "loss", None):
        assert stats.metric_bounds(name) is None, name
    # a CV of 0.009 [-0.008, 0.026] (06's SEC table, two seeds) is shown from 0
    cv = stats.mean_ci([0.003, 0.015], bounds=stats.metric_bounds("norm_cv"))
    assert cv.low < 0 and cv.format(note=False) == f"0.009 [0.000, {cv.high:.3f}]"


def test_bad_bounds_and_values_outside_them_are_refused_by_name():
    with pytest.raises(ValueError, match=r"bounds must be \(lowest, highest\)"):
        stats.mean_ci([0.5, 0.6], bounds=(1, 0))
    with pytest.raises(ValueError, match="bounds must be a pair"):
        stats.mean_ci([0.5, 0.6], bounds="0..1")
    with pytest.raises(ValueError, match=r"values holds 1 value\(s\) outside its range "
                                         r"bounds=\[0, 1\] at position\(s\) \[1\]"):
        stats.mean_ci([0.5, 1.2], bounds=(0, 1))
    with pytest.raises(ValueError, match=r"^b holds"):
        stats.paired_difference([0.5, 0.6], [0.5, -0.1], bounds=(0, 1))


# ---- display and decision details (survivors of a mutation run of dml_kit/stats.py) ----
def test_note_is_empty_unless_clipped_and_names_the_range_in_the_estimate_s_units():
    inside = stats.mean_ci([0.4, 0.5, 0.6], bounds=(0, 1))
    assert not inside.clipped and inside.note() == "" and inside.note(True) == ""
    assert stats.mean_ci([0.4, 0.5, 0.6]).note() == ""                 # no range at all
    wide = stats.mean_ci([0.2, 0.9, 1.0], bounds=(0, 1))
    assert wide.note() == "clipped to [0, 1], n = 3"
    assert wide.note(percent=True) == "clipped to [0, 100], n = 3"
    # an open upper end (norms, CV) prints as inf, not as 1 / inf
    cv = stats.mean_ci([0.003, 0.015], bounds=stats.metric_bounds("norm_cv"))
    assert cv.note() == "clipped to [0, inf], n = 2"


def test_format_of_one_replication_and_of_percent_digits():
    one = stats.mean_ci([0.25], bounds=(0, 1))
    assert one.format() == "0.250 [no interval: n = 1]"
    assert one.format(percent=True) == "25.0 [no interval: n = 1]"
    est = stats.Estimate(0.5, 0.4, 0.6, 5)
    assert est.format(digits=2, percent=True) == "50 [40, 60]"     # digits - 2 = 0 decimals


def test_with_bounds_sets_checks_and_removes_the_range():
    est = stats.mean_ci([0.2, 0.9, 1.0])
    bounded = est.with_bounds((0, 1))
    assert bounded.bounds == (0.0, 1.0) and bounded.clipped and not est.clipped
    assert (bounded.low, bounded.high) == (est.low, est.high)
    assert bounded.with_bounds(None).bounds is None
    with pytest.raises(ValueError, match="bounds must be"):
        est.with_bounds((1, 0))


def test_difference_bounds_and_degenerate_ranges():
    assert stats.difference_bounds((1, 3)) == (-2.0, 2.0)
    assert stats.difference_bounds(None) is None
    with pytest.raises(ValueError, match="lowest < highest"):
        stats.check_bounds((1, 1))


def test_verdict_keeps_its_threshold_and_an_upper_end_at_the_threshold_is_unresolved():
    at = stats.Estimate(0.4, 0.3, 0.5, 4)          # the interval ends exactly at 0.5
    assert stats.verdict(at, 0.5).label == stats.UNRESOLVED
    for est, label in ((stats.Estimate(0.9, 0.8, 1.0, 4), stats.HOLDS),
                       (stats.Estimate(0.1, 0.0, 0.2, 4), stats.FAILS), (at, stats.UNRESOLVED),
                       (stats.Estimate(0.4, math.nan, math.nan, 1), stats.UNRESOLVED)):
        v = stats.verdict(est, 0.5)
        assert (v.label, v.threshold) == (label, 0.5)
        assert v.text().endswith("vs +0.500")
    # compare passes its threshold on: +0.3 over B is above 0 but below 0.5
    a, b = [0.8, 0.9, 0.85, 0.82], [0.5, 0.6, 0.55, 0.52]
    assert stats.compare(a, b).label == stats.HOLDS
    assert stats.compare(a, b, 0.5).label == stats.FAILS


def test_verdict_text_of_one_replication_and_of_a_clipped_percentage():
    one = stats.verdict(stats.mean_ci([0.3]), 0.0)
    assert one.text() == ("not resolved at this sample size (n = 1): +0.300 (one replication)"
                          " vs +0.000")
    assert one.text(percent=True).startswith(
        "not resolved at this sample size (n = 1): +30.0 (one replication)")
    wide = stats.verdict(stats.mean_ci([0.2, 0.9, 1.0], bounds=(0, 1)), 0.0)
    assert wide.text(percent=True) == ("not resolved at this sample size (n = 3): +70.0 "
                                       "[+0.0, +100.0] vs +0.0 (clipped to [0, 100], n = 3)")


def test_mean_ci_passes_level_method_and_range_through_every_branch():
    values = [0.2, 0.4, 0.5, 0.7]
    narrow, wide = stats.mean_ci(values, level=0.9), stats.mean_ci(values)
    assert narrow.level == 0.9 and narrow.half_width < wide.half_width
    one = stats.mean_ci([0.5], level=0.9, bounds=(0, 1))
    assert (one.method, one.level, one.bounds, one.n) == ("none", 0.9, (0.0, 1.0), 1)
    twenty = [0.5 + 0.01 * i for i in range(20)]            # from 20 on: the bootstrap
    boot = stats.mean_ci(twenty, level=0.9, bounds=(0, 1))
    assert (boot.method, boot.level, boot.bounds, boot.n) == ("bootstrap", 0.9, (0.0, 1.0), 20)
    assert boot.mean == pytest.approx(np.mean(twenty))
    assert stats.mean_ci(twenty[:19]).method == "t"
    assert (boot.low, boot.high) == (stats.mean_ci(twenty, level=0.9, seed=0).low,
                                     stats.mean_ci(twenty, level=0.9, seed=0).high)
    # every replication can be drawn, the first included: one outlier at index 0
    outlier = stats.mean_ci([100.0] + [0.0] * 19)
    assert outlier.high > 0.0


def test_condition_mean_ci_refuses_a_value_outside_the_range_also_with_equal_replications():
    """1.2 and 0.2 average to 0.7: a check of the averages alone let the 1.2 through."""
    equal = {"k=1": {0: 1.2, 1: 0.5}, "k=5": {0: 0.2, 1: 0.5}}
    with pytest.raises(ValueError, match=r"per_condition\['k=1'\] holds 1 value\(s\) outside"):
        stats.condition_mean_ci(equal, bounds=(0, 1))
    est = stats.condition_mean_ci({"a": {0: 0.2, 1: 0.5}, "b": {0: 0.4, 1: 0.9}},
                                  level=0.9, bounds=(0, 1))
    assert (est.level, est.bounds, est.n) == (0.9, (0.0, 1.0), 2)


def test_condition_mean_ci_with_unequal_replications_matches_a_hand_computation():
    """c1 = 0.5, 0.7, 0.9 (replications 0-2), c2 = 0.4, 0.8 (0-1): m = (0.7 + 0.6) / 2;
    s_11 = 0.04, s_22 = 0.08, s_12 = 0.04 over replications 0, 1; Var = (3/9 * 0.04 +
    2/4 * 0.08 + 2 * 2/6 * 0.04) / 4 = 0.02; t with 1 degree of freedom."""
    est = stats.condition_mean_ci({"c1": {0: 0.5, 1: 0.7, 2: 0.9}, "c2": {0: 0.4, 1: 0.8}})
    half = 12.706204736174696 * 0.02 ** 0.5
    assert (est.mean, est.n, est.method) == (pytest.approx(0.65), 2, "t")
    assert (est.low, est.high) == pytest.approx((0.65 - half, 0.65 + half))
    single = stats.condition_mean_ci({"a": {0: 0.5}, "b": {0: 0.7, 1: 0.9}}, level=0.9,
                                     bounds=(0, 1))
    assert (single.mean, single.n, single.method, single.level, single.bounds) == (
        pytest.approx(0.65), 1, "none", 0.9, (0.0, 1.0))
    assert math.isnan(single.low) and math.isnan(single.high)


def test_error_reduction_interval_reaches_the_extreme_resamples_at_level_one():
    """One condition, three replications: the 27 resamples give the reductions listed by
    hand below; 4,000 draws include the two extremes, so level 1 spans exactly them."""
    import itertools

    a, b = np.array([0.9, 0.5, 0.7]), np.array([0.8, 0.6, 0.5])
    values = []
    for idx in itertools.product(range(3), repeat=3):
        err_a, err_b = 1 - a[list(idx)].mean(), 1 - b[list(idx)].mean()
        values.append((err_b - err_a) / err_b)
    er = stats.error_reduction_ci([(a, b)], level=1.0)
    assert (er.estimate.low, er.estimate.high) == pytest.approx((min(values), max(values)))
    assert er.estimate.method == "bootstrap" and er.estimate.n == 3
    assert er.estimate == stats.error_reduction_ci([(a, b)], level=1.0, seed=0).estimate
    one = stats.error_reduction_ci([([0.9], [0.8])], level=0.9).estimate
    assert (one.mean, one.n, one.method, one.level) == (pytest.approx(0.5), 1, "none", 0.9)
    assert math.isnan(one.low) and math.isnan(one.high)


def test_error_reduction_accepts_the_range_s_ends_and_refuses_past_them():
    assert stats.error_reduction_ci([([0.0, 0.0], [0.0, 0.5])]).per_condition == [
        pytest.approx((0.75 - 1.0) / 0.75)]             # A at 0 is an accuracy, and allowed
    for a, b in (([0.5, 0.6], [0.5, 1.5]), ([0.5, 0.6], [-0.1, 0.5])):
        with pytest.raises(ValueError, match=r"pairs\[0\] must hold accuracies between 0 and 1"):
            stats.error_reduction_ci([(a, b)])


def _episodes(a_values, b_values, value="accuracy"):
    """Rows of two methods on replications named by an ``episode`` column (no seed)."""
    rows = [{"method": m, "k": 1, "episode": i, value: v}
            for m, values in (("A", a_values), ("B", b_values)) for i, v in enumerate(values)]
    return pd.DataFrame(rows)


def test_paired_table_passes_threshold_unit_and_bounds_on():
    frame = _episodes([0.8, 0.9, 0.85, 0.82], [0.5, 0.6, 0.55, 0.52])
    with pytest.raises(ValueError, match="none of the replication columns"):
        stats.paired_table(frame, "A", "B")
    table = stats.paired_table(frame, "A", "B", unit=["episode"])
    assert table.loc[0, "verdict"] == stats.HOLDS and table.loc[0, "n"] == 4
    assert stats.paired_table(frame, "A", "B", unit=["episode"],
                              threshold=0.5).loc[0, "verdict"] == stats.FAILS
    score = _episodes([0.8, 1.5], [0.5, 0.6], value="score")     # no range by its name
    assert stats.paired_table(score, "A", "B", value="score", unit=["episode"]).shape[0] == 1
    with pytest.raises(ValueError, match="outside its range"):
        stats.paired_table(score, "A", "B", value="score", unit=["episode"], bounds=(0, 1))


def test_summarise_keeps_the_groups_first_seen_order_and_takes_bounds_for_any_name():
    frame = _episodes([0.2, 0.9, 1.0], [0.5, 0.6, 0.55], value="score")
    frame["method"] = frame["method"].map({"A": "zeta", "B": "alpha"})
    rows = stats.summarise(frame, value="score", unit=["episode"])
    assert rows["method"].tolist() == ["zeta", "alpha"] and not rows["clipped"].any()
    clipped = stats.summarise(frame, value="score", unit=["episode"], bounds=(0, 1))
    assert clipped.loc[0, "estimate"].endswith("(clipped to [0, 1], n = 3)")


def test_paired_difference_checks_a_and_passes_options_on():
    with pytest.raises(ValueError, match=r"^a holds 1 value\(s\) outside"):
        stats.paired_difference([1.2, 0.5], [0.5, 0.5], bounds=(0, 1))
    est = stats.paired_difference([0.6, 0.7, 0.9], [0.5, 0.5, 0.6], level=0.9)
    assert est.level == 0.9 and est.mean == pytest.approx(0.2)


def test_proportion_ci_at_the_ends_of_its_range():
    for successes, trials in ((1, 1), (0, 1), (3, 3)):
        est = stats.proportion_ci(successes, trials, level=0.9)
        assert est.mean == successes / trials and 0.0 <= est.low <= est.high <= 1.0
        assert (est.method, est.level, est.bounds, est.n) == ("wilson", 0.9, (0.0, 1.0), trials)
    assert stats.proportion_ci(3, 3).high == 1.0
    assert stats.proportion_ci(0, 3).low == pytest.approx(0.0, abs=1e-12)
