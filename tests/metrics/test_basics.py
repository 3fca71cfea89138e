"""Answer normalisation, entropy estimators, relative uncertainty and following rates."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modality_conflict.dataset_builder.constants import COLOR_SYNONYMS, COLORS
from modality_conflict.metrics import (
    FollowingRates,
    answer_set_entropy,
    classify_following,
    first_named_answer,
    following_rates,
    full_vocab_entropy,
    normalize_answer,
    normalize_answers,
    relative_uncertainty,
    sampled_answer_entropy,
    wilson_interval,
)

LN2 = math.log(2.0)


# --- answers ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("red", "red"),
        ("Red.", "red"),
        ("  BLUE!!", "blue"),
        ("The answer is green", "green"),
        ("a purple one", "purple"),
        ("Violet", "purple"),
        ("crimson", "red"),
        ("navy blue", "blue"),
        ("light-blue", "blue"),
        ("reds", "red"),
        ("oranges", "orange"),
        ("yellowish", "yellow"),
        ("It is blue, not red", "blue"),
        ("It isn't red, it's green", "green"),
        ("red or blue", "other"),
        ("not red", "other"),
        ("neither red nor blue", "other"),
        ("black", "other"),
        ("", "other"),
        ("I cannot tell", "other"),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text, COLORS, synonyms=COLOR_SYNONYMS) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Blue", None),  # the word may go on ("Blueish")
        ("Blue.", "blue"),
        ("Blue ", "blue"),
        ("The", None),
        ("The ball is", None),
        ("The ball is blue", None),
        ("The ball is blue.", "blue"),
        ("Violet,", "purple"),
        ("Reddish", None),
        ("reds ", "red"),
        ("not red", None),
        ("not red,", None),
        ("It isn't red, it's green.", "green"),
        ("navy blue.", "blue"),
        ("", None),
    ],
)
def test_first_named_answer_waits_for_the_end_of_the_word(text: str, expected: str | None) -> None:
    assert first_named_answer(text, COLORS, synonyms=COLOR_SYNONYMS) == expected
    if expected is not None:
        # What the early stop keeps parses to the same candidate.
        assert normalize_answer(text, COLORS, synonyms=COLOR_SYNONYMS) == expected


def test_synonyms_are_an_input() -> None:
    assert normalize_answer("Violet", COLORS) == "other"
    assert normalize_answer("Violet", COLORS, synonyms=COLOR_SYNONYMS) == "purple"
    assert normalize_answer("Violet", COLORS, synonyms={"violet": "blue"}) == "blue"


def test_normalize_answer_custom_candidates_ignore_colour_synonyms() -> None:
    shapes = ("cube", "sphere", "cylinder")
    assert normalize_answer("Spheres", shapes, synonyms=COLOR_SYNONYMS) == "sphere"
    assert normalize_answer("a big cube", shapes, synonyms=COLOR_SYNONYMS) == "cube"
    # "violet" names purple, which is not a candidate here.
    assert normalize_answer("violet", shapes, synonyms=COLOR_SYNONYMS) == "other"
    assert normalize_answer("light blue", ("light blue", "dark blue")) == "light blue"
    assert normalize_answer("azure", COLORS, synonyms={"azure": "green"}) == "green"


def test_normalize_answers_vectorised_and_type_checked() -> None:
    out = normalize_answers(["Red", "violet", "Red", "dog"], COLORS, synonyms=COLOR_SYNONYMS)
    assert out.tolist() == ["red", "purple", "red", "other"]
    with pytest.raises(TypeError, match="must be a str"):
        normalize_answer(None, COLORS)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="answer 1"):
        normalize_answers(["red", 3], COLORS)  # type: ignore[list-item]
    with pytest.raises(ValueError, match="candidates must not be empty"):
        normalize_answer("red", ())


# --- entropy ---------------------------------------------------------------------------------------------


def test_full_vocab_entropy_hand_values() -> None:
    estimate = full_vocab_entropy(np.log([[1.0, 2.0, 1.0], [1.0, 1.0, 1.0]]))
    # p = (1/4, 1/2, 1/4): H = 1.5 ln 2; uniform over 3: ln 3.
    np.testing.assert_allclose(estimate.values, [1.5 * LN2, math.log(3.0)], rtol=1e-12)
    assert estimate.estimator == "full_vocab"
    assert "nats" in estimate.note
    # Masked tokens (-inf) have zero probability; huge logits do not overflow.
    assert float(full_vocab_entropy([0.0, 0.0, -np.inf]).values) == pytest.approx(LN2, rel=1e-12)
    assert float(full_vocab_entropy([1000.0, 1000.0]).values) == pytest.approx(LN2, rel=1e-12)
    assert float(full_vocab_entropy([0.0, -1e6]).values) == 0.0
    # Another axis.
    np.testing.assert_allclose(full_vocab_entropy(np.zeros((2, 4)), axis=0).values, [LN2] * 4)


def test_full_vocab_entropy_bad_input() -> None:
    with pytest.raises(ValueError, match=r"nan at index \(1, 0\)"):
        full_vocab_entropy([[0.0, 1.0], [np.nan, 1.0]])
    with pytest.raises(ValueError, match="inf"):
        full_vocab_entropy([np.inf, 1.0])
    with pytest.raises(ValueError, match="-inf for every category"):
        full_vocab_entropy([-np.inf, -np.inf])
    with pytest.raises(ValueError, match="at least one category"):
        full_vocab_entropy(np.zeros((3, 0)))


def test_answer_set_entropy_from_log_probs_and_losses() -> None:
    assert float(answer_set_entropy(log_probs=[-1.0, -1.0, -np.inf]).values) == pytest.approx(LN2)
    # Renormalisation: only relative scores matter.
    estimate = answer_set_entropy(log_probs=[[-3.0, -3.0 - LN2]])
    p = np.array([2 / 3, 1 / 3])
    assert estimate.values[0] == pytest.approx(-(p * np.log(p)).sum(), rel=1e-12)
    assert estimate.estimator == "answer_set"
    # Mean losses with token counts: summed log-probs -2 and -2.
    summed = answer_set_entropy(mean_losses=[1.0, 2.0], token_counts=[2, 1])
    assert float(summed.values) == pytest.approx(LN2)
    assert summed.estimator == "answer_set"
    # Without token counts: the explicit length-normalised estimator, scores -1 and -2.
    normalised = answer_set_entropy(mean_losses=[1.0, 2.0], length_normalised=True)
    q = np.array([math.e, 1.0]) / (math.e + 1.0)
    assert float(normalised.values) == pytest.approx(-(q * np.log(q)).sum(), rel=1e-12)
    assert float(normalised.values) == pytest.approx(0.5822031, abs=1e-7)
    assert normalised.estimator == "answer_set_length_normalised"
    assert "not log-probabilities" in normalised.note


def test_answer_set_entropy_bad_input() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        answer_set_entropy()
    with pytest.raises(ValueError, match="exactly one"):
        answer_set_entropy(log_probs=[-1.0], mean_losses=[1.0])
    with pytest.raises(ValueError, match="must be <= 0"):
        answer_set_entropy(log_probs=[-1.0, 0.5])
    with pytest.raises(ValueError, match="must be >= 0"):
        answer_set_entropy(mean_losses=[-1.0, 0.5], length_normalised=True)
    with pytest.raises(ValueError, match="length_normalised=True"):
        answer_set_entropy(mean_losses=[1.0, 0.5])
    with pytest.raises(ValueError, match="positive integers"):
        answer_set_entropy(mean_losses=[1.0, 0.5], token_counts=[1, 0])
    with pytest.raises(ValueError, match="nan at index 1"):
        answer_set_entropy(log_probs=[-1.0, np.nan])
    with pytest.raises(ValueError, match="apply to mean_losses"):
        answer_set_entropy(log_probs=[-1.0], token_counts=[1])


def test_sampled_answer_entropy_plug_in_and_miller_madow() -> None:
    samples = [["red", "red", "blue", "blue"], ["red", "red", "red", "blue"], ["green"]]
    plug_in = sampled_answer_entropy(samples, correction=None)
    expected = [LN2, -(0.75 * math.log(0.75) + 0.25 * math.log(0.25)), 0.0]
    np.testing.assert_allclose(plug_in.values, expected, rtol=1e-12, atol=1e-15)
    corrected = sampled_answer_entropy(samples)
    # Miller-Madow adds (m - 1) / (2K): 1/8, 1/8 and 0.
    np.testing.assert_allclose(corrected.values, np.array(expected) + [0.125, 0.125, 0.0], rtol=1e-12)
    assert corrected.estimator == plug_in.estimator == "sampled"
    assert "Miller-Madow" in corrected.note and "biased low" in plug_in.note
    # Same result from a 2-D array.
    array = np.array([["red", "blue"], ["blue", "blue"]])
    np.testing.assert_allclose(sampled_answer_entropy(array, correction=None).values, [LN2, 0.0], atol=1e-15)


def test_sampled_answer_entropy_bad_input() -> None:
    with pytest.raises(ValueError, match="one sequence of answers per item"):
        sampled_answer_entropy(["red", "blue"])
    with pytest.raises(ValueError, match="item 1 has no sampled answers"):
        sampled_answer_entropy([["red"], []])
    with pytest.raises(ValueError, match="item 1 has sample 'pink'"):
        sampled_answer_entropy([["red"], ["red", "pink"]], candidates=(*COLORS, "other"))
    with pytest.raises(ValueError, match="correction"):
        sampled_answer_entropy([["red"]], correction="jackknife")  # type: ignore[arg-type]
    assert sampled_answer_entropy([]).values.shape == (0,)


# --- relative uncertainty --------------------------------------------------------------------------------


def test_relative_uncertainty_hand_values() -> None:
    assert relative_uncertainty(0.5, 1.5) == -1.0
    assert relative_uncertainty(0.0, 0.0) == 0.0
    assert relative_uncertainty(0.0, 1.0) == -2.0
    assert relative_uncertainty(1.0, 0.0) == 2.0
    out = relative_uncertainty([0.3, 0.6, 0.0], [0.1, 0.6, 0.0])
    np.testing.assert_allclose(out, [1.0, 0.0, 0.0])
    assert isinstance(out, np.ndarray)
    assert relative_uncertainty([], []).shape == (0,)


@pytest.mark.parametrize(
    ("ht", "hv", "message"),
    [
        ([0.1, np.nan], [0.1, 0.1], r"ht must be finite and >= 0, got nan at index 1"),
        ([0.1, 0.2], [np.inf, 0.1], r"hv must be finite and >= 0, got inf at index 0"),
        ([0.1, -0.2], [0.1, 0.1], r"got -0.2 at index 1"),
        ([0.1], [0.1, 0.2], "shape"),
    ],
)
def test_relative_uncertainty_bad_input(ht: list[float], hv: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        relative_uncertainty(ht, hv)


# --- following -------------------------------------------------------------------------------------------


def test_classify_following_all_labels() -> None:
    yv = ["red", "red", "red", "red", "other", "red"]
    yt = ["blue", "blue", "blue", "red", "blue", "other"]
    ym = ["red", "blue", "green", "red", "blue", "other"]
    labels = classify_following(yv, yt, ym)
    assert labels.tolist() == ["vision", "text", "other", "not_conflict", "unimodal_other", "unimodal_other"]
    with pytest.raises(ValueError, match="same length"):
        classify_following(["red"], ["blue"], [])
    with pytest.raises(ValueError, match="answer strings"):
        classify_following([1], [2], [3])


def test_following_rates_hand_values_and_wilson() -> None:
    rates = following_rates(["text"] * 7 + ["vision"] * 3 + ["other"] * 2 + ["not_conflict"])
    assert (rates.n_text, rates.n_vision, rates.n_other, rates.n_not_conflict) == (7, 3, 2, 1)
    assert rates.n_conflicts == 12
    assert rates.tfr == pytest.approx(0.7)
    assert rates.vfr == pytest.approx(0.3)
    assert rates.other_rate == pytest.approx(2 / 12)
    # Wilson for 7/10 at 95%, worked by hand: centre 0.644493, half-width 0.247715.
    interval = rates.confidence_interval()
    low, high, method = interval
    assert (method, interval.reason) == ("wilson", None)
    assert low == pytest.approx(0.396778, abs=2e-6)
    assert high == pytest.approx(0.892208, abs=1e-6)
    vfr_low, vfr_high, _ = rates.confidence_interval(rate="vfr")
    assert vfr_low == pytest.approx(1 - high) and vfr_high == pytest.approx(1 - low)


def test_wilson_matches_statsmodels() -> None:
    proportion = pytest.importorskip("statsmodels.stats.proportion")
    for successes, trials, level in [(0, 5, 0.95), (5, 5, 0.9), (13, 40, 0.99), (1, 1, 0.95)]:
        ours = wilson_interval(successes, trials, confidence_level=level)
        ref = proportion.proportion_confint(successes, trials, alpha=1 - level, method="wilson")
        assert ours.low == pytest.approx(ref[0], abs=1e-12)
        assert ours.high == pytest.approx(ref[1], abs=1e-12)
    assert wilson_interval(0, 0).reason == "no trials"
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(3, 2)


def test_following_rates_undefined_cases() -> None:
    all_other = following_rates(["other"] * 12)
    assert all_other.tfr is None and all_other.vfr is None
    assert all_other.reason("tfr") == "all 12 conflicts were answered 'other'"
    assert all_other.other_rate == 1.0
    interval = all_other.confidence_interval()
    assert interval.low is None and "answered 'other'" in interval.reason
    few = following_rates(["text", "vision"], min_conflicts=10)
    assert few.tfr is None and few.reason() == "only 2 conflicts (< min_conflicts=10)"
    none = following_rates(["not_conflict"])
    assert none.tfr is None and none.other_rate is None and "no conflicts" in none.reason()
    empty = following_rates([])
    assert empty == FollowingRates(0, 0, 0)
    with pytest.raises(ValueError, match="unknown following label 'txt'"):
        following_rates(["txt"])
    with pytest.raises(ValueError, match="rate must be"):
        empty.reason("xfr")  # type: ignore[arg-type]
