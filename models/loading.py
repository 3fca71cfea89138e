"""Loading a checkpoint for the wrapper: which dtype, which device, which processor (once, at
construction; which class loads it is ``routing``'s)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
from loguru import logger

from modality_conflict.models.errors import ModelArgumentError
from modality_conflict.models.routing import (
    check_processor_takes_images,
    load_routed_model,
    route_checkpoint,
)

__all__ = ["DEFAULT_IMAGE_TOKEN", "LoadedModel", "ModelArgumentError", "load_model", "parse_batch_size"]

DEFAULT_IMAGE_TOKEN = "<image>"


@dataclass(frozen=True)
class ProcessLayout:
    """Where this process sits in a data-parallel run."""

    rank: int
    local_rank: int
    world_size: int


def process_layout(accelerator: Any) -> ProcessLayout:
    """The layout under ``accelerate launch``, ``torchrun`` or a single process (Accelerate reports one
    process for ``torchrun``'s CPU-only workers, so torch.distributed or its environment is asked too)."""
    if accelerator.num_processes > 1:
        return ProcessLayout(
            accelerator.process_index, accelerator.local_process_index, accelerator.num_processes
        )
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
    else:
        rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    return ProcessLayout(rank, int(os.environ.get("LOCAL_RANK", rank)), world_size)


def resolve_dtype(dtype: Any, device: torch.device) -> Any:
    """The ``dtype`` to load with: ``"auto"`` is float32 on CPU and the checkpoint's own elsewhere."""
    if dtype is None or dtype == "auto":
        # Half precision on CPU is slow and less exact; on accelerators keep the checkpoint's dtype.
        return torch.float32 if device.type == "cpu" else "auto"
    if isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, str(dtype), None)
    if not isinstance(resolved, torch.dtype):
        raise ModelArgumentError(f"unknown dtype {dtype!r} (use auto, float32, float16 or bfloat16)")
    return resolved


def parse_batch_size(batch_size: int | str) -> int:
    """A positive batch size; ``auto`` is not supported and falls back to 1 (with a warning)."""
    if isinstance(batch_size, str) and batch_size.startswith("auto"):
        logger.warning("modality_conflict_hf: batch_size=auto is not supported; using 1")
        return 1
    try:
        value = int(batch_size)
    except (TypeError, ValueError):
        raise ModelArgumentError(f"batch_size must be a positive integer, got {batch_size!r}") from None
    if value < 1:
        raise ModelArgumentError(f"batch_size must be a positive integer, got {batch_size!r}")
    return value


BIDIRECTIONAL_ENCODER_ATTENTION = frozenset({"Phi4MultimodalVisionAttention"})
"""Image-encoder attention classes marked causal although the encoder is bidirectional: SDPA is then causal
without a patch mask and bidirectional with one, so an image's features depend on its batch."""


def repair_encoder_attention(model: Any) -> list[str]:
    """Make the attention of :data:`BIDIRECTIONAL_ENCODER_ATTENTION` bidirectional; the classes repaired."""
    repaired = set()
    for module in model.modules():
        name = type(module).__name__
        if name in BIDIRECTIONAL_ENCODER_ATTENTION and getattr(module, "is_causal", False):
            module.is_causal = False
            repaired.add(name)
    return sorted(repaired)


@dataclass
class LoadedModel:
    """A model with its processor and tokenizer, placed and ready for left-padded batches."""

    model: Any
    processor: Any
    tokenizer: Any
    text_only: bool
    device: torch.device
    layout: ProcessLayout
    image_token: str


def load_model(
    pretrained: str,
    *,
    accelerator: Any,
    device: str | None = None,
    device_map: str | None = None,
    dtype: Any = "auto",
    revision: str | None = None,
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
) -> LoadedModel:
    """Load ``pretrained`` with its processor (arguments as ``ModalityConflictHF``'s)."""
    from transformers import AutoProcessor, AutoTokenizer

    layout = process_layout(accelerator)
    device_map = device_map or None
    if layout.world_size > 1:
        # Data parallelism: one full model per process; lmms-eval shards the documents by rank.
        if device_map not in (None, "cpu"):
            raise ModelArgumentError("device_map cannot be combined with several processes")
        use_cuda = torch.cuda.is_available() and str(device or "cuda") != "cpu"
        placed = torch.device(f"cuda:{layout.local_rank}" if use_cuda else "cpu")
        device_map = None
    else:
        placed = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))

    load_kwargs: dict[str, Any] = {
        "dtype": resolve_dtype(dtype, placed),
        "trust_remote_code": trust_remote_code,
    }
    if revision:
        load_kwargs["revision"] = revision
    if attn_implementation:
        load_kwargs["attn_implementation"] = attn_implementation
    if device_map is not None:
        load_kwargs["device_map"] = device_map
    route = route_checkpoint(pretrained, trust_remote_code=trust_remote_code, revision=revision)
    model = load_routed_model(route, pretrained, load_kwargs)
    model.eval()
    for name in repair_encoder_attention(model):
        logger.warning(f"modality_conflict_hf: {name} is marked causal in transformers; made bidirectional")
    if device_map is None:
        model.to(placed)
    else:
        placed = model.device  # inputs go where the embeddings are

    processor_kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
    if revision:
        processor_kwargs["revision"] = revision
    if route.multimodal:
        if min_pixels is not None:
            processor_kwargs["min_pixels"] = int(min_pixels)
        if max_pixels is not None:
            processor_kwargs["max_pixels"] = int(max_pixels)
        try:
            processor = AutoProcessor.from_pretrained(pretrained, **processor_kwargs)
        except ImportError as error:
            raise ModelArgumentError(
                f"{pretrained}: the processor of {type(model).__name__} needs a package that is not "
                f"installed: {str(error).splitlines()[0]}"
            ) from error
        check_processor_takes_images(route, pretrained, processor)
    else:
        processor = AutoTokenizer.from_pretrained(pretrained, **processor_kwargs)
    inner = getattr(processor, "tokenizer", None)
    tokenizer = processor if inner is None else inner
    tokenizer.padding_side = "left"  # the answer position is the last column of the batch
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return LoadedModel(
        model=model,
        processor=processor,
        tokenizer=tokenizer,
        text_only=inner is None,
        device=placed,
        layout=layout,
        image_token=str(getattr(processor, "image_token", DEFAULT_IMAGE_TOKEN)),
    )
