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

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modality_conflict.dataset_builder.constants import (
    COLORS,
    CONDITIONS,
    CONTROL_TEXT_TIER,
    CONTROL_VISUAL_TIERS,
    CONTROLS,
    QUESTION_TEMPLATE,
    SHAPES,
    TEXT_TIERS,
    VISUAL_TIERS,
)
from modality_conflict.dataset_builder.render import ImageSpec, RenderedImage, render
from modality_conflict.dataset_builder.texts import ConflictText, draw_text

# First element of the spawn key: keeps the streams for colour blocks and for groups apart.
_KEY_COLOR_BLOCK = 0
_KEY_GROUP = 1


def seeded_rng(seed: int, *key: int) -> np.random.Generator:
    """A generator that depends on the build seed and ``key`` only (``SeedSequence`` spawn keys)."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=key))


def vision_key(group: int, visual_tier: int, control: str) -> str:
    """Key of the vision-only row of ``(group, visual tier, control)``."""
    return f"g{group:04d}-v{visual_tier:02d}-{control}"


def text_key(group: int, text_tier: int, control: str) -> str:
    """Key of the text-only row of ``(group, text tier, control)``."""
    return f"g{group:04d}-t{text_tier}-{control}"


def item_id(group: int, visual_tier: int, text_tier: int, control: str) -> str:
    """Id of the conflict item ``(group, visual tier, text tier, control)``."""
    return f"g{group:04d}-v{visual_tier:02d}-t{text_tier}-{control}"


def control_tiers(control: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Visual and text tiers built for one control type.

    Parameters
    ----------
    control
        One of :data:`CONTROLS`.

    Returns
    -------
    tuple
        ``(visual_tiers, text_tiers)``.
    """
    if control == "none":
        return tuple(t.index for t in VISUAL_TIERS), TEXT_TIERS
    if control in CONTROLS:
        return CONTROL_VISUAL_TIERS, (CONTROL_TEXT_TIER,)
    raise ValueError(f"unknown control {control!r}; expected one of {list(CONTROLS)}")


def expected_row_ids(group: int) -> list[str]:
    """Row ids of one group, in the order the builder writes them.

    Parameters
    ----------
    group
        Group index.

    Returns
    -------
    list of str
    """
    ids: list[str] = []
    for control in CONTROLS:
        vtiers, ttiers = control_tiers(control)
        ids += [vision_key(group, dv, control) for dv in vtiers]
        ids += [text_key(group, dt, control) for dt in ttiers]
        ids += [item_id(group, dv, dt, control) for dv in vtiers for dt in ttiers]
    return ids


def rows_per_group() -> int:
    """Number of rows each group contributes."""
    return len(expected_row_ids(0))


def derangement(rng: np.random.Generator, n: int) -> np.ndarray:
    """A uniform random permutation of ``range(n)`` without fixed points (rejection sampling)."""
    while True:
        perm = rng.permutation(n)
        if not np.any(perm == np.arange(n)):
            return perm


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
    if seed < 0 or group < 0:
        raise ValueError(f"seed and group must be non-negative, got seed={seed}, group={group}")
    vision_color, text_color = group_colors(seed, group)
    rng = seeded_rng(seed, _KEY_GROUP, group)
    shapes = list(SHAPES)
    target = shapes.pop(int(rng.integers(len(shapes))))
    absent = shapes.pop(int(rng.integers(len(shapes))))
    other = shapes[int(rng.integers(len(shapes)))]
    image_seeds = tuple(int(s) for s in rng.integers(0, 2**63 - 1, size=len(VISUAL_TIERS), dtype=np.int64))
    partial = GroupPlan(group, target, absent, other, vision_color, text_color, image_seeds, ())
    texts = []
    for control in CONTROLS:
        for dt in control_tiers(control)[1]:
            texts.append(((dt, control), draw_text(rng, dt, partial.text_shape(control), text_color)))
    return GroupPlan(group, target, absent, other, vision_color, text_color, image_seeds, tuple(texts))


def unit_rows(
    group: int,
    control: str,
    vtiers: Sequence[int],
    ttiers: Sequence[int],
    *,
    base: dict[str, Any],
    visual: Callable[[int], dict[str, Any]],
    no_image: dict[str, Any],
    text_of: Callable[[int], Any],
) -> list[dict[str, Any]]:
    """The rows of one control of a group, in :func:`expected_row_ids` order: its vision-only, text-only
    and conflict rows, with the join keys that tie each conflict to its unimodal rows.

    ``base`` holds the columns every row shares, ``visual(dv)`` the image columns of visual tier ``dv``,
    ``no_image`` those of a row without an image and ``text_of(dt)`` the text (``.text``,
    ``.template_id``) of text tier ``dt``. Both datasets build their rows through this function.
    """
    cond = {name: i for i, name in enumerate(CONDITIONS)}
    rows: list[dict[str, Any]] = []
    for dv in vtiers:
        key = vision_key(group, dv, control)
        rows.append(
            {
                **base,
                **visual(dv),
                "row_id": key,
                "condition": cond["vision_only"],
                "item_id": "",
                "vision_key": key,
                "text_key": "",
                "text_tier": -1,
                "text": "",
                "template_id": "",
            }
        )
    for dt in ttiers:
        key = text_key(group, dt, control)
        text = text_of(dt)
        rows.append(
            {
                **base,
                **no_image,
                "row_id": key,
                "condition": cond["text_only"],
                "item_id": "",
                "vision_key": "",
                "text_key": key,
                "text_tier": dt,
                "text": text.text,
                "template_id": text.template_id,
            }
        )
    for dv in vtiers:
        for dt in ttiers:
            iid = item_id(group, dv, dt, control)
            text = text_of(dt)
            rows.append(
                {
                    **base,
                    **visual(dv),
                    "row_id": iid,
                    "condition": cond["conflict"],
                    "item_id": iid,
                    "vision_key": vision_key(group, dv, control),
                    "text_key": text_key(group, dt, control),
                    "text_tier": dt,
                    "text": text.text,
                    "template_id": text.template_id,
                }
            )
    return rows


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
        Rows in :func:`expected_row_ids` order, ready for ``pyarrow.Table.from_pylist`` with the
        schema of :mod:`modality_conflict.dataset_builder.features`.
    """
    plan = plan_group(seed, group)
    images: dict[int, RenderedImage] = {}

    def image(dv: int) -> RenderedImage:
        if dv not in images:
            images[dv] = render(plan.image_spec(dv))
        return images[dv]

    yv, yt = COLORS.index(plan.vision_color), COLORS.index(plan.text_color)
    rows: list[dict[str, Any]] = []
    for control in CONTROLS:
        vtiers, ttiers = control_tiers(control)
        shape = plan.asked_shape(control)
        base = {
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

        no_image = {
            "visual_tier": -1,
            "image": None,
            "target_size": -1.0,
            "num_distractors": -1,
            "occlusion": -1.0,
            "image_width": -1,
            "image_height": -1,
        }
        rows += unit_rows(
            group,
            control,
            vtiers,
            ttiers,
            base=base,
            visual=visual,
            no_image=no_image,
            text_of=lambda dt, control=control: plan.text(dt, control),
        )
    return rows
