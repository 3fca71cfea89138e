"""Which dataset rows a task evaluates, and how much of them a submission covers.

A task's split is the dataset's rows after the ``process_docs`` hook its YAML names, applied as lmms-eval
applies it, so it cannot drift from what a run evaluates. A ranked submission covers the whole split: a
subset, even one whose metrics recompute, can be cherry-picked.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from modality_conflict.mc_tasks import task_logic
from modality_conflict.mc_tasks.task_config import TASKS_DIR


class _TaskLoader(yaml.SafeLoader):
    """Reads lmms-eval task YAMLs, keeping ``!function utils.name`` as ``("!function", "utils.name")``."""


_TaskLoader.add_constructor("!function", lambda loader, node: ("!function", loader.construct_scalar(node)))


def _read_config(path: Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    config = yaml.load(path.read_text(encoding="utf-8"), Loader=_TaskLoader) or {}
    include = config.pop("include", None)
    if isinstance(include, str) and path not in seen:
        return {**_read_config(path.with_name(include), (*seen, path)), **config}
    return config


@functools.lru_cache(maxsize=4)
def task_process_docs(tasks_dir: Path = TASKS_DIR) -> dict[str, str | None]:
    """``task -> name of its process_docs hook`` (None: every row) for every task the folder defines."""
    out: dict[str, str | None] = {}
    for path in sorted(tasks_dir.glob("*.yaml")):
        config = _read_config(path)
        task = config.get("task")
        if not isinstance(task, str):
            continue  # a group
        hook = config.get("process_docs")
        out[task] = hook[1].removeprefix("utils.") if isinstance(hook, tuple) else None
    return out


def split_row_ids(task: str, rows: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """The row ids of ``rows`` (``row_id -> fields``) that ``task`` evaluates; ``KeyError`` for no task."""
    hook = task_process_docs()[task]  # the name of its process_docs hook, None for every row
    if hook is None:
        return set(rows)
    import datasets

    row_ids = list(rows)
    fields = sorted({key for row in rows.values() for key in row})
    table = {"row_id": row_ids, **{key: [rows[r].get(key) for r in row_ids] for key in fields}}
    shown = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()  # the filter's bar would only clutter the command's output
    try:
        selected = getattr(task_logic, hook)(datasets.Dataset.from_dict(table))
    finally:
        if shown:
            datasets.enable_progress_bars()
    return set(selected["row_id"])


@dataclass(frozen=True)
class Coverage:
    """How much of its task's split a submission covers."""

    task: str
    expected: int  # rows of the task's split
    covered: int  # of those, rows the submission has a record for
    missing: tuple[str, ...] = field(default=())  # a few of the rows it lacks, for the message

    @property
    def complete(self) -> bool:
        """Whether every row of the split has a record."""
        return self.covered == self.expected

    def text(self) -> str:
        """One phrase, e.g. ``covers 162 of 972 rows of the split of modality_conflict_color``."""
        line = f"covers {self.covered} of {self.expected} rows of the split of {self.task}"
        if self.missing:
            line += f" (missing e.g. {', '.join(self.missing)})"
        return line


def coverage_of(task: str, record_ids: Collection[str], split: Collection[str]) -> Coverage:
    """The :class:`Coverage` of a submission's rows over a task's split."""
    split_set = set(split)
    covered = split_set & set(record_ids)
    missing = tuple(sorted(split_set - covered)[:3])
    return Coverage(task, len(split_set), len(covered), missing)
