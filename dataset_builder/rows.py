"""What a group of either dataset is made of, written once: seeded choices, row keys, the tiers each control
is built on, and the vision-only, text-only and conflict rows of one group.

A dataset's plan module supplies what differs (its visual tiers, the columns shared by a control's rows, the
image columns of a visual tier, the text of a text tier); :class:`TierLayout` lays the rows out, in the order
the builder writes them and :func:`TierLayout.expected_row_ids` lists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from modality_conflict.dataset_builder.constants import CONDITIONS, CONTROL_TEXT_TIER, CONTROLS, TEXT_TIERS

_CONDITION = {name: i for i, name in enumerate(CONDITIONS)}


def seeded_rng(seed: int, *key: int) -> np.random.Generator:
    """A generator that depends on the build seed and ``key`` only (``SeedSequence`` spawn keys)."""
    return np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=key))


def check_seed_and_group(seed: int, group: int) -> None:
    """Refuse a negative build seed or group index (``ValueError``)."""
    if seed < 0 or group < 0:
        raise ValueError(f"seed and group must be non-negative, got seed={seed}, group={group}")


def derangement(rng: np.random.Generator, n: int) -> np.ndarray:
    """A uniform random permutation of ``range(n)`` without fixed points (rejection sampling)."""
    while True:
        perm = rng.permutation(n)
        if not np.any(perm == np.arange(n)):
            return perm


def vision_key(group: int, visual_tier: int, control: str) -> str:
    """Key of the vision-only row of ``(group, visual tier, control)``."""
    return f"g{group:04d}-v{visual_tier:02d}-{control}"


def text_key(group: int, text_tier: int, control: str) -> str:
    """Key of the text-only row of ``(group, text tier, control)``."""
    return f"g{group:04d}-t{text_tier}-{control}"


def item_id(group: int, visual_tier: int, text_tier: int, control: str) -> str:
    """Id of the conflict item ``(group, visual tier, text tier, control)``."""
    return f"g{group:04d}-v{visual_tier:02d}-t{text_tier}-{control}"


@dataclass(frozen=True)
class TierLayout:
    """The tiers of a dataset's groups: every visual tier with every text tier for control ``none``, and the
    controls on ``control_visual_tiers`` with the direct text only."""

    visual_tiers: tuple[int, ...]
    control_visual_tiers: tuple[int, ...]

    def control_tiers(self, control: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """``(visual_tiers, text_tiers)`` built for one control type."""
        if control == "none":
            return self.visual_tiers, TEXT_TIERS
        if control in CONTROLS:
            return self.control_visual_tiers, (CONTROL_TEXT_TIER,)
        raise ValueError(f"unknown control {control!r}; expected one of {list(CONTROLS)}")

    def text_slots(self) -> list[tuple[int, str]]:
        """Every ``(text tier, control)`` of a group that has a text, in the order texts are drawn."""
        return [(dt, control) for control in CONTROLS for dt in self.control_tiers(control)[1]]

    def expected_row_ids(self, group: int) -> list[str]:
        """Row ids of one group, in the order the builder writes them."""
        ids: list[str] = []
        for control in CONTROLS:
            vtiers, ttiers = self.control_tiers(control)
            ids += [vision_key(group, dv, control) for dv in vtiers]
            ids += [text_key(group, dt, control) for dt in ttiers]
            ids += [item_id(group, dv, dt, control) for dv in vtiers for dt in ttiers]
        return ids

    def rows_per_group(self) -> int:
        """Number of rows each group contributes."""
        return len(self.expected_row_ids(0))

    def rows_per_condition(self, groups: int) -> dict[str, dict[str, int]]:
        """Row counts of a build of ``groups`` groups: ``{control: {condition: rows}}``."""
        out: dict[str, dict[str, int]] = {}
        for control in CONTROLS:
            vtiers, ttiers = self.control_tiers(control)
            out[control] = {
                "vision_only": groups * len(vtiers),
                "text_only": groups * len(ttiers),
                "conflict": groups * len(vtiers) * len(ttiers),
            }
        return out

    def group_rows(
        self,
        group: int,
        *,
        base: Callable[[str], dict[str, Any]],
        visual: Callable[[int], dict[str, Any]],
        no_image: dict[str, Any],
        text_of: Callable[[int, str], Any],
    ) -> list[dict[str, Any]]:
        """Every row of one group, in :meth:`expected_row_ids` order, with the join keys that tie each
        conflict to its unimodal rows.

        ``base(control)`` holds the columns every row of a control shares, ``visual(dv)`` the image columns
        of visual tier ``dv``, ``no_image`` those of a row without an image and ``text_of(dt, control)`` the
        text (``.text``, ``.template_id``) of text tier ``dt``.
        """
        rows: list[dict[str, Any]] = []
        for control in CONTROLS:
            vtiers, ttiers = self.control_tiers(control)
            shared = base(control)
            for dv in vtiers:
                no_text = {"text_tier": -1, "text": "", "template_id": ""}
                rows.append(
                    {**shared, **visual(dv), **_keys(group, dv, -1, control, "vision_only"), **no_text}
                )
            for dt in ttiers:
                keys = _keys(group, -1, dt, control, "text_only")
                rows.append({**shared, **no_image, **keys, **_text(text_of(dt, control), dt)})
            for dv in vtiers:
                for dt in ttiers:
                    keys = _keys(group, dv, dt, control, "conflict")
                    rows.append({**shared, **visual(dv), **keys, **_text(text_of(dt, control), dt)})
        return rows


def row_keys(group: int, visual_tier: int, text_tier: int, control: str, condition: str) -> dict[str, str]:
    """``row_id``, ``item_id``, ``vision_key`` and ``text_key`` of a row of ``condition``: a unimodal row is
    its own join key, a conflict row points to both of its unimodal rows."""
    vision = vision_key(group, visual_tier, control) if condition != "text_only" else ""
    text = text_key(group, text_tier, control) if condition != "vision_only" else ""
    item = item_id(group, visual_tier, text_tier, control) if condition == "conflict" else ""
    return {"row_id": item or vision or text, "item_id": item, "vision_key": vision, "text_key": text}


def _keys(group: int, visual_tier: int, text_tier: int, control: str, condition: str) -> dict[str, Any]:
    return {**row_keys(group, visual_tier, text_tier, control, condition), "condition": _CONDITION[condition]}


def _text(text: Any, dt: int) -> dict[str, Any]:
    return {"text_tier": dt, "text": text.text, "template_id": text.template_id}
