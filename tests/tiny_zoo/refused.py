"""Checkpoints the wrapper refuses: PaliGemma, a remote-code VLM, a text-only LM (on image rows)."""

from __future__ import annotations

import json
from pathlib import Path

from transformers import (
    LlamaConfig,
    LlamaForCausalLM,
    PaliGemmaConfig,
    PaliGemmaForConditionalGeneration,
    PaliGemmaProcessor,
    SiglipImageProcessor,
)

from tiny_zoo.common import (
    IMAGE_SIZE,
    content_loop,
    make_tokenizer,
    prepare,
    save_checkpoint,
    tiny_llama_text,
)

# A plain ChatML template for the text-only LM (SmolLM2 / Qwen2 style).
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] if part['type'] == 'text' %}{{ part['text'] }}{% endfor %}{% endif %}"
    "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_internvl_chat_remote(out_dir: str | Path, *, seed: int = 0) -> Path:
    """A ``config.json`` only, as the remote-code InternVL2.5/3 checkpoints have it (``internvl_chat`` with an
    ``auto_map``): enough for routing to refuse it before any code would be downloaded or run."""
    del seed
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "model_type": "internvl_chat",
        "architectures": ["InternVLChatModel"],
        "auto_map": {
            "AutoConfig": "configuration_internvl_chat.InternVLChatConfig",
            "AutoModel": "modeling_internvl_chat.InternVLChatModel",
            "AutoModelForCausalLM": "modeling_internvl_chat.InternVLChatModel",
        },
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    return out


def build_text_lm(out_dir: str | Path, *, seed: int = 0) -> Path:
    """A text-only causal LM (``llama`` + ChatML tokenizer); it must refuse image rows clearly."""
    out = prepare(out_dir, seed)
    tokenizer = make_tokenizer(
        ["<|im_start|>", "<|im_end|>"], chat_template=CHATML_TEMPLATE, eos="<|im_end|>", pad="<|endoftext|>"
    )
    model = LlamaForCausalLM(LlamaConfig(**tiny_llama_text(tokenizer)))
    return save_checkpoint(out, model, None, tokenizer)


def build_paligemma(out_dir: str | Path, *, seed: int = 0) -> Path:
    """PaliGemma (``paligemma``) with a chat template, as some fine-tunes ship one: its processor still
    refuses prompts without an image."""
    out = prepare(out_dir, seed)
    tokenizer = make_tokenizer(
        ["<image>"],
        chat_template="{% for message in messages %}" + content_loop("<image>") + "\n{% endfor %}",
        bos="<bos>",
        eos="<eos>",
        pad="<pad>",
        unk="<unk>",
        add_bos=True,
        tokenizer_class="GemmaTokenizerFast",
    )
    n_image_tokens = (IMAGE_SIZE // 8) ** 2
    config = PaliGemmaConfig(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": IMAGE_SIZE,
            "patch_size": 8,
            "projection_dim": 64,
        },
        text_config={"model_type": "gemma", **tiny_llama_text(tokenizer)},
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        projection_dim=64,
    )
    image_processor = SiglipImageProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    image_processor.image_seq_length = n_image_tokens
    processor = PaliGemmaProcessor(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=tokenizer.chat_template
    )
    return save_checkpoint(out, PaliGemmaForConditionalGeneration(config), processor, tokenizer)
