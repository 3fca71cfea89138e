"""Scene descriptions and the seeded sampler of object layouts.

A :class:`Scene` is a list of objects on the ground plane plus the camera position; it says nothing
about pixels. :func:`sample_scene` draws one layout for a visual tier with CLEVR's rules (objects inside
the scene area, footprints apart, random sizes and attributes), keeps the target's name unique and, in
occluded tiers, puts one large object between the camera and the target. Whether the layout passes the
pixel checks (visibility, framing) is decided by :mod:`scene_render`, which asks for another layout
when it does not.

Geometry uses only exactly rounded operations (+, -, *, /, sqrt) so that a seed gives the same floats
on every machine; cube rotations come from the rational parametrisation of the unit circle instead of
``cos``/``sin``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from modality_conflict.dataset_builder.attribute_constants import (
    ATTRIBUTES,
    CAMERA_JITTER,
    CAMERA_POSITION,
    COLORS,
    FRAME_MARGIN_PX,
    IMAGE_HEIGHT,
    IMAGE_WIDTH,
    MATERIALS,
    MIN_OBJECT_GAP,
    SCENE_EXTENT,
    SHAPES,
    SIZE_RADIUS,
    SIZES,
    VisualTier,
)
from modality_conflict.dataset_builder.camera import Camera, Vec3
from modality_conflict.dataset_builder.errors import SceneError

#: tan(22.5 degrees): half-angle tangents in [-T, T] give cube rotations in [-45, 45] degrees, which
#: covers every orientation of a cube about its vertical axis.
_TAN_QUARTER_RIGHT_ANGLE = 0.41421356237309503
#: Half-side of a cube relative to its size radius (1 / sqrt(2), CLEVR's convention).
_CUBE_HALF_SIDE = 0.7071067811865476
_PLACEMENT_TRIES = 300


@dataclass(frozen=True)
class SceneObject:
    """One object standing on the ground.

    ``shape``, ``color``, ``material``, ``size``: CLEVR attributes (see :mod:`attribute_constants`).
    ``x``, ``y``: Centre of the footprint on the ground plane.
    ``cos_rot``, ``sin_rot``: Rotation about the vertical axis (only visible for cubes).
    """

    shape: str
    color: str
    material: str
    size: str
    x: float
    y: float
    cos_rot: float = 1.0
    sin_rot: float = 0.0

    def __post_init__(self) -> None:
        for value, allowed, field in (
            (self.shape, SHAPES, "shape"),
            (self.color, COLORS, "color"),
            (self.material, MATERIALS, "material"),
            (self.size, SIZES, "size"),
        ):
            if value not in allowed:
                raise SceneError(f"object {field} {value!r} is not one of {list(allowed)}")

    @property
    def radius(self) -> float:
        """Size radius: a sphere's radius, a cylinder's radius, a cube's footprint circle."""
        return SIZE_RADIUS[self.size]

    @property
    def half_side(self) -> float:
        """Half the side of a cube of this size."""
        return self.radius * _CUBE_HALF_SIDE

    @property
    def height(self) -> float:
        """Height of the object's top above the ground."""
        return 2.0 * self.half_side if self.shape == "cube" else 2.0 * self.radius

    def value(self, attribute: str) -> str:
        """The object's value of ``"shape"``, ``"material"``, ``"color"`` or ``"size"``."""
        if attribute not in ("shape", "material", "color", "size"):
            raise ValueError(f"unknown attribute {attribute!r}")
        return str(getattr(self, attribute))

    def to_json(self) -> dict[str, object]:
        """Attributes and position, for the row's ``scene`` column."""
        return {
            "shape": self.shape,
            "color": self.color,
            "material": self.material,
            "size": self.size,
            "x": round(self.x, 4),
            "y": round(self.y, 4),
            "rotation": [round(self.cos_rot, 6), round(self.sin_rot, 6)],
        }


def other_attribute(attribute: str) -> str:
    """The attribute that, with the colour, names the target of a question about ``attribute``."""
    if attribute not in ATTRIBUTES:
        raise ValueError(f"unknown attribute {attribute!r}; expected one of {list(ATTRIBUTES)}")
    return "material" if attribute == "shape" else "shape"


def object_name(attribute: str, color: str, other_value: str) -> str:
    """How a question about ``attribute`` names its object.

    ``object_name("shape", "purple", "metal")`` is ``"purple metal object"``;
    ``object_name("material", "red", "cylinder")`` is ``"red cylinder"``.
    """
    allowed = MATERIALS if attribute == "shape" else SHAPES
    if other_value not in allowed:
        raise ValueError(f"{other_value!r} cannot name an object in a {attribute} question")
    if color not in COLORS:
        raise ValueError(f"unknown colour {color!r}")
    return f"{color} {other_value} object" if attribute == "shape" else f"{color} {other_value}"


