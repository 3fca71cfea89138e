"""Subcommands ``build``, ``validate`` and ``push`` of the ``modality-conflict`` command."""

from __future__ import annotations

import argparse
import sys

from modality_conflict.cli.arguments import add_subcommand, positive_int, seed
from modality_conflict.dataset_builder.specs import DATASETS, DEFAULT_DATASET

COMMAND_NAMES = ("build", "validate", "push")


def run_build(args: argparse.Namespace) -> int:
    """Build the dataset folder (``modality-conflict build``)."""
    from modality_conflict.dataset_builder.builder import build_dataset, resolve_groups

    groups = resolve_groups(args.preset, args.groups, dataset=args.dataset)
    result = build_dataset(
        args.out,
        dataset=args.dataset,
        groups=groups,
        seed=args.seed,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=not args.quiet and sys.stderr.isatty(),
    )
    if result.reused:
        print(
            f"{result.out}: already built ({args.dataset}, groups={groups}, seed={args.seed}); "
            "hashes verified, nothing to do"
        )
        return 0
    rate = result.num_rendered / result.seconds if result.seconds > 0 else float("nan")
    print(
        f"built {result.out}: {args.dataset} set, {result.num_rows} rows "
        f"({groups} groups, seed {args.seed}), "
        f"{result.num_rendered} images drawn in {result.seconds:.1f} s ({rate:.0f} images/s)"
    )
    return 0


def run_validate(args: argparse.Namespace) -> int:
    """Validate a dataset folder (``modality-conflict validate``)."""
    from modality_conflict.dataset_builder.validate import validate_dataset

    report = validate_dataset(args.folder, check_images=not args.skip_images, max_problems=args.max_problems)
    print(report.summary())
    return 0


def run_push(args: argparse.Namespace) -> int:
    """Upload a dataset folder to the Hub in one commit (``modality-conflict push``)."""
    from modality_conflict.dataset_builder.push import push_dataset

    result = push_dataset(
        args.folder, args.repo_id, revision=args.revision, private=args.private, update_pin=args.update_pin
    )
    for path in result.pinned:
        print(
            f"pinned {result.repo_id}@{result.commit_sha} (fingerprint {result.fingerprint}) in {path}",
            file=sys.stderr,
        )
    if result.deleted:
        print(f"removed stale files: {', '.join(result.deleted)}", file=sys.stderr)
    print(
        f"pushed {len(result.files)} files to {result.repo_id}@{result.revision}: {result.commit_url}",
        file=sys.stderr,
    )
    # stdout carries the sha alone, so scripts can pin it: REV=$(modality-conflict push ...)
    print(result.commit_sha)
    return 0


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    """Register the subcommand ``name`` (one of :data:`COMMAND_NAMES`) and return its subparser."""
    if name == "build":
        parser = add_subcommand(
            subparsers,
            name,
            run_build,
            "build a conflict dataset folder (Hub layout): the colour or the attribute set",
            "Render a conflict set into DIR: data/*.parquet, README.md, manifest.json. "
            "The same seed gives byte-identical files; an identical verified build in DIR is left as is.",
        )
        parser.add_argument("--out", required=True, metavar="DIR", help="output folder")
        parser.add_argument(
            "--dataset",
            choices=sorted(DATASETS),
            default=DEFAULT_DATASET,
            help="which set: "
            + "; ".join(f"{k} ({spec.name})" for k, spec in DATASETS.items())
            + f" (default {DEFAULT_DATASET})",
        )
        presets = sorted({name for spec in DATASETS.values() for name in spec.presets})
        parser.add_argument(
            "--preset",
            choices=presets,
            help="named size: "
            + "; ".join(
                f"{k}: " + ", ".join(f"{n} = {v} groups" for n, v in spec.presets.items())
                for k, spec in DATASETS.items()
            )
            + " (default paper)",
        )
        parser.add_argument(
            "--groups", type=positive_int, metavar="N", help="number of groups (overrides --preset)"
        )
        parser.add_argument("--seed", type=seed, default=0, metavar="S", help="random seed (default 0)")
        parser.add_argument(
            "--workers", type=positive_int, metavar="N", help="worker processes (default: all cores)"
        )
        parser.add_argument(
            "--overwrite", action="store_true", help="replace a build made with other arguments"
        )
        parser.add_argument("--quiet", action="store_true", help="no progress bar")
    elif name == "validate":
        checks = "Check schema, manifest hashes, keys, Yv != Yt, tier coverage, answer balance and images."
        parser = add_subcommand(subparsers, name, run_validate, "check a built dataset folder", checks)
        parser.add_argument("folder", metavar="DIR")
        parser.add_argument("--skip-images", action="store_true", help="do not decode images")
        parser.add_argument(
            "--max-problems", type=positive_int, default=20, help="problems listed (default 20)"
        )
    elif name == "push":
        parser = add_subcommand(
            subparsers,
            name,
            run_push,
            "upload a built dataset folder to the Hugging Face Hub in one commit",
            "Validate DIR, check that it is the pinned dataset (its fingerprint), then upload "
            "it as one commit; prints the commit sha on stdout.",
        )
        parser.add_argument("folder", metavar="DIR")
        parser.add_argument("--repo-id", required=True, metavar="USER/NAME", help="dataset repository")
        parser.add_argument("--revision", metavar="BRANCH", help="branch to commit to (default main)")
        parser.add_argument("--private", action="store_true", help="create the repository as private")
        parser.add_argument(
            "--update-pin",
            action="store_true",
            help="publish a build other than the pinned one and pin the tasks to it "
            "(rewrites dataset_builder/canonical.py and the task template; run in a source checkout)",
        )
    else:
        raise ValueError(f"unknown subcommand {name!r}; this module provides {COMMAND_NAMES}")
    return parser
