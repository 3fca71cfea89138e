"""Per-tier grids: unimodal accuracy and mean entropy per visual and per text tier, TFR per tier cell."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from modality_conflict.metrics.following import classify_following
from modality_conflict.metrics.items import ConflictItems


@dataclass(frozen=True)
class TierGrids:
    """Accuracy, mean entropy and following rates by difficulty tier.

    Unimodal numbers count each unimodal prompt once (``(group, tier, control)``), however many conflict
    items share it; ``cell_n`` counts a cell's text- or vision-following conflicts.
    """

    vision_n: dict[int, int]
    vision_accuracy: dict[int, float]
    mean_hv: dict[int, float | None]
    text_n: dict[int, int]
    text_accuracy: dict[int, float]
    mean_ht: dict[int, float | None]
    cell_n: dict[tuple[int, int], int]
    cell_tfr: dict[tuple[int, int], float | None]
    cell_reason: dict[tuple[int, int], str]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe nested dicts keyed by tier (as strings); cells are ``[visual][text]``."""
        out: dict[str, Any] = {
            "vision_accuracy_by_tier": {str(k): v for k, v in self.vision_accuracy.items()},
            "vision_n_by_tier": {str(k): v for k, v in self.vision_n.items()},
            "mean_hv_by_tier": {str(k): v for k, v in self.mean_hv.items()},
            "text_accuracy_by_tier": {str(k): v for k, v in self.text_accuracy.items()},
            "text_n_by_tier": {str(k): v for k, v in self.text_n.items()},
            "mean_ht_by_tier": {str(k): v for k, v in self.mean_ht.items()},
        }
        tfr: dict[str, dict[str, float | None]] = {}
        counts: dict[str, dict[str, int]] = {}
        reasons: dict[str, dict[str, str]] = {}
        for (dv, dt), value in self.cell_tfr.items():
            tfr.setdefault(str(dv), {})[str(dt)] = value
            counts.setdefault(str(dv), {})[str(dt)] = self.cell_n[(dv, dt)]
            if (dv, dt) in self.cell_reason:
                reasons.setdefault(str(dv), {})[str(dt)] = self.cell_reason[(dv, dt)]
        out["tfr_by_tier_cell"] = tfr
        out["n_by_tier_cell"] = counts
        if reasons:
            out["tfr_by_tier_cell_reason"] = reasons
        if any(v is None for v in self.mean_hv.values()) or any(v is None for v in self.mean_ht.values()):
            out["mean_hv_by_tier_reason"] = out["mean_ht_by_tier_reason"] = "the run has no entropies"
        return out


def _unit_means(keys: np.ndarray, tiers: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of ``values`` per unit (unique entry of the integer ``keys``), with each unit's tier."""
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    counts = np.bincount(inverse)
    return np.bincount(inverse, values) / counts, tiers[first]


def _per_tier(tiers: np.ndarray, values: np.ndarray) -> dict[int, float]:
    levels, inverse = np.unique(tiers, return_inverse=True)
    means = np.bincount(inverse, values) / np.bincount(inverse)
    return {int(level): float(mean) for level, mean in zip(levels, means, strict=True)}


def tier_grids(items: ConflictItems, *, min_conflicts: int = 1) -> TierGrids:
    """Accuracy and entropy by tier, and TFR per (visual tier, text tier) cell (None below
    ``min_conflicts`` text- or vision-following conflicts)."""
    if len(items) == 0:
        raise ValueError("no items to tabulate")
    # One integer key per unimodal prompt: (group, tier, control) packed by their ranks.
    group = np.unique(items.group_id, return_inverse=True)[1].reshape(-1)
    control = np.unique(items.control, return_inverse=True)[1].reshape(-1)
    v_rank = np.unique(items.visual_tier, return_inverse=True)[1].reshape(-1)
    t_rank = np.unique(items.text_tier, return_inverse=True)[1].reshape(-1)
    vision_keys = (group * (v_rank.max() + 1) + v_rank) * 3 + control
    text_keys = (group * (t_rank.max() + 1) + t_rank) * 3 + control
    v_correct, v_tier = _unit_means(vision_keys, items.visual_tier, (items.yv == items.vision_answer) * 1.0)
    t_correct, t_tier = _unit_means(text_keys, items.text_tier, (items.yt == items.text_answer) * 1.0)
    vision_n = {int(k): int(c) for k, c in zip(*np.unique(v_tier, return_counts=True), strict=True)}
    text_n = {int(k): int(c) for k, c in zip(*np.unique(t_tier, return_counts=True), strict=True)}
    if items.has_entropy:
        mean_hv: dict[int, float | None] = dict(
            _per_tier(v_tier, _unit_means(vision_keys, items.visual_tier, items.hv)[0])
        )
        mean_ht: dict[int, float | None] = dict(
            _per_tier(t_tier, _unit_means(text_keys, items.text_tier, items.ht)[0])
        )
    else:
        mean_hv = dict.fromkeys(vision_n)
        mean_ht = dict.fromkeys(text_n)

    labels = classify_following(items.yv, items.yt, items.ym)
    v_levels, v_index = np.unique(items.visual_tier, return_inverse=True)
    t_levels, t_index = np.unique(items.text_tier, return_inverse=True)
    cell = v_index.reshape(-1) * t_levels.size + t_index.reshape(-1)
    size = v_levels.size * t_levels.size
    present = np.bincount(cell, minlength=size)
    n_followed = (
        np.bincount(cell, (labels == "text") | (labels == "vision"), minlength=size).round().astype(int)
    )
    n_text = np.bincount(cell, labels == "text", minlength=size).round().astype(int)
    floor = max(int(min_conflicts), 1)
    cell_n: dict[tuple[int, int], int] = {}
    cell_tfr: dict[tuple[int, int], float | None] = {}
    cell_reason: dict[tuple[int, int], str] = {}
    for code in np.flatnonzero(present):
        key = (int(v_levels[code // t_levels.size]), int(t_levels[code % t_levels.size]))
        cell_n[key] = int(n_followed[code])
        if n_followed[code] < floor:
            cell_tfr[key] = None
            cell_reason[key] = f"only {int(n_followed[code])} text- or vision-following conflicts (< {floor})"
        else:
            cell_tfr[key] = float(n_text[code] / n_followed[code])
    return TierGrids(
        vision_n=vision_n,
        vision_accuracy=_per_tier(v_tier, v_correct),
        mean_hv=mean_hv,
        text_n=text_n,
        text_accuracy=_per_tier(t_tier, t_correct),
        mean_ht=mean_ht,
        cell_n=cell_n,
        cell_tfr=cell_tfr,
        cell_reason=cell_reason,
    )
