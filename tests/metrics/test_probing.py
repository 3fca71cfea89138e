"""Layer-wise oscillation counts and their summary around the balance point."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from modality_conflict.metrics import balance_point, count_oscillations, oscillation_summary


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (["vision", "text"], 1),
        (["vision", "other", "text"], 1),
        (["vision", "other", "vision"], 0),
        (["other", "vision", "other", "text", "text", "vision"], 2),
        (["text", "vision", "text", "vision"], 3),
        (["other", "other"], 0),
        ([], 0),
    ],
)
def test_count_oscillations_single_item(labels: list[str], expected: int) -> None:
    assert count_oscillations(labels) == expected


def test_count_oscillations_vectorised_and_ragged() -> None:
    matrix = np.array([["vision", "text", "vision"], ["other", "text", "text"], ["text", "other", "vision"]])
    assert count_oscillations(matrix).tolist() == [2, 0, 1]
    ragged = [["vision", "text"], ["text"], ["text", "other", "other", "vision", "text"]]
    assert count_oscillations(ragged).tolist() == [1, 0, 2]
    with pytest.raises(ValueError, match="item 1, layer 0 has label 'blue'"):
        count_oscillations([["vision"], ["blue"]])
    with pytest.raises(ValueError, match="layer 1 has label 'red'"):
        count_oscillations(["vision", "red"])


def test_oscillation_summary_hand_values() -> None:
    counts = [2, 1, 3, 0, 1, 0, 0]
    dh = [0.0, 0.4, -0.5, 1.0, -1.2, 2.0, 0.6]
    summary = oscillation_summary(counts, dh, 0.0, radius=0.5, n_resamples=500, rng=0)
    # Ambiguous: |dH| <= 0.5 -> counts 2, 1, 3; clear: 0, 1, 0, 0.
    assert (summary.n_ambiguous, summary.n_clear) == (3, 4)
    assert summary.mean_ambiguous == pytest.approx(2.0)
    assert summary.mean_clear == pytest.approx(0.25)
    assert summary.difference == pytest.approx(1.75)
    low, high, method = summary.confidence_interval(region="ambiguous")
    half = stats.t.ppf(0.975, 2) * 1.0 / np.sqrt(3)  # sd of (2, 1, 3) is 1
    assert method == "t"
    assert (low, high) == (pytest.approx(2.0 - half), pytest.approx(2.0 + half))
    welch = stats.ttest_ind([2, 1, 3], [0, 1, 0, 0], equal_var=False).confidence_interval(0.95)
    difference = summary.confidence_interval(region="difference")
    assert difference.low == pytest.approx(welch.low) and difference.high == pytest.approx(welch.high)
    boot = summary.confidence_interval(region="difference", method="bootstrap")
    assert boot.method == "bootstrap" and boot.low <= 1.75 <= boot.high
    # Input order does not change the bootstrap.
    order = np.array([6, 5, 4, 3, 2, 1, 0])
    again = oscillation_summary(np.array(counts)[order], np.array(dh)[order], 0.0, n_resamples=500, rng=0)
    assert again.confidence_interval(method="bootstrap") == summary.confidence_interval(method="bootstrap")


def test_oscillation_summary_bad_input() -> None:
    undefined = balance_point([0.0] * 12, [1, 0] * 6, n_resamples=0)
    with pytest.raises(ValueError, match="balance point is undefined"):
        oscillation_summary([1], [0.0], undefined)
    with pytest.raises(ValueError, match="non-negative integers, got 1.5 at index 0"):
        oscillation_summary([1.5], [0.0], 0.0)
    with pytest.raises(ValueError, match="radius"):
        oscillation_summary([1], [0.0], 0.0, radius=0)
    single = oscillation_summary([1, 2], [0.0, 3.0], 0.0, n_resamples=0)
    interval = single.confidence_interval(region="ambiguous")
    assert interval.low is None and "has 1 items" in interval.reason
