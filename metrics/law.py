"""The monotonic law (P(follow text) falls as dH rises): a per-model statistic, the binned curve the
paper plots, and the robustness view split at the median total entropy."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from modality_conflict.metrics._common import (
    Interval,
    as_binary,
    as_float_array,
    check_confidence_level,
    check_finite,
    clean_float,
    quantile_interval,
    wilson_bounds,
    z_value,
)
from modality_conflict.metrics._logistic import LogisticFit, PreparedData, fit_logistic, prepare
from modality_conflict.metrics.balance import BalancePointResult, balance_point_from_fit


@dataclass(frozen=True)
class LawResult:
    """Statistics for the monotonic law of one model.

    Attributes
    ----------
    slope : float or None
        Logistic slope of follow-text on dH; the law predicts a negative slope.
    slope_se : float or None
        Its standard error (cluster-robust unless ``covariance_type == "model"``).
    status, reason : str, str or None
        ``"ok"`` or ``"undefined"`` with the reason (too few conflicts, separation, one dH value, ...).
    spearman_rho, spearman_pvalue : float or None
        Spearman rank correlation between dH and follow-text and its p-value (``alternative`` as
        requested). The p-value treats conflicts as independent; the slope interval does not.
    spearman_reason : str or None
        Why the rank correlation is undefined (e.g. a constant input).
    alternative : str
        Alternative hypothesis of the Spearman test.
    n, n_groups, n_resamples, n_failed_resamples : int
        Conflicts, item groups, bootstrap resamples and resamples without a finite fit.
    covariance_type : str
        ``"cluster"`` or ``"model"``.
    """

    slope: float | None
    slope_se: float | None
    status: str
    reason: str | None
    spearman_rho: float | None
    spearman_pvalue: float | None
    spearman_reason: str | None
    alternative: str
    n: int
    n_groups: int
    n_resamples: int
    n_failed_resamples: int
    covariance_type: str
    _bootstrap_slopes: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False, compare=False)

    def confidence_interval(
        self, confidence_level: float = 0.95, *, method: Literal["delta", "bootstrap"] = "delta"
    ) -> Interval:
        """Confidence interval for the slope.

        Parameters
        ----------
        confidence_level : float, optional
            Default 0.95.
        method : {"delta", "bootstrap"}, optional
            Wald interval with the (cluster-robust) standard error, or percentile interval of the
            cluster bootstrap.

        Returns
        -------
        Interval
        """
        level = check_confidence_level(confidence_level)
        if method not in ("delta", "bootstrap"):
            raise ValueError(f"method must be 'delta' or 'bootstrap', got {method!r}")
        if self.status != "ok":
            return Interval(None, None, method, self.reason)
        if method == "delta":
            if self.slope_se is None:
                return Interval(None, None, method, "the slope variance is not positive")
            z = z_value(level)
            return Interval(self.slope - z * self.slope_se, self.slope + z * self.slope_se, method)
        if self.n_resamples == 0:
            return Interval(None, None, method, "no bootstrap resamples were drawn (n_resamples=0)")
        if self.n_groups < 2:
            return Interval(None, None, method, "a cluster bootstrap needs at least two item groups")
        if self.n_failed_resamples > (1.0 - level) / 2.0 * self.n_resamples:
            return Interval(
                None,
                None,
                method,
                f"{self.n_failed_resamples} of {self.n_resamples} bootstrap "
                "resamples have no finite fit (separated data)",
            )
        low, high = quantile_interval(self._bootstrap_slopes, level)
        return Interval(low, high, method)

    def verdict(
        self, confidence_level: float = 0.95, *, method: Literal["delta", "bootstrap"] = "delta"
    ) -> str:
        """``"holds"`` if the slope interval lies below 0, ``"violated"`` if above 0, else
        ``"inconclusive"``; ``"undefined"`` without an interval."""
        interval = self.confidence_interval(confidence_level, method=method)
        if interval.low is None or interval.high is None:
            return "undefined"
        if interval.high < 0:
            return "holds"
        if interval.low > 0:
            return "violated"
        return "inconclusive"


def _spearman(
    dh: np.ndarray, y: np.ndarray, alternative: str
) -> tuple[float | None, float | None, str | None]:
    if dh.size < 3:
        return None, None, f"only {dh.size} conflicts"
    if np.all(dh == dh[0]):
        return None, None, "dH is constant"
    if np.all(y == y[0]):
        return None, None, "follow-text is constant"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = stats.spearmanr(dh, y, alternative=alternative)
    rho, pvalue = clean_float(result.statistic), clean_float(result.pvalue)
    return (
        rho,
        pvalue,
        None if rho is not None and pvalue is not None else "the rank correlation is undefined",
    )


def law_from_fit(
    fit: LogisticFit, data: PreparedData, *, covariance: str = "cluster", alternative: str = "two-sided"
) -> LawResult:
    """Build a :class:`LawResult` from an internal logistic fit (shared with the balance point)."""
    rho, pvalue, why = _spearman(data.dh, data.y, alternative)
    cov = fit.cov_cluster if covariance == "cluster" and fit.cov_cluster is not None else fit.cov_model
    cov_type = "cluster" if cov is not None and cov is fit.cov_cluster else "model"
    slope = slope_se = None
    if fit.status == "ok":
        slope = float(fit.coef[1])
        variance = float(cov[1, 1])
        slope_se = float(np.sqrt(variance)) if np.isfinite(variance) and variance > 0 else None
    return LawResult(
        slope=slope,
        slope_se=slope_se,
        status=fit.status,
        reason=fit.reason,
        spearman_rho=rho,
        spearman_pvalue=pvalue,
        spearman_reason=why,
        alternative=alternative,
        n=fit.n,
        n_groups=fit.n_groups,
        n_resamples=fit.n_resamples,
        n_failed_resamples=fit.n_failed,
        covariance_type=cov_type,
        _bootstrap_slopes=fit.boot_coef[:, 1].copy(),
    )


def monotonic_law(
    dh: ArrayLike,
    follow_text: ArrayLike,
    *,
    groups: ArrayLike | None = None,
    n_resamples: int = 0,
    rng: int | np.random.Generator | None = None,
    min_conflicts: int = 10,
    covariance: Literal["cluster", "model"] = "cluster",
    alternative: Literal["two-sided", "less", "greater"] = "two-sided",
) -> LawResult:
    """Test the monotonic law: does P(follow text) fall as dH rises?

    Parameters
    ----------
    dh, follow_text : array_like
        As in :func:`~modality_conflict.metrics.balance.balance_point`.
    groups : array_like, optional
        Item groups for the cluster-robust covariance and the cluster bootstrap.
    n_resamples : int, optional
        Cluster bootstrap resamples for the slope interval, default 0 (delta interval only).
    rng : int, numpy.random.Generator or None, optional
        Seed or generator for the bootstrap.
    min_conflicts : int, optional
        Fewer fitted conflicts give an undefined result (default 10).
    covariance : {"cluster", "model"}, optional
        Covariance for the slope's standard error.
    alternative : {"two-sided", "less", "greater"}, optional
        Alternative of the Spearman test; ``"less"`` is the one-sided test of the law.

    Returns
    -------
    LawResult
        The logistic slope (with :meth:`LawResult.confidence_interval` and :meth:`LawResult.verdict`)
        and the Spearman correlation between dH and follow-text.
    """
    if covariance not in ("cluster", "model"):
        raise ValueError(f"covariance must be 'cluster' or 'model', got {covariance!r}")
    if alternative not in ("two-sided", "less", "greater"):
        raise ValueError(f"alternative must be 'two-sided', 'less' or 'greater', got {alternative!r}")
    if int(n_resamples) != n_resamples or n_resamples < 0:
        raise ValueError(f"n_resamples must be a non-negative integer, got {n_resamples!r}")
    if int(min_conflicts) < 1:
        raise ValueError(f"min_conflicts must be >= 1, got {min_conflicts!r}")
    data = prepare(dh, follow_text, groups)
    fit = fit_logistic(
        data, n_resamples=int(n_resamples), rng=np.random.default_rng(rng), min_conflicts=int(min_conflicts)
    )
    return law_from_fit(fit, data, covariance=covariance, alternative=alternative)


# --- binned curve ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BinnedCurve:
    """Text-following rate per dH bin, with Wilson intervals (the curve the paper plots).

    Attributes
    ----------
    edges : numpy.ndarray
        Bin edges (K + 1); bins are ``[e_i, e_{i+1})``, the last one closed.
    counts, n_text : numpy.ndarray
        Conflicts per bin and text-following conflicts per bin (integers).
    tfr, low, high : tuple of (float or None)
        TFR and Wilson bounds per bin; None for empty bins.
    confidence_level : float
        Level of the Wilson intervals.
    n_outside : int
        Conflicts outside the edges (only with explicit edges).
    """

    edges: np.ndarray = field(compare=False)
    counts: np.ndarray = field(compare=False)
    n_text: np.ndarray = field(compare=False)
    tfr: tuple[float | None, ...]
    low: tuple[float | None, ...]
    high: tuple[float | None, ...]
    confidence_level: float
    n_outside: int = 0

    @property
    def centres(self) -> np.ndarray:
        """Bin midpoints."""
        return (self.edges[:-1] + self.edges[1:]) / 2.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe lists; empty bins have None rates."""
        return {
            "edges": [float(e) for e in self.edges],
            "centres": [float(c) for c in self.centres],
            "counts": [int(c) for c in self.counts],
            "n_text": [int(c) for c in self.n_text],
            "tfr": list(self.tfr),
            "tfr_ci_low": list(self.low),
            "tfr_ci_high": list(self.high),
            "confidence_level": self.confidence_level,
            "n_outside": self.n_outside,
        }


