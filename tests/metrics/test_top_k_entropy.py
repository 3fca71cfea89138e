"""Bounds on the entropy from a truncated (top-k) distribution: hand-computed cases and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modality_conflict.metrics import full_vocab_entropy, top_k_entropy_bounds


def _entropy(p: list[float]) -> float:
    return -sum(x * math.log(x) for x in p if x > 0)


def test_hand_computed_bounds() -> None:
    # p = (0.5, 0.25) returned out of V = 4; 0.25 left over, no tail token above 0.25.
    bounds = top_k_entropy_bounds(np.log([0.5, 0.25]), vocab_size=4)
    assert float(bounds.uncovered_mass) == pytest.approx(0.25)
    # Lowest: the whole 0.25 on one token -> (0.5, 0.25, 0.25); highest: spread -> (0.5, 0.25, .125, .125).
    assert float(bounds.lower) == pytest.approx(_entropy([0.5, 0.25, 0.25]))
    assert float(bounds.lower) == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(4))
    assert float(bounds.upper) == pytest.approx(0.5 * math.log(2) + 0.25 * math.log(4) + 0.25 * math.log(8))
    assert float(bounds.estimate) == pytest.approx((float(bounds.lower) + float(bounds.upper)) / 2)
    assert bounds.estimator == "top_k"


def test_remainder_token_in_the_lower_bound() -> None:
    # 0.3 left over under p_min = 0.2: one tail token at 0.2, one at 0.1.
    bounds = top_k_entropy_bounds(np.log([0.5, 0.2]), vocab_size=10)
    assert float(bounds.lower) == pytest.approx(_entropy([0.5, 0.2, 0.2, 0.1]))
    assert float(bounds.upper) == pytest.approx(_entropy([0.5, 0.2] + [0.3 / 8] * 8))


def test_full_coverage_is_exact() -> None:
    logits = np.array([[2.0, 1.0, 0.0, -1.0], [0.0, 0.0, 0.0, 0.0]])
    logprobs = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    bounds = top_k_entropy_bounds(logprobs, vocab_size=4)
    exact = full_vocab_entropy(logits).values
    np.testing.assert_allclose(bounds.lower, exact, atol=1e-12)
    np.testing.assert_allclose(bounds.upper, exact, atol=1e-12)
    np.testing.assert_allclose(bounds.uncovered_mass, 0.0, atol=1e-12)


def test_padded_rows() -> None:
    rows = np.array([[math.log(0.5), math.log(0.5), -np.inf], np.log([0.4, 0.3, 0.2])])
    bounds = top_k_entropy_bounds(rows, vocab_size=4)
    assert bounds.lower.shape == (2,)
    assert float(bounds.lower[0]) == pytest.approx(math.log(2))
    assert float(bounds.upper[1]) == pytest.approx(_entropy([0.4, 0.3, 0.2, 0.1]))


@pytest.mark.parametrize(
    ("logprobs", "vocab_size", "message"),
    [
        ([math.log(0.7), math.log(0.7)], 5, "sum to"),
        ([0.1], 5, "must be <= 0"),
        ([float("nan")], 5, "must be <= 0"),
        ([math.log(0.5), math.log(0.5)], 1, "smaller than"),
        ([math.log(0.1)], 3, "cannot fit"),
        ([float("-inf")], 3, "no finite logprob"),
        ([math.log(0.5)], 2.0, "integer"),
    ],
)
def test_bad_inputs(logprobs: list[float], vocab_size: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        top_k_entropy_bounds(logprobs, vocab_size=vocab_size)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(-8.0, 8.0), min_size=2, max_size=60),
    st.integers(1, 60),
    st.integers(0, 5),
)
def test_bounds_contain_the_exact_entropy(logits: list[float], k: int, extra: int) -> None:
    """Truncate a random distribution to its top k: the exact entropy lies between the bounds."""
    array = np.array(logits)
    logprobs = array - np.log(np.exp(array).sum())
    k = min(k, len(logits))
    top = np.sort(logprobs)[::-1][:k]
    exact = float(full_vocab_entropy(array).values)
    bounds = top_k_entropy_bounds(top, vocab_size=len(logits))
    assert float(bounds.lower) <= exact + 1e-9
    assert exact <= float(bounds.upper) + 1e-9
    # A larger vocabulary than the tokens that exist only loosens the upper bound.
    looser = top_k_entropy_bounds(top, vocab_size=len(logits) + extra)
    assert float(looser.upper) >= float(bounds.upper) - 1e-12
    assert float(looser.lower) == pytest.approx(float(bounds.lower))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0.01, 1.0), min_size=3, max_size=30), st.integers(1, 29))
def test_bounds_are_attained(weights: list[float], k: int) -> None:
    """Both bounds are entropies of distributions consistent with what was returned: they are tight."""
    p = np.sort(np.array(weights) / sum(weights))[::-1]
    k = min(k, len(p) - 1)
    top, vocab = p[:k], len(p)
    bounds = top_k_entropy_bounds(np.log(top), vocab_size=vocab)
    mass, smallest = 1 - top.sum(), top[-1]
    tail = vocab - k
    spread = list(top) + [mass / tail] * tail
    assert float(bounds.upper) == pytest.approx(_entropy(spread), abs=1e-9)
    full = int(mass // smallest)
    packed = list(top) + [smallest] * full + [mass - full * smallest]
    assert float(bounds.lower) == pytest.approx(_entropy(packed), abs=1e-9)
