"""Deterministic plan of either set: each kind's choices for a group, and the rows of a group, written once.

Every random choice of group ``g`` comes from generators seeded with ``(seed, g)`` through
``numpy.random.SeedSequence`` spawn keys, so a group's rows depend on nothing but the seed and ``g``:
not on the number of groups built, the worker count or the order in which workers finish.

A group (control ``none``) has one target, a vision answer Yv, a text answer Yt != Yv, an image per visual
tier and a text per text tier. The controls reuse the group's images and add a direct text about another
target (``text_irrelevant``) or ask about a target that is in none of the group's images
(``image_irrelevant``). The colour set's target is a shape of colour Yv (:func:`plan_group`); the
attribute set alternates shape and material questions about an object named by its colour and its other
attribute (:func:`plan_attribute_group`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar

import numpy as np

from modality_conflict.dataset_builder import render as shape_render
from modality_conflict.dataset_builder import scene_render
from modality_conflict.dataset_builder.attribute_constants import (
    ATTRIBUTE_VALUES,
    ATTRIBUTES,
    QUESTION_TEMPLATES,
)
from modality_conflict.dataset_builder.attribute_constants import COLORS as OBJECT_COLORS
from modality_conflict.dataset_builder.attribute_constants import VISUAL_TIERS as SCENE_TIERS
from modality_conflict.dataset_builder.constants import (
    COLORS,
    CONTROLS,
    QUESTION_TEMPLATE,
    SHAPES,
    VISUAL_TIERS,
)
from modality_conflict.dataset_builder.rows import check_seed_and_group, derangement, seeded_rng
from modality_conflict.dataset_builder.scene import object_name, other_attribute
from modality_conflict.dataset_builder.specs import ATTRIBUTE, COLOR, DatasetKind, dataset_kind
from modality_conflict.dataset_builder.texts import ATTRIBUTE_TEXTS, COLOR_TEXTS, ConflictText

# First element of the spawn key: keeps the streams for answer blocks and for groups apart.
_KEY_BLOCK = 0
_KEY_GROUP = 1

LAYOUT = COLOR.layout


@dataclass(frozen=True, kw_only=True)
class GroupChoices:
    """What a group of either kind holds: its id, the asked ``attribute``, Yv and Yt, what its questions and
    texts name (the ``target``; ``absent``, in none of its images, asked by ``image_irrelevant``;
    ``irrelevant``, which ``text_irrelevant`` texts talk about), a layout seed per visual tier and the
    conflict text of each ``(text tier, control)``; each kind adds its own choices."""

    kind: ClassVar[DatasetKind]
    group_id: int
    attribute: str
    vision_value: str
    text_value: str
    target: str
    absent: str
    irrelevant: str
    image_seeds: tuple[int, ...]
    texts: tuple[tuple[tuple[int, str], ConflictText], ...] = ()

    def text(self, text_tier: int, control: str) -> ConflictText:
        """Conflict text of ``(text tier, control)``."""
        return dict(self.texts)[(text_tier, control)]

    def asked(self, control: str) -> str:
        """What the question of a control type names."""
        return self.absent if control == "image_irrelevant" else self.target

    def text_subject(self, control: str) -> str:
        """What the conflict text of a control type talks about."""
        return self.irrelevant if control == "text_irrelevant" else self.asked(control)

    def question(self, subject: str) -> str:
        """The kind's question about the group's attribute of ``subject``."""
        raise NotImplementedError

    def question_columns(self, control: str) -> dict[str, Any]:
        """The columns of a control's rows that say what is asked and the answers."""
        asked, kind = self.asked(control), self.kind
        # The kind's subject columns: the attribute's label, or what the question names.
        subject = {
            c: kind.attributes.index(self.attribute) if t == "label" else asked
            for c, t in kind.subject_columns
        }
        return {
            **subject,
            "question": self.question(asked),
            "vision_answer": kind.answer_labels.index(self.vision_value),
            "text_answer": kind.answer_labels.index(self.text_value),
            "answer_choices": list(kind.answer_sets[self.attribute]),
        }

    def image_spec(self, visual_tier: int) -> Any:
        """What the kind's renderer needs to draw the image of one visual tier."""
        raise NotImplementedError

    @staticmethod
    def render(spec: Any) -> Any:
        """The kind's renderer: an image spec to a rendered image with ``png`` and ``layout_columns()``."""
        raise NotImplementedError

    def draw(self, visual_tier: int) -> tuple[bytes, dict[str, Any]]:
        """PNG bytes and layout columns of one visual tier's image."""
        img = self.render(self.image_spec(visual_tier))
        return img.png, img.layout_columns()


