"""The demo model's training loop: the vision tower alone on auxiliary heads, then the whole LLaVA.

Training never pairs an image with a text that contradicts it: conflict behaviour is left to emerge.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import LlavaForConditionalGeneration

from modality_conflict.dataset_builder.constants import COLORS, SHAPES, VISUAL_TIERS
from modality_conflict.dataset_builder.prompts import prompt_for
from modality_conflict.models.demo.images import ImageBank, render_training_images
from modality_conflict.models.demo.recipe import TrainingRecipe, build_model_config
from modality_conflict.models.demo.texts import Encoder, TextSampler, question

__all__ = ["deterministic_torch", "non_finite_tensors", "train_model"]


@contextlib.contextmanager
def deterministic_torch() -> Iterator[None]:
    """One thread and deterministic kernels inside the block; the caller's settings restored after it."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def non_finite_tensors(model: nn.Module) -> list[str]:
    """Names of the model's tensors that hold a NaN or an infinity."""
    return [name for name, tensor in model.state_dict().items() if not bool(torch.isfinite(tensor).all())]


def train_model(
    processor: Any, recipe: TrainingRecipe, *, seed: int, log: Callable[[str], None] | None = None
) -> LlavaForConditionalGeneration:
    """Train the demo LLaVA for ``processor`` (its tokenizer and image processor) and return it in float16.

    The caller seeds torch (the weights' initialisation) and holds :func:`deterministic_torch`.
    """
    start = time.perf_counter()
    config = build_model_config(processor.tokenizer, recipe)
    model = LlavaForConditionalGeneration(config)
    model.train()

    bank = render_training_images(processor.image_processor, recipe, seed=seed, log=None)
    if log:
        log(f"{len(bank.tiers)} training images in {time.perf_counter() - start:.1f} s")
    rng = np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(2,)))
    vision_losses = _pretrain_vision(model, bank, recipe, rng)
    if log and vision_losses:
        log(f"vision tower: loss {np.mean(vision_losses[-20:]):.3f} at {time.perf_counter() - start:.1f} s")
    texts = TextSampler(recipe, np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(3,))))
    _train_llava(model, bank, Encoder(processor), texts, recipe, rng, log)
    if log:
        log(f"trained in {time.perf_counter() - start:.1f} s")
    model.eval()
    return model.to(torch.float16)


