"""Checkpoints saved under the Hub's LLaVA names load back in transformers with every weight in place.

That the same folders load in vLLM (and in the vLLM environment's transformers release) is checked against
the real server in ``tests/e2e/test_served_vllm.py``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from transformers import LlavaForConditionalGeneration

from modality_conflict.models.errors import ModelArgumentError
from modality_conflict.models.hub_layout import hub_key, save_hub_layout


def _names(folder: Path) -> list[str]:
    names: list[str] = []
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as handle:
            names += list(handle.keys())  # noqa: SIM118
    return names


@pytest.mark.parametrize(
    ("saved", "hub"),
    [
        # transformers 5.x save_pretrained: the tower without its vision_model level.
        (
            "vision_tower.embeddings.patch_embedding.weight",
            "vision_tower.vision_model.embeddings.patch_embedding.weight",
        ),
        (
            "language_model.model.layers.0.mlp.up_proj.weight",
            "language_model.model.layers.0.mlp.up_proj.weight",
        ),
        # transformers 4.5x / 5.x module names.
        ("model.vision_tower.post_layernorm.bias", "vision_tower.vision_model.post_layernorm.bias"),
        ("model.language_model.norm.weight", "language_model.model.norm.weight"),
        ("model.multi_modal_projector.linear_1.weight", "multi_modal_projector.linear_1.weight"),
        ("lm_head.weight", "language_model.lm_head.weight"),
        ("model.image_newline", "image_newline"),
        # Already the Hub's names: unchanged.
        ("vision_tower.vision_model.pre_layrnorm.weight", "vision_tower.vision_model.pre_layrnorm.weight"),
        ("language_model.lm_head.weight", "language_model.lm_head.weight"),
    ],
)
def test_hub_key(saved: str, hub: str) -> None:
    assert hub_key(saved, tower_has_vision_model=True) == hub
    assert hub_key(hub, tower_has_vision_model=True) == hub


def test_towers_without_vision_model_keep_their_names() -> None:
    assert (
        hub_key("vision_tower.patch_conv.weight", tower_has_vision_model=False)
        == "vision_tower.patch_conv.weight"
    )


def test_saved_tiny_llava_has_hub_names_and_loads(tiny_llava_dir: Path, tmp_path: Path) -> None:
    model = LlavaForConditionalGeneration.from_pretrained(tiny_llava_dir).eval()
    out = save_hub_layout(model, tmp_path / "hub")
    names = _names(out)
    assert names and all(
        n.startswith(("vision_tower.vision_model.", "multi_modal_projector.", "language_model.model."))
        or n == "language_model.lm_head.weight"
        for n in names
    ), names
    loaded, info = LlavaForConditionalGeneration.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    for (name, before), (_, after) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert torch.equal(before, after), name
    ids = torch.tensor([[1, 5, 9, 13]])
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, loaded.eval()(input_ids=ids).logits)


def test_sharded_index_is_renamed(tiny_llava_dir: Path, tmp_path: Path) -> None:
    model = LlavaForConditionalGeneration.from_pretrained(tiny_llava_dir)
    out = save_hub_layout(model, tmp_path / "sharded", max_shard_size="100KB")
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"]) == set(_names(out))
    assert not any(n.startswith("vision_tower.embeddings") for n in index["weight_map"])
    _, info = LlavaForConditionalGeneration.from_pretrained(out, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]


def test_unknown_architecture_is_refused(tiny_checkpoints, tmp_path: Path) -> None:
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(tiny_checkpoints["qwen2_vl"])
    with pytest.raises(ModelArgumentError, match="no Hub weight layout is known for model_type 'qwen2_vl'"):
        save_hub_layout(model, tmp_path / "q")
    assert not (tmp_path / "q").exists()


@pytest.mark.parametrize(
    ("name", "tower_prefix"),
    [
        ("llava", "vision_tower.vision_model."),
        ("llava_next", "vision_tower.vision_model."),
        ("llava_onevision", "vision_tower.vision_model."),
        ("pixtral", "vision_tower.transformer."),
    ],
)
def test_tiny_zoo_saves_the_llava_families_in_the_hub_layout(
    name: str, tower_prefix: str, tiny_checkpoints
) -> None:
    from transformers import AutoModelForImageTextToText

    folder = tiny_checkpoints[name]
    names = _names(folder)
    assert not [n for n in names if n.startswith(("model.", "lm_head."))], names
    assert any(n.startswith(tower_prefix) for n in names), names
    assert "language_model.lm_head.weight" in names
    # The installed transformers (4.x or 5.x, whichever cell runs this) reads every weight back.
    _, info = AutoModelForImageTextToText.from_pretrained(folder, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