def matches_name(obj: SceneObject, attribute: str, color: str, other_value: str) -> bool:
    """True when ``obj`` fits the name a question about ``attribute`` uses."""
    return obj.color == color and obj.value(other_attribute(attribute)) == other_value


@dataclass(frozen=True)
class Scene:
    """Objects, the index of the target among them and the camera position.

    ``objects``: Every object; ``objects[target]`` is the one the questions ask about.
    ``attribute``: Attribute the questions ask about (decides how the target is named).
    ``camera``: Camera position (the camera always looks at the scene centre).
    """

    objects: tuple[SceneObject, ...]
    target: int
    attribute: str
    camera: Vec3

    @property
    def target_object(self) -> SceneObject:
        """The object the questions are about."""
        return self.objects[self.target]

    @property
    def target_name(self) -> str:
        """The target's name in questions, e.g. ``"purple metal object"``."""
        t = self.target_object
        return object_name(self.attribute, t.color, t.value(other_attribute(self.attribute)))

    def count_matching(self, color: str, other_value: str) -> int:
        """Number of objects a name ``(color, other value)`` fits."""
        return sum(matches_name(o, self.attribute, color, other_value) for o in self.objects)

    def to_json(self) -> dict[str, object]:
        """Scene graph of the image (CLEVR-like), stored with every image row."""
        return {
            "objects": [o.to_json() for o in self.objects],
            "target": self.target,
            "camera": [round(c, 4) for c in self.camera],
        }


def check_scene(scene: Scene, *, absent_colors: tuple[str, ...] = ()) -> None:
    """Raise :class:`SceneError` unless the scene is a valid test image.

    Checks: the target's name fits exactly one object (the target), no colour of ``absent_colors`` is
    used, footprints lie inside the scene area and do not overlap.
    """
    t = scene.target_object
    other_value = t.value(other_attribute(scene.attribute))
    count = scene.count_matching(t.color, other_value)
    if count != 1:
        raise SceneError(f"the name {scene.target_name!r} fits {count} objects, expected exactly one")
    for i, o in enumerate(scene.objects):
        if o.color in absent_colors:
            raise SceneError(f"object {i} is {o.color}, a colour reserved as absent from the scene")
        if max(abs(o.x), abs(o.y)) > SCENE_EXTENT + 1e-9:
            raise SceneError(f"object {i} at ({o.x:.3f}, {o.y:.3f}) lies outside the scene area")
        for j in range(i):
            p = scene.objects[j]
            if math.hypot(o.x - p.x, o.y - p.y) < o.radius + p.radius:
                raise SceneError(f"objects {j} and {i} overlap")


def _rotation(rng: np.random.Generator) -> tuple[float, float]:
    t = (2.0 * float(rng.random()) - 1.0) * _TAN_QUARTER_RIGHT_ANGLE
    d = 1.0 + t * t
    return (1.0 - t * t) / d, 2.0 * t / d


def _fits(x: float, y: float, radius: float, placed: list[SceneObject]) -> bool:
    for p in placed:
        dx, dy = x - p.x, y - p.y
        gap = radius + p.radius + MIN_OBJECT_GAP
        if dx * dx + dy * dy < gap * gap:
            return False
    return True


def _inside(x: float, y: float) -> bool:
    return -SCENE_EXTENT <= x <= SCENE_EXTENT and -SCENE_EXTENT <= y <= SCENE_EXTENT


def draw_camera_position(rng: np.random.Generator) -> Vec3:
    """The camera position of one image: :data:`CAMERA_POSITION` moved by up to ``CAMERA_JITTER``."""
    j = [CAMERA_JITTER * (2.0 * float(v) - 1.0) for v in rng.random(3)]
    return (CAMERA_POSITION[0] + j[0], CAMERA_POSITION[1] + j[1], CAMERA_POSITION[2] + j[2])


def _in_frame(camera: Camera, x: float, y: float, radius: float, height: float) -> bool:
    box = camera.box_on_screen(x, y, radius, height)
    if box is None:
        return False
    mu, mv = FRAME_MARGIN_PX / IMAGE_WIDTH, FRAME_MARGIN_PX / IMAGE_HEIGHT
    return box[0] >= mu and box[1] >= mv and box[2] <= 1.0 - mu and box[3] <= 1.0 - mv


def _height(shape: str, size: str) -> float:
    radius = SIZE_RADIUS[size]
    return 2.0 * radius * _CUBE_HALF_SIDE if shape == "cube" else 2.0 * radius


