"""Synthetic conflict items drawn from a known logistic law (for tests, benchmarks and demos)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import expit

from modality_conflict.dataset_builder.constants import CONTROLS
from modality_conflict.metrics.answers import OTHER
from modality_conflict.metrics.items import ConflictItems


def simulate_items(
    *,
    candidates: Sequence[str],
    n_groups: int = 400,
    visual_tiers: Sequence[int] = tuple(range(14)),
    text_tiers: Sequence[int] = (0, 1, 2),
    control_tiers: Sequence[int] = (),
    balance: float = 0.0,
    slope: float = -4.0,
    other_rate: float = 0.05,
    group_sd: float = 0.0,
    estimator: str = "full_vocab",
    rng: int | np.random.Generator | None = None,
) -> ConflictItems:
    """Draw conflict items whose text-following follows ``expit(slope * (dH - balance) + u_group)``.

    ``candidates`` needs at least three answers (an "other" conflict answer is a third one). Each group
    crosses ``visual_tiers`` and ``text_tiers`` for ``control == "none"`` items and adds a
    ``text_irrelevant`` and an ``image_irrelevant`` item (text tier 0) at each of ``control_tiers``.
    ``u_group`` is a normal random intercept with standard deviation ``group_sd``. Vision entropy grows
    with the visual tier (about 0.25 nats at tier 0 to 1.6 at tier 13) and text entropy with the text tier;
    unimodal answers are wrong more often when their entropy is high. In control items the irrelevant
    modality is followed rarely (10%).
    """
    gen = np.random.default_rng(rng)
    dv_all, dt_all, control_all = [], [], []
    for dv in visual_tiers:
        for dt in text_tiers:
            dv_all.append(dv)
            dt_all.append(dt)
            control_all.append("none")
    for control in CONTROLS[1:]:
        for dv in control_tiers:
            dv_all.append(dv)
            dt_all.append(0)
            control_all.append(control)
    per_group = len(dv_all)
    group = np.repeat(np.arange(n_groups), per_group)
    dv = np.tile(np.array(dv_all, dtype=np.int64), n_groups)
    dt = np.tile(np.array(dt_all, dtype=np.int64), n_groups)
    control = np.tile(np.array(control_all), n_groups)
    n = group.size
    n_colors = len(candidates)

    vision_color = gen.integers(0, n_colors, n_groups)[group]
    # The text's colour differs from the image's colour (one text per group, tier and control).
    text_shift = gen.integers(1, n_colors, n)
    text_color = (vision_color + text_shift) % n_colors

    # Entropies are shared by items that share a unimodal prompt: (group, dv, control) / (group, dt, control).
    control_code = np.unique(control, return_inverse=True)[1].reshape(-1)
    v_unit = np.unique((group * 100 + dv) * 3 + control_code, return_inverse=True)[1].reshape(-1)
    t_unit = np.unique((group * 100 + dt) * 3 + control_code, return_inverse=True)[1].reshape(-1)
    top = max(max(visual_tiers, default=0), 1)
    hv_unit = np.exp(gen.normal(0.0, 0.5, v_unit.max() + 1))
    ht_unit = np.exp(gen.normal(0.0, 0.5, t_unit.max() + 1))
    hv = hv_unit[v_unit] * (0.25 + 1.35 * dv / top)
    ht = ht_unit[t_unit] * (0.3 + 0.3 * dt)

    def answer(truth: np.ndarray, entropy: np.ndarray, unit: np.ndarray) -> np.ndarray:
        u = gen.random(unit.max() + 1)[unit]
        wrong = gen.integers(1, n_colors, unit.max() + 1)[unit]
        correct = u < np.exp(-0.15 * entropy)
        return np.where(correct, truth, (truth + wrong) % n_colors)

    yv = answer(vision_color, hv, v_unit)
    yt = answer(text_color, ht, t_unit)
    dh = 2.0 * (ht - hv) / (ht + hv)
    effect = gen.normal(0.0, group_sd, n_groups)[group] if group_sd > 0 else 0.0
    p_text = expit(slope * (dh - balance) + effect)
    p_text = np.where(control == "text_irrelevant", 0.1, np.where(control == "image_irrelevant", 0.9, p_text))
    follow_text = gen.random(n) < p_text
    ym = np.where(follow_text, yt, yv)
    is_other = gen.random(n) < other_rate
    # A third colour: step forward until it is neither unimodal answer (at most two steps).
    pick = gen.integers(0, n_colors, n)
    for _ in range(2):
        pick = np.where((pick == yv) | (pick == yt), (pick + 1) % n_colors, pick)
    ym = np.where(is_other, pick, ym)

    names = np.array(candidates)
    item_id = [f"g{g:04d}-v{v:02d}-t{t}-{c}" for g, v, t, c in zip(group, dv, dt, control, strict=True)]
    labels_m = names[ym]
    labels_m = np.where(is_other & (gen.random(n) < 0.3), OTHER, labels_m)
    return ConflictItems.from_columns(
        item_id=item_id,
        group_id=group,
        visual_tier=dv,
        text_tier=dt,
        control=control,
        vision_answer=names[vision_color],
        text_answer=names[text_color],
        yv=names[yv],
        yt=names[yt],
        ym=labels_m,
        hv=hv,
        ht=ht,
        estimator=estimator,
        candidates=tuple(candidates),
    )
