"""Probing statistics: the balance point the regions are centred on, oscillations by region, the heatmap grid.

Ambiguous region: ``|dH - balance point| <= radius`` (default 0.5); clear: the rest. When the balance
point is undefined or censored the regions are reported as undefined with the reason, unless the caller
sets one.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from modality_conflict.analysis.probe.lens import FIRST_TOKEN_NOTE, ProbeError
from modality_conflict.analysis.results import TaskSummary
from modality_conflict.dataset_builder.constants import CONTROLS
from modality_conflict.mc_tasks.records import REPORT_SEED
from modality_conflict.metrics.probing import oscillation_summary

DH_RANGE = (-2.0, 2.0)


@dataclass(frozen=True)
class Balance:
    """The balance point the regions are centred on, where it came from, or why there is none."""

    value: float | None
    source: str
    status: str
    reason: str | None = None


def balance_from_summary(summary: TaskSummary, source: str) -> Balance:
    """The balance point of a task's summary, or why it is undefined."""
    point = summary.balance_point
    if point.defined:
        return Balance(point.estimate, source, point.status)
    reason = point.reason or "no estimate"
    if point.bound is not None:
        reason = f"{reason} (bound {point.bound:+.3f})"
    hint = "pass --balance-point X to set the centre of the ambiguous region"
    why = f"the balance point is undefined ({point.status}: {reason}); {hint}"
    return Balance(None, source, point.status, why)


def _interval_fields(
    summary: Any,
    region: str,
    level: float,
    methods: Sequence[str] = ("t", "bootstrap"),
    no_bootstrap_reason: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for method in methods:
        prefix = "ci" if method == "t" else method
        interval = summary.confidence_interval(level, region=region, method=method)
        out[f"{prefix}_low"], out[f"{prefix}_high"] = interval.low, interval.high
        if interval.reason:
            out[f"{prefix}_reason"] = interval.reason
            if method == "bootstrap" and summary.n_resamples == 0 and no_bootstrap_reason:
                out[f"{prefix}_reason"] = no_bootstrap_reason
    return out


def summarize_oscillations(
    counts: Sequence[int],
    dh: Sequence[float],
    balance: Balance,
    *,
    radius: float = 0.5,
    confidence_level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = REPORT_SEED,
) -> dict[str, Any]:
    """Mean oscillations of one set of items, overall and in the ambiguous vs the clear region. Intervals:
    Student t (``ci_*``) and percentile bootstrap over items (``bootstrap_*``), from
    :func:`modality_conflict.metrics.probing.oscillation_summary`. Undefined numbers are None with a
    reason."""
    counts_array = np.asarray(counts, dtype=float)
    dh_array = np.asarray(dh, dtype=float)
    out: dict[str, Any] = {"n_items": int(counts_array.size)}
    if counts_array.size == 0:
        out.update(mean_oscillations=None, reason="no probed items")
        return out
    # The overall mean: every item in one "region" (infinite radius), so it gets the same t interval
    # (oscillation_summary draws bootstrap resamples only when both regions hold items).
    overall = oscillation_summary(
        counts_array, np.zeros(counts_array.size), 0.0, radius=math.inf, n_resamples=0
    )
    out["mean_oscillations"] = overall.mean_ambiguous
    out.update(_interval_fields(overall, "ambiguous", confidence_level, methods=("t",)))
    known = np.isfinite(dh_array)
    if balance.value is None:
        out["regions_reason"] = balance.reason
        return out
    if not known.any():
        out["regions_reason"] = "no item has a dH (the run has no entropies)"
        return out
    if not known.all():
        out["n_without_dh"] = int((~known).sum())
    summary = oscillation_summary(
        counts_array[known], dh_array[known], balance.value, radius=radius, n_resamples=n_resamples, rng=seed
    )
    # oscillation_summary resamples only when both regions hold items.
    why = "no bootstrap: a region is empty" if n_resamples > 0 else None
    for region, n, mean in (
        ("ambiguous", summary.n_ambiguous, summary.mean_ambiguous),
        ("clear", summary.n_clear, summary.mean_clear),
    ):
        entry: dict[str, Any] = {"n_items": n, "mean_oscillations": mean}
        if mean is None:
            entry["reason"] = "no items in this region"
        entry.update(_interval_fields(summary, region, confidence_level, no_bootstrap_reason=why))
        out[region] = entry
    difference: dict[str, Any] = {"ambiguous_minus_clear": summary.difference}
    if summary.difference is None:
        difference["reason"] = "a region is empty"
    difference.update(_interval_fields(summary, "difference", confidence_level, no_bootstrap_reason=why))
    out["difference"] = difference
    return out


def oscillations_by_control(
    items: Sequence[Mapping[str, Any]],
    balance: Balance,
    *,
    radius: float = 0.5,
    confidence_level: float = 0.95,
    n_resamples: int = 2000,
) -> dict[str, Any]:
    """Per control type (``none`` = the main set), mean oscillations overall and by region."""
    out: dict[str, Any] = {
        "balance_point": balance.value,
        "balance_point_source": balance.source,
        "balance_point_status": balance.status,
        "radius": float(radius),
        "confidence_level": float(confidence_level),
        "interval_methods": "ci_*: Student t over items; bootstrap_*: percentile bootstrap over items "
        "(regions and their difference only)",
        "note": FIRST_TOKEN_NOTE,
    }
    if balance.reason:
        out["balance_point_reason"] = balance.reason
    settings = {"radius": radius, "confidence_level": confidence_level, "n_resamples": n_resamples}
    out["by_control"] = {}
    for control in CONTROLS:
        subset = [item for item in items if item["control"] == control]
        counts = [item["oscillations"] for item in subset]
        dh = [math.nan if item["dh"] is None else item["dh"] for item in subset]
        out["by_control"][control] = summarize_oscillations(counts, dh, balance, **settings)
    return out


def heatmap_grid(items: Sequence[Mapping[str, Any]], n_layers: int, bins: int = 8) -> dict[str, Any]:
    """Mean logit(Yt) - logit(Yv) per (layer, dH bin) over the main (``control == "none"``) items. Bins are
    equal-width over dH's whole range [-2, 2] (the last one closed), so heatmaps of different runs line up.
    Returns ``edges`` (bins + 1), ``counts`` (items per bin) and ``mean`` (n_layers x bins, None where a
    bin has no item)."""
    if int(bins) < 1:
        raise ProbeError(f"bins must be a positive integer, got {bins!r}")
    edges = np.linspace(*DH_RANGE, int(bins) + 1)
    sums = np.zeros((n_layers, int(bins)))
    counts = np.zeros((n_layers, int(bins)), dtype=int)
    per_bin = np.zeros(int(bins), dtype=int)
    for item in items:
        if item["control"] != "none" or item["dh"] is None:
            continue
        column = min(int(np.searchsorted(edges, item["dh"], side="right")) - 1, int(bins) - 1)
        per_bin[column] += 1
        for layer, value in enumerate(item["logit_diff"]):
            if value is not None:
                sums[layer, column] += value
                counts[layer, column] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return {
        "items": "main items (control 'none') with a dH",
        "edges": [float(e) for e in edges],
        "counts": per_bin.tolist(),
        "mean": [[None if not np.isfinite(v) else float(v) for v in row] for row in mean],
    }
