"""Scene sampling: object counts, unique target names, reserved colours, framing."""

from __future__ import annotations

import numpy as np
import pytest

from modality_conflict.dataset_builder.attribute_constants import (
    CAMERA_POSITION,
    COLORS,
    IMAGE_HEIGHT,
    IMAGE_WIDTH,
    VISUAL_TIERS,
)
from modality_conflict.dataset_builder.camera import Camera
from modality_conflict.dataset_builder.errors import SceneError
from modality_conflict.dataset_builder.scene import (
    Scene,
    SceneObject,
    check_scene,
    object_name,
    other_attribute,
    sample_scene,
)

CAMERA = Camera.looking_at_centre(CAMERA_POSITION, IMAGE_WIDTH, IMAGE_HEIGHT)


@pytest.mark.parametrize("attribute", ["shape", "material"])
@pytest.mark.parametrize("tier", VISUAL_TIERS, ids=lambda t: f"dv{t.index}")
def test_sampled_scenes_name_exactly_one_object(attribute: str, tier) -> None:
    rng = np.random.default_rng(tier.index)
    for _ in range(20):
        scene = sample_scene(
            rng,
            tier,
            attribute=attribute,
            target_shape="cube",
            target_color="purple",
            target_material="metal",
            camera=CAMERA,
            absent_colors=("cyan",),
        )
        target = scene.target_object
        other = target.value(other_attribute(attribute))
        assert scene.count_matching("purple", other) == 1
        assert len(scene.objects) == tier.num_objects
        assert target.size == tier.target_size
        assert all(o.color != "cyan" for o in scene.objects)
        for i, o in enumerate(scene.objects):
            box = CAMERA.box_on_screen(o.x, o.y, o.radius, o.height)
            assert box is not None and 0.0 < box[0] < box[2] < 1.0 and 0.0 < box[1] < box[3] < 1.0, i


def test_occluded_tiers_put_a_large_object_in_front_of_the_target() -> None:
    tier = next(t for t in VISUAL_TIERS if t.occluded)
    scene = sample_scene(
        np.random.default_rng(5),
        tier,
        attribute="shape",
        target_shape="sphere",
        target_color="red",
        target_material="rubber",
        camera=CAMERA,
    )
    target, occluder = scene.objects[0], scene.objects[1]
    cam = np.array(CAMERA_POSITION[:2])
    assert occluder.size == "large"
    assert np.linalg.norm(cam - [occluder.x, occluder.y]) < np.linalg.norm(cam - [target.x, target.y])


def test_check_scene_rejects_an_ambiguous_name() -> None:
    a = SceneObject("cube", "purple", "metal", "large", 0.0, 0.0)
    b = SceneObject("sphere", "purple", "metal", "small", 2.0, 0.0)
    with pytest.raises(SceneError, match="fits 2 objects"):
        check_scene(Scene((a, b), 0, "shape", CAMERA_POSITION))
    # For a material question the name is colour + shape, which these two do not share.
    check_scene(Scene((a, b), 0, "material", CAMERA_POSITION))


def test_check_scene_rejects_reserved_colours_and_overlaps() -> None:
    a = SceneObject("cube", "red", "metal", "large", 0.0, 0.0)
    b = SceneObject("cube", "blue", "rubber", "large", 0.5, 0.0)
    with pytest.raises(SceneError, match="overlap"):
        check_scene(Scene((a, b), 0, "shape", CAMERA_POSITION))
    with pytest.raises(SceneError, match="reserved"):
        check_scene(Scene((a,), 0, "shape", CAMERA_POSITION), absent_colors=("red",))


def test_object_names() -> None:
    assert object_name("shape", "purple", "metal") == "purple metal object"
    assert object_name("material", "red", "cylinder") == "red cylinder"
    with pytest.raises(ValueError):
        object_name("shape", "purple", "cube")
    with pytest.raises(SceneError):
        SceneObject("cone", COLORS[0], "metal", "large", 0.0, 0.0)
