"""Images of the attribute set: a pure function from an :class:`ImageSpec` to PNG bytes.

:func:`render` samples a layout for the spec's visual tier, casts its primary rays and keeps it only if
every pixel check passes (every object inside the frame and showing enough pixels, the target's visible
share inside the tier's band); otherwise it samples again from the same generator. The accepted layout
is shaded and encoded as an RGB PNG without metadata, so the same spec always gives the same bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from modality_conflict.dataset_builder.attribute_constants import (
    ATTRIBUTES,
    COLORS,
    FRAME_MARGIN_PX,
    IMAGE_HEIGHT,
    IMAGE_WIDTH,
    MATERIALS,
    MIN_OBJECT_PIXELS,
    SCENE_ATTEMPTS,
    SHAPES,
    SUPERSAMPLE,
    VISUAL_TIERS,
)
from modality_conflict.dataset_builder.camera import Camera, RayGrid
from modality_conflict.dataset_builder.errors import RenderError
from modality_conflict.dataset_builder.raycast import Frame, primary_pass
from modality_conflict.dataset_builder.render import encode_png
from modality_conflict.dataset_builder.scene import Scene, draw_camera_position, sample_scene
from modality_conflict.dataset_builder.shading import shade


@dataclass(frozen=True)
class ImageSpec:
    """Everything that determines one image.

    ``tier``: Visual tier ``dv`` (index into :data:`VISUAL_TIERS`).
    ``attribute``: Attribute the questions ask about; it decides which distractors would make the target's
        name ambiguous (those are never drawn).
    ``target_shape``, ``target_color``, ``target_material``: The target's attributes; its size comes from the
        tier.
    ``absent_colors``: Colours no object of the image may take.
    ``seed``: Seed of the layout generator (any non-negative integer).
    """

    tier: int
    attribute: str
    target_shape: str
    target_color: str
    target_material: str
    absent_colors: tuple[str, ...]
    seed: int

    def __post_init__(self) -> None:
        if not 0 <= self.tier < len(VISUAL_TIERS):
            raise RenderError(f"visual tier must be in 0..{len(VISUAL_TIERS) - 1}, got {self.tier}")
        for value, allowed, name in (
            (self.attribute, ATTRIBUTES, "attribute"),
            (self.target_shape, SHAPES, "target shape"),
            (self.target_color, COLORS, "target colour"),
            (self.target_material, MATERIALS, "target material"),
        ):
            if value not in allowed:
                raise RenderError(f"unknown {name} {value!r}; expected one of {list(allowed)}")
        if self.target_color in self.absent_colors:
            raise RenderError(f"the target colour {self.target_color!r} is also listed as absent")
        if self.seed < 0:
            raise RenderError(f"the layout seed must be non-negative, got {self.seed}")


@dataclass(frozen=True)
class RenderedImage:
    """A rendered image and the layout values measured while rendering it.

    ``png``: PNG bytes (RGB, 8 bit, no ancillary chunks).
    ``scene``: The accepted layout (the target is ``scene.objects[scene.target]``).
    ``target_size``: Side in pixels of a square with the area of the target's unoccluded silhouette.
    ``num_occluders``: Objects that hide part of the target.
    ``target_visible``: Share of the target's silhouette left visible.
    ``attempts``: Layouts sampled until one passed the checks.
    """

    png: bytes
    width: int
    height: int
    scene: Scene
    target_size: float
    num_occluders: int
    target_visible: float
    attempts: int

    @property
    def num_objects(self) -> int:
        """Objects in the image, the target included."""
        return len(self.scene.objects)

    @property
    def occlusion(self) -> float:
        """Share of the target's silhouette hidden by other objects."""
        return 1.0 - self.target_visible

    def layout_columns(self) -> dict[str, Any]:
        """The image's layout values, as the attribute set's row columns (the scene graph as JSON)."""
        return {
            "target_scale": self.scene.target_object.size,
            "target_size": float(self.target_size),
            "num_objects": self.num_objects,
            "num_distractors": self.num_objects - 1,
            "num_occluders": self.num_occluders,
            "occlusion": float(self.occlusion),
            "image_width": self.width,
            "image_height": self.height,
            "scene": json.dumps(self.scene.to_json(), sort_keys=True, separators=(",", ":")),
        }


