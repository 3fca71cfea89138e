"""The row checks both datasets share (row ids, labels, group ids, embedded images): each corruption is
named with its file, row and field, in the colour set and in the attribute set alike."""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dataset_edits import rehash
from PIL import Image

from modality_conflict.dataset_builder.attribute_constants import IMAGE_HEIGHT, IMAGE_WIDTH
from modality_conflict.dataset_builder.constants import CONTROLS as ATTRIBUTE_CONTROLS
from modality_conflict.dataset_builder.constants import CONTROLS as COLOUR_CONTROLS
from modality_conflict.dataset_builder.constants import VISUAL_TIERS as COLOUR_TIERS
from modality_conflict.dataset_builder.errors import DatasetValidationError
from modality_conflict.dataset_builder.features import arrow_schema
from modality_conflict.dataset_builder.specs import DATASETS
from modality_conflict.dataset_builder.validate import validate_dataset

SHARD = "data/test-00000-of-00001.parquet"
Rows = list[dict[str, Any]]


@pytest.fixture(params=["color", "attribute"])
def dataset(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    """A copy of a small built folder of each dataset, free to corrupt."""
    source = request.getfixturevalue(
        "small_dataset_dir" if request.param == "color" else "attribute_dataset_dir"
    )
    target = tmp_path / "ds"
    shutil.copytree(source, target)
    return request.param, target


def _corrupt(kind: str, folder: Path, edit: Callable[[Rows], None]) -> Rows:
    """Rewrite the shard with ``edit`` applied and the manifest re-hashed: only the corruption is left."""
    rows = pq.read_table(folder / SHARD).to_pylist()
    edit(rows)
    schema = arrow_schema(DATASETS[kind])
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), folder / SHARD)
    rehash(folder, SHARD)
    return rows


def _problems(folder: Path) -> str:
    with pytest.raises(DatasetValidationError) as excinfo:
        validate_dataset(folder, max_problems=50)
    return str(excinfo.value)


def _first_image_row(rows: Rows) -> int:
    return next(i for i, row in enumerate(rows) if row["image"] is not None)


def test_a_repeated_row_id_names_the_first_row(dataset: tuple[str, Path]) -> None:
    kind, folder = dataset
    rows = _corrupt(kind, folder, lambda rows: rows[5].update(row_id=rows[4]["row_id"]))
    assert f"{SHARD} row 5 ({rows[4]['row_id']}): field 'row_id' repeats row 4" in _problems(folder)


def test_an_empty_row_id(dataset: tuple[str, Path]) -> None:
    kind, folder = dataset
    _corrupt(kind, folder, lambda rows: rows[5].update(row_id=""))
    assert f"{SHARD} row 5 (): field 'row_id' is empty" in _problems(folder)


def test_a_label_outside_its_names(dataset: tuple[str, Path]) -> None:
    kind, folder = dataset
    rows = _corrupt(kind, folder, lambda rows: rows[5].update(control=99))
    names = list(COLOUR_CONTROLS if kind == "color" else ATTRIBUTE_CONTROLS)
    expected = f"{SHARD} row 5 ({rows[5]['row_id']}): field 'control' has value 99, not an index of {names}"
    assert expected in _problems(folder)


def test_a_negative_group_id(dataset: tuple[str, Path]) -> None:
    kind, folder = dataset
    rows = _corrupt(kind, folder, lambda rows: rows[5].update(group_id=-1))
    expected = f"{SHARD} row 5 ({rows[5]['row_id']}): field 'group_id' is -1, expected a non-negative integer"
    assert expected in _problems(folder)


def test_an_image_without_bytes(dataset: tuple[str, Path]) -> None:
    kind, folder = dataset
    index = _first_image_row(pq.read_table(folder / SHARD).to_pylist())
    rows = _corrupt(kind, folder, lambda rows: rows[index].update(image={"bytes": None, "path": "x.png"}))
    assert f"{SHARD} row {index} ({rows[index]['row_id']}): field 'image' has no embedded bytes" in _problems(
        folder
    )


def test_an_image_of_the_wrong_size(dataset: tuple[str, Path]) -> None:
    kind, folder = dataset
    index = _first_image_row(pq.read_table(folder / SHARD).to_pylist())
    buffer = io.BytesIO()
    Image.new("RGB", (7, 5)).save(buffer, format="PNG")
    rows = _corrupt(
        kind, folder, lambda rows: rows[index].update(image={"bytes": buffer.getvalue(), "path": "x.png"})
    )
    if kind == "color":
        tier = COLOUR_TIERS[rows[index]["visual_tier"]]
        size = f"tier {tier.index} uses {tier.width}x{tier.height}"
    else:
        size = f"expected {IMAGE_WIDTH}x{IMAGE_HEIGHT}"
    assert f"{SHARD} row {index} ({rows[index]['row_id']}): field 'image' is 7x5, {size}" in _problems(folder)
