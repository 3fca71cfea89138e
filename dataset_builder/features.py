"""The explicit ``datasets.Features`` of each dataset and its Arrow schema, written once for both.

Both sets share their columns' names and meaning, so tasks and metrics read them alike. What differs is
declared by the :class:`~modality_conflict.dataset_builder.specs.DatasetKind`: the columns that name what
a question asks about (``subject_columns``) and the image's layout values (``layout_columns``), and the
ClassLabel names (``label_names``: ``vision_answer`` / ``text_answer`` over the dataset's answer labels).
Unimodal rows use "" for strings that do not apply and -1 for numbers that do not apply (tiers of the
missing modality, layout values of text-only rows).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

import pyarrow as pa
from datasets import ClassLabel, Features, Image, List, Value


class ColumnsOfKind(Protocol):
    """What a :class:`~modality_conflict.dataset_builder.specs.DatasetKind` says of its columns."""

    key: str
    subject_columns: tuple[tuple[str, str], ...]
    layout_columns: tuple[tuple[str, str], ...]

    @property
    def label_names(self) -> Mapping[str, tuple[str, ...]]: ...


# (column, type) in shard order; "label" columns take their names from the kind's label_names.
_IDENTITY_COLUMNS = (
    ("row_id", "string"),
    ("condition", "label"),
    ("control", "label"),
    ("group_id", "int32"),
    ("item_id", "string"),
    ("vision_key", "string"),
    ("text_key", "string"),
    ("visual_tier", "int8"),
    ("text_tier", "int8"),
)
_QUESTION_COLUMNS = (
    ("question", "string"),
    ("text", "string"),
    ("template_id", "string"),
    ("image", "image"),
    ("vision_answer", "label"),
    ("text_answer", "label"),
    ("answer_choices", "strings"),
)

_CACHE: dict[str, Features] = {}


def _feature(column: str, kind_of_value: str, labels: Mapping[str, tuple[str, ...]]) -> object:
    if kind_of_value == "label":
        return ClassLabel(names=list(labels[column]))
    if kind_of_value == "image":
        return Image()
    if kind_of_value == "strings":
        return List(Value("string"))
    return Value(kind_of_value)


def features_for(kind: ColumnsOfKind) -> Features:
    """The columns and types of every shard of dataset ``kind``, in order."""
    if kind.key not in _CACHE:
        labels = kind.label_names
        columns = (*_IDENTITY_COLUMNS, *kind.subject_columns, *_QUESTION_COLUMNS, *kind.layout_columns)
        _CACHE[kind.key] = Features({name: _feature(name, value, labels) for name, value in columns})
    return _CACHE[kind.key]


def arrow_schema(kind: ColumnsOfKind) -> pa.Schema:
    """Arrow schema of the shards, with the ``huggingface`` metadata that ``datasets`` reads back (the
    features embedded as JSON, so a shard read on its own still gives the exact Features)."""
    return features_for(kind).arrow_schema
