"""The typed view of a task's flat summary (``records.summarize_records``, in a report file, a submission's
``metrics`` or a recomputation): the one place that says what its numbers mean."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from modality_conflict.mc_tasks.names import METRIC_NAMES


class MalformedSummaryError(ValueError):
    """A field of a summary does not hold what it should (the message names the file and the field)."""


def _is_tier_key(key: Any) -> bool:
    text = str(key)
    return text.lstrip("-").isdigit() and len(text) <= 6


def _number_or_none(value: Any) -> bool:
    return value is None or finite_number(value) is not None


# Fields the views read as numbers (None: undefined, with a reason next to it).
_COUNT_FIELDS = (
    *(name for name in METRIC_NAMES if name.startswith("n_")),
    "n_records",
    "n_incomplete_conflicts",
    "n_conflict_rows",
)
_NUMBER_FIELDS = (
    *(name for name in METRIC_NAMES if name not in _COUNT_FIELDS),
    "tfr_correct",
    "mean_hv",
    "mean_ht",
    "balance_point_delta_low",
    "balance_point_delta_high",
    "balance_point_isotonic",
    "balance_point_bound",
    "balance_point_bound_low",
    "balance_point_bound_high",
    "logistic_intercept",
    "logistic_slope",
)
_TEXT_FIELDS = ("status", "reason", "balance_point_status", "balance_point_reason", "entropy_estimator")
_CURVE_LISTS = ("edges", "centres", "tfr", "tfr_ci_low", "tfr_ci_high")
_FIELD_KINDS = (
    (_NUMBER_FIELDS, _number_or_none, "a number or null"),
    (_COUNT_FIELDS, lambda v: v is None or (isinstance(v, int) and not isinstance(v, bool)), "an integer"),
    (_TEXT_FIELDS, lambda v: v is None or isinstance(v, str), "a string"),
)


def summary_problems(values: Mapping[str, Any]) -> list[str]:
    """Every field of a summary that the views could not read as what it should hold, each named."""
    problems = [
        f"field {name!r} is {_shown(values[name])}, not {expected}"
        for names, fits, expected in _FIELD_KINDS
        for name in names
        if name in values and not fits(values[name])
    ]
    for name, table in values.items():
        if str(name).endswith("_by_tier") and table is not None:
            problems.extend(_tier_table_problems(str(name), table))
    for name in ("tfr_by_tier_cell", "n_by_tier_cell"):
        table = values.get(name)
        if table is None:
            continue
        if not isinstance(table, Mapping):
            problems.append(f"field {name!r} is not an object of visual tiers")
            continue
        for tier, row in table.items():
            if not _is_tier_key(tier):
                problems.append(f"field {name!r} has the visual tier key {_shown(tier)}, not an integer")
            else:
                problems.extend(_tier_table_problems(f"{name}.{tier}", row))
    curve = values.get("binned_curve")
    if curve is not None:
        problems.extend(_curve_problems(curve))
    controls = values.get("controls")
    if controls is not None:
        if not isinstance(controls, Mapping) or any(not isinstance(e, Mapping) for e in controls.values()):
            problems.append("field 'controls' is not an object of one object per control type")
        else:
            for control, entry in controls.items():
                problems.extend(f"controls.{control}: {p}" for p in summary_problems(entry))
    return problems


def _tier_table_problems(name: str, table: Any) -> list[str]:
    if not isinstance(table, Mapping):
        return [f"field {name!r} is {_shown(table)}, not an object of tiers"]
    for tier, value in table.items():
        if not _is_tier_key(tier):
            return [f"field {name!r} has the tier key {_shown(tier)}, not an integer"]
        if not _number_or_none(value):
            return [f"field {name!r} has {_shown(value)} for tier {tier}, not a number or null"]
    return []


def _curve_problems(curve: Any) -> list[str]:
    if not isinstance(curve, Mapping):
        return [f"field 'binned_curve' is {_shown(curve)}, not an object"]
    lengths = {}
    for key in _CURVE_LISTS:
        values = curve.get(key)
        if not isinstance(values, list) or not all(_number_or_none(v) for v in values):
            return [f"field 'binned_curve.{key}' is not a list of numbers"]
        lengths[key] = len(values)
    if any(curve[key][i] is None for key in ("edges", "centres") for i in range(lengths[key])):
        return ["field 'binned_curve' has an undefined bin edge or centre"]
    if lengths["edges"] != lengths["centres"] + 1 or len({lengths[k] for k in _CURVE_LISTS[1:]}) != 1:
        return [f"field 'binned_curve' has lists of inconsistent lengths ({lengths})"]
    return []


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def finite_number(value: Any) -> float | None:
    """``value`` as a float when it is a finite int or float (booleans are not numbers), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True)
