"""The results view: an lmms-eval output folder, read once, and each task's summary as a typed object.

lmms-eval leaves ``<date_id>_results.json`` (every task's aggregated metrics, its configuration, versions)
and, with ``--log_samples``, ``<date_id>_samples_<task>.jsonl`` (one line per doc: the record that
``process_results`` returned, under every metric key, and the model's raw responses). This module is the
only reader of those files; together with :mod:`~modality_conflict.mc_tasks.task_summary` (re-exported
here) it is the only place that interprets the task's flat ``report`` dict: the ``eval`` summary, the HTML
report, probing, submissions and the leaderboard all go through :class:`TaskSummary` (and
:class:`BalancePoint` for what a balance point's status, bound and interval mean).

Reading
    :func:`read_task_results` (folders or files -> one :class:`TaskResult` per task), built on
    :class:`ResultsFile` (one results JSON) and :func:`read_sample_log` (one sample log, records and,
    when asked, the response envelopes in the same pass).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from modality_conflict.mc_tasks.names import MAIN_TASK, SUMMARY_METRIC
from modality_conflict.mc_tasks.task_summary import BalancePoint, Preference, TaskSummary, finite_number
from modality_conflict.models.envelope import decode_envelope

__all__ = [
    "MAX_RESULTS_BYTES",
    "RESULTS_SUFFIX",
    "BalancePoint",
    "Preference",
    "ResultsFile",
    "SampleLog",
    "TaskResult",
    "TaskSummary",
    "find_results_files",
    "finite_number",
    "newest_results_file",
    "read_json_object",
    "read_sample_log",
    "read_task_results",
]

RESULTS_SUFFIX = "_results.json"
MAX_RESULTS_BYTES = 64 * 1024 * 1024


# --- files ------------------------------------------------------------------------------------------------


def read_json_object(path: Path, max_bytes: int = MAX_RESULTS_BYTES) -> dict[str, Any]:
    """A JSON file holding an object, read with a size cap.

    Raises
    ------
    ValueError
        When the file is too large, not JSON, or not an object (the message names the file).
    """
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"{path} is {size} bytes, more than the {max_bytes} this command reads")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a JSON file: {error}") from None
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

    @property
    def task_names(self) -> list[str]:
        """Every task with results in the file, sorted."""
        return sorted(_dict(self.data.get("results")))

    def metrics(self, task: str) -> dict[str, Any]:
        """A task's metrics by name (lmms-eval's ``name,filter`` keys cut at the comma)."""
        metrics = _dict(_dict(self.data.get("results")).get(task))
        return {key.split(",")[0]: value for key, value in metrics.items()}

    def summary(self, task: str) -> TaskSummary | None:
        """A task's ``report`` metric, or None when the task has none (not a modality_conflict task)."""
        report = _dict(_dict(self.data.get("results")).get(task)).get(f"{SUMMARY_METRIC},none")
        return TaskSummary(report) if isinstance(report, dict) else None

    def summaries(self) -> Iterator[tuple[str, TaskSummary]]:
        """``(task, summary)`` of every task that has a ``report`` metric, by task name."""
        for task in self.task_names:
            summary = self.summary(task)
            if summary is not None:
                yield task, summary

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
    """What a sample log holds: per-doc records, in file order, (when read) the decoded envelopes, and how
    many docs' prompts had each (template date, preamble) the envelopes recorded."""

    path: Path
    records: tuple[dict[str, Any], ...]
    envelopes: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    prompts: dict[tuple[str, str], int] = field(default_factory=dict, repr=False)


def read_sample_log(path: Path, *, with_envelopes: bool = False) -> SampleLog:
    """Read an lmms-eval sample log in one pass.

    Each line is one doc; its ``report`` key holds the record that ``process_results`` returned (the same
    dict stands under every metric key). With ``with_envelopes`` the raw response of each doc (``resps``,
    or ``filtered_resps`` where lmms-eval dropped an identical ``resps``) is decoded as the wrapper's
    envelope and kept by row id; responses that are not envelopes are left out. The prompt facts of
    envelopes (the date the chat template saw, what it wrote before the question) are always counted.

    Raises
    ------
    ValueError
        When a line is not JSON or has no record, naming the file and line.
    """
    records: list[dict[str, Any]] = []
    envelopes: dict[str, dict[str, Any]] = {}
    prompts: Counter[tuple[str, str]] = Counter()
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                sample = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not a JSON line ({error})") from None
            record = sample.get(SUMMARY_METRIC) if isinstance(sample, dict) else None
            if not isinstance(record, dict) or "row_id" not in record:
                raise ValueError(f"{path}:{number}: no per-doc record under {SUMMARY_METRIC!r}")
            records.append(record)
            for key in ("resps", "filtered_resps"):
                response = _first_string(sample.get(key))
                if not with_envelopes and (response is None or '"prompt":' not in response):
                    continue
                envelope = decode_envelope(response)
                if envelope is None:
                    continue
                if with_envelopes:
                    envelopes[str(record["row_id"])] = envelope
                facts = envelope.get("prompt")
                if isinstance(facts, dict):
                    prompts[(str(facts.get("date")), str(facts.get("preamble")))] += 1
                break
    return SampleLog(Path(path), tuple(records), envelopes, dict(prompts))


# --- one task of one run ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TaskResult:
    """One modality_conflict task of one lmms-eval run, as found on disk.

    Attributes
    ----------
    task
        The lmms-eval task name (e.g. ``modality_conflict_color``).
    results_file
        The run's results file.
    summary
        The task's ``report`` metric.
    samples
        The task's sample log, or None when the run was made without ``--log_samples``.
    label
        A short name for plots and tables (the model folder, plus the task when it is not the main one).
    """

    task: str
    results_file: ResultsFile
    summary: TaskSummary
    samples: SampleLog | None = field(default=None, repr=False)
    label: str = ""

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


def find_results_files(path: Path) -> list[Path]:
    """The newest ``*_results.json`` of every folder under ``path`` (or ``path`` itself if it is one).

    lmms-eval writes one folder per model and names files by start time (``2025-01-31T12-00-00.123``),
    so within a folder the lexicographically last file is the latest run of that model.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist or holds no results file.
    """
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
    """Every modality_conflict task result found under ``paths``.

    Parameters
    ----------
    paths
        Result folders (an lmms-eval ``--output_path``, one model folder below it) or results files.
    tasks
        Keep only these task names; default all tasks that have a ``report`` metric.
    require_samples
        Raise when a task has no per-sample log (submissions need the records).
    with_envelopes
        Also keep each doc's response envelope (probing needs the logit lens it carries).

    Returns
    -------
    list of TaskResult
        In the order of ``paths``, then folder, then task name. Labels are made unique.

    Raises
    ------
    FileNotFoundError
        When a path has no results, or no task of ``tasks`` is found.
    """
    runs: list[TaskResult] = []
    for path in paths:
        found = 0
        for results_json in find_results_files(Path(path)):
            results = ResultsFile.read(results_json)
            for task, summary in results.summaries():
                if tasks and task not in tasks:
                    continue
                samples_path = results.samples_path(task)
                if samples_path is None and require_samples:
                    raise FileNotFoundError(
                        f"{results_json}: task {task!r} has no sample log "
                        f"{results.stem}_samples_{task}.jsonl; rerun lmms-eval with --log_samples"
                    )
                samples = (
                    None
                    if samples_path is None
                    else read_sample_log(samples_path, with_envelopes=with_envelopes)
                )
                runs.append(TaskResult(task, results, summary, samples, results_json.parent.name))
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
