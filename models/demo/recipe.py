"""What a demo training run is: its sizes, data mix and optimisation settings, checked before training.

Every field of a :class:`TrainingRecipe` is checked when it is made, so a bad recipe is one line before
any work, never a torch error after minutes.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, PreTrainedTokenizerFast

from modality_conflict.dataset_builder.constants import VISUAL_TIERS
from modality_conflict.dataset_builder.texts import WORLD_OBJECTS
from modality_conflict.models.demo.vocabulary import IMAGE_SIZE, IMAGE_TOKEN, IMAGE_TOKENS, PATCH_SIZE

__all__ = ["RECORD_KEYS", "TrainingRecipe", "build_model_config", "recipe_from_file", "recipe_from_mapping"]

#: Keys a checkpoint's recipe file holds besides the recipe's fields.
RECORD_KEYS = frozenset({"seed", "code", "weights_sha256", "training_seconds"})
#: Learning rates above this diverge at once (AdamW steps of that size wipe out weights of this scale).
MAX_LEARNING_RATE = 1.0
#: Widths above this would not train in any sensible time on a CPU; refused rather than run out of memory.
MAX_WIDTH = 4096


@dataclass(frozen=True)
class TrainingRecipe:
    """Sizes, data mix and optimisation settings of one training run (defaults: the shipped model)."""

    # Architecture.
    vision_width: int = 64
    vision_layers: int = 3
    vision_heads: int = 4
    #: 4 heads of 32: a head size vLLM's CPU attention accepts (it refuses 24).
    text_width: int = 128
    text_layers: int = 3
    text_heads: int = 4
    text_kv_heads: int = 2
    text_mlp: int = 256
    #: Keep the class token as an extra image token; the vision stage trains it to hold a table of the
    #: colour of every shape in the image, which the language model can read from one position.
    class_token_table: bool = True
    # Training images: layouts per visual tier (800x600 / 224x224 canvases), each drawn in several palettes.
    layouts_large: int = 120
    layouts_small: int = 160
    colourings_per_layout: int = 3
    # Stage 1: the vision tower alone, with auxiliary heads.
    vision_steps: int = 600
    vision_batch: int = 64
    vision_lr: float = 2e-3
    hard_tier_weight: float = 0.3
    # Stage 2: the whole LLaVA.
    steps: int = 500
    batch_vision: int = 20
    batch_text: int = 8
    batch_agree: int = 6
    lr: float = 2e-3
    vision_tower_lr: float = 1e-3
    warmup_steps: int = 30
    weight_decay: float = 0.01
    #: Image questions alone before texts join, so the language model learns to read the image first.
    vision_first_steps: int = 100
    #: (step, highest visual tier) pairs: the image questions start on lone shapes and widen to all tiers.
    curriculum: tuple[tuple[int, int], ...] = ((0, 0), (60, 1), (120, 4), (200, 6), (280, 13))
    # Text data.
    #: Relative frequency of each colour's world objects in training texts (rank order drawn per colour):
    #: common objects are known well, rare ones barely.
    world_object_weights: tuple[float, ...] = (16.0, 3.0, 0.3, 0.05)
    text_tier_weights: tuple[float, ...] = (1.0, 1.0, 2.0)
    #: Share of indirect training texts that carry a sentence about another object and its colour.
    distractor_share: float = 0.8

    def __post_init__(self) -> None:
        problem = recipe_problem(self)
        if problem:
            raise ValueError(problem)


def _positive(recipe: TrainingRecipe, names: tuple[str, ...]) -> str | None:
    for name in names:
        value = getattr(recipe, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            return f"recipe field {name!r} must be an integer >= 1, got {value!r}"
        if name.endswith(("width", "mlp")) and value > MAX_WIDTH:
            return f"recipe field {name!r} must be at most {MAX_WIDTH}, got {value!r}"
    return None


def _weights_problem(name: str, values: tuple[Any, ...], length: int) -> str | None:
    numbers = [v for v in values if not isinstance(v, bool) and isinstance(v, int | float)]
    if len(values) != length or len(numbers) != length:
        return f"recipe field {name!r} must be {length} numbers, got {list(values)!r}"
    if not all(math.isfinite(v) and v >= 0 for v in numbers) or sum(numbers) <= 0:
        return f"recipe field {name!r} must be finite numbers >= 0 with a positive sum, got {list(values)!r}"
    return None


def _curriculum_problem(curriculum: tuple[Any, ...]) -> str | None:
    pairs = [
        c
        for c in curriculum
        if isinstance(c, tuple)
        and len(c) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in c)
    ]
    if not curriculum or len(pairs) != len(curriculum):
        return f"recipe field 'curriculum' must be a list of [step, tier] integer pairs, got {curriculum!r}"
    if min(step for step, _ in pairs) != 0:
        return "recipe field 'curriculum' must have a pair for step 0 (the first tiers trained)"
    if not all(0 <= tier < len(VISUAL_TIERS) for _, tier in pairs):
        return f"recipe field 'curriculum': tiers must be 0 to {len(VISUAL_TIERS) - 1}, got {curriculum!r}"
    return None


def recipe_problem(recipe: TrainingRecipe) -> str | None:
    """Why ``recipe`` cannot train, as one sentence, or None."""
    sizes = ("vision_width", "vision_layers", "vision_heads", "text_width", "text_layers", "text_heads")
    sizes += ("text_kv_heads", "text_mlp", "layouts_large", "layouts_small", "colourings_per_layout")
    sizes += ("vision_batch", "batch_vision")
    problem = _positive(recipe, sizes)
    if problem:
        return problem
    for heads, width in (("vision_heads", "vision_width"), ("text_heads", "text_width")):
        if getattr(recipe, width) % getattr(recipe, heads):
            return (
                f"recipe field {heads!r} ({getattr(recipe, heads)}) must divide {width!r} "
                f"({getattr(recipe, width)})"
            )
    if recipe.text_heads % recipe.text_kv_heads:
        return (
            f"recipe field 'text_kv_heads' ({recipe.text_kv_heads}) must divide 'text_heads' "
            f"({recipe.text_heads})"
        )
    for name in ("vision_steps", "steps", "batch_text", "batch_agree", "warmup_steps", "vision_first_steps"):
        value = getattr(recipe, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return f"recipe field {name!r} must be an integer >= 0, got {value!r}"
    for name in ("vision_lr", "lr", "vision_tower_lr"):
        value = getattr(recipe, name)
        if not (isinstance(value, float) and math.isfinite(value) and 0 < value <= MAX_LEARNING_RATE):
            return (
                f"recipe field {name!r} must be a learning rate in (0, {MAX_LEARNING_RATE:g}], got {value!r}"
            )
    shares = (("weight_decay", recipe.weight_decay), ("distractor_share", recipe.distractor_share))
    shares += (("hard_tier_weight", recipe.hard_tier_weight),)
    for name, value in shares:
        if not (isinstance(value, float) and math.isfinite(value) and 0 <= value <= 1):
            return f"recipe field {name!r} must be a number from 0 to 1, got {value!r}"
    if recipe.hard_tier_weight == 0:
        return "recipe field 'hard_tier_weight' must be above 0 (the hard tiers would never be seen)"
    objects = len(next(iter(WORLD_OBJECTS.values())))
    return (
        _weights_problem("world_object_weights", recipe.world_object_weights, objects)
        or _weights_problem("text_tier_weights", recipe.text_tier_weights, 3)
        or _curriculum_problem(recipe.curriculum)
    )


def recipe_from_mapping(values: Mapping[str, Any], *, source: str = "recipe") -> TrainingRecipe:
    """A :class:`TrainingRecipe` with the fields of ``values`` replaced (unknown names are an error);
    a checkpoint's record keys are ignored, so its recipe file can be fed back."""
    fields = {f.name: f for f in dataclasses.fields(TrainingRecipe)}
    unknown = sorted(set(values) - set(fields) - RECORD_KEYS)
    if unknown:
        raise ValueError(f"{source}: unknown recipe field {unknown[0]!r} (known: {', '.join(fields)})")
    changes: dict[str, Any] = {}
    for name, value in values.items():
        if name in RECORD_KEYS:
            continue
        default = getattr(TrainingRecipe(), name)
        if isinstance(default, tuple):
            if not isinstance(value, list | tuple):
                raise ValueError(f"{source}: recipe field {name!r} must be a list, got {value!r}")
            value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
        elif isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError(f"{source}: recipe field {name!r} must be true or false, got {value!r}")
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{source}: recipe field {name!r} must be an integer >= 0, got {value!r}")
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise ValueError(f"{source}: recipe field {name!r} must be a finite number, got {value!r}")
            value = float(value)
        changes[name] = value
    try:
        return dataclasses.replace(TrainingRecipe(), **changes)
    except ValueError as error:
        raise ValueError(f"{source}: {error}") from None


