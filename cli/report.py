"""``modality-conflict report``: plots and an HTML page from lmms-eval result folders."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from modality_conflict.analysis.html_report import write_report
from modality_conflict.analysis.results import read_task_results
from modality_conflict.cli.arguments import add_subcommand


def run_report(args: argparse.Namespace) -> int:
    """``modality-conflict report``: write the plots and the page, print each run's preference."""
    runs = read_task_results([Path(p) for p in args.results], tasks=args.task or None)
    page = write_report(runs, Path(args.out))
    for run in runs:
        print(f"{run.label} ({run.task}): {run.summary.inherent_preference().text}")
        for warning in run.warnings:
            print(f"warning: {run.label}: {warning}", file=sys.stderr)
    print(f"report: {page}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> None:
    """Register the ``report`` subcommand."""
    parser = add_subcommand(
        subparsers, name, run_report, "plots and an HTML page from lmms-eval result folders"
    )
    parser.add_argument(
        "results", nargs="+", help="lmms-eval --output_path folders, model folders or results files"
    )
    parser.add_argument("--out", default="report", help="output folder (default: report)")
    parser.add_argument("--task", action="append", help="only this task (repeatable)")
