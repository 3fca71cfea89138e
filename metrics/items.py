"""Conflict items: one entry per (image, text, question) triplet with the model's three answers."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from modality_conflict.dataset_builder.constants import CONTROLS
from modality_conflict.metrics.answers import OTHER
from modality_conflict.metrics.entropy import ESTIMATORS

NO_ENTROPY = "none"
"""Estimator label for runs without entropies; every entropy-based number is then undefined."""

_STRING_FIELDS = ("item_id", "control", "vision_answer", "text_answer", "yv", "yt", "ym")
_INT_FIELDS = ("group_id", "visual_tier", "text_tier")
_FLOAT_FIELDS = ("hv", "ht")
_CONDITION_OF = {
    "yv": "vision_only",
    "hv": "vision_only",
    "yt": "text_only",
    "ht": "text_only",
    "ym": "conflict",
}


def _missing(values: np.ndarray) -> np.ndarray:
    """Entries that are None (or empty strings, for strings) in an object array."""
    return np.fromiter((v is None or (isinstance(v, str) and v == "") for v in values), bool, values.size)


@dataclass(frozen=True, eq=False)
class ConflictItems:
    """Aligned per-item arrays for the conflict items of one model run.

    ``yv``, ``yt`` and ``ym`` are the model's normalised answers to the vision-only, text-only and conflict
    prompts, ``hv`` / ``ht`` their entropies (ignored with estimator ``"none"``); ``candidates`` is every
    answer the items admit. Construction validates everything, naming the offending item.
    """

    item_id: np.ndarray
    group_id: np.ndarray
    visual_tier: np.ndarray
    text_tier: np.ndarray
    control: np.ndarray
    vision_answer: np.ndarray
    text_answer: np.ndarray
    yv: np.ndarray
    yt: np.ndarray
    ym: np.ndarray
    hv: np.ndarray
    ht: np.ndarray
    estimator: str
    candidates: tuple[str, ...]

    def __post_init__(self) -> None:
        raw = {name: getattr(self, name) for name in _ARRAY_FIELDS}
        sizes = {}
        for name, value in raw.items():
            array = np.asarray(value, dtype=object) if name in _STRING_FIELDS else np.asarray(value)
            if array.ndim != 1:
                raise ValueError(f"{name} must be 1-dimensional, got shape {array.shape}")
            raw[name] = array
            sizes[name] = array.size
        if len(set(sizes.values())) > 1:
            raise ValueError(f"columns differ in length: {sizes}")
        estimator = str(self.estimator)
        if estimator not in (*ESTIMATORS, NO_ENTROPY):
            raise ValueError(f"unknown estimator {estimator!r}; expected one of {[*ESTIMATORS, NO_ENTROPY]}")
        object.__setattr__(self, "estimator", estimator)
        candidates = tuple(str(c) for c in self.candidates)
        object.__setattr__(self, "candidates", candidates)

        ids = raw["item_id"]
        missing_id = _missing(ids)
        if missing_id.any():
            raise ValueError(f"item {int(np.flatnonzero(missing_id)[0])} (by position) has no item_id")
        ids = ids.astype(str)
        object.__setattr__(self, "item_id", ids)
        unique, counts = np.unique(ids, return_counts=True)
        if np.any(counts > 1):
            raise ValueError(f"item_id {str(unique[counts > 1][0])!r} occurs {int(counts.max())} times")

        def name_of(mask: np.ndarray) -> str:
            return repr(str(ids[int(np.flatnonzero(mask)[0])]))

        allowed = {
            "control": CONTROLS,
            "vision_answer": candidates,
            "text_answer": candidates,
            "yv": (*candidates, OTHER),
            "yt": (*candidates, OTHER),
            "ym": (*candidates, OTHER),
        }
        for name in _STRING_FIELDS[1:]:
            array = raw[name]
            gone = _missing(array)
            if gone.any():
                where = _CONDITION_OF.get(name)
                detail = f"has no {where} answer ({name})" if where else f"has no {name}"
                raise ValueError(f"item {name_of(gone)} {detail}")
            text = array.astype(str)
            bad = ~np.isin(text, np.asarray(allowed[name], dtype=str))
            if bad.any():
                value = str(text[int(np.flatnonzero(bad)[0])])
                hint = (
                    " (normalise answers with normalize_answer first)" if name in ("yv", "yt", "ym") else ""
                )
                raise ValueError(
                    f"item {name_of(bad)} has {name}={value!r}, not one of {list(allowed[name])}{hint}"
                )
            object.__setattr__(self, name, text)

        for name in _INT_FIELDS:
            array = raw[name]
            if array.dtype == object:
                gone = _missing(array)
                if gone.any():
                    raise ValueError(f"item {name_of(gone)} has no {name}")
            try:
                as_float = array.astype(float)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be integers") from None
            bad = ~np.isfinite(as_float) | (as_float != np.round(as_float))
            if bad.any():
                raise ValueError(
                    f"item {name_of(bad)} has {name}={array[np.flatnonzero(bad)[0]]}, not an integer"
                )
            object.__setattr__(self, name, as_float.astype(np.int64))

        for name in _FLOAT_FIELDS:
            array = raw[name]
            if array.dtype == object:
                gone = _missing(array)
                if gone.any() and estimator != NO_ENTROPY:
                    raise ValueError(f"item {name_of(gone)} has no {_CONDITION_OF[name]} entropy ({name})")
                array = np.where(gone, np.nan, array)
            try:
                values = array.astype(float)
            except (TypeError, ValueError):
                raise ValueError(f"{name} must be numeric") from None
            if estimator != NO_ENTROPY:
                bad = ~np.isfinite(values) | (values < 0)
                if bad.any():
                    value = values[np.flatnonzero(bad)[0]]
                    raise ValueError(
                        f"item {name_of(bad)} has {_CONDITION_OF[name]} entropy {name}={float(value)!r}; "
                        "entropies must be finite and >= 0"
                    )
            object.__setattr__(self, name, values)

    @classmethod
    def from_columns(
        cls,
        *,
        item_id: ArrayLike,
        group_id: ArrayLike,
        visual_tier: ArrayLike,
        text_tier: ArrayLike,
        control: ArrayLike,
        vision_answer: ArrayLike,
        text_answer: ArrayLike,
        yv: ArrayLike,
        yt: ArrayLike,
        ym: ArrayLike,
        hv: ArrayLike,
        ht: ArrayLike,
        estimator: str,
        candidates: tuple[str, ...],
    ) -> ConflictItems:
        """Build validated items from aligned columns (lists or arrays)."""
        return cls(
            item_id=item_id,
            group_id=group_id,
            visual_tier=visual_tier,
            text_tier=text_tier,
            control=control,
            vision_answer=vision_answer,
            text_answer=text_answer,
            yv=yv,
            yt=yt,
            ym=ym,
            hv=hv,
            ht=ht,
            estimator=estimator,
            candidates=candidates,
        )

    def __len__(self) -> int:
        return int(self.item_id.size)

    @property
    def has_entropy(self) -> bool:
        """Whether the run carries entropies (``estimator != "none"``)."""
        return self.estimator != NO_ENTROPY

    def take(self, index: ArrayLike) -> ConflictItems:
        """A new :class:`ConflictItems` with the items at ``index`` (integer positions or a boolean mask)."""
        columns: dict[str, Any] = {name: getattr(self, name)[index] for name in _ARRAY_FIELDS}
        return _unchecked(columns, self.estimator, self.candidates)

    def columns(self) -> dict[str, np.ndarray]:
        """The arrays by field name (no copies)."""
        return {name: getattr(self, name) for name in _ARRAY_FIELDS}


# Every per-item column, in field order (all fields but the run's estimator and answer set).
_ARRAY_FIELDS = tuple(f.name for f in fields(ConflictItems) if f.name not in ("estimator", "candidates"))


def _unchecked(columns: dict[str, Any], estimator: str, candidates: tuple[str, ...]) -> ConflictItems:
    """Subset of already validated items without validating again (validation is the slow part)."""
    items = object.__new__(ConflictItems)
    for name, value in columns.items():
        object.__setattr__(items, name, value)
    object.__setattr__(items, "estimator", estimator)
    object.__setattr__(items, "candidates", candidates)
    return items
