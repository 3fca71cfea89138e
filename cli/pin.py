"""``modality-conflict pin-dataset``: pin the tasks to a published dataset commit."""

from __future__ import annotations

from typing import Any

from modality_conflict.cli.arguments import add_subcommand
from modality_conflict.dataset_builder.canonical import write_pin


def run_pin(args: Any) -> int:
    """Pin the tasks of ``--dataset`` to the given Hub commit (``dataset_builder/pins.json`` only)."""
    paths = write_pin(
        repo_id=args.repo_id, revision=args.revision, fingerprint=args.fingerprint, kind=args.dataset
    )
    for path in paths:
        print(path)
    return 0


def add_parser(subparsers: Any, name: str) -> None:
    summary = "pin the tasks to a published dataset commit (run in a source checkout after push)"
    parser = add_subcommand(subparsers, name, run_pin, summary)
    parser.add_argument("repo_id", metavar="USER/NAME")
    parser.add_argument("revision", metavar="SHA", help="the commit sha printed by `modality-conflict push`")
    parser.add_argument(
        "--fingerprint",
        metavar="SHA256",
        help="the published build's content fingerprint, when it changed (`push --update-pin` sets both)",
    )
    parser.add_argument(
        "--dataset",
        choices=("color", "attribute"),
        default="color",
        help="whose pin in dataset_builder/pins.json changes (default: color)",
    )
