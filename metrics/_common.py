"""Small shared pieces: the interval tuple, Wilson intervals and input checks."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats


class _IntervalFields(NamedTuple):
    low: float | None
    high: float | None
    method: str


class Interval(_IntervalFields):
    """A confidence interval ``(low, high, method)``; undefined intervals have None bounds and a reason
    (not part of the tuple, so ``low, high, method = interval`` works)."""

    reason: str | None

    def __new__(
        cls, low: float | None, high: float | None, method: str, reason: str | None = None
    ) -> Interval:
        self = super().__new__(cls, low, high, method)
        self.reason = reason
        return self

    def __repr__(self) -> str:
        return (
            f"Interval(low={self.low!r}, high={self.high!r}, method={self.method!r}, reason={self.reason!r})"
        )


def check_confidence_level(confidence_level: float) -> float:
    """Return ``confidence_level`` as a float, or raise ValueError unless it lies strictly in (0, 1)."""
    level = float(confidence_level)
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence_level must lie strictly between 0 and 1, got {confidence_level!r}")
    return level


def check_choice(value: object, name: str, choices: tuple[str, ...]) -> None:
    """Raise ValueError unless ``value`` is one of ``choices``."""
    if value not in choices:
        listed = ", ".join(repr(choice) for choice in choices[:-1]) + f" or {choices[-1]!r}"
        raise ValueError(f"{name} must be {listed}, got {value!r}")


def check_fit_counts(n_resamples: int, min_conflicts: int) -> None:
    """Raise ValueError for a negative or fractional ``n_resamples`` or a ``min_conflicts`` below 1."""
    if int(n_resamples) != n_resamples or n_resamples < 0:
        raise ValueError(f"n_resamples must be a non-negative integer, got {n_resamples!r}")
    if int(min_conflicts) < 1:
        raise ValueError(f"min_conflicts must be >= 1, got {min_conflicts!r}")


def z_value(confidence_level: float) -> float:
    """Two-sided standard normal quantile for ``confidence_level``."""
    return float(stats.norm.ppf(0.5 + check_confidence_level(confidence_level) / 2.0))


def wilson_bounds(successes: np.ndarray, trials: np.ndarray, z: float) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised Wilson score bounds; entries with ``trials == 0`` come back as NaN (callers mask them)."""
    x = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = x / n
        denom = 1.0 + z * z / n
        centre = (p + z * z / (2.0 * n)) / denom
        half = z / denom * np.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n))
    low = np.clip(centre - half, 0.0, 1.0)
    high = np.clip(centre + half, 0.0, 1.0)
    # Exact zeros/ones: the clipped bound is the true bound, avoid 1e-17 rounding noise.
    low = np.where(x == 0, 0.0, low)
    high = np.where(x == n, 1.0, high)
    return low, high


def wilson_interval(successes: int, trials: int, *, confidence_level: float = 0.95) -> Interval:
    """Wilson score interval for a binomial proportion; undefined (None bounds, a reason) for zero trials.

    >>> wilson_interval(7, 10).low
    0.3967...
    """
    if int(successes) != successes or int(trials) != trials or not 0 <= successes <= trials:
        raise ValueError(
            f"need integers 0 <= successes <= trials, got successes={successes}, trials={trials}"
        )
    if trials == 0:
        return Interval(None, None, "wilson", "no trials")
    low, high = wilson_bounds(np.array(successes), np.array(trials), z_value(confidence_level))
    return Interval(float(low), float(high), "wilson")


def as_float_array(values: ArrayLike, name: str, *, ndim: int | None = 1) -> np.ndarray:
    """Convert to a float array, raising ValueError (naming ``name``) for wrong shape or non-numeric input."""
    try:
        array = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name} must be numeric: {error}") from None
    if ndim is not None and array.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-dimensional, got shape {array.shape}")
    return array


def check_finite(array: np.ndarray, name: str) -> None:
    """Raise ValueError naming the first index of ``array`` that is NaN or infinite."""
    bad = ~np.isfinite(array)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        where = index[0] if len(index) == 1 else index
        raise ValueError(f"{name} has a non-finite value {float(array[index])!r} at index {where}")


def as_binary(values: ArrayLike, name: str) -> np.ndarray:
    """A 1-D 0/1 float array from booleans or 0/1 numbers; anything else is a ValueError."""
    array = as_float_array(values, name)
    bad = (array != 0.0) & (array != 1.0)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name} must be 0/1 or boolean, got {float(array[index])!r} at index {index}")
    return array


def clean_float(value: float | None) -> float | None:
    """A finite Python float, or None; never NaN."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def bootstrap_interval(
    replicates: np.ndarray, level: float, *, n_resamples: int, n_groups: int, missing: int, why_missing: str
) -> Interval:
    """Percentile interval of a cluster bootstrap, or why there is none: dropping the ``missing``
    resamples would bias the percentiles, so they must be fewer than ``(1 - level) / 2`` of all."""
    if n_resamples == 0:
        return Interval(None, None, "bootstrap", "no bootstrap resamples were drawn (n_resamples=0)")
    if n_groups < 2:
        return Interval(None, None, "bootstrap", "a cluster bootstrap needs at least two item groups")
    if missing > (1.0 - level) / 2.0 * n_resamples:
        reason = f"{missing} of {n_resamples} bootstrap resamples {why_missing}"
        return Interval(None, None, "bootstrap", reason)
    low, high = quantile_interval(replicates, level)
    return Interval(low, high, "bootstrap")


def quantile_interval(replicates: np.ndarray, confidence_level: float) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates (linear interpolation between order statistics)."""
    alpha = 1.0 - check_confidence_level(confidence_level)
    low, high = np.quantile(replicates, [alpha / 2.0, 1.0 - alpha / 2.0])
    return float(low), float(high)
