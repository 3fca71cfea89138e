"""Plan and texts: answers, choices, names, controls and text tiers (no rendering needed)."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from modality_conflict.dataset_builder.attribute_constants import (
    ANSWERS,
    ATTRIBUTE_VALUES,
    COLORS,
    CONTROL_VISUAL_TIERS,
    VISUAL_TIERS,
)
from modality_conflict.dataset_builder.constants import CONTROLS, TEXT_TIERS
from modality_conflict.dataset_builder.plan import group_answers, group_attribute
from modality_conflict.dataset_builder.plan import plan_attribute_group as plan_group
from modality_conflict.dataset_builder.specs import ATTRIBUTE
from modality_conflict.dataset_builder.texts import ATTRIBUTE_TEXTS

INTERMEDIARY_OBJECTS = ATTRIBUTE_TEXTS.intermediaries
WORLD_OBJECTS = ATTRIBUTE_TEXTS.world_objects
claimed_value = ATTRIBUTE_TEXTS.claimed_value
render_text = ATTRIBUTE_TEXTS.render

GROUPS = range(60)


def test_rows_per_group_and_per_condition() -> None:
    v, c = len(VISUAL_TIERS), len(CONTROL_VISUAL_TIERS)
    assert ATTRIBUTE.layout.rows_per_group() == (v + 3 + 3 * v) + 2 * (c + 1 + c) == 41
    counts = ATTRIBUTE.layout.rows_per_condition(10)
    assert counts["none"] == {"vision_only": 10 * v, "text_only": 30, "conflict": 30 * v}
    assert (
        counts["text_irrelevant"]
        == counts["image_irrelevant"]
        == {
            "vision_only": 10 * c,
            "text_only": 10,
            "conflict": 10 * c,
        }
    )
    assert sum(sum(x.values()) for x in counts.values()) == 10 * ATTRIBUTE.layout.rows_per_group()
    assert len(set(ATTRIBUTE.layout.expected_row_ids(7))) == ATTRIBUTE.layout.rows_per_group()


def test_answers_differ_and_are_balanced() -> None:
    vision: dict[str, Counter[str]] = {"shape": Counter(), "material": Counter()}
    text: dict[str, Counter[str]] = {"shape": Counter(), "material": Counter()}
    for g in GROUPS:
        attribute = group_attribute(g)
        yv, yt = group_answers(0, g)
        assert yv != yt and {yv, yt} <= set(ATTRIBUTE_VALUES[attribute])
        vision[attribute][yv] += 1
        text[attribute][yt] += 1
    assert (
        vision
        == text
        == {
            "shape": Counter({v: 10 for v in ATTRIBUTE_VALUES["shape"]}),
            "material": Counter({v: 15 for v in ATTRIBUTE_VALUES["material"]}),
        }
    )


def test_plans_are_pure_functions_of_seed_and_group() -> None:
    assert plan_group(3, 17) == plan_group(3, 17)
    assert plan_group(3, 17) != plan_group(4, 17)
    with pytest.raises(ValueError, match="non-negative"):
        plan_group(-1, 0)


@pytest.mark.parametrize("group", GROUPS)
def test_group_names_texts_and_controls(group: int) -> None:
    plan = plan_group(0, group)
    attribute = plan.attribute
    value = plan.target_shape if attribute == "shape" else plan.target_material
    assert value == plan.vision_value
    assert plan.absent_color != plan.target_color
    assert plan.irrelevant_color not in (plan.target_color, plan.absent_color)
    assert plan.asked("image_irrelevant").startswith(plan.absent_color + " ")
    assert plan.text_subject("text_irrelevant") != plan.target
    assert plan.image_spec(0).absent_colors == (plan.absent_color,)
    for control in CONTROLS:
        for dt in ATTRIBUTE.layout.control_tiers(control)[1]:
            text = plan.text(dt, control)
            # Every text tier reads back as the text answer, and talks about the right object.
            assert claimed_value(text.text, attribute, dt) == plan.text_value
            assert plan.text_subject(control) in text.text
            if control == "text_irrelevant":
                assert plan.asked(control) not in text.text
            assert text.template_id.startswith(("direct-", "simple-", "world-")[dt] + attribute)


@pytest.mark.parametrize("attribute", ["shape", "material"])
def test_every_template_parses_back(attribute: str) -> None:
    name = "purple metal object" if attribute == "shape" else "red cylinder"
    for tier in TEXT_TIERS:
        for index in range(len(ATTRIBUTE_TEXTS.templates[attribute][tier])):
            for value in ATTRIBUTE_VALUES[attribute]:
                pool = INTERMEDIARY_OBJECTS if tier == 1 else WORLD_OBJECTS[value]
                for obj in range(len(pool) if tier else 1):
                    text = render_text(tier, attribute, index, name, value, obj).text
                    assert claimed_value(text, attribute, tier) == value, text
                    assert name in text
                    if tier == 2:
                        # The reader must know the object: no answer word appears.
                        assert not any(re.search(rf"\b{a}\b", text) for a in ATTRIBUTE_VALUES[attribute])


def test_vocabulary_words_do_not_collide() -> None:
    words = set(ANSWERS) | set(COLORS)
    assert not words & set(INTERMEDIARY_OBJECTS)
    phrases = [p for pool in WORLD_OBJECTS.values() for p in pool]
    assert len(phrases) == len(set(phrases))
    assert all(not any(q != p and q in p for q in phrases) for p in phrases)
