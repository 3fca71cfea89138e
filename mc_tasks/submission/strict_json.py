"""Strict reading of untrusted JSON: UTF-8 only, bounded nesting, no NaN or Infinity, no duplicate keys."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from modality_conflict.dataset_builder.errors import ModalityConflictError

MAX_NESTING = 32
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_OPENING = (ord("["), ord("{"))
_CLOSING = (ord("]"), ord("}"))


class SubmissionError(ModalityConflictError):
    """A submission file cannot be read or does not follow the schema."""


def _reject_constant(name: str) -> Any:
    raise SubmissionError(f"non-standard JSON value {name} (NaN and Infinity are not allowed)")


def _finite_json_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise SubmissionError(f"number {text[:40]} overflows a double")
    return value


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise SubmissionError(f"duplicate key {key[:80]!r} in a JSON object")
        out[key] = value
    return out


def _nesting_depth(text: str) -> int:
    """Deepest bracket nesting outside strings (checked first: deep input would exhaust the stack).

    Vectorised, because the text may be tens of megabytes: string literals are blanked out, then the
    running sum of opening minus closing brackets is the depth.
    """
    import numpy as np

    blanked = _JSON_STRING.sub('""', text).encode("utf-8", "surrogatepass")
    codes = np.frombuffer(blanked, dtype=np.uint8)
    steps = np.isin(codes, _OPENING).astype(np.int32) - np.isin(codes, _CLOSING).astype(np.int32)
    return int(np.cumsum(steps).max(initial=0))


def parse_strict_json(data: bytes, *, source: str = "submission") -> Any:
    """Parse untrusted bytes as strict JSON.

    Raises
    ------
    SubmissionError
        For bytes that are not UTF-8, not JSON, nested deeper than :data:`MAX_NESTING`, or that use NaN,
        Infinity, out-of-range numbers or duplicate keys.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise SubmissionError(f"{source} is not UTF-8 text (byte {error.start})") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    if _nesting_depth(text) > MAX_NESTING:
        raise SubmissionError(f"{source} nests arrays/objects deeper than {MAX_NESTING} levels")
    try:
        return json.loads(
            text,
            parse_constant=_reject_constant,
            parse_float=_finite_json_float,
            object_pairs_hook=_no_duplicate_keys,
        )
    except json.JSONDecodeError as error:
        raise SubmissionError(
            f"{source} is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except ValueError as error:  # e.g. an integer with thousands of digits
        raise SubmissionError(f"{source} holds an unreadable number: {error}") from None
