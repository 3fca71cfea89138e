"""Strict reading of untrusted JSON: UTF-8 only, bounded nesting, no NaN or Infinity, no duplicate keys
(the linear checks of :mod:`modality_conflict.analysis.json_input`)."""

from __future__ import annotations

from typing import Any

from modality_conflict.analysis.json_input import parse_json
from modality_conflict.dataset_builder.errors import ModalityConflictError

MAX_NESTING = 32


class SubmissionError(ModalityConflictError):
    """A submission file cannot be read or does not follow the schema."""


def parse_strict_json(data: bytes, *, source: str = "submission") -> Any:
    """Parse untrusted bytes as strict JSON; a :class:`SubmissionError` for bytes that are not UTF-8 or JSON,
    nest deeper than :data:`MAX_NESTING`, or use NaN, Infinity, out-of-range numbers or duplicate keys."""
    return parse_json(data, source=source, max_nesting=MAX_NESTING, strict=True, error=SubmissionError)
