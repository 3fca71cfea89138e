"""The report's figures: following curve, entropy by tier and TFR by tier cell, drawn from task results.

Each plot draws its run's own summary (binned curve, logistic fit, balance point, per-tier tables), so it
can never disagree with the results file; the per-doc records add the entropies' spread per tier.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from modality_conflict.analysis.formatting import figure_text
from modality_conflict.analysis.results import TaskResult
from modality_conflict.analysis.task_summary import finite_number
from modality_conflict.dataset_builder.atomic import atomic_file


def entropy_spread(records: Sequence[Mapping[str, Any]], condition: str) -> dict[int, tuple[float, int]]:
    """Per tier, the half-width of a normal 95% interval of the mean entropy, and the number of prompts. Only
    main-set (``control == "none"``) unimodal records of ``condition`` with an entropy count; each
    unimodal prompt is one record, which is the unit the report's per-tier means average over.
    """
    tier_key = "visual_tier" if condition == "vision_only" else "text_tier"
    values: dict[int, list[float]] = {}
    for record in records:
        if record.get("condition") != condition or record.get("control") != "none":
            continue
        entropy = finite_number(record.get("entropy"))
        if entropy is not None:
            values.setdefault(int(record[tier_key]), []).append(entropy)
    out = {}
    for tier, entries in sorted(values.items()):
        array = np.asarray(entries)
        half = 1.96 * float(array.std(ddof=1)) / math.sqrt(array.size) if array.size > 1 else 0.0
        out[tier] = (half, int(array.size))
    return out


LINE_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
DH_LABEL = "relative uncertainty dH = 2 (Ht - Hv) / (Ht + Hv)"


def new_figure(width: float, height: float) -> Any:
    """A figure on an Agg canvas (no pyplot state, no GUI backend, safe in threads)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_png(figure: Any, path: Path) -> Path:
    """Write ``figure`` to ``path`` as a PNG, whole or not at all."""
    with atomic_file(path) as tmp:
        figure.savefig(tmp, format="png")
    return path


def plot_following_curve(runs: Sequence[TaskResult], path: Path) -> Path:
    """P(follow text) against dH for every run: binned points with Wilson intervals, the fitted logistic
    curve over the observed dH range, and the balance point with its confidence band."""
    figure = new_figure(8.0, 5.2 + 0.25 * len(runs))
    axes = figure.add_subplot()
    axes.axhline(0.5, color="0.6", lw=0.8, ls=":")
    axes.axvline(0.0, color="0.6", lw=0.8, ls=":")
    drawn = 0
    for index, run in enumerate(runs):
        colour = LINE_COLOURS[index % len(LINE_COLOURS)]
        summary = run.summary
        curve = summary.binned_curve
        label = figure_text(f"{run.label}: {summary.inherent_preference().text}")
        if curve is None:
            why = summary.why_undefined("binned_curve")
            axes.plot([], [], color=colour, label=figure_text(f"{run.label}: no curve ({why})"))
            continue
        drawn += 1
        centres = np.asarray(curve["centres"], dtype=float)
        rate = np.array([np.nan if v is None else v for v in curve["tfr"]], dtype=float)
        low = np.array([np.nan if v is None else v for v in curve["tfr_ci_low"]], dtype=float)
        high = np.array([np.nan if v is None else v for v in curve["tfr_ci_high"]], dtype=float)
        shown = np.isfinite(rate)
        axes.errorbar(
            centres[shown],
            rate[shown],
            yerr=[rate[shown] - low[shown], high[shown] - rate[shown]],
            fmt="o",
            color=colour,
            ms=5,
            capsize=3,
            lw=1,
            alpha=0.9,
        )
        intercept, slope = summary.logistic_fit
        edges = np.asarray(curve["edges"], dtype=float)
        if intercept is not None and slope is not None:
            grid = np.linspace(edges[0], edges[-1], 200)
            axes.plot(
                grid, 1.0 / (1.0 + np.exp(-(intercept + slope * grid))), color=colour, lw=2, label=label
            )
        else:
            axes.plot([], [], color=colour, lw=2, label=label)
        point = summary.balance_point
        estimate, ci_low, ci_high = point.estimate, point.ci_low, point.ci_high
        if estimate is not None:
            if point.has_interval:
                axes.axvspan(ci_low, ci_high, color=colour, alpha=0.15, lw=0)
                axes.errorbar(
                    [estimate],
                    [0.5],
                    xerr=[[estimate - ci_low], [ci_high - estimate]],
                    fmt="none",
                    ecolor=colour,
                    capsize=5,
                    lw=2,
                )
            axes.plot([estimate], [0.5], marker="D", ms=9, color=colour, mec="black", zorder=5)
        if estimate is None and point.censored:
            arrow = "<" if point.status == "censored_below" else ">"
            axes.plot([point.bound], [0.5], marker=arrow, ms=12, color=colour, mec="black", zorder=5)
        if estimate is None and point.bracket is not None:
            # Separated data: the crossing lies somewhere in the gap, drawn as a bar at 0.5.
            low, high = point.bracket
            axes.plot([low, high], [0.5, 0.5], color=colour, lw=4, solid_capstyle="butt", zorder=5)
            axes.plot([low, high], [0.5, 0.5], ls="none", marker="|", ms=14, color="black", zorder=6)
    axes.set_xlabel(
        f"{DH_LABEL}\n\u2190 more confident in the text          more confident in the image \u2192"
    )
    axes.set_ylabel("P(follow text)")
    axes.set_ylim(-0.03, 1.03)
    axes.set_xlim(-2.05, 2.05)  # the whole range of dH, so that reports of different runs line up
    if not drawn:
        axes.text(
            0, 0.5, "no conflict was answered with the text or the image answer", ha="center", va="bottom"
        )
    axes.set_title(
        "Text-following against relative uncertainty (diamond: balance point, band: 95% CI)", fontsize=10
    )
    axes.grid(alpha=0.25)
    # Below the axes: long labels (one per model) must never hide the points.
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=8, frameon=False)
    return save_png(figure, path)


