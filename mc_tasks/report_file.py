"""The report file: every modality_conflict task's whole summary, beside lmms-eval's results file.

lmms-eval prints every metric of a task in one table, so the task's metrics are its headline numbers
only (:data:`~modality_conflict.mc_tasks.names.TASK_METRICS`). The whole summary (intervals, law statistic,
binned curve, tiers, controls; :func:`~modality_conflict.mc_tasks.records.summarize_records`) goes to
``<date_id>_modality_conflict.json`` next to ``<date_id>_results.json``:

- when lmms-eval aggregates a task (``TaskOutput.calculate_aggregate_metric``, on rank 0 only, after the
  per-doc records of every rank were gathered), the hook keeps the summary that the task's aggregations
  just computed (the same cached object, no second computation);
- when lmms-eval writes the results file (``EvaluationTracker.save_results_aggregated``, rank 0 only),
  the hook writes the report file beside it, atomically.

Both hooks are installed by the ``lmms_eval.models`` entry point (:mod:`modality_conflict.mc_tasks.plugin`),
so they are active in every lmms-eval process that can run the tasks. The summary stays recomputable from
the sample log (:mod:`modality_conflict.analysis.results` falls back to that when the file is missing).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modality_conflict.mc_tasks.names import METRIC_NAMES, REPORT_FILE_SUFFIX

logger = logging.getLogger("modality_conflict")

REPORT_FORMAT = "modality-conflict-report"
REPORT_VERSION = 1

# task name -> summary, filled on the process that aggregates (rank 0) and written with the results.
_REPORTS: dict[str, dict[str, Any]] = {}


def report_file_for(results_json: Path) -> Path:
    """The report file that belongs to ``<date_id>_results.json``."""
    results_json = Path(results_json)
    stem = results_json.name.removesuffix("_results.json")
    return results_json.with_name(f"{stem}{REPORT_FILE_SUFFIX}")


def write_report_file(
    path: Path, reports: Mapping[str, Mapping[str, Any]], *, results_name: str | None = None
) -> Path:
    """Write ``{task: summary}`` as the report file ``path`` (a temporary sibling, then a rename)."""
    path = Path(path)
    payload = {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "results": results_name,
        "reports": {task: dict(report) for task, report in sorted(reports.items())},
    }
    text = json.dumps(payload, indent=1, sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    return path


def _is_task_aggregation(function: Any) -> bool:
    return getattr(function, "modality_conflict_metric", None) in METRIC_NAMES


def _keep_reports(task_output: Any) -> None:
    """After lmms-eval aggregated one task: keep its summary when the task is one of ours."""
    from modality_conflict.mc_tasks.records import cached_summary

    task = getattr(task_output, "task", None)
    aggregations = task.aggregation() if task is not None and hasattr(task, "aggregation") else {}
    for (metric, _filter), items in getattr(task_output, "sample_metrics", {}).items():
        if metric == METRIC_NAMES[0] and _is_task_aggregation(aggregations.get(metric)):
            _REPORTS[str(task_output.task_name)] = cached_summary(items)
            return


def _write_reports(tracker: Any, results: Mapping[str, Any], datetime_str: str) -> Path | None:
    """After lmms-eval wrote ``<date_id>_results.json``: write the report file of our tasks beside it."""
    if not getattr(tracker, "output_path", None):
        return None
    tasks = [task for task in (results.get("results") or {}) if task in _REPORTS]
    if not tasks:
        return None
    date_id = getattr(tracker, "date_id", None) or datetime_str.replace(":", "-")
    folder = Path(tracker.output_path) / tracker.general_config_tracker.model_name_sanitized
    path = folder / f"{date_id}{REPORT_FILE_SUFFIX}"
    try:
        return write_report_file(
            path, {task: _REPORTS[task] for task in tasks}, results_name=f"{date_id}_results.json"
        )
    except (OSError, TypeError, ValueError) as error:
        logger.warning("modality_conflict: could not write the report file %s: %s", path, error)
        return None


def install_report_file_hooks() -> None:
    """Wrap lmms-eval's aggregation and results writing so that the report file is written (idempotent)."""
    from lmms_eval.evaluator_utils import TaskOutput
    from lmms_eval.loggers.evaluation_tracker import EvaluationTracker

    aggregate = TaskOutput.calculate_aggregate_metric
    if not getattr(aggregate, "_modality_conflict", False):

        @functools.wraps(aggregate)
        def calculate_aggregate_metric(self: Any, *args: Any, **kwargs: Any) -> Any:
            out = aggregate(self, *args, **kwargs)
            _keep_reports(self)
            return out

        calculate_aggregate_metric._modality_conflict = True  # type: ignore[attr-defined]
        TaskOutput.calculate_aggregate_metric = calculate_aggregate_metric

    save = EvaluationTracker.save_results_aggregated
    if not getattr(save, "_modality_conflict", False):

        @functools.wraps(save)
        def save_results_aggregated(self: Any, results: dict, samples: dict, datetime_str: str) -> Any:
            out = save(self, results=results, samples=samples, datetime_str=datetime_str)
            _write_reports(self, results, datetime_str)
            return out

        save_results_aggregated._modality_conflict = True  # type: ignore[attr-defined]
        EvaluationTracker.save_results_aggregated = save_results_aggregated
