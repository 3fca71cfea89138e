"""InternVL, the transformers-native port (OpenGVLab/InternVL3-*-hf): InternViT, pixel shuffle, Qwen2."""

from __future__ import annotations

from pathlib import Path

from transformers import (
    GotOcr2ImageProcessor,
    InternVLConfig,
    InternVLForConditionalGeneration,
    InternVLProcessor,
    InternVLVideoProcessor,
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

# InternVL (OpenGVLab/InternVL3-*-hf): ChatML over Qwen2, images as <IMG_CONTEXT> expanded inside <img></img>.

INTERNVL_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    + content_loop("<IMG_CONTEXT>\n")
    + "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_internvl(out_dir: str | Path, *, seed: int = 0) -> Path:
    """InternVL (``internvl``, the transformers-native port): InternViT + pixel shuffle + Qwen2."""
    out = prepare(out_dir, seed)
    image_tokens = {
        "start_image_token": "<img>",
        "end_image_token": "</img>",
        "context_image_token": "<IMG_CONTEXT>",
        "video_token": "<video>",
    }
    tokenizer = make_tokenizer(
        ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        chat_template=INTERNVL_TEMPLATE,
        eos="<|im_end|>",
        pad="<|endoftext|>",
        extra_special_tokens=image_tokens,
    )
    image_seq_length = (IMAGE_SIZE // PATCH) ** 2 // 4
    config = InternVLConfig(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": [IMAGE_SIZE, IMAGE_SIZE],
            "patch_size": [PATCH, PATCH],
        },
        text_config={"model_type": "qwen2", **tiny_llama_text(tokenizer)},
        image_token_id=tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>"),
        image_seq_length=image_seq_length,
        downsample_ratio=0.5,
        tie_word_embeddings=False,
    )
    size = {"height": IMAGE_SIZE, "width": IMAGE_SIZE}
    processor = InternVLProcessor(
        image_processor=GotOcr2ImageProcessor(size=size, crop_to_patches=False, min_patches=1, max_patches=1),
        video_processor=InternVLVideoProcessor(size=size),
        tokenizer=tokenizer,
        image_seq_length=image_seq_length,
        chat_template=INTERNVL_TEMPLATE,
    )
    return save_checkpoint(out, InternVLForConditionalGeneration(config), processor, tokenizer)
