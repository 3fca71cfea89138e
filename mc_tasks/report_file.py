"""The report file: every modality_conflict task's whole summary, beside lmms-eval's results file.

The task's metrics are its headline numbers only (lmms-eval prints them in one table); the whole summary
goes to ``<date_id>_modality_conflict.json``. The hooks (installed by
:mod:`~modality_conflict.mc_tasks.lmms_eval_patches`) keep the summary the task's aggregations just computed
(rank 0, after every rank's records were gathered) and write the file atomically beside the results file.
Without it, :mod:`modality_conflict.analysis.results` recomputes the summary from the sample log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modality_conflict.dataset_builder.atomic import ensure_folder, write_text_atomic
from modality_conflict.dataset_builder.errors import OutputWriteError
from modality_conflict.mc_tasks.names import METRIC_NAMES, REPORT_FILE_SUFFIX

logger = logging.getLogger("modality_conflict")

REPORT_FORMAT = "modality-conflict-report"
REPORT_VERSION = 1

# task name -> summary, filled on the process that aggregates (rank 0) and written with the results.
_REPORTS: dict[str, dict[str, Any]] = {}


def write_report_file(
    path: Path, reports: Mapping[str, Mapping[str, Any]], *, results_name: str | None = None
) -> Path:
    """Write ``{task: summary}`` as the report file ``path``, whole or not at all."""
    path = Path(path)
    payload = {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "results": results_name,
        "reports": {task: dict(report) for task, report in sorted(reports.items())},
    }
    text = json.dumps(payload, indent=1, sort_keys=True, allow_nan=False, ensure_ascii=False) + "\n"
    ensure_folder(path.parent)
    return write_text_atomic(path, text)


def _is_task_aggregation(function: Any) -> bool:
    return getattr(function, "modality_conflict_metric", None) in METRIC_NAMES


def keep_reports(task_output: Any) -> None:
    """After lmms-eval aggregated one task: keep its summary when the task is one of ours."""
    from modality_conflict.mc_tasks.records import cached_summary

    task = getattr(task_output, "task", None)
    aggregations = task.aggregation() if task is not None and hasattr(task, "aggregation") else {}
    for (metric, _filter), items in getattr(task_output, "sample_metrics", {}).items():
        if metric == METRIC_NAMES[0] and _is_task_aggregation(aggregations.get(metric)):
            _REPORTS[str(task_output.task_name)] = cached_summary(items)
            return


def write_reports(tracker: Any, results: Mapping[str, Any], datetime_str: str) -> Path | None:
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
    except (OutputWriteError, OSError, TypeError, ValueError) as error:
        logger.warning("modality_conflict: could not write the report file %s: %s", path, error)
        return None
