"""A small LLaVA that reads colours from images and from text, trained from scratch on CPU.

The checkpoint is an ordinary Hugging Face ``LlavaForConditionalGeneration`` folder (model, processor,
word-level tokenizer, chat template, generation config), so it runs through the same evaluation paths
as any hub model. Training sees only

- vision-only questions (a rendered image and "What color is the {shape}?"),
- text-only questions for every text tier (the world objects' colours are learnt from these texts), and
- agreeing multimodal questions (an image and a text that states the image's colour),

never an image paired with a text that contradicts it: conflict behaviour is left to emerge. The images
come from the project's renderer under a plan seed and group ids that the evaluation set never uses.

Difficulty comes from the data, as for large models: small, crowded and occluded targets are hard to
see, world objects are seen with very different frequencies, and indirect texts in training carry
distractor sentences about other objects, so reading them takes more than copying the one colour word.

``modality-conflict train-demo-model --out DIR --seed N`` runs :func:`train_checkpoint_folder`; the
package ships the seed-0 result (:func:`shipped_checkpoint`), which that command reproduces byte for byte.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from torch import nn
from transformers import (
    AutoProcessor,
    CLIPImageProcessor,
    CLIPVisionConfig,
    GenerationConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)

from modality_conflict.dataset_builder.atomic import ensure_folder, os_error_text, temporary_sibling
from modality_conflict.dataset_builder.constants import (
    ANSWER_COMMAND,
    BACKGROUND_RGB,
    BUILDER_VERSION,
    COLOR_RGB,
    COLORS,
    QUESTION_TEMPLATE,
    SHAPES,
    VISUAL_TIERS,
)
from modality_conflict.dataset_builder.errors import OutputWriteError
from modality_conflict.dataset_builder.plan import plan_group
from modality_conflict.dataset_builder.prompts import prompt_for
from modality_conflict.dataset_builder.render import ImageSpec, render
from modality_conflict.dataset_builder.texts import (
    INTERMEDIARY_OBJECTS,
    TEMPLATES,
    WORLD_OBJECTS,
    render_text,
)

__all__ = [
    "IMAGE_SIZE",
    "PATCH_SIZE",
    "ImageBank",
    "TextSampler",
    "TrainingRecipe",
    "build_model_config",
    "build_processor",
    "build_tokenizer",
    "cached_checkpoint",
    "chat_template",
    "code_version",
    "recipe_from_mapping",
    "recolouring_is_exact",
    "render_training_images",
    "shipped_checkpoint",
    "train_checkpoint_folder",
    "train_demo_model",
    "vocabulary",
]

IMAGE_SIZE = 112
PATCH_SIZE = 16
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2

_SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>", "<image>")
_IMAGE_TOKEN = "<image>"

#: First plan seed and group id of the training images: the evaluation set uses small seeds and groups
#: counted from zero, so these never meet it.
_TRAIN_SEED_OFFSET = 1_000_003
_TRAIN_GROUP_OFFSET = 5_000_000

#: Folder of the packaged seed-0 checkpoint, next to this module.
SHIPPED_CHECKPOINT_DIR = "demo_checkpoint"
#: File of a checkpoint folder that records the seed, the recipe and the code that trained it.
RECIPE_FILE = "training_recipe.json"
WEIGHTS_FILE = "model.safetensors"

#: The direct texts of training, fixed here so that the packaged weights do not move when the builder's
#: templates do: one of them ("has a ... color") is no longer an evaluation template, so evaluation holds a
#: direct phrasing the model never saw.
_TRAINING_DIRECT_TEMPLATES = (
    "The {a} is {t}.",
    "The color of the {a} is {t}.",
    "The {a} has a {t} color.",
    "The {a} is painted {t}.",
)

#: Training-only sentence about an unrelated object, added to indirect texts so that the colour word of
#: the text is not always the answer.
_FACT_TEMPLATE = "The {b} is {t}."


# ---------------------------------------------------------------------------------------------------------
# Tokenizer and processor
# ---------------------------------------------------------------------------------------------------------


def chat_template() -> str:
    """LLaVA-1.5 style template: ``"USER: <image>\\n{text} ASSISTANT:"``; the answer follows a space."""
    content = (
        "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
        "{% for part in message['content'] %}"
        "{% if part['type'] == 'image' or 'image' in part %}<image>\n"
        "{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}"
    )
    return (
        "{% for message in messages %}"
        "{% if message['role'] == 'system' %}" + content + " "
        "{% elif message['role'] == 'user' %}USER: " + content + " "
        "{% else %}ASSISTANT: " + content + "{{ eos_token }}{% endif %}"
        "{% endfor %}{% if add_generation_prompt %}ASSISTANT:{% endif %}"
    )


_WORD_SPLIT = pre_tokenizers.Whitespace()


def _words(text: str) -> list[str]:
    return [w for w, _ in _WORD_SPLIT.pre_tokenize_str(text.lower())]


def vocabulary() -> list[str]:
    """Every word a benchmark prompt, a training text or an answer can contain, lower-cased, sorted.

    Built from the builder's own templates, shapes, objects and colours, so no evaluation prompt maps a
    word to ``<unk>``.
    """
    texts = [
        QUESTION_TEMPLATE.format(shape=" ".join(SHAPES)),
        ANSWER_COMMAND,
        "USER: ASSISTANT: system Say a word.",
        " ".join(COLORS),
        " ".join(INTERMEDIARY_OBJECTS),
        " ".join(" ".join(objs) for objs in WORLD_OBJECTS.values()),
        _FACT_TEMPLATE.format(b="x", t="x"),
    ]
    texts += [t.format(a="x", t="x") for t in _TRAINING_DIRECT_TEMPLATES]
    for templates in TEMPLATES.values():
        texts += [t.format(a="x", b="x", t="x", d="x") for t in templates]
    words: set[str] = set()
    for text in texts:
        words.update(_words(text))
    words.discard("x")
    return sorted(words)


def build_tokenizer() -> PreTrainedTokenizerFast:
    """Word-level tokenizer over :func:`vocabulary`.

    It lower-cases, splits words from punctuation and starts every sequence with ``<s>``; the chat template
    and the special tokens of a LLaVA checkpoint are attached.
    """
    vocab = {token: i for i, token in enumerate(_SPECIAL_TOKENS)}
    for word in vocabulary():
        vocab.setdefault(word, len(vocab))
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A $B", special_tokens=[("<s>", vocab["<s>"])]
    )
    tokenizer.add_special_tokens(list(_SPECIAL_TOKENS))
    wrapped = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        extra_special_tokens={"image_token": _IMAGE_TOKEN},
        padding_side="left",
    )
    wrapped.chat_template = chat_template()
    return wrapped


def build_processor(
    tokenizer: PreTrainedTokenizerFast | None = None, *, class_token: bool = False
) -> LlavaProcessor:
    """LLaVA processor: images squeezed to ``IMAGE_SIZE`` square without cropping (no target is cut off)."""
    image_processor = CLIPImageProcessor(
        size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        do_center_crop=False,
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer or build_tokenizer(),
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="full" if class_token else "default",
        num_additional_image_tokens=1,
        chat_template=chat_template(),
    )


# ---------------------------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainingRecipe:
    """Sizes, data mix and optimisation settings of one training run (defaults: the shipped model)."""

    # Architecture.
    vision_width: int = 64
    vision_layers: int = 3
    vision_heads: int = 4
    text_width: int = 96
    text_layers: int = 3
    text_heads: int = 4
    text_kv_heads: int = 2
    text_mlp: int = 192
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
    world_object_weights: tuple[float, ...] = (16.0, 3.0, 0.6, 0.1)
    text_tier_weights: tuple[float, ...] = (1.0, 1.0, 2.0)
    #: Share of indirect training texts that carry a sentence about another object and its colour.
    distractor_share: float = 0.8


def recipe_from_mapping(values: Mapping[str, Any], *, source: str = "recipe") -> TrainingRecipe:
    """A :class:`TrainingRecipe` with the fields of ``values`` replaced (unknown names are an error).

    ``source`` names the input in error messages. The keys a checkpoint's recipe file adds (``seed``,
    ``code``, ``weights_sha256``, ``training_seconds``) are ignored, so a recipe file can be fed back.
    """
    fields = {f.name: f for f in dataclasses.fields(TrainingRecipe)}
    ignored = {"seed", "code", "weights_sha256", "training_seconds"}
    unknown = sorted(set(values) - set(fields) - ignored)
    if unknown:
        raise ValueError(f"{source}: unknown recipe field {unknown[0]!r} (known: {', '.join(fields)})")
    changes: dict[str, Any] = {}
    for name, value in values.items():
        if name in ignored:
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
    return dataclasses.replace(TrainingRecipe(), **changes)


def code_version() -> dict[str, str]:
    """What identifies the training code: this module's sha256 and the builder version it renders with."""
    source = Path(__file__).read_bytes()
    return {"demo_model_sha256": hashlib.sha256(source).hexdigest(), "builder_version": BUILDER_VERSION}


