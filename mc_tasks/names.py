"""Names the task folder's YAMLs and the code share: the tasks, and the metrics every task reports.

The YAMLs must say the same (``tests/mc_tasks/test_names.py`` checks the ``metric_list`` and the group
against these definitions); everything else derives its lists from here.
"""

from __future__ import annotations

from dataclasses import dataclass

GROUP = "modality_conflict"
"""The lmms-eval group that runs every main task."""

MAIN_TASK = "modality_conflict_color"
"""The colour-recognition task on the whole dataset."""

ATTRIBUTE_TASK = "modality_conflict_attribute"
"""The attribute-recognition task (shape and material questions) on the whole dataset."""

GROUP_TASKS: dict[str, tuple[str, ...]] = {GROUP: (MAIN_TASK, ATTRIBUTE_TASK)}
"""The tasks each group runs."""

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

MAIN_TASKS: tuple[str, ...] = (MAIN_TASK, ATTRIBUTE_TASK)
"""The task on the whole of each dataset, one per dataset."""

SUMMARY_METRIC = "report"
"""The metric whose value is the task's whole summary (a flat dict); in sample logs, the per-doc record."""


@dataclass(frozen=True)
class TaskMetric:
    """One entry of the tasks' ``metric_list``.

    Attributes
    ----------
    name
        The metric (and the key of the summary it is read from).
    higher_is_better
        As the YAML declares it.
    required
        ``modality-conflict eval`` fails when a run lacks it.
    headline
        Shown first when submissions are compared and verified.
    """

    name: str
    higher_is_better: bool
    required: bool = False
    headline: bool = False


TASK_METRICS: tuple[TaskMetric, ...] = (
    TaskMetric("tfr", True, required=True, headline=True),
    TaskMetric("vfr", True, required=True, headline=True),
    TaskMetric("other_rate", False, required=True, headline=True),
    TaskMetric("tfr_correct", True),
    TaskMetric("mean_hv", False, headline=True),
    TaskMetric("mean_ht", False, headline=True),
    TaskMetric("mean_dh", True, required=True, headline=True),
    TaskMetric("balance_point", True, required=True, headline=True),
    TaskMetric("balance_point_ci_low", True, headline=True),
    TaskMetric("balance_point_ci_high", True, headline=True),
    TaskMetric("n_conflicts", True, required=True, headline=True),
    TaskMetric("entropy_estimator", True, required=True, headline=True),
    TaskMetric(SUMMARY_METRIC, True),
)

METRIC_NAMES: tuple[str, ...] = tuple(metric.name for metric in TASK_METRICS)
"""Every metric, in the YAMLs' order."""

REQUIRED_METRICS: tuple[str, ...] = tuple(metric.name for metric in TASK_METRICS if metric.required)
"""Metrics a run must report for ``modality-conflict eval`` to succeed."""

HEADLINE_METRICS: tuple[str, ...] = tuple(
    sorted(
        (metric.name for metric in TASK_METRICS if metric.headline),
        key=lambda name: not name.startswith("balance_point"),  # the balance point first, order kept
    )
)
"""Metrics listed first in submissions' comparisons, balance point first."""
