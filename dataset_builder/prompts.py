"""Prompts of the three conditions, built from a row's strings (the image is never needed).

The paper's prompt is ``"[conflict description] [question] [command]"``; the vision-only prompt has no
description. Text-only and conflict prompts are the same string: they differ only by the image.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

from modality_conflict.dataset_builder.constants import ANSWER_COMMAND, CONDITIONS


def prompt_for(condition: str, text: str, question: str) -> str:
    """Return the prompt of one condition.

    ``condition``: ``"vision_only"``, ``"text_only"`` or ``"conflict"``.
    ``text``: Conflict description; ignored for ``"vision_only"``, required otherwise.
    ``question``: The question, e.g. ``"What color is the circle?"``.
    Returns ``"<question> <command>"`` for vision-only, ``"<text> <question> <command>"`` otherwise.
    Raises ``ValueError`` for an unknown condition, an empty question, or an empty text where one is needed.
    """
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; expected one of {list(CONDITIONS)}")
    if not question.strip():
        raise ValueError("the question is empty")
    if condition == "vision_only":
        return f"{question.strip()} {ANSWER_COMMAND}"
    if not text.strip():
        raise ValueError(f"condition {condition!r} needs a conflict text, got an empty one")
    return f"{text.strip()} {question.strip()} {ANSWER_COMMAND}"


def label_name(value: object, names: Sequence[str], field: str) -> str:
    """Name of a ClassLabel value, whether a dataset gives the index or the name.

    ``value``: An int index into ``names`` or one of its entries.
    Raises ``ValueError`` when ``value`` is neither, naming the field.
    """
    if isinstance(value, str) and value in names:
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and 0 <= int(value) < len(names):
        return names[int(value)]
    raise ValueError(f"field {field!r}: {value!r} is neither a name nor an index of {list(names)}")


def condition_name(value: object) -> str:
    """Name of a ``condition`` value (:func:`label_name` over :data:`CONDITIONS`)."""
    return label_name(value, CONDITIONS, "condition")


def row_prompt(row: Mapping[str, Any]) -> str:
    """Prompt of a dataset row for its own condition.

    ``row``: A row with at least ``condition``, ``text`` and ``question``.
    """
    return prompt_for(condition_name(row["condition"]), row.get("text") or "", row["question"])


def item_prompts(row: Mapping[str, Any]) -> dict[str, str]:
    """The three prompts of the item a conflict row belongs to.

    ``row``: A conflict row (it carries both the text and the question).
    Returns ``{"vision_only": ..., "text_only": ..., "conflict": ...}``.
    """
    if condition_name(row["condition"]) != "conflict":
        raise ValueError(
            f"row {row.get('row_id')!r} is not a conflict row; only those carry all three inputs"
        )
    text, question = row["text"], row["question"]
    return {name: prompt_for(name, text, question) for name in CONDITIONS}
