"""The dataset-folder reader: manifest, card, shards, rows and the hash check of a built folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from modality_conflict.dataset_builder.builder import build_dataset
from modality_conflict.dataset_builder.constants import COLORS, CONDITIONS
from modality_conflict.dataset_builder.errors import DatasetValidationError
from modality_conflict.dataset_builder.folder import (
    DatasetFolder,
    DatasetFolderError,
    dataset_fingerprint,
    sha256_file,
)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("folder") / "set"
    build_dataset(out, groups=2, seed=3, workers=1)
    return out


def test_reads_manifest_card_and_files(built: Path) -> None:
    folder = DatasetFolder(built)
    assert folder.is_dir and folder.manifest is not None
    assert folder.fingerprint == dataset_fingerprint(folder.manifest)
    assert folder.builder_version == folder.manifest["builder_version"]
    assert folder.data_files() == folder.manifest_data_files() and folder.data_files()
    for name in folder.data_files():
        assert folder.manifest["files"][name]["sha256"] == sha256_file(built / name)
    assert "dataset_info" in folder.card_metadata()
    assert folder.hash_mismatches() == []
    folder.verify_hashes()


def test_rows_index_and_filters(built: Path) -> None:
    folder = DatasetFolder(built)
    rows = folder.rows()
    assert len(rows) == folder.manifest["num_rows"]
    first_group = folder.rows(limit_groups=1)
    assert 0 < len(first_group) < len(rows) and set(first_group["group_id"]) == {0}
    index = folder.index_rows(["condition", "vision_answer", "group_id"])
    assert set(index) == set(rows["row_id"])
    some = next(iter(index.values()))
    assert some["condition"] in CONDITIONS and some["vision_answer"] in COLORS  # ClassLabels as names
    picked = sorted(index)[:3]
    assert sorted(folder.rows(row_ids=set(picked))["row_id"]) == picked


def test_problems_name_the_folder_and_file(built: Path, tmp_path: Path) -> None:
    empty = DatasetFolder(tmp_path / "empty")
    assert empty.manifest is None and empty.fingerprint is None
    with pytest.raises(DatasetFolderError, match="no readable manifest.json"):
        empty.require_manifest()
    copy = tmp_path / "copy"
    shutil.copytree(built, copy)
    shard = copy / DatasetFolder(copy).data_files()[0]
    shard.write_bytes(shard.read_bytes()[:-10])
    tampered = DatasetFolder(copy)
    assert any("does not match manifest.json" in line for line in tampered.hash_mismatches())
    with pytest.raises(DatasetFolderError, match=f"dataset folder {copy} does not match its manifest"):
        tampered.verify_hashes()
    with pytest.raises(DatasetFolderError, match="are not the shard manifest.json records"):
        tampered.read_table()
    (copy / "README.md").write_text("no front matter\n")
    with pytest.raises(DatasetValidationError, match="no YAML front matter"):
        tampered.card_metadata()


def test_manifest_names_outside_the_folder_are_refused_by_every_reader(built: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(built, copy)
    outside = tmp_path / "elsewhere.parquet"
    shutil.copy(copy / DatasetFolder(copy).data_files()[0], outside)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["files"]["../elsewhere.parquet"] = {
        "sha256": sha256_file(outside),
        "size": outside.stat().st_size,
    }
    (copy / "manifest.json").write_text(json.dumps(manifest))
    folder = DatasetFolder(copy)
    assert "manifest.json: file name '../elsewhere.parquet' points outside the dataset folder" in (
        folder.hash_mismatches()
    )
    with pytest.raises(DatasetFolderError, match="points outside the dataset folder"):
        folder.verify_hashes()
    with pytest.raises(DatasetFolderError, match="points outside the dataset folder"):
        folder.index_rows(["condition"])
    with pytest.raises(DatasetFolderError, match="points outside the dataset folder"):
        folder.read_table(files=["../elsewhere.parquet"])
