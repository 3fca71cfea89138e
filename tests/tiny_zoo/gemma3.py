"""Gemma3 (google/gemma-3-*-it): SigLIP, 2x2 pooling and a Gemma3 decoder; the template writes the BOS."""

from __future__ import annotations

from pathlib import Path

from transformers import (
    Gemma3Config,
    Gemma3ForConditionalGeneration,
    Gemma3ImageProcessor,
    Gemma3Processor,
)

from tiny_zoo.common import (
    IMAGE_SIZE,
    SIGLIP_VISION,
    content_loop,
    make_tokenizer,
    prepare,
    save_checkpoint,
    tiny_llama_text,
)

# Gemma3 (google/gemma-3-*-it):
# "{{ bos_token }}<start_of_turn>user\n...<end_of_turn>\n<start_of_turn>model\n";
# a system message is merged into the first user turn; the Gemma tokenizer also prefixes <bos>.

GEMMA3_TEMPLATE = (
    "{{ bos_token }}{% set ns = namespace(system='') %}"
    "{% if messages[0]['role'] == 'system' %}"
    "{% set ns.system = (messages[0]['content'] if messages[0]['content'] is string "
    "else messages[0]['content'][0]['text']) + '\n\n' %}{% set messages = messages[1:] %}{% endif %}"
    "{% for message in messages %}"
    "<start_of_turn>{{ 'model' if message['role'] == 'assistant' else message['role'] }}\n"
    "{% if loop.first %}{{ ns.system }}{% endif %}"
    + content_loop("<start_of_image>")
    + "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def build_gemma3(out_dir: str | Path, *, seed: int = 0) -> Path:
    """Gemma3 (``gemma3``): SigLIP + 2x2 average pooling + Gemma3 decoder (sliding and global layers)."""
    out = prepare(out_dir, seed)
    image_tokens = {
        "image_token": "<image_soft_token>",
        "boi_token": "<start_of_image>",
        "eoi_token": "<end_of_image>",
    }
    tokenizer = make_tokenizer(
        ["<start_of_turn>", "<end_of_turn>"],
        chat_template=GEMMA3_TEMPLATE,
        bos="<bos>",
        eos="<eos>",
        pad="<pad>",
        unk="<unk>",
        add_bos=True,
        extra_special_tokens=image_tokens,
    )
    text = tiny_llama_text(
        tokenizer,
        eos_token_id=[tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<end_of_turn>")],
        query_pre_attn_scalar=16,
        sliding_window=16,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
    )
    config = Gemma3Config(
        text_config=text,
        vision_config={**SIGLIP_VISION, "vision_use_head": False},
        mm_tokens_per_image=4,
        boi_token_index=tokenizer.convert_tokens_to_ids("<start_of_image>"),
        eoi_token_index=tokenizer.convert_tokens_to_ids("<end_of_image>"),
        image_token_index=tokenizer.convert_tokens_to_ids("<image_soft_token>"),
        tie_word_embeddings=True,
    )
    processor = Gemma3Processor(
        image_processor=Gemma3ImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
        tokenizer=tokenizer,
        image_seq_length=4,
        chat_template=GEMMA3_TEMPLATE,
    )
    return save_checkpoint(out, Gemma3ForConditionalGeneration(config), processor, tokenizer)
