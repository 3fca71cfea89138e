"""``modality-conflict leaderboard`` and ``eval-results``: publishing verified submissions."""

from __future__ import annotations

import argparse
from pathlib import Path

from modality_conflict.analysis.eval_results import write_eval_results
from modality_conflict.analysis.leaderboard import SORT_KEYS, build_leaderboard
from modality_conflict.cli.arguments import add_subcommand


def run_leaderboard(args: argparse.Namespace) -> int:
    """``modality-conflict leaderboard``: write and print the ranked tables."""
    md_path, html_path, markdown = build_leaderboard(
        Path(args.submissions),
        Path(args.out) if args.out else None,
        data=Path(args.data) if args.data else None,
        dataset_revision=args.dataset_revision,
        sort=args.sort,
        descending=args.descending,
    )
    print(markdown)
    print(f"wrote {md_path} and {html_path}")
    return 0


def run_eval_results(args: argparse.Namespace) -> int:
    """``modality-conflict eval-results``: write the Hub files for one verified submission."""
    eval_path, result_path, skipped = write_eval_results(
        Path(args.submission),
        Path(args.out),
        data=Path(args.data) if args.data else None,
        dataset_id=args.dataset_id,
        source_url=args.source_url,
        source_name=args.source_name,
        unverified=args.unverified,
    )
    if args.unverified:
        print("UNVERIFIED: the submission was not checked against the dataset; the files say so")
    print(f"dataset repo file: {eval_path}")
    print(f"model repo file:   {result_path}")
    for line in skipped:
        print(f"left out {line}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> None:
    """Register ``leaderboard`` or ``eval-results``."""
    if name == "leaderboard":
        summary = "ranked tables (Markdown, HTML) of verified submissions"
        parser = add_subcommand(subparsers, name, run_leaderboard, summary)
        parser.add_argument("submissions", help="folder of submission JSON files")
        parser.add_argument("--out", help="folder for leaderboard.md and .html (default: the submissions')")
        parser.add_argument("--data", help="dataset folder to check every submission against")
        parser.add_argument("--dataset-revision", help="list only submissions on this dataset revision")
        parser.add_argument("--sort", choices=SORT_KEYS, default="balance_point", help="ranking metric")
        parser.add_argument("--descending", action="store_true", help="largest value first")
        return
    summary = "Hub eval.yaml and .eval_results/*.yaml from a submission"
    parser = add_subcommand(subparsers, name, run_eval_results, summary)
    parser.add_argument("submission", help="submission JSON file (verified first)")
    parser.add_argument("--out", required=True, help="folder to write eval.yaml and .eval_results/ into")
    parser.add_argument(
        "--data", help="dataset folder to check the submission against (default: the pinned dataset)"
    )
    parser.add_argument(
        "--unverified",
        action="store_true",
        help="skip the dataset check; the files then say that the result is unverified",
    )
    parser.add_argument("--dataset-id", help="Hub dataset id (default: the submission's dataset.repo)")
    parser.add_argument("--source-url", help="link to the evaluation logs, shown on the Hub")
    parser.add_argument("--source-name", help="display name of the source link")
