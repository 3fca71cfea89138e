"""Shared pieces of the tiny checkpoints: the tokenizer, the chat-template fragments and the folder writer."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import transformers
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from modality_conflict.dataset_builder.constants import COLORS
from modality_conflict.models.checkpoint_folder import content_loop as content_loop
from modality_conflict.models.checkpoint_folder import prepare as prepare
from modality_conflict.models.checkpoint_folder import save_checkpoint as save_checkpoint

_SHAPES = ("circle", "square", "triangle", "star", "hexagon", "pentagon", "diamond", "ellipse", "cross")
_OBJECTS = ("ball", "box", "apple", "banana", "sky", "grass", "grape", "mailbox", "sapphire", "tomato")
# Closed answer sets of attribute questions (shape, material, the colours of CLEVR-style scenes).
_ATTRIBUTE_ANSWERS = ("cube", "sphere", "cylinder", "rubber", "metal", "gray", "brown", "cyan")

# Small sizes keep each forward pass in the millisecond range on one CPU core.
TEXT_HIDDEN = 64
TEXT_LAYERS = 3
IMAGE_SIZE = 32
PATCH = 8
_VOCAB_SIZE = 640

#: A two-layer SigLIP-style vision tower over 32 px images in 8 px patches (16 patches).
SIGLIP_VISION = {
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "image_size": IMAGE_SIZE,
    "patch_size": PATCH,
}
#: The image-grid tokens of the Idefics3 / SmolVLM tokenizers.
GRID_TOKENS = [f"<row_{i}_col_{j}>" for i in range(1, 7) for j in range(1, 7)]
#: The installed transformers' major version: 4.x and 5.x name some config fields differently.
TRANSFORMERS_MAJOR = int(transformers.__version__.split(".")[0])


def rope_fields(**extra: Any) -> dict[str, Any]:
    """Default RoPE (theta 10000, plus ``extra`` such as ``mrope_section``) under the installed
    transformers' names: 5.x ``rope_parameters``, 4.x ``rope_theta`` and ``rope_scaling``."""
    if TRANSFORMERS_MAJOR >= 5:
        return {"rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, **extra}}
    return {"rope_theta": 10000.0, "rope_scaling": {"rope_type": "default", **extra}}


def _corpus() -> list[str]:
    """Sentences holding every word a benchmark prompt or answer uses, repeated so BPE merges them whole."""
    command = "Please use one word to answer this question."
    lines = [
        "A chat between a user and an assistant. You are a helpful assistant.",
        "Today is the day. The current date is known. Cutting Knowledge Date: December 2023",
    ] + ["USER: ASSISTANT: User: Assistant: system user assistant model\nsystem\nuser\nassistant\n"] * 8
    for shape in _SHAPES + _OBJECTS:
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
    for word in _ATTRIBUTE_ANSWERS:
        lines += [f"{word} {word.capitalize()} {word}.", f"{word.capitalize()}. {word.capitalize()}"]
    return lines * 3


@functools.lru_cache(maxsize=1)
def _base_tokenizer_json() -> str:
    """A byte-level BPE (the scheme of Llama-3, Qwen, SmolLM2) trained once per process on the corpus."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=_VOCAB_SIZE,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_corpus(), trainer=trainer)
    return tokenizer.to_str()


def make_tokenizer(
    special_tokens: Sequence[str],
    *,
    chat_template: str | None,
    bos: str | None = None,
    eos: str | None = None,
    pad: str | None = None,
    unk: str | None = None,
    add_bos: bool = False,
    extra_special_tokens: dict[str, str] | None = None,
    tokenizer_class: str | None = None,
) -> PreTrainedTokenizerFast:
    """A fast tokenizer over the shared BPE with the given special tokens.

    ``add_bos=True`` installs a post-processor that prefixes ``bos`` on every encode with special tokens,
    as the Llama, Mistral, Gemma and Cohere tokenizers do; without it no token is ever added, as for
    Qwen and SmolLM2. The special tokens take the ids right after the trained vocabulary, in order.
    ``tokenizer_class`` names the fast tokenizer class a processor insists on under transformers 4.x
    (``Qwen2TokenizerFast``, ``GemmaTokenizerFast``); 5.x processors take any fast tokenizer.
    """
    tokenizer = Tokenizer.from_str(_base_tokenizer_json())
    named = [t for t in (unk, bos, eos, pad) if t is not None]
    ordered = list(dict.fromkeys([*named, *special_tokens, *(extra_special_tokens or {}).values()]))
    tokenizer.add_special_tokens(ordered)
    if add_bos:
        if bos is None:
            raise ValueError("add_bos needs a bos token")
        bos_id = tokenizer.token_to_id(bos)
        tokenizer.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)]
        )
    roles = {"bos_token": bos, "eos_token": eos, "pad_token": pad, "unk_token": unk}
    wrapper_class = PreTrainedTokenizerFast
    if tokenizer_class is not None and TRANSFORMERS_MAJOR < 5:
        wrapper_class = getattr(transformers, tokenizer_class)
    wrapped = wrapper_class(
        tokenizer_object=tokenizer,
        **{k: v for k, v in roles.items() if v is not None},
        extra_special_tokens=extra_special_tokens or {},
        # As the real checkpoints' tokenizers (and 5.x's default): no token_type_ids, which 4.x would add.
        model_input_names=["input_ids", "attention_mask"],
    )
    wrapped.chat_template = chat_template
    return wrapped


def images_then_text(image_text: str, *, text_suffix: str = "") -> str:
    """Jinja fragment writing every image of a message first, then every text part (LLaVA-HF style)."""
    return (
        "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
        "{% for part in message['content'] if part['type'] == 'image' %}" + image_text + "{% endfor %}"
        "{% for part in message['content'] if part['type'] == 'text' %}"
        "{{ part['text'] + '" + text_suffix + "' }}{% endfor %}{% endif %}"
    )


def tiny_llama_text(tokenizer: PreTrainedTokenizerFast, **overrides: Any) -> dict[str, Any]:
    """Text-config fields of a tiny Llama-like decoder (also fits Mistral, Qwen2, Cohere2, Gemma3)."""
    config: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "hidden_size": TEXT_HIDDEN,
        "intermediate_size": 2 * TEXT_HIDDEN,
        "num_hidden_layers": TEXT_LAYERS,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "head_dim": TEXT_HIDDEN // 4,
        "max_position_embeddings": 1024,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": False,
    }
    config.update(overrides)
    return config
