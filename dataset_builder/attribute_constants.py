"""Fixed vocabulary of the attribute-recognition set: objects, scene geometry, tiers, presets.

Everything that changes the bytes of a built dataset lives here, next to :data:`BUILDER_VERSION`; bump
the version whenever a value below, the scene sampler or the renderer changes.
"""

from __future__ import annotations

from dataclasses import dataclass

from modality_conflict.dataset_builder.constants import MIN_TARGET_VISIBLE

#: Version of the generation procedure, recorded in the manifest. Same version + same arguments
#: = byte-identical output (on the same numpy / Pillow / pyarrow / zlib versions).
BUILDER_VERSION = "1.0.0"

# ---------------------------------------------------------------------------------------------------
# Object vocabulary (CLEVR's)
# ---------------------------------------------------------------------------------------------------

#: Object shapes, in answer order.
SHAPES: tuple[str, ...] = ("cube", "sphere", "cylinder")

#: Object materials, in answer order.
MATERIALS: tuple[str, ...] = ("rubber", "metal")

#: Object colours and their RGB values (CLEVR's palette, used as linear albedo by the renderer).
COLORS: tuple[str, ...] = ("gray", "red", "blue", "green", "brown", "purple", "cyan", "yellow")
COLOR_RGB: dict[str, tuple[int, int, int]] = {
    "gray": (87, 87, 87),
    "red": (173, 35, 35),
    "blue": (42, 75, 215),
    "green": (29, 105, 20),
    "brown": (129, 74, 25),
    "purple": (129, 38, 192),
    "cyan": (41, 208, 208),
    "yellow": (255, 238, 51),
}

#: Object sizes and their radius in scene units (CLEVR's). A sphere's radius, a cylinder's radius and
#: half-height, and a cube's half-side times sqrt(2) (so a cube's footprint circle has this radius).
SIZES: tuple[str, ...] = ("large", "small")
SIZE_RADIUS: dict[str, float] = {"large": 0.7, "small": 0.35}

#: Questions are about one of two attributes; the other one (with the colour) names the target.
ATTRIBUTES: tuple[str, ...] = ("shape", "material")

#: Answer values of each attribute (a row's ``answer_choices``).
ATTRIBUTE_VALUES: dict[str, tuple[str, ...]] = {"shape": SHAPES, "material": MATERIALS}

#: ClassLabel names of ``vision_answer`` and ``text_answer``: the union of both answer sets. Each
#: row's own closed set is its ``answer_choices``. This order is part of the contract of every module.
ANSWERS: tuple[str, ...] = SHAPES + MATERIALS

#: Free-form words mapped to the answer they name, for answer normalisation (plurals are added by the
#: normaliser). Only words that name one value unambiguously: "square" and "circle" (flat names often
#: given for a cube and a sphere), "round" (a sphere or a cylinder), "plastic" and "glossy" are left out.
#: Normalisation looks words up among the row's own ``answer_choices`` only, so "metallic" answered to a
#: shape question is "other". Not part of the built bytes.
ANSWER_SYNONYMS: dict[str, str] = {
    "cubic": "cube",
    "cuboid": "cube",
    "block": "cube",
    "box": "cube",
    "spherical": "sphere",
    "ball": "sphere",
    "orb": "sphere",
    "cylindrical": "cylinder",
    "rubbery": "rubber",
    "matte": "rubber",
    "matt": "rubber",
    "metallic": "metal",
    "metalic": "metal",
    "shiny": "metal",
    "chrome": "metal",
    "steel": "metal",
}

# ---------------------------------------------------------------------------------------------------
# Questions (conditions, controls, text tiers, the answer command and the layout: dataset_builder.constants)
# ---------------------------------------------------------------------------------------------------

#: Questions per attribute. The target is named by its colour and its other attribute.
QUESTION_TEMPLATES: dict[str, str] = {
    "shape": "What shape is the {name}?",
    "material": "What material is the {name}?",
}


