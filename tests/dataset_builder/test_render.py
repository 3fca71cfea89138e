"""Drawing of the images: tier layout, colours, determinism."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from modality_conflict.dataset_builder.constants import (
    COLOR_RGB,
    COLORS,
    MIN_TARGET_VISIBLE,
    SHAPES,
    VISUAL_TIERS,
)
from modality_conflict.dataset_builder.errors import RenderError
from modality_conflict.dataset_builder.render import ImageSpec, render, shape_mask


def _spec(
    tier: int, seed: int = 1, target: str = "circle", color: str = "red", text: str = "blue"
) -> ImageSpec:
    return ImageSpec(
        tier=tier,
        target_shape=target,
        target_color=color,
        distractor_shapes=tuple(s for s in SHAPES if s not in (target, "star")),
        distractor_colors=tuple(c for c in COLORS if c not in (color, text)),
        seed=seed,
    )


def _pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as img:
        assert img.mode == "RGB"
        return np.asarray(img)


def test_table_matches_the_paper() -> None:
    assert len(VISUAL_TIERS) == 14
    assert [t.num_distractors for t in VISUAL_TIERS] == [0, 1, 2, 3, 4, 7, 10, 7, 11, 20, 30, 40, 55, 70]
    assert [t.occlusion for t in VISUAL_TIERS[5:]] == [0.5, 0.8, 0.5, 0.8, 0.3, 0.6, 0.5, 0.6, 0.7]
    assert all((t.width, t.height) == (800, 600) for t in VISUAL_TIERS[:5])
    assert all((t.width, t.height) == (224, 224) for t in VISUAL_TIERS[5:])
    assert all((t.size_min, t.size_max) == (80, 200) for t in VISUAL_TIERS[:5])
    # Tiers 5-13: a share of the 224 px side (20-40 %, 5-10 %, 4-6 %).
    assert (VISUAL_TIERS[5].size_min, VISUAL_TIERS[5].size_max) == (45, 90)
    assert (VISUAL_TIERS[8].size_min, VISUAL_TIERS[8].size_max) == (11, 22)
    assert (VISUAL_TIERS[13].size_min, VISUAL_TIERS[13].size_max) == (9, 13)
    assert VISUAL_TIERS[13].num_overlapping == 49


@pytest.mark.parametrize("shape", SHAPES)
def test_shape_masks_are_distinct_and_filled(shape: str) -> None:
    mask = shape_mask(shape, 60)
    assert mask.shape == (60, 60)
    assert 0.25 < mask.mean() <= 1.0
    others = [shape_mask(s, 60) for s in SHAPES if s != shape]
    assert all(not np.array_equal(mask, o) for o in others)


def test_shape_mask_rejects_bad_input() -> None:
    with pytest.raises(RenderError, match="unknown shape"):
        shape_mask("blob", 20)
    with pytest.raises(RenderError, match="at least 3"):
        shape_mask("circle", 2)


@pytest.mark.parametrize("tier", range(14))
def test_every_tier_follows_its_row_of_the_table(tier: int) -> None:
    spec = _spec(tier, seed=100 + tier)
    out = render(spec)
    row = VISUAL_TIERS[tier]
    assert (out.width, out.height) == (row.width, row.height)
    assert row.size_min <= out.target_size <= row.size_max
    assert out.num_distractors == row.num_distractors
    expected_occlusion = row.num_overlapping / row.num_distractors if row.num_distractors else 0.0
    assert out.occlusion == pytest.approx(expected_occlusion)
    assert out.target_visible >= MIN_TARGET_VISIBLE
    pixels = _pixels(out.png)
    assert pixels.shape == (row.height, row.width, 3)
    colours = {tuple(int(v) for v in p) for p in np.unique(pixels.reshape(-1, 3), axis=0)}
    assert colours <= {(255, 255, 255), *COLOR_RGB.values()}
    # The target colour is visible; the text colour ("blue") is nowhere in the image.
    assert COLOR_RGB["red"] in colours
    assert COLOR_RGB["blue"] not in colours
    if row.num_distractors:
        assert len(colours) >= 3


def test_visible_target_pixels_match_the_measured_share() -> None:
    # Tier 0 has no distractors: the target is fully visible and its pixel count equals its mask.
    spec = _spec(0, seed=5, target="star", color="green", text="red")
    out = render(spec)
    pixels = _pixels(out.png)
    target_pixels = np.all(pixels == COLOR_RGB["green"], axis=-1).sum()
    assert out.target_visible == 1.0
    assert target_pixels == shape_mask("star", out.target_size).sum()


def test_same_spec_same_bytes_and_seed_changes_layout() -> None:
    a = render(_spec(9, seed=7))
    b = render(_spec(9, seed=7))
    c = render(_spec(9, seed=8))
    assert a.png == b.png
    assert a.png != c.png
    # No ancillary chunks (time stamps, text): IHDR, IDAT..., IEND only.
    chunks = []
    pos = 8
    while pos < len(a.png):
        length = int.from_bytes(a.png[pos : pos + 4], "big")
        chunks.append(a.png[pos + 4 : pos + 8].decode())
        pos += 12 + length
    assert set(chunks) == {"IHDR", "IDAT", "IEND"}


def test_spec_rejects_conflicting_pools() -> None:
    with pytest.raises(RenderError, match="target colour"):
        ImageSpec(3, "circle", "red", ("square",), ("red", "blue"), 0)
    with pytest.raises(RenderError, match="target shape"):
        ImageSpec(3, "circle", "red", ("circle",), ("blue",), 0)
    with pytest.raises(RenderError, match="visual tier"):
        ImageSpec(14, "circle", "red", ("square",), ("blue",), 0)
    with pytest.raises(RenderError, match="pool is empty"):
        ImageSpec(3, "circle", "red", (), ("blue",), 0)