def binned_curve(
    dh: ArrayLike,
    follow_text: ArrayLike,
    *,
    bins: int | ArrayLike = 10,
    confidence_level: float = 0.95,
) -> BinnedCurve:
    """TFR per dH bin with Wilson score intervals.

    Parameters
    ----------
    dh, follow_text : array_like
        Relative uncertainty and 0/1 text-following of each conflict ("other" answers dropped).
    bins : int or array_like, optional
        Number of equal-width bins over the observed dH range (default 10), or explicit increasing
        edges (conflicts outside them are counted in ``n_outside``).
    confidence_level : float, optional
        Level of the Wilson intervals, default 0.95.

    Returns
    -------
    BinnedCurve

    Examples
    --------
    >>> curve = binned_curve([-1, -0.5, 0.5, 1], [1, 1, 0, 1], bins=2)
    >>> curve.tfr
    (1.0, 0.5)
    """
    x = as_float_array(dh, "dh")
    check_finite(x, "dh")
    y = as_binary(follow_text, "follow_text")
    if x.size != y.size:
        raise ValueError(f"dh has {x.size} entries but follow_text has {y.size}")
    level = check_confidence_level(confidence_level)
    if np.ndim(bins) == 0:
        if int(bins) != bins or bins < 1:
            raise ValueError(f"bins must be a positive integer or a sequence of edges, got {bins!r}")
        if x.size == 0:
            raise ValueError("cannot choose bin edges without data; pass explicit edges")
        edges = np.histogram_bin_edges(x, bins=int(bins))
    else:
        edges = as_float_array(bins, "bins")
        check_finite(edges, "bins")
        if edges.size < 2 or np.any(np.diff(edges) <= 0):
            raise ValueError("bin edges must be at least two strictly increasing numbers")
    k = edges.size - 1
    index = np.searchsorted(edges, x, side="right") - 1
    index[x == edges[-1]] = k - 1  # the last bin is closed on the right
    inside = (index >= 0) & (index < k)
    counts = np.bincount(index[inside], minlength=k)
    n_text = np.bincount(index[inside], y[inside], minlength=k).round().astype(np.int64)
    low, high = wilson_bounds(n_text, counts, z_value(level))
    filled = counts > 0
    rate = np.divide(n_text, counts, out=np.zeros(k), where=filled)

    def masked(values: np.ndarray) -> tuple[float | None, ...]:
        return tuple(float(v) if ok else None for v, ok in zip(values, filled, strict=True))

    return BinnedCurve(
        edges=edges,
        counts=counts,
        n_text=n_text,
        tfr=masked(rate),
        low=masked(low),
        high=masked(high),
        confidence_level=level,
        n_outside=int(np.count_nonzero(~inside)),
    )


