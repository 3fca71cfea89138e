"""The demo model's training texts, with the frequency skews that make text hard, and their token ids."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from modality_conflict.dataset_builder.constants import COLORS, QUESTION_TEMPLATE
from modality_conflict.dataset_builder.texts import (
    INTERMEDIARY_OBJECTS,
    TEMPLATES,
    WORLD_OBJECTS,
    render_text,
)
from modality_conflict.models.demo.recipe import TrainingRecipe
from modality_conflict.models.demo.vocabulary import (
    FACT_TEMPLATE,
    IMAGE_TOKEN,
    IMAGE_TOKENS,
    TRAINING_DIRECT_TEMPLATES,
)

__all__ = ["Encoder", "TextSampler", "question"]


class TextSampler:
    """Text-only and agreeing texts for training, with the frequency skews that make text hard."""

    def __init__(self, recipe: TrainingRecipe, rng: np.random.Generator) -> None:
        self.recipe = recipe
        self.rng = rng
        weights = np.array(recipe.world_object_weights, dtype=float)
        # The object frequency rank differs per colour, so no template or position is easier by itself.
        self.object_order = {c: rng.permutation(len(WORLD_OBJECTS[c])) for c in COLORS}
        self.object_weights = weights / weights.sum()
        tier_weights = np.array(recipe.text_tier_weights, dtype=float)
        self.tier_weights = tier_weights / tier_weights.sum()

    def text(self, tier: int, shape: str, colour: str) -> str:
        """A text of ``tier`` saying ``shape`` is ``colour``."""
        rng = self.rng
        if tier == 0:
            template = int(rng.integers(len(TRAINING_DIRECT_TEMPLATES)))
            return TRAINING_DIRECT_TEMPLATES[template].format(a=shape, t=colour)
        template = int(rng.integers(len(TEMPLATES[tier])))
        if tier == 1:
            obj = int(rng.integers(len(INTERMEDIARY_OBJECTS)))
            text = render_text(1, template, shape, colour, obj).text
            if rng.random() < self.recipe.distractor_share:
                other = int(rng.integers(len(INTERMEDIARY_OBJECTS) - 1))
                other += other >= obj
                other_colour = COLORS[int(rng.integers(len(COLORS)))]
                fact = FACT_TEMPLATE.format(b=INTERMEDIARY_OBJECTS[other], t=other_colour)
                text = f"{fact} {text}" if rng.random() < 0.5 else f"{text} {fact}"
            return text
        rank = int(rng.choice(len(self.object_weights), p=self.object_weights))
        obj = int(self.object_order[colour][rank])
        return render_text(2, template, shape, colour, obj).text

    def tier(self) -> int:
        return int(self.rng.choice(3, p=self.tier_weights))


class Encoder:
    """Turns (prompt, has image, answer) into the token ids the processor would produce, plus labels."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.answer_ids = [self.tokenizer.convert_tokens_to_ids(c) for c in COLORS]
        self.eos = self.tokenizer.eos_token_id
        self.pad = self.tokenizer.pad_token_id
        self.cache: dict[tuple[str, bool], list[int]] = {}
        strategy = processor.vision_feature_select_strategy
        self.image_tokens = IMAGE_TOKENS + int(strategy == "full")

    def prompt_ids(self, text: str, with_image: bool) -> list[int]:
        key = (text, with_image)
        if key not in self.cache:
            content: list[dict[str, Any]] = [{"type": "image"}] if with_image else []
            content.append({"type": "text", "text": text})
            rendered = self.processor.apply_chat_template(
                [{"role": "user", "content": content}], add_generation_prompt=True, tokenize=False
            )
            rendered = rendered.replace(IMAGE_TOKEN, IMAGE_TOKEN * self.image_tokens)
            self.cache[key] = self.tokenizer(rendered)["input_ids"]
        return self.cache[key]

    def batch(
        self, prompts: Sequence[str], with_image: bool, answers: Sequence[int]
    ) -> dict[str, torch.Tensor]:
        """Left-padded ids, mask and labels (the answer word and the end of turn only)."""
        rows = [
            self.prompt_ids(p, with_image) + [self.answer_ids[a], self.eos]
            for p, a in zip(prompts, answers, strict=True)
        ]
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        labels = torch.full((len(rows), width), -100, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, width - len(row) :] = torch.tensor(row)
            mask[i, width - len(row) :] = 1
            labels[i, -2:] = ids[i, -2:]
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def question(shape: str) -> str:
    return QUESTION_TEMPLATE.format(shape=shape)