# ---------------------------------------------------------------------------------------------------
# Scene geometry and camera
# ---------------------------------------------------------------------------------------------------

#: Objects stand on the ground plane z = 0 with their centres in [-EXTENT, EXTENT]^2 (CLEVR's area).
SCENE_EXTENT = 3.0

#: Smallest gap between the footprint circles of two objects (scene units).
MIN_OBJECT_GAP = 0.15

#: Camera looking at the scene centre from above and in front (about 32 degrees below the horizon),
#: with a horizontal field of view of about 49 degrees (tangent of the half-angle given directly, so
#: the camera set-up needs no trigonometry).
CAMERA_POSITION: tuple[float, float, float] = (7.0, -6.4, 5.9)
CAMERA_LOOK_AT: tuple[float, float, float] = (0.0, 0.0, 0.0)
CAMERA_HALF_WIDTH_TAN = 0.4557
#: Each image moves the camera by up to this much along every axis (CLEVR jitters its camera too).
CAMERA_JITTER = 0.3

#: Image size in pixels, and the supersampling factor per axis (2 = 2x2 rays per pixel).
IMAGE_WIDTH = 320
IMAGE_HEIGHT = 240
SUPERSAMPLE = 2

#: Visible share above which a target counts as unoccluded (anti-aliasing noise at the silhouette).
UNOCCLUDED_VISIBLE = 0.98
#: Every object shows at least this many pixels and lies entirely inside the frame, so the object
#: count of a tier is what a viewer can count (CLEVR asks for 200 px at 480x320).
MIN_OBJECT_PIXELS = 60
FRAME_MARGIN_PX = 2

#: Attempts at sampling a scene that passes every check before the renderer gives up.
SCENE_ATTEMPTS = 200


@dataclass(frozen=True)
class VisualTier:
    """One row of the visual difficulty table.

    ``index``: Tier number ``dv`` (0 easiest).
    ``num_objects``: Objects in the scene, the target included.
    ``target_size``: ``"large"`` or ``"small"``: the target's size (distractors take either size).
    ``visible_min``, ``visible_max``: Allowed share of the target's pixels left visible. ``visible_min >=
        UNOCCLUDED_VISIBLE`` means no occlusion; otherwise one object is placed between the camera and the
        target.
    """

    index: int
    num_objects: int
    target_size: str
    visible_min: float
    visible_max: float

    @property
    def occluded(self) -> bool:
        """True when the tier hides part of the target behind another object."""
        return self.visible_min < UNOCCLUDED_VISIBLE


#: The visual tiers. Tiers 0, 1, 3, 5 step through the paper's object counts (3, 6, 10, 15); tier 2
#: isolates the target size (tier 1 with a small target) and tier 4 isolates occlusion (tier 3 with the
#: target partly hidden).
VISUAL_TIERS: tuple[VisualTier, ...] = (
    VisualTier(0, 3, "large", UNOCCLUDED_VISIBLE, 1.0),
    VisualTier(1, 6, "large", UNOCCLUDED_VISIBLE, 1.0),
    VisualTier(2, 6, "small", UNOCCLUDED_VISIBLE, 1.0),
    VisualTier(3, 10, "small", UNOCCLUDED_VISIBLE, 1.0),
    VisualTier(4, 10, "small", MIN_TARGET_VISIBLE, 0.85),
    VisualTier(5, 15, "small", MIN_TARGET_VISIBLE, 0.85),
)

#: Visual tiers on which the two controls are built, always with the direct text: the easiest, the
#: size step and the hardest, so control following rates span the range of visual difficulty.
CONTROL_VISUAL_TIERS: tuple[int, ...] = (0, 2, 5)

# ---------------------------------------------------------------------------------------------------
# Dataset layout
# ---------------------------------------------------------------------------------------------------

#: Named sizes of the set (groups; shape and material questions alternate, half of each).
PRESETS: dict[str, int] = {"small": 12, "medium": 48, "paper": 400}

DATASET_NAME = "modality-conflict-attribute"
