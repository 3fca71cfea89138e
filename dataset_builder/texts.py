"""Hand-written conflict descriptions for the three text tiers, one :class:`TextTemplates` per dataset.

Several fixed templates per attribute and tier, picked by the seed (the paper paraphrased with a language
model). Placeholders: ``{a}`` what the text talks about (a shape; an object's name such as ``"purple metal
object"``), ``{t}`` the claimed value, ``{b}`` an intermediary object with no value of its own (tier 1),
``{d}`` a real-world object whose value is common knowledge (tier 2). No tier-2 text contains the claimed
value's word: the reader has to know the object.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from modality_conflict.dataset_builder.attribute_constants import ATTRIBUTE_VALUES
from modality_conflict.dataset_builder.constants import COLORS, TEXT_TIERS

if TYPE_CHECKING:
    import numpy as np

#: Colour set, tier 0, direct: the text states the colour.
DIRECT_TEMPLATES: tuple[str, ...] = (
    "The {a} is {t}.",
    "The color of the {a} is {t}.",
    "The {a} has the color {t}.",
    "The {a} is painted {t}.",
)

#: Colour set, tier 1, indirect simple: the colour passes through a named intermediary object B.
SIMPLE_TEMPLATES: tuple[str, ...] = (
    "The {a}'s color is the same as the {b}'s. The {b} is {t}.",
    "The {a} has the same color as the {b}. The {b} is {t}.",
    "The {a} and the {b} share one color. The {b} is {t}.",
    "The {a} matches the color of the {b}, and the {b} is {t}.",
)

#: Colour set, tier 2, indirect world object: the colour is implied by common knowledge about object D.
WORLD_TEMPLATES: tuple[str, ...] = (
    "The {a}'s color is the same as {d}.",
    "The {a} has the same color as {d}.",
    "The {a} is the color of {d}.",
    "The {a} matches the color of {d}.",
)

TEMPLATES: dict[int, tuple[str, ...]] = {0: DIRECT_TEMPLATES, 1: SIMPLE_TEMPLATES, 2: WORLD_TEMPLATES}
TEMPLATE_PREFIX: dict[int, str] = {0: "direct", 1: "simple", 2: "world"}

#: Intermediary objects of the colour set's tier 1. They have no typical colour, so the text alone decides it.
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

#: Real-world objects of the colour set's tier 2, with the article they take in a sentence.
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
    """A conflict description and its ``template_id`` (``"<tier name>-[<attribute>-]<index>"``)."""

    text: str
    template_id: str


@dataclass(frozen=True)
class TextTemplates:
    """One dataset's conflict texts: the values a text may claim and its templates, per attribute and tier,
    tier 1's intermediary objects and tier 2's world objects per value."""

    values: Mapping[str, tuple[str, ...]]
    templates: Mapping[str, Mapping[int, tuple[str, ...]]]
    intermediaries: tuple[str, ...]
    world_objects: Mapping[str, tuple[str, ...]]

    def _check(self, tier: int, attribute: str, value: str) -> None:
        if tier not in TEXT_TIERS:
            raise ValueError(f"text tier must be one of {TEXT_TIERS}, got {tier}")
        if attribute not in self.values:
            raise ValueError(f"unknown attribute {attribute!r}; expected one of {list(self.values)}")
        if value not in self.values[attribute]:
            noun = "colour" if attribute == "color" else attribute
            raise ValueError(f"unknown {noun} {value!r}; expected one of {list(self.values[attribute])}")

    def render(
        self, tier: int, attribute: str, template_index: int, name: str, value: str, obj_index: int
    ) -> ConflictText:
        """Fill template ``template_index`` of ``(attribute, tier)`` about ``name`` claiming ``value``;
        ``obj_index`` picks the intermediary (tier 1) or the value's world object (tier 2)."""
        self._check(tier, attribute, value)
        fields = {"a": name, "t": value}
        if tier == 1:
            fields["b"] = self.intermediaries[obj_index]
        elif tier == 2:
            fields["d"] = self.world_objects[value][obj_index]
        text = self.templates[attribute][tier][template_index].format(**fields)
        # A set with one attribute leaves it out of the id ("simple-2"; "simple-shape-2" otherwise).
        middle = f"{attribute}-" if len(self.values) > 1 else ""
        return ConflictText(text, f"{TEMPLATE_PREFIX[tier]}-{middle}{template_index}")

    def draw(
        self, rng: np.random.Generator, tier: int, attribute: str, name: str, value: str
    ) -> ConflictText:
        """Pick a template and an object at random and fill them. Exactly two integers are drawn,
        whatever the tier, so later draws from the same generator do not depend on it."""
        self._check(tier, attribute, value)
        template_index = int(rng.integers(len(self.templates[attribute][tier])))
        pool = self.intermediaries if tier == 1 else self.world_objects[value]
        return self.render(tier, attribute, template_index, name, value, int(rng.integers(len(pool))))

    def claimed_value(self, text: str, attribute: str, tier: int) -> str | None:
        """The value a conflict text claims, read back from the sentence (None when it is not exactly one):
        tiers 0 and 1 name it, tier 2 names one of its world objects."""
        if tier in (0, 1):
            found = {v for v in self.values[attribute] if re.search(rf"\b{v}\b", text)}
        else:
            found = {v for v in self.values[attribute] for d in self.world_objects[v] if d in text}
        return found.pop() if len(found) == 1 else None


