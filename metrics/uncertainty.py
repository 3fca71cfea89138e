"""Relative uncertainty between the text-only and the vision-only answer."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from modality_conflict.metrics._common import as_float_array


def relative_uncertainty(ht: ArrayLike, hv: ArrayLike) -> float | np.ndarray:
    """Relative uncertainty ``dH = 2 (Ht - Hv) / (Ht + Hv)`` in ``[-2, 2]`` (a float for scalar input).

    Negative means the model is more confident in the text, so text-following should be more likely.
    Both entropies zero gives 0 (neither modality more uncertain than the other).

    >>> relative_uncertainty(0.5, 1.5)
    -1.0
    >>> relative_uncertainty(0.0, 0.0)
    0.0
    """
    t = as_float_array(ht, "ht", ndim=None)
    v = as_float_array(hv, "hv", ndim=None)
    if t.shape != v.shape:
        raise ValueError(f"ht has shape {t.shape} but hv has shape {v.shape}")
    for name, array in (("ht", t), ("hv", v)):
        bad = ~np.isfinite(array) | (array < 0)
        if bad.any():
            index = tuple(int(i) for i in np.argwhere(bad)[0])
            where = "" if not index else f" at index {index[0] if len(index) == 1 else index}"
            raise ValueError(f"{name} must be finite and >= 0, got {float(array[index])!r}{where}")
    total = t + v
    with np.errstate(invalid="ignore", divide="ignore"):
        dh = np.where(total > 0, 2.0 * (t - v) / np.where(total > 0, total, 1.0), 0.0)
    return float(dh) if dh.ndim == 0 else dh
