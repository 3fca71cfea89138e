"""The results view: the only reader of lmms-eval output folders, and each task's summary as a typed object.

lmms-eval leaves ``<date_id>_results.json`` and, with ``--log_samples``, ``<date_id>_samples_<task>.jsonl``
(one doc per line: the record under every metric key, the raw responses); the project's hook
(:mod:`~modality_conflict.mc_tasks.report_file`) adds ``<date_id>_modality_conflict.json``: each summary.
A task's summary comes from the report file, else (earlier versions) the results file's ``report`` metric,
else it is recomputed from the sample log. Every file is size-capped and nesting-checked, and every field
the views interpret is checked on reading, so a malformed one is an error naming the file and the field.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from modality_conflict.analysis.json_input import parse_json
from modality_conflict.analysis.task_summary import BalancePoint as BalancePoint
from modality_conflict.analysis.task_summary import TaskSummary
from modality_conflict.mc_tasks.names import (
    LEGACY_SUMMARY_METRIC,
    MAIN_TASK,
    METRIC_NAMES,
    RECORD_KEY,
    REPORT_FILE_SUFFIX,
    REQUIRED_METRICS,
)
from modality_conflict.mc_tasks.records import incomplete_conflicts_warning, record_problem, summarize_records
from modality_conflict.models.envelope import decode_envelope

RESULTS_SUFFIX = "_results.json"
MAX_RESULTS_BYTES = 64 * 1024 * 1024
MAX_RESULTS_NESTING = 64  # lmms-eval's files nest about 8 deep


def read_json_object(path: Path, max_bytes: int = MAX_RESULTS_BYTES) -> dict[str, Any]:
    """A JSON file holding an object, read with a size cap; a ``ValueError`` naming the file otherwise."""
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"{path} is {size} bytes, more than the {max_bytes} this command reads")
    with path.open("rb") as handle:
        raw = handle.read(max_bytes + 1)
    # lmms-eval may write NaN for other tasks' metrics: not strict, but depth-checked in linear time.
    data = parse_json(raw, source=str(path), max_nesting=MAX_RESULTS_NESTING, strict=False, error=ValueError)
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return data


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class ResultsFile:
    """One lmms-eval ``*_results.json``: metrics, configuration and versions of every task of a run."""

    path: Path
    data: dict[str, Any] = field(repr=False)

    @classmethod
    def read(cls, path: Path) -> ResultsFile:
        """Read and size-check a results file (see :func:`read_json_object`)."""
        return cls(Path(path), read_json_object(Path(path)))

    @property
    def stem(self) -> str:
        """The run's ``<date_id>``, shared by its sample logs."""
        return self.path.name[: -len(RESULTS_SUFFIX)]

    @property
    def config(self) -> dict[str, Any]:
        """The run's configuration (model, model_args, ...)."""
        return _dict(self.data.get("config"))

    @property
    def model_args(self) -> Any:
        """The run's ``--model_args``."""
        return self.config.get("model_args")

    def _results(self, task: str) -> dict[str, Any]:
        return _dict(_dict(self.data.get("results")).get(task))

    @property
    def task_names(self) -> list[str]:
        """Every task with results in the file, sorted."""
        return sorted(_dict(self.data.get("results")))

    def metrics(self, task: str) -> dict[str, Any]:
        """A task's metrics by name (lmms-eval's ``name,filter`` keys cut at the comma)."""
        return {key.split(",")[0]: value for key, value in self._results(task).items()}

    @property
    def report_path(self) -> Path:
        """Where the run's report file is (or would be): ``<date_id>_modality_conflict.json``."""
        return self.path.with_name(f"{self.stem}{REPORT_FILE_SUFFIX}")

    @cached_property
    def reports(self) -> dict[str, Any]:
        """``task -> summary`` from the report file (empty when the run has none); a ``ValueError`` naming
        it when it is not JSON or not laid out as a report file."""
        path = self.report_path
        if not path.is_file():
            return {}
        data = read_json_object(path)
        reports = data.get("reports")
        if not isinstance(reports, dict) or any(not isinstance(v, dict) for v in reports.values()):
            raise ValueError(f"{path}: field 'reports' is not an object of one summary object per task")
        return reports

    def is_task_of_ours(self, task: str) -> bool:
        """Whether the task reports the modality_conflict metrics (its summary can be found or recomputed)."""
        return self.summary(task) is not None or set(REQUIRED_METRICS) <= set(self.metrics(task))

    def summary(self, task: str) -> TaskSummary | None:
        """A task's whole summary as the run wrote it (report file, else the legacy ``report`` metric), or
        None (:func:`read_task_results` then recomputes it from the sample log)."""
        if task in self.reports:
            return TaskSummary(self.reports[task], source=f"{self.report_path}: reports.{task}")
        legacy = self._results(task).get(f"{LEGACY_SUMMARY_METRIC},none")
        if isinstance(legacy, dict):
            return TaskSummary(legacy, source=f"{self.path}: results.{task}.{LEGACY_SUMMARY_METRIC},none")
        return None

    def summaries(self) -> Iterator[tuple[str, TaskSummary]]:
        """``(task, summary)`` of every task with a written summary, by task name."""
        for task in self.task_names:
            summary = self.summary(task)
            if summary is not None:
                yield task, summary

    def n_samples(self, task: str) -> int | None:
        """How many docs lmms-eval evaluated for the task (its ``n-samples`` ``effective`` count)."""
        count = _dict(_dict(self.data.get("n-samples")).get(task)).get("effective")
        return count if isinstance(count, int) and not isinstance(count, bool) else None

    def task_config(self, task: str) -> dict[str, Any]:
        """The task's configuration as lmms-eval recorded it (empty when absent)."""
        return _dict(_dict(self.data.get("configs")).get(task))

    def task_version(self, task: str) -> Any:
        """The task's version: the results file's ``versions`` entry, else its config's metadata."""
        versions = _dict(self.data.get("versions"))
        return versions.get(task, _dict(self.task_config(task).get("metadata")).get("version"))

    def samples_path(self, task: str) -> Path | None:
        """The task's sample log next to this file, or None when the run was made without one."""
        path = self.path.parent / f"{self.stem}_samples_{task}.jsonl"
        return path if path.is_file() else None


