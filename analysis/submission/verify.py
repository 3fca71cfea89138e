"""Verifying a submission: every reported number recomputed from its records, the records against the dataset.

The file is untrusted: size-capped, strict JSON, schema-checked, and each record checked against itself
(:mod:`~.consistency`). With a dataset folder the records are checked against its rows and the task's split
(:mod:`~.coverage`: a partial submission verifies only as unranked); then every number is recomputed with the
task's own ``summarize_records`` (same join, estimators and bootstrap seed), and with the run's output folder
its files are found by name and sha256 and compared. Cheap checks come first. This proves that the numbers
follow from the records and the records from the dataset (and the run's files), not that a model produced
the responses: only a trusted re-run catches a forger who writes consistent responses for every row.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modality_conflict.analysis.submission.claims import claim_problems
from modality_conflict.analysis.submission.consistency import consistency_problems
from modality_conflict.analysis.submission.coverage import Coverage, coverage_of, split_row_ids
from modality_conflict.analysis.submission.schema import load_submission
from modality_conflict.analysis.submission.strict_json import SubmissionError
from modality_conflict.dataset_builder.folder import (
    DatasetFolder,
    DatasetFolderError,
    dataset_fingerprint,
    sha256_file,
)
from modality_conflict.mc_tasks.names import HEADLINE_METRICS
from modality_conflict.mc_tasks.records import N_RESAMPLES, REPORT_SEED, summarize_records

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
    """A well-formed submission whose numbers or data do not check out (one line per problem, most important
    first)."""

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


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _same_number(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=REL_TOLERANCE, abs_tol=ABS_TOLERANCE)


def compare_values(reported: Any, recomputed: Any, path: str = "") -> list[str]:
    """Every place where ``reported`` differs from ``recomputed``, each naming the metric: numbers within the
    tolerances, everything else identical (a boolean is not a number, None is not 0)."""
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
    if _is_number(reported) and _is_number(recomputed):
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
    """Check a built folder's files against its manifest and index its rows (``SubmissionError`` if not)."""
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
    differing = []
    for position, record in enumerate(submission["records"]):
        row = index.rows.get(record["row_id"])
        if row is None:
            differing.append(f"records[{position}]: row_id {record['row_id']!r} is not in the dataset")
        elif changed := [key for key in TRUTH_FIELDS if record[key] != row[key]]:
            differing.append(
                f"records[{position}] ({record['row_id']}): {changed[0]} is {record[changed[0]]!r} "
                f"but the dataset has {row[changed[0]]!r}"
            )
    return problems + _capped(differing, limit, "more records differ from the dataset")


def _capped(problems: list[str], limit: int, more: str) -> list[str]:
    """The first ``limit`` problems, then ``... <how many> <more>`` for the rest."""
    return problems[:limit] + ([f"... {len(problems) - limit} {more}"] if len(problems) > limit else [])


def task_split(submission: Mapping[str, Any], index: DatasetIndex) -> set[str]:
    """The row ids of the dataset that the submission's task evaluates (rejected for an unknown task)."""
    task = submission["task"]["name"]
    try:
        return split_row_ids(task, index.rows)
    except KeyError:
        raise RejectedSubmissionError(
            [f"task.name {task!r} is not a modality_conflict task of this package (its split is unknown)"]
        ) from None


def split_problems(
    submission: Mapping[str, Any], index: DatasetIndex, split: set[str], *, limit: int = 5
) -> list[str]:
    """Records of dataset rows that the submission's task does not evaluate."""
    task = submission["task"]["name"]
    outside = [
        f"records[{position}]: row {row_id!r} is in the dataset but not in the split of task {task!r}"
        for position, record in enumerate(submission["records"])
        if (row_id := record["row_id"]) in index.rows and row_id not in split
    ]
    return _capped(outside, limit, "more records of rows outside the task's split")


def _find_named(root: Path, name: str, sha256: str) -> tuple[Path | None, list[Path]]:
    """The file called ``name`` under ``root`` whose sha256 is ``sha256``, and every file of that name."""
    root = Path(root)
    if root.is_file():
        candidates = [root] if root.name == name else [p for p in root.parent.glob(name) if p.is_file()]
    else:
        candidates = sorted(p for p in root.rglob(name) if p.is_file())
    match = next((p for p in candidates if sha256_file(p) == sha256), None)
    return match, candidates


