"""Tiny multimodal checkpoints built on the spot, for tests and smoke runs without any hub access.

Every builder writes an ordinary Hugging Face checkpoint folder (``save_pretrained`` for the model, the
processor, the tokenizer and the generation config), so the folder loads through ``AutoProcessor`` /
``AutoModelForImageTextToText`` exactly like a downloaded one: lmms-eval's own ``llava_hf`` and
``qwen2_vl`` wrappers and the project's ``modality_conflict_hf`` wrapper all accept it as ``pretrained``
(``llava_hf`` needs ``device_map=cpu`` spelled out under transformers 5, which rejects its default ``""``;
``qwen2_vl`` is fastest with ``max_pixels=3136``).

The random-weight models (:func:`build_tiny_llava`, :func:`build_tiny_qwen2_vl`,
:func:`build_tiny_idefics3`) answer noise; they exist to exercise the plumbing (prompt building, image
token expansion, batching, entropy and logit-lens bookkeeping) in milliseconds. Their tokenizer is a
byte-level BPE trained here over a small corpus holding the benchmark's vocabulary (colours, shapes, the
question and the command), plus the special tokens each architecture needs.

A LLaVA around the real SmolLM2-135M-Instruct is in :mod:`modality_conflict.models.smollm2_llava`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    GenerationConfig,
    Idefics3Config,
    Idefics3ForConditionalGeneration,
    Idefics3ImageProcessor,
    Idefics3Processor,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
    Qwen2VLConfig,
    Qwen2VLForConditionalGeneration,
    Qwen2VLImageProcessor,
    Qwen2VLProcessor,
    Qwen2VLVideoProcessor,
)

from modality_conflict.dataset_builder.constants import COLORS

__all__ = [
    "build_tiny_idefics3",
    "build_tiny_llava",
    "build_tiny_qwen2_vl",
    "content_loop",
    "prepare_folder",
    "save_generation_config",
    "save_llava_processor",
]

# The tokenizers' training corpus: the benchmark's answers plus shapes and objects a prompt may name.
_CORPUS_SHAPES = (
    "circle",
    "square",
    "triangle",
    "star",
    "hexagon",
    "pentagon",
    "diamond",
    "ellipse",
    "cross",
)
_OBJECTS = ("ball", "box", "apple", "banana", "sky", "grass", "grape", "mailbox", "sapphire", "tomato")

# Small sizes keep each forward pass in the millisecond range on one CPU core.
_TEXT_HIDDEN = 64
_TEXT_LAYERS = 3
_VOCAB_SIZE = 640
_IMAGE_SIZE = 32


# ---------------------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------------------


def _corpus() -> list[str]:
    """Sentences covering every word a benchmark prompt or answer uses, repeated so BPE merges them whole."""
    command = "Please use one word to answer this question."
    lines: list[str] = [
        "A chat between a user and an assistant. You are a helpful assistant.",
    ] + ["USER: ASSISTANT: User: Assistant: system user assistant\nsystem\nuser\nassistant\n"] * 8
    for shape in _CORPUS_SHAPES + _OBJECTS:
        question = f"What color is the {shape}?"
        lines.append(f"{question} {command}")
        for i, color in enumerate(COLORS):
            other = COLORS[(i + 1) % len(COLORS)]
            lines += [
                f"The {shape} is {color}. {question} {command}",
                f"The {shape}'s color is the same as a {other}. The {other} is {color}.",
                f"{color} {color.capitalize()} {color.upper()} {color}.",
                f"{color.capitalize()}. {color.capitalize()}",
            ]
    return lines * 3


def _train_tokenizer(special_tokens: list[str], *, vocab_size: int = _VOCAB_SIZE) -> Tokenizer:
    """Train a byte-level BPE (the scheme of Llama-3, Qwen and SmolLM2) on the benchmark corpus."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(), trainer=trainer)
    return tokenizer


def _wrap_tokenizer(
    tokenizer: Tokenizer, *, chat_template: str, special: dict[str, str], extra: list[str]
) -> PreTrainedTokenizerFast:
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tokenizer, **special)
    extra = [t for t in extra if t not in special.values()]
    if extra:
        wrapped.add_special_tokens({"additional_special_tokens": extra})
    wrapped.chat_template = chat_template
    return wrapped


