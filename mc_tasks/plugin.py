"""lmms-eval discovery: the ``lmms_eval.models`` entry point registers the model and the tasks.

lmms-eval 0.7.3 builds its TaskManager before ``LMMS_EVAL_PLUGINS`` is read, so that variable cannot add
tasks. It does load ``lmms_eval.models`` entry points while importing ``lmms_eval.models``, which the CLI
imports before it creates the TaskManager. The entry point therefore also wraps
``TaskManager.initialize_tasks`` so that the installed task folder is indexed after any
``--include_path`` (a user's own copy of a task still wins) and before nothing else changes.

``MODALITY_CONFLICT_DATA=DIR`` points every modality_conflict task at a local folder made by
``modality-conflict build`` instead of the pinned Hub revision.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

from modality_conflict.mc_tasks.task_config import TASKS_DIR

MODEL_ID = "modality_conflict_hf"
MODEL_CLASS_PATH = "modality_conflict.models.hf_model.ModalityConflictHF"
DATA_ENV = "MODALITY_CONFLICT_DATA"


def task_dirs() -> list[str]:
    """The task folders to index: a local-data copy when MODALITY_CONFLICT_DATA is set, else the package's."""
    data_dir = os.environ.get(DATA_ENV)
    if data_dir:
        from modality_conflict.mc_tasks.task_config import local_task_dir

        return [str(local_task_dir(Path(data_dir)))]
    return [str(TASKS_DIR)]


def _with_project_tasks(include_path: str | list[str] | None) -> list[str]:
    paths = [include_path] if isinstance(include_path, str) else list(include_path or [])
    return paths + [p for p in task_dirs() if p not in paths]


def install_task_discovery() -> None:
    """Make every TaskManager index the project's tasks (idempotent)."""
    from lmms_eval.tasks import TaskManager

    original = TaskManager.initialize_tasks
    if getattr(original, "_modality_conflict", False):
        return

    @functools.wraps(original)
    def initialize_tasks(self: Any, include_path: Any = None, include_defaults: bool = True) -> Any:
        return original(
            self, include_path=_with_project_tasks(include_path), include_defaults=include_defaults
        )

    initialize_tasks._modality_conflict = True  # type: ignore[attr-defined]
    TaskManager.initialize_tasks = initialize_tasks


def lmms_eval_manifests() -> list[Any]:
    """Entry-point payload: the project's model, and (as side effects) task discovery and the report file."""
    from lmms_eval.models.registry_v2 import ModelManifest

    from modality_conflict.mc_tasks.report_file import install_report_file_hooks

    install_task_discovery()
    install_report_file_hooks()
    return [ModelManifest(model_id=MODEL_ID, simple_class_path=MODEL_CLASS_PATH)]
