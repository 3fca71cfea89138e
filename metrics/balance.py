"""The balance point: the dH at which the model is equally likely to follow the text or the image."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import isotonic_regression

from modality_conflict.metrics._common import Interval, check_confidence_level, quantile_interval, z_value
from modality_conflict.metrics._logistic import LogisticFit, PreparedData, fit_logistic, prepare

BALANCE_STATUSES: tuple[str, ...] = (
    "ok",
    "censored_below",
    "censored_above",
    "separated",
    "law_violated",
    "undefined",
)
"""Possible ``status`` values of a :class:`BalancePointResult`.

``ok``: the fitted curve crosses 0.5 inside the observed dH range. ``censored_below`` /
``censored_above``: it crosses below the smallest / above the largest observed dH, so only a bound is
known (``bound``); this includes data where every conflict followed the image (below) or the text
(above), for which no logistic fit exists but P(follow text) is 0 (1) at every observed dH.
``separated``: text-following only at low dH and vision-following only at high dH, with no overlap; no
logistic fit exists, and the crossing lies in the gap between the two (``bracket``). ``law_violated``:
P(follow text) does not fall with dH (a slope that is not negative, or separation the other way round),
so there is no balance point in the paper's sense. ``undefined``: no fit (too few conflicts, one dH
value, no convergence); ``reason`` says which.
"""


@dataclass(frozen=True)
class IsotonicCrossing:
    """Where a monotone (non-increasing) fit of P(follow text) on dH crosses 0.5.

    Attributes
    ----------
    estimate : float or None
        The crossing, by linear interpolation between the centres of the fitted blocks.
    status : str
        ``"ok"``, ``"censored_below"``, ``"censored_above"`` or ``"undefined"``.
    reason : str or None
        Why ``estimate`` is None.
    """

    estimate: float | None
    status: str
    reason: str | None = None


def isotonic_crossing(dh: ArrayLike, follow_text: ArrayLike) -> IsotonicCrossing:
    """Non-parametric balance point: pool-adjacent-violators fit, crossing of 0.5.

    Parameters
    ----------
    dh : array_like
        Relative uncertainty of each conflict.
    follow_text : array_like of bool
        1 where the conflict answer followed the text, 0 where it followed the image.

    Returns
    -------
    IsotonicCrossing

    Notes
    -----
    Tied dH values are pooled first. The non-increasing isotonic regression of follow-text on dH is
    constant on blocks; each block is placed at the weighted mean dH of its items and the crossing of
    0.5 is interpolated linearly between consecutive block centres (a block fitted exactly at 0.5 gives
    its centre). If every block lies above (below) 0.5 the crossing is censored above (below) the data.

    Examples
    --------
    >>> isotonic_crossing([-1, -0.5, 0.5, 1], [1, 1, 0, 0]).estimate
    0.0
    """
    data = prepare(dh, follow_text, None)
    return _isotonic(data.dh, data.y)


def _isotonic(dh: np.ndarray, y: np.ndarray) -> IsotonicCrossing:
    if dh.size == 0:
        return IsotonicCrossing(None, "undefined", "no conflicts")
    values, inverse = np.unique(dh, return_inverse=True)
    counts = np.bincount(inverse).astype(float)
    means = np.bincount(inverse, y) / counts
    fit = isotonic_regression(means, weights=counts, increasing=False)
    starts = fit.blocks[:-1]
    level = fit.x[starts]
    centre = np.add.reduceat(values * counts, starts) / np.add.reduceat(counts, starts)
    if level[0] < 0.5:
        return IsotonicCrossing(
            None, "censored_below", f"the monotone fit is below 0.5 at every dH (from {values[0]:.4g})"
        )
    if level[-1] > 0.5:
        return IsotonicCrossing(
            None, "censored_above", f"the monotone fit is above 0.5 at every dH (up to {values[-1]:.4g})"
        )
    exact = np.flatnonzero(level == 0.5)
    if exact.size:
        return IsotonicCrossing(float(centre[exact[0]]), "ok")
    j = int(np.flatnonzero(level < 0.5)[0])
    fraction = (level[j - 1] - 0.5) / (level[j - 1] - level[j])
    return IsotonicCrossing(float(centre[j - 1] + fraction * (centre[j] - centre[j - 1])), "ok")


@dataclass(frozen=True)
class BalancePointResult:
    """Balance point of P(follow text) = expit(b0 + b1 dH): the dH where it equals 0.5, ``-b0 / b1``.

    Attributes
    ----------
    estimate : float or None
        The balance point when ``status == "ok"``, else None.
    status : str
        One of :data:`BALANCE_STATUSES`.
    reason : str or None
        Why ``estimate`` is None.
    intercept, slope : float or None
        Fitted logistic coefficients (None when there is no fit).
    bound : float or None
        For censored results, the edge of the observed dH range beyond which the crossing lies.
    bracket : tuple of float or None
        For separated data, the dH gap ``(low, high)`` in which the crossing lies.
    dh_range : tuple of float or None
        Smallest and largest dH among the fitted conflicts.
    isotonic_estimate : float or None
        Crossing of the monotone non-parametric fit (a check on the logistic form).
    isotonic_status, isotonic_reason : str, str or None
        Status of the isotonic crossing (as in :class:`IsotonicCrossing`).
    n, n_groups : int
        Conflicts fitted (text- or vision-following) and item groups they come from.
    n_resamples, n_failed_resamples : int
        Cluster bootstrap resamples drawn, and those without a finite fit (separated data).
    covariance_type : str
        ``"cluster"`` (CR1 sandwich over groups) or ``"model"`` (inverse Fisher information); used by
        the delta-method interval.
    """

    estimate: float | None
    status: str
    reason: str | None
    intercept: float | None
    slope: float | None
    bound: float | None
    dh_range: tuple[float, float] | None
    isotonic_estimate: float | None
    isotonic_status: str
    isotonic_reason: str | None
    n: int
    n_groups: int
    n_resamples: int
    n_failed_resamples: int
    covariance_type: str
    covariance: np.ndarray | None = field(default=None, repr=False, compare=False)
    _bootstrap_coef: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)), repr=False, compare=False)
    bracket: tuple[float, float] | None = None

    @property
    def standard_error(self) -> float | None:
        """Delta-method standard error of the balance point, or None when it has no estimate."""
        if self.status != "ok" or self.covariance is None:
            return None
        gradient = np.array([-1.0 / self.slope, self.intercept / self.slope**2])
        variance = float(gradient @ self.covariance @ gradient)
        return float(np.sqrt(variance)) if np.isfinite(variance) and variance > 0 else None

    def bootstrap_replicates(self) -> np.ndarray:
        """Balance points of the bootstrap resamples that have one (negative slope); a copy."""
        coef = self._bootstrap_coef
        negative = coef[:, 1] < 0
        return -coef[negative, 0] / coef[negative, 1]

    def confidence_interval(
        self, confidence_level: float = 0.95, *, method: Literal["delta", "bootstrap"] = "delta"
    ) -> Interval:
        """Confidence interval for the balance point.

        Parameters
        ----------
        confidence_level : float, optional
            Default 0.95.
        method : {"delta", "bootstrap"}, optional
            ``"delta"``: normal interval with the delta-method standard error of ``-b0/b1``.
            ``"bootstrap"``: percentile interval of the cluster bootstrap (item groups resampled).

        Returns
        -------
        Interval
            None bounds and a reason when the balance point or the interval is undefined.

        Notes
        -----
        A bootstrap resample has no balance point when its data are separated or its slope is not
        negative. Dropping such resamples would bias the percentiles, so the interval is reported only
        when they are fewer than ``(1 - confidence_level) / 2`` of all resamples.
        """
        level = check_confidence_level(confidence_level)
        if method not in ("delta", "bootstrap"):
            raise ValueError(f"method must be 'delta' or 'bootstrap', got {method!r}")
        if self.status != "ok":
            return Interval(None, None, method, f"no balance point ({self.status}: {self.reason})")
        if method == "delta":
            se = self.standard_error
            if se is None:
                return Interval(None, None, method, "the delta-method variance is not positive")
            z = z_value(level)
            return Interval(self.estimate - z * se, self.estimate + z * se, method)
        if self.n_resamples == 0:
            return Interval(None, None, method, "no bootstrap resamples were drawn (n_resamples=0)")
        if self.n_groups < 2:
            return Interval(None, None, method, "a cluster bootstrap needs at least two item groups")
        replicates = self.bootstrap_replicates()
        missing = self.n_resamples - replicates.size
        if missing > (1.0 - level) / 2.0 * self.n_resamples:
            return Interval(
                None,
                None,
                method,
                f"{missing} of {self.n_resamples} bootstrap resamples have no balance point (separated "
                "data or a non-negative slope), too many for a percentile interval",
            )
        low, high = quantile_interval(replicates, level)
        return Interval(low, high, method)


def balance_point_from_fit(
    fit: LogisticFit, data: PreparedData, *, covariance: str = "cluster"
) -> BalancePointResult:
    """Wrap an internal logistic fit (shared with the law statistic) as a :class:`BalancePointResult`."""
    if data.dh.size:
        iso = _isotonic(data.dh, data.y)
    else:
        iso = IsotonicCrossing(None, "undefined", fit.reason or "no conflicts")
    common = {
        "dh_range": fit.dh_range,
        "isotonic_estimate": iso.estimate,
        "isotonic_status": iso.status,
        "isotonic_reason": iso.reason,
        "n": fit.n,
        "n_groups": fit.n_groups,
        "n_resamples": fit.n_resamples,
        "n_failed_resamples": fit.n_failed,
    }
    if fit.status != "ok":
        return _without_fit(fit, common, covariance)
    cov = fit.cov_cluster if covariance == "cluster" and fit.cov_cluster is not None else fit.cov_model
    cov_type = "cluster" if cov is fit.cov_cluster else "model"
    intercept, slope = float(fit.coef[0]), float(fit.coef[1])
    extra = {"covariance": cov, "covariance_type": cov_type, "_bootstrap_coef": fit.boot_coef}
    low, high = fit.dh_range
    if not slope < 0:
        reason = f"the fitted slope {slope:.4g} is not negative: P(follow text) does not fall as dH rises"
        return BalancePointResult(None, "law_violated", reason, intercept, slope, None, **common, **extra)
    crossing = -intercept / slope
    if crossing < low:
        reason = (
            f"the fitted curve is below 0.5 over the whole observed dH range [{low:.4g}, {high:.4g}]; "
            f"the balance point is below {low:.4g}"
        )
        return BalancePointResult(None, "censored_below", reason, intercept, slope, low, **common, **extra)
    if crossing > high:
        reason = (
            f"the fitted curve is above 0.5 over the whole observed dH range [{low:.4g}, {high:.4g}]; "
            f"the balance point is above {high:.4g}"
        )
        return BalancePointResult(None, "censored_above", reason, intercept, slope, high, **common, **extra)
    return BalancePointResult(crossing, "ok", None, intercept, slope, None, **common, **extra)


def _without_fit(fit: LogisticFit, common: dict, covariance: str) -> BalancePointResult:
    """What the data still say about the crossing when no logistic fit exists.

    One class only: the empirical P(follow text) is 0 (or 1) at every observed dH, so the crossing lies
    below the smallest (above the largest) dH. Separation the way the law expects: it lies in the gap.
    Separation the other way round: P(follow text) rises with dH, against the law.
    """
    status, reason, bound, bracket = "undefined", fit.reason, None, None
    if fit.failure == "one_class" and fit.dh_range is not None:
        low, high = fit.dh_range
        if fit.n_text == 0:
            status, bound = "censored_below", low
            reason = (
                f"all {fit.n} conflicts followed the image: P(follow text) is below 0.5 at every observed "
                f"dH, so the balance point is below the smallest dH, {low:.4g} (no logistic fit exists)"
            )
        else:
            status, bound = "censored_above", high
            reason = (
                f"all {fit.n} conflicts followed the text: P(follow text) is above 0.5 at every observed "
                f"dH, so the balance point is above the largest dH, {high:.4g} (no logistic fit exists)"
            )
    elif fit.failure == "separated" and fit.separation_gap is not None:
        low, high = fit.separation_gap
        if low <= high:
            status, bracket = "separated", (low, high)
            reason = (
                f"{fit.reason}; the balance point lies between {low:.4g} and {high:.4g}, the gap between "
                "the last text-following and the first vision-following dH"
            )
        else:
            status = "law_violated"
            reason = f"{fit.reason}: P(follow text) rises with dH, against the law"
    return BalancePointResult(
        None, status, reason, None, None, bound, covariance_type=covariance, bracket=bracket, **common
    )


def balance_point(
    dh: ArrayLike,
    follow_text: ArrayLike,
    *,
    groups: ArrayLike | None = None,
    n_resamples: int = 2000,
    rng: int | np.random.Generator | None = None,
    min_conflicts: int = 10,
    covariance: Literal["cluster", "model"] = "cluster",
) -> BalancePointResult:
    """Estimate the balance point from a logistic regression of follow-text on dH.

    Parameters
    ----------
    dh : array_like
        Relative uncertainty of each conflict (only conflicts answered with the text or the vision
        answer; drop "other" answers first).
    follow_text : array_like of bool
        1 for text-following, 0 for vision-following.
    groups : array_like, optional
        Item group of each conflict (items of one group share images and texts). The bootstrap
        resamples whole groups and the delta interval uses a cluster-robust covariance. Default: every
        conflict is its own group.
    n_resamples : int, optional
        Cluster bootstrap resamples, default 2000; 0 skips the bootstrap.
    rng : int, numpy.random.Generator or None, optional
        Seed or generator for the bootstrap.
    min_conflicts : int, optional
        Fewer fitted conflicts than this give an ``"undefined"`` result (default 10).
    covariance : {"cluster", "model"}, optional
        Covariance behind the delta interval: CR1 cluster-robust (default) or model-based.

    Returns
    -------
    BalancePointResult

    Notes
    -----
    The model is ``P(text) = expit(b0 + b1 dH)`` fitted by maximum likelihood (Newton's method). The
    balance point ``-b0/b1`` is reported only when ``b1 < 0`` and it lies inside the observed dH
    range; otherwise the status says whether the crossing is censored or the law is violated. The
    input order never matters: data are put in a canonical order before any random draw.

    The bootstrap draws all resamples at once and costs about one matrix product of the (resamples x
    groups) counts with per-(group, dH bin) sums: 100,000 conflicts in 2,000 groups with 2,000
    resamples take a fraction of a second. Without ``groups`` every conflict is its own cluster and
    the cost grows with conflicts x resamples (seconds for 100,000 conflicts).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.uniform(-1.5, 1.5, 400)
    >>> y = rng.random(400) < 1 / (1 + np.exp(-(1.2 - 4 * x)))
    >>> result = balance_point(x, y, n_resamples=200, rng=1)
    >>> result.status, round(result.estimate, 1)
    ('ok', 0.3)
    """
    if covariance not in ("cluster", "model"):
        raise ValueError(f"covariance must be 'cluster' or 'model', got {covariance!r}")
    if int(n_resamples) != n_resamples or n_resamples < 0:
        raise ValueError(f"n_resamples must be a non-negative integer, got {n_resamples!r}")
    if int(min_conflicts) < 1:
        raise ValueError(f"min_conflicts must be >= 1, got {min_conflicts!r}")
    data = prepare(dh, follow_text, groups)
    fit = fit_logistic(
        data, n_resamples=int(n_resamples), rng=np.random.default_rng(rng), min_conflicts=int(min_conflicts)
    )
    return balance_point_from_fit(fit, data, covariance=covariance)
