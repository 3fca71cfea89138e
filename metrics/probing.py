"""Layer-wise probing: oscillations of the logit-lens top-1 answer between the vision and text answers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from modality_conflict.metrics._common import (
    Interval,
    as_float_array,
    check_choice,
    check_confidence_level,
    check_finite,
    quantile_interval,
)
from modality_conflict.metrics.balance import BalancePointResult

LENS_LABELS: tuple[str, ...] = ("vision", "text", "other")
"""Per-layer labels: the layer's top-1 token is the vision answer, the text answer, or neither."""


def _label_matrix(top1_labels: Sequence[Sequence[str]] | np.ndarray) -> tuple[np.ndarray, bool]:
    """Rows of labels padded with "other" (which never counts), and whether the input was one item."""
    array = np.asarray(top1_labels, dtype=object) if not isinstance(top1_labels, np.ndarray) else top1_labels
    if array.ndim == 1 and (array.size == 0 or isinstance(array[0], str)):
        return array.astype(str).reshape(1, -1), True
    if array.ndim == 2:
        return array.astype(str), False
    rows = [np.asarray(row, dtype=object).reshape(-1) for row in top1_labels]
    width = max((row.size for row in rows), default=0)
    matrix = np.full((len(rows), width), "other", dtype=object)
    for i, row in enumerate(rows):
        matrix[i, : row.size] = row
    return matrix.astype(str), False


def count_oscillations(top1_labels: Sequence[str] | Sequence[Sequence[str]] | np.ndarray) -> int | np.ndarray:
    """Count switches of the layer-wise top-1 answer between the vision and the text answer, for one
    item or per row; ``"other"`` layers are skipped (vision -> other -> text is one switch).

    >>> count_oscillations(["other", "vision", "other", "text", "text", "vision"])
    2
    """
    matrix, single = _label_matrix(top1_labels)
    unknown = ~np.isin(matrix, np.array(LENS_LABELS))
    if unknown.any():
        row, layer = (int(i) for i in np.argwhere(unknown)[0])
        where = f"layer {layer}" if single else f"item {row}, layer {layer}"
        raise ValueError(
            f"{where} has label {str(matrix[row, layer])!r}; expected one of {list(LENS_LABELS)}"
        )
    code = np.where(matrix == "vision", 1, np.where(matrix == "text", -1, 0))
    # Carry the last vision/text label forward over "other" layers, then count changes between the
    # carried label before each informative layer and that layer's label.
    positions = np.where(code != 0, np.arange(code.shape[1])[None, :], -1)
    last = np.maximum.accumulate(positions, axis=1)
    carried = np.where(last >= 0, np.take_along_axis(code, np.maximum(last, 0), axis=1), 0)
    previous = np.concatenate([np.zeros((code.shape[0], 1), dtype=code.dtype), carried[:, :-1]], axis=1)
    switches = np.count_nonzero((code != 0) & (previous != 0) & (code != previous), axis=1)
    return int(switches[0]) if single else switches.astype(np.int64)


