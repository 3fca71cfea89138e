"""Which modality a conflict answer follows, and the following rates (TFR, VFR, other rate)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from modality_conflict.metrics._common import Interval, check_choice, check_confidence_level, wilson_interval

FOLLOWING_LABELS: tuple[str, ...] = ("vision", "text", "other", "not_conflict", "unimodal_other")
"""Per-item labels from :func:`classify_following`.

``vision`` / ``text``: the conflict answer equals the vision-only / text-only answer; ``other``: it
equals neither; ``not_conflict``: both unimodal answers agree (no conflict to resolve);
``unimodal_other``: a unimodal answer is outside the answer set, so the item cannot be a conflict.
"""


def _as_labels(values: ArrayLike, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be 1-dimensional, got shape {array.shape}")
    if array.size and array.dtype.kind not in "UO":
        raise ValueError(f"{name} must hold answer strings, got dtype {array.dtype}")
    return array.astype(str)


def classify_following(yv: ArrayLike, yt: ArrayLike, ym: ArrayLike, *, other: str = "other") -> np.ndarray:
    """Label each item (one of :data:`FOLLOWING_LABELS`) by the modality its conflict answer follows.

    Only items whose vision-only and text-only answers differ and are both readable are conflicts.

    >>> classify_following(["red", "red"], ["blue", "red"], ["blue", "red"]).tolist()
    ['text', 'not_conflict']
    """
    v, t, m = _as_labels(yv, "yv"), _as_labels(yt, "yt"), _as_labels(ym, "ym")
    if not v.shape == t.shape == m.shape:
        raise ValueError(f"yv, yt and ym must have the same length, got {v.size}, {t.size} and {m.size}")
    labels = np.full(v.shape, "other", dtype="<U14")
    labels[m == t] = "text"
    labels[m == v] = "vision"
    labels[v == t] = "not_conflict"
    labels[(v == other) | (t == other)] = "unimodal_other"
    return labels


@dataclass(frozen=True)
class FollowingRates:
    """Counts of following labels and the rates derived from them.

    ``tfr = n_text / (n_text + n_vision)`` (``other`` excluded, as in the paper); fewer than ``min_conflicts``
    conflicts leave every rate undefined (None; :meth:`reason` says why).
    """

    n_text: int
    n_vision: int
    n_other: int
    n_not_conflict: int = 0
    n_unimodal_other: int = 0
    min_conflicts: int = 1

    @property
    def n_conflicts(self) -> int:
        """Items with two different in-set unimodal answers."""
        return self.n_text + self.n_vision + self.n_other

    @property
    def n_followed(self) -> int:
        """Conflicts answered with one of the two unimodal answers (the TFR denominator)."""
        return self.n_text + self.n_vision

    def reason(self, rate: Literal["tfr", "vfr", "other_rate"] = "tfr") -> str | None:
        """Why ``rate`` is undefined, or None when it is defined."""
        check_choice(rate, "rate", ("tfr", "vfr", "other_rate"))
        if self.n_conflicts == 0:
            return "no conflicts (no item has two different in-set unimodal answers)"
        if self.n_conflicts < self.min_conflicts:
            return f"only {self.n_conflicts} conflicts (< min_conflicts={self.min_conflicts})"
        if rate != "other_rate" and self.n_followed == 0:
            return f"all {self.n_conflicts} conflicts were answered 'other'"
        return None

    @property
    def tfr(self) -> float | None:
        """Text-following rate, or None when undefined."""
        return None if self.reason("tfr") else self.n_text / self.n_followed

    @property
    def vfr(self) -> float | None:
        """Vision-following rate ``1 - tfr``, or None when undefined."""
        return None if self.reason("vfr") else self.n_vision / self.n_followed

    @property
    def other_rate(self) -> float | None:
        """Share of conflicts answered with neither unimodal answer, or None when undefined."""
        return None if self.reason("other_rate") else self.n_other / self.n_conflicts

    def confidence_interval(
        self, confidence_level: float = 0.95, *, rate: Literal["tfr", "vfr", "other_rate"] = "tfr"
    ) -> Interval:
        """Wilson score interval for one of the rates (None bounds when undefined); it treats conflicts as
        independent, so it is somewhat too narrow when answers cluster by group."""
        check_confidence_level(confidence_level)
        why = self.reason(rate)
        if why is not None:
            return Interval(None, None, "wilson", why)
        successes, trials = {
            "tfr": (self.n_text, self.n_followed),
            "vfr": (self.n_vision, self.n_followed),
            "other_rate": (self.n_other, self.n_conflicts),
        }[rate]
        return wilson_interval(successes, trials, confidence_level=confidence_level)


def following_rates(labels: ArrayLike, *, min_conflicts: int = 1) -> FollowingRates:
    """Count the labels from :func:`classify_following`."""
    array = _as_labels(labels, "labels")
    unknown = np.setdiff1d(np.unique(array), np.array(FOLLOWING_LABELS))
    if unknown.size:
        raise ValueError(
            f"unknown following label {str(unknown[0])!r}; expected one of {list(FOLLOWING_LABELS)}"
        )
    if int(min_conflicts) < 1:
        raise ValueError(f"min_conflicts must be >= 1, got {min_conflicts}")
    counts = {label: int(np.count_nonzero(array == label)) for label in FOLLOWING_LABELS}
    return FollowingRates(
        n_text=counts["text"],
        n_vision=counts["vision"],
        n_other=counts["other"],
        n_not_conflict=counts["not_conflict"],
        n_unimodal_other=counts["unimodal_other"],
        min_conflicts=int(min_conflicts),
    )
