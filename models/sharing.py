"""Image-prefix sharing: one vision encoding and one prefix pass per image, for all the prompts that show it.

Chat templates that put the images first make an image's prompts share their tokens up to its last image
token: the *prefix*. It is cut off (:func:`split_prompts`, :func:`split_encoded`), run once
(:func:`prefill`) and its cache forked (:func:`fork_cache`) for ``generate`` to continue with the
left-padded suffixes (:func:`continuation_inputs`), whose first step yields the answer position's logits
and lens exactly as a whole prompt does. Positions follow from the attention mask (multimodal RoPE adds
the prefix's ``rope_deltas``); where sliding-window attention would count the padding, a fork holds
suffixes of one length.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import transformers

SHARED_MODEL_TYPES = frozenset(
    {
        "llava",  # LLaVA-1.5 and Pixtral checkpoints
        "llava_next",
        "llava_onevision",
        "qwen2_vl",
        "qwen2_5_vl",
        "qwen3_vl",
        "idefics3",
        "smolvlm",
        "internvl",
        "gemma3",
        "mistral3",
        "aya_vision",
        "phi4_multimodal",
    }
)
"""Model types whose prompts share their image prefix (each checked against whole prompts in the tests)."""

UNSHARED_MODEL_TYPES = {
    "mllama": (
        "its text attends to the image through cross-attention masked by the image's real tiles, a "
        "per-token mask that generate does not carry over from a cached prefix"
    ),
    "qwen2_5_omni": (
        "its thinker recomputes the multimodal positions of the whole prompt, cached part included"
    ),
    "qwen2_5_omni_thinker": (
        "it recomputes the multimodal positions of the whole prompt, cached part included"
    ),
    "paligemma": "its prefix (image and text) attends bidirectionally, so no prompt part is shared",
}
"""Model types run on whole prompts, and why."""

if int(transformers.__version__.split(".")[0]) < 5:
    # Checked on the tiny zoo: under 4.x a forked prefix cache gives these other answers than whole prompts.
    UNSHARED_MODEL_TYPES.update(
        dict.fromkeys(
            ("qwen2_vl", "qwen2_5_vl", "qwen3_vl"),
            "under transformers 4.x its answers from a forked prefix cache differ from whole prompts",
        )
    )
    SHARED_MODEL_TYPES = SHARED_MODEL_TYPES - UNSHARED_MODEL_TYPES.keys()


@dataclass(frozen=True)
class SharingSupport:
    """Whether a model's prompts can continue a shared image prefix, or why not; the token the processor
    writes per image feature, and the text model's attention window (which counts padding), if any."""

    shared: bool
    reason: str = ""
    image_token_id: int | None = None
    sliding_window: int | None = None

    def fits(self, total_tokens: int) -> bool:
        """Whether a continuation of ``total_tokens`` (prefix, padded suffix and answer) may be padded."""
        return self.sliding_window is None or total_tokens < self.sliding_window


def _image_token_id(config: Any) -> int | None:
    for owner in (config, getattr(config, "vision_config", None)):
        for name in ("image_token_id", "image_token_index"):
            value = getattr(owner, name, None)
            if isinstance(value, int):
                return value
    return None


def sharing_support(model: Any, *, text_only: bool) -> SharingSupport:
    """Whether ``model`` can share image prefixes (see :data:`SHARED_MODEL_TYPES`)."""
    config = model.config
    model_type = str(getattr(config, "model_type", ""))
    if text_only:
        return SharingSupport(False, "a text-only model shows no images")
    if model_type in UNSHARED_MODEL_TYPES:
        return SharingSupport(False, UNSHARED_MODEL_TYPES[model_type])
    if model_type not in SHARED_MODEL_TYPES:
        return SharingSupport(False, f"model type {model_type!r} has not been checked for prefix sharing")
    image_token_id = _image_token_id(config)
    if image_token_id is None:
        return SharingSupport(False, "the config names no image token")
    get_text_config = getattr(config, "get_text_config", None)
    text_config = get_text_config() if callable(get_text_config) else config
    window = getattr(text_config, "sliding_window", None)
    return SharingSupport(
        True,
        image_token_id=image_token_id,
        sliding_window=int(window) if isinstance(window, int) and window > 0 else None,
    )


@dataclass(frozen=True)
class PrefixSplit:
    """A group's prompts cut after their shared image prefix: the processor's one-row inputs for the
    prefix (image tensors included), its length, and each prompt's token ids after it (at least one)."""

    prefix: dict[str, Any]
    length: int
    suffixes: list[list[int]]


def _images_end(ids: Sequence[int], image_token_id: int) -> int:
    """One past the last image token of ``ids`` (0 when there is none)."""
    for position in range(len(ids) - 1, -1, -1):
        if ids[position] == image_token_id:
            return position + 1
    return 0


def _prefix_inputs(first: Mapping[str, Any], length: int) -> dict[str, Any]:
    """The processor's one-row inputs cut to the first ``length`` tokens (image tensors kept whole)."""
    shape = tuple(first["input_ids"].shape)
    out = {}
    for key, value in first.items():
        per_token = isinstance(value, torch.Tensor) and tuple(value.shape) == shape
        out[key] = value[:, :length] if per_token else value
    return out


