"""`validate` on an attribute folder: it dispatches on the manifest and names each corruption it finds."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dataset_edits import rehash

from modality_conflict.cli.main import main as cli_main
from modality_conflict.dataset_builder.attribute_constants import ANSWERS
from modality_conflict.dataset_builder.errors import DatasetValidationError
from modality_conflict.dataset_builder.features import arrow_schema
from modality_conflict.dataset_builder.specs import ATTRIBUTE
from modality_conflict.dataset_builder.validate import validate_dataset

SHARD = "data/test-00000-of-00001.parquet"


@pytest.fixture
def copy(attribute_dataset_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "ds"
    shutil.copytree(attribute_dataset_dir, target)
    return target


def _edit(folder: Path, edit: Callable[[dict[str, Any]], None], row_id: str) -> int:
    """Apply ``edit`` to the row ``row_id`` and return its index."""
    rows = pq.read_table(folder / SHARD).to_pylist()
    index = next(i for i, r in enumerate(rows) if r["row_id"] == row_id)
    edit(rows[index])
    pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema(ATTRIBUTE)), folder / SHARD)
    rehash(folder, SHARD)
    return index


def _problems(folder: Path) -> str:
    with pytest.raises(DatasetValidationError) as excinfo:
        validate_dataset(folder, max_problems=50)
    return str(excinfo.value)


def test_cli_validates_the_attribute_folder(
    attribute_dataset_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli_main(["validate", str(attribute_dataset_dir), "--skip-images"]) == 0
    assert "OK - 164 rows in 1 file(s), 4 groups (attribute set)" in capsys.readouterr().out


def test_answer_outside_the_rows_answer_set(copy: Path) -> None:
    # Group 1 asks about material: a shape is not among its answer choices.
    index = _edit(copy, lambda r: r.update(text_answer=ANSWERS.index("cube")), "g0001-t0-none")
    message = _problems(copy)
    assert f"row {index} (g0001-t0-none): field 'text_answer' is 'cube', not a material" in message


def test_text_that_claims_another_value(copy: Path) -> None:
    rows = pq.read_table(copy / SHARD).to_pylist()
    row = next(r for r in rows if r["row_id"] == "g0000-t0-none")
    # Group 0 asks about shape: the one shape that is neither answer.
    wrong = next(
        v
        for v in ("cube", "sphere", "cylinder")
        if v not in (ANSWERS[row["text_answer"]], ANSWERS[row["vision_answer"]])
    )
    text = f"The {row['target']} is a {wrong}."
    index = _edit(copy, lambda r: r.update(text=text), "g0000-t0-none")
    assert f"row {index} (g0000-t0-none): field 'text' claims '{wrong}'" in _problems(copy)


def test_ambiguous_target_name_in_the_scene(copy: Path) -> None:
    def edit(row: dict[str, Any]) -> None:
        scene = json.loads(row["scene"])
        target = scene["objects"][scene["target"]]
        # A second object with the target's colour and naming attribute makes the name ambiguous.
        scene["objects"][-1].update(color=target["color"], shape=target["shape"], material=target["material"])
        row["scene"] = json.dumps(scene)

    index = _edit(copy, edit, "g0000-v03-none")
    assert f"row {index} (g0000-v03-none): field 'target'" in _problems(copy)
    assert "fits 2 objects of the scene, expected 1" in _problems(copy)


def test_tier_counts_and_coverage(copy: Path) -> None:
    index = _edit(copy, lambda r: r.update(num_objects=7), "g0002-v05-none")
    rows = pq.read_table(copy / SHARD).to_pylist()
    pq.write_table(
        pa.Table.from_pylist(
            [r for r in rows if r["row_id"] != "g0003-v01-t2-none"], schema=arrow_schema(ATTRIBUTE)
        ),
        copy / SHARD,
    )
    rehash(copy, SHARD)
    message = _problems(copy)
    assert f"row {index} (g0002-v05-none): field 'num_objects' is 7, tier 5 has 15" in message
    assert "tier coverage: group 3 lacks 1 row(s): g0003-v01-t2-none" in message


def test_wrong_answer_choices(copy: Path) -> None:
    index = _edit(copy, lambda r: r.update(answer_choices=["cube", "sphere"]), "g0000-v00-none")
    message = _problems(copy)
    assert f"row {index} (g0000-v00-none): field 'answer_choices' is ['cube', 'sphere']" in message
