"""Dataset card (``README.md``) of a built attribute folder: Hub YAML front matter plus a description."""

from __future__ import annotations

from modality_conflict.dataset_builder.attribute.constants import (
    ANSWER_SYNONYMS,
    ANSWERS,
    ATTRIBUTE_VALUES,
    BUILDER_VERSION,
    COLORS,
    CONTROL_VISUAL_TIERS,
    IMAGE_HEIGHT,
    IMAGE_WIDTH,
    MATERIALS,
    MIN_OBJECT_PIXELS,
    QUESTION_TEMPLATES,
    SHAPES,
    SUPERSAMPLE,
    VISUAL_TIERS,
)
from modality_conflict.dataset_builder.attribute.texts import INTERMEDIARY_OBJECTS, WORLD_OBJECTS
from modality_conflict.dataset_builder.card import CITATION, front_matter, yaml_front_matter
from modality_conflict.dataset_builder.constants import ANSWER_COMMAND, DATASET_LICENSE, PAPER_ARXIV_ID, SPLIT
from modality_conflict.dataset_builder.specs import ATTRIBUTE

PRETTY_NAME = "Modality Conflict: attribute recognition"

#: Where the project keeps one sample image per visual tier (``tier_<dv>.png``).
SAMPLES_DIR = "docs/attribute"

_STEPS = {
    0: "-",
    1: "object count",
    2: "target size",
    3: "object count",
    4: "occlusion",
    5: "object count",
}


def tier_table() -> str:
    """The visual tiers as a Markdown table (objects, target size, occlusion, what the step varies)."""
    lines = [
        "| dv | objects | target size | target hidden by other objects | varies from the previous tier |",
        "|---|---|---|---|---|",
    ]
    for t in VISUAL_TIERS:
        hidden = (
            f"{1 - t.visible_max:.0%}-{1 - t.visible_min:.0%} (an object in front)"
            if t.occluded
            else f"none (visible share >= {t.visible_min:.2f})"
        )
        lines.append(
            f"| {t.index} | {t.num_objects} | {t.target_size} | {hidden} | {_STEPS.get(t.index, '')} |"
        )
    return "\n".join(lines)


def rows_table(groups: int) -> str:
    """Rows per control and condition of a build of ``groups`` groups, as a Markdown table."""
    counts = ATTRIBUTE.layout.rows_per_condition(groups)
    lines = ["| control | vision_only | text_only | conflict | rows |", "|---|---|---|---|---|"]
    for control, row in counts.items():
        total = sum(row.values())
        lines.append(
            f"| {control} | {row['vision_only']} | {row['text_only']} | {row['conflict']} | {total} |"
        )
    return "\n".join(lines)


def synonyms_table() -> str:
    """The words answer normalisation accepts for each answer, as a Markdown table."""
    lines = ["| answer | also accepted (plus plurals) |", "|---|---|"]
    for answer in ANSWERS:
        words = [w for w, target in ANSWER_SYNONYMS.items() if target == answer]
        lines.append(f"| {answer} | {', '.join(words) or '-'} |")
    return "\n".join(lines)


def _world_objects() -> str:
    return "; ".join(f"{value}: {', '.join(objs)}" for value, objs in WORLD_OBJECTS.items())


