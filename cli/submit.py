"""``modality-conflict submit`` writes a leaderboard submission; ``modality-conflict verify`` checks one."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modality_conflict.analysis.formatting import number_text
from modality_conflict.analysis.results import TaskSummary, read_task_results
from modality_conflict.analysis.submission import build_submission, verify_file, write_submission
from modality_conflict.cli.arguments import add_subcommand


def headline(submission: Mapping[str, Any]) -> str:
    """One line: model, task, balance point with its interval, TFR, conflicts, estimator."""
    summary = TaskSummary(submission["metrics"])
    point = summary.balance_point
    interval = (
        f" [{number_text(point.ci_low, signed=True)}, {number_text(point.ci_high, signed=True)}]"
        if point.has_interval
        else ""
    )
    return (
        f"{submission['model']['id']} on {submission['task']['name']}: "
        f"balance point {point.text()}{interval}, "
        f"TFR {number_text(summary.get('tfr'))}, {summary.get('n_conflicts')} conflicts, "
        f"estimator {submission['estimator']}"
    )


def run_submit(args: argparse.Namespace) -> int:
    """``modality-conflict submit``: write a submission for the one task result under ``args.results``."""
    runs = read_task_results(
        [Path(args.results)], tasks=[args.task] if args.task else None, require_samples=True
    )
    if len(runs) > 1:
        found = ", ".join(f"{r.label} ({r.results_json})" for r in runs)
        raise ValueError(
            f"{args.results} holds {len(runs)} task results ({found}); pick one with --task or a folder"
        )
    submission = build_submission(
        runs[0],
        model_id=args.model_id,
        model_revision=args.model_revision,
        dataset_repo=args.dataset_repo,
        dataset_revision=args.dataset_revision,
        data_dir=Path(args.data) if args.data else None,
    )
    path = write_submission(submission, Path(args.out))
    print(f"wrote {path} ({len(submission['records'])} records)")
    print(headline(submission))
    model_id = str(submission["model"]["id"])
    if model_id.startswith(("/", ".", "~")) or Path(model_id).exists():
        print(
            f"warning: the model id {model_id!r} is a local path; pass --model-id with its Hub id",
            file=sys.stderr,
        )
    if submission["model"]["revision"] is None:
        print("warning: the model revision is unknown; pass --model-revision", file=sys.stderr)
    if submission["dataset"]["fingerprint"] is None:
        print(
            "note: no dataset fingerprint recorded; pass --data DIR so that `verify --data` can check it",
            file=sys.stderr,
        )
    return 0


def run_verify(args: argparse.Namespace) -> int:
    """``modality-conflict verify``: exit 0 when the submission checks out; a rejection raises."""
    result = verify_file(
        Path(args.submission),
        data=Path(args.data) if args.data else None,
        dataset_revision=args.dataset_revision,
        run=Path(args.run) if args.run else None,
        allow_partial=args.allow_partial,
    )
    print(f"verified: {headline(result.submission)}")
    for note in result.notes:
        print(note)
    print("ranked: yes" if result.ranked else f"ranked: NO ({result.unranked_reason})")
    return 0


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> None:
    """Register ``submit`` or ``verify``."""
    if name == "submit":
        summary = "write a leaderboard submission from an lmms-eval result folder"
        parser = add_subcommand(subparsers, name, run_submit, summary)
        parser.add_argument(
            "results", help="lmms-eval --output_path folder, a model folder, or a *_results.json"
        )
        parser.add_argument("--out", required=True, help="submission file to write (JSON)")
        parser.add_argument("--task", help="which task when the folder holds several")
        parser.add_argument("--model-id", help="model id (default: pretrained= of the run's --model_args)")
        parser.add_argument(
            "--model-revision", help="model commit (default: revision= of the run's --model_args)"
        )
        parser.add_argument("--data", help="the dataset folder the run used (records its fingerprint)")
        parser.add_argument(
            "--dataset-repo", help="Hub dataset id, for a run on a local copy of a published set"
        )
        parser.add_argument("--dataset-revision", help="Hub dataset revision, for a run on a local copy")
        return
    summary = "check a submission: schema, recomputed metrics, dataset"
    parser = add_subcommand(subparsers, name, run_verify, summary)
    parser.add_argument("submission", help="submission JSON file")
    parser.add_argument(
        "--data", help="dataset folder made by `modality-conflict build` to check the records against"
    )
    parser.add_argument("--dataset-revision", help="require this dataset revision")
    parser.add_argument(
        "--run",
        metavar="DIR",
        help="the lmms-eval output folder the submission was made from: compare with its files",
    )
    parser.add_argument(
        "--allow-partial",
        action="store_true",
        help="accept records that cover only part of the task's split (verified, but never ranked)",
    )
