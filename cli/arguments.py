"""Value types for command-line options, and the subparser of one subcommand, shared by every subcommand."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def add_subcommand(
    subparsers: argparse._SubParsersAction,
    name: str,
    run: Callable[[argparse.Namespace], int],
    summary: str,
    description: str | None = None,
) -> argparse.ArgumentParser:
    """The subparser of subcommand ``name`` (``summary`` is its ``--help`` line), set to call ``run``."""
    parser = subparsers.add_parser(name, help=summary, description=description)
    parser.set_defaults(func=run)
    return parser


def _integer(text: str, *, minimum: int, too_small: str) -> int:
    try:
        value = int(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from error
    if value < minimum:
        raise argparse.ArgumentTypeError(f"{too_small}, got {value}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1."""
    return _integer(text, minimum=1, too_small="expected a positive integer")


def seed(text: str) -> int:
    """A non-negative integer seed."""
    return _integer(text, minimum=0, too_small="the seed must be non-negative")


def finite_float(text: str) -> float:
    """A finite number."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value
