"""Verifying a submission: every reported number recomputed from its records, the records against the dataset.

Verification treats the file as untrusted input: it is size-capped, parsed as strict JSON only (no NaN, no
duplicate keys), validated against the schema, and every reported number is then recomputed from the
records with the task's own :func:`~modality_conflict.mc_tasks.records.summarize_records` (the same join,
estimator settings and bootstrap seed the task used); any difference rejects the file. With a dataset
folder the records are also checked against it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modality_conflict.dataset_builder.folder import DatasetFolder, DatasetFolderError, dataset_fingerprint
from modality_conflict.mc_tasks.names import HEADLINE_METRICS
from modality_conflict.mc_tasks.records import N_RESAMPLES, REPORT_SEED, summarize_records
from modality_conflict.mc_tasks.submission.schema import load_submission
from modality_conflict.mc_tasks.submission.strict_json import SubmissionError

# Recomputation is deterministic; the tolerance only absorbs last-digit differences between BLAS builds.
REL_TOLERANCE = 1e-9
ABS_TOLERANCE = 1e-12
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
    dataset = DatasetFolder(Path(folder))
    try:
        manifest = dataset.require_manifest()
        dataset.verify_hashes()
        rows = dataset.index_rows(TRUTH_FIELDS)
    except DatasetFolderError as error:
        raise SubmissionError(str(error)) from None
    return DatasetIndex(dataset.path, dataset_fingerprint(manifest), manifest.get("builder_version"), rows)


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
        recomputed = json_normal(summarize_records(records))
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
