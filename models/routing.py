"""Which transformers class loads a checkpoint: decided from its ``config.json`` before any weights or code.

A refusal never downloads weights or runs a checkpoint's code. Unsupported types, remote-code VLMs
without an image-text-to-text class and families this transformers cannot load are refused first;
then image-text-to-text, multimodal-LM (an Omni model's thinker), trusted remote-code and causal-LM
checkpoints load, in that order.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

from modality_conflict.models.errors import ModelArgumentError

IMAGE_TEXT_TO_TEXT = "AutoModelForImageTextToText"
MULTIMODAL_LM = "AutoModelForMultimodalLM"
CAUSAL_LM = "AutoModelForCausalLM"

UNSUPPORTED_MODEL_TYPES: dict[str, str] = {
    "paligemma": (
        "PaliGemma's processor requires an image in every prompt (it raises on a prompt without one), so "
        "the benchmark's text-only rows cannot be asked, whatever chat template the checkpoint has"
    ),
}
"""Model types refused up front, with the reason."""

REMOTE_CODE_VLMS: dict[str, str] = {
    "internvl_chat": "Use the transformers-native port (an OpenGVLab/InternVL*-hf checkpoint) instead.",
    "minicpmv": "Use lmms-eval's minicpm_v wrapper with the modality_conflict_sampled task instead.",
    "phi3_v": "Use lmms-eval's phi3v wrapper with the modality_conflict_sampled task instead.",
}
"""Remote-code vision-language models without a transformers image-text-to-text class: what to use."""

NEEDS_TRANSFORMERS: dict[str, tuple[int, str]] = {
    model_type: (5, "it loads through AutoModelForMultimodalLM, which transformers 4.x lacks")
    for model_type in ("phi4_multimodal", "qwen2_5_omni", "qwen3_omni_moe", "qwen2_audio")
}
"""Model types the benchmark runs only from a transformers major version on: ``(major, why)``."""


def transformers_major() -> int:
    """The major version of the installed transformers."""
    return int(version("transformers").split(".")[0])


@dataclass(frozen=True)
class Route:
    """How to load one checkpoint: the transformers auto class, and whether it takes images (a processor
    is loaded) or is a text-only causal LM."""

    model_type: str
    auto_class: str
    multimodal: bool


def read_config_dict(pretrained: str, *, revision: str | None = None) -> dict[str, Any]:
    """``config.json`` of a local folder or Hub repository, as JSON (no code runs)."""
    from transformers import PretrainedConfig

    config, _ = PretrainedConfig.get_config_dict(pretrained, **({"revision": revision} if revision else {}))
    return config


def route_checkpoint(
    pretrained: str, *, trust_remote_code: bool = False, revision: str | None = None
) -> Route:
    """The :class:`Route` of ``pretrained`` (see the module docstring)."""
    from transformers.models.auto import modeling_auto

    causal_lm_types = modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
    image_text_types = modeling_auto.MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
    # transformers 5 added the multimodal-LM mapping; 4.x models of those types are refused above.
    multimodal_lm_types = getattr(modeling_auto, "MODEL_FOR_MULTIMODAL_LM_MAPPING_NAMES", {})

    config = read_config_dict(pretrained, revision=revision)
    model_type = str(config.get("model_type", ""))
    auto_map = config.get("auto_map") or {}
    reason = UNSUPPORTED_MODEL_TYPES.get(model_type)
    if reason is not None:
        raise ModelArgumentError(f"{pretrained}: model_type {model_type!r} is not supported: {reason}")
    needed = NEEDS_TRANSFORMERS.get(model_type)
    if needed is not None and transformers_major() < needed[0]:
        raise ModelArgumentError(
            f"{pretrained}: model_type {model_type!r} needs transformers >= {needed[0]}.0 ({needed[1]}); "
            f"this environment has transformers {version('transformers')}"
        )
    if model_type in REMOTE_CODE_VLMS and IMAGE_TEXT_TO_TEXT not in auto_map:
        raise ModelArgumentError(
            f"{pretrained}: model_type {model_type!r} is a remote-code vision-language model without an "
            f"image-text-to-text class, which modality_conflict_hf cannot give images (trust_remote_code "
            f"would not change that). {REMOTE_CODE_VLMS[model_type]}"
        )
    if model_type in image_text_types:
        return Route(model_type, IMAGE_TEXT_TO_TEXT, True)
    if model_type in multimodal_lm_types:
        return Route(model_type, MULTIMODAL_LM, True)
    if auto_map:
        if not trust_remote_code:
            raise ModelArgumentError(
                f"{pretrained}: model_type {model_type!r} needs its own code (auto_map in config.json); "
                "pass trust_remote_code=True if you trust it"
            )
        if IMAGE_TEXT_TO_TEXT in auto_map:
            return Route(model_type, IMAGE_TEXT_TO_TEXT, True)
        if "AutoProcessor" in auto_map:
            raise ModelArgumentError(
                f"{pretrained}: model_type {model_type!r} is a remote-code vision-language model "
                f"(auto_map {sorted(auto_map)}) without an image-text-to-text class; "
                "modality_conflict_hf cannot give it images"
            )
        if CAUSAL_LM in auto_map:
            return Route(model_type, CAUSAL_LM, False)
    if model_type in causal_lm_types:
        return Route(model_type, CAUSAL_LM, False)
    raise ModelArgumentError(
        f"{pretrained}: model_type {model_type!r} is neither an image-text-to-text model, a multimodal LM "
        "nor a causal LM in this transformers version"
    )


def load_routed_model(route: Route, pretrained: str, load_kwargs: dict[str, Any]) -> Any:
    """The model of ``pretrained`` loaded as ``route`` says (the thinker of an Omni model)."""
    import transformers

    model = getattr(transformers, route.auto_class).from_pretrained(pretrained, **load_kwargs)
    thinker = getattr(model, "thinker", None)
    # Omni models: the thinker reads images and text and writes text; the talker only speaks.
    return thinker if route.auto_class == MULTIMODAL_LM and thinker is not None else model


def check_processor_takes_images(route: Route, pretrained: str, processor: Any) -> None:
    """Refuse a multimodal checkpoint whose processor has no image processor (an audio-language model)."""
    if route.multimodal and getattr(processor, "image_processor", None) is None:
        raise ModelArgumentError(
            f"{pretrained}: model_type {route.model_type!r} takes no images (its processor "
            f"{type(processor).__name__} has no image processor); the benchmark needs an image-text model"
        )