def _first_string(value: object) -> str | None:
    while isinstance(value, list) and value:
        value = value[0]
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class SampleLog:
    """A sample log's per-doc records in file order, (when read) the decoded envelopes, how many docs'
    prompts had each (template date, preamble), and each row id's line (for messages)."""

    path: Path
    records: tuple[dict[str, Any], ...]
    envelopes: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    prompts: dict[tuple[str, str], int] = field(default_factory=dict, repr=False)
    lines: dict[str, int] = field(default_factory=dict, repr=False)

    def where(self, row_id: str) -> str:
        """``path:line`` of a row's sample, or the path alone when the row is not in the log."""
        line = self.lines.get(str(row_id))
        return f"{self.path}:{line}" if line is not None else str(self.path)


RECORD_KEYS = (RECORD_KEY, *METRIC_NAMES[1:], LEGACY_SUMMARY_METRIC)


def _record_of(sample: object) -> Any:
    if not isinstance(sample, dict):
        return None
    return next((sample[key] for key in RECORD_KEYS if key in sample), None)


def _parse_sample_line(path: Path, number: int, line: str, with_envelopes: bool) -> tuple[dict, dict | None]:
    """A sample-log line's record and, when it carries prompt facts or ``with_envelopes``, its envelope."""
    try:
        sample = json.loads(line)  # the C decoder is linear and stops deep nesting with RecursionError
    except (json.JSONDecodeError, RecursionError) as error:
        raise ValueError(f"{path}:{number}: not a JSON line ({error})") from None
    record = _record_of(sample)
    if not isinstance(record, dict):
        raise ValueError(f"{path}:{number}: no per-doc record under {RECORD_KEY!r}")
    problem = record_problem(record)
    if problem is not None:
        raise ValueError(f"{path}:{number}: the per-doc record is malformed: {problem}")
    for key in ("resps", "filtered_resps"):
        response = _first_string(sample.get(key))
        if not with_envelopes and (response is None or '"prompt":' not in response):
            continue  # the prompt facts are counted without decoding every envelope
        try:
            envelope = decode_envelope(response)
        except ValueError as error:
            raise ValueError(f"{path}:{number}: field {key!r}: {error}") from None
        if envelope is not None:
            return record, envelope
    return record, None