class BalancePoint:
    """A task's balance point as reported: the estimate, its intervals, or the bound and why there is none."""

    # ok; censored_below / censored_above (the crossing lies beyond the observed dH: ``bound``); separated
    # (no overlap of text- and vision-following dH: the crossing lies in ``bracket``); law_violated; undefined
    status: str
    estimate: float | None  # only when ok and finite
    ci_low: float | None = None  # the main 95% interval: bootstrap when it exists, else delta method
    ci_high: float | None = None
    ci_method: str | None = None
    delta_low: float | None = None
    delta_high: float | None = None
    isotonic: float | None = None  # the isotonic regression's crossing (the non-parametric check)
    bound: float | None = None
    reason: str | None = None  # the balance point's reason, else the report's
    bracket: tuple[float, float] | None = None

    @property
    def defined(self) -> bool:
        """Whether there is an estimate (status ``ok`` and a finite number)."""
        return self.estimate is not None

    @property
    def has_interval(self) -> bool:
        """Whether the main interval has both ends."""
        return self.ci_low is not None and self.ci_high is not None

    @property
    def censored(self) -> bool:
        """Whether the estimate is censored and ``bound`` says on which side of the data it lies."""
        return self.status in ("censored_below", "censored_above") and self.bound is not None

    @property
    def bounded(self) -> bool:
        """Whether there is no estimate but a bound or a bracket says where the crossing lies."""
        return not self.defined and (self.censored or self.bracket is not None)

    def text(self, digits: int = 3) -> str:
        """The balance point as a table shows it: ``+0.123``, ``< -1.234``, ``> +0.900``, ``in [a, b]``,
        or the status when nothing is known."""
        if self.defined:
            return f"{self.estimate:+.{digits}f}"
        if self.censored:
            sign = "<" if self.status == "censored_below" else ">"
            return f"{sign} {self.bound:+.{digits}f}"
        if self.bracket is not None:
            low, high = self.bracket
            return f"in [{low:+.{digits}f}, {high:+.{digits}f}]"
        return self.status

    def rank_value(self) -> tuple[float, int] | None:
        """A sort key that puts a crossing below ``b`` just before an estimate equal to ``b``, one above just
        after and a bracket by its middle (None: nothing to rank by)."""
        if self.defined:
            return (self.estimate, 0)
        if self.censored:
            return (self.bound, -1 if self.status == "censored_below" else 1)
        if self.bracket is not None:
            return ((self.bracket[0] + self.bracket[1]) / 2.0, 0)
        return None


@dataclass(frozen=True)
class Preference:
    """The model's inherent preference as one phrase, read off the balance point and its interval."""

    modality: str  # "vision", "text", "none" (interval covers 0) or "unknown"
    text: str


def tier_order(tier: Any) -> tuple[int, float, str]:
    """Sort key of a tier written as a JSON key: numbers by value, anything else after them by text."""
    try:
        return (0, float(tier), "")
    except (TypeError, ValueError):
        return (1, 0.0, str(tier))


