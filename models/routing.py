"""Which transformers class loads a checkpoint: decided from its ``config.json`` before any weights or code.

The config is read as plain JSON (``PretrainedConfig.get_config_dict``), so a refusal never downloads
weights or runs a checkpoint's own code. In order:

1. model types the benchmark cannot ask (PaliGemma) are refused with the reason;
2. image-text-to-text types load with ``AutoModelForImageTextToText``;
3. multimodal LMs outside that mapping (Phi-4-multimodal, the Qwen2.5-Omni family) load with
   ``AutoModelForMultimodalLM``; for Omni models only the *thinker* (the image-text-to-text part) is kept.
   Audio-only members of that mapping are refused once their processor shows no image processor
   (:func:`check_processor_takes_images`);
4. remote-code checkpoints (an ``auto_map``) need ``trust_remote_code=True``; they are loaded only when
   their code registers an image-text-to-text or a causal-LM class, and remote-code vision-language models
   without an image-text-to-text class (InternVL2.5/3 chat, MiniCPM-V, Phi-3.5-vision) are refused with
   what to use instead;
5. causal-LM types load as text-only models (they answer text-only rows and refuse images);
6. anything else is refused, naming the model type.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modality_conflict.models.errors import ModelArgumentError

IMAGE_TEXT_TO_TEXT = "AutoModelForImageTextToText"
MULTIMODAL_LM = "AutoModelForMultimodalLM"
CAUSAL_LM = "AutoModelForCausalLM"

UNSUPPORTED_MODEL_TYPES: dict[str, str] = {
    "paligemma": (
        "PaliGemma checkpoints have no chat template and their processor requires an image in every "
        "prompt, so the benchmark's text-only prompts cannot be asked"
    ),
}
"""Model types refused up front, with the reason."""

REMOTE_CODE_VLMS: dict[str, str] = {
    "internvl_chat": "Use the transformers-native port (an OpenGVLab/InternVL*-hf checkpoint) instead.",
    "minicpmv": "Use lmms-eval's minicpm_v wrapper with the modality_conflict_sampled task instead.",
    "phi3_v": "Use lmms-eval's phi3v wrapper with the modality_conflict_sampled task instead.",
}
"""Remote-code vision-language models without a transformers image-text-to-text class: what to use."""


@dataclass(frozen=True)
class Route:
    """How to load one checkpoint.

    Attributes
    ----------
    model_type
        The ``config.json`` ``model_type``.
    auto_class
        The name of the transformers auto class to load it with.
    multimodal
        Whether the checkpoint takes images (a processor is loaded) or is a text-only causal LM.
    """

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
    """The :class:`Route` of ``pretrained`` (see the module docstring).

    Raises
    ------
    ModelArgumentError
        For a model type the benchmark cannot run, with the reason and, where there is one, what to use.
    """
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES,
        MODEL_FOR_MULTIMODAL_LM_MAPPING_NAMES,
    )

    config = read_config_dict(pretrained, revision=revision)
    model_type = str(config.get("model_type", ""))
    auto_map = config.get("auto_map") or {}
    reason = UNSUPPORTED_MODEL_TYPES.get(model_type)
    if reason is not None:
        raise ModelArgumentError(f"{pretrained}: model_type {model_type!r} is not supported: {reason}")
    if model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        return Route(model_type, IMAGE_TEXT_TO_TEXT, True)
    if model_type in MODEL_FOR_MULTIMODAL_LM_MAPPING_NAMES:
        return Route(model_type, MULTIMODAL_LM, True)
    if auto_map:
        if not trust_remote_code:
            raise ModelArgumentError(
                f"{pretrained}: model_type {model_type!r} needs its own code (auto_map in config.json); "
                "pass trust_remote_code=True if you trust it"
            )
        if IMAGE_TEXT_TO_TEXT in auto_map:
            return Route(model_type, IMAGE_TEXT_TO_TEXT, True)
        if "AutoProcessor" in auto_map or model_type in REMOTE_CODE_VLMS:
            advice = REMOTE_CODE_VLMS.get(model_type, "")
            raise ModelArgumentError(
                f"{pretrained}: model_type {model_type!r} is a remote-code vision-language model "
                f"(auto_map {sorted(auto_map)}) without an image-text-to-text class; "
                f"modality_conflict_hf cannot give it images. {advice}".strip()
            )
        if CAUSAL_LM in auto_map:
            return Route(model_type, CAUSAL_LM, False)
    if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
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
