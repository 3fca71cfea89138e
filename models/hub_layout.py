"""Saving LLaVA-family checkpoints under the weight names Hub LLaVA checkpoints use.

transformers 4.x and vLLM read the llava-hf names; newer releases save others (5.x drops the
``vision_model.`` level, which vLLM refuses), so one renamed folder loads everywhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from modality_conflict.dataset_builder.atomic import atomic_file, write_text_atomic
from modality_conflict.models.errors import ModelArgumentError

HUB_LAYOUT_MODEL_TYPES = frozenset({"llava", "llava_next", "llava_onevision"})
"""Architectures whose Hub checkpoints use the llava-hf names."""

TOWERS_WITH_VISION_MODEL = frozenset({"clip_vision_model", "siglip_vision_model"})
"""Vision towers whose transformers 4.x module holds its transformer as ``vision_model``."""

# transformers 4.5x/5.x module prefixes -> the Hub's names (the first that matches applies).
_PREFIXES = (
    ("model.language_model.", "language_model.model."),
    ("model.multi_modal_projector.", "multi_modal_projector."),
    ("model.vision_tower.", "vision_tower."),
    ("model.image_newline", "image_newline"),
    ("lm_head.", "language_model.lm_head."),
)
_TOWER = "vision_tower."
_TOWER_INNER = "vision_tower.vision_model."


def hub_key(key: str, *, tower_has_vision_model: bool) -> str:
    """The Hub's name of one weight, whichever transformers release named it; a CLIP or SigLIP tower's
    weights go under ``vision_tower.vision_model.``."""
    for old, new in _PREFIXES:
        if key.startswith(old):
            key = new + key[len(old) :]
            break
    if tower_has_vision_model and key.startswith(_TOWER) and not key.startswith(_TOWER_INNER):
        key = _TOWER_INNER + key[len(_TOWER) :]
    return key


def _layout_of(config: Any) -> bool:
    """Whether the tower gets ``vision_model.``; refuses architectures without a known Hub layout."""
    model_type = getattr(config, "model_type", None)
    if model_type not in HUB_LAYOUT_MODEL_TYPES:
        raise ModelArgumentError(
            f"no Hub weight layout is known for model_type {model_type!r}; "
            f"save_hub_layout handles {sorted(HUB_LAYOUT_MODEL_TYPES)}"
        )
    return getattr(config.vision_config, "model_type", None) in TOWERS_WITH_VISION_MODEL


def rename_weight_files(folder: str | Path, *, tower_has_vision_model: bool) -> int:
    """Rename the weights of every safetensors file in ``folder`` (and its index) to the Hub's names.

    Each file is rewritten whole or not at all. Returns the number of names changed.
    """
    from safetensors import safe_open
    from safetensors.torch import save_file

    folder = Path(folder)
    changed = 0
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {"format": "pt"}
            names = list(handle.keys())
            new_names = [hub_key(name, tower_has_vision_model=tower_has_vision_model) for name in names]
            if len(set(new_names)) != len(new_names):
                raise ModelArgumentError(f"{path}: two weights would get the same Hub name")
            tensors = {new: handle.get_tensor(old) for old, new in zip(names, new_names, strict=True)}
        renamed = sum(old != new for old, new in zip(names, new_names, strict=True))
        if renamed:
            with atomic_file(path) as temporary:
                save_file(tensors, str(temporary), metadata=metadata)
            changed += renamed
    index = folder / "model.safetensors.index.json"
    if index.is_file():
        content = json.loads(index.read_text(encoding="utf-8"))
        content["weight_map"] = {
            hub_key(name, tower_has_vision_model=tower_has_vision_model): shard
            for name, shard in content.get("weight_map", {}).items()
        }
        write_text_atomic(index, json.dumps(content, indent=2, sort_keys=True) + "\n")
    return changed


def save_hub_layout(model: Any, out_dir: str | Path, **save_kwargs: Any) -> Path:
    """``model.save_pretrained(out_dir)`` with the weights of a LLaVA, LLaVA-NeXT or LLaVA-OneVision
    renamed to the Hub's LLaVA names."""
    tower_has_vision_model = _layout_of(model.config)
    out = Path(out_dir)
    model.save_pretrained(out, **save_kwargs)
    rename_weight_files(out, tower_has_vision_model=tower_has_vision_model)
    return out
