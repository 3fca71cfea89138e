"""What the wrapper asked of the model: the counts of a run and the forward hooks that keep them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


@dataclass
class RunStats:
    """Counts of what the wrapper asked of the model since it was made (summed over ``generate_until``)."""

    prompts: int = 0
    #: Calls of the vision tower (one per batch of images), and what they encoded: images, or crops.
    vision_calls: int = 0
    vision_rows: int = 0
    #: Images decoded from the dataset while grouping requests.
    decoded_images: int = 0
    #: Prompt tokens run through the model (padding excluded, image tokens included), one-token decoding
    #: steps summed over rows, and image groups answered from one shared prefix.
    prefill_tokens: int = 0
    decoding_tokens: int = 0
    shared_groups: int = 0


class RunCounters:
    """Forward hooks of :class:`~modality_conflict.models.hf_model.ModalityConflictHF` that fill its
    ``stats`` (a :class:`RunStats`) and ``n_forward_passes``."""

    stats: RunStats
    n_forward_passes: int

    def _count_forward(self, _module: Any, _args: Any) -> None:
        self.n_forward_passes += 1

    def _count_tokens(self, _module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if not isinstance(ids, torch.Tensor):
            return
        width = ids.shape[-1]
        # A decoding step: one new token per row over a cache (``cache`` in transformers 5, else
        # ``past_key_values``).
        if width == 1 and (kwargs.get("cache") is not None or kwargs.get("past_key_values") is not None):
            self.stats.decoding_tokens += ids.shape[0]
            return
        mask = kwargs.get("attention_mask")
        if isinstance(mask, torch.Tensor) and mask.ndim == 2:
            self.stats.prefill_tokens += int(mask[:, -width:].sum())
        else:
            self.stats.prefill_tokens += ids.numel()

    def _count_image_encoding(self, _module: Any, args: Any, kwargs: dict[str, Any]) -> None:
        self.stats.vision_calls += 1
        grid = kwargs.get("grid_thw", kwargs.get("image_grid_thw"))
        pixels = args[0] if args else kwargs.get("pixel_values")
        if isinstance(grid, torch.Tensor):
            self.stats.vision_rows += int(grid.shape[0])
        elif isinstance(pixels, torch.Tensor) and pixels.ndim >= 4:
            self.stats.vision_rows += int(pixels.shape[0])
        else:
            self.stats.vision_rows += 1
