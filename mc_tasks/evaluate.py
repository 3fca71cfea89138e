"""Checking an lmms-eval run: fail loudly when it did not produce results, and summarise what it did.

lmms-eval 0.7.3 exits 0 even when the evaluation raised, so success is judged by the files it leaves: a
results JSON holding every task asked for with its metrics, and (for submissions) per-sample logs. The
``eval`` command (:mod:`modality_conflict.mc_tasks.commands.evaluate`) runs lmms-eval and then this check.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modality_conflict.mc_tasks.formatting import number_text
from modality_conflict.mc_tasks.names import GROUP_TASKS, REQUIRED_METRICS
from modality_conflict.mc_tasks.results import ResultsFile, newest_results_file

ACCURACY_ROWS = (("vision-only", "vision_accuracy_by_tier"), ("text-only", "text_accuracy_by_tier"))


class EvaluationFailedError(RuntimeError):
    """lmms-eval ran but left no usable results."""


@dataclass(frozen=True)
class RunOutputs:
    """Files one lmms-eval run wrote."""

    results_json: Path
    samples: dict[str, Path]
    results: dict[str, Any]


def find_run_outputs(output_dir: Path, tasks: list[str], *, since: float = 0.0) -> RunOutputs:
    """Locate and check the newest results JSON under ``output_dir`` written after ``since``.

    Raises
    ------
    EvaluationFailedError
        When no results file exists, a task is missing, a required metric is absent, or a task's report
        says it could not be computed.
    """
    results_json = newest_results_file(Path(output_dir), since=since)
    if results_json is None:
        raise EvaluationFailedError(f"lmms-eval wrote no *_results.json under {output_dir}")
    results = ResultsFile.read(results_json)
    expected = [t for name in tasks for t in GROUP_TASKS.get(name, (name,))]
    samples: dict[str, Path] = {}
    for task in expected:
        if task not in results.task_names:
            raise EvaluationFailedError(f"{results_json} has no results for task {task!r}")
        metrics = results.metrics(task)
        missing = [m for m in REQUIRED_METRICS if m not in metrics]
        if missing:
            raise EvaluationFailedError(f"{results_json}: task {task!r} lacks metrics {missing}")
        summary = results.summary(task)
        if summary is not None and summary.get("status") == "undefined":
            raise EvaluationFailedError(f"task {task!r}: {summary.reason}")
        log = results.samples_path(task)
        if log is not None:
            samples[task] = log
    return RunOutputs(results_json=results_json, samples=samples, results=results.data)


def format_summary(results: ResultsFile | dict[str, Any]) -> str:
    """A short plain-text table of the headline metrics of every modality_conflict task."""
    if not isinstance(results, ResultsFile):
        results = ResultsFile(Path("results.json"), results)

    def cell(value: Any, width: int = 7) -> str:
        text = number_text(value)
        return f"{text:>{width}}"

    lines = [
        f"{'task':32} {'TFR':>7} {'VFR':>7} {'other':>7} {'mean dH':>8} {'balance [95% CI]':>26} {'n':>5}"
    ]
    for task, summary in results.summaries():
        point = summary.balance_point
        if point.defined and point.has_interval:
            balance_text = f"{point.estimate:+.3f} [{point.ci_low:+.3f}, {point.ci_high:+.3f}]"
        else:
            balance_text = str(summary.get("balance_point_status", "undefined"))
        lines.append(
            f"{task:32} {cell(summary.get('tfr'))} {cell(summary.get('vfr'))} "
            f"{cell(summary.get('other_rate'))} {cell(summary.get('mean_dh'), 8)} {balance_text:>26} "
            f"{summary.get('n_conflicts', 0):>5}"
        )
        lines.append(
            f"{'':32} entropy estimator: {summary.entropy_estimator}; "
            f"interval: {point.ci_method}; status: {summary.get('balance_point_status')}"
        )
        if summary.get("balance_point_reason"):
            lines.append(f"{'':32} balance point: {summary.get('balance_point_reason')}")
        for warning in summary.get("warnings") or ():
            lines.append(f"{'':32} warning: {warning}")
        for label, key in ACCURACY_ROWS:
            by_tier = summary.accuracy_by_tier(key)
            if by_tier:
                cells = " ".join(
                    f"{tier}:{'n/a' if value is None else format(value, '.2f')}"
                    for tier, value in by_tier.items()
                )
                lines.append(f"{'':32} {label} accuracy by tier: {cells}")
    return "\n".join(lines)
