"""Checking an lmms-eval run: lmms-eval 0.7.3 exits 0 even when the evaluation raised, so success is judged
by the files it leaves (every task asked for, with its metrics and report), which are then summarised."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modality_conflict.analysis.formatting import number_text
from modality_conflict.analysis.results import ResultsFile, TaskResult, newest_results_file, read_task_results
from modality_conflict.dataset_builder.canonical import USED_KEY as DATASET_USED_KEY
from modality_conflict.mc_tasks.names import GROUP_TASKS, REQUIRED_METRICS

ACCURACY_ROWS = (("vision-only", "vision_accuracy_by_tier"), ("text-only", "text_accuracy_by_tier"))


class EvaluationFailedError(RuntimeError):
    """lmms-eval ran but left no usable results."""


@dataclass(frozen=True)
class RunOutputs:
    """Files one lmms-eval run wrote, and its task results as the results view reads them."""

    results_json: Path
    samples: dict[str, Path]
    results: dict[str, Any]
    report_json: Path | None = None
    runs: tuple[TaskResult, ...] = ()

    @property
    def warnings(self) -> list[str]:
        """Every task result's warnings (see :attr:`TaskResult.warnings`)."""
        return [warning for run in self.runs for warning in run.warnings]


def find_run_outputs(output_dir: Path, tasks: list[str], *, since: float = 0.0) -> RunOutputs:
    """Locate and check the newest results JSON under ``output_dir`` written after ``since``: an
    :class:`EvaluationFailedError` when a task, a required metric or a report is missing or undefined."""
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
        if summary is None:
            raise EvaluationFailedError(
                f"{results_json}: no report of task {task!r} in {results.report_path.name} (was the run "
                "made with this package installed?)"
            )
        if summary.get("status") == "undefined":
            raise EvaluationFailedError(f"task {task!r}: {summary.reason}")
        log = results.samples_path(task)
        if log is not None:
            samples[task] = log
    runs = tuple(read_task_results([results_json], tasks=expected))
    report = results.report_path if results.reports else None
    return RunOutputs(results_json, samples, results.data, report_json=report, runs=runs)


def dataset_lines(results: ResultsFile | dict[str, Any]) -> list[str]:
    """One line per task saying which data it read (the ``dataset_used`` record of its config)."""
    if not isinstance(results, ResultsFile):
        results = ResultsFile(Path("results.json"), results)
    lines = []
    for task in results.task_names:
        used = results.task_config(task).get("metadata")
        used = used.get(DATASET_USED_KEY) if isinstance(used, dict) else None
        if not isinstance(used, dict):
            continue
        kind = "the pinned dataset" if used.get("canonical") else "NOT the pinned dataset"
        origin = f", Hub commit {used['revision']}" if used.get("revision") else ""
        lines.append(
            f"data ({task}): {used.get('source')} - {kind}, fingerprint {used.get('fingerprint')}"
            f"{origin}, {used.get('path')}"
        )
    return lines


def top_k_line(summary: Any) -> str:
    """How far truncated logprobs could move a ``top_k`` run: the uncovered mass and the balance point with
    every entropy at its lower and at its upper bound."""

    def at(side: str) -> str:
        value = summary.number(f"balance_point_at_entropy_{side}")
        status = summary.get(f"balance_point_status_at_entropy_{side}")
        return f"{value:+.3f}" if value is not None else str(status or "n/a")

    return (
        f"top-k logprobs: uncovered mass mean {number_text(summary.get('uncovered_mass_mean'))}, max "
        f"{number_text(summary.get('uncovered_mass_max'))}; balance point at the entropies' lower bounds "
        f"{at('lower')}, at their upper bounds {at('upper')}"
    )


def format_summary(results: ResultsFile | dict[str, Any] | RunOutputs) -> str:
    """A short plain-text table of the headline metrics of every modality_conflict task, with warnings."""
    warnings: list[str] = []
    if isinstance(results, RunOutputs):
        warnings = results.warnings
        results = ResultsFile.read(results.results_json)
    elif not isinstance(results, ResultsFile):
        results = ResultsFile(Path("results.json"), results)

    def cell(value: Any, width: int = 7) -> str:
        text = number_text(value)
        return f"{text:>{width}}"

    lines = [
        f"{'task':32} {'TFR':>7} {'VFR':>7} {'other':>7} {'mean dH':>8} {'balance [95% CI]':>26} {'n':>5}"
    ]

    def row(name: str, summary: Any) -> str:
        point = summary.balance_point
        balance_text = point.text()
        if point.defined and point.has_interval:
            balance_text += f" [{point.ci_low:+.3f}, {point.ci_high:+.3f}]"
        return (
            f"{name:32} {cell(summary.get('tfr'))} {cell(summary.get('vfr'))} "
            f"{cell(summary.get('other_rate'))} {cell(summary.get('mean_dh'), 8)} {balance_text:>26} "
            f"{summary.get('n_conflicts', 0):>5}"
        )

    for task, summary in results.summaries():
        point = summary.balance_point
        lines.append(row(task, summary))
        # A task over several attributes (shape, material) shows each one under the pooled row.
        for attribute, part in summary.by_attribute.items():
            lines.append(row(f"  {attribute}", part))
        lines.append(
            f"{'':32} entropy estimator: {summary.entropy_estimator}; "
            f"interval: {point.ci_method}; status: {summary.get('balance_point_status')}"
        )
        if summary.get("balance_point_reason"):
            lines.append(f"{'':32} balance point: {summary.get('balance_point_reason')}")
        if summary.entropy_estimator == "top_k":
            lines.append(f"{'':32} {top_k_line(summary)}")
        for warning in summary.get("warnings") or ():
            lines.append(f"{'':32} warning: {warning}")
        if summary.n_incomplete_conflicts:
            total = summary.get("n_conflict_rows")
            lines.append(
                f"{'':32} incomplete conflicts: {summary.n_incomplete_conflicts}"
                + (f" of {total} conflict rows" if total is not None else " conflict rows")
                + " left out (a unimodal row is missing)"
            )
        for label, key in ACCURACY_ROWS:
            by_tier = summary.accuracy_by_tier(key)
            if by_tier:
                cells = " ".join(
                    f"{tier}:{'n/a' if value is None else format(value, '.2f')}"
                    for tier, value in by_tier.items()
                )
                lines.append(f"{'':32} {label} accuracy by tier: {cells}")
    lines.extend(f"warning: {warning}" for warning in warnings)
    return "\n".join(lines)