class _ShapeQueryHead(nn.Module):
    """Auxiliary head: attention over patch features with the asked shape as query, then colour logits."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.query = nn.Embedding(len(SHAPES), width)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)
        self.out = nn.Linear(width, len(COLORS))

    def forward(self, patches: torch.Tensor, shapes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Colour logits and the attention log-weights over patches."""
        q = self.query(shapes).unsqueeze(1)
        scores = (q * self.key(patches)).sum(-1) / math.sqrt(patches.shape[-1])
        weights = scores.log_softmax(-1)
        pooled = (weights.exp().unsqueeze(-1) * self.value(patches)).sum(1)
        return self.out(pooled), weights


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _grounding_loss(log_weights: torch.Tensor, coverage: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of attention log-weights over patches against the target's share of each patch."""
    target = coverage / coverage.sum(-1, keepdim=True).clamp_min(1e-6)
    return -(target * log_weights).sum(-1).mean()


def _image_sampler(
    bank: ImageBank, recipe: TrainingRecipe, rng: np.random.Generator
) -> Callable[..., np.ndarray]:
    """``sample(n, max_tier=13)``: image indices; hard tiers down-weighted, tiers above ``max_tier`` out."""
    hard = np.array([t.num_distractors > 12 or t.size_max < 30 for t in VISUAL_TIERS])
    base = np.where(hard[bank.tiers], recipe.hard_tier_weight, 1.0)

    def sample(n: int, max_tier: int = len(VISUAL_TIERS) - 1) -> np.ndarray:
        weights = np.where(bank.tiers <= max_tier, base, 0.0)
        return rng.choice(len(weights), size=n, p=weights / weights.sum())

    return sample


def _pretrain_vision(
    model: LlavaForConditionalGeneration, bank: ImageBank, recipe: TrainingRecipe, rng: np.random.Generator
) -> list[float]:
    """Train the vision tower alone on auxiliary heads, dropped afterwards: the asked shape's colour
    (attending with the shape as query, grounded on the target's patches), each patch's shape and, from the
    class token, a table of every shape's colour."""
    tower = model.model.vision_tower
    width = recipe.vision_width
    head = _ShapeQueryHead(width)
    shape_head = nn.Linear(width, len(SHAPES))
    table_head = nn.Linear(width, len(SHAPES) * len(COLORS))
    params = [*tower.parameters(), *head.parameters(), *shape_head.parameters(), *table_head.parameters()]
    optimizer = torch.optim.AdamW(params, lr=recipe.vision_lr, weight_decay=recipe.weight_decay)
    sample = _image_sampler(bank, recipe, rng)
    losses = []
    for step in range(recipe.vision_steps):
        for group in optimizer.param_groups:
            group["lr"] = recipe.vision_lr * _lr_factor(step, recipe.vision_steps, recipe.warmup_steps)
        idx = sample(recipe.vision_batch)
        states = tower(bank.pixels[idx].float(), output_hidden_states=True).hidden_states[-1]
        hidden = states[:, 1:]
        shapes = torch.from_numpy(bank.shapes[idx])
        coverage = torch.from_numpy(bank.coverage[idx])
        logits, log_weights = head(hidden, shapes)
        loss = nn.functional.cross_entropy(logits, torch.from_numpy(bank.colours[idx]))
        loss = loss + _grounding_loss(log_weights, coverage)
        if recipe.class_token_table:
            table = table_head(states[:, 0]).view(len(idx), len(SHAPES), len(COLORS))
            asked = table[torch.arange(len(idx)), shapes]
            loss = loss + nn.functional.cross_entropy(asked, torch.from_numpy(bank.colours[idx]))
        on = coverage >= 0.25
        if bool(on.any()):
            per_patch = shapes.unsqueeze(1).expand(-1, hidden.shape[1])
            loss = loss + nn.functional.cross_entropy(shape_head(hidden)[on], per_patch[on])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def _train_llava(
    model: LlavaForConditionalGeneration,
    bank: ImageBank,
    encoder: Encoder,
    texts: TextSampler,
    recipe: TrainingRecipe,
    rng: np.random.Generator,
    log: Callable[[str], None] | None,
) -> list[float]:
    tower_params = list(model.model.vision_tower.parameters())
    tower_ids = {id(p) for p in tower_params}
    other = [p for p in model.parameters() if id(p) not in tower_ids]
    optimizer = torch.optim.AdamW(
        [
            {"params": tower_params, "lr": recipe.vision_tower_lr, "base": recipe.vision_tower_lr},
            {"params": other, "lr": recipe.lr, "base": recipe.lr},
        ],
        weight_decay=recipe.weight_decay,
    )
    sample = _image_sampler(bank, recipe, rng)
    losses = []
    for step in range(recipe.steps):
        factor = _lr_factor(step, recipe.steps, recipe.warmup_steps)
        for group in optimizer.param_groups:
            group["lr"] = group["base"] * factor
        total = torch.zeros(())
        max_tier = max(tier for start, tier in recipe.curriculum if start <= step)
        if recipe.batch_vision:
            idx = sample(recipe.batch_vision, max_tier)
            prompts = [prompt_for("vision_only", "", question(SHAPES[s])) for s in bank.shapes[idx]]
            inputs = encoder.batch(prompts, True, bank.colours[idx].tolist())
            total = total + model(**inputs, pixel_values=bank.pixels[idx].float()).loss
        if recipe.batch_text and step >= recipe.vision_first_steps:
            shapes = rng.integers(len(SHAPES), size=recipe.batch_text)
            answers = rng.integers(len(COLORS), size=recipe.batch_text)
            prompts = [
                prompt_for("text_only", texts.text(texts.tier(), SHAPES[s], COLORS[a]), question(SHAPES[s]))
                for s, a in zip(shapes, answers, strict=True)
            ]
            inputs = encoder.batch(prompts, False, answers.tolist())
            total = total + model(**inputs).loss
        if recipe.batch_agree and step >= recipe.vision_first_steps:
            idx = sample(recipe.batch_agree, max_tier)
            prompts = [
                prompt_for("conflict", texts.text(texts.tier(), SHAPES[s], COLORS[c]), question(SHAPES[s]))
                for s, c in zip(bank.shapes[idx], bank.colours[idx], strict=True)
            ]
            inputs = encoder.batch(prompts, True, bank.colours[idx].tolist())
            total = total + model(**inputs, pixel_values=bank.pixels[idx].float()).loss
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        losses.append(float(total.detach()))
        if log and (step + 1) % 50 == 0:
            log(f"step {step + 1}: loss {np.mean(losses[-50:]):.3f}")
    return losses
