"""Deterministic plan of the attribute-conflict set: what each group contains, and its rows.

Every random choice of group ``g`` comes from generators seeded with ``(seed, g)`` through
``numpy.random.SeedSequence`` spawn keys, so a group's rows depend on nothing but the seed and ``g``:
not on the number of groups built, the worker count or the order in which workers finish.

Layout of one group (control ``none``): groups alternate between shape and material questions. One
target object (its colour and its other attribute name it; its value of the asked attribute is Yv), one
text value Yt != Yv, an image per visual tier and a text per text tier. The controls reuse the group's
images and add a direct text about another object (``text_irrelevant``) or ask about an object whose
colour is reserved and appears in none of the group's images (``image_irrelevant``), on
:data:`CONTROL_VISUAL_TIERS`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from modality_conflict.dataset_builder.attribute.constants import (
    ANSWERS,
    ATTRIBUTE_VALUES,
    ATTRIBUTES,
    COLORS,
    QUESTION_TEMPLATES,
    VISUAL_TIERS,
)
from modality_conflict.dataset_builder.attribute.render import ImageSpec, RenderedImage, render
from modality_conflict.dataset_builder.attribute.scene import object_name, other_attribute
from modality_conflict.dataset_builder.attribute.texts import ConflictText, draw_text
from modality_conflict.dataset_builder.constants import CONTROLS
from modality_conflict.dataset_builder.rows import check_seed_and_group, derangement, seeded_rng
from modality_conflict.dataset_builder.specs import ATTRIBUTE

# First element of the spawn key: keeps the streams for answer blocks and for groups apart.
_KEY_ANSWER_BLOCK = 0
_KEY_GROUP = 1


LAYOUT = ATTRIBUTE.layout


def group_attribute(group: int) -> str:
    """Attribute asked about in a group: shape for even groups, material for odd ones."""
    return ATTRIBUTES[group % len(ATTRIBUTES)]


def group_answers(seed: int, group: int) -> tuple[str, str]:
    """Vision and text answer of a group.

    Within each attribute, the vision value cycles through the attribute's values with the group
    index; within each block of consecutive groups of one attribute (3 for shape, 2 for material) the
    text values are a random derangement of the vision values. Both answers are balanced to within one
    block, and each text value differs from its group's vision value.

    Returns
    -------
    tuple of str
        ``(vision_value, text_value)``.
    """
    attribute = group_attribute(group)
    values = ATTRIBUTE_VALUES[attribute]
    block, pos = divmod(group // len(ATTRIBUTES), len(values))
    perm = derangement(seeded_rng(seed, _KEY_ANSWER_BLOCK, ATTRIBUTES.index(attribute), block), len(values))
    return values[pos], values[int(perm[pos])]


@dataclass(frozen=True)
class GroupPlan:
    """Every choice made for one group.

    Attributes
    ----------
    group_id
        Group index.
    attribute
        ``"shape"`` or ``"material"``: what the questions ask.
    target_color, target_shape, target_material
        The target in every image of the group (its size is set by the visual tier).
    absent_color
        A colour used by no object of the group's images; the image-irrelevant control asks about an
        object of this colour.
    absent_other
        The other attribute's value in the image-irrelevant object's name.
    irrelevant_color, irrelevant_other
        Name of the object the text-irrelevant control's text talks about (never the target's name).
    vision_value, text_value
        Yv and Yt (always different).
    image_seeds
        One layout seed per visual tier.
    texts
        ``(text tier, control) -> ConflictText``.
    """

    group_id: int
    attribute: str
    target_color: str
    target_shape: str
    target_material: str
    absent_color: str
    absent_other: str
    irrelevant_color: str
    irrelevant_other: str
    vision_value: str
    text_value: str
    image_seeds: tuple[int, ...]
    texts: tuple[tuple[tuple[int, str], ConflictText], ...]

    def text(self, text_tier: int, control: str) -> ConflictText:
        """Conflict text of ``(text tier, control)``."""
        return dict(self.texts)[(text_tier, control)]

    @property
    def target_name(self) -> str:
        """Name of the target, e.g. ``"purple metal object"``."""
        other = self.target_shape if other_attribute(self.attribute) == "shape" else self.target_material
        return object_name(self.attribute, self.target_color, other)

    def asked_name(self, control: str) -> str:
        """Name of the object the question of a control type asks about."""
        if control == "image_irrelevant":
            return object_name(self.attribute, self.absent_color, self.absent_other)
        return self.target_name

    def text_name(self, control: str) -> str:
        """Name of the object the conflict text of a control type talks about."""
        if control == "text_irrelevant":
            return object_name(self.attribute, self.irrelevant_color, self.irrelevant_other)
        return self.asked_name(control)

    def image_spec(self, visual_tier: int) -> ImageSpec:
        """Image of one visual tier (shared by all controls and conditions of the group)."""
        return ImageSpec(
            tier=visual_tier,
            attribute=self.attribute,
            target_shape=self.target_shape,
            target_color=self.target_color,
            target_material=self.target_material,
            absent_colors=(self.absent_color,),
            seed=self.image_seeds[visual_tier],
        )


def _pick(rng: np.random.Generator, pool: tuple[str, ...] | list[str]) -> str:
    return pool[int(rng.integers(len(pool)))]


def plan_group(seed: int, group: int) -> GroupPlan:
    """Make every random choice of group ``group`` of a build with seed ``seed`` (both non-negative)."""
    check_seed_and_group(seed, group)
    attribute = group_attribute(group)
    vision_value, text_value = group_answers(seed, group)
    rng = seeded_rng(seed, _KEY_GROUP, group)
    other_values = ATTRIBUTE_VALUES[other_attribute(attribute)]
    colors = list(COLORS)
    target_color = colors.pop(int(rng.integers(len(colors))))
    absent_color = colors.pop(int(rng.integers(len(colors))))
    irrelevant_color = _pick(rng, colors)
    target_other = _pick(rng, other_values)
    absent_other = _pick(rng, other_values)
    irrelevant_other = _pick(rng, other_values)
    if attribute == "shape":
        target_shape, target_material = vision_value, target_other
    else:
        target_shape, target_material = target_other, vision_value
    image_seeds = tuple(int(s) for s in rng.integers(0, 2**63 - 1, size=len(VISUAL_TIERS), dtype=np.int64))
    plan = GroupPlan(
        group_id=group,
        attribute=attribute,
        target_color=target_color,
        target_shape=target_shape,
        target_material=target_material,
        absent_color=absent_color,
        absent_other=absent_other,
        irrelevant_color=irrelevant_color,
        irrelevant_other=irrelevant_other,
        vision_value=vision_value,
        text_value=text_value,
        image_seeds=image_seeds,
        texts=(),
    )
    texts = [
        (slot, draw_text(rng, slot[0], attribute, plan.text_name(slot[1]), text_value))
        for slot in LAYOUT.text_slots()
    ]
    return replace(plan, texts=tuple(texts))


_NO_IMAGE: dict[str, Any] = {
    "visual_tier": -1,
    "image": None,
    "target_scale": "",
    "target_size": -1.0,
    "num_objects": -1,
    "num_distractors": -1,
    "num_occluders": -1,
    "occlusion": -1.0,
    "image_width": -1,
    "image_height": -1,
    "scene": "",
}


def _image_columns(group: int, dv: int, img: RenderedImage) -> dict[str, Any]:
    return {
        "visual_tier": dv,
        "image": {"bytes": img.png, "path": f"g{group:04d}-v{dv:02d}.png"},
        "target_scale": img.scene.target_object.size,
        "target_size": float(img.target_size),
        "num_objects": img.num_objects,
        "num_distractors": img.num_objects - 1,
        "num_occluders": img.num_occluders,
        "occlusion": float(img.occlusion),
        "image_width": img.width,
        "image_height": img.height,
        "scene": json.dumps(img.scene.to_json(), sort_keys=True, separators=(",", ":")),
    }


def group_rows(seed: int, group: int) -> list[dict[str, Any]]:
    """All rows of one group, encoded for Arrow, as the colour set's
    :func:`~modality_conflict.dataset_builder.plan.group_rows` gives them."""
    plan = plan_group(seed, group)
    images: dict[int, dict[str, Any]] = {}

    def visual(dv: int) -> dict[str, Any]:
        if dv not in images:
            images[dv] = _image_columns(group, dv, render(plan.image_spec(dv)))
        return images[dv]

    choices = list(ATTRIBUTE_VALUES[plan.attribute])

    def base(control: str) -> dict[str, Any]:
        name = plan.asked_name(control)
        return {
            "control": CONTROLS.index(control),
            "group_id": group,
            "attribute": ATTRIBUTES.index(plan.attribute),
            "target": name,
            "question": QUESTION_TEMPLATES[plan.attribute].format(name=name),
            "vision_answer": ANSWERS.index(plan.vision_value),
            "text_answer": ANSWERS.index(plan.text_value),
            "answer_choices": choices,
        }

    return LAYOUT.group_rows(group, base=base, visual=visual, no_image=_NO_IMAGE, text_of=plan.text)
