"""Planning of groups and rows, conflict texts and prompts (no files written)."""

from __future__ import annotations

import re
from collections import Counter

import pytest

from modality_conflict.dataset_builder.constants import (
    ANSWER_COMMAND,
    COLORS,
    CONDITIONS,
    CONTROL_VISUAL_TIERS,
    CONTROLS,
)
from modality_conflict.dataset_builder.plan import (
    group_colors,
    group_rows,
    plan_group,
)
from modality_conflict.dataset_builder.prompts import condition_name, item_prompts, prompt_for, row_prompt
from modality_conflict.dataset_builder.specs import COLOR
from modality_conflict.dataset_builder.texts import (
    DIRECT_TEMPLATES,
    SIMPLE_TEMPLATES,
    WORLD_OBJECTS,
    WORLD_TEMPLATES,
    render_text,
)


def test_colours_are_balanced_and_always_conflict() -> None:
    pairs = [group_colors(0, g) for g in range(400)]
    assert all(yv != yt for yv, yt in pairs)
    vision = Counter(yv for yv, _ in pairs)
    text = Counter(yt for _, yt in pairs)
    assert sorted(vision.values()) == [66, 66, 67, 67, 67, 67]
    assert max(text.values()) - min(text.values()) <= 1
    assert set(text) == set(COLORS)
    # The text colour is random: another seed gives other pairs.
    assert pairs != [group_colors(1, g) for g in range(400)]


def test_plan_depends_only_on_seed_and_group() -> None:
    assert plan_group(3, 17) == plan_group(3, 17)
    assert plan_group(3, 17) != plan_group(4, 17)
    plan = plan_group(3, 17)
    assert len({plan.target, plan.absent, plan.irrelevant}) == 3
    for dv in range(14):
        spec = plan.image_spec(dv)
        # Distractors never use either answer colour, the target shape or the reserved absent shape.
        assert plan.vision_value not in spec.distractor_colors
        assert plan.text_value not in spec.distractor_colors
        assert plan.target not in spec.distractor_shapes
        assert plan.absent not in spec.distractor_shapes


def test_group_rows_follow_the_contract() -> None:
    rows = group_rows(11, 4)
    assert [r["row_id"] for r in rows] == COLOR.layout.expected_row_ids(4)
    assert len(rows) == COLOR.layout.rows_per_group() == 14 + 3 + 42 + 2 * (2 * len(CONTROL_VISUAL_TIERS) + 1)
    plan = plan_group(11, 4)
    by_condition = Counter((CONDITIONS[r["condition"]], CONTROLS[r["control"]]) for r in rows)
    assert by_condition[("conflict", "none")] == 42
    assert by_condition[("conflict", "text_irrelevant")] == len(CONTROL_VISUAL_TIERS)
    assert by_condition[("text_only", "image_irrelevant")] == 1
    images: dict[int, bytes] = {}
    for row in rows:
        condition, control = CONDITIONS[row["condition"]], CONTROLS[row["control"]]
        assert row["vision_answer"] != row["text_answer"]
        assert row["answer_choices"] == list(COLORS)
        assert row["question"] == f"What color is the {row['shape']}?"
        if condition == "text_only":
            assert row["image"] is None and row["visual_tier"] == -1
        else:
            # One image per visual tier, shared by every row of the group that shows it.
            assert images.setdefault(row["visual_tier"], row["image"]["bytes"]) == row["image"]["bytes"]
        if condition == "vision_only":
            assert row["text"] == "" and row["text_tier"] == -1
        else:
            mentions_asked = re.search(rf"\b{row['shape']}\b", row["text"]) is not None
            assert mentions_asked == (control != "text_irrelevant")
        if control == "image_irrelevant":
            assert row["shape"] == plan.absent
        else:
            assert row["shape"] == plan.target
        if condition == "conflict":
            assert row["item_id"] == row["row_id"]
            assert row["vision_key"].startswith(f"g0004-v{row['visual_tier']:02d}-")
            assert row["text_key"] == f"g0004-t{row['text_tier']}-{control}"
    assert len(images) == 14


