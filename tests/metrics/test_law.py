"""Monotonic law statistic, binned curve and the robustness split.

Simulation count: the slope's delta interval is checked on 1,000 data sets of 400 items in 80 groups
drawn from P(text) = expit(-4 (dH - 0.3)); observed coverage of the true slope -4: 0.93.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from modality_conflict.metrics import (
    binned_curve,
    monotonic_law,
    relative_uncertainty,
    robustness_split,
    wilson_interval,
)


def _draw(rng: np.random.Generator, n: int = 400, slope: float = -4.0) -> tuple[np.ndarray, np.ndarray]:
    dh = rng.uniform(-1.5, 1.5, n)
    return dh, rng.random(n) < 1 / (1 + np.exp(-slope * (dh - 0.3)))


def test_spearman_hand_value_even_when_the_fit_is_undefined() -> None:
    # Ranks of dH 1..4 against mid-ranks (3.5, 3.5, 1.5, 1.5): rho = -4 / sqrt(5 * 4).
    law = monotonic_law([1, 2, 3, 4], [1, 1, 0, 0], min_conflicts=1)
    assert law.spearman_rho == pytest.approx(-4 / math.sqrt(20))
    assert law.status == "undefined" and "perfectly separated" in law.reason
    assert law.slope is None
    assert law.verdict() == "undefined"
    assert law.confidence_interval().low is None


def test_law_slope_matches_balance_fit_and_verdicts() -> None:
    dh, follow = _draw(np.random.default_rng(1))
    law = monotonic_law(dh, follow, n_resamples=300, rng=3, alternative="less")
    assert law.status == "ok"
    assert law.slope < 0
    assert law.spearman_rho < 0 and law.spearman_pvalue < 1e-10
    assert law.verdict() == "holds"
    assert law.verdict(method="bootstrap") == "holds"
    low, high, method = law.confidence_interval(method="bootstrap")
    assert method == "bootstrap" and low < law.slope < high
    # Reversed law: the verdict flips.
    reverse = monotonic_law(-dh, follow)
    assert reverse.verdict() == "violated"
    assert reverse.slope == pytest.approx(-law.slope, rel=1e-9)
    # A flat relation is inconclusive.
    flat = monotonic_law(dh, np.random.default_rng(2).random(dh.size) < 0.5)
    assert flat.verdict() == "inconclusive"
    constant = monotonic_law(np.zeros(20), [0, 1] * 10)
    assert constant.spearman_rho is None and constant.spearman_reason == "dH is constant"


def test_slope_delta_interval_coverage() -> None:
    rng = np.random.default_rng(99)
    repetitions, covered = 1000, 0
    groups = np.repeat(np.arange(80), 5)
    for _ in range(repetitions):
        dh, follow = _draw(rng)
        low, high, _ = monotonic_law(dh, follow, groups=groups).confidence_interval()
        covered += low <= -4.0 <= high
    assert 0.90 <= covered / repetitions <= 0.99, covered / repetitions


def test_binned_curve_hand_values_and_wilson() -> None:
    dh = [-1.0, -0.6, -0.2, 0.1, 0.5, 1.0]
    follow = [1, 1, 0, 1, 0, 0]
    curve = binned_curve(dh, follow, bins=2)
    np.testing.assert_allclose(curve.edges, [-1.0, 0.0, 1.0])
    assert curve.counts.tolist() == [3, 3]
    assert curve.n_text.tolist() == [2, 1]
    assert curve.tfr == pytest.approx((2 / 3, 1 / 3))
    expected = wilson_interval(2, 3)
    assert curve.low[0] == pytest.approx(expected.low) and curve.high[0] == pytest.approx(expected.high)
    # Explicit edges: an empty bin is None, points outside are counted, the last edge is inclusive.
    custom = binned_curve(dh, follow, bins=[-0.5, 0.0, 0.5, 0.9])
    assert custom.counts.tolist() == [1, 1, 1]
    assert custom.n_outside == 3
    empty = binned_curve(dh, follow, bins=[2.0, 3.0])
    assert empty.tfr == (None,) and empty.low == (None,)
    as_dict = custom.to_dict()
    assert as_dict["counts"] == [1, 1, 1] and len(as_dict["centres"]) == 3


def test_binned_curve_bad_input() -> None:
    with pytest.raises(ValueError, match="without data"):
        binned_curve([], [], bins=5)
    with pytest.raises(ValueError, match="strictly increasing"):
        binned_curve([0.1], [1], bins=[1.0, 0.0])
    with pytest.raises(ValueError, match="positive integer"):
        binned_curve([0.1], [1], bins=0)
    with pytest.raises(ValueError, match="non-finite value inf at index 0"):
        binned_curve([np.inf], [1])


def test_robustness_split_hand_values() -> None:
    base_t = np.array([0.25, 0.375, 0.625, 0.75])
    base_v = 1.0 - base_t
    ht, hv = np.r_[base_t, 3 * base_t], np.r_[base_v, 3 * base_v]  # totals 1 (x4) and 3 (x4)
    dh = relative_uncertainty(ht, hv)
    np.testing.assert_allclose(dh, [-1, -0.5, 0.5, 1] * 2)
    follow = [1, 1, 0, 0, 1, 0, 1, 0]
    result = robustness_split(dh, follow, ht, hv, bins=[-1.0, 0.0, 1.0], min_conflicts=1)
    assert result.median_total_entropy == 2.0
    assert result.low_curve.tfr == (1.0, 0.0) and result.high_curve.tfr == (0.5, 0.5)
    assert result.low_balance.status == "separated" and result.low_balance.bracket == (-0.5, 0.5)
    assert (result.low_balance.n, result.high_balance.n) == (4, 4)
    assert result.high_balance.slope < 0


def test_robustness_split_halves_share_edges() -> None:
    rng = np.random.default_rng(5)
    n = 4000
    ht, hv = rng.uniform(0.05, 2.0, n), rng.uniform(0.05, 2.0, n)
    dh = 2 * (ht - hv) / (ht + hv)
    total = ht + hv
    # Steeper law when total entropy is low.
    slope = np.where(total <= np.median(total), -6.0, -2.0)
    follow = rng.random(n) < 1 / (1 + np.exp(-slope * dh))
    result = robustness_split(dh, follow, ht, hv, bins=8)
    assert result.median_total_entropy == pytest.approx(np.median(total))
    np.testing.assert_array_equal(result.low_curve.edges, result.high_curve.edges)
    assert result.low_curve.counts.sum() + result.high_curve.counts.sum() == n
    assert result.low_balance.n == np.count_nonzero(total <= np.median(total))
    assert result.low_balance.slope < result.high_balance.slope < 0
    with pytest.raises(ValueError, match="same length"):
        robustness_split(dh, follow, ht[:-1], hv)
