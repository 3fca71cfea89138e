"""Balance point: logistic fit, delta and cluster-bootstrap intervals, isotonic check, statuses.

Simulation counts (fixed seeds, so the observed coverages are reproducible), each data set 400
items in 80 groups drawn from P(text) = expit(-4 (dH - 0.3) + u_group), dH ~ U(-1.5, 1.5):
* delta interval alone: 2,000 data sets without a group effect (observed coverage 0.9505);
* both intervals: 1,000 data sets x 200 bootstrap resamples without a group effect (delta 0.938,
  bootstrap 0.934), and 500 data sets x 200 resamples with u_group ~ N(0, 0.5^2) (delta 0.952,
  bootstrap 0.958).
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from modality_conflict.metrics import BalancePointResult, balance_point, isotonic_crossing
from modality_conflict.metrics import _logistic as logistic

PLANTED_BALANCE = 0.3
PLANTED_SLOPE = -4.0


def _draw(
    rng: np.random.Generator, *, n_groups: int = 80, per_group: int = 5, group_sd: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    groups = np.repeat(np.arange(n_groups), per_group)
    dh = rng.uniform(-1.5, 1.5, groups.size)
    effect = rng.normal(0.0, group_sd, n_groups)[groups] if group_sd else 0.0
    p_text = 1.0 / (1.0 + np.exp(-(PLANTED_SLOPE * (dh - PLANTED_BALANCE) + effect)))
    return dh, rng.random(groups.size) < p_text, groups


def _two_point_data() -> tuple[np.ndarray, np.ndarray]:
    # 4 of 5 text-following at dH = -1, 2 of 5 at dH = +1: the logistic fit is saturated.
    dh = np.repeat([-1.0, 1.0], 5)
    follow = np.array([1, 1, 1, 1, 0, 1, 1, 0, 0, 0])
    return dh, follow


def test_saturated_two_point_fit_matches_hand_computation() -> None:
    dh, follow = _two_point_data()
    result = balance_point(dh, follow, n_resamples=0, covariance="model")
    logit_a, logit_b = math.log(4.0), math.log(2.0 / 3.0)  # logit(0.8), logit(0.4)
    slope = (logit_b - logit_a) / 2.0
    intercept = (logit_a + logit_b) / 2.0
    assert result.status == "ok"
    assert result.slope == pytest.approx(slope, rel=1e-9)
    assert result.intercept == pytest.approx(intercept, rel=1e-9)
    assert result.estimate == pytest.approx(-intercept / slope, rel=1e-9)
    assert result.estimate == pytest.approx(0.547411, abs=1e-6)
    # Var(logit p_hat) = 1 / (n p (1 - p)) at each point; b0, b1 are half-sums/differences of the logits.
    var_a, var_b = 1 / (5 * 0.8 * 0.2), 1 / (5 * 0.4 * 0.6)
    cov = np.array([[var_a + var_b, var_b - var_a], [var_b - var_a, var_a + var_b]]) / 4.0
    np.testing.assert_allclose(result.covariance, cov, rtol=1e-7)
    gradient = np.array([-1 / slope, intercept / slope**2])
    se = math.sqrt(gradient @ cov @ gradient)
    assert result.standard_error == pytest.approx(se, rel=1e-7)
    interval = result.confidence_interval(0.9)
    low, high, method = interval
    assert (method, interval.reason) == ("delta", None)
    assert low == pytest.approx(result.estimate - 1.6448536269514722 * se, rel=1e-7)
    assert high == pytest.approx(result.estimate + 1.6448536269514722 * se, rel=1e-7)


def test_fit_and_cluster_covariance_match_statsmodels() -> None:
    sm = pytest.importorskip("statsmodels.api")
    dh, follow, groups = _draw(np.random.default_rng(7))
    result = balance_point(dh, follow, groups=groups, n_resamples=0)
    exog = sm.add_constant(dh)
    reference = sm.GLM(follow.astype(float), exog, family=sm.families.Binomial()).fit(
        cov_type="cluster", cov_kwds={"groups": groups}, tol=1e-13
    )
    np.testing.assert_allclose([result.intercept, result.slope], reference.params, rtol=1e-8)
    np.testing.assert_allclose(result.covariance, reference.cov_params(), rtol=1e-7)
    assert result.covariance_type == "cluster"
    model = balance_point(dh, follow, groups=groups, n_resamples=0, covariance="model")
    plain = sm.GLM(follow.astype(float), exog, family=sm.families.Binomial()).fit(tol=1e-13)
    np.testing.assert_allclose(model.covariance, plain.cov_params(), rtol=1e-7)


def test_isotonic_crossing_hand_values() -> None:
    # PAV pools the violating pair (0 then 1) into a block at exactly 0.5 centred at dH 0.25.
    pooled = isotonic_crossing([-1, -0.5, 0, 0.5, 1], [1, 1, 0, 1, 0])
    assert (pooled.status, pooled.estimate) == ("ok", pytest.approx(0.25))
    # Blocks: value 1 at mean dH -0.5, value 0 at mean dH 0.75; halfway between them is 0.125.
    step = isotonic_crossing([-1, -0.5, 0, 0.5, 1], [1, 1, 1, 0, 0])
    assert step.estimate == pytest.approx(0.125)
    # Ties are pooled before fitting: two items at dH 0 (one of each) form a 0.5 level.
    tied = isotonic_crossing([-1, 0, 0, 1], [1, 1, 0, 0])
    assert tied.estimate == pytest.approx(0.0)
    below = isotonic_crossing([-1, 0, 1], [0, 0, 0])
    assert below.estimate is None and below.status == "censored_below"
    above = isotonic_crossing([-1, 0, 1], [1, 1, 1])
    assert above.status == "censored_above" and "above 0.5" in above.reason
    assert isotonic_crossing([], []).status == "undefined"


def test_censored_results_report_a_bound_not_a_number() -> None:
    rng = np.random.default_rng(3)
    dh = rng.uniform(-0.5, 0.5, 300)
    # Planted balance at 2.0, far right of the data: P(text) > 0.5 everywhere observed.
    follow = rng.random(dh.size) < 1 / (1 + np.exp(2.0 * (dh - 2.0)))
    result = balance_point(dh, follow, n_resamples=50, rng=0)
    assert result.status == "censored_above"
    assert result.estimate is None
    assert result.bound == pytest.approx(dh.max())
    assert result.slope < 0
    assert "above" in result.reason
    for method in ("delta", "bootstrap"):
        interval = result.confidence_interval(method=method)
        assert interval.low is None and interval.high is None and "censored_above" in interval.reason
    mirrored = balance_point(-dh, ~follow, n_resamples=0)
    assert mirrored.status == "censored_below"
    assert mirrored.bound == pytest.approx(-dh.max())


def test_positive_slope_is_a_law_violation() -> None:
    rng = np.random.default_rng(4)
    dh = rng.uniform(-1, 1, 300)
    follow = rng.random(dh.size) < 1 / (1 + np.exp(-3.0 * dh))
    result = balance_point(dh, follow, n_resamples=0)
    assert result.status == "law_violated"
    assert result.estimate is None and result.slope > 0
    assert "not negative" in result.reason


@pytest.mark.parametrize(
    ("dh", "follow", "message"),
    [
        ([], [], "no conflicts"),
        ([0.1, 0.2, 0.3], [1, 0, 1], r"only 3 text- or vision-following conflicts \(< min_conflicts=10\)"),
        ([0.4] * 12, [1, 0] * 6, "share one dH value"),
    ],
)
def test_degenerate_data_give_undefined_with_reason(dh: list[float], follow: list[int], message: str) -> None:
    result = balance_point(dh, follow, n_resamples=20, rng=0)
    assert result.status == "undefined"
    assert result.estimate is None and result.intercept is None
    assert result.reason is not None
    assert re.search(message, result.reason), result.reason
    assert result.confidence_interval().low is None


@pytest.mark.parametrize(
    ("follow", "status", "bound", "phrase"),
    [
        ([0] * 12, "censored_below", -1.0, "below the smallest dH, -1"),
        ([1] * 12, "censored_above", 1.0, "above the largest dH, 1"),
    ],
)
def test_one_modality_only_gives_a_bound_not_undefined(
    follow: list[int], status: str, bound: float, phrase: str
) -> None:
    # Every conflict followed one modality: no logistic fit exists, but the empirical curve is 0 (or 1)
    # at every observed dH, so the crossing lies beyond the data on the side the isotonic fit also says.
    dh = np.linspace(-1, 1, 12)
    result = balance_point(dh, follow, n_resamples=20, rng=0)
    assert result.status == status == result.isotonic_status
    assert result.bound == bound and result.estimate is None and result.intercept is None
    assert phrase in result.reason and "no logistic fit exists" in result.reason
    assert result.confidence_interval().low is None


def test_perfect_separation_brackets_the_balance_point() -> None:
    dh = np.linspace(-1, 1, 12)
    result = balance_point(dh, [1] * 5 + [0] * 7, n_resamples=20, rng=0)
    assert result.status == "separated" and result.estimate is None and result.bound is None
    assert result.bracket == (pytest.approx(dh[4]), pytest.approx(dh[5]))
    assert "perfectly separated" in result.reason and "lies between" in result.reason
    # The other way round, P(follow text) rises with dH: against the law, no bracket.
    against = balance_point(dh, [0] * 6 + [1] * 6, n_resamples=20, rng=0)
    assert against.status == "law_violated" and against.bracket is None
    assert "rises with dH" in against.reason


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match=r"dh has a non-finite value nan at index 1"):
        balance_point([0.1, np.nan], [1, 0])
    with pytest.raises(ValueError, match="0/1 or boolean, got 2.0 at index 0"):
        balance_point([0.1, 0.2], [2, 0])
    with pytest.raises(ValueError, match="entries"):
        balance_point([0.1, 0.2], [1])
    with pytest.raises(ValueError, match="groups must be"):
        balance_point([0.1, 0.2], [1, 0], groups=[1])
    with pytest.raises(ValueError, match="n_resamples"):
        balance_point([0.1, 0.2], [1, 0], n_resamples=-1)
    with pytest.raises(ValueError, match="confidence_level"):
        balance_point(*_two_point_data(), n_resamples=0).confidence_interval(1.5)


def test_order_independence_including_the_bootstrap() -> None:
    rng = np.random.default_rng(11)
    dh, follow, groups = _draw(rng)
    dh[:40] = np.round(dh[:40], 1)  # ties in dH as well
    first = balance_point(dh, follow, groups=groups, n_resamples=300, rng=5)
    order = rng.permutation(dh.size)
    # Group labels are renamed too: only the partition matters.
    second = balance_point(dh[order], follow[order], groups=groups[order] * 7 + 3, n_resamples=300, rng=5)
    assert first == second
    for method in ("delta", "bootstrap"):
        assert first.confidence_interval(method=method) == second.confidence_interval(method=method)
    np.testing.assert_array_equal(first.bootstrap_replicates(), second.bootstrap_replicates())


def test_binned_bootstrap_agrees_with_item_level_bootstrap() -> None:
    rng = np.random.default_rng(12)
    dh, follow, groups = _draw(rng, n_groups=300, per_group=40, group_sd=0.3)
    data = logistic.prepare(dh, follow, groups)
    fit = logistic.fit_logistic(data, n_resamples=0, rng=None, min_conflicts=10)
    items, ok_items = logistic.bootstrap_coefficients(
        data, fit.coef, 60, np.random.default_rng(1), method="items"
    )
    binned, ok_binned = logistic.bootstrap_coefficients(
        data, fit.coef, 60, np.random.default_rng(1), method="binned"
    )
    assert ok_items.all() and ok_binned.all()
    spread = items.std(axis=0)
    # Agreement to a tiny fraction of the bootstrap standard error (about 1e-9 observed).
    assert np.max(np.abs(binned - items) / spread) < 1e-7


def test_binned_bootstrap_refits_resamples_outside_the_series_range(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(13)
    dh, follow, groups = _draw(rng, n_groups=100, per_group=30)
    data = logistic.prepare(dh, follow, groups)
    fit = logistic.fit_logistic(data, n_resamples=0, rng=None, min_conflicts=10)
    items, _ = logistic.bootstrap_coefficients(data, fit.coef, 20, np.random.default_rng(2), method="items")
    # With a zero step allowance every resample falls back to the item-level fit.
    monkeypatch.setattr(logistic, "_MAX_STEP", 0.0)
    binned, ok = logistic.bootstrap_coefficients(
        data, fit.coef, 20, np.random.default_rng(2), method="binned"
    )
    assert ok.all()
    np.testing.assert_array_equal(binned, items)


def test_item_bootstrap_in_chunks_with_sparse_sums(monkeypatch: pytest.MonkeyPatch) -> None:
    # Without groups every item is its own cluster; a small memory budget forces chunked resampling
    # and sparse per-(item, bin) sums. The answer must not change.
    rng = np.random.default_rng(14)
    dh, follow, _ = _draw(rng, n_groups=3000, per_group=1)
    data = logistic.prepare(dh, follow, None)
    fit = logistic.fit_logistic(data, n_resamples=0, rng=None, min_conflicts=10)
    items, _ = logistic.bootstrap_coefficients(data, fit.coef, 40, np.random.default_rng(3), method="items")
    monkeypatch.setattr(logistic, "_CHUNK_CELLS", 20_000)
    binned, ok = logistic.bootstrap_coefficients(
        data, fit.coef, 40, np.random.default_rng(3), method="binned"
    )
    assert ok.all()
    np.testing.assert_allclose(binned, items, rtol=0, atol=1e-8)


def test_bootstrap_flags_separated_resamples() -> None:
    # Two groups only: half of all resamples draw one group twice and are separated.
    dh = np.array([-1.0, -0.5, 0.0, 0.5, -0.2, 0.3, 0.8, 1.0, 0.1, -0.8, 0.6, -0.3])
    follow = np.array([1, 1, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1])
    groups = np.array([0] * 6 + [1] * 6)
    result = balance_point(dh, follow, groups=groups, n_resamples=200, rng=2)
    assert result.status == "ok"
    assert result.n_failed_resamples > 0
    interval = result.confidence_interval(method="bootstrap")
    assert interval.low is None and "have no balance point" in interval.reason


def test_single_group_has_no_bootstrap_interval() -> None:
    dh, follow, _ = _draw(np.random.default_rng(15))
    result = balance_point(dh, follow, groups=np.zeros(dh.size), n_resamples=50, rng=0)
    assert result.status == "ok" and result.n_groups == 1
    assert result.covariance_type == "model"  # a one-cluster sandwich is not defined
    interval = result.confidence_interval(method="bootstrap")
    assert interval.low is None and "at least two item groups" in interval.reason
    assert result.confidence_interval(method="delta").low is not None


def test_recovers_planted_balance_point_in_large_sample() -> None:
    dh, follow, groups = _draw(np.random.default_rng(21), n_groups=2000, per_group=25, group_sd=0.3)
    result = balance_point(dh, follow, groups=groups, n_resamples=200, rng=1)
    assert result.status == "ok"
    assert result.estimate == pytest.approx(PLANTED_BALANCE, abs=0.03)
    assert result.isotonic_estimate == pytest.approx(PLANTED_BALANCE, abs=0.06)
    low, high, _ = result.confidence_interval(method="bootstrap")
    assert low < PLANTED_BALANCE < high
    assert result.n_failed_resamples == 0


def test_delta_interval_coverage_in_simulation() -> None:
    rng = np.random.default_rng(2024)
    repetitions, covered = 2000, 0
    for _ in range(repetitions):
        dh, follow, groups = _draw(rng)
        result = balance_point(dh, follow, groups=groups, n_resamples=0)
        assert result.status == "ok"
        low, high, _ = result.confidence_interval(0.95, method="delta")
        covered += low <= PLANTED_BALANCE <= high
    coverage = covered / repetitions
    assert 0.90 <= coverage <= 0.99, coverage


def _coverage(seed: int, repetitions: int, *, group_sd: float, n_resamples: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    covered = {"delta": 0, "bootstrap": 0}
    for _ in range(repetitions):
        dh, follow, groups = _draw(rng, group_sd=group_sd)
        result = balance_point(dh, follow, groups=groups, n_resamples=n_resamples, rng=rng)
        for method in covered:
            interval = result.confidence_interval(0.95, method=method)
            assert interval.reason is None
            low, high, _ = interval
            covered[method] += low <= PLANTED_BALANCE <= high
    return {method: count / repetitions for method, count in covered.items()}


def test_bootstrap_interval_coverage_in_simulation() -> None:
    coverage = _coverage(2025, 1000, group_sd=0.0, n_resamples=200)
    assert 0.90 <= coverage["bootstrap"] <= 0.99, coverage
    assert 0.90 <= coverage["delta"] <= 0.99, coverage


def test_both_intervals_cover_with_a_group_random_effect() -> None:
    # A random intercept per group (sd 0.5 on the logit scale) leaves the marginal balance point at
    # 0.3; the cluster-robust delta interval and the cluster bootstrap must still cover it.
    coverage = _coverage(2026, 500, group_sd=0.5, n_resamples=200)
    assert 0.90 <= coverage["bootstrap"] <= 0.99, coverage
    assert 0.90 <= coverage["delta"] <= 0.99, coverage


def test_result_is_frozen() -> None:
    result = balance_point(*_two_point_data(), n_resamples=0)
    assert isinstance(result, BalancePointResult)
    with pytest.raises(AttributeError):
        result.estimate = 0.0  # type: ignore[misc]