def _draw_distractor(
    rng: np.random.Generator, attribute: str, target: SceneObject, colors: tuple[str, ...]
) -> tuple[str, str, str, str]:
    """Attributes of one distractor whose name differs from the target's."""
    naming = other_attribute(attribute)
    while True:
        shape = SHAPES[int(rng.integers(len(SHAPES)))]
        color = colors[int(rng.integers(len(colors)))]
        material = MATERIALS[int(rng.integers(len(MATERIALS)))]
        size = SIZES[int(rng.integers(len(SIZES)))]
        other = shape if naming == "shape" else material
        if not (color == target.color and other == target.value(naming)):
            return shape, color, material, size


def sample_scene(
    rng: np.random.Generator,
    tier: VisualTier,
    *,
    attribute: str,
    target_shape: str,
    target_color: str,
    target_material: str,
    camera: Camera,
    absent_colors: tuple[str, ...] = (),
) -> Scene:
    """Draw one layout of ``tier`` around the given target.

    ``rng``: Source of every random choice (positions, rotations, distractor attributes).
    ``tier``: Visual tier: object count, target size and whether an occluder is placed.
    ``attribute``: Attribute the questions ask about; no distractor shares the target's name.
    ``target_shape``, ``target_color``, ``target_material``: The target's attributes (its size comes from the
        tier).
    ``camera``: The image's camera: every object is placed so that it lies entirely inside the frame.
    ``absent_colors``: Colours no object may take (reserved for the image-irrelevant control).
    Returns the target is ``objects[0]``; the occluder, if any, is ``objects[1]``.
    Raises ``SceneError`` when no layout fits after many tries (does not happen for the built-in tiers).
    """
    colors = tuple(c for c in COLORS if c not in absent_colors)
    if target_color not in colors:
        raise SceneError(f"target colour {target_color!r} is reserved as absent")
    e = SCENE_EXTENT
    target_height = _height(target_shape, tier.target_size)
    target_radius = SIZE_RADIUS[tier.target_size]
    for _ in range(_PLACEMENT_TRIES):
        cos_rot, sin_rot = _rotation(rng)
        tx, ty = (float(v) * 2.0 * e - e for v in rng.random(2))
        if not _in_frame(camera, tx, ty, target_radius, target_height):
            continue
        target = SceneObject(
            target_shape, target_color, target_material, tier.target_size, tx, ty, cos_rot, sin_rot
        )
        placed = [target]
        if tier.occluded:
            occluder = _place_occluder(rng, attribute, target, colors, camera)
            if occluder is None:
                continue
            placed.append(occluder)
        ok = True
        while len(placed) < tier.num_objects and ok:
            shape, color, material, size = _draw_distractor(rng, attribute, target, colors)
            cos_rot, sin_rot = _rotation(rng)
            radius, height = SIZE_RADIUS[size], _height(shape, size)
            for _ in range(_PLACEMENT_TRIES):
                x, y = (float(v) * 2.0 * e - e for v in rng.random(2))
                if _fits(x, y, radius, placed) and _in_frame(camera, x, y, radius, height):
                    placed.append(SceneObject(shape, color, material, size, x, y, cos_rot, sin_rot))
                    break
            else:
                ok = False
        if ok:
            scene = Scene(tuple(placed), 0, attribute, camera.position)
            check_scene(scene, absent_colors=absent_colors)
            return scene
    raise SceneError(f"tier {tier.index}: could not place {tier.num_objects} objects")


def _place_occluder(
    rng: np.random.Generator,
    attribute: str,
    target: SceneObject,
    colors: tuple[str, ...],
    camera: Camera,
) -> SceneObject | None:
    """A large distractor between the camera and the target, slightly to one side, or None."""
    shape, color, material, _ = _draw_distractor(rng, attribute, target, colors)
    cos_rot, sin_rot = _rotation(rng)
    radius = SIZE_RADIUS["large"]
    # Unit vector from the target towards the camera, on the ground plane, and its normal.
    vx, vy = camera.position[0] - target.x, camera.position[1] - target.y
    norm = math.sqrt(vx * vx + vy * vy)
    vx, vy = vx / norm, vy / norm
    along = target.radius + radius + MIN_OBJECT_GAP + 0.9 * float(rng.random())
    side = (2.0 * float(rng.random()) - 1.0) * 0.8 * (target.radius + radius)
    x = target.x + along * vx - side * vy
    y = target.y + along * vy + side * vx
    if not _inside(x, y) or not _fits(x, y, radius, [target]):
        return None
    if not _in_frame(camera, x, y, radius, _height(shape, "large")):
        return None
    return SceneObject(shape, color, material, "large", x, y, cos_rot, sin_rot)