def _image_seeds(rng: np.random.Generator, tiers: int) -> tuple[int, ...]:
    return tuple(int(s) for s in rng.integers(0, 2**63 - 1, size=tiers, dtype=np.int64))


def group_colors(seed: int, group: int) -> tuple[str, str]:
    """``(vision colour, text colour)`` of a colour group.

    The vision colour cycles through :data:`COLORS` with the group index. Within each block of six
    consecutive groups the text colours are a random derangement of the vision colours: each text
    colour differs from its group's vision colour, is uniform over the five others, and both answers
    stay balanced to within one group over any number of groups.
    """
    n = len(COLORS)
    block, pos = divmod(group, n)
    perm = derangement(seeded_rng(seed, _KEY_BLOCK, block), n)
    return COLORS[pos], COLORS[int(perm[pos])]


@dataclass(frozen=True, kw_only=True)
class GroupPlan(GroupChoices):
    """Every choice made for one colour group: the shapes it names (the ``target``, drawn in Yv), Yv and Yt, a
    placement seed per visual tier and the text of each ``(text tier, control)``."""

    kind = COLOR
    attribute: str = "color"
    render = staticmethod(shape_render.render)

    def question(self, subject: str) -> str:
        """The question about the colour of shape ``subject``."""
        return QUESTION_TEMPLATE.format(shape=subject)

    def image_spec(self, visual_tier: int) -> shape_render.ImageSpec:
        """Image of one visual tier (shared by all controls and conditions of the group)."""
        return shape_render.ImageSpec(
            tier=visual_tier,
            target_shape=self.target,
            target_color=self.vision_value,
            distractor_shapes=tuple(s for s in SHAPES if s not in (self.target, self.absent)),
            distractor_colors=tuple(c for c in COLORS if c not in (self.vision_value, self.text_value)),
            seed=self.image_seeds[visual_tier],
        )


def plan_group(seed: int, group: int) -> GroupPlan:
    """Make every random choice of colour group ``group`` of a build with seed ``seed`` (both
    non-negative)."""
    check_seed_and_group(seed, group)
    vision_color, text_color = group_colors(seed, group)
    rng = seeded_rng(seed, _KEY_GROUP, group)
    shapes = list(SHAPES)
    target = shapes.pop(int(rng.integers(len(shapes))))
    absent = shapes.pop(int(rng.integers(len(shapes))))
    other = shapes[int(rng.integers(len(shapes)))]
    plan = GroupPlan(
        group_id=group,
        target=target,
        absent=absent,
        irrelevant=other,
        vision_value=vision_color,
        text_value=text_color,
        image_seeds=_image_seeds(rng, len(VISUAL_TIERS)),
    )
    texts = [
        (slot, COLOR_TEXTS.draw(rng, slot[0], "color", plan.text_subject(slot[1]), text_color))
        for slot in LAYOUT.text_slots()
    ]
    return replace(plan, texts=tuple(texts))


def group_attribute(group: int) -> str:
    """Attribute asked about in an attribute group: shape for even groups, material for odd ones."""
    return ATTRIBUTES[group % len(ATTRIBUTES)]