def plot_entropy_by_tier(runs: Sequence[TaskResult], path: Path) -> Path:
    """Mean vision-only entropy per visual tier and mean text-only entropy per text tier, runs overlaid. Means
    are the run's reported per-tier means; error bars (95%, normal) come from its per-doc records.
    """
    from modality_conflict.dataset_builder.constants import TEXT_TIER_NAMES

    figure = new_figure(10.0, 4.2)
    vision_axes, text_axes = figure.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1]})
    offsets = np.linspace(-0.15, 0.15, len(runs)) if len(runs) > 1 else np.zeros(1)
    for index, run in enumerate(runs):
        colour = LINE_COLOURS[index % len(LINE_COLOURS)]
        for axes, key, condition in (
            (vision_axes, "mean_hv_by_tier", "vision_only"),
            (text_axes, "mean_ht_by_tier", "text_only"),
        ):
            means = run.summary.tier_table(key)
            if not means:
                continue
            spread = entropy_spread(run.records, condition)
            tiers = np.array(list(means), dtype=float)
            values = np.array(list(means.values()))
            errors = np.array([spread.get(int(t), (0.0, 0))[0] for t in tiers])
            axes.errorbar(
                tiers + offsets[index],
                values,
                yerr=errors,
                fmt="-o",
                color=colour,
                capsize=3,
                ms=4,
                label=figure_text(run.label),
            )
    vision_axes.set_xlabel("visual difficulty tier dv")
    vision_axes.set_ylabel("mean entropy Hv (nats)")
    vision_axes.set_title("Vision-only entropy")
    text_axes.set_xlabel("text difficulty tier dt")
    text_axes.set_ylabel("mean entropy Ht (nats)")
    text_axes.set_title("Text-only entropy")
    text_axes.set_xticks(
        range(len(TEXT_TIER_NAMES)), [f"{i}\n{n}" for i, n in enumerate(TEXT_TIER_NAMES)], fontsize=7
    )
    for axes in (vision_axes, text_axes):
        axes.grid(alpha=0.3)
        axes.set_ylim(bottom=0)
    vision_axes.legend(fontsize=8)
    return save_png(figure, path)


def plot_tfr_heatmap(run: TaskResult, path: Path) -> Path:
    """TFR per (visual tier, text tier) cell, annotated with the rate and the number of conflicts."""
    cells, counts = run.summary.tier_cells()
    figure = new_figure(5.6, 6.0)
    axes = figure.add_subplot()
    if not cells:
        axes.text(0.5, 0.5, "no per-tier TFR in this run", ha="center", va="center")
        axes.set_axis_off()
        return save_png(figure, path)
    visual = sorted(int(v) for v in cells)
    text = sorted({int(t) for row in cells.values() for t in row})
    grid = np.full((len(visual), len(text)), np.nan)
    for i, dv in enumerate(visual):
        for j, dt in enumerate(text):
            value = finite_number(cells[str(dv)].get(str(dt)))
            grid[i, j] = np.nan if value is None else value
    from matplotlib import colormaps

    palette = colormaps["coolwarm"].with_extremes(bad="0.85")  # cells without conflicts in grey
    image = axes.imshow(np.ma.masked_invalid(grid), cmap=palette, vmin=0.0, vmax=1.0, aspect="auto")
    for i, dv in enumerate(visual):
        for j, dt in enumerate(text):
            n = (counts.get(str(dv)) or {}).get(str(dt), 0)
            shown = "n/a" if np.isnan(grid[i, j]) else f"{grid[i, j]:.2f}"
            axes.text(
                j,
                i,
                f"{shown}\nn={n}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if not np.isnan(grid[i, j]) and abs(grid[i, j] - 0.5) > 0.3 else "black",
            )
    axes.set_xticks(range(len(text)), [str(t) for t in text])
    axes.set_yticks(range(len(visual)), [str(v) for v in visual])
    axes.set_xlabel("text difficulty tier dt")
    axes.set_ylabel("visual difficulty tier dv")
    axes.set_title(figure_text(f"TFR by tier: {run.label}"), fontsize=9)
    figure.colorbar(image, ax=axes, label="text-following rate (1 = always the text)")
    return save_png(figure, path)
