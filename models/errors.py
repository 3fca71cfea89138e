"""The model side's errors: each names the checkpoint or argument and what to do instead."""

from __future__ import annotations

from modality_conflict.dataset_builder.errors import ModalityConflictError


class ModelArgumentError(ModalityConflictError, ValueError):
    """A ``--model_args`` value, a checkpoint or a task's generation argument cannot be honoured."""
