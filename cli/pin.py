"""``modality-conflict pin-dataset``: pin the tasks to a published dataset commit."""

from __future__ import annotations

from typing import Any

from modality_conflict.mc_tasks.task_config import pin_dataset


def run_pin(args: Any) -> int:
    for path in pin_dataset(args.repo_id, args.revision, fingerprint=args.fingerprint, kind=args.dataset):
        print(path)
    return 0


def add_parser(subparsers: Any, name: str) -> None:
    parser = subparsers.add_parser(
        name, help="pin the tasks to a published dataset commit (run in a source checkout after push)"
    )
    parser.add_argument("repo_id", metavar="USER/NAME")
    parser.add_argument("revision", metavar="SHA", help="the commit sha printed by `modality-conflict push`")
    parser.add_argument(
        "--fingerprint",
        default=None,
        metavar="SHA256",
        help="the published build's content fingerprint, when it changed (`push --update-pin` sets both)",
    )
    parser.add_argument(
        "--dataset",
        choices=("color", "attribute"),
        default="color",
        help="whose pin in dataset_builder/pins.json changes (default: color)",
    )
    parser.set_defaults(func=run_pin)
