"""The demo model's training images: rendered by the project's renderer, recoloured, preprocessed once.

The images come from the renderer under a plan seed and group ids that the evaluation set never uses.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from modality_conflict.dataset_builder.constants import (
    BACKGROUND_RGB,
    COLOR_RGB,
    COLORS,
    SHAPES,
    VISUAL_TIERS,
)
from modality_conflict.dataset_builder.plan import plan_group
from modality_conflict.dataset_builder.render import ImageSpec, render
from modality_conflict.models.demo.recipe import TrainingRecipe
from modality_conflict.models.demo.vocabulary import IMAGE_SIZE, PATCH_SIZE

__all__ = ["ImageBank", "recolouring_is_exact", "render_training_images"]

#: First plan seed and group id of the training images: the evaluation set uses small seeds and groups
#: counted from zero, so these never meet it.
_TRAIN_SEED_OFFSET = 1_000_003
_TRAIN_GROUP_OFFSET = 5_000_000


@dataclass(frozen=True)
class ImageBank:
    """Preprocessed training images (the processor's output, cast to float16) and what they show: each
    image's visual tier, target shape and colour indices, and the share of each patch the target covers."""

    pixels: torch.Tensor
    tiers: np.ndarray
    shapes: np.ndarray
    colours: np.ndarray
    coverage: np.ndarray


def _palette() -> np.ndarray:
    """RGB of palette index 0 (background) and 1 + i (``COLORS[i]``)."""
    return np.array([BACKGROUND_RGB] + [COLOR_RGB[c] for c in COLORS], dtype=np.uint8)


def _palette_indices(png: bytes) -> np.ndarray:
    """Palette index of each pixel of a rendered image (the renderer paints exact palette colours)."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    # Red and green channels alone tell the seven palette colours apart.
    lookup = np.zeros(1 << 16, dtype=np.uint8)
    for index, (r, g, _) in enumerate(_palette()):
        lookup[(int(r) << 8) | int(g)] = index
    return lookup[(rgb[..., 0].astype(np.uint16) << 8) | rgb[..., 1]]


def _patch_coverage(mask: np.ndarray, grid: int) -> np.ndarray:
    """Share of each patch of a ``grid x grid`` split of ``mask`` that is True (the image is squeezed)."""
    h, w = mask.shape
    rows = np.add.reduceat(mask.astype(np.float32), (np.arange(grid) * h) // grid, axis=0)
    cells = np.add.reduceat(rows, (np.arange(grid) * w) // grid, axis=1)
    row_edges = np.append((np.arange(grid) * h) // grid, h)
    col_edges = np.append((np.arange(grid) * w) // grid, w)
    return (cells / np.outer(np.diff(row_edges), np.diff(col_edges))).reshape(-1)


def render_training_images(
    image_processor: Any, recipe: TrainingRecipe, *, seed: int, log: Callable[[str], None] | None = None
) -> ImageBank:
    """Render the training images with the project's renderer and preprocess them once.

    Layouts come from training-only plan seeds, each recoloured by colour permutations; the placement draws do
    not depend on the colours, so every recolouring is an image the renderer itself draws.
    """
    rng = np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(1,)))
    palette = _palette()
    plan_seed = _TRAIN_SEED_OFFSET + seed
    grid = IMAGE_SIZE // PATCH_SIZE
    pixels, tiers, shapes, colours, coverage = [], [], [], [], []
    pending: list[Image.Image] = []

    def flush() -> None:
        if pending:
            batch = image_processor(images=pending, return_tensors="pt")["pixel_values"]
            pixels.append(batch.to(torch.float16))
            pending.clear()

    for tier in VISUAL_TIERS:
        layouts = recipe.layouts_large if tier.width > 224 else recipe.layouts_small
        for layout in range(layouts):
            plan = plan_group(plan_seed, _TRAIN_GROUP_OFFSET + layout)
            spec = plan.image_spec(tier.index)
            indices = _palette_indices(render(spec).png)
            target = COLORS.index(spec.target_color)
            cover = _patch_coverage(indices == target + 1, grid)
            for _ in range(recipe.colourings_per_layout):
                perm = rng.permutation(len(COLORS))  # colour i is painted as colour perm[i]
                image = Image.frombytes("P", (indices.shape[1], indices.shape[0]), indices.tobytes())
                image.putpalette(np.concatenate([palette[:1], palette[1:][perm]]).tobytes())
                pending.append(image.convert("RGB"))
                tiers.append(tier.index)
                shapes.append(SHAPES.index(spec.target_shape))
                colours.append(int(perm[target]))
                coverage.append(cover)
            if len(pending) >= 128:
                flush()
        if log:
            log(f"rendered tier {tier.index}")
    flush()
    return ImageBank(
        torch.cat(pixels),
        np.array(tiers, dtype=np.int64),
        np.array(shapes, dtype=np.int64),
        np.array(colours, dtype=np.int64),
        np.stack(coverage).astype(np.float32),
    )


def recolouring_is_exact() -> bool:
    """Whether a recoloured training image equals the renderer's image of the recoloured specification."""
    plan = plan_group(_TRAIN_SEED_OFFSET, _TRAIN_GROUP_OFFSET)
    spec = plan.image_spec(9)
    perm = {c: COLORS[(i + 1) % len(COLORS)] for i, c in enumerate(COLORS)}
    moved = ImageSpec(
        tier=spec.tier,
        target_shape=spec.target_shape,
        target_color=perm[spec.target_color],
        distractor_shapes=spec.distractor_shapes,
        distractor_colors=tuple(perm[c] for c in spec.distractor_colors),
        seed=spec.seed,
    )
    a = _palette_indices(render(spec).png)
    b = _palette_indices(render(moved).png)
    shifted = np.where(a == 0, 0, (a - 1 + 1) % len(COLORS) + 1)
    return bool(np.array_equal(shifted, b))
