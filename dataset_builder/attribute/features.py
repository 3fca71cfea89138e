"""The explicit ``datasets.Features`` of the attribute-conflict set and its Arrow schema."""

from __future__ import annotations

import pyarrow as pa
from datasets import ClassLabel, Features, Image, List, Value

from modality_conflict.dataset_builder.attribute.constants import ANSWERS, ATTRIBUTES, CONDITIONS, CONTROLS

#: Column order and types of every shard. The columns shared with the colour set come first, with the
#: same names and meaning, so tasks and metrics can read both sets alike; ``vision_answer`` and
#: ``text_answer`` are labels over the union of both attributes' answers, and ``answer_choices`` is
#: the row's own closed set. Unimodal rows use "" for strings that do not apply and -1 for numbers
#: that do not apply (tiers of the missing modality, layout values of text-only rows).
FEATURES = Features(
    {
        "row_id": Value("string"),
        "condition": ClassLabel(names=list(CONDITIONS)),
        "control": ClassLabel(names=list(CONTROLS)),
        "group_id": Value("int32"),
        "item_id": Value("string"),
        "vision_key": Value("string"),
        "text_key": Value("string"),
        "visual_tier": Value("int8"),
        "text_tier": Value("int8"),
        "attribute": ClassLabel(names=list(ATTRIBUTES)),
        "target": Value("string"),
        "question": Value("string"),
        "text": Value("string"),
        "template_id": Value("string"),
        "image": Image(),
        "vision_answer": ClassLabel(names=list(ANSWERS)),
        "text_answer": ClassLabel(names=list(ANSWERS)),
        "answer_choices": List(Value("string")),
        "target_scale": Value("string"),
        "target_size": Value("float32"),
        "num_objects": Value("int16"),
        "num_distractors": Value("int16"),
        "num_occluders": Value("int16"),
        "occlusion": Value("float32"),
        "image_width": Value("int16"),
        "image_height": Value("int16"),
        "scene": Value("string"),
    }
)


def arrow_schema() -> pa.Schema:
    """Arrow schema of the shards, with the ``huggingface`` metadata that ``datasets`` reads back.

    Returns
    -------
    pyarrow.Schema
        Same as ``FEATURES.arrow_schema``: the features are embedded as JSON under the ``huggingface``
        key, so a shard read on its own still gives the exact Features.
    """
    return FEATURES.arrow_schema
