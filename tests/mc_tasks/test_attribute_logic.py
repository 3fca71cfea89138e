"""Task hooks on attribute rows: the row's own answer set, synonyms, 2 or 3 scores, per-attribute report."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modality_conflict.dataset_builder.attribute_constants import ANSWERS, ATTRIBUTES
from modality_conflict.dataset_builder.constants import CONDITIONS
from modality_conflict.dataset_builder.folder import DatasetFolder
from modality_conflict.mc_tasks import records as task_records
from modality_conflict.mc_tasks import task_logic
from modality_conflict.models.envelope import encode_envelope


def _doc(attribute: str, condition: str = "vision_only", **overrides: Any) -> dict[str, Any]:
    shape = attribute == "shape"
    doc = {
        "row_id": "g0000-v02-none" if shape else "g0001-v02-none",
        "condition": CONDITIONS.index(condition),
        "control": 0,
        "group_id": 0 if shape else 1,
        "item_id": "",
        "vision_key": "g0000-v02-none",
        "text_key": "",
        "visual_tier": 2,
        "text_tier": -1,
        "attribute": ATTRIBUTES.index(attribute),
        "target": "purple metal object" if shape else "red cylinder",
        "question": "What shape is the purple metal object?"
        if shape
        else "What material is the red cylinder?",
        "text": "",
        "vision_answer": ANSWERS.index("cube" if shape else "rubber"),
        "text_answer": ANSWERS.index("sphere" if shape else "metal"),
        "answer_choices": ["cube", "sphere", "cylinder"] if shape else ["rubber", "metal"],
        "image": None,
    }
    doc.update(overrides)
    return doc


def test_choices_and_targets_are_the_rows_own_answer_set() -> None:
    assert task_logic.doc_to_choice(_doc("shape")) == ["cube", "sphere", "cylinder"]
    assert task_logic.doc_to_choice(_doc("material")) == ["rubber", "metal"]
    # The label index is over the union (rubber = 3); the target index is within the row's choices.
    assert task_logic.doc_to_target(_doc("material")) == 0
    assert task_logic.doc_to_target(_doc("material", "text_only")) == 1
    assert task_logic.doc_to_target(_doc("shape")) == 0
    with pytest.raises(ValueError, match="g0000-v02-none.*not the answer set of any dataset"):
        task_logic.doc_to_choice(_doc("shape", answer_choices=["cube", "metal"]))
    with pytest.raises(ValueError, match="vision_answer 'metal' is not in"):
        task_logic.doc_to_target(_doc("shape", vision_answer=ANSWERS.index("metal")))


@pytest.mark.parametrize(
    ("attribute", "reply", "answer"),
    [
        ("shape", "Cubes.", "cube"),
        ("shape", "It is a block", "cube"),
        ("shape", "a ball", "sphere"),
        ("shape", "Cylindrical", "cylinder"),
        ("shape", "metallic", "other"),  # a material word is outside a shape question's choices
        ("shape", "cube or sphere", "other"),
        ("material", "Metallic.", "metal"),
        ("material", "shiny", "metal"),
        ("material", "Matte", "rubber"),
        ("material", "rubber, not metal", "rubber"),
        ("material", "cube", "other"),
        ("material", "plastic", "other"),
    ],
)
def test_free_form_answers_normalise_to_the_rows_choices(attribute: str, reply: str, answer: str) -> None:
    record = task_records.make_record(_doc(attribute), [reply])
    assert record["answer"] == answer
    assert record["attribute"] == attribute and record["answer_choices"] == task_logic.doc_to_choice(
        _doc(attribute)
    )


def test_loglik_scores_two_or_three_candidates() -> None:
    shape = task_records.make_record(
        _doc("shape"), ["(-2.0, False)", "(-0.1, True)", "(-3.0, False)"], mode="loglik"
    )
    material = task_records.make_record(_doc("material"), [(-0.5, False), (-0.9, False)], mode="loglik")
    assert shape["answer"] == "sphere" and len(shape["answer_scores"]) == 3
    assert material["answer"] == "rubber" and material["entropy_estimator"] == "answer_set"
    # Answer-set entropy is over the row's candidates: at most ln 2 for a material row.
    assert 0 < material["entropy"] <= math.log(2) + 1e-12
    with pytest.raises(ValueError, match="3 loglikelihoods for 2 answers"):
        task_records.make_record(_doc("material"), [(-0.5, False)] * 3, mode="loglik")


def test_envelope_logprobs_are_read_for_the_rows_candidates() -> None:
    response = encode_envelope(
        text="metal", entropy=0.4, estimator="full_vocab", answer_logprobs={"rubber": -2.0, "metal": -0.2}
    )
    record = task_records.make_record(_doc("material", "text_only"), [response])
    assert record["answer"] == "metal" and record["answer_scores"] == [-2.0, -0.2]


def test_sampled_answers_use_the_rows_set() -> None:
    record = task_records.make_record(
        _doc("material"), ["metal", "Metallic", "rubber", "cube"], mode="sampled"
    )
    assert record["answer"] == "metal" and record["entropy_estimator"] == "sampled"


def _simulated_records(folder: Path, rng: np.random.Generator) -> list[dict[str, Any]]:
    """A plausible run over a built attribute folder: a model that sees well at low tiers and trusts the
    text more when the image is hard, with entropies that follow."""
    table = DatasetFolder(folder).read_table(
        ["row_id", "condition", "control", "group_id", "item_id", "vision_key", "text_key", "visual_tier",
         "text_tier", "attribute", "vision_answer", "text_answer", "answer_choices"]
    ).to_pylist()  # fmt: skip
    records = []
    for doc in table:
        condition = CONDITIONS[doc["condition"]]
        yv, yt = ANSWERS[doc["vision_answer"]], ANSWERS[doc["text_answer"]]
        if condition == "vision_only":
            reply, entropy = yv, 0.1 + 0.25 * doc["visual_tier"] + 0.05 * rng.random()
        elif condition == "text_only":
            reply, entropy = yt, 0.2 + 0.3 * doc["text_tier"] + 0.05 * rng.random()
        else:
            follow_text = rng.random() < 0.15 + 0.12 * doc["visual_tier"] - 0.1 * doc["text_tier"]
            reply, entropy = (yt if follow_text else yv), 0.5
        response = encode_envelope(text=reply, entropy=float(entropy), estimator="full_vocab")
        records.append(task_records.make_record(doc, [response]))
    return records


def test_report_pools_both_attributes_and_breaks_them_down(attribute_dataset_dir: Path) -> None:
    records = _simulated_records(attribute_dataset_dir, np.random.default_rng(0))
    summary = task_records.summarize_records(records)
    assert summary["status"] == "ok" and summary["attributes"] == ["shape", "material"]
    assert summary["candidates"] == list(ANSWERS)
    by = summary["by_attribute"]
    assert set(by) == {"shape", "material"}
    for attribute, sub in by.items():
        assert sub["status"] == "ok" and sub["attributes"] == [attribute] and "by_attribute" not in sub
        assert "balance_point" in sub and "balance_point_status" in sub and "binned_curve" not in sub
        assert sub["candidates"] == list(task_logic.doc_to_choice(_doc(attribute)))
    assert by["shape"]["n_conflicts"] + by["material"]["n_conflicts"] == summary["n_conflicts"]
    n_text = by["shape"]["n_text"] + by["material"]["n_text"]
    assert n_text == summary["n_text"]
    # Shuffling the records (ranks deliver them in any order) changes nothing.
    shuffled = list(reversed(records))
    assert task_records.summarize_records(shuffled) == summary
