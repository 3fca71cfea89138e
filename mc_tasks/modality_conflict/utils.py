"""Hooks that the modality_conflict task YAMLs name with ``!function utils.<name>``.

lmms-eval imports this file by path, so it stays a thin shim: the hooks live in the installed package
``modality_conflict.mc_tasks.task_logic`` (exactly its ``__all__``) where they are tested like any other
module.
"""

from modality_conflict.mc_tasks.task_logic import *  # noqa: F403
