"""A run written by hand, its numbers computed by hand and by statsmodels, checked against the project.

The records below are what ``process_results`` logs per document of ``modality_conflict_color`` (one
vision-only, one text-only and one conflict row per item; the vision-only image shows red, the text says
blue). Their numbers are worked out here without the project's metrics: follow rates by counting,
relative uncertainty dH = 2 (Ht - Hv) / (Ht + Hv) per item, and the balance point of a logistic regression
of follow-text on dH fitted by statsmodels. The project's summary of the same records
(``records.summarize_records``, what the report file holds) must agree, as read back through the results
view (``TaskSummary``): a consistent but wrong pipeline cannot pass, as it could when synthetic runs made by
the project's own code are compared with that same code.
"""

from __future__ import annotations

from typing import Any

import pytest

from modality_conflict.analysis.task_summary import TaskSummary
from modality_conflict.mc_tasks.records import summarize_records

COLORS = ["red", "yellow", "blue", "green", "purple", "orange"]

# Per item: entropy of the vision-only answer (Hv), of the text-only answer (Ht), the conflict row's answer.
ITEMS: list[tuple[float, float, str]] = [
    (0.2, 1.0, "red"),
    (0.3, 0.9, "red"),
    (0.4, 1.2, "blue"),
    (0.5, 0.7, "red"),
    (0.6, 0.6, "blue"),
    (0.7, 0.5, "red"),
    (0.8, 0.4, "blue"),
    (0.9, 0.3, "blue"),
    (1.0, 0.5, "red"),
    (1.1, 0.2, "blue"),
    (1.2, 0.2, "blue"),
    (1.3, 0.4, "blue"),
    (0.5, 0.5, "green"),  # neither modality's answer: "other"
]

# By hand from the table: 7 text (blue), 5 vision (red), 1 other, out of 13 conflicts.
N_CONFLICTS, N_TEXT, N_VISION, N_OTHER = 13, 7, 5, 1


def _record(item: int, condition: str, answer: str, entropy: float) -> dict[str, Any]:
    vision, text = f"g{item:02d}-v", f"g{item:02d}-t"
    row = {"vision_only": vision, "text_only": text, "conflict": f"g{item:02d}-c"}[condition]
    return {
        "row_id": row,
        "condition": condition,
        "control": "none",
        "group_id": item,
        "item_id": f"item{item:02d}",
        "vision_key": "" if condition == "text_only" else vision,
        "text_key": "" if condition == "vision_only" else text,
        "visual_tier": 0,
        "text_tier": 0,
        "vision_answer": "red",
        "text_answer": "blue",
        "attribute": "color",
        "answer_choices": COLORS,
        "answer": answer,
        "raw_response": answer.capitalize() + ".",
        "entropy": entropy,
        "entropy_estimator": "full_vocab",
        "answer_scores": None,
    }


RECORDS = [
    record
    for item, (hv, ht, answer) in enumerate(ITEMS)
    for record in (
        _record(item, "vision_only", "red", hv),
        _record(item, "text_only", "blue", ht),
        _record(item, "conflict", answer, 0.3),
    )
]


def _dh(hv: float, ht: float) -> float:
    return 2 * (ht - hv) / (ht + hv)


@pytest.fixture(scope="module")
def summary() -> TaskSummary:
    return TaskSummary(summarize_records(RECORDS)).check()


def test_counts_and_follow_rates_are_the_hand_counted_ones(summary: TaskSummary) -> None:
    assert summary.n_conflicts == N_CONFLICTS
    assert (summary.get("n_text"), summary.get("n_vision"), summary.get("n_other")) == (
        N_TEXT,
        N_VISION,
        N_OTHER,
    )
    # TFR = text / (text + vision): "other" answers are left out of it and reported on their own.
    assert summary.number("tfr") == pytest.approx(7 / 12, abs=1e-12)
    assert summary.number("vfr") == pytest.approx(5 / 12, abs=1e-12)
    assert summary.number("other_rate") == pytest.approx(1 / 13, abs=1e-12)


def test_entropies_and_relative_uncertainty_are_the_hand_computed_ones(summary: TaskSummary) -> None:
    assert summary.number("mean_hv") == pytest.approx(sum(hv for hv, _, _ in ITEMS) / 13, abs=1e-12)
    assert summary.number("mean_ht") == pytest.approx(sum(ht for _, ht, _ in ITEMS) / 13, abs=1e-12)
    # Item 4 (0.6, 0.6) and item 12 (0.5, 0.5) have dH = 0; item 0: 2 * 0.8 / 1.2 = 4/3.
    assert _dh(0.2, 1.0) == pytest.approx(4 / 3)
    assert summary.number("mean_dh") == pytest.approx(sum(_dh(hv, ht) for hv, ht, _ in ITEMS) / 13, abs=1e-12)


def test_balance_point_is_the_statsmodels_logistic_fit(summary: TaskSummary) -> None:
    import numpy as np
    import statsmodels.api as sm

    # The balance point is fitted on the conflicts that follow one modality (the "other" answer is left out).
    followed = [(hv, ht, answer) for hv, ht, answer in ITEMS if answer in ("red", "blue")]
    dh = np.array([_dh(hv, ht) for hv, ht, _ in followed])
    follows_text = np.array([answer == "blue" for _, _, answer in followed], dtype=float)
    fit = sm.Logit(follows_text, sm.add_constant(dh)).fit(disp=0, tol=1e-12, maxiter=200)
    intercept, slope = fit.params
    assert summary.number("logistic_intercept") == pytest.approx(intercept, abs=1e-6)
    assert summary.number("logistic_slope") == pytest.approx(slope, abs=1e-6)
    point = summary.balance_point
    assert point.estimate == pytest.approx(-intercept / slope, abs=1e-6)
    # The law: following the text falls as the text becomes the less certain modality.
    assert slope < 0
