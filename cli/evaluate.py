"""``modality-conflict eval``: run lmms-eval and check its output; ``tasks``: write a local task folder."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

from modality_conflict.analysis.evaluate import (
    EvaluationFailedError,
    dataset_lines,
    find_run_outputs,
    format_summary,
)
from modality_conflict.cli.arguments import add_subcommand
from modality_conflict.dataset_builder.atomic import ensure_folder
from modality_conflict.dataset_builder.folder import DatasetFolderError
from modality_conflict.dataset_builder.resolve import DATA_ENV, DataResolutionError, verify_folder
from modality_conflict.mc_tasks.names import GROUP
from modality_conflict.mc_tasks.plugin import data_folders
from modality_conflict.mc_tasks.task_config import write_local_task_dir


def lmms_eval_command(args: argparse.Namespace) -> list[str]:
    command = [sys.executable, "-m", "lmms_eval", "--model", args.model, "--tasks", args.tasks]
    if args.model_args:
        command += ["--model_args", args.model_args]
    command += ["--batch_size", str(args.batch_size), "--output_path", str(args.output), "--log_samples"]
    command += ["--seed", str(args.seed)]
    if args.limit is not None:
        command += ["--limit", str(args.limit)]
    return command


def run_eval(args: argparse.Namespace) -> int:
    output = ensure_folder(Path(args.output))
    env = dict(os.environ)
    if args.data:
        # Checked here too, so a bad folder is one line (bad input: exit 2) before lmms-eval starts a model.
        data = Path(args.data).expanduser().resolve()
        try:
            for folder in data_folders(data).values() or [data]:
                verify_folder(folder)
        except DataResolutionError as error:
            raise DatasetFolderError(str(error)) from None
        env[DATA_ENV] = str(data)
    started = time.time()
    command = lmms_eval_command(args)
    print("running:", " ".join(command), flush=True)
    completed = subprocess.run(command, env=env, check=False)
    if completed.returncode != 0:
        raise EvaluationFailedError(f"lmms-eval exited with status {completed.returncode}")
    outputs = find_run_outputs(output, args.tasks.split(","), since=started - 1)
    print(f"results: {outputs.results_json}")
    if outputs.report_json is not None:
        print(f"full report: {outputs.report_json}")
    for task, path in outputs.samples.items():
        print(f"samples ({task}): {path}")
    for line in dataset_lines(outputs.results):
        print(line)
    print(format_summary(outputs))
    for warning in outputs.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return 0


def run_tasks(args: argparse.Namespace) -> int:
    out = write_local_task_dir(Path(args.data), Path(args.out))
    print(out)
    return 0


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> None:
    if name == "tasks":
        summary = "write a copy of the task folder that reads a local dataset folder (for --include_path)"
        parser = add_subcommand(subparsers, name, run_tasks, summary)
        parser.add_argument("--data", required=True, help="folder made by `modality-conflict build`")
        parser.add_argument("--out", required=True, help="where to write the task folder")
        return
    summary = "run lmms-eval on the modality_conflict tasks and check its output"
    parser = add_subcommand(subparsers, name, run_eval, summary)
    parser.add_argument("--model", default="modality_conflict_hf", help="lmms-eval model name")
    parser.add_argument("--model-args", default="", help="lmms-eval --model_args string")
    parser.add_argument("--tasks", default=GROUP, help="comma-separated task or group names")
    parser.add_argument(
        "--data",
        help="a folder made by `modality-conflict build` (default: the pinned dataset, from the cache, "
        "the Hub or built once into the cache)",
    )
    parser.add_argument("--output", required=True, help="output folder for results and per-sample logs")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--limit", type=int, help="only the first N docs per task (testing only)")
    parser.add_argument("--seed", default="0,1234,1234,1234")