def group_answers(seed: int, group: int) -> tuple[str, str]:
    """``(vision value, text value)`` of an attribute group.

    Within each attribute, the vision value cycles through the attribute's values with the group
    index; within each block of consecutive groups of one attribute (3 for shape, 2 for material) the
    text values are a random derangement of the vision values. Both answers are balanced to within one
    block, and each text value differs from its group's vision value.
    """
    attribute = group_attribute(group)
    values = ATTRIBUTE_VALUES[attribute]
    block, pos = divmod(group // len(ATTRIBUTES), len(values))
    perm = derangement(seeded_rng(seed, _KEY_BLOCK, ATTRIBUTES.index(attribute), block), len(values))
    return values[pos], values[int(perm[pos])]


@dataclass(frozen=True, kw_only=True)
class AttributeGroupPlan(GroupChoices):
    """Every choice made for one attribute group: the asked ``attribute``, the target (its size is set by
    the visual tier), the colour no object of its images takes (naming ``absent``), the colour naming
    ``irrelevant``, the names, Yv and Yt, a layout seed per visual tier and the text of each
    ``(text tier, control)``."""

    kind = ATTRIBUTE
    target_color: str
    target_shape: str
    target_material: str
    absent_color: str
    irrelevant_color: str
    render = staticmethod(scene_render.render)

    def question(self, subject: str) -> str:
        """The question about the group's attribute of the object named ``subject``."""
        return QUESTION_TEMPLATES[self.attribute].format(name=subject)

    def image_spec(self, visual_tier: int) -> scene_render.ImageSpec:
        """Image of one visual tier (shared by all controls and conditions of the group)."""
        return scene_render.ImageSpec(
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


def plan_attribute_group(seed: int, group: int) -> AttributeGroupPlan:
    """Make every random choice of attribute group ``group`` of a build with seed ``seed`` (both
    non-negative)."""
    check_seed_and_group(seed, group)
    attribute = group_attribute(group)
    vision_value, text_value = group_answers(seed, group)
    rng = seeded_rng(seed, _KEY_GROUP, group)
    other_values = ATTRIBUTE_VALUES[other_attribute(attribute)]
    colors = list(OBJECT_COLORS)
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
    plan = AttributeGroupPlan(
        group_id=group,
        attribute=attribute,
        target_color=target_color,
        target_shape=target_shape,
        target_material=target_material,
        absent_color=absent_color,
        irrelevant_color=irrelevant_color,
        target=object_name(attribute, target_color, target_other),
        absent=object_name(attribute, absent_color, absent_other),
        irrelevant=object_name(attribute, irrelevant_color, irrelevant_other),
        vision_value=vision_value,
        text_value=text_value,
        image_seeds=_image_seeds(rng, len(SCENE_TIERS)),
    )
    texts = [
        (slot, ATTRIBUTE_TEXTS.draw(rng, slot[0], attribute, plan.text_subject(slot[1]), text_value))
        for slot in LAYOUT.text_slots()
    ]
    return replace(plan, texts=tuple(texts))


#: Each kind's planner, by its key.
PLANNERS = {COLOR.key: plan_group, ATTRIBUTE.key: plan_attribute_group}


def _no_image(kind: DatasetKind) -> dict[str, Any]:
    # The layout columns of a row without an image: "" for strings, -1 for numbers.
    missing = {"string": "", "float32": -1.0}
    return {"visual_tier": -1, "image": None, **{c: missing.get(t, -1) for c, t in kind.layout_columns}}


def group_rows(seed: int, group: int, kind: str = COLOR.key) -> list[dict[str, Any]]:
    """All rows of one group of dataset ``kind``, encoded for Arrow (class labels as ints, images as
    ``{bytes, path}``), in ``layout.expected_row_ids`` order, ready for ``pyarrow.Table.from_pylist``
    with the kind's schema."""
    spec = dataset_kind(kind)
    plan: GroupChoices = PLANNERS[spec.key](seed, group)
    images: dict[int, dict[str, Any]] = {}

    def visual(dv: int) -> dict[str, Any]:
        if dv not in images:
            png, layout = plan.draw(dv)
            images[dv] = {
                "visual_tier": dv,
                "image": {"bytes": png, "path": f"g{group:04d}-v{dv:02d}.png"},
                **layout,
            }
        return images[dv]

    def base(control: str) -> dict[str, Any]:
        return {"control": CONTROLS.index(control), "group_id": group, **plan.question_columns(control)}

    return spec.layout.group_rows(
        group, base=base, visual=visual, no_image=_no_image(spec), text_of=plan.text
    )
