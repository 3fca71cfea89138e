"""Multimodal LMs outside the image-text-to-text mapping: Phi-4-multimodal, Qwen2.5-Omni, Qwen2-Audio."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    Phi4MultimodalConfig,
    Phi4MultimodalFeatureExtractor,
    Phi4MultimodalForCausalLM,
    Phi4MultimodalImageProcessor,
    Phi4MultimodalProcessor,
    Qwen2_5OmniConfig,
    Qwen2_5OmniForConditionalGeneration,
    Qwen2_5OmniProcessor,
    Qwen2AudioConfig,
    Qwen2AudioForConditionalGeneration,
    Qwen2AudioProcessor,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
    WhisperFeatureExtractor,
)

from tiny_zoo.common import (
    content_loop,
    make_tokenizer,
    prepare,
    rope_fields,
    save_checkpoint,
    tiny_llama_text,
)

# microsoft/Phi-4-multimodal-instruct: "<|user|><|image_1|>...<|end|><|assistant|>", images and audio.
PHI4_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>"
    + content_loop("<|image|>")
    + "<|end|>{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_phi4_multimodal(out_dir: str | Path, *, seed: int = 0) -> Path:
    """Phi-4-multimodal (``phi4_multimodal``): ``Phi4MultimodalForCausalLM``, which transformers maps as a
    causal LM *and* a multimodal LM. As in the real checkpoint, the chat template is the tokenizer's only
    (the processor does not keep one)."""
    out = prepare(out_dir, seed)
    media = {"image_token": "<|image|>", "audio_token": "<|audio|>"}
    tokenizer = make_tokenizer(
        ["<|user|>", "<|assistant|>", "<|system|>", "<|end|>"],
        chat_template=PHI4_TEMPLATE,
        eos="<|end|>",
        pad="<|endoftext|>",
        extra_special_tokens=media,
    )
    text = tiny_llama_text(tokenizer)
    text.pop("head_dim")
    config = Phi4MultimodalConfig(
        **text,
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            # The image embedding assumes 448 px crops in 14 px patches (a 32x32 grid, 2x2-compressed).
            "image_size": 448,
            "crop_size": 448,
            "patch_size": 14,
            "image_token_id": tokenizer.convert_tokens_to_ids("<|image|>"),
        },
        audio_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_blocks": 1,
            "num_attention_heads": 2,
            "ext_pw_out_channel": 32,
            "depthwise_separable_out_channel": 32,
            "nemo_conv_channels": 32,
            "audio_token_id": tokenizer.convert_tokens_to_ids("<|audio|>"),
        },
    )
    processor = Phi4MultimodalProcessor(
        image_processor=Phi4MultimodalImageProcessor(dynamic_hd=1),
        audio_processor=Phi4MultimodalFeatureExtractor(),
        tokenizer=tokenizer,
    )
    return save_checkpoint(out, Phi4MultimodalForCausalLM(config), processor, tokenizer)


_OMNI_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_bos|>",
    "<|vision_eos|>",
    "<|audio_bos|>",
    "<|audio_eos|>",
]
# Qwen/Qwen2.5-Omni-*: ChatML with a long default system prompt about the Qwen team.
OMNI_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are Qwen, a virtual human "
    "capable of perceiving auditory and visual inputs.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    + content_loop("<|vision_bos|><|IMAGE|><|vision_eos|>")
    + "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_qwen2_5_omni(out_dir: str | Path, *, seed: int = 0) -> Path:
    """Qwen2.5-Omni (``qwen2_5_omni``): thinker only (``enable_audio_output=False``, no talker weights)."""
    out = prepare(out_dir, seed)
    media = {
        "image_token": "<|IMAGE|>",
        "audio_token": "<|AUDIO|>",
        "video_token": "<|VIDEO|>",
        "vision_bos_token": "<|vision_bos|>",
        "vision_eos_token": "<|vision_eos|>",
        "audio_bos_token": "<|audio_bos|>",
        "audio_eos_token": "<|audio_eos|>",
    }
    tokenizer = make_tokenizer(
        _OMNI_SPECIALS,
        chat_template=OMNI_TEMPLATE,
        eos="<|im_end|>",
        pad="<|endoftext|>",
        extra_special_tokens=media,
    )
    ids = tokenizer.convert_tokens_to_ids
    text = tiny_llama_text(
        tokenizer,
        **rope_fields(mrope_section=[2, 3, 3]),
        bos_token_id=None,
    )
    thinker = {
        "text_config": text,
        "vision_config": {
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
        "audio_config": {
            "d_model": 32,
            "encoder_layers": 1,
            "encoder_attention_heads": 2,
            "encoder_ffn_dim": 64,
            "output_dim": 64,
            "num_mel_bins": 128,
        },
        "image_token_index": ids("<|IMAGE|>"),
        "audio_token_index": ids("<|AUDIO|>"),
        "video_token_index": ids("<|VIDEO|>"),
        "vision_start_token_id": ids("<|vision_bos|>"),
        "vision_end_token_id": ids("<|vision_eos|>"),
        "audio_start_token_id": ids("<|audio_bos|>"),
        "audio_end_token_id": ids("<|audio_eos|>"),
    }
    config = Qwen2_5OmniConfig(thinker_config=thinker, enable_audio_output=False)
    pixels = 56 * 56
    processor = Qwen2_5OmniProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=pixels, max_pixels=pixels),
        video_processor=Qwen2VLVideoProcessor(min_pixels=pixels, max_pixels=pixels),
        feature_extractor=WhisperFeatureExtractor(feature_size=128),
        tokenizer=tokenizer,
        chat_template=OMNI_TEMPLATE,
    )
    save_checkpoint(out, Qwen2_5OmniForConditionalGeneration(config), processor, tokenizer)
    torch.save({}, out / "spk_dict.pt")  # from_pretrained insists on a speaker table, even without a talker
    return out


# Qwen/Qwen2-Audio-7B-Instruct: an audio-language model in the multimodal-LM mapping; it takes no images.
QWEN2_AUDIO_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    + content_loop("Audio 1: <|audio_bos|><|AUDIO|><|audio_eos|>\n")
    + "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_qwen2_audio(out_dir: str | Path, *, seed: int = 0) -> Path:
    """Qwen2-Audio (``qwen2_audio``): Whisper-style encoder and Qwen2; its processor takes no images."""
    out = prepare(out_dir, seed)
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|audio_bos|>", "<|audio_eos|>", "<|AUDIO|>"]
    tokenizer = make_tokenizer(
        specials, chat_template=QWEN2_AUDIO_TEMPLATE, eos="<|im_end|>", pad="<|endoftext|>"
    )
    config = Qwen2AudioConfig(
        audio_config={
            "d_model": 32,
            "encoder_layers": 1,
            "encoder_attention_heads": 2,
            "encoder_ffn_dim": 64,
            "num_mel_bins": 128,
        },
        text_config={"model_type": "qwen2", **tiny_llama_text(tokenizer)},
        audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"),
    )
    processor = Qwen2AudioProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=128),
        tokenizer=tokenizer,
        chat_template=QWEN2_AUDIO_TEMPLATE,
    )
    return save_checkpoint(out, Qwen2AudioForConditionalGeneration(config), processor, tokenizer)
