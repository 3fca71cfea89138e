"""Hand-written conflict descriptions for the three text difficulty tiers.

The paper paraphrased its descriptions with a language model; this set uses several fixed templates
per tier instead, picked by the seed. Placeholders: ``{a}`` the shape, ``{t}`` the claimed colour,
``{b}`` a neutral intermediary object (tier 1), ``{d}`` a real-world object whose usual colour is the
claimed colour (tier 2). No tier-2 text contains the colour word itself: the reader has to know the
object's colour.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from modality_conflict.dataset_builder.constants import COLORS, TEXT_TIERS

#: Tier 0, direct: the text states the colour.
DIRECT_TEMPLATES: tuple[str, ...] = (
    "The {a} is {t}.",
    "The color of the {a} is {t}.",
    "The {a} has the color {t}.",
    "The {a} is painted {t}.",
)

#: Tier 1, indirect simple: the colour passes through a named intermediary object B.
SIMPLE_TEMPLATES: tuple[str, ...] = (
    "The {a}'s color is the same as the {b}'s. The {b} is {t}.",
    "The {a} has the same color as the {b}. The {b} is {t}.",
    "The {a} and the {b} share one color. The {b} is {t}.",
    "The {a} matches the color of the {b}, and the {b} is {t}.",
)

#: Tier 2, indirect world object: the colour is implied by common knowledge about object D.
WORLD_TEMPLATES: tuple[str, ...] = (
    "The {a}'s color is the same as {d}.",
    "The {a} has the same color as {d}.",
    "The {a} is the color of {d}.",
    "The {a} matches the color of {d}.",
)

TEMPLATES: dict[int, tuple[str, ...]] = {0: DIRECT_TEMPLATES, 1: SIMPLE_TEMPLATES, 2: WORLD_TEMPLATES}
TEMPLATE_PREFIX: dict[int, str] = {0: "direct", 1: "simple", 2: "world"}

#: Intermediary objects of tier 1. They have no typical colour, so the text alone decides it.
INTERMEDIARY_OBJECTS: tuple[str, ...] = (
    "ball",
    "cup",
    "kite",
    "scarf",
    "balloon",
    "notebook",
    "umbrella",
    "towel",
    "ribbon",
    "bucket",
)

#: Real-world objects of tier 2, with the article they take in a sentence.
WORLD_OBJECTS: dict[str, tuple[str, ...]] = {
    "red": ("a ripe tomato", "a fire truck", "a ripe strawberry", "a stop sign"),
    "yellow": ("a ripe banana", "a lemon", "a school bus in the United States", "a canary"),
    "blue": ("a US mailbox", "a sapphire", "a clear sky at noon", "a cornflower"),
    "green": ("an emerald", "a lime", "a fresh blade of grass", "a four-leaf clover"),
    "purple": ("an amethyst", "an eggplant", "a lavender flower", "a ripe plum"),
    "orange": ("a pumpkin", "a carrot", "a tangerine", "a traffic cone"),
}


@dataclass(frozen=True)
class ConflictText:
    """A rendered conflict description.

    Attributes
    ----------
    text
        The sentence(s) shown to the model.
    template_id
        ``"<tier name>-<template index>"``, for example ``"simple-2"``.
    """

    text: str
    template_id: str


def render_text(tier: int, template_index: int, shape: str, color: str, obj_index: int) -> ConflictText:
    """Fill one template.

    Parameters
    ----------
    tier
        Text tier, 0, 1 or 2.
    template_index
        Index into the tier's template list.
    shape
        Shape the text talks about.
    color
        Colour the text claims.
    obj_index
        Index of the intermediary object (tier 1) or of the colour's world object (tier 2); ignored for
        tier 0.

    Returns
    -------
    ConflictText
        The text and its template id.
    """
    if tier not in TEXT_TIERS:
        raise ValueError(f"text tier must be one of {TEXT_TIERS}, got {tier}")
    if color not in COLORS:
        raise ValueError(f"unknown colour {color!r}; expected one of {COLORS}")
    text = fill_template(
        TEMPLATES[tier][template_index],
        tier,
        shape,
        color,
        obj_index,
        intermediaries=INTERMEDIARY_OBJECTS,
        world_objects=WORLD_OBJECTS,
    )
    return ConflictText(text, f"{TEMPLATE_PREFIX[tier]}-{template_index}")


def draw_text(rng: np.random.Generator, tier: int, shape: str, color: str) -> ConflictText:
    """Pick a template (and object) at random and fill it.

    Parameters
    ----------
    rng
        Source of randomness; exactly two integers are drawn, whatever the tier, so later draws from
        the same generator do not depend on the tier.
    tier, shape, color
        As in :func:`render_text`.

    Returns
    -------
    ConflictText
    """
    sizes = (len(INTERMEDIARY_OBJECTS), len(WORLD_OBJECTS[color]))
    template_index, obj_index = draw_indices(rng, len(TEMPLATES[tier]), tier, sizes)
    return render_text(tier, template_index, shape, color, obj_index)


def fill_template(
    template: str,
    tier: int,
    name: str,
    value: str,
    obj_index: int,
    *,
    intermediaries: Sequence[str],
    world_objects: Mapping[str, Sequence[str]],
) -> str:
    """Fill a template of either set: ``{a}`` the subject, ``{t}`` the claimed value, ``{b}`` intermediary
    object ``obj_index`` (tier 1), ``{d}`` the value's world object ``obj_index`` (tier 2)."""
    fields = {"a": name, "t": value}
    if tier == 1:
        fields["b"] = intermediaries[obj_index]
    elif tier == 2:
        fields["d"] = world_objects[value][obj_index]
    return template.format(**fields)


def draw_indices(
    rng: np.random.Generator, n_templates: int, tier: int, pool_sizes: tuple[int, int]
) -> tuple[int, int]:
    """``(template index, object index)``: exactly two integers drawn, whatever the tier, so later draws
    from the same generator do not depend on it. ``pool_sizes`` are the intermediary objects' and the
    claimed value's world objects' counts."""
    template_index = int(rng.integers(n_templates))
    return template_index, int(rng.integers(pool_sizes[0] if tier == 1 else pool_sizes[1]))
