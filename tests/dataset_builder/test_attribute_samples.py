"""The sample images kept under docs/attribute are what the renderer draws today (one per visual tier)."""

from __future__ import annotations

from pathlib import Path

from modality_conflict.dataset_builder.attribute_constants import VISUAL_TIERS
from modality_conflict.dataset_builder.card import SAMPLES_DIR
from modality_conflict.dataset_builder.plan import plan_attribute_group
from modality_conflict.dataset_builder.scene_render import render

REPO = Path(__file__).resolve().parents[2]


def test_committed_samples_are_the_renderers_images() -> None:
    plan = plan_attribute_group(0, 0)
    for tier in VISUAL_TIERS:
        path = REPO / SAMPLES_DIR / f"tier_{tier.index}.png"
        assert path.read_bytes() == render(plan.image_spec(tier.index)).png, (
            f"{path} is stale: rerun `python -m modality_conflict.dataset_builder.samples {SAMPLES_DIR}`"
        )
    assert (REPO / SAMPLES_DIR / "contact_sheet.png").stat().st_size < 1 << 20