def test_rows_of_a_group_do_not_depend_on_other_groups() -> None:
    assert group_rows(5, 2) == group_rows(5, 2)
    first_image = [r["image"]["bytes"] for r in group_rows(5, 2)[:1]]
    assert first_image != [r["image"]["bytes"] for r in group_rows(5, 3)[:1]]


def test_templates_per_tier_and_world_objects() -> None:
    for templates in (DIRECT_TEMPLATES, SIMPLE_TEMPLATES, WORLD_TEMPLATES):
        assert len(templates) >= 3
    for color, objects in WORLD_OBJECTS.items():
        assert len(objects) >= 3
        for obj in objects:
            # Tier 2 must not give the colour away by name.
            assert not any(re.search(rf"\b{c}\b", obj) for c in COLORS), (color, obj)
    assert render_text(0, 0, "star", "blue", 0).text == "The star is blue."
    simple = render_text(1, 0, "star", "blue", 2)
    assert simple.text == "The star's color is the same as the kite's. The kite is blue."
    assert simple.template_id == "simple-0"
    world = render_text(2, 2, "star", "blue", 1)
    assert world.text == "The star is the color of a sapphire."
    with pytest.raises(ValueError, match="text tier"):
        render_text(3, 0, "star", "blue", 0)
    with pytest.raises(ValueError, match="unknown colour"):
        render_text(0, 0, "star", "pink", 0)


def test_articles_agree_with_every_colour_and_object() -> None:
    for tier, templates in enumerate((DIRECT_TEMPLATES, SIMPLE_TEMPLATES, WORLD_TEMPLATES)):
        for index in range(len(templates)):
            for color in COLORS:
                for obj in range(len(WORLD_OBJECTS[color])):
                    text = render_text(tier, index, "ellipse", color, obj).text
                    assert not re.search(r"\ba [aeiou]", text), text  # "a orange", "a ellipse"
                    assert not re.search(r"\ban [^aeiou\s]", text), text


def test_texts_use_several_templates_over_groups() -> None:
    used = Counter(plan_group(0, g).text(t, "none").template_id for g in range(60) for t in range(3))
    for prefix in ("direct-", "simple-", "world-"):
        assert sum(1 for k in used if k.startswith(prefix)) >= 3


def test_prompts_for_the_three_conditions() -> None:
    q = "What color is the star?"
    assert prompt_for("vision_only", "ignored", q) == f"{q} {ANSWER_COMMAND}"
    assert prompt_for("text_only", "The star is red.", q) == f"The star is red. {q} {ANSWER_COMMAND}"
    assert prompt_for("conflict", "The star is red.", q) == prompt_for("text_only", "The star is red.", q)
    with pytest.raises(ValueError, match="unknown condition"):
        prompt_for("audio", "x", q)
    with pytest.raises(ValueError, match="needs a conflict text"):
        prompt_for("conflict", "", q)
    with pytest.raises(ValueError, match="question is empty"):
        prompt_for("vision_only", "", " ")


def test_prompts_from_rows_without_images() -> None:
    rows = group_rows(2, 0)
    text_row = next(r for r in rows if r["condition"] == CONDITIONS.index("text_only"))
    assert text_row["image"] is None
    assert row_prompt(text_row).startswith(text_row["text"])
    conflict = next(r for r in rows if r["condition"] == CONDITIONS.index("conflict"))
    prompts = item_prompts({**conflict, "image": None, "condition": "conflict"})
    assert prompts["vision_only"] == f"{conflict['question']} {ANSWER_COMMAND}"
    assert prompts["text_only"] == prompts["conflict"] == row_prompt(conflict)
    with pytest.raises(ValueError, match="not a conflict row"):
        item_prompts(text_row)
    assert condition_name(2) == "conflict"
    with pytest.raises(ValueError, match="neither a name nor an index"):
        condition_name(7)


def test_plan_rejects_negative_seed() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        plan_group(-1, 0)
