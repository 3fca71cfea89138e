"""Dataset card (``README.md``) of a built folder: Hub YAML front matter plus a description."""

from __future__ import annotations

from typing import Any

import yaml

from modality_conflict.dataset_builder.constants import (
    ANSWER_COMMAND,
    BUILDER_VERSION,
    COLORS,
    CONTROL_VISUAL_TIERS,
    DATASET_LICENSE,
    PAPER_ARXIV_ID,
    QUESTION_TEMPLATE,
    SHAPES,
    SPLIT,
    VISUAL_TIERS,
)
from modality_conflict.dataset_builder.specs import COLOR

PRETTY_NAME = "Modality Conflict: colour recognition"

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
    pretty_name: str = PRETTY_NAME,
) -> dict[str, Any]:
    """YAML metadata of the card, in the layout the Hub and ``datasets`` read.

    Parameters
    ----------
    num_rows
        Rows of the test split.
    num_bytes
        Size of the split as Arrow data.
    download_size
        Total size of the parquet files.
    features
        The dataset's ``datasets.Features`` (``DatasetKind.features``).
    pretty_name
        The card's title.

    Returns
    -------
    dict
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


def _tier_table() -> str:
    lines = [
        "| dv | canvas | target side (px) | distractors | overlapping the target |",
        "|---|---|---|---|---|",
    ]
    for t in VISUAL_TIERS:
        lines.append(
            f"| {t.index} | {t.width}x{t.height} | {t.size_min}-{t.size_max} | {t.num_distractors} "
            f"| {t.num_overlapping} ({t.occlusion:.0%}) |"
        )
    return "\n".join(lines)


def render_card(
    *, num_rows: int, num_bytes: int, download_size: int, groups: int, seed: int, counts: dict[str, int]
) -> str:
    """Full text of ``README.md``.

    Parameters
    ----------
    num_rows, num_bytes, download_size
        Split size figures for the front matter.
    groups, seed
        Build arguments, quoted in the card.
    counts
        Rows per condition name.

    Returns
    -------
    str
    """
    meta = yaml_front_matter(
        front_matter(
            num_rows=num_rows, num_bytes=num_bytes, download_size=download_size, features=COLOR.features
        )
    )
    colors = ", ".join(COLORS)
    shapes = ", ".join(SHAPES)
    control_tiers = ", ".join(str(t) for t in CONTROL_VISUAL_TIERS)
    return f"""---
{meta}---

# {PRETTY_NAME}

Image-text conflict test cases for multimodal language models, following the colour-recognition set of
[arXiv {PAPER_ARXIV_ID}](https://arxiv.org/abs/{PAPER_ARXIV_ID}). Each item pairs an image of a coloured
shape with a text that claims another colour for it, and asks "{QUESTION_TEMPLATE.format(shape="<shape>")}".
A model answers three prompts per item: the image alone (vision-only, answer Yv), the text alone (text-only,
answer Yt) and both (conflict, answer Ym). Comparing Ym with Yv and Yt tells whether it followed the image or
the text.

This copy: {groups} groups, seed {seed}, builder version {BUILDER_VERSION}; {num_rows} rows
({counts.get("vision_only", 0)} vision-only, {counts.get("text_only", 0)} text-only,
{counts.get("conflict", 0)} conflict). `manifest.json` records the arguments and the sha256 of every file.

## Construction

- Colours: {colors}. The vision colour cycles through them over groups; the text colour is drawn at random
  among the other five, so both answers are balanced to within one group. Distractors never use either
  answer colour.
- Shapes: {shapes}. Each group has one target shape; distractors use other shapes, and one more shape is kept
  out of every image of the group.
- Images: white canvas, flat colours, PNG. Visual difficulty tiers (target sizes of tiers 5-13 are a share
  of the image side, 224 px; "overlapping" distractors cover part of the target, which always keeps at least
  half of its pixels visible):

{_tier_table()}

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
colour of the group's target shape, which the question does not name.

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
