"""Drawing of the colour-recognition images: a pure function from a specification to PNG bytes.

Shapes are rasterised once per (shape, size) with PIL into boolean masks; an image is composed as a
canvas of palette indices with numpy (no anti-aliasing, so every pixel has one of seven exact colours)
and encoded as an RGB PNG without metadata. The same :class:`ImageSpec` always gives the same bytes.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from modality_conflict.dataset_builder.constants import (
    BACKGROUND_RGB,
    COLOR_RGB,
    COLORS,
    MIN_TARGET_VISIBLE,
    SHAPES,
    VISUAL_TIERS,
    VisualTier,
)
from modality_conflict.dataset_builder.errors import RenderError

#: Palette index 0 is the background; index i + 1 is COLORS[i].
_PALETTE = np.array([BACKGROUND_RGB] + [COLOR_RGB[c] for c in COLORS], dtype=np.uint8)

#: Minimal share of an occluding distractor's own area that must cover the target, so an
#: "overlapping" distractor visibly overlaps and does not just touch one pixel.
_MIN_OVERLAP_SHARE = 0.05
_PLACEMENT_TRIES = 400
_PNG_COMPRESS_LEVEL = 6


@dataclass(frozen=True)
class ImageSpec:
    """Everything that determines one image.

    ``tier``: Visual tier ``dv`` (index into :data:`VISUAL_TIERS`).
    ``target_shape``, ``target_color``: The shape the question is about and its colour (the vision answer).
    ``distractor_shapes``, ``distractor_colors``: Pools the distractors are drawn from. They must exclude the
        target shape and the target colour; the builder also removes the text colour and the group's reserved
        absent shape.
    ``seed``: Seed of the placement generator (any non-negative integer).
    """

    tier: int
    target_shape: str
    target_color: str
    distractor_shapes: tuple[str, ...]
    distractor_colors: tuple[str, ...]
    seed: int

    def __post_init__(self) -> None:
        if not 0 <= self.tier < len(VISUAL_TIERS):
            raise RenderError(f"visual tier must be in 0..{len(VISUAL_TIERS) - 1}, got {self.tier}")
        if self.target_shape not in SHAPES:
            raise RenderError(f"unknown shape {self.target_shape!r}")
        if self.target_color not in COLORS:
            raise RenderError(f"unknown colour {self.target_color!r}")
        if self.target_shape in self.distractor_shapes:
            raise RenderError(f"distractor shapes must not include the target shape {self.target_shape!r}")
        if self.target_color in self.distractor_colors:
            raise RenderError(f"distractor colours must not include the target colour {self.target_color!r}")
        if VISUAL_TIERS[self.tier].num_distractors and not (
            self.distractor_shapes and self.distractor_colors
        ):
            raise RenderError(f"tier {self.tier} needs distractors but a distractor pool is empty")


@dataclass(frozen=True)
class RenderedImage:
    """A drawn image and the layout values measured while drawing it.

    ``png``: PNG bytes (RGB, 8 bit, no ancillary chunks).
    ``target_size``: Side of the target's bounding box in pixels.
    ``occlusion``: Share of the distractors whose pixels overlap the target's (0.0 when there are none).
    ``target_visible``: Share of the target's pixels that remain visible.
    """

    png: bytes
    width: int
    height: int
    target_size: int
    num_distractors: int
    occlusion: float
    target_visible: float

    def layout_columns(self) -> dict[str, Any]:
        """The image's layout values, as the colour set's row columns."""
        return {
            "target_size": float(self.target_size),
            "num_distractors": self.num_distractors,
            "occlusion": float(self.occlusion),
            "image_width": self.width,
            "image_height": self.height,
        }


def _regular_polygon(size: int, sides: int, rotation: float = -math.pi / 2) -> list[tuple[float, float]]:
    c = (size - 1) / 2
    return [
        (
            c + c * math.cos(rotation + 2 * math.pi * i / sides),
            c + c * math.sin(rotation + 2 * math.pi * i / sides),
        )
        for i in range(sides)
    ]


def _star(size: int, points: int = 5, inner: float = 0.45) -> list[tuple[float, float]]:
    c = (size - 1) / 2
    out = []
    for i in range(2 * points):
        r = c if i % 2 == 0 else c * inner
        a = -math.pi / 2 + math.pi * i / points
        out.append((c + r * math.cos(a), c + r * math.sin(a)))
    return out


@lru_cache(maxsize=1024)
def shape_mask(shape: str, size: int) -> np.ndarray:
    """Boolean ``size x size`` mask of a shape, filling its bounding box.

    ``shape``: One of :data:`SHAPES`.
    ``size``: Side of the bounding box in pixels (at least 3).
    Returns read-only boolean array, True inside the shape.
    """
    if shape not in SHAPES:
        raise RenderError(f"unknown shape {shape!r}; expected one of {SHAPES}")
    if size < 3:
        raise RenderError(f"shape size must be at least 3 px, got {size}")
    img = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(img)
    last = size - 1
    if shape == "circle":
        draw.ellipse((0, 0, last, last), fill=255)
    elif shape == "square":
        draw.rectangle((0, 0, last, last), fill=255)
    elif shape == "triangle":
        draw.polygon([(last / 2, 0), (last, last), (0, last)], fill=255)
    elif shape == "diamond":
        # Narrower than tall, so it is not just a rotated square.
        half_w = 0.32 * last
        draw.polygon(
            [(last / 2, 0), (last / 2 + half_w, last / 2), (last / 2, last), (last / 2 - half_w, last / 2)],
            fill=255,
        )
    elif shape == "pentagon":
        draw.polygon(_regular_polygon(size, 5), fill=255)
    elif shape == "hexagon":
        draw.polygon(_regular_polygon(size, 6, rotation=0.0), fill=255)
    elif shape == "star":
        draw.polygon(_star(size), fill=255)
    else:  # cross
        arm = max(1, round(size / 3))
        lo = (size - arm) // 2
        draw.rectangle((lo, 0, lo + arm - 1, last), fill=255)
        draw.rectangle((0, lo, last, lo + arm - 1), fill=255)
    mask = np.asarray(img) > 0
    mask.setflags(write=False)
    return mask


@dataclass
class _Placed:
    shape: str
    color_index: int
    size: int
    x: int
    y: int
    overlaps_target: bool = False
    above_target: bool = False

    @property
    def mask(self) -> np.ndarray:
        return shape_mask(self.shape, self.size)


def _rects_intersect(a: _Placed, b: _Placed, gap: int) -> bool:
    return not (
        a.x + a.size + gap <= b.x
        or b.x + b.size + gap <= a.x
        or a.y + a.size + gap <= b.y
        or b.y + b.size + gap <= a.y
    )


def _mask_overlap(a: _Placed, b: _Placed) -> int:
    """Number of pixels where the two placed shapes overlap."""
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.x + a.size, b.x + b.size), min(a.y + a.size, b.y + b.size)
    if x0 >= x1 or y0 >= y1:
        return 0
    ma = a.mask[y0 - a.y : y1 - a.y, x0 - a.x : x1 - a.x]
    mb = b.mask[y0 - b.y : y1 - b.y, x0 - b.x : x1 - b.x]
    return int(np.count_nonzero(ma & mb))


def _visible_share(target: _Placed, above: list[_Placed]) -> float:
    covered = np.zeros_like(target.mask)
    for d in above:
        x0, y0 = max(target.x, d.x), max(target.y, d.y)
        x1, y1 = min(target.x + target.size, d.x + d.size), min(target.y + target.size, d.y + d.size)
        if x0 < x1 and y0 < y1:
            covered[y0 - target.y : y1 - target.y, x0 - target.x : x1 - target.x] |= d.mask[
                y0 - d.y : y1 - d.y, x0 - d.x : x1 - d.x
            ]
    area = np.count_nonzero(target.mask)
    return float(np.count_nonzero(target.mask & ~covered)) / float(area)


def _place_overlapping(
    rng: np.random.Generator, d: _Placed, target: _Placed, tier: VisualTier, target_pixels: np.ndarray
) -> None:
    own = np.argwhere(d.mask)
    need = max(1, math.ceil(_MIN_OVERLAP_SHARE * len(own)))
    for _ in range(_PLACEMENT_TRIES):
        # Align a random pixel of the distractor with a random pixel of the target: the two overlap by
        # construction, and every overlapping placement can be drawn.
        ty, tx = target_pixels[rng.integers(len(target_pixels))]
        oy, ox = own[rng.integers(len(own))]
        d.x = int(min(max(target.x + tx - ox, 0), tier.width - d.size))
        d.y = int(min(max(target.y + ty - oy, 0), tier.height - d.size))
        if _mask_overlap(d, target) >= need:
            d.overlaps_target = True
            return
    raise RenderError(f"tier {tier.index}: could not place an overlapping distractor")


def _place_apart(
    rng: np.random.Generator,
    d: _Placed,
    target: _Placed,
    others: list[_Placed],
    tier: VisualTier,
    strict: bool,
) -> None:
    gap = max(2, tier.width // 80)
    smallest = max(3, tier.size_min // 2)
    for attempt in range(_PLACEMENT_TRIES):
        if attempt and attempt % 40 == 0 and d.size > smallest:
            # In the crowded 224 px tiers a large target can leave no room for a large distractor:
            # shrink this distractor step by step rather than overlap the target.
            d.size = max(smallest, int(d.size * 0.85))
        d.x = int(rng.integers(0, tier.width - d.size + 1))
        d.y = int(rng.integers(0, tier.height - d.size + 1))
        if _rects_intersect(d, target, gap):
            continue
        # Keep distractors apart from each other while that is easy; crowded tiers may then overlap them.
        if (strict or attempt < _PLACEMENT_TRIES // 4) and any(_rects_intersect(d, o, gap) for o in others):
            continue
        return
    raise RenderError(f"tier {tier.index}: could not place a distractor away from the target")


def encode_png(rgb: np.ndarray | Image.Image) -> bytes:
    """Encode an RGB image as PNG with fixed settings and no metadata chunks.

    ``rgb``: ``(H, W, 3)`` uint8 array or an RGB PIL image.
    Returns PNG file content; identical input gives identical bytes.
    """
    img = rgb if isinstance(rgb, Image.Image) else Image.fromarray(rgb, "RGB")
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=_PNG_COMPRESS_LEVEL, optimize=False)
    return buf.getvalue()


def _indices_to_rgb(canvas: np.ndarray) -> Image.Image:
    # PIL's palette expansion is several times faster than numpy fancy indexing on 800x600 canvases.
    img = Image.frombytes("P", (canvas.shape[1], canvas.shape[0]), canvas.tobytes())
    img.putpalette(_PALETTE.tobytes())
    return img.convert("RGB")


def render(spec: ImageSpec) -> RenderedImage:
    """Draw the image described by ``spec``.

    The target is drawn once; ``round(occlusion x distractors)`` distractors are placed so that their
    pixels overlap the target's, each randomly above or below it, and the others are kept clear of
    the target's bounding box. If the distractors above would hide more than
    ``1 - MIN_TARGET_VISIBLE`` of the target, the topmost ones are moved below it.

    Returns PNG bytes and the measured layout values.
    Raises ``RenderError`` if the layout cannot be placed (does not happen for the built-in tiers).
    """
    tier = VISUAL_TIERS[spec.tier]
    rng = np.random.default_rng(spec.seed)
    size = int(rng.integers(tier.size_min, tier.size_max + 1))
    target = _Placed(
        spec.target_shape,
        COLORS.index(spec.target_color),
        size,
        int(rng.integers(0, tier.width - size + 1)),
        int(rng.integers(0, tier.height - size + 1)),
    )
    n = tier.num_distractors
    k = tier.num_overlapping
    sizes = rng.integers(tier.size_min, tier.size_max + 1, size=n)
    shape_idx = rng.integers(len(spec.distractor_shapes), size=n) if n else np.zeros(0, dtype=np.int64)
    color_idx = rng.integers(len(spec.distractor_colors), size=n) if n else np.zeros(0, dtype=np.int64)
    above = rng.random(n) < 0.5
    distractors = [
        _Placed(
            spec.distractor_shapes[int(shape_idx[i])],
            COLORS.index(spec.distractor_colors[int(color_idx[i])]),
            int(sizes[i]),
            0,
            0,
        )
        for i in range(n)
    ]
    target_pixels = np.argwhere(target.mask)
    apart: list[_Placed] = []
    for i, d in enumerate(distractors):
        if i < k:
            _place_overlapping(rng, d, target, tier, target_pixels)
            d.above_target = bool(above[i])
        else:
            _place_apart(rng, d, target, apart, tier, strict=tier.occlusion == 0.0)
            apart.append(d)

    # Keep the answer recoverable: push the topmost occluders below the target until enough shows.
    over = [d for d in distractors if d.above_target]
    visible = _visible_share(target, over)
    while visible < MIN_TARGET_VISIBLE and over:
        over.pop().above_target = False
        visible = _visible_share(target, over)

    canvas = np.zeros((tier.height, tier.width), dtype=np.uint8)
    order = (
        [d for d in distractors if not d.above_target] + [target] + [d for d in distractors if d.above_target]
    )
    for shape in order:
        region = canvas[shape.y : shape.y + shape.size, shape.x : shape.x + shape.size]
        region[shape.mask] = shape.color_index + 1
    png = encode_png(_indices_to_rgb(canvas))
    overlapping = sum(d.overlaps_target for d in distractors)
    return RenderedImage(
        png=png,
        width=tier.width,
        height=tier.height,
        target_size=size,
        num_distractors=n,
        occlusion=overlapping / n if n else 0.0,
        target_visible=visible,
    )
