"""The monotonic law (P(follow text) falls as dH rises): a per-model statistic, the binned curve the
paper plots, and the robustness view split at the median total entropy."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from modality_conflict.metrics import _common as common
from modality_conflict.metrics._common import Interval, as_binary, as_float_array, check_finite
from modality_conflict.metrics._logistic import LogisticFit, PreparedData, fit_checked, fit_logistic, prepare
from modality_conflict.metrics.balance import BalancePointResult, balance_point_from_fit


@dataclass(frozen=True)
class LawResult:
    """Statistics for the monotonic law of one model: the logistic slope of follow-text on dH (the law
    predicts a negative one) and the Spearman correlation, whose p-value treats conflicts as independent."""

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
        """Wald interval for the slope with its (cluster-robust) standard error, or percentile interval
        of the cluster bootstrap."""
        level = common.check_confidence_level(confidence_level)
        common.check_choice(method, "method", ("delta", "bootstrap"))
        if self.status != "ok":
            return Interval(None, None, method, self.reason)
        if method == "delta":
            if self.slope_se is None:
                return Interval(None, None, method, "the slope variance is not positive")
            z = common.z_value(level)
            return Interval(self.slope - z * self.slope_se, self.slope + z * self.slope_se, method)
        return common.bootstrap_interval(
            self._bootstrap_slopes,
            level,
            n_resamples=self.n_resamples,
            n_groups=self.n_groups,
            missing=self.n_failed_resamples,
            why_missing="have no finite fit (separated data)",
        )

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
    rho, pvalue = common.clean_float(result.statistic), common.clean_float(result.pvalue)
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
    cov, cov_type = fit.covariance(covariance)
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

    Options as in :func:`~modality_conflict.metrics.balance.balance_point`, but no bootstrap by default;
    ``alternative="less"`` makes the Spearman test the one-sided test of the law.
    """
    fit, data = fit_checked(
        dh,
        follow_text,
        groups,
        n_resamples=n_resamples,
        rng=rng,
        min_conflicts=min_conflicts,
        covariance=covariance,
        alternative=alternative,
    )
    return law_from_fit(fit, data, covariance=covariance, alternative=alternative)


# --- binned curve ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BinnedCurve:
    """Text-following rate per dH bin, with Wilson intervals (the curve the paper plots); bins are
    ``[e_i, e_{i+1})``, the last one closed, and empty bins have None rates."""

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
    """TFR per dH bin with Wilson score intervals; ``bins`` is a number of equal-width bins over the
    observed dH range or explicit increasing edges.

    >>> binned_curve([-1, -0.5, 0.5, 1], [1, 1, 0, 1], bins=2).tfr
    (1.0, 0.5)
    """
    x = as_float_array(dh, "dh")
    check_finite(x, "dh")
    y = as_binary(follow_text, "follow_text")
    if x.size != y.size:
        raise ValueError(f"dh has {x.size} entries but follow_text has {y.size}")
    level = common.check_confidence_level(confidence_level)
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
    low, high = common.wilson_bounds(n_text, counts, common.z_value(level))
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
    """The law within low- and high-total-entropy halves (``Ht + Hv <= median`` is low).

    Both curves share their edges; the balance points have no bootstrap.
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
    """Split conflicts at the median of ``Ht + Hv`` and redo the curve (shared edges) and the balance
    point per half: each half should stay monotone, the high-entropy half nearer 0."""
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
