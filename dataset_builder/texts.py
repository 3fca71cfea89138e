"""Hand-written conflict descriptions for the three text difficulty tiers.

The paper paraphrased its descriptions with a language model; this set uses several fixed templates
per tier instead, picked by the seed. Placeholders: ``{a}`` the shape, ``{t}`` the claimed colour,
``{b}`` a neutral intermediary object (tier 1), ``{d}`` a real-world object whose usual colour is the
claimed colour (tier 2). No tier-2 text contains the colour word itself: the reader has to know the
object's colour.
"""

from __future__ import annotations

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
_TEMPLATE_PREFIX: dict[int, str] = {0: "direct", 1: "simple", 2: "world"}

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
    templates = TEMPLATES[tier]
    template = templates[template_index]
    fields = {"a": shape, "t": color}
    if tier == 1:
        fields["b"] = INTERMEDIARY_OBJECTS[obj_index]
    elif tier == 2:
        fields["d"] = WORLD_OBJECTS[color][obj_index]
    return ConflictText(template.format(**fields), f"{_TEMPLATE_PREFIX[tier]}-{template_index}")


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
    template_index = int(rng.integers(len(TEMPLATES[tier])))
    pool = INTERMEDIARY_OBJECTS if tier == 1 else WORLD_OBJECTS[color]
    obj_index = int(rng.integers(len(pool)))
    return render_text(tier, template_index, shape, color, obj_index)