@dataclass(frozen=True)
class OscillationSummary:
    """Mean oscillation counts in the ambiguous (``|dH - balance| <= radius``) and the clear region.

    Means are None for an empty region; ``n_resamples`` is 0 when only t intervals are available.
    """

    balance: float
    radius: float
    n_ambiguous: int
    n_clear: int
    mean_ambiguous: float | None
    mean_clear: float | None
    difference: float | None
    n_resamples: int
    _ambiguous: np.ndarray = field(repr=False, compare=False, default_factory=lambda: np.zeros(0))
    _clear: np.ndarray = field(repr=False, compare=False, default_factory=lambda: np.zeros(0))
    _boot: dict = field(repr=False, compare=False, default_factory=dict)

    def confidence_interval(
        self,
        confidence_level: float = 0.95,
        *,
        region: Literal["ambiguous", "clear", "difference"] = "difference",
        method: Literal["t", "bootstrap"] = "t",
    ) -> Interval:
        """Student t interval (Welch for the difference ambiguous - clear) or percentile bootstrap over
        items, for a region's mean oscillations or for their difference."""
        level = check_confidence_level(confidence_level)
        check_choice(region, "region", ("ambiguous", "clear", "difference"))
        check_choice(method, "method", ("t", "bootstrap"))
        names = ("ambiguous", "clear") if region == "difference" else (region,)
        parts = [getattr(self, f"_{name}") for name in names]
        for part, name in zip(parts, names, strict=True):
            if part.size < 2:
                return Interval(None, None, method, f"the {name} region has {part.size} items (need 2)")
        if method == "bootstrap":
            if self.n_resamples == 0:
                return Interval(None, None, method, "no bootstrap resamples were drawn (n_resamples=0)")
            low, high = quantile_interval(self._boot[region], level)
            return Interval(low, high, method)
        if region == "difference":
            a, b = self._ambiguous, self._clear
            va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
            se = np.sqrt(va + vb)
            if se == 0:
                return Interval(self.difference, self.difference, method)
            df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
            centre = self.difference
        else:
            values = parts[0]
            se = values.std(ddof=1) / np.sqrt(values.size)
            df = values.size - 1
            centre = float(values.mean())
            if se == 0:
                return Interval(centre, centre, method)
        half = float(stats.t.ppf(0.5 + level / 2.0, df)) * float(se)
        return Interval(centre - half, centre + half, method)


def _bootstrap_means(values: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Means of item resamples, drawn as multinomial counts over the distinct values (exact and cheap)."""
    levels, counts = np.unique(values, return_counts=True)
    draws = rng.multinomial(values.size, counts / values.size, size=n_resamples)
    return draws @ levels / values.size


def oscillation_summary(
    counts: ArrayLike,
    dh: ArrayLike,
    balance: float | BalancePointResult,
    *,
    radius: float = 0.5,
    n_resamples: int = 2000,
    rng: int | np.random.Generator | None = None,
) -> OscillationSummary:
    """Mean oscillations per item in the ambiguous region (``|dH - balance| <= radius``, 0.5 as in the
    paper) and outside it; ``n_resamples=0`` skips the bootstrap."""
    if isinstance(balance, BalancePointResult):
        if balance.estimate is None:
            raise ValueError(f"the balance point is undefined ({balance.status}: {balance.reason})")
        centre = float(balance.estimate)
    else:
        centre = float(balance)
    if not np.isfinite(centre):
        raise ValueError(f"balance must be finite, got {balance!r}")
    if not float(radius) > 0:
        raise ValueError(f"radius must be positive, got {radius!r}")
    if int(n_resamples) != n_resamples or n_resamples < 0:
        raise ValueError(f"n_resamples must be a non-negative integer, got {n_resamples!r}")
    c = as_float_array(counts, "counts")
    x = as_float_array(dh, "dh")
    check_finite(c, "counts")
    check_finite(x, "dh")
    if c.size != x.size:
        raise ValueError(f"counts has {c.size} entries but dh has {x.size}")
    bad = (c < 0) | (c != np.round(c))
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise ValueError(f"counts must be non-negative integers, got {float(c[index])!r} at index {index}")
    # Sorting makes the bootstrap draws independent of the input order.
    c = np.sort(c[np.abs(x - centre) <= radius]), np.sort(c[np.abs(x - centre) > radius])
    ambiguous, clear = c
    mean_a = float(ambiguous.mean()) if ambiguous.size else None
    mean_c = float(clear.mean()) if clear.size else None
    boot: dict[str, np.ndarray] = {}
    if n_resamples > 0 and ambiguous.size and clear.size:
        generator = np.random.default_rng(rng)
        boot["ambiguous"] = _bootstrap_means(ambiguous, int(n_resamples), generator)
        boot["clear"] = _bootstrap_means(clear, int(n_resamples), generator)
        boot["difference"] = boot["ambiguous"] - boot["clear"]
    return OscillationSummary(
        balance=centre,
        radius=float(radius),
        n_ambiguous=int(ambiguous.size),
        n_clear=int(clear.size),
        mean_ambiguous=mean_a,
        mean_clear=mean_c,
        difference=None if mean_a is None or mean_c is None else mean_a - mean_c,
        n_resamples=int(n_resamples) if boot else 0,
        _ambiguous=ambiguous,
        _clear=clear,
        _boot=boot,
    )
