"""Qwen2-VL, Qwen2.5-VL and Qwen3-VL (Instruct and Thinking): a merging ViT and a ChatML decoder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from transformers import (
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessor,
    Qwen2VLProcessor,
    Qwen2VLVideoProcessor,
    Qwen3VLConfig,
    Qwen3VLForConditionalGeneration,
    Qwen3VLProcessor,
    Qwen3VLVideoProcessor,
)

from tiny_zoo.common import (
    content_loop,
    make_tokenizer,
    prepare,
    rope_fields,
    save_checkpoint,
    tiny_llama_text,
)

QWEN_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<think>",
    "</think>",
]
_VISION = "<|vision_start|><|image_pad|><|vision_end|>"

# Qwen/Qwen2-VL-*-Instruct, Qwen2.5-VL-*-Instruct: ChatML with the default system prompt "You are a helpful
# assistant."; no BOS token at all. The answer starts right after "<|im_start|>assistant\n".
QWEN2_VL_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n" + content_loop(_VISION) + "<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen/Qwen3-VL-*-Instruct: ChatML without a default system prompt.
QWEN3_VL_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    + content_loop(_VISION)
    + "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Qwen/Qwen3-VL-*-Thinking: the generation prompt opens a reasoning block ("assistant\n<think>\n") and the
# template has no switch to turn it off; past assistant turns are written without their reasoning.
QWEN3_VL_THINKING_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['role'] == 'assistant' %}"
    "{% set answer = message['content'] if message['content'] is string else message['content'][0]['text'] %}"
    "{{ answer.split('</think>')[-1].lstrip('\n') }}{% else %}" + content_loop(_VISION) + "{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}"
)

# Hybrid reasoning templates (Qwen3 text models, GLM-4.5V): thinking on by default, and
# ``enable_thinking=False`` pre-fills an empty reasoning block so the answer starts right after it.
QWEN3_VL_HYBRID_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['role'] == 'assistant' %}"
    "{% set answer = message['content'] if message['content'] is string else message['content'][0]['text'] %}"
    "{{ answer.split('</think>')[-1].lstrip('\n') }}{% else %}" + content_loop(_VISION) + "{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}"
    "{% endif %}"
)


def _qwen_tokenizer(template: str):
    return make_tokenizer(
        QWEN_SPECIALS,
        chat_template=template,
        eos="<|im_end|>",
        pad="<|endoftext|>",
        tokenizer_class="Qwen2TokenizerFast",
    )


def _token_ids(tokenizer: Any) -> dict[str, int]:
    ids = tokenizer.convert_tokens_to_ids
    return {
        "image_token_id": ids("<|image_pad|>"),
        "video_token_id": ids("<|video_pad|>"),
        "vision_start_token_id": ids("<|vision_start|>"),
        "vision_end_token_id": ids("<|vision_end|>"),
    }


def _mrope_text(tokenizer: Any) -> dict[str, Any]:
    # Multimodal RoPE splits each head's 8 rotary frequencies over (time, height, width).
    return tiny_llama_text(
        tokenizer,
        **rope_fields(mrope_section=[2, 3, 3]),
        bos_token_id=None,
    )


def _image_processors(patch: int, merge: int = 2) -> tuple[Qwen2VLImageProcessor, dict[str, Any]]:
    # Every image becomes a 4x4 patch grid, i.e. 4 image tokens after the 2x2 merge.
    pixels = (4 * patch) ** 2
    kwargs = {"min_pixels": pixels, "max_pixels": pixels, "patch_size": patch, "merge_size": merge}
    return Qwen2VLImageProcessor(**kwargs), kwargs


def build_qwen2_vl(out_dir: str | Path, *, seed: int = 0) -> Path:
    """Qwen2-VL (``qwen2_vl``): patch 14, 2x2 merge, ChatML with a default system prompt."""
    out = prepare(out_dir, seed)
    tokenizer = _qwen_tokenizer(QWEN2_VL_TEMPLATE)
    config = Qwen2VLConfig(
        text_config=_mrope_text(tokenizer),
        vision_config={
            "depth": 2,
            "embed_dim": 32,
            "hidden_size": 64,
            "num_heads": 2,
            "mlp_ratio": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        **_token_ids(tokenizer),
    )
    image_processor, kwargs = _image_processors(14)
    processor = Qwen2VLProcessor(
        image_processor=image_processor,
        video_processor=Qwen2VLVideoProcessor(**kwargs),
        tokenizer=tokenizer,
        chat_template=QWEN2_VL_TEMPLATE,
    )
    return save_checkpoint(out, Qwen2VLForConditionalGeneration(config), processor, tokenizer)


def build_qwen2_5_vl(out_dir: str | Path, *, seed: int = 0) -> Path:
    """Qwen2.5-VL (``qwen2_5_vl``): windowed-attention ViT, same template as Qwen2-VL."""
    out = prepare(out_dir, seed)
    tokenizer = _qwen_tokenizer(QWEN2_VL_TEMPLATE)
    config = Qwen2_5_VLConfig(
        text_config=_mrope_text(tokenizer),
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 64,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 56,
            "fullatt_block_indexes": [1],
        },
        **_token_ids(tokenizer),
    )
    image_processor, kwargs = _image_processors(14)
    processor = Qwen2_5_VLProcessor(
        image_processor=image_processor,
        video_processor=Qwen2VLVideoProcessor(**kwargs),
        tokenizer=tokenizer,
        chat_template=QWEN2_VL_TEMPLATE,
    )
    return save_checkpoint(out, Qwen2_5_VLForConditionalGeneration(config), processor, tokenizer)


def _build_qwen3_vl(out_dir: str | Path, seed: int, template: str, *, opens_think: bool = False) -> Path:
    out = prepare(out_dir, seed)
    tokenizer = _qwen_tokenizer(template)
    config = Qwen3VLConfig(
        text_config=_mrope_text(tokenizer),
        vision_config={
            "depth": 2,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_heads": 2,
            "out_hidden_size": 64,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "num_position_embeddings": 16,
            "deepstack_visual_indexes": [0],
        },
        **_token_ids(tokenizer),
    )
    image_processor, kwargs = _image_processors(16)
    processor = Qwen3VLProcessor(
        image_processor=image_processor,
        video_processor=Qwen3VLVideoProcessor(size={"shortest_edge": 64 * 64, "longest_edge": 64 * 64}),
        tokenizer=tokenizer,
        chat_template=template,
    )
    model = Qwen3VLForConditionalGeneration(config)
    if opens_think:
        _make_think_the_first_token(model, tokenizer.convert_tokens_to_ids("<think>"))
    return save_checkpoint(out, model, processor, tokenizer)


@torch.no_grad()
def _make_think_the_first_token(model: Any, think_id: int) -> None:
    """Let the model open ``<think>`` itself after any prompt, as GLM-4.1V-Thinking does.

    Every token embedding gets a large first component, which dominates the residual stream and, after
    the final norm, the hidden state at the answer position; only ``<think>``'s output row reads it.
    """
    model.get_input_embeddings().weight[:, 0] = 50.0
    head = model.get_output_embeddings().weight
    head[:, 0] = 0.0
    head[think_id, 0] = 2.0


def build_qwen3_vl(out_dir: str | Path, *, seed: int = 0) -> Path:
    """Qwen3-VL Instruct (``qwen3_vl``): patch 16, deepstack features, ChatML without a system prompt."""
    return _build_qwen3_vl(out_dir, seed, QWEN3_VL_TEMPLATE)


def build_qwen3_vl_thinking(out_dir: str | Path, *, seed: int = 0) -> Path:
    """Qwen3-VL Thinking: generation prompt ends in ``<think>\\n``, no ``enable_thinking`` switch."""
    return _build_qwen3_vl(out_dir, seed, QWEN3_VL_THINKING_TEMPLATE)


def build_qwen3_vl_opens_think(out_dir: str | Path, *, seed: int = 0) -> Path:
    """Qwen3-VL with the Instruct template whose weights start every answer with ``<think>``."""
    return _build_qwen3_vl(out_dir, seed, QWEN3_VL_TEMPLATE, opens_think=True)


def build_qwen3_vl_hybrid(out_dir: str | Path, *, seed: int = 0) -> Path:
    """Qwen3-VL with a hybrid reasoning template: thinks unless ``enable_thinking=False``."""
    return _build_qwen3_vl(out_dir, seed, QWEN3_VL_HYBRID_TEMPLATE)