def content_loop(image_text: str) -> str:
    """Jinja fragment rendering a message's content, whether a plain string or a list of typed parts."""
    return (
        "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
        "{% for part in message['content'] %}"
        "{% if part['type'] == 'image' or 'image' in part %}"
        + image_text
        + "{% elif part['type'] == 'text' %}"
        "{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    )


# LLaVA-1.5 style ("USER: <image>\n... ASSISTANT:"): the answer follows the colon after a space.
_LLAVA_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] }} "
    "{% elif message['role'] == 'user' %}USER: " + content_loop("<image>\n") + " "
    "{% else %}ASSISTANT: " + content_loop("") + "{{ eos_token }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)

# ChatML with Qwen2-VL's vision markers; the answer starts right after "assistant\n".
_QWEN_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    + content_loop("<|vision_start|><|image_pad|><|vision_end|>")
    + "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Idefics3 / SmolVLM style ("User:<image>...<end_of_utterance>\nAssistant:"); answers start with a space.
_IDEFICS3_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'] is not string and message['content'][0]['type'] == 'image' %}:"
    "{% else %}: {% endif %}"
    + content_loop("<image>")
    + "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)


def save_generation_config(out: Path, tokenizer: PreTrainedTokenizerFast) -> None:
    GenerationConfig(
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        do_sample=False,
        max_new_tokens=8,
    ).save_pretrained(out)


def _tiny_llama_config(tokenizer: PreTrainedTokenizerFast, vocab_size: int) -> dict[str, Any]:
    return {
        "model_type": "llama",
        "vocab_size": vocab_size,
        "hidden_size": _TEXT_HIDDEN,
        "intermediate_size": 2 * _TEXT_HIDDEN,
        "num_hidden_layers": _TEXT_LAYERS,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": False,
    }


def prepare_folder(out_dir: str | Path, seed: int) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    return out


# ---------------------------------------------------------------------------------------------------------
# Random-weight checkpoints
# ---------------------------------------------------------------------------------------------------------


def _tiny_clip_vision() -> CLIPVisionConfig:
    # 32 px images in 8 px patches: 16 patches + CLS; LLaVA's "default" strategy drops CLS -> 16 image tokens.
    return CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=_IMAGE_SIZE,
        patch_size=8,
        projection_dim=32,
    )


def clip_image_processor(size: int) -> CLIPImageProcessor:
    return CLIPImageProcessor(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        do_center_crop=True,
    )


def save_llava_processor(
    out: Path, tokenizer: PreTrainedTokenizerFast, *, image_size: int, patch: int, template: str
) -> None:
    """Save a LLaVA processor (CLIP images, ``default`` feature strategy) and the generation config."""
    processor = LlavaProcessor(
        image_processor=clip_image_processor(image_size),
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=template,
    )
    processor.save_pretrained(out)
    save_generation_config(out, tokenizer)


def _llava_tokenizer(base: Tokenizer | None = None) -> PreTrainedTokenizerFast:
    tokenizer = base or _train_tokenizer(["<unk>", "<s>", "</s>", "<pad>", "<image>"])
    return _wrap_tokenizer(
        tokenizer,
        chat_template=_LLAVA_TEMPLATE,
        special={"unk_token": "<unk>", "bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>"},
        extra=["<image>"],
    )


