"""Entropy of a next-token distribution known only through its k most likely tokens, with proven bounds.

APIs cap ``top_logprobs``. The uncovered mass ``m = 1 - sum(p_i)`` is spread over the ``V - k`` tokens not
returned, each at most as likely as the least likely returned one (``p_min``). The entropy is concave over
those tails: its minimum puts as many tail tokens at ``p_min`` as the mass allows and the rest on one token,
its maximum spreads the mass evenly. With ``m = 0`` both bounds equal the exact entropy.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import ArrayLike

from modality_conflict.metrics._common import as_float_array

TOP_K_ESTIMATOR = "top_k"
"""Label of the estimate: midpoint of the bounds, with the bounds and uncovered mass beside it."""

MASS_TOLERANCE = 1e-6
"""Returned probabilities may sum above 1 by float rounding up to this much; more is an error."""


@dataclass(frozen=True)
class TopKEntropy:
    """Proven bounds (nats) on the entropy of distributions known through their top-k log-probabilities,
    their midpoint (the ``"top_k"`` estimate) and the probability of the tokens not returned."""

    lower: np.ndarray = field(compare=False)
    upper: np.ndarray = field(compare=False)
    estimate: np.ndarray = field(compare=False)
    uncovered_mass: np.ndarray = field(compare=False)
    estimator: str = TOP_K_ESTIMATOR


def _xlogx(x: np.ndarray) -> np.ndarray:
    safe = np.where(x > 0, x, 1.0)
    return np.where(x > 0, x * np.log(safe), 0.0)


def top_k_entropy_bounds(logprobs: ArrayLike, *, vocab_size: int) -> TopKEntropy:
    """Lower and upper bounds on the full entropy from each distribution's top-k log-probabilities.

    ``logprobs`` has shape ``(n, k)`` or ``(k,)`` (natural log, any order; ``-inf`` pads rows that returned
    fewer tokens); the results have shape ``(n,)`` or ``()``. The tail has ``vocab_size - k`` tokens.

    >>> bounds = top_k_entropy_bounds([np.log(0.5), np.log(0.5)], vocab_size=2)
    >>> float(bounds.lower), float(bounds.upper)
    (0.6931..., 0.6931...)
    """
    array = as_float_array(logprobs, "logprobs", ndim=None)
    single = array.ndim == 1
    rows = np.atleast_2d(array)
    if rows.ndim != 2 or rows.shape[1] == 0:
        raise ValueError(f"logprobs must have shape (n, k) with k >= 1, got {array.shape}")
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)):
        raise ValueError(f"vocab_size must be an integer, got {vocab_size!r}")
    if np.isnan(rows).any() or (rows > 0).any():
        index = tuple(int(i) for i in np.argwhere(np.isnan(rows) | (rows > 0))[0])
        raise ValueError(f"logprobs must be <= 0, got {float(rows[index])!r} at index {index}")
    probs = np.exp(rows)
    counts = np.sum(probs > 0, axis=1)
    if (counts == 0).any():
        raise ValueError(f"distribution {int(np.flatnonzero(counts == 0)[0])} has no finite logprob")
    if int(counts.max()) > vocab_size:
        raise ValueError(f"vocab_size {vocab_size} is smaller than the {int(counts.max())} tokens returned")
    total = probs.sum(axis=1)
    if (total > 1 + MASS_TOLERANCE).any():
        row = int(np.argmax(total))
        raise ValueError(f"distribution {row}: probabilities sum to {float(total[row]):.9f} > 1")
    mass = np.clip(1.0 - total, 0.0, None)
    covered = -np.sum(_xlogx(probs), axis=1)
    smallest = np.min(np.where(probs > 0, probs, np.inf), axis=1)
    tail = vocab_size - counts
    # Beyond rounding the tail cannot hold more than (V - k) * p_min: those were not the top k.
    overfull = mass > tail * smallest + MASS_TOLERANCE
    if overfull.any():
        row = int(np.flatnonzero(overfull)[0])
        raise ValueError(
            f"distribution {row}: uncovered mass {float(mass[row]):.6g} cannot fit in {int(tail[row])} "
            f"tokens each below the smallest returned probability {float(smallest[row]):.6g}"
        )
    full_tokens = np.floor(mass / smallest)
    remainder = np.clip(mass - full_tokens * smallest, 0.0, None)
    tail_min = -(full_tokens * _xlogx(smallest) + _xlogx(remainder))
    even = np.where(tail > 0, mass / np.maximum(tail, 1), 0.0)
    tail_max = -tail * _xlogx(even)
    lower = np.maximum(covered + tail_min, 0.0)
    upper = np.maximum(covered + tail_max, lower)
    result = TopKEntropy(
        lower=lower,
        upper=upper,
        estimate=(lower + upper) / 2.0,
        uncovered_mass=mass,
        estimator=TOP_K_ESTIMATOR,
    )
    if single:
        return TopKEntropy(
            lower=lower[0],
            upper=upper[0],
            estimate=result.estimate[0],
            uncovered_mass=mass[0],
        )
    return result
