"""Mistral3 (Mistral-Small-3.1): Pixtral tower, patch merger and Mistral; a dated default system prompt."""

from __future__ import annotations

from pathlib import Path

from transformers import (
    Mistral3Config,
    Mistral3ForConditionalGeneration,
    PixtralImageProcessor,
    PixtralProcessor,
)

from tiny_zoo.common import (
    IMAGE_SIZE,
    PATCH,
    content_loop,
    make_tokenizer,
    prepare,
    save_checkpoint,
    tiny_llama_text,
)

# Mistral3 (mistralai/Mistral-Small-3.1-24B-Instruct-2503): "{{ bos_token }}[SYSTEM_PROMPT]...[/SYSTEM_PROMPT]
# [INST]...[/INST]" where the default system prompt holds today's date (strftime_now).

MISTRAL3_TEMPLATE = (
    "{% set today = strftime_now('%Y-%m-%d') %}"
    "{% set default_system = 'You are a helpful assistant. The current date is ' + today + '.' %}"
    "{{ bos_token }}{% if messages[0]['role'] == 'system' %}"
    "{% set system = messages[0]['content'] if messages[0]['content'] is string "
    "else messages[0]['content'][0]['text'] %}{% set messages = messages[1:] %}"
    "{% else %}{% set system = default_system %}{% endif %}"
    "[SYSTEM_PROMPT]{{ system }}[/SYSTEM_PROMPT]"
    "{% for message in messages %}{% if message['role'] == 'user' %}[INST]"
    + content_loop("[IMG]")
    + "[/INST]{% elif message['role'] == 'assistant' %}"
    "{{ (message['content'] if message['content'] is string "
    "else message['content'][0]['text']) + eos_token }}"
    "{% endif %}{% endfor %}"
)


def build_mistral3(out_dir: str | Path, *, seed: int = 0) -> Path:
    """Mistral3 (``mistral3``): Pixtral tower + 2x2 patch merger + Mistral; dated default system prompt."""
    out = prepare(out_dir, seed)
    specials = [
        "[INST]",
        "[/INST]",
        "[IMG]",
        "[IMG_BREAK]",
        "[IMG_END]",
        "[SYSTEM_PROMPT]",
        "[/SYSTEM_PROMPT]",
    ]
    tokenizer = make_tokenizer(
        specials,
        chat_template=MISTRAL3_TEMPLATE,
        bos="<s>",
        eos="</s>",
        pad="<pad>",
        unk="<unk>",
        add_bos=True,
    )
    config = Mistral3Config(
        vision_config={
            "model_type": "pixtral",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "head_dim": 16,
            "image_size": IMAGE_SIZE,
            "patch_size": PATCH,
        },
        text_config={"model_type": "mistral", **tiny_llama_text(tokenizer)},
        image_token_index=tokenizer.convert_tokens_to_ids("[IMG]"),
        spatial_merge_size=2,
        tie_word_embeddings=False,
    )
    processor = PixtralProcessor(
        image_processor=PixtralImageProcessor(
            size={"longest_edge": IMAGE_SIZE}, patch_size={"height": PATCH, "width": PATCH}
        ),
        tokenizer=tokenizer,
        patch_size=PATCH,
        spatial_merge_size=2,
        chat_template=MISTRAL3_TEMPLATE,
    )
    return save_checkpoint(out, Mistral3ForConditionalGeneration(config), processor, tokenizer)
