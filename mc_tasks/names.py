"""Names the task folder's YAMLs and the code share: the tasks, and the metrics every task reports.

The YAMLs say the same (``tests/mc_tasks/test_names.py`` checks it); everything else derives its lists from
here. The metrics are the headline numbers of lmms-eval's one printed table; a task's whole summary goes to
``<date_id>`` + :data:`REPORT_FILE_SUFFIX` (:mod:`modality_conflict.mc_tasks.report_file`).
"""

from __future__ import annotations

from dataclasses import dataclass

GROUP = "modality_conflict"  # the lmms-eval group that runs every main task
MAIN_TASK = "modality_conflict_color"  # colour questions on the whole colour set
ATTRIBUTE_TASK = "modality_conflict_attribute"  # shape and material questions on the whole attribute set
GROUP_TASKS: dict[str, tuple[str, ...]] = {GROUP: (MAIN_TASK, ATTRIBUTE_TASK)}

TASK_DATASETS: dict[str, str] = {
    MAIN_TASK: "modality-conflict-colour",
    "modality_conflict_color_quick": "modality-conflict-colour",
    "modality_conflict_controls": "modality-conflict-colour",
    "modality_conflict_loglik": "modality-conflict-colour",
    "modality_conflict_sampled": "modality-conflict-colour",
    ATTRIBUTE_TASK: "modality-conflict-attribute",
    "modality_conflict_attribute_quick": "modality-conflict-attribute",
    "modality_conflict_attribute_controls": "modality-conflict-attribute",
    "modality_conflict_attribute_loglik": "modality-conflict-attribute",
    "modality_conflict_attribute_sampled": "modality-conflict-attribute",
}
"""The dataset (its manifest name) each task reads; the YAMLs say the same in ``metadata.dataset``."""

MAIN_TASKS: tuple[str, ...] = (MAIN_TASK, ATTRIBUTE_TASK)  # the task on the whole of each dataset

LEGACY_SUMMARY_METRIC = "report"
"""The metric that held the whole summary in results (and the record in sample logs) of earlier versions."""

REPORT_FILE_SUFFIX = "_modality_conflict.json"
"""The file beside ``<date_id>_results.json`` that holds every modality_conflict task's whole summary."""


@dataclass(frozen=True)
class TaskMetric:
    """One entry of the tasks' ``metric_list``."""

    name: str  # also the summary key it is read from
    higher_is_better: bool  # as the YAML declares it
    required: bool = False  # `modality-conflict eval` fails when a run lacks it


TASK_METRICS: tuple[TaskMetric, ...] = (
    TaskMetric("tfr", True, required=True),
    TaskMetric("vfr", True, required=True),
    TaskMetric("other_rate", False, required=True),
    TaskMetric("balance_point", True, required=True),
    TaskMetric("balance_point_ci_low", True),
    TaskMetric("balance_point_ci_high", True),
    TaskMetric("mean_dh", True, required=True),
    TaskMetric("n_conflicts", True, required=True),
)

METRIC_NAMES: tuple[str, ...] = tuple(metric.name for metric in TASK_METRICS)  # in the YAMLs' order

RECORD_KEY = METRIC_NAMES[0]
"""A sample log's key of the per-doc record (``process_results`` puts the record under every metric)."""

REQUIRED_METRICS: tuple[str, ...] = tuple(metric.name for metric in TASK_METRICS if metric.required)
"""Metrics a run must report for ``modality-conflict eval`` to succeed."""

HEADLINE_METRICS: tuple[str, ...] = tuple(
    sorted(
        (*METRIC_NAMES, "mean_hv", "mean_ht", "entropy_estimator"), key=lambda n: not n.startswith("balance_")
    )
)
"""Summary keys listed first in submissions' comparisons: the balance point's, then the others in order."""

RANKED_METRICS: tuple[str, ...] = ("balance_point", "tfr", "mean_hv", "mean_ht")
"""Summary keys a leaderboard sorts by and the Hub's eval results publish (one Hub task each)."""
