"""The datasets this package builds, each described once: names, sizes, answer set and where its code lives.

Two sets share the builder, the writer, the manifest, the folder reader, validation and the Hub layout:

- ``color`` (``modality-conflict-colour``): coloured shapes on a white canvas, questions about a colour;
- ``attribute`` (``modality-conflict-attribute``): rendered CLEVR-style scenes, questions about an
  object's shape or material.

A :class:`DatasetKind` holds what differs between them. Everything that reads a row's answers goes through
its answer set: :func:`vocabulary_for` finds the dataset whose answer labels hold a row's
``answer_choices``, which gives the ClassLabel names of ``vision_answer`` / ``text_answer`` and the
synonyms table for answer normalisation, so no module assumes one answer set. This module imports only
the vocabularies and text templates; the plan (with each kind's generator and renderer) and the features
are imported on use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from modality_conflict.dataset_builder import attribute_constants as attribute
from modality_conflict.dataset_builder import constants as color
from modality_conflict.dataset_builder.texts import ATTRIBUTE_TEXTS, COLOR_TEXTS, TextTemplates


@dataclass(frozen=True, kw_only=True)
class DatasetKind:
    """One kind of dataset the package builds (colour or attribute): what differs between them.

    ``key``: Short name used on the command line (``--dataset``) and in task configs.
    ``name``: The manifest's ``dataset`` value, which identifies a built folder.
    ``builder_version``: Version of its generation procedure (recorded in the manifest).
    ``answer_labels``: ClassLabel names of ``vision_answer`` and ``text_answer`` (every answer of every row).
    ``attributes``: The attributes questions ask about (``color``; or ``shape`` and ``material``). A dataset
        with more than one has an ``attribute`` column.
    ``answer_sets``: The closed answer set (a row's ``answer_choices``) of each attribute.
    ``synonyms``: Free-form words mapped to the answer they name (answer normalisation; not part of the
        bytes).
    ``images_per_group``: Distinct images of one group (one per visual tier).
    ``control_visual_tiers``: Visual tiers the controls are built on.
    ``subject_columns``, ``layout_columns``: ``(column, type)`` of the columns that name what a question asks
        about, and of the image's layout values
        (:func:`~modality_conflict.dataset_builder.features.features_for` places them).

    Its generator is ``plan.PLANNERS[key]`` (the group's choices, the image spec and its renderer).
    """

    key: str
    name: str
    pretty_name: str
    builder_version: str
    presets: Mapping[str, int]
    groups_per_shard: int = color.GROUPS_PER_SHARD
    answer_labels: tuple[str, ...]
    attributes: tuple[str, ...]
    answer_sets: Mapping[str, tuple[str, ...]]
    synonyms: Mapping[str, str] = field(repr=False)
    images_per_group: int
    control_visual_tiers: tuple[int, ...]
    subject_columns: tuple[tuple[str, str], ...]
    layout_columns: tuple[tuple[str, str], ...]
    texts: TextTemplates = field(repr=False)

    @property
    def layout(self) -> Any:
        """The tiers each control is built on and the rows of a group
        (:class:`~modality_conflict.dataset_builder.rows.TierLayout`)."""
        from modality_conflict.dataset_builder.rows import TierLayout

        return TierLayout(tuple(range(self.images_per_group)), self.control_visual_tiers)

    def rows_per_group(self) -> int:
        """Rows each group contributes."""
        return self.layout.rows_per_group()

    @property
    def features(self) -> Any:
        """The explicit ``datasets.Features`` (imports ``datasets``)."""
        from modality_conflict.dataset_builder.features import features_for

        return features_for(self)

    def arrow_schema(self) -> Any:
        """The shards' Arrow schema with the ``huggingface`` features metadata."""
        return self.features.arrow_schema

    @property
    def label_names(self) -> dict[str, tuple[str, ...]]:
        """ClassLabel columns and their names, in index order."""
        names = {
            "condition": color.CONDITIONS,
            "control": color.CONTROLS,
            "vision_answer": self.answer_labels,
            "text_answer": self.answer_labels,
        }
        if len(self.attributes) > 1:
            names["attribute"] = self.attributes
        return names

    def resolve_groups(self, preset: str | None, groups: int | None) -> int:
        """Number of groups from a preset name and/or an explicit count (the count wins; default paper)."""
        if groups is not None:
            return int(groups)
        name = preset or "paper"
        if name not in self.presets:
            from modality_conflict.dataset_builder.errors import BuildError

            raise BuildError(f"unknown preset {name!r} of {self.key}; expected one of {sorted(self.presets)}")
        return int(self.presets[name])


COLOR = DatasetKind(
    key="color",
    name=color.DATASET_NAME,
    pretty_name="Modality Conflict: colour recognition",
    builder_version=color.BUILDER_VERSION,
    presets=color.PRESETS,
    answer_labels=color.COLORS,
    attributes=("color",),
    answer_sets={"color": color.COLORS},
    synonyms=color.COLOR_SYNONYMS,
    images_per_group=len(color.VISUAL_TIERS),
    control_visual_tiers=color.CONTROL_VISUAL_TIERS,
    subject_columns=(("shape", "string"),),
    layout_columns=(
        ("target_size", "float32"),
        ("num_distractors", "int16"),
        ("occlusion", "float32"),
        ("image_width", "int16"),
        ("image_height", "int16"),
    ),
    texts=COLOR_TEXTS,
)

ATTRIBUTE = DatasetKind(
    key="attribute",
    name=attribute.DATASET_NAME,
    pretty_name="Modality Conflict: attribute recognition",
    builder_version=attribute.BUILDER_VERSION,
    presets=attribute.PRESETS,
    answer_labels=attribute.ANSWERS,
    attributes=attribute.ATTRIBUTES,
    answer_sets=attribute.ATTRIBUTE_VALUES,
    synonyms=attribute.ANSWER_SYNONYMS,
    images_per_group=len(attribute.VISUAL_TIERS),
    control_visual_tiers=attribute.CONTROL_VISUAL_TIERS,
    subject_columns=(("attribute", "label"), ("target", "string")),
    layout_columns=(
        ("target_scale", "string"),
        ("target_size", "float32"),
        ("num_objects", "int16"),
        ("num_distractors", "int16"),
        ("num_occluders", "int16"),
        ("occlusion", "float32"),
        ("image_width", "int16"),
        ("image_height", "int16"),
        ("scene", "string"),
    ),
    texts=ATTRIBUTE_TEXTS,
)

#: Every dataset, by its command-line key.
DATASETS: dict[str, DatasetKind] = {spec.key: spec for spec in (COLOR, ATTRIBUTE)}
DEFAULT_DATASET = COLOR.key


def dataset_kind(key_or_name: str) -> DatasetKind:
    """The dataset of a command-line key (``color``, ``attribute``) or a manifest name.

    Raises ``ValueError`` for an unknown dataset, listing the known ones.
    """
    for spec in DATASETS.values():
        if key_or_name in (spec.key, spec.name):
            return spec
    known = ", ".join(f"{s.key} ({s.name})" for s in DATASETS.values())
    raise ValueError(f"unknown dataset {key_or_name!r}; expected one of {known}")


def kind_of_manifest(manifest: Mapping[str, Any] | None) -> DatasetKind | None:
    """The dataset a built folder's manifest names, or None when it names none of ours."""
    name = manifest.get("dataset") if isinstance(manifest, Mapping) else None
    return next((s for s in DATASETS.values() if s.name == name), None)


def vocabulary_for(choices: Sequence[str]) -> DatasetKind:
    """The dataset whose answer labels hold every one of a row's ``answer_choices``.

    A row carries its closed answer set; this maps it to the ClassLabel names of its answer columns
    (``spec.answer_labels``) and to the synonyms used to normalise free-form answers (``spec.synonyms``).

    Raises ``ValueError`` when no dataset's answer labels hold all of ``choices`` (naming them).
    """
    wanted = [str(c) for c in choices]
    if not wanted:
        raise ValueError("the row has no answer_choices")
    for spec in DATASETS.values():
        if all(c in spec.answer_labels for c in wanted) and any(
            list(s) == wanted for s in spec.answer_sets.values()
        ):
            return spec
    raise ValueError(
        f"answer_choices {wanted} are not the answer set of any dataset "
        f"({', '.join(f'{s.key}: {[list(v) for v in s.answer_sets.values()]}' for s in DATASETS.values())})"
    )
