"""Sample images of the attribute set: one PNG per visual tier and a labelled contact sheet."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw

from modality_conflict.dataset_builder.atomic import write_bytes_atomic
from modality_conflict.dataset_builder.attribute_constants import (
    IMAGE_HEIGHT,
    IMAGE_WIDTH,
    VISUAL_TIERS,
)
from modality_conflict.dataset_builder.plan import plan_attribute_group
from modality_conflict.dataset_builder.render import encode_png
from modality_conflict.dataset_builder.scene_render import render

_LABEL_HEIGHT = 28


def tier_label(index: int) -> str:
    """Short description of a visual tier, e.g. ``"dv3: 10 objects, small target"``."""
    t = VISUAL_TIERS[index]
    occlusion = f", {1 - t.visible_max:.0%}-{1 - t.visible_min:.0%} hidden" if t.occluded else ""
    return f"dv{t.index}: {t.num_objects} objects, {t.target_size} target{occlusion}"


def write_samples(folder: Path, *, seed: int = 0, groups: tuple[int, ...] = (0, 1)) -> list[Path]:
    """Write ``tier_<dv>.png`` (the first group's image of each tier) and ``contact_sheet.png`` (one
    row per group, one column per tier, labelled with the tier and the group's question).

    ``folder``: Output folder (created).
    ``groups``: Groups shown on the contact sheet (0 asks about shape, 1 about material).
    Returns the files written.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cell_h = IMAGE_HEIGHT + _LABEL_HEIGHT
    sheet = Image.new("RGB", (IMAGE_WIDTH * len(VISUAL_TIERS), cell_h * len(groups)), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    written = []
    for row, group in enumerate(groups):
        plan = plan_attribute_group(seed, group)
        question = plan.question(plan.target)
        for dv in range(len(VISUAL_TIERS)):
            img = render(plan.image_spec(dv))
            if row == 0:
                written.append(write_bytes_atomic(folder / f"tier_{dv}.png", img.png))
            x, y = dv * IMAGE_WIDTH, row * cell_h
            sheet.paste(Image.open(io.BytesIO(img.png)), (x, y + _LABEL_HEIGHT))
            draw.text((x + 4, y + 2), tier_label(dv), fill=(0, 0, 0))
            answer = f"{question} -> {plan.vision_value} (hidden {img.occlusion:.0%})"
            draw.text((x + 4, y + 14), answer, fill=(90, 90, 90))
    written.append(write_bytes_atomic(folder / "contact_sheet.png", encode_png(sheet)))
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m modality_conflict.dataset_builder.samples DIR [SEED]``: write the samples."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    if not 1 <= len(args) <= 2:
        print("usage: python -m modality_conflict.dataset_builder.samples DIR [SEED]", file=sys.stderr)
        return 2
    for path in write_samples(Path(args[0]), seed=int(args[1]) if len(args) == 2 else 0, groups=(0, 1, 2)):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
