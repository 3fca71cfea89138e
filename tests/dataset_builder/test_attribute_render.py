"""Renderer: byte reproducibility, pixel checks of every tier, materials that look different."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from modality_conflict.dataset_builder.attribute_constants import (
    CAMERA_POSITION,
    IMAGE_HEIGHT,
    IMAGE_WIDTH,
    MIN_OBJECT_PIXELS,
    VISUAL_TIERS,
)
from modality_conflict.dataset_builder.camera import Camera, RayGrid
from modality_conflict.dataset_builder.errors import RenderError
from modality_conflict.dataset_builder.raycast import primary_pass
from modality_conflict.dataset_builder.scene import Scene, SceneObject
from modality_conflict.dataset_builder.scene_render import ImageSpec, layout_problem, render
from modality_conflict.dataset_builder.shading import shade


def _spec(tier: int, seed: int = 11) -> ImageSpec:
    return ImageSpec(tier, "shape", "cylinder", "purple", "metal", ("cyan",), seed)


def test_same_spec_gives_identical_png_bytes() -> None:
    first, second = render(_spec(3)), render(_spec(3))
    assert first.png == second.png
    assert render(_spec(3, seed=12)).png != first.png


@pytest.mark.parametrize("tier", VISUAL_TIERS, ids=lambda t: f"dv{t.index}")
def test_every_tier_renders_and_passes_its_pixel_checks(tier) -> None:
    img = render(_spec(tier.index))
    decoded = Image.open(io.BytesIO(img.png))
    assert decoded.mode == "RGB" and decoded.size == (IMAGE_WIDTH, IMAGE_HEIGHT)
    assert img.num_objects == tier.num_objects
    assert tier.visible_min <= img.target_visible <= tier.visible_max
    assert (img.num_occluders >= 1) == tier.occluded
    # Re-measure the accepted layout independently of the render call.
    camera = Camera.looking_at_centre(img.scene.camera, IMAGE_WIDTH, IMAGE_HEIGHT)
    frame = primary_pass(img.scene, RayGrid.build(camera, IMAGE_WIDTH, IMAGE_HEIGHT, 2))
    assert layout_problem(frame, img.scene, tier.visible_min, tier.visible_max) is None
    assert min(frame.visible) >= MIN_OBJECT_PIXELS * 4
    assert abs(frame.visible_share(0) - img.target_visible) < 1e-12


def test_bad_specs_are_rejected_with_the_field_named() -> None:
    with pytest.raises(RenderError, match="visual tier"):
        ImageSpec(len(VISUAL_TIERS), "shape", "cube", "red", "metal", (), 0)
    with pytest.raises(RenderError, match="target shape"):
        ImageSpec(0, "shape", "cone", "red", "metal", (), 0)
    with pytest.raises(RenderError, match="also listed as absent"):
        ImageSpec(0, "shape", "cube", "red", "metal", ("red",), 0)


def _render_scene(objects: list[SceneObject]) -> tuple[np.ndarray, np.ndarray]:
    """RGB pixels (flattened) of a hand-made scene, and the object id seen at each pixel centre."""
    scene = Scene(tuple(objects), 0, "shape", CAMERA_POSITION)
    camera = Camera.looking_at_centre(CAMERA_POSITION, IMAGE_WIDTH, IMAGE_HEIGHT)
    rgb = shade(scene, primary_pass(scene, RayGrid.build(camera, IMAGE_WIDTH, IMAGE_HEIGHT, 2)))
    ids = primary_pass(scene, RayGrid.build(camera, IMAGE_WIDTH, IMAGE_HEIGHT, 1)).ids
    return rgb.reshape(-1, 3).astype(float), ids


def _lone(shape: str, material: str, color: str = "blue") -> SceneObject:
    return SceneObject(shape, color, material, "large", 0.0, 0.0, 0.92, 0.39)


@pytest.mark.parametrize("color", ["blue", "yellow", "gray"])
@pytest.mark.parametrize("shape", ["cube", "sphere", "cylinder"])
def test_metal_and_rubber_versions_of_an_object_look_different(shape: str, color: str) -> None:
    rubber, ids_rubber = _render_scene([_lone(shape, "rubber", color)])
    metal, ids_metal = _render_scene([_lone(shape, "metal", color)])
    mask = ids_rubber == 0
    assert np.array_equal(mask, ids_metal == 0) and mask.sum() > 500
    # Same geometry and colour: only the material differs, and it changes the pixels a lot.
    assert np.abs(rubber[mask] - metal[mask]).mean() > 15.0


@pytest.mark.parametrize("shape", ["sphere", "cylinder"])
def test_metal_reflects_its_neighbours_and_rubber_does_not(shape: str) -> None:
    neighbour = SceneObject("sphere", "yellow", "rubber", "large", 1.3, -0.2)
    change = {}
    for material in ("rubber", "metal"):
        alone, ids_alone = _render_scene([_lone(shape, material)])
        pair, ids_pair = _render_scene([_lone(shape, material), neighbour])
        seen = (ids_alone == 0) & (ids_pair == 0)
        change[material] = float(np.abs(alone[seen] - pair[seen]).mean())
    assert change["metal"] > 2.0 * change["rubber"]
    assert change["metal"] > 1.5
