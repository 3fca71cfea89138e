"""The ``modality-conflict`` command: each subcommand's module (``dataset`` holds build/validate/push) has
``add_parser(subparsers, name)`` and sets ``func(args) -> int``; this file only wires them. Bad input is
``error: ...`` with exit status 2, never a traceback."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# (subcommand, module); modules are imported lazily so `modality-conflict build` never imports torch.
_COMMANDS = "modality_conflict.cli"
SUBCOMMANDS: tuple[tuple[str, str], ...] = (
    ("build", "modality_conflict.cli.dataset"),
    ("validate", "modality_conflict.cli.dataset"),
    ("push", "modality_conflict.cli.dataset"),
    ("tasks", f"{_COMMANDS}.evaluate"),
    ("pin-dataset", f"{_COMMANDS}.pin"),
    ("eval", f"{_COMMANDS}.evaluate"),
    ("probe", f"{_COMMANDS}.probe"),
    ("report", f"{_COMMANDS}.report"),
    ("submit", f"{_COMMANDS}.submit"),
    ("verify", f"{_COMMANDS}.submit"),
    ("leaderboard", f"{_COMMANDS}.leaderboard"),
    ("eval-results", f"{_COMMANDS}.leaderboard"),
    ("train-demo-model", f"{_COMMANDS}.train_demo"),
    ("demo", f"{_COMMANDS}.demo"),
)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modality-conflict",
        description="Image-text conflict benchmark for multimodal LLMs (arXiv 2511.02243).",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    wanted = None
    if argv:
        wanted = next((a for a in argv if not a.startswith("-")), None)
    for name, module_name in SUBCOMMANDS:
        # Only import the module of the requested subcommand (all of them for --help).
        if wanted is not None and wanted in dict(SUBCOMMANDS) and name != wanted:
            subparsers.add_parser(name)
            continue
        module = importlib.import_module(module_name)
        module.add_parser(subparsers, name)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (ValueError, FileNotFoundError, FileExistsError, PermissionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (RuntimeError, OSError) as error:
        # A failed run (lmms-eval left no results, the Hub refused a push), or a full disk or read-only file
        # system met outside the writers that already name it: exit 1, not a traceback.
        print(f"error: {error}", file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 - library errors with a message are still bad input
        from modality_conflict.dataset_builder.errors import ModalityConflictError

        if isinstance(error, ModalityConflictError):
            print(f"error: {error}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
