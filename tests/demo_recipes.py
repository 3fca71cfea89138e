"""A reduced demo training recipe: a few images per tier and a few steps of each stage, every code path of
training in seconds. Tests write it to a file and pass it as ``--recipe``."""

from __future__ import annotations

import json
from pathlib import Path

REDUCED_RECIPE = {
    "layouts_large": 1,
    "layouts_small": 1,
    "colourings_per_layout": 2,
    "vision_steps": 3,
    "vision_batch": 8,
    "steps": 4,
    "batch_vision": 4,
    "batch_text": 4,
    "batch_agree": 2,
    "warmup_steps": 2,
    "vision_first_steps": 1,
    "curriculum": [[0, 0], [2, 13]],
}


def write_recipe(path: Path, **changes: object) -> Path:
    """Write :data:`REDUCED_RECIPE` with ``changes`` to ``path`` and return it."""
    path.write_text(json.dumps({**REDUCED_RECIPE, **changes}))
    return path