def shipped_checkpoint() -> Path:
    """Folder of the packaged checkpoint (seed 0, default recipe), loadable with ``from_pretrained``."""
    return Path(str(resources.files("modality_conflict.models") / SHIPPED_CHECKPOINT_DIR))


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
        image_token_index=tokenizer.convert_tokens_to_ids(_IMAGE_TOKEN),
        image_seq_length=IMAGE_TOKENS + int(recipe.class_token_table),
        vision_feature_select_strategy="full" if recipe.class_token_table else "default",
        vision_feature_layer=-1,
        pad_token_id=tokenizer.pad_token_id,
    )


# ---------------------------------------------------------------------------------------------------------
# Training data
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImageBank:
    """Preprocessed training images and what they show.

    Attributes
    ----------
    pixels
        ``(N, 3, IMAGE_SIZE, IMAGE_SIZE)`` float16, exactly the processor's output (cast).
    tiers, shapes, colours
        Visual tier, target shape index and target colour index of each image.
    coverage
        ``(N, patches)`` share of each patch covered by the target's visible pixels.
    """

    pixels: torch.Tensor
    tiers: np.ndarray
    shapes: np.ndarray
    colours: np.ndarray
    coverage: np.ndarray


def _palette() -> np.ndarray:
    """RGB of palette index 0 (background) and 1 + i (``COLORS[i]``)."""
    return np.array([BACKGROUND_RGB] + [COLOR_RGB[c] for c in COLORS], dtype=np.uint8)


