"""Dataset card (``README.md``) of a built folder of either set: Hub YAML front matter plus a description.

The front matter, the build's figures, the loading snippet, the licence and the citation are written once;
each kind adds its introduction and its construction sections.
"""

from __future__ import annotations

from typing import Any

import yaml

from modality_conflict.dataset_builder import constants as color
from modality_conflict.dataset_builder.attribute_constants import (
    ANSWER_SYNONYMS,
    ANSWERS,
    ATTRIBUTE_VALUES,
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
from modality_conflict.dataset_builder.constants import ANSWER_COMMAND, DATASET_LICENSE, PAPER_ARXIV_ID, SPLIT
from modality_conflict.dataset_builder.specs import ATTRIBUTE, COLOR, DatasetKind

#: Where the project keeps one sample image per visual tier of the attribute set (``tier_<dv>.png``).
SAMPLES_DIR = "docs/attribute"

CITATION = f"""@misc{{zhang2025modalitiesconflict,
  title         = {{When Modalities Conflict: How Unimodal Reasoning Uncertainty Governs
                   Preference Dynamics in MLLMs}},
  author        = {{Zhang, Zhuoran and Wang, Tengyue and Gong, Xilin and Shi, Yang
                   and Wang, Haotian and Wang, Di and Hu, Lijie}},
  year          = {{2025}},
  eprint        = {{{PAPER_ARXIV_ID}}},
  archivePrefix = {{arXiv}},
  primaryClass  = {{cs.AI}},
  url           = {{https://arxiv.org/abs/{PAPER_ARXIV_ID}}}
}}"""


def size_category(num_rows: int) -> str:
    """Hub ``size_categories`` bucket for a row count."""
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")]
    for bound, label in bounds:
        if num_rows < bound:
            return label
    return "1M<n<10M"


def front_matter(
    *,
    num_rows: int,
    num_bytes: int,
    download_size: int,
    features: Any,
    pretty_name: str = COLOR.pretty_name,
) -> dict[str, Any]:
    """YAML metadata of the card, in the layout the Hub and ``datasets`` read.

    ``features``: The dataset's ``datasets.Features`` (``DatasetKind.features``).
    """
    return {
        "pretty_name": pretty_name,
        "license": DATASET_LICENSE,
        "language": ["en"],
        "task_categories": ["visual-question-answering"],
        "size_categories": [size_category(num_rows)],
        "tags": ["multimodal", "modality-conflict", "vision-language", "synthetic"],
        "configs": [{"config_name": "default", "data_files": [{"split": SPLIT, "path": f"data/{SPLIT}-*"}]}],
        "dataset_info": {
            "features": features._to_yaml_list(),
            "splits": [{"name": SPLIT, "num_bytes": int(num_bytes), "num_examples": int(num_rows)}],
            "download_size": int(download_size),
            "dataset_size": int(num_bytes),
        },
    }


def yaml_front_matter(meta: dict[str, Any]) -> str:
    """The front matter as YAML text, in a fixed layout (the card's bytes are part of the manifest)."""
    return yaml.safe_dump(meta, sort_keys=False, allow_unicode=True, default_flow_style=False, width=1000)


def color_tier_table() -> str:
    lines = [
        "| dv | canvas | target side (px) | distractors | overlapping the target |",
        "|---|---|---|---|---|",
    ]
    for t in color.VISUAL_TIERS:
        lines.append(
            f"| {t.index} | {t.width}x{t.height} | {t.size_min}-{t.size_max} | {t.num_distractors} "
            f"| {t.num_overlapping} ({t.occlusion:.0%}) |"
        )
    return "\n".join(lines)


_STEPS = {
    0: "-",
    1: "object count",
    2: "target size",
    3: "object count",
    4: "occlusion",
    5: "object count",
}


def attribute_tier_table() -> str:
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
    return "; ".join(f"{value}: {', '.join(objs)}" for value, objs in ATTRIBUTE.texts.world_objects.items())


def _color_sections(groups: int) -> tuple[str, str]:
    colors = ", ".join(color.COLORS)
    shapes = ", ".join(color.SHAPES)
    control_tiers = ", ".join(str(t) for t in color.CONTROL_VISUAL_TIERS)
    question = color.QUESTION_TEMPLATE.format(shape="<shape>")
    intro = f"""\
Image-text conflict test cases for multimodal language models, following the colour-recognition set of
[arXiv {PAPER_ARXIV_ID}](https://arxiv.org/abs/{PAPER_ARXIV_ID}). Each item pairs an image of a coloured
shape with a text that claims another colour for it, and asks "{question}".
A model answers three prompts per item: the image alone (vision-only, answer Yv), the text alone (text-only,
answer Yt) and both (conflict, answer Ym). Comparing Ym with Yv and Yt tells whether it followed the image or
the text."""
    body = f"""## Construction

- Colours: {colors}. The vision colour cycles through them over groups; the text colour is drawn at random
  among the other five, so both answers are balanced to within one group. Distractors never use either
  answer colour.
- Shapes: {shapes}. Each group has one target shape; distractors use other shapes, and one more shape is kept
  out of every image of the group.
- Images: white canvas, flat colours, PNG. Visual difficulty tiers (target sizes of tiers 5-13 are a share
  of the image side, 224 px; "overlapping" distractors cover part of the target, which always keeps at least
  half of its pixels visible):

{color_tier_table()}

- Texts, several hand-written templates per tier, chosen by the seed:
  tier 0 direct ("The circle is blue."), tier 1 through a named object ("The circle's color is the same as
  the kite's. The kite is blue."), tier 2 through a real-world object whose colour is common knowledge
  ("The circle is the color of a sapphire.").
- Controls, on visual tiers {control_tiers} with the direct text: `text_irrelevant` (the text is about
  another shape; the image answers the question) and `image_irrelevant` (question and text name a shape
  that is in none of the group's images; the text answers it).
- Prompt: `[text] [question] {ANSWER_COMMAND}`; the vision-only prompt has no text.

## Structure

One split, `{SPLIT}`, one row per (unit, condition). Conflict rows have `item_id`
`g<group>-v<visual tier>-t<text tier>-<control>` and point to their unimodal rows through `vision_key` and
`text_key`. Class labels: `condition` (vision_only, text_only, conflict), `control` (none, text_irrelevant,
image_irrelevant), `vision_answer` and `text_answer` (the colours above). Unimodal rows use "" and -1 for
fields of the missing modality. All rows of a group share one image per visual tier, so the
`text_irrelevant` vision-only rows repeat the main ones; in `image_irrelevant` rows `vision_answer` is the
colour of the group's target shape, which the question does not name."""
    return intro, body


def _attribute_sections(groups: int) -> tuple[str, str]:
    samples = "\n".join(f"| {t.index} | `{SAMPLES_DIR}/tier_{t.index}.png` |" for t in VISUAL_TIERS)
    control_tiers = ", ".join(str(t) for t in CONTROL_VISUAL_TIERS)
    per_group = ATTRIBUTE.rows_per_group()
    shape_question = QUESTION_TEMPLATES["shape"].format(name="purple metal object")
    material_question = QUESTION_TEMPLATES["material"].format(name="red cylinder")
    intermediaries = ", ".join(ATTRIBUTE.texts.intermediaries)
    intro = f"""\
Image-text conflict test cases for multimodal language models, following the attribute-recognition set of
[arXiv {PAPER_ARXIV_ID}](https://arxiv.org/abs/{PAPER_ARXIV_ID}) (which used CLEVR images). The scenes here
are rendered by the builder itself in the CLEVR style, so the set needs no download and is byte-reproducible.
Each item pairs a scene with a text that claims another shape or material for one object, and asks about
it: "{shape_question}" ({", ".join(SHAPES)}) or "{material_question}"
({", ".join(MATERIALS)}). A model answers three prompts per item: the image alone (vision-only, answer Yv),
the text alone (text-only, answer Yt) and both (conflict, answer Ym). Comparing Ym with Yv and Yt tells
whether it followed the image or the text."""
    body = f"""## Scenes

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

{attribute_tier_table()}

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
- tier 1 indirect simple, two hops through a made-up object ({intermediaries}), so the word
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
`text_key`. Unimodal rows use "" and -1 for fields of the missing modality."""
    return intro, body


_SECTIONS = {COLOR.key: _color_sections, ATTRIBUTE.key: _attribute_sections}


def render_card(
    kind: DatasetKind,
    *,
    num_rows: int,
    num_bytes: int,
    download_size: int,
    groups: int,
    seed: int,
    counts: dict[str, int],
) -> str:
    """Full text of ``README.md`` of a build of ``kind``: split size figures for the front matter, the build
    arguments quoted in the card and the rows per condition name (``counts``)."""
    meta = yaml_front_matter(
        front_matter(
            num_rows=num_rows,
            num_bytes=num_bytes,
            download_size=download_size,
            features=kind.features,
            pretty_name=kind.pretty_name,
        )
    )
    intro, body = _SECTIONS[kind.key](groups)
    return f"""---
{meta}---

# {kind.pretty_name}

{intro}

This copy: {groups} groups, seed {seed}, builder version {kind.builder_version}; {num_rows} rows
({counts.get("vision_only", 0)} vision-only, {counts.get("text_only", 0)} text-only,
{counts.get("conflict", 0)} conflict). `manifest.json` records the arguments and the sha256 of every file.

{body}

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
