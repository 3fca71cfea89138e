"""Hand-written conflict descriptions for the three text tiers, per attribute.

Several fixed templates per tier and attribute, picked by the seed. Placeholders: ``{a}`` the object's
name (``"purple metal object"``, ``"red cylinder"``), ``{t}`` the claimed value, ``{b}`` a made-up
intermediary object (tier 1: it has no shape or material of its own, so only the text decides), ``{d}``
a real-world object whose shape or material is common knowledge (tier 2). No tier-2 text contains an
answer word of its attribute: the reader has to know the object.
"""

from __future__ import annotations

import re

import numpy as np

from modality_conflict.dataset_builder.attribute.constants import ATTRIBUTE_VALUES, ATTRIBUTES
from modality_conflict.dataset_builder.constants import TEXT_TIERS
from modality_conflict.dataset_builder.texts import TEMPLATE_PREFIX, ConflictText, draw_indices, fill_template

#: Tier 0, direct: the text states the value.
DIRECT_TEMPLATES: dict[str, tuple[str, ...]] = {
    "shape": (
        "The {a} is a {t}.",
        "The {a} has the shape of a {t}.",
        "The {a} is shaped like a {t}.",
        "The {a} takes the form of a {t}.",
    ),
    "material": (
        "The {a} is made of {t}.",
        "The material of the {a} is {t}.",
        "The {a} is made from {t}.",
        "The {a} consists of {t}.",
    ),
}

#: Tier 1, indirect simple: the value passes through an intermediary object B (two hops).
SIMPLE_TEMPLATES: dict[str, tuple[str, ...]] = {
    "shape": (
        "The {a} has the same shape as the {b}. The {b} is a {t}.",
        "The {a} and the {b} share one shape. The {b} is a {t}.",
        "The {a} is shaped like the {b}, and the {b} is a {t}.",
        "The {b} is a {t}. The {a} has the same shape as the {b}.",
    ),
    "material": (
        "The {a} is made of the same material as the {b}. The {b} is made of {t}.",
        "The {a} and the {b} share one material. The {b} is made of {t}.",
        "The {a} is made of whatever the {b} is made of, and the {b} is made of {t}.",
        "The {b} is made of {t}. The {a} is made of the same material as the {b}.",
    ),
}

#: Tier 2, indirect world object: the value is implied by common knowledge about object D.
WORLD_TEMPLATES: dict[str, tuple[str, ...]] = {
    "shape": (
        "The {a} has the same shape as {d}.",
        "The {a} is shaped like {d}.",
        "The {a} has the shape of {d}.",
        "The {a} and {d} have the same shape.",
    ),
    "material": (
        "The {a} is made of the same material as {d}.",
        "The {a} is made of the same stuff as {d}.",
        "The {a} and {d} are made of the same material.",
        "The {a} shares its material with {d}.",
    ),
}

TEMPLATES: dict[int, dict[str, tuple[str, ...]]] = {
    0: DIRECT_TEMPLATES,
    1: SIMPLE_TEMPLATES,
    2: WORLD_TEMPLATES,
}

#: Intermediary objects of tier 1: made-up names, so no shape or material is implied by the word.
INTERMEDIARY_OBJECTS: tuple[str, ...] = ("dax", "wug", "blicket", "toma", "fep", "zorb", "kiki", "modi")

#: Real-world objects of tier 2 for each value, with the article they take in a sentence.
WORLD_OBJECTS: dict[str, tuple[str, ...]] = {
    "cube": ("a die", "a sugar lump", "a board-game die"),
    "sphere": ("a basketball", "a marble", "a globe", "a pearl"),
    "cylinder": ("a soup can", "a hockey puck", "an AA battery", "a pillar candle"),
    "rubber": ("a car tire", "a pencil eraser", "a rain boot", "a bicycle inner tube"),
    "metal": ("a steel spoon", "a paper clip", "a door key", "a coin"),
}


def _check(tier: int, attribute: str, value: str) -> None:
    if tier not in TEXT_TIERS:
        raise ValueError(f"text tier must be one of {TEXT_TIERS}, got {tier}")
    if attribute not in ATTRIBUTES:
        raise ValueError(f"unknown attribute {attribute!r}; expected one of {list(ATTRIBUTES)}")
    if value not in ATTRIBUTE_VALUES[attribute]:
        raise ValueError(
            f"{value!r} is not a {attribute}; expected one of {list(ATTRIBUTE_VALUES[attribute])}"
        )


def render_text(
    tier: int, attribute: str, template_index: int, name: str, value: str, obj_index: int
) -> ConflictText:
    """Fill one template.

    Parameters
    ----------
    tier
        Text tier, 0, 1 or 2.
    attribute
        ``"shape"`` or ``"material"``.
    template_index
        Index into the tier's templates for the attribute.
    name
        The object the text talks about, e.g. ``"purple metal object"``.
    value
        The value the text claims.
    obj_index
        Index of the intermediary object (tier 1) or of the value's world object (tier 2); ignored for
        tier 0.

    Returns
    -------
    ConflictText
    """
    _check(tier, attribute, value)
    text = fill_template(
        TEMPLATES[tier][attribute][template_index],
        tier,
        name,
        value,
        obj_index,
        intermediaries=INTERMEDIARY_OBJECTS,
        world_objects=WORLD_OBJECTS,
    )
    return ConflictText(text, f"{TEMPLATE_PREFIX[tier]}-{attribute}-{template_index}")


def draw_text(rng: np.random.Generator, tier: int, attribute: str, name: str, value: str) -> ConflictText:
    """Pick a template (and object) at random and fill it.

    Parameters
    ----------
    rng
        Source of randomness; exactly two integers are drawn, whatever the tier, so later draws from
        the same generator do not depend on the tier.
    tier, attribute, name, value
        As in :func:`render_text`.

    Returns
    -------
    ConflictText
    """
    _check(tier, attribute, value)
    sizes = (len(INTERMEDIARY_OBJECTS), len(WORLD_OBJECTS[value]))
    template_index, obj_index = draw_indices(rng, len(TEMPLATES[tier][attribute]), tier, sizes)
    return render_text(tier, attribute, template_index, name, value, obj_index)


def claimed_value(text: str, attribute: str, tier: int) -> str | None:
    """The value a conflict text claims, read back from the sentence (None when it is not exactly one).

    Tiers 0 and 1 name the value; tier 2 names a world object, which is mapped to its value. The
    object's name in the text uses the other attribute, so it never contains a value of this one.
    """
    if tier in (0, 1):
        found = {v for v in ATTRIBUTE_VALUES[attribute] if re.search(rf"\b{v}\b", text)}
    else:
        found = {v for v in ATTRIBUTE_VALUES[attribute] for d in WORLD_OBJECTS[v] if d in text}
    return found.pop() if len(found) == 1 else None
