"""Fixed vocabulary: what both sets share (conditions, controls, text tiers, the answer command, the layout
of a built folder) and the colour-recognition set's own (colours, shapes, visual tiers).

Everything that changes the bytes of a built dataset lives here, next to :data:`BUILDER_VERSION`;
bump the version whenever a value below (or the drawing code) changes.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Version of the generation procedure, recorded in the manifest. Same version + same arguments
#: = byte-identical output (on the same pyarrow / zlib versions).
BUILDER_VERSION = "1.0.1"

#: Answer colours, in ClassLabel order. This order is part of the contract of every module.
COLORS: tuple[str, ...] = ("red", "yellow", "blue", "green", "purple", "orange")

#: Free-form colour words mapped to the answer they name, for answer normalisation. Not part of the built
#: bytes (changing it changes how answers are read, not the dataset).
COLOR_SYNONYMS: dict[str, str] = {
    # Only words whose colour is unambiguous among the six; e.g. "cyan", "olive" and "amber" are left out
    # because they sit between two candidates.
    "violet": "purple",
    "lilac": "purple",
    "lavender": "purple",
    "mauve": "purple",
    "magenta": "purple",
    "plum": "purple",
    "purplish": "purple",
    "crimson": "red",
    "scarlet": "red",
    "maroon": "red",
    "vermilion": "red",
    "reddish": "red",
    "navy": "blue",
    "azure": "blue",
    "cobalt": "blue",
    "sapphire": "blue",
    "bluish": "blue",
    "blueish": "blue",
    "emerald": "green",
    "lime": "green",
    "greenish": "green",
    "gold": "yellow",
    "golden": "yellow",
    "lemon": "yellow",
    "yellowish": "yellow",
    "tangerine": "orange",
    "orangish": "orange",
    "orangey": "orange",
    "orangeish": "orange",
}

#: RGB values used to paint each colour: saturated, far apart, so the named colour is unambiguous.
COLOR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "yellow": (250, 210, 0),
    "blue": (30, 70, 220),
    "green": (20, 150, 40),
    "purple": (130, 40, 180),
    "orange": (250, 130, 0),
}

#: Canvas colour.
BACKGROUND_RGB: tuple[int, int, int] = (255, 255, 255)

#: Shapes that can be targets or distractors. Every group reserves one shape that appears in none of
#: its images (the shape asked about by the image-irrelevant control).
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "hexagon", "diamond", "pentagon", "cross")

#: Conditions (ClassLabel order): which inputs the model sees.
CONDITIONS: tuple[str, ...] = ("vision_only", "text_only", "conflict")

#: Control types (ClassLabel order). "none" is the main set.
CONTROLS: tuple[str, ...] = ("none", "text_irrelevant", "image_irrelevant")

#: Text difficulty tiers: 0 direct, 1 indirect through a named intermediary object, 2 indirect through a
#: real-world object whose colour is common knowledge.
TEXT_TIERS: tuple[int, ...] = (0, 1, 2)
TEXT_TIER_NAMES: tuple[str, ...] = ("direct", "indirect_simple", "indirect_world_object")

#: Visual tiers on which the two control types are built, always with the direct text tier. Five tiers
#: spread over both canvas sizes, from the easiest to the hardest, so that following rates of the
#: controls can be read across the whole range of visual uncertainty while keeping the set small
#: (22 extra rows per group instead of 118 for a full copy).
CONTROL_VISUAL_TIERS: tuple[int, ...] = (0, 4, 7, 10, 13)
CONTROL_TEXT_TIER = 0

#: Question asked about the target shape, and the answer instruction appended to every prompt.
QUESTION_TEMPLATE = "What color is the {shape}?"
ANSWER_COMMAND = "Please use one word to answer this question."

#: Lower bound on the share of the target's pixels left visible after occluding distractors are drawn,
#: so that every image still has a recoverable answer.
MIN_TARGET_VISIBLE = 0.5

#: Groups per parquet shard (about 15 MB of PNG per 100 groups: shards stay far below the Hub's
#: recommended size while paper-size builds still get more than one file).
GROUPS_PER_SHARD = 200

#: Named sizes of the set. "paper" is the size used in arXiv 2511.02243.
PRESETS: dict[str, int] = {"small": 12, "paper": 400}

SPLIT = "test"
DATASET_NAME = "modality-conflict-colour"
DATASET_LICENSE = "cc-by-4.0"
PAPER_ARXIV_ID = "2511.02243"


@dataclass(frozen=True)
class VisualTier:
    """One row of the visual difficulty table.

    ``index``: Tier number ``dv`` (0 easiest .. 13 hardest).
    ``size_min``, ``size_max``: Side of the target's bounding box in pixels (inclusive range). Distractors use
        the same range, so the target cannot be singled out by its size.
    ``occlusion``: Nominal share of the distractors that overlap the target.
    """

    index: int
    width: int
    height: int
    size_min: int
    size_max: int
    num_distractors: int
    occlusion: float

    @property
    def num_overlapping(self) -> int:
        """Number of distractors placed over the target (nominal share, rounded half up)."""
        return int(self.occlusion * self.num_distractors + 0.5)


def _relative_tier(index: int, lo: float, hi: float, distractors: int, occlusion: float) -> VisualTier:
    # The paper gives the size of tiers 5-13 as a share of the image. The column is a length for tiers
    # 0-4 (pixels), so it is read as a length here too: share of the 224 px side.
    side = 224
    return VisualTier(index, side, side, round(lo * side), round(hi * side), distractors, occlusion)


#: The 14 visual tiers of the paper's table, indexed by ``dv``.
VISUAL_TIERS: tuple[VisualTier, ...] = (
    VisualTier(0, 800, 600, 80, 200, 0, 0.0),
    VisualTier(1, 800, 600, 80, 200, 1, 0.0),
    VisualTier(2, 800, 600, 80, 200, 2, 0.0),
    VisualTier(3, 800, 600, 80, 200, 3, 0.0),
    VisualTier(4, 800, 600, 80, 200, 4, 0.0),
    _relative_tier(5, 0.20, 0.40, 7, 0.5),
    _relative_tier(6, 0.20, 0.40, 10, 0.8),
    _relative_tier(7, 0.05, 0.10, 7, 0.5),
    _relative_tier(8, 0.05, 0.10, 11, 0.8),
    _relative_tier(9, 0.04, 0.06, 20, 0.3),
    _relative_tier(10, 0.04, 0.06, 30, 0.6),
    _relative_tier(11, 0.04, 0.06, 40, 0.5),
    _relative_tier(12, 0.04, 0.06, 55, 0.6),
    _relative_tier(13, 0.04, 0.06, 70, 0.7),
)