def render_card(
    *, num_rows: int, num_bytes: int, download_size: int, groups: int, seed: int, counts: dict[str, int]
) -> str:
    """Full text of ``README.md`` (arguments as in the colour set's
    :func:`~modality_conflict.dataset_builder.card.render_card`)."""
    meta = yaml_front_matter(
        front_matter(
            num_rows=num_rows,
            num_bytes=num_bytes,
            download_size=download_size,
            features=ATTRIBUTE.features,
            pretty_name=PRETTY_NAME,
        )
    )
    samples = "\n".join(f"| {t.index} | `{SAMPLES_DIR}/tier_{t.index}.png` |" for t in VISUAL_TIERS)
    control_tiers = ", ".join(str(t) for t in CONTROL_VISUAL_TIERS)
    per_group = ATTRIBUTE.rows_per_group()
    shape_question = QUESTION_TEMPLATES["shape"].format(name="large purple metal object")
    material_question = QUESTION_TEMPLATES["material"].format(name="red cylinder")
    return f"""---
{meta}---

# {PRETTY_NAME}

Image-text conflict test cases for multimodal language models, following the attribute-recognition set of
[arXiv {PAPER_ARXIV_ID}](https://arxiv.org/abs/{PAPER_ARXIV_ID}) (which used CLEVR images). The scenes here
are rendered by the builder itself in the CLEVR style, so the set needs no download and is byte-reproducible.
Each item pairs a scene with a text that claims another shape or material for one object, and asks about
it: "{shape_question.replace("large ", "")}" ({", ".join(SHAPES)}) or "{material_question}"
({", ".join(MATERIALS)}). A model answers three prompts per item: the image alone (vision-only, answer Yv),
the text alone (text-only, answer Yt) and both (conflict, answer Ym). Comparing Ym with Yv and Yt tells
whether it followed the image or the text.

This copy: {groups} groups, seed {seed}, builder version {BUILDER_VERSION}; {num_rows} rows
({counts.get("vision_only", 0)} vision-only, {counts.get("text_only", 0)} text-only,
{counts.get("conflict", 0)} conflict). `manifest.json` records the arguments and the sha256 of every file.

## Scenes

- Objects: {", ".join(SHAPES)}; CLEVR's {len(COLORS)} colours ({", ".join(COLORS)}); two sizes (large,
  small); two materials that look different: matte rubber (diffuse, a faint sheen) and shiny metal (a
  mirror reflection of the neighbours, the floor and the studio, coloured Fresnel, a tight highlight).
- A ground plane seen in perspective from a jittered camera, a key light with soft shadows, fill and rim
  lights and contact darkening; objects occlude each other. {IMAGE_WIDTH}x{IMAGE_HEIGHT} PNG,
  {SUPERSAMPLE}x{SUPERSAMPLE} supersampling, rendered with numpy only.
- Every object lies inside the frame and shows at least {MIN_OBJECT_PIXELS} pixels; the target's name (its
  colour and its other attribute) fits exactly one object of the scene, which the builder checks.

## Questions and answers

Groups alternate between the two attributes: even groups ask "What shape is the <colour> <material>
object?", odd groups "What material is the <colour> <shape>?". The target is named by its colour and its
other attribute, never by its size: the size is a visual-tier variable, and the text-only row of a group is
shared by all of its images. Answer sets: shape {list(ATTRIBUTE_VALUES["shape"])}, material
{list(ATTRIBUTE_VALUES["material"])}. `vision_answer` and `text_answer` are ClassLabels over their union
{list(ANSWERS)}; each row's own closed set is its `answer_choices` (3 or 2 words). Within each attribute the
vision value cycles through the values over the groups and the text value is another value, so both
answers are balanced.

Free-form answers are normalised to the row's `answer_choices`: lower-case, punctuation and articles
removed, plurals accepted, a negated word ignored ("metal, not rubber" is metal), and these words mapped:

{synonyms_table()}

A reply that names no value of the row's set, or two of them, is `other` (so "metallic" answered to a shape
question is `other`). Answer-set entropy has a maximum of ln 3 on shape rows and ln 2 on material rows.

## Visual tiers

{tier_table()}

Tiers 0, 1, 3 and 5 are the paper's axis of object count and object size (3, 6, 10, 15 objects, a large
then a small target); tiers 2 and 4 change one factor each. Distractors are large or small at random. Rows
record what each image has: `num_objects`, `num_distractors`, `num_occluders`, `occlusion` (hidden share of
the target), `target_size` (side of a square with the area of the target's silhouette, px), `target_scale`
and `scene` (the scene graph as JSON: objects, positions, rotations, the target and the camera).

Sample images (group 0 of seed 0, one per tier) are kept in the project repository:

| dv | image |
|---|---|
{samples}

## Texts

Several hand-written templates per tier and attribute, chosen by the seed:

- tier 0 direct: "The purple metal object is a cube." / "The material of the red cylinder is metal."
- tier 1 indirect simple, two hops through a made-up object ({", ".join(INTERMEDIARY_OBJECTS)}), so the word
  implies nothing: "The purple metal object has the same shape as the dax. The dax is a cube."
- tier 2 indirect world knowledge, no answer word in the text ("... has the same shape as a soup can"):
  {_world_objects()}.

Controls, on visual tiers {control_tiers} with the direct text: `text_irrelevant` (the text is about another
object; the image answers the question) and `image_irrelevant` (question and text name an object of a colour
that no image of the group contains; the text answers it). In those rows `vision_answer` is the image
target's value. Prompt: `[text] [question] {ANSWER_COMMAND}`; the vision-only prompt has no text.

## Rows per condition

{per_group} rows per group, {len(VISUAL_TIERS)} images per group (one per visual tier, shared by all
rows of the group). This copy:

{rows_table(groups)}

## Structure

One split, `{SPLIT}`, one row per (unit, condition), with the colour set's columns and meaning plus
`attribute`, `target` and the scene columns. Conflict rows have `item_id`
`g<group>-v<visual tier>-t<text tier>-<control>` and point to their unimodal rows through `vision_key` and
`text_key`. Unimodal rows use "" and -1 for fields of the missing modality.

```python
from datasets import load_dataset

ds = load_dataset("path/or/repo-id", split="{SPLIT}")
```

## License

{DATASET_LICENSE}. The images and texts are synthetic.

## Citation

```bibtex
{CITATION}
```
"""