COLOR_TEXTS = TextTemplates(
    values={"color": COLORS},
    templates={"color": TEMPLATES},
    intermediaries=INTERMEDIARY_OBJECTS,
    world_objects=WORLD_OBJECTS,
)


def render_text(tier: int, template_index: int, shape: str, color: str, obj_index: int) -> ConflictText:
    """Fill one template of the colour set (:meth:`TextTemplates.render`)."""
    return COLOR_TEXTS.render(tier, "color", template_index, shape, color, obj_index)


ATTRIBUTE_TEXTS = TextTemplates(
    values=ATTRIBUTE_VALUES,
    templates={
        "shape": {
            0: (
                "The {a} is a {t}.",
                "The {a} has the shape of a {t}.",
                "The {a} is shaped like a {t}.",
                "The {a} takes the form of a {t}.",
            ),
            # Tier 1 goes through two hops, B being a made-up object that implies nothing.
            1: (
                "The {a} has the same shape as the {b}. The {b} is a {t}.",
                "The {a} and the {b} share one shape. The {b} is a {t}.",
                "The {a} is shaped like the {b}, and the {b} is a {t}.",
                "The {b} is a {t}. The {a} has the same shape as the {b}.",
            ),
            2: (
                "The {a} has the same shape as {d}.",
                "The {a} is shaped like {d}.",
                "The {a} has the shape of {d}.",
                "The {a} and {d} have the same shape.",
            ),
        },
        "material": {
            0: (
                "The {a} is made of {t}.",
                "The material of the {a} is {t}.",
                "The {a} is made from {t}.",
                "The {a} consists of {t}.",
            ),
            1: (
                "The {a} is made of the same material as the {b}. The {b} is made of {t}.",
                "The {a} and the {b} share one material. The {b} is made of {t}.",
                "The {a} is made of whatever the {b} is made of, and the {b} is made of {t}.",
                "The {b} is made of {t}. The {a} is made of the same material as the {b}.",
            ),
            2: (
                "The {a} is made of the same material as {d}.",
                "The {a} is made of the same stuff as {d}.",
                "The {a} and {d} are made of the same material.",
                "The {a} shares its material with {d}.",
            ),
        },
    },
    intermediaries=("dax", "wug", "blicket", "toma", "fep", "zorb", "kiki", "modi"),
    world_objects={
        "cube": ("a die", "a sugar lump", "a board-game die"),
        "sphere": ("a basketball", "a marble", "a globe", "a pearl"),
        "cylinder": ("a soup can", "a hockey puck", "an AA battery", "a pillar candle"),
        "rubber": ("a car tire", "a pencil eraser", "a rain boot", "a bicycle inner tube"),
        "metal": ("a steel spoon", "a paper clip", "a door key", "a coin"),
    },
)