def _palette_indices(png: bytes) -> np.ndarray:
    """Palette index of each pixel of a rendered image (the renderer paints exact palette colours)."""
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    # Red and green channels alone tell the seven palette colours apart.
    lookup = np.zeros(1 << 16, dtype=np.uint8)
    for index, (r, g, _) in enumerate(_palette()):
        lookup[(int(r) << 8) | int(g)] = index
    return lookup[(rgb[..., 0].astype(np.uint16) << 8) | rgb[..., 1]]


def _patch_coverage(mask: np.ndarray, grid: int) -> np.ndarray:
    """Share of each patch of a ``grid x grid`` split of ``mask`` that is True (the image is squeezed)."""
    h, w = mask.shape
    rows = np.add.reduceat(mask.astype(np.float32), (np.arange(grid) * h) // grid, axis=0)
    cells = np.add.reduceat(rows, (np.arange(grid) * w) // grid, axis=1)
    row_edges = np.append((np.arange(grid) * h) // grid, h)
    col_edges = np.append((np.arange(grid) * w) // grid, w)
    return (cells / np.outer(np.diff(row_edges), np.diff(col_edges))).reshape(-1)


def render_training_images(
    image_processor: Any, recipe: TrainingRecipe, *, seed: int, log: Callable[[str], None] | None = None
) -> ImageBank:
    """Render the training images with the project's renderer and preprocess them once.

    Each layout is drawn from a group plan of a training-only plan seed; it is then recoloured by
    permutations of the six colours. A recolouring is exactly the image the renderer draws for the same
    layout seed with the permuted colours (the placement draws do not depend on the colours), so every
    training image is one the renderer produces.
    """
    rng = np.random.default_rng(np.random.SeedSequence(entropy=seed, spawn_key=(1,)))
    palette = _palette()
    plan_seed = _TRAIN_SEED_OFFSET + seed
    grid = IMAGE_SIZE // PATCH_SIZE
    pixels, tiers, shapes, colours, coverage = [], [], [], [], []
    pending: list[Image.Image] = []

    def flush() -> None:
        if pending:
            batch = image_processor(images=pending, return_tensors="pt")["pixel_values"]
            pixels.append(batch.to(torch.float16))
            pending.clear()

    for tier in VISUAL_TIERS:
        layouts = recipe.layouts_large if tier.width > 224 else recipe.layouts_small
        for layout in range(layouts):
            plan = plan_group(plan_seed, _TRAIN_GROUP_OFFSET + layout)
            spec = plan.image_spec(tier.index)
            indices = _palette_indices(render(spec).png)
            target = COLORS.index(spec.target_color)
            cover = _patch_coverage(indices == target + 1, grid)
            for _ in range(recipe.colourings_per_layout):
                perm = rng.permutation(len(COLORS))  # colour i is painted as colour perm[i]
                image = Image.frombytes("P", (indices.shape[1], indices.shape[0]), indices.tobytes())
                image.putpalette(np.concatenate([palette[:1], palette[1:][perm]]).tobytes())
                pending.append(image.convert("RGB"))
                tiers.append(tier.index)
                shapes.append(SHAPES.index(spec.target_shape))
                colours.append(int(perm[target]))
                coverage.append(cover)
            if len(pending) >= 128:
                flush()
        if log:
            log(f"rendered tier {tier.index}")
    flush()
    return ImageBank(
        torch.cat(pixels),
        np.array(tiers, dtype=np.int64),
        np.array(shapes, dtype=np.int64),
        np.array(colours, dtype=np.int64),
        np.stack(coverage).astype(np.float32),
    )


def recolouring_is_exact() -> bool:
    """Whether a recoloured training image equals the renderer's image of the recoloured specification.

    The renderer draws sizes, positions and pool indices before it looks at any colour, so permuting the
    colours of a specification permutes the palette of its image and nothing else.
    """
    plan = plan_group(_TRAIN_SEED_OFFSET, _TRAIN_GROUP_OFFSET)
    spec = plan.image_spec(9)
    perm = {c: COLORS[(i + 1) % len(COLORS)] for i, c in enumerate(COLORS)}
    moved = ImageSpec(
        tier=spec.tier,
        target_shape=spec.target_shape,
        target_color=perm[spec.target_color],
        distractor_shapes=spec.distractor_shapes,
        distractor_colors=tuple(perm[c] for c in spec.distractor_colors),
        seed=spec.seed,
    )
    a = _palette_indices(render(spec).png)
    b = _palette_indices(render(moved).png)
    shifted = np.where(a == 0, 0, (a - 1 + 1) % len(COLORS) + 1)
    return bool(np.array_equal(shifted, b))


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
            template = int(rng.integers(len(_TRAINING_DIRECT_TEMPLATES)))
            return _TRAINING_DIRECT_TEMPLATES[template].format(a=shape, t=colour)
        template = int(rng.integers(len(TEMPLATES[tier])))
        if tier == 1:
            obj = int(rng.integers(len(INTERMEDIARY_OBJECTS)))
            text = render_text(1, template, shape, colour, obj).text
            if rng.random() < self.recipe.distractor_share:
                other = int(rng.integers(len(INTERMEDIARY_OBJECTS) - 1))
                other += other >= obj
                other_colour = COLORS[int(rng.integers(len(COLORS)))]
                fact = _FACT_TEMPLATE.format(b=INTERMEDIARY_OBJECTS[other], t=other_colour)
                text = f"{fact} {text}" if rng.random() < 0.5 else f"{text} {fact}"
            return text
        rank = int(rng.choice(len(self.object_weights), p=self.object_weights))
        obj = int(self.object_order[colour][rank])
        return render_text(2, template, shape, colour, obj).text

    def tier(self) -> int:
        return int(self.rng.choice(3, p=self.tier_weights))


# ---------------------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------------------


class _Encoder:
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
            rendered = rendered.replace(_IMAGE_TOKEN, _IMAGE_TOKEN * self.image_tokens)
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


def _question(shape: str) -> str:
    return QUESTION_TEMPLATE.format(shape=shape)


# ---------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------


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
    """Train the vision tower alone on auxiliary heads that are then dropped.

    The heads predict the colour of the asked shape (attending over patches with the shape as query), where
    the target is (that attention against the target's patch coverage), which shape each target patch
    belongs to, and, from the class token, the colour of the asked shape out of a table of all shapes.
    """
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
    encoder: _Encoder,
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
            prompts = [prompt_for("vision_only", "", _question(SHAPES[s])) for s in bank.shapes[idx]]
            inputs = encoder.batch(prompts, True, bank.colours[idx].tolist())
            total = total + model(**inputs, pixel_values=bank.pixels[idx].float()).loss
        if recipe.batch_text and step >= recipe.vision_first_steps:
            shapes = rng.integers(len(SHAPES), size=recipe.batch_text)
            answers = rng.integers(len(COLORS), size=recipe.batch_text)
            prompts = [
                prompt_for("text_only", texts.text(texts.tier(), SHAPES[s], COLORS[a]), _question(SHAPES[s]))
                for s, a in zip(shapes, answers, strict=True)
            ]
            inputs = encoder.batch(prompts, False, answers.tolist())
            total = total + model(**inputs).loss
        if recipe.batch_agree and step >= recipe.vision_first_steps:
            idx = sample(recipe.batch_agree, max_tier)
            prompts = [
                prompt_for("conflict", texts.text(texts.tier(), SHAPES[s], COLORS[c]), _question(SHAPES[s]))
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


def train_demo_model(
    out_dir: str | Path,
    *,
    seed: int = 0,
    recipe: TrainingRecipe | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Train the demo LLaVA from scratch and save it as a Hugging Face checkpoint folder.

    Runs on one thread with deterministic kernels (the caller's torch settings are restored afterwards),
    so a seed always gives the same weights, byte for byte.

    Parameters
    ----------
    out_dir
        Folder to write (created; existing files are overwritten).
    seed
        Seed of the weights, the training images and the sampling of training questions.
    recipe
        Sizes and settings; default :class:`TrainingRecipe`.
    log
        Called with progress lines.

    Returns
    -------
    Path
        ``out_dir``.
    """
    recipe = recipe or TrainingRecipe()
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    try:
        return _train_and_save(Path(out_dir), seed, recipe, log)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def _train_and_save(out: Path, seed: int, recipe: TrainingRecipe, log: Callable[[str], None] | None) -> Path:
    code = code_version()  # of the code that runs, even if the file changes while it trains
    torch.manual_seed(seed)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()

    tokenizer = build_tokenizer()
    processor = build_processor(tokenizer, class_token=recipe.class_token_table)
    processor.save_pretrained(out)
    processor = AutoProcessor.from_pretrained(out)  # train on exactly what evaluation will load
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
    encoder = _Encoder(processor)
    _train_llava(model, bank, encoder, texts, recipe, rng, log)
    elapsed = time.perf_counter() - start
    if log:
        log(f"trained in {elapsed:.1f} s")

    model.eval()
    model = model.to(torch.float16)
    model.save_pretrained(out, max_shard_size="1500KB")
    GenerationConfig(
        bos_token_id=processor.tokenizer.bos_token_id,
        eos_token_id=processor.tokenizer.eos_token_id,
        pad_token_id=processor.tokenizer.pad_token_id,
        do_sample=False,
        max_new_tokens=8,
    ).save_pretrained(out)
    record = {
        "seed": seed,
        **asdict(recipe),
        "code": code,
        "weights_sha256": hashlib.sha256((out / WEIGHTS_FILE).read_bytes()).hexdigest(),
        "training_seconds": round(elapsed, 1),
    }
    (out / RECIPE_FILE).write_text(json.dumps(record, indent=2) + "\n")
    return out


def train_checkpoint_folder(
    out: str | Path,
    *,
    seed: int = 0,
    recipe: TrainingRecipe | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """:func:`train_demo_model` into ``out`` whole or not at all.

    ``out`` must not exist or be an empty folder. Training writes into a hidden temporary sibling that is
    renamed to ``out`` only when the checkpoint is complete, so an error or an interrupt leaves nothing.

    Raises
    ------
    FileExistsError
        ``out`` exists and is a file or a non-empty folder.
    OutputWriteError
        ``out``'s folder cannot be written (read-only, full, a parent is a file).
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not an empty folder (choose a new --out or remove it)")
    ensure_folder(out.parent)
    tmp = temporary_sibling(out)
    try:
        tmp.mkdir()
    except OSError as error:
        raise OutputWriteError(os_error_text(error, out)) from None
    try:
        train_demo_model(tmp, seed=seed, recipe=recipe, log=log)
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except OSError as error:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputWriteError(os_error_text(error, out)) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def cached_checkpoint(
    cache_root: str | Path,
    *,
    seed: int = 0,
    recipe: TrainingRecipe | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """The checkpoint of ``seed`` (and ``recipe``, default the shipped one) under ``cache_root``.

    Trained on first use. The folder name holds the seed, the code version and, for another recipe than
    the default, the recipe's hash, so a change to the training code trains afresh and never reuses
    weights of older code. Training is atomic (:func:`train_checkpoint_folder`), so a folder under that
    name is always complete.
    """
    recipe = recipe or TrainingRecipe()
    name = f"demo-model-seed{seed}-{code_version()['demo_model_sha256'][:12]}"
    if recipe != TrainingRecipe():
        recipe_text = json.dumps(asdict(recipe), sort_keys=True).encode()
        name += f"-recipe{hashlib.sha256(recipe_text).hexdigest()[:8]}"
    folder = Path(cache_root) / name
    if (folder / RECIPE_FILE).is_file():
        return folder
    return train_checkpoint_folder(folder, seed=seed, recipe=recipe, log=log)
