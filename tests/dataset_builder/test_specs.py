"""One description per dataset: names, answer sets, and the lookups every reader of a row goes through."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modality_conflict.dataset_builder import attribute_constants as attribute
from modality_conflict.dataset_builder import constants as color
from modality_conflict.dataset_builder import specs

SCHEMA = Path(specs.__file__).resolve().parents[1] / "analysis" / "submission" / "submission.schema.json"


def test_each_dataset_is_found_by_key_name_and_manifest() -> None:
    assert specs.dataset_kind("attribute") is specs.ATTRIBUTE
    assert specs.dataset_kind(attribute.DATASET_NAME) is specs.ATTRIBUTE
    assert specs.dataset_kind(color.DATASET_NAME) is specs.COLOR
    assert specs.kind_of_manifest({"dataset": attribute.DATASET_NAME}) is specs.ATTRIBUTE
    assert (
        specs.kind_of_manifest({"dataset": "something-else"}) is None and specs.kind_of_manifest(None) is None
    )
    with pytest.raises(ValueError, match="unknown dataset 'clevr'; expected one of color"):
        specs.dataset_kind("clevr")


def test_answer_sets_map_to_their_dataset() -> None:
    assert specs.vocabulary_for(list(color.COLORS)) is specs.COLOR
    assert specs.vocabulary_for(["cube", "sphere", "cylinder"]) is specs.ATTRIBUTE
    assert specs.vocabulary_for(["rubber", "metal"]).synonyms["metallic"] == "metal"
    # A set must be one of a dataset's answer sets, not any mix of its labels.
    for bad in (["cube", "metal"], ["red", "blue"], []):
        with pytest.raises(ValueError, match="answer"):
            specs.vocabulary_for(bad)


def test_label_names_and_synonyms_are_consistent() -> None:
    assert specs.ATTRIBUTE.label_names["attribute"] == ("shape", "material")
    assert "attribute" not in specs.COLOR.label_names
    for kind in specs.DATASETS.values():
        assert set(kind.synonyms.values()) <= set(kind.answer_labels)
        assert [a for s in kind.answer_sets.values() for a in s] == list(kind.answer_labels)
        # A synonym never spells another answer of the same dataset.
        assert not set(kind.synonyms) & set(kind.answer_labels)


def test_submission_schema_admits_every_answer_label() -> None:
    schema = json.loads(SCHEMA.read_text())
    labels = [a for kind in specs.DATASETS.values() for a in kind.answer_labels]
    assert schema["$defs"]["answer_label"]["enum"] == labels
    attributes = schema["$defs"]["record"]["properties"]["attribute"]["enum"]
    assert attributes == [a for kind in specs.DATASETS.values() for a in kind.attributes]