def layout_problem(frame: Frame, scene: Scene, visible_min: float, visible_max: float) -> str | None:
    """Why a primary pass fails the pixel checks, or None when it passes.

    ``frame``: Primary pass of ``scene``.
    ``visible_min``, ``visible_max``: Allowed band of the target's visible share.
    """
    ss2 = frame.supersample * frame.supersample
    margin = FRAME_MARGIN_PX * frame.width / IMAGE_WIDTH
    # The pixel floor is defined at the dataset's image size and scales with the image area.
    floor = MIN_OBJECT_PIXELS * frame.width * frame.height / (IMAGE_WIDTH * IMAGE_HEIGHT)
    for i, (x0, y0, x1, y1) in enumerate(frame.bbox):
        if x0 < margin or y0 < margin or x1 > frame.width - margin or y1 > frame.height - margin:
            return f"object {i} is not entirely inside the frame"
        if frame.visible[i] < floor * ss2:
            return f"object {i} shows {frame.visible[i] / ss2:.0f} px, fewer than {floor:.0f}"
    share = frame.visible_share(scene.target)
    if not visible_min <= share <= visible_max:
        return f"the target's visible share {share:.2f} is outside [{visible_min}, {visible_max}]"
    return None


def render(
    spec: ImageSpec,
    *,
    width: int = IMAGE_WIDTH,
    height: int = IMAGE_HEIGHT,
    supersample: int = SUPERSAMPLE,
) -> RenderedImage:
    """Render the image described by ``spec``.

    ``width``, ``height``, ``supersample``: Image size and sub-pixels per pixel along each axis (the dataset
        uses the defaults).
    Raises ``RenderError`` if no sampled layout passes the checks within :data:`SCENE_ATTEMPTS` tries.
    """
    tier = VISUAL_TIERS[spec.tier]
    rng = np.random.default_rng(spec.seed)
    camera = Camera.looking_at_centre(draw_camera_position(rng), width, height)
    # Layouts are screened on a one-ray-per-pixel pass; only a layout that passes is cast at full
    # resolution, where the checks are repeated (the final image is what the checks are about).
    coarse = RayGrid.build(camera, width, height, 1)
    fine = RayGrid.build(camera, width, height, supersample) if supersample > 1 else coarse
    last = ""
    for attempt in range(1, SCENE_ATTEMPTS + 1):
        scene = sample_scene(
            rng,
            tier,
            attribute=spec.attribute,
            target_shape=spec.target_shape,
            target_color=spec.target_color,
            target_material=spec.target_material,
            camera=camera,
            absent_colors=spec.absent_colors,
        )
        problem = layout_problem(primary_pass(scene, coarse), scene, tier.visible_min, tier.visible_max)
        if problem is None and fine is not coarse:
            frame = primary_pass(scene, fine)
            problem = layout_problem(frame, scene, tier.visible_min, tier.visible_max)
        else:
            frame = primary_pass(scene, coarse) if problem is None else None
        if problem is not None or frame is None:
            last = problem or ""
            continue
        ss2 = supersample * supersample
        return RenderedImage(
            png=encode_png(shade(scene, frame)),
            width=width,
            height=height,
            scene=scene,
            target_size=float((frame.alone[scene.target] / ss2) ** 0.5),
            num_occluders=len(frame.blockers[scene.target]),
            target_visible=frame.visible_share(scene.target),
            attempts=attempt,
        )
    raise RenderError(f"tier {spec.tier}: no layout passed the checks in {SCENE_ATTEMPTS} tries ({last})")
