"""The probe's heatmap: mean logit(Yt) - logit(Yv) by decoder layer and dH bin."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from modality_conflict.analysis.figures import DH_LABEL, new_figure, save_png
from modality_conflict.analysis.formatting import figure_text
from modality_conflict.analysis.probe.statistics import Balance


def plot_heatmap(grid: Mapping[str, Any], balance: Balance, radius: float, path: Path, *, title: str) -> Path:
    """Draw the heatmap (layers up, dH bins across; diverging colours centred on 0) as a PNG."""
    from matplotlib import colormaps

    mean = np.array([[np.nan if v is None else v for v in row] for row in grid["mean"]], dtype=float)
    edges = np.asarray(grid["edges"], dtype=float)
    n_layers = mean.shape[0]
    figure = new_figure(8.0, 1.8 + 0.28 * max(n_layers, 8))
    axes = figure.add_subplot()
    limit = float(np.nanmax(np.abs(mean))) if np.isfinite(mean).any() else 1.0
    limit = limit if limit > 0 else 1.0
    palette = colormaps["RdBu_r"].with_extremes(bad="0.85")  # bins without items in grey
    layers = np.arange(n_layers + 1) + 0.5
    shown = np.ma.masked_invalid(mean)
    image = axes.pcolormesh(edges, layers, shown, cmap=palette, vmin=-limit, vmax=limit, shading="flat")
    if balance.value is not None:
        axes.axvline(balance.value, color="black", lw=1.5, label=f"balance point {balance.value:+.2f}")
        for edge in (balance.value - radius, balance.value + radius):
            axes.axvline(edge, color="black", lw=1.0, ls="--")
        axes.legend(loc="upper right", fontsize=8, framealpha=0.8)
    centres = (edges[:-1] + edges[1:]) / 2
    axes.set_xticks(edges)
    axes.set_xlim(edges[0], edges[-1])
    for centre, count in zip(centres, grid["counts"], strict=True):
        axes.text(centre, n_layers + 0.5, f"n={count}", ha="center", va="bottom", fontsize=7)
    step = max(1, n_layers // 16)
    axes.set_yticks(range(1, n_layers + 1, step))
    axes.set_ylim(0.5, n_layers + 0.5)
    axes.set_xlabel(DH_LABEL)
    axes.set_ylabel("decoder layer (logit lens at the answer position)")
    axes.set_title(figure_text(title), fontsize=9, pad=14)
    figure.colorbar(image, ax=axes, label="mean logit(Yt) - logit(Yv)  (> 0: text answer ahead)")
    return save_png(figure, path)
