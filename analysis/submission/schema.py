"""The submission format: its JSON Schema, size limits, and reading a file against them."""

from __future__ import annotations

import functools
import itertools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from modality_conflict.analysis.submission.strict_json import SubmissionError, parse_strict_json

FORMAT = "modality-conflict-submission"
SCHEMA_VERSION = 2
SCHEMA_PATH = Path(__file__).resolve().with_name("submission.schema.json")
MAX_SUBMISSION_BYTES = 50 * 1024 * 1024
MAX_RECORDS = 200_000  # also in the schema; checked first so a huge list fails before schema validation


def read_submission_file(path: Path, *, max_bytes: int | None = None) -> Any:
    """Read a submission file with a size cap (default :data:`MAX_SUBMISSION_BYTES`) and strict JSON."""
    max_bytes = MAX_SUBMISSION_BYTES if max_bytes is None else int(max_bytes)
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} is not a file")
    size = path.stat().st_size
    if size > max_bytes:
        raise SubmissionError(f"{path} is {size} bytes; submissions are limited to {max_bytes} bytes")
    with path.open("rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise SubmissionError(f"{path} grew past {max_bytes} bytes while being read")
    return parse_strict_json(data, source=str(path))


def load_schema() -> dict[str, Any]:
    """The submission JSON Schema shipped with the package."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def _inline_refs(node: Any, definitions: Mapping[str, Any]) -> Any:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/$defs/") and len(node) == 1:
            return _inline_refs(definitions[ref[len("#/$defs/") :]], definitions)
        return {key: _inline_refs(value, definitions) for key, value in node.items()}
    if isinstance(node, list):
        return [_inline_refs(value, definitions) for value in node]
    return node


@functools.lru_cache(maxsize=1)
def _validator() -> Any:
    """A validator of the schema with its (non-recursive) ``$defs`` inlined: twice as fast on the records."""
    from jsonschema import Draft202012Validator

    schema = load_schema()
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(_inline_refs(schema, schema.get("$defs", {})))


def _json_path(parts: Sequence[Any]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def schema_problems(submission: Any, *, limit: int = 20) -> list[str]:
    """Schema violations of ``submission``, each naming the field (empty when it conforms)."""
    if isinstance(submission, dict):
        records = submission.get("records")
        if isinstance(records, list) and len(records) > MAX_RECORDS:
            return [f"records: {len(records)} records, more than the {MAX_RECORDS} allowed"]
    # A bounded number of errors, then the shallowest first: a broken header before a broken record.
    errors = list(itertools.islice(_validator().iter_errors(submission), 10 * limit))
    errors.sort(key=lambda e: (len(e.absolute_path), [(isinstance(p, str), p) for p in e.absolute_path]))
    problems = []
    for error in errors[:limit]:
        message = error.message if len(error.message) <= 300 else error.message[:300] + "..."
        problems.append(f"{_json_path(error.absolute_path)}: {message}")
    return problems


def load_submission(path: Path) -> dict[str, Any]:
    """Read and schema-check a submission file (a ``SubmissionError`` naming the fields when it fails)."""
    submission = read_submission_file(path)
    problems = schema_problems(submission)
    if problems:
        raise SubmissionError(
            f"{path} does not follow the submission schema:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    return submission