def build_tiny_llava(out_dir: str | Path, *, seed: int = 0) -> Path:
    """Write a random-weight LLaVA (tiny CLIP vision tower + tiny Llama) checkpoint folder.

    Parameters
    ----------
    out_dir
        Folder to write (created if missing).
    seed
        Seed of the weight initialisation; the same seed gives the same weights.

    Returns
    -------
    Path
        ``out_dir``, loadable with ``LlavaForConditionalGeneration`` / ``AutoProcessor``.
    """
    out = prepare_folder(out_dir, seed)
    tokenizer = _llava_tokenizer()
    vision = _tiny_clip_vision()
    config = LlavaConfig(
        vision_config=vision.to_dict(),
        text_config=_tiny_llama_config(tokenizer, len(tokenizer)),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=(_IMAGE_SIZE // vision.patch_size) ** 2,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlavaForConditionalGeneration(config).eval()
    model.save_pretrained(out)
    save_llava_processor(
        out, tokenizer, image_size=_IMAGE_SIZE, patch=vision.patch_size, template=_LLAVA_TEMPLATE
    )
    return out


_QWEN_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
]


def build_tiny_qwen2_vl(out_dir: str | Path, *, seed: int = 0) -> Path:
    """Write a random-weight Qwen2-VL checkpoint folder (patch 14, 2x2 merge, tiny ViT and decoder).

    The image processor keeps Qwen's 28 px resize factor and caps images at ``56 * 56`` pixels, so every
    image becomes a 4x4 patch grid, i.e. 4 image tokens after merging. Parameters as in
    :func:`build_tiny_llava`.
    """
    out = prepare_folder(out_dir, seed)
    tokenizer = _wrap_tokenizer(
        _train_tokenizer(_QWEN_SPECIALS),
        chat_template=_QWEN_TEMPLATE,
        special={"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
        extra=_QWEN_SPECIALS,
    )
    head_dim = 16
    config = Qwen2VLConfig(
        text_config={
            "vocab_size": len(tokenizer),
            "hidden_size": 4 * head_dim,
            "intermediate_size": 8 * head_dim,
            "num_hidden_layers": _TEXT_LAYERS,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "max_position_embeddings": 1024,
            # Multimodal RoPE splits each head's rotary half (8 frequencies) over (time, height, width).
            "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]},
            "bos_token_id": None,
            "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id,
        },
        vision_config={
            "depth": 2,
            "embed_dim": 32,
            "hidden_size": 4 * head_dim,
            "num_heads": 2,
            "mlp_ratio": 2,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        },
        image_token_id=tokenizer.convert_tokens_to_ids("<|image_pad|>"),
        video_token_id=tokenizer.convert_tokens_to_ids("<|video_pad|>"),
        vision_start_token_id=tokenizer.convert_tokens_to_ids("<|vision_start|>"),
        vision_end_token_id=tokenizer.convert_tokens_to_ids("<|vision_end|>"),
    )
    model = Qwen2VLForConditionalGeneration(config).eval()
    model.save_pretrained(out)
    pixels = 56 * 56
    processor = Qwen2VLProcessor(
        image_processor=Qwen2VLImageProcessor(min_pixels=pixels, max_pixels=pixels),
        video_processor=Qwen2VLVideoProcessor(min_pixels=pixels, max_pixels=pixels),
        tokenizer=tokenizer,
        chat_template=_QWEN_TEMPLATE,
    )
    processor.save_pretrained(out)
    save_generation_config(out, tokenizer)
    return out


_IDEFICS3_SPECIALS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<end_of_utterance>",
    "<fake_token_around_image>",
    "<image>",
    "<global-img>",
] + [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]


def build_tiny_idefics3(out_dir: str | Path, *, seed: int = 0) -> Path:
    """Write a random-weight Idefics3 (SmolVLM-style) checkpoint folder.

    Images are resized to 32x32 without splitting; a 4x4 patch grid shuffled by scale factor 2 gives 4
    ``<image>`` tokens per image. Parameters as in :func:`build_tiny_llava`.
    """
    out = prepare_folder(out_dir, seed)
    tokenizer = _wrap_tokenizer(
        _train_tokenizer(_IDEFICS3_SPECIALS),
        chat_template=_IDEFICS3_TEMPLATE,
        special={
            "bos_token": "<|im_start|>",
            "eos_token": "<end_of_utterance>",
            "pad_token": "<|endoftext|>",
        },
        extra=_IDEFICS3_SPECIALS,
    )
    patch, scale = 8, 2
    image_seq_len = (_IMAGE_SIZE // patch) ** 2 // scale**2
    config = Idefics3Config(
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": _IMAGE_SIZE,
            "patch_size": patch,
        },
        text_config=_tiny_llama_config(tokenizer, len(tokenizer)),
        scale_factor=scale,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Idefics3ForConditionalGeneration(config).eval()
    model.save_pretrained(out)
    processor = Idefics3Processor(
        image_processor=Idefics3ImageProcessor(
            size={"longest_edge": _IMAGE_SIZE},
            max_image_size={"longest_edge": _IMAGE_SIZE},
            do_image_splitting=False,
        ),
        tokenizer=tokenizer,
        image_seq_len=image_seq_len,
        chat_template=_IDEFICS3_TEMPLATE,
    )
    processor.save_pretrained(out)
    save_generation_config(out, tokenizer)
    return out