def recipe_from_file(path: str | Path, *, source: str | None = None) -> TrainingRecipe:
    """The recipe of a JSON file of recipe fields (a checkpoint's ``training_recipe.json`` included).

    ``source`` names the file in error messages (default: ``--recipe PATH``); every error is one line.
    """
    source = source or f"--recipe {path}"
    try:
        values = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{source}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"{source}: cannot read it ({error})") from None
    except json.JSONDecodeError as error:
        raise ValueError(f"{source}: not valid JSON ({error})") from None
    if not isinstance(values, dict):
        raise ValueError(f"{source}: expected a JSON object of recipe fields")
    return recipe_from_mapping(values, source=source)


def build_model_config(
    tokenizer: PreTrainedTokenizerFast, recipe: TrainingRecipe | None = None
) -> LlavaConfig:
    """Config of the demo LLaVA: a small CLIP-style ViT (112 px, patch 16) and a small Llama."""
    recipe = recipe or TrainingRecipe()
    vision = CLIPVisionConfig(
        hidden_size=recipe.vision_width,
        intermediate_size=2 * recipe.vision_width,
        num_hidden_layers=recipe.vision_layers,
        num_attention_heads=recipe.vision_heads,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        projection_dim=recipe.vision_width,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=recipe.text_width,
        intermediate_size=recipe.text_mlp,
        num_hidden_layers=recipe.text_layers,
        num_attention_heads=recipe.text_heads,
        num_key_value_heads=recipe.text_kv_heads,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    return LlavaConfig(
        vision_config=vision.to_dict(),
        text_config=text.to_dict(),
        image_token_index=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        image_seq_length=IMAGE_TOKENS + int(recipe.class_token_table),
        vision_feature_select_strategy="full" if recipe.class_token_table else "default",
        vision_feature_layer=-1,
        pad_token_id=tokenizer.pad_token_id,
    )
