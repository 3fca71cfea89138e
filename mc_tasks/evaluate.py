"""``modality-conflict eval``: run lmms-eval on the tasks and fail loudly when it did not produce results.

lmms-eval 0.7.3 exits 0 even when the evaluation raised, so success is judged by the files it leaves: a
results JSON holding every task asked for with its metrics, and (for submissions) per-sample logs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modality_conflict.mc_tasks.plugin import DATA_ENV
from modality_conflict.mc_tasks.task_config import write_local_task_dir

REQUIRED_METRICS = (
    "tfr",
    "vfr",
    "other_rate",
    "mean_dh",
    "balance_point",
    "n_conflicts",
    "entropy_estimator",
)
ACCURACY_ROWS = (("vision-only", "vision_accuracy_by_tier"), ("text-only", "text_accuracy_by_tier"))
GROUP_TASKS = {"modality_conflict": ("modality_conflict_color",)}


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
    candidates = [p for p in Path(output_dir).rglob("*_results.json") if p.stat().st_mtime >= since]
    if not candidates:
        raise EvaluationFailedError(f"lmms-eval wrote no *_results.json under {output_dir}")
    results_json = max(candidates, key=lambda p: p.stat().st_mtime)
    results = json.loads(results_json.read_text())
    per_task = results.get("results", {})
    expected = [t for name in tasks for t in GROUP_TASKS.get(name, (name,))]
    samples: dict[str, Path] = {}
    for task in expected:
        if task not in per_task:
            raise EvaluationFailedError(f"{results_json} has no results for task {task!r}")
        metrics = {key.split(",")[0]: value for key, value in per_task[task].items()}
        missing = [m for m in REQUIRED_METRICS if m not in metrics]
        if missing:
            raise EvaluationFailedError(f"{results_json}: task {task!r} lacks metrics {missing}")
        report = metrics.get("report")
        if isinstance(report, dict) and report.get("status") == "undefined":
            raise EvaluationFailedError(f"task {task!r}: {report.get('reason')}")
        stem = results_json.name[: -len("_results.json")]
        logs = sorted(results_json.parent.glob(f"{stem}_samples_{task}.jsonl"))
        if logs:
            samples[task] = logs[0]
    return RunOutputs(results_json=results_json, samples=samples, results=results)


def lmms_eval_command(args: argparse.Namespace, include_path: Path | None) -> list[str]:
    command = [sys.executable, "-m", "lmms_eval", "--model", args.model, "--tasks", args.tasks]
    if args.model_args:
        command += ["--model_args", args.model_args]
    command += ["--batch_size", str(args.batch_size), "--output_path", str(args.output), "--log_samples"]
    command += ["--seed", str(args.seed)]
    if include_path is not None:
        command += ["--include_path", str(include_path)]
    if args.limit is not None:
        command += ["--limit", str(args.limit)]
    return command


def run_eval(args: argparse.Namespace) -> int:
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    include_path = None
    env = dict(os.environ)
    if args.data:
        include_path = write_local_task_dir(Path(args.data), output / "tasks" / "modality_conflict")
        env.pop(DATA_ENV, None)
    started = time.time()
    command = lmms_eval_command(args, include_path)
    print("running:", " ".join(command), flush=True)
    completed = subprocess.run(command, env=env, check=False)
    if completed.returncode != 0:
        raise EvaluationFailedError(f"lmms-eval exited with status {completed.returncode}")
    outputs = find_run_outputs(output, args.tasks.split(","), since=started - 1)
    print(f"results: {outputs.results_json}")
    for task, path in outputs.samples.items():
        print(f"samples ({task}): {path}")
    print(format_summary(outputs.results))
    return 0


def format_summary(results: dict[str, Any]) -> str:
    """A short plain-text table of the headline metrics of every modality_conflict task."""
    lines = [
        f"{'task':32} {'TFR':>7} {'VFR':>7} {'other':>7} {'mean dH':>8} {'balance [95% CI]':>26} {'n':>5}"
    ]
    for task, metrics in sorted(results.get("results", {}).items()):
        report = metrics.get("report,none")
        if not isinstance(report, dict):
            continue

        def fmt(value: Any, width: int = 7) -> str:
            return f"{value:{width}.3f}" if isinstance(value, (int, float)) else f"{'n/a':>{width}}"

        balance = report.get("balance_point")
        low, high = report.get("balance_point_ci_low"), report.get("balance_point_ci_high")
        if (
            isinstance(balance, (int, float))
            and isinstance(low, (int, float))
            and isinstance(high, (int, float))
        ):
            balance_text = f"{balance:+.3f} [{low:+.3f}, {high:+.3f}]"
        else:
            balance_text = str(report.get("balance_point_status", "undefined"))
        lines.append(
            f"{task:32} {fmt(report.get('tfr'))} {fmt(report.get('vfr'))} {fmt(report.get('other_rate'))} "
            f"{fmt(report.get('mean_dh'), 8)} {balance_text:>26} {report.get('n_conflicts', 0):>5}"
        )
        lines.append(
            f"{'':32} entropy estimator: {report.get('entropy_estimator')}; "
            f"interval: {report.get('balance_point_ci_method')}; status: {report.get('balance_point_status')}"
        )
        if report.get("balance_point_reason"):
            lines.append(f"{'':32} balance point: {report['balance_point_reason']}")
        for label, key in ACCURACY_ROWS:
            by_tier = report.get(key)
            if isinstance(by_tier, dict) and by_tier:
                cells = " ".join(
                    f"{tier}:{'n/a' if value is None else format(value, '.2f')}"
                    for tier, value in by_tier.items()
                )
                lines.append(f"{'':32} {label} accuracy by tier: {cells}")
    return "\n".join(lines)


def run_tasks(args: argparse.Namespace) -> int:
    out = write_local_task_dir(Path(args.data), Path(args.out))
    print(out)
    return 0


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> None:
    if name == "tasks":
        parser = subparsers.add_parser(
            "tasks",
            help="write a copy of the task folder that reads a local dataset folder (for --include_path)",
        )
        parser.add_argument("--data", required=True, help="folder made by `modality-conflict build`")
        parser.add_argument("--out", required=True, help="where to write the task folder")
        parser.set_defaults(func=run_tasks)
        return
    parser = subparsers.add_parser(
        "eval", help="run lmms-eval on the modality_conflict tasks and check its output"
    )
    parser.add_argument("--model", default="modality_conflict_hf", help="lmms-eval model name")
    parser.add_argument("--model-args", default="", help="lmms-eval --model_args string")
    parser.add_argument("--tasks", default="modality_conflict", help="comma-separated task or group names")
    parser.add_argument("--data", help="local dataset folder instead of the pinned Hub revision")
    parser.add_argument("--output", required=True, help="output folder for results and per-sample logs")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--limit", type=int, help="only the first N docs per task (testing only)")
    parser.add_argument("--seed", default="0,1234,1234,1234")
    parser.set_defaults(func=run_eval)