# --- robustness --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RobustnessResult:
    """The law within low- and high-total-entropy halves (split at the median of Ht + Hv).

    Attributes
    ----------
    median_total_entropy : float
        The split point; the low half is ``Ht + Hv <= median``.
    low_curve, high_curve : BinnedCurve
        Binned TFR per half, on the same edges.
    low_balance, high_balance : BalancePointResult
        Logistic balance point per half (delta interval; no bootstrap).
    """

    median_total_entropy: float
    low_curve: BinnedCurve
    high_curve: BinnedCurve
    low_balance: BalancePointResult
    high_balance: BalancePointResult


def robustness_split(
    dh: ArrayLike,
    follow_text: ArrayLike,
    ht: ArrayLike,
    hv: ArrayLike,
    *,
    groups: ArrayLike | None = None,
    bins: int | ArrayLike = 10,
    confidence_level: float = 0.95,
    min_conflicts: int = 10,
) -> RobustnessResult:
    """Split conflicts at the median of ``Ht + Hv`` and redo the curve and the balance point per half.

    Parameters
    ----------
    dh, follow_text : array_like
        Relative uncertainty and 0/1 text-following of each conflict.
    ht, hv : array_like
        Text-only and vision-only entropies of the same conflicts.
    groups : array_like, optional
        Item groups (for the cluster-robust delta interval).
    bins : int or array_like, optional
        Bins for both curves; an integer gives equal-width bins over the full dH range so that the two
        halves share edges.
    confidence_level : float, optional
        Level of the Wilson intervals.
    min_conflicts : int, optional
        Minimum conflicts per half for a balance point.

    Returns
    -------
    RobustnessResult

    Notes
    -----
    The paper's check: within each half the curve should stay monotone, and the high-entropy half
    should sit closer to zero (a balance point nearer 0).
    """
    x = as_float_array(dh, "dh")
    t = as_float_array(ht, "ht")
    v = as_float_array(hv, "hv")
    check_finite(t, "ht")
    check_finite(v, "hv")
    if not x.size == t.size == v.size:
        raise ValueError(f"dh, ht and hv must have the same length, got {x.size}, {t.size} and {v.size}")
    if x.size == 0:
        raise ValueError("no conflicts to split")
    y = as_binary(follow_text, "follow_text")
    g = None if groups is None else np.asarray(groups)
    total = t + v
    median = float(np.median(total))
    edges = np.histogram_bin_edges(x, bins=int(bins)) if np.ndim(bins) == 0 else np.asarray(bins, dtype=float)
    halves = []
    for mask in (total <= median, total > median):
        curve = binned_curve(x[mask], y[mask], bins=edges, confidence_level=confidence_level)
        data = prepare(x[mask], y[mask], None if g is None else g[mask])
        fit = fit_logistic(data, n_resamples=0, rng=None, min_conflicts=int(min_conflicts))
        halves.append((curve, balance_point_from_fit(fit, data)))
    (low_curve, low_balance), (high_curve, high_balance) = halves
    return RobustnessResult(median, low_curve, high_curve, low_balance, high_balance)
