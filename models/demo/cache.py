"""The cache of retrained demo checkpoints (``demo --retrain``): checked before use, one trainer at a time.

A cached folder that :func:`checkpoint_problem` finds fault with is set aside and trained afresh; a lock
per checkpoint name makes concurrent runs wait for one training and share its result.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from modality_conflict.dataset_builder.atomic import ensure_folder, os_error_text, temporary_sibling
from modality_conflict.dataset_builder.errors import OutputWriteError
from modality_conflict.models.demo.checkpoint import (
    checkpoint_problem,
    code_version,
    exclusive_lock,
    train_checkpoint_folder,
)
from modality_conflict.models.demo.recipe import TrainingRecipe

__all__ = ["cached_checkpoint", "checkpoint_name"]


def checkpoint_name(seed: int, recipe: TrainingRecipe) -> str:
    """Cache folder name: the seed, the code version and, for another recipe than the default, its hash."""
    name = f"demo-model-seed{seed}-{code_version()['demo_package_sha256'][:12]}"
    if recipe != TrainingRecipe():
        recipe_text = json.dumps(asdict(recipe), sort_keys=True).encode()
        name += f"-recipe{hashlib.sha256(recipe_text).hexdigest()[:8]}"
    return name


def _set_aside(folder: Path) -> None:
    """Move a bad cached folder out of the way and delete it (renamed first, so no reader sees half of it)."""
    aside = temporary_sibling(folder, "stale")
    try:
        os.replace(folder, aside)
    except OSError as error:
        raise OutputWriteError(os_error_text(error, folder)) from None
    shutil.rmtree(aside, ignore_errors=True)


def cached_checkpoint(
    cache_root: str | Path,
    *,
    seed: int = 0,
    recipe: TrainingRecipe | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """The checkpoint of ``seed`` (and ``recipe``, default the shipped one) under ``cache_root``.

    Trained on first use and whenever the cached folder fails :func:`checkpoint_problem`; other training code
    gives another folder name, so weights of older code are never reused.
    """
    recipe = recipe or TrainingRecipe()
    root = ensure_folder(cache_root)
    name = checkpoint_name(seed, recipe)
    folder = root / name
    with exclusive_lock(root / f".{name}.lock"):
        problem = checkpoint_problem(folder, seed=seed, recipe=recipe)
        if problem is None:
            return folder
        if folder.exists():
            if log:
                log(f"cached checkpoint {folder} is not usable ({problem}): training it afresh")
            _set_aside(folder)
        return train_checkpoint_folder(folder, seed=seed, recipe=recipe, log=log)
