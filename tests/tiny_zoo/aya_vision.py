"""Aya Vision (CohereLabs/aya-vision-8b): SigLIP, pixel-shuffle adapter and Cohere2 with a logit scale."""

from __future__ import annotations

from pathlib import Path

from transformers import (
    AyaVisionConfig,
    AyaVisionForConditionalGeneration,
    AyaVisionProcessor,
    GotOcr2ImageProcessor,
)

from tiny_zoo.common import (
    IMAGE_SIZE,
    PATCH,
    SIGLIP_VISION,
    content_loop,
    make_tokenizer,
    prepare,
    save_checkpoint,
    tiny_llama_text,
)

# Aya Vision (CohereLabs/aya-vision-8b): "{{ bos_token }}<|START_OF_TURN_TOKEN|><|USER_TOKEN|>...
# <|END_OF_TURN_TOKEN|><|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>"; the Cohere tokenizer also prefixes
# <BOS_TOKEN>.
# The Cohere2 text config has logit_scale, which AyaVisionForConditionalGeneration does not apply.

AYA_VISION_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<|START_OF_TURN_TOKEN|>"
    "{{ {'system': '<|SYSTEM_TOKEN|>', 'user': '<|USER_TOKEN|>', "
    "'assistant': '<|CHATBOT_TOKEN|>'}[message['role']] }}"
    + content_loop("<image>")
    + "<|END_OF_TURN_TOKEN|>{% endfor %}"
    "{% if add_generation_prompt %}<|START_OF_TURN_TOKEN|><|CHATBOT_TOKEN|>{% endif %}"
)


# A template whose assistant turn starts with a marker the generation prompt does not write: the model's
# first answer token is that marker, so all six answers share their first token.
AYA_VISION_MARKER_TEMPLATE = AYA_VISION_TEMPLATE.replace(
    "{{ {'system'",
    "{% if message['role'] == 'assistant' %}<|CHATBOT_TOKEN|><|START_RESPONSE|>"
    "{{ message['content'][0]['text'] }}<|END_RESPONSE|><|END_OF_TURN_TOKEN|>{% else %}{{ {'system'",
).replace("<|END_OF_TURN_TOKEN|>{% endfor %}", "<|END_OF_TURN_TOKEN|>{% endif %}{% endfor %}")


def build_aya_vision(out_dir: str | Path, *, seed: int = 0) -> Path:
    """Aya Vision (``aya_vision``): SigLIP + pixel-shuffle adapter + Cohere2 (``logit_scale`` 0.0625)."""
    return _build_aya_vision(out_dir, seed, AYA_VISION_TEMPLATE)


def build_aya_vision_marker(out_dir: str | Path, *, seed: int = 0) -> Path:
    """Aya Vision with :data:`AYA_VISION_MARKER_TEMPLATE`: the answers' first tokens collapse to one."""
    return _build_aya_vision(out_dir, seed, AYA_VISION_MARKER_TEMPLATE)


def _build_aya_vision(out_dir: str | Path, seed: int, template: str) -> Path:
    out = prepare(out_dir, seed)
    specials = [
        "<|START_OF_TURN_TOKEN|>",
        "<|END_OF_TURN_TOKEN|>",
        "<|USER_TOKEN|>",
        "<|CHATBOT_TOKEN|>",
        "<|SYSTEM_TOKEN|>",
        "<image>",
        "<|START_OF_IMG|>",
        "<|END_OF_IMG|>",
        "<|IMG_PATCH|>",
        "<|IMG_LINE_BREAK|>",
        "TILE",
        "TILE_GLOBAL",
        "<|START_RESPONSE|>",
        "<|END_RESPONSE|>",
    ]
    tokenizer = make_tokenizer(
        specials,
        chat_template=template,
        bos="<BOS_TOKEN>",
        eos="<|END_OF_TURN_TOKEN|>",
        pad="<PAD>",
        unk="<UNK>",
        add_bos=True,
    )
    text = tiny_llama_text(
        tokenizer, model_type="cohere2", logit_scale=0.0625, sliding_window=16, layer_types=None
    )
    config = AyaVisionConfig(
        vision_config={"model_type": "siglip_vision_model", **SIGLIP_VISION, "vision_use_head": False},
        text_config=text,
        downsample_factor=2,
        image_token_index=tokenizer.convert_tokens_to_ids("<|IMG_PATCH|>"),
        tie_word_embeddings=False,
    )
    processor = AyaVisionProcessor(
        image_processor=GotOcr2ImageProcessor(
            size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
            crop_to_patches=False,
            min_patches=1,
            max_patches=1,
        ),
        tokenizer=tokenizer,
        patch_size=PATCH,
        img_size=IMAGE_SIZE,
        downsample_factor=2,
        chat_template=template,
    )
    return save_checkpoint(out, AyaVisionForConditionalGeneration(config), processor, tokenizer)
