"""Leaderboard submissions: ``modality-conflict submit`` writes one, ``modality-conflict verify`` checks one.

A submission is a single JSON file (schema: ``submission.schema.json`` next to this module) holding where
the result came from (model, dataset, task and lmms-eval versions, entropy estimator), the task's
``report`` metric exactly as lmms-eval recorded it, and the per-doc records it was computed from (without
logit-lens data). Verification treats the file as untrusted input: it is size-capped, parsed as strict JSON
only (no NaN, no duplicate keys), validated against the schema, and every reported number is then
recomputed from the records with the task's own :func:`~modality_conflict.mc_tasks.task_logic.build_report`
(the same join, estimator settings and bootstrap seed the task used); any difference rejects the file.
With ``--data`` the records are also checked against a dataset folder made by ``modality-conflict build``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import functools
import hashlib
import itertools
import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from modality_conflict.dataset_builder.errors import ModalityConflictError
from modality_conflict.mc_tasks.report import TaskRun, load_task_runs

FORMAT = "modality-conflict-submission"
SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).resolve().with_name("submission.schema.json")
MAX_SUBMISSION_BYTES = 50 * 1024 * 1024
MAX_RECORDS = 200_000  # also in the schema; checked first so a huge list fails before schema validation
MAX_NESTING = 32
# Recomputation is deterministic; the tolerance only absorbs last-digit differences between BLAS builds.
REL_TOLERANCE = 1e-9
ABS_TOLERANCE = 1e-12
LOCAL_DATASET = "local"
TRUTH_FIELDS = (
    "condition",
    "control",
    "group_id",
    "item_id",
    "vision_key",
    "text_key",
    "visual_tier",
    "text_tier",
    "vision_answer",
    "text_answer",
)
HEADLINE_METRICS = (
    "balance_point",
    "balance_point_ci_low",
    "balance_point_ci_high",
    "tfr",
    "vfr",
    "other_rate",
    "mean_hv",
    "mean_ht",
    "mean_dh",
    "n_conflicts",
    "entropy_estimator",
)
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_OPENING = (ord("["), ord("{"))
_CLOSING = (ord("]"), ord("}"))
RECORD_DROP = ("lens",)  # per-layer data stays in the sample logs: large and not needed to recompute


class SubmissionError(ModalityConflictError):
    """A submission file cannot be read or does not follow the schema."""


class RejectedSubmissionError(SubmissionError):
    """A well-formed submission whose numbers or data do not check out.

    Parameters
    ----------
    problems
        One line per problem, most important first.
    """

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        shown = self.problems[:20]
        more = len(self.problems) - len(shown)
        text = "submission rejected:\n" + "\n".join(f"  - {p}" for p in shown)
        if more:
            text += f"\n  ... and {more} more"
        super().__init__(text)


# --- strict reading of untrusted JSON --------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise SubmissionError(f"non-standard JSON value {name} (NaN and Infinity are not allowed)")


def _finite_float(text: str) -> float:
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
            parse_float=_finite_float,
            object_pairs_hook=_no_duplicate_keys,
        )
    except json.JSONDecodeError as error:
        raise SubmissionError(
            f"{source} is not valid JSON: {error.msg} at line {error.lineno} column {error.colno}"
        ) from None
    except ValueError as error:  # e.g. an integer with thousands of digits
        raise SubmissionError(f"{source} holds an unreadable number: {error}") from None


def read_submission_file(path: Path, *, max_bytes: int | None = None) -> Any:
    """Read a submission file with a size cap (checked before reading) and strict JSON parsing.

    ``max_bytes`` defaults to :data:`MAX_SUBMISSION_BYTES`.
    """
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
    """Read and schema-check a submission file.

    Raises
    ------
    SubmissionError
        When the file is too large, not strict JSON, or violates the schema (the message names the fields).
    """
    submission = read_submission_file(path)
    problems = schema_problems(submission)
    if problems:
        raise SubmissionError(
            f"{path} does not follow the submission schema:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    return submission


# --- building a submission from an lmms-eval run ---------------------------------------------------------


def _package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def parse_model_args(model_args: object) -> dict[str, str]:
    """``key=value,key=value`` (lmms-eval's --model_args) as a dict; a dict is passed through."""
    if isinstance(model_args, dict):
        return {str(k): str(v) for k, v in model_args.items()}
    out: dict[str, str] = {}
    for part in str(model_args or "").split(","):
        key, sep, value = part.partition("=")
        if sep:
            out[key.strip()] = value.strip()
    return out


def dataset_fingerprint(manifest: Mapping[str, Any]) -> str:
    """sha256 of the data files' hashes in a build manifest (the README card is not part of the data).

    Raises
    ------
    ValueError
        When the manifest lists no parquet files.
    """
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise ValueError("the dataset manifest has no 'files' table")
    table = {
        name: entry.get("sha256")
        for name, entry in files.items()
        if name.endswith(".parquet") and isinstance(entry, dict)
    }
    if not table:
        raise ValueError("the dataset manifest lists no parquet files")
    canonical = json.dumps(table, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _local_manifest(folder: Path) -> dict[str, Any] | None:
    from modality_conflict.dataset_builder.writer import read_manifest

    return read_manifest(folder) if folder.is_dir() else None


def build_submission(
    run: TaskRun,
    *,
    model_id: str | None = None,
    model_revision: str | None = None,
    dataset_repo: str | None = None,
    dataset_revision: str | None = None,
    data_dir: Path | None = None,
    created: str | None = None,
) -> dict[str, Any]:
    """A submission for one task run, after checking that its records reproduce its report.

    Parameters
    ----------
    run
        A task run with its per-sample records (see :func:`report.load_task_runs`).
    model_id, model_revision
        Override what the results file says (``pretrained=`` / ``revision=`` of ``--model_args``).
    dataset_repo, dataset_revision
        Override the task configuration's ``dataset_path`` and ``dataset_kwargs.revision`` (for a run on a
        local folder that was published as that revision).
    data_dir
        The dataset folder the run used, for the fingerprint; found automatically when the run's
        ``dataset_path`` is a local build.
    created
        Timestamp to record (ISO 8601); default now.

    Raises
    ------
    ValueError
        When the run has no records, its report is undefined, or the records do not reproduce it.
    """
    from modality_conflict.mc_tasks.task_logic import N_RESAMPLES, REPORT_SEED, build_report

    if not run.records:
        raise ValueError(
            f"{run.results_json}: task {run.task!r} has no per-sample records (run with --log_samples)"
        )
    if run.report.get("status") != "ok":
        raise ValueError(
            f"task {run.task!r}: the report is undefined ({run.report.get('reason', 'no reason given')})"
        )
    records = sorted(
        ({k: v for k, v in record.items() if k not in RECORD_DROP} for record in run.records),
        key=lambda r: str(r["row_id"]),
    )
    recomputed = json_normal(build_report(records))
    differences = compare_values(run.report, recomputed)
    if differences:
        raise ValueError(
            f"{run.results_json}: the sample log does not reproduce the task's report "
            "(are they from the same run?):\n" + "\n".join(f"  - {d}" for d in differences[:10])
        )

    results = run.results
    config = results.get("config") if isinstance(results.get("config"), dict) else {}
    args = parse_model_args(config.get("model_args"))
    task_config = run.task_config
    dataset_path = str(task_config.get("dataset_path") or "")
    kwargs = task_config.get("dataset_kwargs") if isinstance(task_config.get("dataset_kwargs"), dict) else {}
    manifest = None
    if data_dir is not None:
        manifest = _local_manifest(Path(data_dir))
        if manifest is None:
            raise FileNotFoundError(
                f"{data_dir} has no readable manifest.json (not made by `modality-conflict build`)"
            )
    elif dataset_path and Path(dataset_path).is_dir():
        manifest = _local_manifest(Path(dataset_path))
    is_local_path = bool(dataset_path) and (Path(dataset_path).is_absolute() or Path(dataset_path).exists())
    versions = results.get("versions") if isinstance(results.get("versions"), dict) else {}
    version = versions.get(run.task, (task_config.get("metadata") or {}).get("version"))
    submission = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "created": created or _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "model": {
            "id": model_id
            or str(results.get("model_name") or args.get("pretrained") or config.get("model") or "unknown"),
            "revision": model_revision or args.get("revision") or None,
            "lmms_eval_model": str(config.get("model") or "unknown"),
            "model_args": str(config.get("model_args") or "")[:2000],
        },
        "dataset": {
            "repo": dataset_repo or (LOCAL_DATASET if is_local_path or not dataset_path else dataset_path),
            "revision": dataset_revision or (None if is_local_path else kwargs.get("revision")),
            "split": str(task_config.get("test_split") or "test"),
            "fingerprint": dataset_fingerprint(manifest) if manifest else None,
            "builder_version": manifest.get("builder_version") if manifest else None,
        },
        "task": {
            "name": run.task,
            "version": version
            if isinstance(version, (str, int, float)) and not isinstance(version, bool)
            else None,
            "output_type": task_config.get("output_type"),
        },
        "lmms_eval": {
            "version": _package_version("lmms_eval"),
            "reported_version": results.get("lmms_eval_version"),
            "git_hash": results.get("git_hash"),
        },
        "estimator": str(recomputed.get("entropy_estimator")),
        "analysis": {
            "package_version": _package_version("modality-conflict") or "unknown",
            "n_resamples": N_RESAMPLES,
            "seed": REPORT_SEED,
        },
        "metrics": run.report,
        "records": records,
    }
    problems = schema_problems(submission)
    if problems:
        raise ValueError(
            "the submission would not follow its own schema:\n" + "\n".join(f"  - {p}" for p in problems)
        )
    return submission


def write_submission(submission: Mapping[str, Any], path: Path) -> Path:
    """Write a submission as compact, key-sorted JSON (one record per line for readable diffs)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    head = {k: v for k, v in submission.items() if k != "records"}
    body = json.dumps(head, sort_keys=True, indent=1, allow_nan=False)[:-2]
    lines = ",\n".join(json.dumps(r, sort_keys=True, allow_nan=False) for r in submission["records"])
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(f'{body},\n "records": [\n{lines}\n]\n}}\n', encoding="utf-8")
    tmp.replace(path)
    return path


# --- verification ----------------------------------------------------------------------------------------


def _metric_order(key: Any) -> tuple[int, str]:
    # Headline metrics first, so that a long list of differences starts with the ones that matter.
    name = str(key)
    return (HEADLINE_METRICS.index(name) if name in HEADLINE_METRICS else len(HEADLINE_METRICS), name)


def json_normal(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists), so it compares like a parsed file."""
    return json.loads(json.dumps(value, allow_nan=False))


def _same_number(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL_TOLERANCE, abs_tol=ABS_TOLERANCE)


def compare_values(reported: Any, recomputed: Any, path: str = "") -> list[str]:
    """Every place where ``reported`` differs from ``recomputed``, each naming the metric.

    Numbers are equal within :data:`REL_TOLERANCE` / :data:`ABS_TOLERANCE`; everything else must be
    identical (a boolean is not a number, None is not 0).
    """
    where = path or "(value)"
    if isinstance(reported, Mapping) and isinstance(recomputed, Mapping):
        problems = []
        for key in sorted(set(reported) | set(recomputed), key=_metric_order):
            name = f"{path}.{key}" if path else str(key)
            if key not in recomputed:
                problems.append(f"metric {name!r} is reported but the recomputation has no such metric")
            elif key not in reported:
                problems.append(f"metric {name!r} is missing (recomputed: {_show(recomputed[key])})")
            else:
                problems.extend(compare_values(reported[key], recomputed[key], name))
        return problems
    if isinstance(reported, list) and isinstance(recomputed, list):
        if len(reported) != len(recomputed):
            return [f"metric {where!r} has {len(reported)} entries, recomputed {len(recomputed)}"]
        problems = []
        for index, (a, b) in enumerate(zip(reported, recomputed, strict=True)):
            problems.extend(compare_values(a, b, f"{path}[{index}]"))
        return problems
    numeric = (int, float)
    if (
        isinstance(reported, numeric)
        and isinstance(recomputed, numeric)
        and not isinstance(reported, bool)
        and not isinstance(recomputed, bool)
    ):
        if _same_number(float(reported), float(recomputed)):
            return []
    elif type(reported) is type(recomputed) and reported == recomputed:
        return []
    return [f"metric {where!r}: reported {_show(reported)}, recomputed {_show(recomputed)}"]


def _show(value: Any) -> str:
    text = json.dumps(value, allow_nan=True, default=str)
    return text if len(text) <= 80 else text[:77] + "..."


@dataclass
class DatasetIndex:
    """What verification needs from a dataset folder: its fingerprint and each row's fixed fields."""

    folder: Path
    fingerprint: str
    builder_version: str | None
    rows: dict[str, dict[str, Any]] = field(repr=False)


def load_dataset_index(folder: Path) -> DatasetIndex:
    """Read a folder made by ``modality-conflict build``: check its files against its manifest and index rows.

    Raises
    ------
    SubmissionError
        When the folder has no manifest, a file's sha256 does not match it, or a shard cannot be read.
    """
    import pyarrow.parquet as pq

    from modality_conflict.dataset_builder.constants import COLORS, CONDITIONS, CONTROLS
    from modality_conflict.dataset_builder.writer import hash_mismatches

    folder = Path(folder)
    manifest = _local_manifest(folder)
    if manifest is None:
        raise SubmissionError(
            f"{folder} has no readable manifest.json (not made by `modality-conflict build`)"
        )
    mismatches = hash_mismatches(folder, manifest)
    if mismatches:
        raise SubmissionError(
            f"dataset folder {folder} does not match its manifest: " + "; ".join(mismatches[:5])
        )
    names = {"condition": CONDITIONS, "control": CONTROLS, "vision_answer": COLORS, "text_answer": COLORS}
    rows: dict[str, dict[str, Any]] = {}
    for name in sorted(manifest["files"]):
        if not name.endswith(".parquet"):
            continue
        try:
            table = pq.read_table(folder / name, columns=["row_id", *TRUTH_FIELDS])
        except Exception as error:  # noqa: BLE001 - any arrow error means an unreadable shard
            raise SubmissionError(f"{folder / name}: cannot read the dataset shard ({error})") from None
        columns = table.to_pydict()
        for index, row_id in enumerate(columns["row_id"]):
            row = {}
            for key in TRUTH_FIELDS:
                value = columns[key][index]
                row[key] = names[key][value] if key in names and isinstance(value, int) else value
            rows[row_id] = row
    return DatasetIndex(folder, dataset_fingerprint(manifest), manifest.get("builder_version"), rows)


def dataset_problems(submission: Mapping[str, Any], index: DatasetIndex, *, limit: int = 20) -> list[str]:
    """Differences between a submission and a dataset: fingerprint, unknown row ids, altered fields."""
    problems = []
    claimed = submission["dataset"].get("fingerprint")
    if claimed is None:
        problems.append(
            f"dataset.fingerprint is null: the submission cannot be tied to the dataset in {index.folder} "
            f"(fingerprint {index.fingerprint})"
        )
    elif claimed != index.fingerprint:
        problems.append(
            f"dataset.fingerprint {claimed} differs from the dataset in {index.folder} ({index.fingerprint})"
        )
    bad_rows = 0
    for position, record in enumerate(submission["records"]):
        row = index.rows.get(record["row_id"])
        if row is None:
            message = f"records[{position}]: row_id {record['row_id']!r} is not in the dataset"
        else:
            changed = [key for key in TRUTH_FIELDS if record[key] != row[key]]
            if not changed:
                continue
            key = changed[0]
            message = (
                f"records[{position}] ({record['row_id']}): {key} is {record[key]!r} "
                f"but the dataset has {row[key]!r}"
            )
        bad_rows += 1
        if bad_rows <= limit:
            problems.append(message)
    if bad_rows > limit:
        problems.append(f"... {bad_rows - limit} more records differ from the dataset")
    return problems


@dataclass
class Verification:
    """Outcome of :func:`verify_submission` for a submission that passed.

    Attributes
    ----------
    submission
        The parsed submission.
    recomputed
        The report recomputed from its records.
    notes
        Lines worth printing (e.g. that the dataset check was skipped, or how much of the dataset is covered).
    """

    submission: dict[str, Any]
    recomputed: dict[str, Any]
    notes: list[str] = field(default_factory=list)


def verify_submission(
    submission: dict[str, Any],
    *,
    data: Path | DatasetIndex | None = None,
    dataset_revision: str | None = None,
) -> Verification:
    """Recompute every metric of a schema-valid submission and compare it with what it reports.

    Parameters
    ----------
    submission
        A parsed submission that passed :func:`schema_problems`.
    data
        A dataset folder (or its loaded index) to check the fingerprint and the row ids against.
    dataset_revision
        When given, the submission's ``dataset.revision`` must equal it.

    Returns
    -------
    Verification

    Raises
    ------
    RejectedSubmissionError
        Listing every problem: a metric that differs (named, with both values), duplicate rows, another
        bootstrap setting or estimator, or a mismatch with the dataset.
    """
    from modality_conflict.mc_tasks.task_logic import N_RESAMPLES, REPORT_SEED, build_report

    problems: list[str] = []
    notes: list[str] = []
    analysis = submission["analysis"]
    if analysis["n_resamples"] != N_RESAMPLES or analysis["seed"] != REPORT_SEED:
        problems.append(
            f"analysis uses n_resamples={analysis['n_resamples']}, seed={analysis['seed']}; this verifier "
            f"recomputes with n_resamples={N_RESAMPLES}, seed={REPORT_SEED} (a different package version?)"
        )
    records = submission["records"]
    seen: dict[str, int] = {}
    for position, record in enumerate(records):
        first = seen.setdefault(record["row_id"], position)
        if first != position:
            problems.append(f"records[{position}]: row_id {record['row_id']!r} repeats records[{first}]")
            break
    estimators = sorted({r["entropy_estimator"] for r in records})
    if estimators != [submission["estimator"]]:
        problems.append(f"estimator is {submission['estimator']!r} but the records use {estimators}")
    if dataset_revision is not None and submission["dataset"]["revision"] != dataset_revision:
        problems.append(
            f"dataset.revision is {submission['dataset']['revision']!r}, expected {dataset_revision!r}"
        )
    if problems:
        raise RejectedSubmissionError(problems)

    try:
        recomputed = json_normal(build_report(records))
    except (ValueError, KeyError, TypeError) as error:
        raise RejectedSubmissionError([f"records: the metrics cannot be recomputed ({error})"]) from None
    problems.extend(compare_values(submission["metrics"], recomputed))

    if data is None:
        notes.append("dataset check skipped (no --data): only the schema and the recomputation were checked")
    else:
        index = data if isinstance(data, DatasetIndex) else load_dataset_index(Path(data))
        problems.extend(dataset_problems(submission, index))
        covered = len({r["row_id"] for r in records} & index.rows.keys())
        notes.append(
            f"dataset check passed: {covered} of {len(index.rows)} dataset rows covered ({index.folder})"
        )
    if problems:
        raise RejectedSubmissionError(problems)
    return Verification(submission=submission, recomputed=recomputed, notes=notes)


def verify_file(
    path: Path, *, data: Path | DatasetIndex | None = None, dataset_revision: str | None = None
) -> Verification:
    """:func:`load_submission` then :func:`verify_submission`."""
    return verify_submission(load_submission(path), data=data, dataset_revision=dataset_revision)


# --- command line ----------------------------------------------------------------------------------------


def _headline(submission: Mapping[str, Any]) -> str:
    metrics = submission["metrics"]

    def number(key: str, signed: bool = True) -> str:
        value = metrics.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return "n/a"
        return f"{value:+.3f}" if signed else f"{value:.3f}"

    return (
        f"{submission['model']['id']} on {submission['task']['name']}: "
        f"balance point {number('balance_point')} "
        f"[{number('balance_point_ci_low')}, {number('balance_point_ci_high')}], "
        f"TFR {number('tfr', signed=False)}, {metrics.get('n_conflicts')} conflicts, "
        f"estimator {submission['estimator']}"
    )


def run_submit(args: argparse.Namespace) -> int:
    """``modality-conflict submit``: write a submission for the one task result under ``args.results``."""
    runs = load_task_runs(
        [Path(args.results)], tasks=[args.task] if args.task else None, require_samples=True
    )
    if len(runs) > 1:
        found = ", ".join(f"{r.label} ({r.results_json})" for r in runs)
        raise ValueError(
            f"{args.results} holds {len(runs)} task results ({found}); pick one with --task or a folder"
        )
    submission = build_submission(
        runs[0],
        model_id=args.model_id,
        model_revision=args.model_revision,
        dataset_repo=args.dataset_repo,
        dataset_revision=args.dataset_revision,
        data_dir=Path(args.data) if args.data else None,
    )
    path = write_submission(submission, Path(args.out))
    print(f"wrote {path} ({len(submission['records'])} records)")
    print(_headline(submission))
    model_id = str(submission["model"]["id"])
    if model_id.startswith(("/", ".", "~")) or Path(model_id).exists():
        print(
            f"warning: the model id {model_id!r} is a local path; pass --model-id with its Hub id",
            file=sys.stderr,
        )
    if submission["model"]["revision"] is None:
        print("warning: the model revision is unknown; pass --model-revision", file=sys.stderr)
    if submission["dataset"]["fingerprint"] is None:
        print(
            "note: no dataset fingerprint recorded; pass --data DIR so that `verify --data` can check it",
            file=sys.stderr,
        )
    return 0


def run_verify(args: argparse.Namespace) -> int:
    """``modality-conflict verify``: exit 0 when the submission checks out; a rejection raises."""
    result = verify_file(
        Path(args.submission),
        data=Path(args.data) if args.data else None,
        dataset_revision=args.dataset_revision,
    )
    print(f"verified: {_headline(result.submission)}")
    for note in result.notes:
        print(note)
    return 0


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> None:
    """Register ``submit`` or ``verify`` (``leaderboard`` and ``eval-results`` live in ``leaderboard``)."""
    if name in ("leaderboard", "eval-results"):
        from modality_conflict.mc_tasks import leaderboard

        leaderboard.add_parser(subparsers, name)
        return
    if name == "submit":
        parser = subparsers.add_parser(
            "submit", help="write a leaderboard submission from an lmms-eval result folder"
        )
        parser.add_argument(
            "results", help="lmms-eval --output_path folder, a model folder, or a *_results.json"
        )
        parser.add_argument("--out", required=True, help="submission file to write (JSON)")
        parser.add_argument("--task", help="which task when the folder holds several")
        parser.add_argument("--model-id", help="model id (default: pretrained= of the run's --model_args)")
        parser.add_argument(
            "--model-revision", help="model commit (default: revision= of the run's --model_args)"
        )
        parser.add_argument("--data", help="the dataset folder the run used (records its fingerprint)")
        parser.add_argument(
            "--dataset-repo", help="Hub dataset id, for a run on a local copy of a published set"
        )
        parser.add_argument("--dataset-revision", help="Hub dataset revision, for a run on a local copy")
        parser.set_defaults(func=run_submit)
        return
    parser = subparsers.add_parser("verify", help="check a submission: schema, recomputed metrics, dataset")
    parser.add_argument("submission", help="submission JSON file")
    parser.add_argument(
        "--data", help="dataset folder made by `modality-conflict build` to check row ids against"
    )
    parser.add_argument("--dataset-revision", help="require this dataset revision")
    parser.set_defaults(func=run_verify)
