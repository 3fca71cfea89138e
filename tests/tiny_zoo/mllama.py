"""Mllama (Llama-3.2-Vision): a tiled vision encoder read through cross-attention layers."""

from __future__ import annotations

from pathlib import Path

from transformers import (
    MllamaConfig,
    MllamaForConditionalGeneration,
    MllamaImageProcessor,
    MllamaProcessor,
)

from tiny_zoo.common import (
    IMAGE_SIZE,
    PATCH,
    content_loop,
    make_tokenizer,
    prepare,
    rope_fields,
    save_checkpoint,
    tiny_llama_text,
)

# Mllama (meta-llama/Llama-3.2-11B-Vision-Instruct): "{{ bos_token }}" then Llama-3 headers; without an image
# the template writes a system turn with "Today Date: " + strftime_now("%d %b %Y") unless ``date_string``
# is passed. Images are attended through cross-attention layers, which are skipped on text-only prompts.

MLLAMA_TEMPLATE = (
    "{{ bos_token }}{% if date_string is not defined %}"
    "{% set date_string = strftime_now('%d %b %Y') %}{% endif %}"
    "{% set ns = namespace(has_images=false) %}{% for message in messages %}"
    "{% if message['content'] is not string %}{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{% set ns.has_images = true %}{% endif %}{% endfor %}{% endif %}"
    "{% endfor %}"
    "{% if messages[0]['role'] == 'system' %}"
    "{% set system = messages[0]['content'] if messages[0]['content'] is string "
    "else messages[0]['content'][0]['text'] %}{% set messages = messages[1:] %}"
    "{% else %}{% set system = '' %}{% endif %}"
    "{% if not ns.has_images or system != '' %}"
    "<|start_header_id|>system<|end_header_id|>\n\n"
    "Cutting Knowledge Date: December 2023\nToday Date: {{ date_string }}\n\n"
    "{{ system }}<|eot_id|>{% endif %}"
    "{% for message in messages %}<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n"
    + content_loop("<|image|>")
    + "<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def build_mllama(out_dir: str | Path, *, seed: int = 0) -> Path:
    """Mllama (``mllama``, Llama-3.2-Vision): tiled vision encoder + cross-attention layer 1 of 3."""
    out = prepare(out_dir, seed)
    specials = ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|image|>"]
    tokenizer = make_tokenizer(
        specials,
        chat_template=MLLAMA_TEMPLATE,
        bos="<|begin_of_text|>",
        eos="<|eot_id|>",
        pad="<|finetune_right_pad_id|>",
        add_bos=True,
    )
    text = tiny_llama_text(tokenizer, cross_attention_layers=[1], **rope_fields())
    text.pop("head_dim")
    config = MllamaConfig(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_global_layers": 1,
            "attention_heads": 2,
            "vision_output_dim": 64,
            "image_size": IMAGE_SIZE,
            "patch_size": PATCH,
            "max_num_tiles": 1,
            "intermediate_layers_indices": [0],
            "supported_aspect_ratios": [[1, 1]],
        },
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<|image|>"),
    )
    processor = MllamaProcessor(
        image_processor=MllamaImageProcessor(
            size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, max_image_tiles=1
        ),
        tokenizer=tokenizer,
        chat_template=MLLAMA_TEMPLATE,
    )
    return save_checkpoint(out, MllamaForConditionalGeneration(config), processor, tokenizer)