def split_prompts(
    first: Mapping[str, Any],
    raw_ids: Sequence[Sequence[int]],
    *,
    image_token_id: int,
    boundary_ids: Container[int],
) -> PrefixSplit | str:
    """Cut a group's prompts after their image prefix, from one processor call and the tokenizer.

    The processor's tokens of the first prompt and the tokenizer's of every prompt end alike after the
    images: their common tail, cut at the last image token at the latest, is the suffix. Both sides of the
    cut must be added tokens (``boundary_ids``), which the tokenizer never merges with the text that follows.
    Returns a string saying why when the prompts cannot be cut this way.
    """
    ids = first["input_ids"][0].tolist()
    images_end = _images_end(ids, image_token_id)
    if images_end == 0:
        return "the prompt has no image tokens"
    raw_first = list(raw_ids[0])
    common = 0
    limit = min(len(ids) - images_end, len(raw_first))
    while common < limit and ids[-1 - common] == raw_first[-1 - common]:
        common += 1
    if common == 0:
        return "the text after the image tokenises differently once the image is expanded"
    length, raw_cut = len(ids) - common, len(raw_first) - common
    if ids[length - 1] not in boundary_ids or raw_first[raw_cut - 1] not in boundary_ids:
        return "the image tokens end in text that the tokenizer may merge with the prompt"
    head = raw_first[:raw_cut]
    suffixes = []
    for row in raw_ids:
        if list(row[:raw_cut]) != head or len(row) <= raw_cut:
            return "the prompts differ before the end of their image tokens"
        suffixes.append(list(row[raw_cut:]))
    return PrefixSplit(_prefix_inputs(first, length), length, suffixes)


def split_encoded(
    first: Mapping[str, Any], encoded_ids: Sequence[Sequence[int]], *, image_token_id: int
) -> PrefixSplit | str:
    """Cut a group's prompts after their longest common prefix, from the processor's ids of each.

    Used where :func:`split_prompts` cannot be sure of the tokenisation at the cut. The prefix must hold
    every image token and leave each prompt at least its last token.
    """
    ids = first["input_ids"][0].tolist()
    images_end = _images_end(ids, image_token_id)
    if images_end == 0:
        return "the prompt has no image tokens"
    length = min(len(row) for row in encoded_ids) - 1
    for row in encoded_ids:
        common = 0
        while common < length and row[common] == ids[common]:
            common += 1
        length = common
    if length < images_end:
        return "the prompts differ before the end of their image tokens"
    return PrefixSplit(_prefix_inputs(first, length), length, [list(row[length:]) for row in encoded_ids])


_TOWER_NAMES = ("vision_tower", "visual", "vision_model", "vision_encoder", "image_encoder")


def vision_tower(model: Any) -> Any:
    """The model's vision encoder module: by its usual attribute names, else the first submodule whose
    class is a vision model or transformer (Phi-4's ``img_processor``); None when there is none."""
    for owner in (model, getattr(model, "model", None)):
        for name in _TOWER_NAMES:
            module = getattr(owner, name, None) if owner is not None else None
            if isinstance(module, torch.nn.Module):
                return module
    for _, module in model.named_modules():
        kind = type(module).__name__
        if "Vision" in kind and kind.endswith(("VisionModel", "VisionTransformer")):
            return module
    return None


def _accepts(model: Any, name: str) -> bool:
    try:
        return name in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


@torch.no_grad()
def prefill(model: Any, split: PrefixSplit) -> Any:
    """Run the prefix once (images included) and return its key/value cache."""
    extra = {"logits_to_keep": 1} if _accepts(model, "logits_to_keep") else {}
    output = model(**split.prefix, use_cache=True, **extra)
    cache = getattr(output, "cache", None)
    if cache is None:
        cache = getattr(output, "past_key_values", None)
    if cache is None:
        raise RuntimeError(f"{type(model).__name__} returned no key/value cache for the prefix")
    return cache


_VIEW_SAFE_LAYERS = ("DynamicLayer", "DynamicSlidingWindowLayer")


def fork_cache(cache: Any, rows: int) -> Any:
    """A cache holding ``rows`` copies of a one-row cache, the original untouched: ``DynamicCache`` layers
    append by concatenation, so they start as broadcast views; other layer kinds are deep-copied."""
    layers = getattr(cache, "layers", None)
    if layers is None or any(type(layer).__name__ not in _VIEW_SAFE_LAYERS for layer in layers):
        fork = copy.deepcopy(cache)
        fork.batch_repeat_interleave(rows)
        return fork
    fork = copy.copy(cache)
    fork.layers = []
    for layer in layers:
        copied = copy.copy(layer)
        keys = getattr(layer, "keys", None)
        if getattr(layer, "is_initialized", False) and keys is not None and keys.numel() > 0:
            copied.keys = keys.expand(rows, *keys.shape[1:])
            copied.values = layer.values.expand(rows, *layer.values.shape[1:])
        fork.layers.append(copied)
    return fork


def continuation_inputs(
    split: PrefixSplit, rows: Sequence[int], pad_token_id: int, device: torch.device
) -> dict[str, torch.Tensor]:
    """``generate`` inputs continuing the prefix with the suffixes of ``rows`` (left-padded)."""
    suffixes = [split.suffixes[row] for row in rows]
    width = max(len(s) for s in suffixes)
    ids = torch.full((len(rows), split.length + width), pad_token_id, dtype=torch.long)
    mask = torch.zeros((len(rows), split.length + width), dtype=torch.long)
    ids[:, : split.length] = split.prefix["input_ids"][0, : split.length].cpu()
    mask[:, : split.length] = 1
    for index, suffix in enumerate(suffixes):
        ids[index, ids.shape[1] - len(suffix) :] = torch.tensor(suffix, dtype=torch.long)
        mask[index, ids.shape[1] - len(suffix) :] = 1
    return {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
