"""How numbers of a summary are shown in tables: fixed decimals, "n/a" where a number is undefined."""

from __future__ import annotations

from typing import Any

from modality_conflict.analysis.task_summary import finite_number


def number_text(value: Any, *, signed: bool = False, digits: int = 3) -> str:
    """``value`` with ``digits`` decimals (and a sign when ``signed``), or ``"n/a"`` when undefined."""
    number = finite_number(value)
    if number is None:
        return "n/a"
    return f"{number:+.{digits}f}" if signed else f"{number:.{digits}f}"


def interval_text(low: Any, high: Any, *, signed: bool = False, missing: str = "") -> str:
    """``[low, high]``, or ``missing`` when either end is undefined."""
    if finite_number(low) is None or finite_number(high) is None:
        return missing
    return f"[{number_text(low, signed=signed)}, {number_text(high, signed=signed)}]"


def figure_text(text: str) -> str:
    """``text`` as matplotlib shows it literally: a ``$`` (kept by lmms-eval in folder names built from a
    checkpoint path) would otherwise start mathtext, and two of them break the figure."""
    return str(text).replace("$", r"\$")
