"""The whole per-model report: following rates, balance point, law, curves, grids and controls."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from modality_conflict.dataset_builder.constants import CONTROLS
from modality_conflict.metrics._common import Interval, check_confidence_level, check_fit_counts
from modality_conflict.metrics._logistic import LogisticFit, fit_logistic, prepare
from modality_conflict.metrics.balance import BalancePointResult, balance_point_from_fit
from modality_conflict.metrics.following import FollowingRates, classify_following, following_rates
from modality_conflict.metrics.grids import TierGrids, tier_grids
from modality_conflict.metrics.items import ConflictItems
from modality_conflict.metrics.law import (
    BinnedCurve,
    LawResult,
    RobustnessResult,
    binned_curve,
    law_from_fit,
    robustness_split,
)
from modality_conflict.metrics.uncertainty import relative_uncertainty

RELEVANT_MODALITY = {"text_irrelevant": "vision", "image_irrelevant": "text"}
"""For each control type, the modality that carries the answer (the other one is irrelevant)."""


@dataclass(frozen=True)
class ViewResult:
    """Everything computed for one view of the main items: the model's own unimodal answers, or only
    items whose unimodal answers are both correct (the paper's main analysis)."""

    rates: FollowingRates
    balance: BalancePointResult
    law: LawResult
    curve: BinnedCurve | None
    curve_reason: str | None
    ambiguous: dict[str, Any]


@dataclass(frozen=True, eq=False)
class ConflictReport:
    """Result of :func:`summarize`; :meth:`to_dict` gives the flat JSON-safe form. Parts that are
    undefined are None with a reason."""

    n_items: int
    n_main: int
    estimator: str
    confidence_level: float
    n_resamples: int
    min_conflicts: int
    ambiguity_radius: float
    own: ViewResult
    correct: ViewResult
    means: dict[str, float | None]
    entropy_reason: str | None
    robustness: RobustnessResult | None
    robustness_reason: str | None
    grids: TierGrids | None
    grids_reason: str | None
    controls: dict[str, FollowingRates] = field(default_factory=dict)
    n_controls: dict[str, int] = field(default_factory=dict)

    @property
    def balance(self) -> BalancePointResult:
        """Balance point of the own-answers view (the headline number)."""
        return self.own.balance

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-safe dict. Undefined numbers are None with a ``<key>_reason`` entry; never NaN.

        The own-answers view gives the counts, ``tfr`` / ``vfr`` / ``other_rate`` with Wilson ``_ci_low`` /
        ``_ci_high``, ``balance_point`` (with ``_reason`` always, ``_status``, ``_bound``, delta and
        bootstrap bounds, ``_ci_low`` / ``_ci_high`` from the bootstrap when defined, else the delta
        method, ``_ci_method`` saying which, ``_isotonic``), the logistic coefficients, the ``law_*``
        numbers and verdict, the ambiguous-region TFRs and the ``binned_curve``; the both-correct view
        repeats them with ``_correct`` appended. Also the run's settings, mean entropies, ``robustness``,
        ``controls`` (with flat ``tfr_<control>`` copies) and the tier tables (cells ``[visual][text]``).
        """
        out: dict[str, Any] = {
            "entropy_estimator": self.estimator,
            "confidence_level": self.confidence_level,
            "n_resamples": self.n_resamples,
            "min_conflicts": self.min_conflicts,
            "n_items": self.n_items,
            "n_main_items": self.n_main,
            "ambiguity_radius": self.ambiguity_radius,
        }
        for name in ("mean_hv", "mean_ht", "mean_dh"):
            _put(out, name, self.means.get(name), self.entropy_reason)
        for suffix, view in (("", self.own), ("_correct", self.correct)):
            _view_to_dict(out, view, suffix, self.confidence_level)
        if self.robustness is not None:
            out["robustness"] = _robustness_to_dict(self.robustness, self.confidence_level)
        else:
            out["robustness"] = None
            out["robustness_reason"] = self.robustness_reason
        if self.grids is not None:
            out.update(self.grids.to_dict())
        else:
            tables = (
                "vision_accuracy_by_tier",
                "text_accuracy_by_tier",
                "mean_hv_by_tier",
                "mean_ht_by_tier",
            )
            for key in (*tables, "tfr_by_tier_cell"):
                out[key] = None
                out[f"{key}_reason"] = self.grids_reason
        controls: dict[str, Any] = {}
        for control, rates in self.controls.items():
            entry: dict[str, Any] = {
                "n_items": self.n_controls[control],
                "relevant_modality": RELEVANT_MODALITY[control],
            }
            _rates_to_dict(entry, rates, "", self.confidence_level)
            relevant = "vfr" if RELEVANT_MODALITY[control] == "vision" else "tfr"
            _put(entry, "relevant_rate", getattr(rates, relevant), rates.reason(relevant))
            controls[control] = entry
            # Flat copies for consumers that read one number per key (e.g. lmms-eval metrics).
            _put(out, f"tfr_{control}", rates.tfr, rates.reason("tfr"))
        out["controls"] = controls
        _assert_json_safe(out)
        return out


def _put(out: dict[str, Any], key: str, value: Any, reason: str | None) -> None:
    """Store a number, or None plus ``<key>_reason`` when it is undefined."""
    if value is not None and isinstance(value, float) and not math.isfinite(value):
        value = None
    out[key] = value
    if value is None:
        out[f"{key}_reason"] = reason or "undefined"


def _put_interval(out: dict[str, Any], stem: str, suffix: str, interval: Interval) -> None:
    """Store an interval's bounds as ``<stem>_low<suffix>`` and ``<stem>_high<suffix>``."""
    _put(out, f"{stem}_low{suffix}", interval.low, interval.reason)
    _put(out, f"{stem}_high{suffix}", interval.high, interval.reason)


def _rates_to_dict(out: dict[str, Any], rates: FollowingRates, suffix: str, level: float) -> None:
    out[f"n_conflicts{suffix}"] = rates.n_conflicts
    out[f"n_text{suffix}"] = rates.n_text
    out[f"n_vision{suffix}"] = rates.n_vision
    out[f"n_other{suffix}"] = rates.n_other
    out[f"n_not_conflict{suffix}"] = rates.n_not_conflict
    out[f"n_unimodal_other{suffix}"] = rates.n_unimodal_other
    for rate in ("tfr", "vfr", "other_rate"):
        _put(out, f"{rate}{suffix}", getattr(rates, rate), rates.reason(rate))
        _put_interval(out, f"{rate}_ci", suffix, rates.confidence_interval(level, rate=rate))


def _view_to_dict(out: dict[str, Any], view: ViewResult, suffix: str, level: float) -> None:
    _rates_to_dict(out, view.rates, suffix, level)
    balance = view.balance
    _put(out, f"balance_point{suffix}", balance.estimate, balance.reason)
    out[f"balance_point{suffix}_reason"] = balance.reason  # present (None) also when the estimate exists
    out[f"balance_point_status{suffix}"] = balance.status
    if balance.bound is not None:
        out[f"balance_point_bound{suffix}"] = balance.bound
    if balance.bracket is not None:
        out[f"balance_point_bound_low{suffix}"], out[f"balance_point_bound_high{suffix}"] = balance.bracket
    delta = balance.confidence_interval(level, method="delta")
    boot = balance.confidence_interval(level, method="bootstrap")
    _put_interval(out, "balance_point_delta", suffix, delta)
    _put_interval(out, "balance_point_bootstrap", suffix, boot)
    main = boot if boot.low is not None else delta
    _put_interval(out, "balance_point_ci", suffix, main)
    out[f"balance_point_ci_method{suffix}"] = main.method
    _put(out, f"balance_point_isotonic{suffix}", balance.isotonic_estimate, balance.isotonic_reason)
    out[f"balance_point_isotonic_status{suffix}"] = balance.isotonic_status
    out[f"balance_point_n_groups{suffix}"] = balance.n_groups
    out[f"balance_point_n_failed_resamples{suffix}"] = balance.n_failed_resamples
    fit_reason = balance.reason if balance.intercept is None else None
    _put(out, f"logistic_intercept{suffix}", balance.intercept, fit_reason)
    _put(out, f"logistic_slope{suffix}", balance.slope, fit_reason)
    law = view.law
    _put(out, f"law_slope_se{suffix}", law.slope_se, law.reason or "the slope variance is not positive")
    _put_interval(out, "law_slope_ci", suffix, law.confidence_interval(level, method="delta"))
    _put_interval(out, "law_slope_bootstrap", suffix, law.confidence_interval(level, method="bootstrap"))
    _put(out, f"law_spearman_rho{suffix}", law.spearman_rho, law.spearman_reason)
    _put(out, f"law_spearman_p{suffix}", law.spearman_pvalue, law.spearman_reason)
    out[f"law_verdict{suffix}"] = law.verdict(level, method="delta")
    out[f"binned_curve{suffix}"] = None if view.curve is None else view.curve.to_dict()
    if view.curve is None:
        out[f"binned_curve{suffix}_reason"] = view.curve_reason
    for key, value in view.ambiguous.items():
        if key.endswith("_reason"):
            continue
        _put(out, f"{key}{suffix}", value, view.ambiguous.get(f"{key}_reason"))


def _robustness_to_dict(result: RobustnessResult, level: float) -> dict[str, Any]:
    out: dict[str, Any] = {"median_total_entropy": result.median_total_entropy}
    for half, curve, balance in (
        ("low", result.low_curve, result.low_balance),
        ("high", result.high_curve, result.high_balance),
    ):
        out[f"{half}_n"] = balance.n
        _put(out, f"{half}_balance_point", balance.estimate, balance.reason)
        out[f"{half}_balance_point_status"] = balance.status
        _put_interval(
            out, f"{half}_balance_point_delta", "", balance.confidence_interval(level, method="delta")
        )
        _put(out, f"{half}_logistic_slope", balance.slope, balance.reason)
        out[f"{half}_binned_curve"] = curve.to_dict()
    return out


def _assert_json_safe(value: Any, path: str = "report") -> None:
    """Guard the promise that the dict holds no NaN/inf and only JSON types."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path} has a non-string key {key!r}")
            _assert_json_safe(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _assert_json_safe(item, f"{path}[{i}]")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path} is {value}")
    elif value is not None and not isinstance(value, (str, int, bool)):
        raise TypeError(f"{path} has type {type(value).__name__}")


def _ambiguity(
    dh: np.ndarray, y: np.ndarray, balance: BalancePointResult, radius: float, reason: str | None = None
) -> dict[str, Any]:
    """Counts and TFR inside and outside the ambiguous region |dH - balance| <= radius."""
    if balance.estimate is None:
        why = reason or f"no balance point ({balance.status})"
        keys = ("n_ambiguous", "tfr_ambiguous", "tfr_clear")
        return {name: value for key in keys for name, value in ((key, None), (f"{key}_reason", why))}
    near = np.abs(dh - balance.estimate) <= radius
    out: dict[str, Any] = {"n_ambiguous": int(near.sum())}
    for key, mask in (("tfr_ambiguous", near), ("tfr_clear", ~near)):
        out[key] = float(y[mask].mean()) if mask.any() else None
        if not mask.any():
            out[f"{key}_reason"] = "no conflicts in this region"
    return out


def _view(
    dh: np.ndarray | None,
    labels: np.ndarray,
    groups: np.ndarray,
    *,
    n_resamples: int,
    rng: np.random.Generator,
    min_conflicts: int,
    radius: float,
    bins: int,
    no_dh_reason: str | None,
) -> ViewResult:
    rates = following_rates(labels, min_conflicts=min_conflicts)
    followed = (labels == "text") | (labels == "vision")
    y = (labels[followed] == "text").astype(float)
    if dh is None:
        # No entropies: following rates still stand, everything on the dH axis is undefined.
        x = np.zeros(0)
        data = prepare(x, x, None)
        fit = LogisticFit(
            "undefined", no_dh_reason, n=int(y.size), n_groups=0, n_text=int(y.sum()), dh_range=None
        )
        curve, curve_reason = None, no_dh_reason
    else:
        x = dh[followed]
        data = prepare(x, y, groups[followed], canonical=True)
        fit = fit_logistic(data, n_resamples=n_resamples, rng=rng, min_conflicts=min_conflicts)
        if x.size:
            curve, curve_reason = binned_curve(x, y, bins=bins), None
        else:
            curve, curve_reason = None, "no text- or vision-following conflicts"
    balance = balance_point_from_fit(fit, data)
    law = law_from_fit(fit, data)
    ambiguous = _ambiguity(x, y, balance, radius, no_dh_reason if dh is None else None)
    return ViewResult(rates, balance, law, curve, curve_reason, ambiguous)


def summarize(
    items: ConflictItems,
    *,
    n_resamples: int = 2000,
    confidence_level: float = 0.95,
    rng: int | np.random.Generator | None = None,
    min_conflicts: int = 10,
    ambiguity_radius: float = 0.5,
    bins: int = 10,
) -> ConflictReport:
    """Compute the whole report for one model run from every item (all control types).

    ``n_resamples`` cluster bootstrap resamples (item groups) serve the balance point and slope; below
    ``min_conflicts`` conflicts (per view, per control) rates and fits are undefined; ``ambiguity_radius``
    is the half-width of the ambiguous region around the balance point; ``bins`` equal-width dH bins make
    the curves. Items are sorted by ``item_id`` first, so the report does not depend on the order in which
    lmms-eval gathered them; with a fixed ``rng`` it is fully deterministic.
    """
    if not isinstance(items, ConflictItems):
        raise TypeError(f"items must be ConflictItems, got {type(items).__name__}")
    if len(items) == 0:
        raise ValueError("no conflict items to summarise")
    level = check_confidence_level(confidence_level)
    check_fit_counts(n_resamples, min_conflicts)
    if not float(ambiguity_radius) > 0:
        raise ValueError(f"ambiguity_radius must be positive, got {ambiguity_radius!r}")
    generator = np.random.default_rng(rng)
    items = items.take(np.argsort(items.item_id, kind="stable"))
    main = items.take(items.control == "none")
    labels = classify_following(main.yv, main.yt, main.ym)
    both_correct = (main.yv == main.vision_answer) & (main.yt == main.text_answer)

    entropy_reason = None if items.has_entropy else "the run has no entropies (estimator 'none')"
    dh = relative_uncertainty(main.ht, main.hv) if items.has_entropy else None
    if items.has_entropy and len(main) == 0:
        entropy_reason = "no items with control 'none'"
    means = {
        "mean_hv": float(main.hv.mean()) if dh is not None and len(main) else None,
        "mean_ht": float(main.ht.mean()) if dh is not None and len(main) else None,
        "mean_dh": float(dh.mean()) if dh is not None and len(main) else None,
    }
    options = {
        "n_resamples": int(n_resamples),
        "rng": generator,
        "min_conflicts": int(min_conflicts),
        "radius": float(ambiguity_radius),
        "bins": int(bins),
        "no_dh_reason": entropy_reason,
    }
    own = _view(dh, labels, main.group_id, **options)
    correct = _view(
        None if dh is None else dh[both_correct], labels[both_correct], main.group_id[both_correct], **options
    )

    robustness, robustness_reason = None, entropy_reason
    if dh is not None:
        followed = (labels == "text") | (labels == "vision")
        if followed.any():
            robustness = robustness_split(
                dh[followed],
                labels[followed] == "text",
                main.ht[followed],
                main.hv[followed],
                groups=main.group_id[followed],
                bins=int(bins),
                confidence_level=level,
                min_conflicts=int(min_conflicts),
            )
        else:
            robustness_reason = "no text- or vision-following conflicts"
    grids, grids_reason = (tier_grids(main, min_conflicts=1), None) if len(main) else (None, "no main items")

    controls: dict[str, FollowingRates] = {}
    n_controls: dict[str, int] = {}
    for control in CONTROLS[1:]:
        subset = items.take(items.control == control)
        n_controls[control] = len(subset)
        controls[control] = following_rates(
            classify_following(subset.yv, subset.yt, subset.ym), min_conflicts=int(min_conflicts)
        )
    return ConflictReport(
        n_items=len(items),
        n_main=len(main),
        estimator=items.estimator,
        confidence_level=level,
        n_resamples=int(n_resamples),
        min_conflicts=int(min_conflicts),
        ambiguity_radius=float(ambiguity_radius),
        own=own,
        correct=correct,
        means=means,
        entropy_reason=entropy_reason,
        robustness=robustness,
        robustness_reason=robustness_reason,
        grids=grids,
        grids_reason=grids_reason,
        controls=controls,
        n_controls=n_controls,
    )
