"""ConflictItems validation, tier grids and the whole report (summarize / to_dict)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from modality_conflict.dataset_builder.constants import COLORS
from modality_conflict.metrics import ConflictItems, simulate_items, summarize, tier_grids

BALANCE_TWO_POINT = 0.547411  # from the saturated fit: logits ln 4 at dH = -1 and ln(2/3) at dH = +1


def _items(rows: list[dict[str, Any]], estimator: str = "full_vocab") -> ConflictItems:
    """Items from row dicts; unspecified fields get harmless defaults."""
    defaults = {
        "group_id": 0,
        "visual_tier": 0,
        "text_tier": 0,
        "control": "none",
        "vision_answer": "red",
        "text_answer": "blue",
        "yv": "red",
        "yt": "blue",
        "ym": "red",
        "hv": 0.5,
        "ht": 0.5,
    }
    full = [{**defaults, "item_id": f"item{i:03d}", **row} for i, row in enumerate(rows)]
    columns = {name: [row[name] for row in full] for name in ("item_id", *defaults)}
    return ConflictItems.from_columns(**columns, estimator=estimator, candidates=COLORS)


def _two_point_rows() -> list[dict[str, Any]]:
    """10 conflicts: 4 of 5 follow the text at dH = -1, 2 of 5 at dH = +1; plus one agreement, one other."""
    rows = []
    for i, text in enumerate([1, 1, 1, 1, 0]):
        rows.append({"group_id": i, "ht": 0.5, "hv": 1.5, "ym": "blue" if text else "red", "visual_tier": 1})
    for i, text in enumerate([1, 1, 0, 0, 0]):
        rows.append(
            {"group_id": 5 + i, "ht": 1.5, "hv": 0.5, "ym": "blue" if text else "red", "text_tier": 2}
        )
    rows.append({"group_id": 10, "yt": "red", "ym": "red"})  # Yv == Yt: not a conflict
    rows.append({"group_id": 11, "ym": "green", "ht": 0.5, "hv": 1.5})  # neither unimodal answer
    return rows


# --- ConflictItems ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hv": np.nan}, r"item 'item001' has vision_only entropy hv=nan"),
        ({"ht": np.inf}, r"item 'item001' has text_only entropy ht=inf"),
        ({"ht": -0.1}, r"entropies must be finite and >= 0"),
        ({"hv": None}, r"item 'item001' has no vision_only entropy"),
        ({"yv": None}, r"item 'item001' has no vision_only answer \(yv\)"),
        ({"ym": ""}, r"item 'item001' has no conflict answer \(ym\)"),
        ({"ym": "Violet"}, r"ym='Violet', not one of .*normalise answers"),
        ({"control": "random"}, r"control='random'"),
        ({"vision_answer": "other"}, r"vision_answer='other'"),
        ({"visual_tier": 1.5}, r"visual_tier=1.5, not an integer"),
        ({"item_id": "item000"}, r"item_id 'item000' occurs 2 times"),
    ],
)
def test_conflict_items_reject_bad_items(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _items([{}, change])


def test_conflict_items_other_checks() -> None:
    with pytest.raises(ValueError, match="columns differ in length"):
        ConflictItems.from_columns(
            item_id=["a", "b"], group_id=[0], visual_tier=[0], text_tier=[0], control=["none"],
            vision_answer=["red"], text_answer=["blue"], yv=["red"], yt=["blue"], ym=["red"],
            hv=[0.1], ht=[0.1], estimator="full_vocab", candidates=COLORS,
        )  # fmt: skip
    with pytest.raises(ValueError, match="unknown estimator 'logits'"):
        _items([{}], estimator="logits")
    items = _items([{}, {"ym": "other"}])
    assert len(items) == 2
    assert items.item_id.dtype.kind == "U" and items.hv.dtype == float
    with pytest.raises(AttributeError):
        items.estimator = "sampled"  # type: ignore[misc]
    # Without an entropy estimator, missing entropies are allowed.
    assert not _items([{"hv": None, "ht": np.nan}], estimator="none").has_entropy


# --- grids -----------------------------------------------------------------------------------------------


def test_tier_grids_count_each_unimodal_prompt_once() -> None:
    rows = [
        # Group 0, visual tier 0 shared by text tiers 0 and 1: one vision-only prompt, answered correctly.
        {"group_id": 0, "visual_tier": 0, "text_tier": 0, "hv": 0.2, "ht": 0.4, "ym": "blue"},
        {"group_id": 0, "visual_tier": 0, "text_tier": 1, "hv": 0.2, "ht": 0.8, "yt": "green", "ym": "red"},
        # Group 1, visual tier 0 answered wrongly; text tier 0 correct.
        {"group_id": 1, "visual_tier": 0, "text_tier": 0, "hv": 0.6, "ht": 0.2, "yv": "green", "ym": "blue"},
        # Group 1, visual tier 5.
        {"group_id": 1, "visual_tier": 5, "text_tier": 0, "hv": 1.0, "ht": 0.2, "ym": "red"},
    ]
    grids = tier_grids(_items(rows))
    assert grids.vision_n == {0: 2, 5: 1}
    assert grids.vision_accuracy == {0: 0.5, 5: 1.0}
    assert grids.mean_hv == {0: pytest.approx(0.4), 5: pytest.approx(1.0)}
    # Text prompts: (g0, t0), (g0, t1) wrong, (g1, t0) correct -> tier 0: 2 prompts, tier 1: 1.
    assert grids.text_n == {0: 2, 1: 1}
    assert grids.text_accuracy == {0: 1.0, 1: 0.0}
    assert grids.mean_ht == {0: pytest.approx(0.3), 1: pytest.approx(0.8)}
    # Cells: (0, 0): text, text -> 1.0; (0, 1): vision -> 0.0; (5, 0): vision -> 0.0.
    assert grids.cell_tfr == {(0, 0): 1.0, (0, 1): 0.0, (5, 0): 0.0}
    strict = tier_grids(_items(rows), min_conflicts=2)
    assert strict.cell_tfr[(0, 1)] is None and "only 1" in strict.cell_reason[(0, 1)]
    as_dict = strict.to_dict()
    assert as_dict["tfr_by_tier_cell"]["0"]["0"] == 1.0
    assert as_dict["tfr_by_tier_cell_reason"]["0"]["1"].startswith("only 1")


# --- summarize -------------------------------------------------------------------------------------------


def _assert_clean(report: dict[str, Any]) -> None:
    """No NaN anywhere, JSON round trip, and every None number explained.

    A None is explained by a sibling ``<key>_reason``, or, inside nested tables such as the tier cells,
    by the matching entry of the parallel ``<table>_reason`` table (or one reason for the whole table).
    """
    text = json.dumps(report, allow_nan=False)
    assert json.loads(text) == report

    def walk(node: Any, reasons: Any = None) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key.endswith("_reason"):
                    continue
                parallel = node.get(f"{key}_reason")
                if parallel is None and isinstance(reasons, dict):
                    parallel = reasons.get(key)
                elif parallel is None and isinstance(reasons, str):
                    parallel = reasons
                if value is None:
                    assert parallel, f"{key} is None without a reason"
                walk(value, parallel)
        elif isinstance(node, list):
            for value in node:
                assert not (isinstance(value, float) and math.isnan(value))

    walk(report)


def test_summarize_hand_computed_small_report() -> None:
    items = _items(_two_point_rows())
    report = summarize(items, n_resamples=0, min_conflicts=5).to_dict()
    _assert_clean(report)
    assert (report["n_conflicts"], report["n_text"], report["n_vision"], report["n_other"]) == (11, 6, 4, 1)
    assert report["n_not_conflict"] == 1
    assert report["tfr"] == pytest.approx(0.6)
    assert report["vfr"] == pytest.approx(0.4)
    assert report["other_rate"] == pytest.approx(1 / 11)
    assert report["mean_hv"] == pytest.approx((5 * 1.5 + 5 * 0.5 + 0.5 + 1.5) / 12)
    assert report["mean_dh"] == pytest.approx(-1 / 12)  # five at -1, five at +1, one 0, one -1
    assert report["balance_point"] == pytest.approx(BALANCE_TWO_POINT, abs=1e-6)
    assert report["balance_point_status"] == "ok"
    assert report["logistic_slope"] == pytest.approx(math.log(1 / 6) / 2)
    assert report["balance_point_bootstrap_low"] is None
    assert "n_resamples=0" in report["balance_point_bootstrap_low_reason"]
    assert report["balance_point_ci_method"] == "delta"
    # Every answer is correct, so the both-correct view keeps every conflict.
    assert report["tfr_correct"] == report["tfr"]
    assert report["entropy_estimator"] == "full_vocab"
    assert report["vision_accuracy_by_tier"]["1"] == 1.0
    assert report["tfr_by_tier_cell"]["1"]["0"] == pytest.approx(0.8)


def test_both_correct_view_drops_items_with_a_wrong_unimodal_answer() -> None:
    rows = _two_point_rows()
    # The text says "blue" but in two items the truth written in the row is another colour.
    rows[0]["text_answer"] = "green"
    rows[5]["vision_answer"] = "yellow"
    rows[5]["text_answer"] = "red"
    report = summarize(_items(rows), n_resamples=0, min_conflicts=5).to_dict()
    assert report["n_conflicts_correct"] == 9
    assert report["n_text_correct"] == 4
    assert report["tfr_correct"] == pytest.approx(4 / 8)


def test_summarize_recovers_planted_law_and_is_clean() -> None:
    items = simulate_items(
        candidates=COLORS, n_groups=300, control_tiers=(0, 6), balance=0.3, slope=-4.0, rng=8
    )
    result = summarize(items, n_resamples=300, rng=1)
    report = result.to_dict()
    _assert_clean(report)
    assert report["balance_point"] == pytest.approx(0.3, abs=0.1)
    assert report["balance_point_bootstrap_low"] < 0.3 < report["balance_point_bootstrap_high"]
    assert report["balance_point_isotonic"] == pytest.approx(0.3, abs=0.15)
    assert report["law_verdict"] == "holds" and report["law_spearman_rho"] < 0
    assert report["n_main_items"] == 300 * 42
    assert report["controls"]["text_irrelevant"]["tfr"] == pytest.approx(0.1, abs=0.04)
    assert report["controls"]["image_irrelevant"]["relevant_rate"] == pytest.approx(0.9, abs=0.04)
    assert (
        report["robustness"]["low_n"] + report["robustness"]["high_n"]
        == report["n_text"] + report["n_vision"]
    )
    assert len(report["binned_curve"]["tfr"]) == 10
    assert set(report["vision_accuracy_by_tier"]) == {str(t) for t in range(14)}
    assert result.balance is result.own.balance


def test_summarize_ignores_input_order_and_is_deterministic() -> None:
    items = simulate_items(candidates=COLORS, n_groups=60, control_tiers=(3,), rng=2)
    first = summarize(items, n_resamples=200, rng=7).to_dict()
    order = np.random.default_rng(0).permutation(len(items))
    shuffled = ConflictItems.from_columns(
        **{name: values[order] for name, values in items.columns().items()},
        estimator=items.estimator,
        candidates=items.candidates,
    )
    assert summarize(shuffled, n_resamples=200, rng=7).to_dict() == first
    assert summarize(items, n_resamples=200, rng=np.random.default_rng(7)).to_dict() == first
    other_seed = summarize(items, n_resamples=200, rng=8).to_dict()
    assert other_seed["balance_point"] == first["balance_point"]
    assert other_seed["balance_point_bootstrap_low"] != first["balance_point_bootstrap_low"]


def test_summarize_degenerate_inputs_are_flagged() -> None:
    all_other = summarize(
        _items([{"group_id": i, "ym": "green"} for i in range(12)]), n_resamples=10
    ).to_dict()
    _assert_clean(all_other)
    assert all_other["tfr"] is None and "answered 'other'" in all_other["tfr_reason"]
    assert all_other["other_rate"] == 1.0
    assert all_other["balance_point"] is None and all_other["balance_point_status"] == "undefined"

    few = summarize(_items(_two_point_rows()[:6]), n_resamples=10).to_dict()
    _assert_clean(few)
    assert few["tfr"] is None and "min_conflicts=10" in few["tfr_reason"]
    assert few["balance_point"] is None and "min_conflicts=10" in few["balance_point_reason"]

    same_dh = summarize(_items([{"group_id": i, "ym": ["red", "blue"][i % 2]} for i in range(20)])).to_dict()
    _assert_clean(same_dh)
    assert same_dh["tfr"] == 0.5
    assert "share one dH value" in same_dh["balance_point_reason"]
    assert sum(same_dh["binned_curve"]["counts"]) == 20

    no_entropy = summarize(
        _items([{**row, "hv": None, "ht": None} for row in _two_point_rows()], estimator="none"),
        min_conflicts=5,
    ).to_dict()
    _assert_clean(no_entropy)
    assert no_entropy["tfr"] == pytest.approx(0.6)
    assert no_entropy["mean_hv"] is None and "no entropies" in no_entropy["mean_hv_reason"]
    assert no_entropy["balance_point"] is None and "no entropies" in no_entropy["balance_point_reason"]
    assert no_entropy["mean_hv_by_tier"]["0"] is None

    controls_only = summarize(_items([{"control": "text_irrelevant", "group_id": i} for i in range(12)]))
    report = controls_only.to_dict()
    _assert_clean(report)
    assert report["n_main_items"] == 0 and report["tfr"] is None
    assert report["controls"]["text_irrelevant"]["vfr"] == 1.0
    assert report["controls"]["image_irrelevant"]["n_items"] == 0


def test_summarize_bad_arguments() -> None:
    items = _items(_two_point_rows())
    with pytest.raises(TypeError, match="ConflictItems"):
        summarize({"item_id": []})  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no conflict items"):
        summarize(_items([]))
    with pytest.raises(ValueError, match="confidence_level"):
        summarize(items, confidence_level=95)
    with pytest.raises(ValueError, match="n_resamples"):
        summarize(items, n_resamples=1.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="ambiguity_radius"):
        summarize(items, ambiguity_radius=0)


def test_simulated_items_are_reproducible_and_well_formed() -> None:
    first = simulate_items(candidates=COLORS, n_groups=5, control_tiers=(0,), rng=3)
    second = simulate_items(candidates=COLORS, n_groups=5, control_tiers=(0,), rng=3)
    assert len(first) == 5 * (42 + 2)
    for name, values in first.columns().items():
        np.testing.assert_array_equal(values, getattr(second, name))
    assert np.all(first.vision_answer != first.text_answer)
    assert set(first.control) == {"none", "text_irrelevant", "image_irrelevant"}
    assert first.item_id[0] == "g0000-v00-t0-none"


def test_metrics_import_no_model_or_dataset_libraries() -> None:
    heavy = ("torch", "datasets", "lmms_eval", "transformers", "PIL")
    code = f"import sys, modality_conflict.metrics; print(sorted(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
