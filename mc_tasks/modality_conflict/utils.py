"""Hooks that the task YAMLs name with ``!function utils.<name>``: lmms-eval imports this file by path, so
it only re-exports ``modality_conflict.mc_tasks.task_logic`` (exactly its ``__all__``)."""

from modality_conflict.mc_tasks.task_logic import *  # noqa: F403
