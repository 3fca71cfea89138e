"""LLaVA-1.5, LLaVA-NeXT, LLaVA-OneVision and Pixtral: a vision tower, a projector and a decoder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import (
    CLIPImageProcessor,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaNextConfig,
    LlavaNextForConditionalGeneration,
    LlavaNextImageProcessor,
    LlavaNextProcessor,
    LlavaOnevisionConfig,
    LlavaOnevisionForConditionalGeneration,
    LlavaOnevisionImageProcessor,
    LlavaOnevisionProcessor,
    LlavaOnevisionVideoProcessor,
    LlavaProcessor,
    PixtralImageProcessor,
    PixtralProcessor,
)

from modality_conflict.models.hub_layout import TOWERS_WITH_VISION_MODEL, rename_weight_files
from tiny_zoo.common import (
    IMAGE_SIZE,
    PATCH,
    images_then_text,
    make_tokenizer,
    prepare,
    save_checkpoint,
    tiny_llama_text,
)

# llava-hf/llava-1.5-*-hf: "USER: <image>\n... ASSISTANT:", no BOS in the template; the Llama tokenizer
# prefixes <s> on encode. The answer follows "ASSISTANT:" after a space.
LLAVA_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] != 'system' %}{{ message['role'].upper() + ': ' }}{% endif %}"
    "{% if message['role'] == 'assistant' %}"
    + images_then_text("", text_suffix=" ")
    + "{% else %}"
    + images_then_text("<image>\n", text_suffix=" ")
    + "{% endif %}{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)

# llava-hf/llava-v1.6-mistral-7b-hf: "[INST] <image>\n... [/INST]"; add_generation_prompt adds nothing,
# the assistant turn is " answer</s>". The Mistral tokenizer prefixes <s>.
LLAVA_NEXT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '<<SYS>>\n' + message['content'][0]['text'] + '\n<</SYS>>\n\n' }}"
    "{% elif message['role'] == 'user' %}[INST] " + images_then_text("<image>\n") + " [/INST]"
    "{% else %}{{ ' ' + message['content'][0]['text'] + eos_token }}{% endif %}{% endfor %}"
)

# llava-hf/llava-onevision-qwen2-*-ov-hf: ChatML without a default system prompt,
# "<|im_start|>user <image>\n..."
LLAVA_ONEVISION_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + ' ' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] if part['type'] == 'image' %}<image>{% endfor %}"
    "{% for part in message['content'] if part['type'] == 'text' %}{{ '\n' + part['text'] }}{% endfor %}"
    "{% endif %}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# mistral-community/pixtral-12b: "{{ bos_token }}[INST]...[IMG]...[/INST]", the answer right after [/INST];
# the tokenizer also prefixes <s> on encode.
PIXTRAL_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'user' %}[INST]"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}[IMG]"
    "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}[/INST]"
    "{% elif message['role'] == 'assistant' %}{{ message['content'][0]['text'] + eos_token }}"
    "{% else %}{{ message['content'][0]['text'] + '\n\n' }}{% endif %}{% endfor %}"
)


def _clip_vision() -> dict:
    # 32 px in 8 px patches: 16 patches + CLS; the "default" strategy drops CLS -> 16 image tokens.
    return {
        "model_type": "clip_vision_model",
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": IMAGE_SIZE,
        "patch_size": PATCH,
        "projection_dim": 32,
    }


def _clip_processor() -> CLIPImageProcessor:
    return CLIPImageProcessor(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        do_center_crop=True,
    )


def _save_in_hub_layout(out: Path, model: Any, processor: Any, tokenizer: Any) -> Path:
    """``save_checkpoint`` with the weights under the llava-hf names, which every transformers release
    and vLLM read (transformers 5 itself saves others: :mod:`~modality_conflict.models.hub_layout`)."""
    save_checkpoint(out, model, processor, tokenizer)
    tower = getattr(model.config.vision_config, "model_type", None)
    rename_weight_files(out, tower_has_vision_model=tower in TOWERS_WITH_VISION_MODEL)
    return out


def _llama_tokenizer(template: str):
    return make_tokenizer(
        ["<image>"], chat_template=template, bos="<s>", eos="</s>", pad="<pad>", unk="<unk>", add_bos=True
    )


def build_llava(out_dir: str | Path, *, seed: int = 0) -> Path:
    """LLaVA-1.5 (``llava``): CLIP tower + Llama; template without BOS, tokenizer adds ``<s>``."""
    out = prepare(out_dir, seed)
    tokenizer = _llama_tokenizer(LLAVA_TEMPLATE)
    config = LlavaConfig(
        vision_config=_clip_vision(),
        text_config={"model_type": "llama", **tiny_llama_text(tokenizer)},
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=(IMAGE_SIZE // PATCH) ** 2,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
    )
    processor = LlavaProcessor(
        image_processor=_clip_processor(),
        tokenizer=tokenizer,
        patch_size=PATCH,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=LLAVA_TEMPLATE,
    )
    return _save_in_hub_layout(out, LlavaForConditionalGeneration(config), processor, tokenizer)


def build_llava_next(out_dir: str | Path, *, seed: int = 0) -> Path:
    """LLaVA-NeXT (``llava_next``, v1.6-Mistral style): any-resolution tiles over a 32 px CLIP tower."""
    out = prepare(out_dir, seed)
    tokenizer = _llama_tokenizer(LLAVA_NEXT_TEMPLATE)
    config = LlavaNextConfig(
        vision_config=_clip_vision(),
        text_config={"model_type": "mistral", **tiny_llama_text(tokenizer)},
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_grid_pinpoints=[[IMAGE_SIZE, IMAGE_SIZE]],
        image_seq_length=(IMAGE_SIZE // PATCH) ** 2,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
    )
    processor = LlavaNextProcessor(
        image_processor=LlavaNextImageProcessor(
            size={"shortest_edge": IMAGE_SIZE},
            crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
            image_grid_pinpoints=[[IMAGE_SIZE, IMAGE_SIZE]],
        ),
        tokenizer=tokenizer,
        patch_size=PATCH,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=LLAVA_NEXT_TEMPLATE,
    )
    return _save_in_hub_layout(out, LlavaNextForConditionalGeneration(config), processor, tokenizer)


def build_llava_onevision(out_dir: str | Path, *, seed: int = 0) -> Path:
    """LLaVA-OneVision (``llava_onevision``): SigLIP tower + Qwen2, ChatML, no BOS anywhere."""
    out = prepare(out_dir, seed)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<image>", "<video>"]
    tokenizer = make_tokenizer(
        specials, chat_template=LLAVA_ONEVISION_TEMPLATE, eos="<|im_end|>", pad="<|endoftext|>"
    )
    vision = {
        "model_type": "siglip_vision_model",
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "image_size": IMAGE_SIZE,
        "patch_size": PATCH,
    }
    config = LlavaOnevisionConfig(
        vision_config=vision,
        text_config={"model_type": "qwen2", **tiny_llama_text(tokenizer)},
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        video_token_index=tokenizer.convert_tokens_to_ids("<video>"),
        image_grid_pinpoints=[[IMAGE_SIZE, IMAGE_SIZE]],
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        vision_aspect_ratio="anyres_max_9",
    )
    image_processor_kwargs = {
        "size": {"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        "image_grid_pinpoints": [[IMAGE_SIZE, IMAGE_SIZE]],
    }
    processor = LlavaOnevisionProcessor(
        image_processor=LlavaOnevisionImageProcessor(**image_processor_kwargs),
        video_processor=LlavaOnevisionVideoProcessor(size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}),
        tokenizer=tokenizer,
        num_image_tokens=(IMAGE_SIZE // PATCH) ** 2,
        vision_feature_select_strategy="full",
        chat_template=LLAVA_ONEVISION_TEMPLATE,
    )
    return _save_in_hub_layout(out, LlavaOnevisionForConditionalGeneration(config), processor, tokenizer)


def build_pixtral(out_dir: str | Path, *, seed: int = 0) -> Path:
    """Pixtral (``llava``, Pixtral tower): the template writes ``{{ bos_token }}``, so does the tokenizer."""
    out = prepare(out_dir, seed)
    specials = ["[INST]", "[/INST]", "[IMG]", "[IMG_BREAK]", "[IMG_END]"]
    tokenizer = make_tokenizer(
        specials,
        chat_template=PIXTRAL_TEMPLATE,
        bos="<s>",
        eos="</s>",
        pad="<pad>",
        unk="<unk>",
        add_bos=True,
    )
    vision = {
        "model_type": "pixtral",
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "head_dim": 16,
        "image_size": IMAGE_SIZE,
        "patch_size": PATCH,
    }
    config = LlavaConfig(
        vision_config=vision,
        text_config={"model_type": "mistral", **tiny_llama_text(tokenizer)},
        image_token_index=tokenizer.convert_tokens_to_ids("[IMG]"),
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        projector_hidden_act="gelu",
        multimodal_projector_bias=True,
    )
    processor = PixtralProcessor(
        image_processor=PixtralImageProcessor(
            size={"longest_edge": IMAGE_SIZE}, patch_size={"height": PATCH, "width": PATCH}
        ),
        tokenizer=tokenizer,
        patch_size=PATCH,
        spatial_merge_size=1,
        chat_template=PIXTRAL_TEMPLATE,
    )
    return _save_in_hub_layout(out, LlavaForConditionalGeneration(config), processor, tokenizer)


# The served copy writes the BOS in its template: vLLM's chat endpoint adds no special tokens of its own,
# so both paths then see exactly one BOS.
LLAVA_SERVED_TEMPLATE = "{{ bos_token }}" + LLAVA_TEMPLATE


def build_llava_served(out_dir: str | Path, *, seed: int = 0) -> Path:
    """LLaVA-1.5 that vLLM's CPU build serves: decoder head_dim 32, weights under the Hub's names.

    vLLM's CPU attention refuses the zoo's head_dim 16 and 24; the weights are renamed to the llava-hf
    layout (:mod:`~modality_conflict.models.hub_layout`) that vLLM and every transformers release read.
    """
    out = prepare(out_dir, seed)
    tokenizer = _llama_tokenizer(LLAVA_SERVED_TEMPLATE)
    text = tiny_llama_text(tokenizer, num_attention_heads=2, num_key_value_heads=1, head_dim=32)
    config = LlavaConfig(
        vision_config=_clip_vision(),
        text_config={"model_type": "llama", **text},
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=(IMAGE_SIZE // PATCH) ** 2,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
    )
    processor = LlavaProcessor(
        image_processor=_clip_processor(),
        tokenizer=tokenizer,
        patch_size=PATCH,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=LLAVA_SERVED_TEMPLATE,
    )
    return _save_in_hub_layout(out, LlavaForConditionalGeneration(config), processor, tokenizer)