def run_problems(submission: Mapping[str, Any], run: Path) -> tuple[list[str], list[str]]:
    """Problems and notes from checking a submission against the lmms-eval output it names (``run``): the
    files are found by name and sha256; the records must equal the sample log's (without lens data), the
    metrics the run's report, the model the results file's, the dataset claim the run's
    ``metadata.dataset_used`` (:func:`~.claims.claim_problems`)."""
    from modality_conflict.analysis.results import read_task_results

    recorded = submission["run"]
    problems: list[str] = []
    found: dict[str, Path] = {}
    for kind in ("results", "samples", "report"):
        name, digest = recorded[f"{kind}_file"], recorded[f"{kind}_sha256"]
        if name is None:
            continue
        match, candidates = _find_named(Path(run), name, digest)
        if match is not None:
            found[kind] = match
        elif candidates:
            problems.append(
                f"run.{kind}_sha256: {candidates[0]} is not the file the submission was made from "
                f"(sha256 {sha256_file(candidates[0])}, recorded {digest})"
            )
        else:
            problems.append(f"run.{kind}_file: no file {name!r} under {run}")
    if problems:
        return problems, []
    task = submission["task"]["name"]
    try:
        (result,) = read_task_results([found["results"]], tasks=[task], require_samples=True)
    except (FileNotFoundError, ValueError) as error:
        return [f"run: the files under {run} cannot be read ({error})"], []
    if result.samples_jsonl is None or result.samples_jsonl.resolve() != found["samples"].resolve():
        return [f"run.samples_file: {found['samples']} is not the sample log of {found['results']}"], []
    logged = {r["row_id"]: {k: v for k, v in r.items() if k != "lens"} for r in result.records}
    submitted = {r["row_id"]: r for r in submission["records"]}
    if logged.keys() != submitted.keys():
        extra = sorted(submitted.keys() - logged.keys())[:3]
        absent = sorted(logged.keys() - submitted.keys())[:3]
        problems.append(
            f"records: the rows differ from the sample log {found['samples'].name} "
            f"(not in the log: {extra}; not in the submission: {absent})"
        )
    else:
        for row_id in sorted(submitted):
            if json_normal(logged[row_id]) != submitted[row_id]:
                changed = sorted(
                    k for k in submitted[row_id] if submitted[row_id].get(k) != logged[row_id].get(k)
                )
                problems.append(f"records ({row_id}): {changed} differ from the sample log")
                break
    problems.extend(
        f"run report: {p}" for p in compare_values(submission["metrics"], json_normal(result.summary.raw))
    )
    problems.extend(f"run: {p}" for p in claim_problems(submission["dataset"], result.task_config))
    config = result.results_file.config
    if str(config.get("model") or "unknown") != submission["model"]["lmms_eval_model"]:
        problems.append(
            f"model.lmms_eval_model is {submission['model']['lmms_eval_model']!r} but the results file "
            f"says {config.get('model')!r}"
        )
    if str(config.get("model_args") or "")[:2000] != submission["model"]["model_args"]:
        problems.append("model.model_args differ from the results file's")
    notes = [f"run check passed: the records and metrics are those of {found['results']}"]
    return problems, notes


@dataclass
class Verification:
    """Outcome of :func:`verify_submission` for a submission that passed: the recomputed report, lines
    worth printing, and how much of the task's split the records cover (None without a dataset check)."""

    submission: dict[str, Any]
    recomputed: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    coverage: Coverage | None = None

    @property
    def ranked(self) -> bool:
        """Whether the submission may be ranked: checked against the dataset and covering its whole split."""
        return self.coverage is not None and self.coverage.complete

    @property
    def unranked_reason(self) -> str | None:
        """Why the submission may not be ranked, or None."""
        if self.coverage is None:
            return "not checked against the dataset"
        return None if self.coverage.complete else f"partial: {self.coverage.text()}"


def verify_submission(
    submission: dict[str, Any],
    *,
    data: Path | DatasetIndex | None = None,
    dataset_revision: str | None = None,
    run: Path | None = None,
    allow_partial: bool = False,
) -> Verification:
    """Check a schema-valid submission: its records, the dataset, every metric recomputed, its run. ``data``
    is a dataset folder (or its index) for the fingerprint, rows and split; ``run`` the lmms-eval output
    the submission was made from (:func:`run_problems`); ``allow_partial`` accepts records covering part of
    the split (then unranked). Raises :class:`RejectedSubmissionError` listing every problem."""
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
    problems.extend(consistency_problems(records))
    if problems:
        raise RejectedSubmissionError(problems)

    coverage = None
    if data is None:
        notes.append(
            "dataset check skipped (no --data): only the records, the schema and the recomputation were "
            "checked; the submission cannot be ranked without it"
        )
    else:
        index = data if isinstance(data, DatasetIndex) else load_dataset_index(Path(data))
        problems.extend(dataset_problems(submission, index))
        split = task_split(submission, index)
        problems.extend(split_problems(submission, index, split))
        coverage = coverage_of(submission["task"]["name"], {r["row_id"] for r in records}, split)
        if not coverage.complete and not allow_partial:
            problems.append(
                f"records: the submission {coverage.text()}; a ranked submission covers every row "
                "(verify it as unranked with --allow-partial)"
            )
        if problems:
            raise RejectedSubmissionError(problems)
        state = "complete" if coverage.complete else "PARTIAL, so it is not ranked"
        notes.append(f"dataset check passed ({index.folder}): the submission {coverage.text()} ({state})")

    try:
        recomputed = json_normal(summarize_records(records))
    except (ValueError, KeyError, TypeError) as error:
        raise RejectedSubmissionError([f"records: the metrics cannot be recomputed ({error})"]) from None
    problems.extend(compare_values(submission["metrics"], recomputed))
    if not problems and run is not None:
        run_issues, run_notes = run_problems(submission, Path(run))
        problems.extend(run_issues)
        notes.extend(run_notes)
    if problems:
        raise RejectedSubmissionError(problems)
    return Verification(submission=submission, recomputed=recomputed, notes=notes, coverage=coverage)


def verify_file(
    path: Path,
    *,
    data: Path | DatasetIndex | None = None,
    dataset_revision: str | None = None,
    run: Path | None = None,
    allow_partial: bool = False,
) -> Verification:
    """:func:`load_submission` then :func:`verify_submission`."""
    return verify_submission(
        load_submission(path),
        data=data,
        dataset_revision=dataset_revision,
        run=run,
        allow_partial=allow_partial,
    )
