"""Builder of the conflict sets of arXiv 2511.02243: one builder, one ``DatasetKind`` per set.

Public entry points (imported lazily, so ``import modality_conflict.dataset_builder`` stays cheap and
worker processes do not import ``datasets``):

- :func:`build_dataset` - render the set into a Hub-style folder;
- :func:`validate_dataset` - check such a folder;
- :func:`push_dataset` - upload it to the Hub in one commit;
- :data:`CANONICAL` - the pinned dataset the tasks read; :func:`resolve_data` - find, fetch or build it;
- :func:`prompt_for` - prompt of one condition;
- :data:`DATASETS` - each dataset's kind (its explicit ``features``, its tier ``layout``, ...).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "build_dataset": "modality_conflict.dataset_builder.builder",
    "BuildResult": "modality_conflict.dataset_builder.builder",
    "validate_dataset": "modality_conflict.dataset_builder.validate",
    "ValidationReport": "modality_conflict.dataset_builder.validate",
    "push_dataset": "modality_conflict.dataset_builder.push",
    "PushResult": "modality_conflict.dataset_builder.push",
    "prompt_for": "modality_conflict.dataset_builder.prompts",
    "row_prompt": "modality_conflict.dataset_builder.prompts",
    "item_prompts": "modality_conflict.dataset_builder.prompts",
    "DATASETS": "modality_conflict.dataset_builder.specs",
    "CANONICAL": "modality_conflict.dataset_builder.canonical",
    "DatasetSpec": "modality_conflict.dataset_builder.canonical",
    "resolve_data": "modality_conflict.dataset_builder.resolve",
    "ensure_dataset": "modality_conflict.dataset_builder.resolve",
    "ResolvedData": "modality_conflict.dataset_builder.resolve",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