def read_sample_log(path: Path, *, with_envelopes: bool = False) -> SampleLog:
    """Read an lmms-eval sample log in one pass. With ``with_envelopes`` each doc's raw response (``resps``,
    or ``filtered_resps`` where lmms-eval dropped an identical ``resps``) is decoded as the wrapper's
    envelope and kept by row id; the envelopes' prompt facts are always counted. A line that is not JSON or
    holds a malformed record or envelope is a ``ValueError`` naming the file, the line and the field."""
    records: list[dict[str, Any]] = []
    envelopes: dict[str, dict[str, Any]] = {}
    lines: dict[str, int] = {}
    prompts: Counter[tuple[str, str]] = Counter()
    with Path(path).open(encoding="utf-8") as handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                record, envelope = _parse_sample_line(path, number, line, with_envelopes)
                records.append(record)
                lines.setdefault(record["row_id"], number)
                if envelope is not None and with_envelopes:
                    envelopes[record["row_id"]] = envelope
                facts = None if envelope is None else envelope.get("prompt")
                if isinstance(facts, dict):
                    prompts[(str(facts.get("date")), str(facts.get("preamble")))] += 1
        except UnicodeDecodeError as error:
            raise ValueError(f"{path} is not UTF-8 text (byte {error.start} of a block)") from None
    return SampleLog(Path(path), tuple(records), envelopes, dict(prompts), lines)


@dataclass(frozen=True)
class TaskResult:
    """One modality_conflict task of one lmms-eval run: its sample log (None without ``--log_samples``), a
    short label for plots and tables, and what a reader should know before trusting the numbers."""

    task: str
    results_file: ResultsFile
    summary: TaskSummary
    samples: SampleLog | None = field(default=None, repr=False)
    label: str = ""
    warnings: tuple[str, ...] = ()

    @property
    def results_json(self) -> Path:
        """The ``*_results.json`` file the run wrote."""
        return self.results_file.path

    @property
    def samples_jsonl(self) -> Path | None:
        """The task's per-sample log, or None."""
        return None if self.samples is None else self.samples.path

    @property
    def records(self) -> tuple[dict[str, Any], ...]:
        """Per-doc records from the sample log, in file order (empty without a sample log)."""
        return () if self.samples is None else self.samples.records

    @property
    def envelopes(self) -> dict[str, dict[str, Any]]:
        """``row_id -> envelope`` (only when read with ``with_envelopes``)."""
        return {} if self.samples is None else self.samples.envelopes

    @property
    def prompts(self) -> dict[tuple[str, str], int]:
        """``(template date, preamble) -> docs`` from the envelopes (empty for other wrappers)."""
        return {} if self.samples is None else self.samples.prompts

    @property
    def task_config(self) -> dict[str, Any]:
        """The task's configuration as lmms-eval recorded it (empty when absent)."""
        return self.results_file.task_config(self.task)

    @property
    def report_json(self) -> Path | None:
        """The run's report file, or None when the summary came from elsewhere."""
        path = self.results_file.report_path
        return path if self.task in self.results_file.reports else None


def run_warnings(
    results: ResultsFile, task: str, summary: TaskSummary, samples: SampleLog | None
) -> list[str]:
    """Warnings about one task result: conflicts left out of its numbers, a sample log of another size."""
    warnings = []
    dropped = incomplete_conflicts_warning(summary.raw)
    if dropped:
        warnings.append(f"{task}: {dropped}")
    if samples is not None:
        expected = summary.get("n_records")
        what = "its summary counts (n_records)"
        if isinstance(expected, bool) or not isinstance(expected, int):
            expected, what = results.n_samples(task), "lmms-eval evaluated (n-samples)"
        if expected is not None and len(samples.records) != expected:
            warnings.append(
                f"{task}: the sample log {samples.path} holds {len(samples.records)} records but {expected} "
                f"docs are what {what} in {results.path}; what is drawn from the records uses the "
                f"{len(samples.records)}"
            )
    return warnings


