"""Deterministic plan of the colour-conflict set: what each group contains, and its rows.

Every random choice of group ``g`` comes from generators seeded with ``(seed, g)`` through
``numpy.random.SeedSequence`` spawn keys, so a group's rows depend on nothing but the seed and ``g``:
not on the number of groups built, the worker count or the order in which workers finish.

Layout of one group (control ``none``): one target shape of colour Yv, one text colour Yt != Yv, an
image per visual tier (14) and a text per text tier (3). The controls reuse the group's images and add a
direct text about another shape (``text_irrelevant``) or ask about the group's reserved shape, which is
absent from all of its images (``image_irrelevant``), on :data:`CONTROL_VISUAL_TIERS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from modality_conflict.dataset_builder.constants import (
    COLORS,
    CONTROLS,
    QUESTION_TEMPLATE,
    SHAPES,
    VISUAL_TIERS,
)
from modality_conflict.dataset_builder.render import ImageSpec, RenderedImage, render
from modality_conflict.dataset_builder.rows import check_seed_and_group, derangement, seeded_rng
from modality_conflict.dataset_builder.specs import COLOR
from modality_conflict.dataset_builder.texts import ConflictText, draw_text

# First element of the spawn key: keeps the streams for colour blocks and for groups apart.
_KEY_COLOR_BLOCK = 0
_KEY_GROUP = 1


LAYOUT = COLOR.layout


def group_colors(seed: int, group: int) -> tuple[str, str]:
    """Vision and text colour of a group.

    The vision colour cycles through :data:`COLORS` with the group index. Within each block of six
    consecutive groups the text colours are a random derangement of the vision colours: each text
    colour differs from its group's vision colour, is uniform over the five others, and both answers
    stay balanced to within one group over any number of groups.

    Parameters
    ----------
    seed
        Build seed.
    group
        Group index.

    Returns
    -------
    tuple of str
        ``(vision_colour, text_colour)``.
    """
    n = len(COLORS)
    block, pos = divmod(group, n)
    perm = derangement(seeded_rng(seed, _KEY_COLOR_BLOCK, block), n)
    return COLORS[pos], COLORS[int(perm[pos])]


@dataclass(frozen=True)
class GroupPlan:
    """Every choice made for one group.

    Attributes
    ----------
    group_id
        Group index.
    target_shape
        The shape drawn in colour ``vision_color`` in every image of the group.
    absent_shape
        A shape drawn in none of the group's images; the image-irrelevant control asks about it.
    other_shape
        The shape the text-irrelevant control's text talks about (neither of the two above).
    vision_color, text_color
        Yv and Yt (always different).
    image_seeds
        One placement seed per visual tier.
    texts
        ``(text tier, control) -> ConflictText``.
    """

    group_id: int
    target_shape: str
    absent_shape: str
    other_shape: str
    vision_color: str
    text_color: str
    image_seeds: tuple[int, ...]
    texts: tuple[tuple[tuple[int, str], ConflictText], ...]

    def text(self, text_tier: int, control: str) -> ConflictText:
        """Conflict text of ``(text tier, control)``."""
        return dict(self.texts)[(text_tier, control)]

    def asked_shape(self, control: str) -> str:
        """Shape named by the question of a control type."""
        return self.absent_shape if control == "image_irrelevant" else self.target_shape

    def text_shape(self, control: str) -> str:
        """Shape the conflict text of a control type talks about."""
        if control == "text_irrelevant":
            return self.other_shape
        return self.asked_shape(control)

    def image_spec(self, visual_tier: int) -> ImageSpec:
        """Image of one visual tier (shared by all controls and conditions of the group)."""
        return ImageSpec(
            tier=visual_tier,
            target_shape=self.target_shape,
            target_color=self.vision_color,
            distractor_shapes=tuple(s for s in SHAPES if s not in (self.target_shape, self.absent_shape)),
            distractor_colors=tuple(c for c in COLORS if c not in (self.vision_color, self.text_color)),
            seed=self.image_seeds[visual_tier],
        )


def plan_group(seed: int, group: int) -> GroupPlan:
    """Make every random choice of one group.

    Parameters
    ----------
    seed
        Build seed (non-negative integer).
    group
        Group index (non-negative).

    Returns
    -------
    GroupPlan
    """
    check_seed_and_group(seed, group)
    vision_color, text_color = group_colors(seed, group)
    rng = seeded_rng(seed, _KEY_GROUP, group)
    shapes = list(SHAPES)
    target = shapes.pop(int(rng.integers(len(shapes))))
    absent = shapes.pop(int(rng.integers(len(shapes))))
    other = shapes[int(rng.integers(len(shapes)))]
    image_seeds = tuple(int(s) for s in rng.integers(0, 2**63 - 1, size=len(VISUAL_TIERS), dtype=np.int64))
    partial = GroupPlan(group, target, absent, other, vision_color, text_color, image_seeds, ())
    texts = [
        (slot, draw_text(rng, slot[0], partial.text_shape(slot[1]), text_color))
        for slot in LAYOUT.text_slots()
    ]
    return GroupPlan(group, target, absent, other, vision_color, text_color, image_seeds, tuple(texts))


def group_rows(seed: int, group: int) -> list[dict[str, Any]]:
    """All rows of one group, encoded for Arrow (class labels as ints, images as ``{bytes, path}``).

    Parameters
    ----------
    seed
        Build seed.
    group
        Group index.

    Returns
    -------
    list of dict
        Rows in ``LAYOUT.expected_row_ids`` order, ready for ``pyarrow.Table.from_pylist`` with the
        schema of :mod:`modality_conflict.dataset_builder.features`.
    """
    plan = plan_group(seed, group)
    images: dict[int, RenderedImage] = {}

    def image(dv: int) -> RenderedImage:
        if dv not in images:
            images[dv] = render(plan.image_spec(dv))
        return images[dv]

    yv, yt = COLORS.index(plan.vision_color), COLORS.index(plan.text_color)

    def base(control: str) -> dict[str, Any]:
        shape = plan.asked_shape(control)
        return {
            "control": CONTROLS.index(control),
            "group_id": group,
            "shape": shape,
            "question": QUESTION_TEMPLATE.format(shape=shape),
            "vision_answer": yv,
            "text_answer": yt,
            "answer_choices": list(COLORS),
        }

    def visual(dv: int) -> dict[str, Any]:
        img = image(dv)
        return {
            "visual_tier": dv,
            "image": {"bytes": img.png, "path": f"g{group:04d}-v{dv:02d}.png"},
            "target_size": float(img.target_size),
            "num_distractors": img.num_distractors,
            "occlusion": float(img.occlusion),
            "image_width": img.width,
            "image_height": img.height,
        }

    return LAYOUT.group_rows(group, base=base, visual=visual, no_image=_NO_IMAGE, text_of=plan.text)


_NO_IMAGE: dict[str, Any] = {
    "visual_tier": -1,
    "image": None,
    "target_size": -1.0,
    "num_distractors": -1,
    "occlusion": -1.0,
    "image_width": -1,
    "image_height": -1,
}