class TaskSummary:
    """Typed access to a task's flat summary; undefined numbers are None with a ``<name>_reason`` next to
    them. ``source`` (a file and the path inside it) names it in error messages."""

    def __init__(self, values: Mapping[str, Any], *, source: str = "summary") -> None:
        self._values = dict(values)
        self.source = source

    def problems(self) -> list[str]:
        """Fields that the views could not read (see :func:`summary_problems`); empty when all are fine."""
        return summary_problems(self._values)

    def check(self) -> TaskSummary:
        """Raise :class:`MalformedSummaryError` naming the source and the first malformed field."""
        problems = self.problems()
        if problems:
            more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
            raise MalformedSummaryError(f"{self.source}: {problems[0]}{more}")
        return self

    def __repr__(self) -> str:
        return f"TaskSummary(status={self.status!r}, n_conflicts={self.n_conflicts!r})"

    @property
    def raw(self) -> dict[str, Any]:
        """The flat dict itself (what submissions copy and verification compares)."""
        return self._values

    def get(self, key: str, default: Any = None) -> Any:
        """The raw value of one key."""
        return self._values.get(key, default)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def _text(self, name: str) -> str | None:
        value = self._values.get(name)
        return None if value is None else str(value)

    def _object(self, name: str) -> dict[str, Any]:
        value = self._values.get(name)
        return value if isinstance(value, dict) else {}

    def number(self, name: str) -> float | None:
        """A metric as a finite float, or None when it is undefined or not a number."""
        return finite_number(self._values.get(name))

    def ci(self, name: str, suffix: str = "") -> tuple[float | None, float | None]:
        """The ``<name>_ci_low<suffix>`` / ``<name>_ci_high<suffix>`` interval."""
        return self.number(f"{name}_ci_low{suffix}"), self.number(f"{name}_ci_high{suffix}")

    def delta(self, name: str) -> tuple[float | None, float | None]:
        """The ``<name>_delta_low`` / ``<name>_delta_high`` interval."""
        return self.number(f"{name}_delta_low"), self.number(f"{name}_delta_high")

    def interval(self, name: str) -> tuple[float | None, float | None]:
        """The reported interval of ``name``: its ``ci`` pair when reported, else its ``delta`` pair."""
        for kind in ("ci", "delta"):
            if f"{name}_{kind}_low" in self._values or f"{name}_{kind}_high" in self._values:
                return self.number(f"{name}_{kind}_low"), self.number(f"{name}_{kind}_high")
        return None, None

    def interval_method(self, name: str) -> str | None:
        """How ``name``'s interval was computed, when the report says so."""
        method = self._values.get(f"{name}_ci_method")
        return str(method) if method else None

    def why_undefined(self, name: str) -> str | None:
        """Why ``name`` has no value: its reason, else its status."""
        return self._values.get(f"{name}_reason") or self._values.get(f"{name}_status")

    @property
    def status(self) -> str:
        """``"ok"`` when the report could be computed, else ``"undefined"``."""
        return str(self._values.get("status") or "undefined")

    @property
    def ok(self) -> bool:
        """Whether the report could be computed."""
        return self._values.get("status") == "ok"

    @property
    def reason(self) -> str | None:
        """Why the report could not be computed."""
        return self._text("reason")

    @property
    def n_conflicts(self) -> Any:
        """Number of conflicts in the main set (as reported)."""
        return self._values.get("n_conflicts")

    @property
    def n_incomplete_conflicts(self) -> int:
        """Conflict rows whose vision-only or text-only row was missing from the run."""
        return int(self._values.get("n_incomplete_conflicts") or 0)

    @property
    def entropy_estimator(self) -> str | None:
        """The entropy estimator's label."""
        return self._text("entropy_estimator")

    @cached_property
    def balance_point(self) -> BalancePoint:
        """The balance point, its intervals, bound and status."""
        status = str(self._values.get("balance_point_status") or "undefined")
        reason = self._values.get("balance_point_reason") or self._values.get("reason")
        low, high = self.number("balance_point_bound_low"), self.number("balance_point_bound_high")
        bracket = (low, high) if status == "separated" and low is not None and high is not None else None
        numbers = ("ci_low", "ci_high", "delta_low", "delta_high", "isotonic", "bound")
        return BalancePoint(
            status=status,
            estimate=self.number("balance_point") if status == "ok" else None,
            ci_method=self._values.get("balance_point_ci_method"),
            reason=None if reason is None else str(reason),
            bracket=bracket,
            **{name: self.number(f"balance_point_{name}") for name in numbers},
        )

    def inherent_preference(self) -> Preference:
        """Which modality the model follows when both are equally uncertain (dH = 0): P(follow text) falls
        with dH, so a balance point below zero means the image wins at equal uncertainty; the call needs
        the whole interval (or a censored estimate's bound) on one side of 0."""
        point = self.balance_point
        if point.defined:
            estimate, low, high = point.estimate, point.ci_low, point.ci_high
            method = point.ci_method or "delta"
            interval = f" (balance point {estimate:+.3f}" + (
                f", 95% CI [{low:+.3f}, {high:+.3f}], {method})" if point.has_interval else ")"
            )
            if point.has_interval and high < 0:
                return Preference("vision", "prefers the image" + interval)
            if point.has_interval and low > 0:
                return Preference("text", "prefers the text" + interval)
            return Preference("none", "no clear preference: the interval includes 0" + interval)
        if point.censored:
            below = point.status == "censored_below"
            clear = point.bound <= 0 if below else point.bound >= 0
            modality, phrase = ("vision", "prefers the image") if below else ("text", "prefers the text")
            where = "below the smallest" if below else "above the largest"
            text = f"the curve crosses 0.5 {where} dH, {point.bound:+.3f}"
            if not clear:
                return Preference("unknown", f"preference unclear ({text})")
            return Preference(modality, f"{phrase} ({text})")
        if point.bracket is not None:
            low, high = point.bracket
            where = f"(perfectly separated: the curve crosses 0.5 between {low:+.3f} and {high:+.3f})"
            if high < 0:
                return Preference("vision", f"prefers the image {where}")
            if low > 0:
                return Preference("text", f"prefers the text {where}")
            return Preference("none", f"no clear preference {where}")
        shown_status = self._values.get("balance_point_status") or "undefined"
        return Preference("unknown", f"no balance point ({shown_status}: {point.reason or 'undefined'})")

    def tier_table(self, key: str) -> dict[int, float]:
        """A per-tier table (``mean_hv_by_tier``, ...) with integer tiers and finite values only."""
        table = self._values.get(key)
        if table is None:
            return {}
        problems = _tier_table_problems(key, table)
        if problems:
            raise MalformedSummaryError(f"{self.source}: {problems[0]}")
        out = {}
        for tier, value in table.items():
            number = finite_number(value)
            if number is not None:
                out[int(tier)] = number
        return dict(sorted(out.items()))

    def accuracy_by_tier(self, key: str) -> dict[str, Any]:
        """``vision_accuracy_by_tier`` / ``text_accuracy_by_tier`` (tier -> accuracy or None), the string
        tiers ordered as numbers."""
        return dict(sorted(self._object(key).items(), key=lambda item: tier_order(item[0])))

    def tier_cells(self) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """TFR and the number of conflicts per (visual tier, text tier) cell (string keys, as reported)."""
        return self._object("tfr_by_tier_cell"), self._object("n_by_tier_cell")

    @property
    def binned_curve(self) -> dict[str, Any] | None:
        """The binned P(follow text) curve (edges, centres, tfr and Wilson interval per bin), or None."""
        return self._object("binned_curve") or None

    @property
    def logistic_fit(self) -> tuple[float | None, float | None]:
        """Intercept and slope of the logistic regression of follow-text on dH."""
        return self.number("logistic_intercept"), self.number("logistic_slope")

    @property
    def attributes(self) -> tuple[str, ...]:
        """The attributes the task's questions ask about (``color``; or ``shape`` and ``material``)."""
        found = self._values.get("attributes")
        return tuple(str(a) for a in found) if isinstance(found, list) else ()

    @property
    def by_attribute(self) -> dict[str, TaskSummary]:
        """Each attribute's own summary (same layout) when the task asks about several, else empty."""
        nested = self._object("by_attribute")
        return {str(name): TaskSummary(entry) for name, entry in nested.items() if isinstance(entry, dict)}

    @property
    def controls(self) -> dict[str, TaskSummary]:
        """Per control type, its following rates (``relevant_modality``, ``relevant_rate``, intervals)."""
        return {
            name: TaskSummary(entry, source=f"{self.source}.controls.{name}")
            for name, entry in self._object("controls").items()
            if isinstance(entry, dict)
        }