def _summary_of(results: ResultsFile, task: str, samples: SampleLog | None) -> TaskSummary:
    summary = results.summary(task)
    if summary is not None:
        return summary
    if samples is not None:
        return TaskSummary(summarize_records(list(samples.records)), source=f"recomputed from {samples.path}")
    metrics = {k: v for k, v in results.metrics(task).items() if k in METRIC_NAMES}
    reason = (
        f"the report file {results.report_path.name} is missing and there is no sample log to recompute "
        "the summary from"
    )
    return TaskSummary({**metrics, "status": "undefined", "reason": reason}, source=str(results.path))


def find_results_files(path: Path) -> list[Path]:
    """The newest ``*_results.json`` of every folder under ``path`` (or ``path`` itself if it is one): the
    files are named by start time, so a folder's lexicographically last file is its latest run."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.is_file():
        if not path.name.endswith(RESULTS_SUFFIX):
            raise ValueError(f"{path} is not an lmms-eval results file (*{RESULTS_SUFFIX})")
        return [path]
    newest: dict[Path, Path] = {}
    for candidate in sorted(path.rglob(f"*{RESULTS_SUFFIX}")):
        if candidate.is_file():
            newest[candidate.parent] = candidate  # sorted, so the last one per folder wins
    if not newest:
        raise FileNotFoundError(f"no lmms-eval results (*{RESULTS_SUFFIX}) under {path}")
    return [newest[folder] for folder in sorted(newest)]


def newest_results_file(output_dir: Path, *, since: float = 0.0) -> Path | None:
    """The most recently written ``*_results.json`` under ``output_dir`` (modified at or after ``since``)."""
    candidates = [p for p in Path(output_dir).rglob(f"*{RESULTS_SUFFIX}") if p.stat().st_mtime >= since]
    return max(candidates, key=lambda p: p.stat().st_mtime) if candidates else None


def read_task_results(
    paths: Sequence[Path],
    *,
    tasks: Sequence[str] | None = None,
    require_samples: bool = False,
    with_envelopes: bool = False,
) -> list[TaskResult]:
    """Every modality_conflict task result under ``paths`` (output folders, model folders or results files),
    in the order of ``paths``, folder and task name, with unique labels. ``require_samples`` raises for a
    task without a sample log (submissions need the records); ``with_envelopes`` keeps each doc's envelope
    (probing needs its lens). Raises ``FileNotFoundError`` when a path has no results or no wanted task,
    ``MalformedSummaryError`` / ``ValueError`` naming the file and the field or line of what is malformed."""
    runs: list[TaskResult] = []
    for path in paths:
        found = 0
        for results_json in find_results_files(Path(path)):
            results = ResultsFile.read(results_json)
            for task in results.task_names:
                if (tasks and task not in tasks) or not results.is_task_of_ours(task):
                    continue
                samples_path = results.samples_path(task)
                if samples_path is None and require_samples:
                    raise FileNotFoundError(
                        f"{results_json}: task {task!r} has no sample log "
                        f"{results.stem}_samples_{task}.jsonl; rerun lmms-eval with --log_samples"
                    )
                samples = (
                    read_sample_log(samples_path, with_envelopes=with_envelopes) if samples_path else None
                )
                summary = _summary_of(results, task, samples)
                summary.check()
                warnings = tuple(run_warnings(results, task, summary, samples))
                runs.append(TaskResult(task, results, summary, samples, results_json.parent.name, warnings))
                found += 1
        if not found:
            wanted = f" for tasks {list(tasks)}" if tasks else ""
            raise FileNotFoundError(f"no modality_conflict report{wanted} in the results under {path}")
    return _unique_labels(runs)


def _unique_labels(runs: list[TaskResult]) -> list[TaskResult]:
    main_only = all(run.task == MAIN_TASK for run in runs)
    labelled = [run if main_only else replace(run, label=f"{run.label} / {run.task}") for run in runs]
    seen: dict[str, int] = {}
    out = []
    for run in labelled:
        count = seen.get(run.label, 0)
        seen[run.label] = count + 1
        out.append(run if count == 0 else replace(run, label=f"{run.label} ({count + 1})"))
    return out
