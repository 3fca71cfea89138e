"""`validate` on a good folder and on each kind of corruption, with the message it must give."""

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
from modality_conflict.dataset_builder.builder import build_dataset
from modality_conflict.dataset_builder.constants import COLORS
from modality_conflict.dataset_builder.errors import DatasetValidationError
from modality_conflict.dataset_builder.features import arrow_schema
from modality_conflict.dataset_builder.specs import COLOR
from modality_conflict.dataset_builder.validate import validate_dataset

GROUPS = 6
SHARD = "data/test-00000-of-00001.parquet"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("validate") / "ds"
    build_dataset(out, groups=GROUPS, seed=3, workers=1)
    return out


@pytest.fixture
def copy(built: Path, tmp_path: Path) -> Path:
    target = tmp_path / "ds"
    shutil.copytree(built, target)
    return target


def _edit_rows(folder: Path, edit: Callable[[list[dict[str, Any]]], list[dict[str, Any]]]) -> None:
    table = pq.read_table(folder / SHARD)
    rows = edit(table.to_pylist())
    pq.write_table(pa.Table.from_pylist(rows, schema=arrow_schema(COLOR)), folder / SHARD)
    rehash(folder, SHARD)


def _problems(folder: Path) -> str:
    with pytest.raises(DatasetValidationError) as excinfo:
        validate_dataset(folder)
    return str(excinfo.value)


def test_good_folder_passes(built: Path) -> None:
    report = validate_dataset(built)
    assert report.num_rows == GROUPS * 81
    assert report.counts["control"] == {
        "none": GROUPS * 59,
        "text_irrelevant": GROUPS * 11,
        "image_irrelevant": GROUPS * 11,
    }
    assert "OK" in report.summary()


def test_hash_mismatch(copy: Path) -> None:
    shard = copy / SHARD
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    shard.write_bytes(bytes(data))
    assert f"manifest hash mismatch: {SHARD}: sha256" in _problems(copy)
    shard.write_bytes(bytes(data) + b"\0")
    assert f"manifest hash mismatch: {SHARD}: size {len(data) + 1} bytes does not match" in _problems(copy)


def test_missing_and_unlisted_files(copy: Path) -> None:
    shutil.copy(copy / SHARD, copy / "data/test-extra.parquet")
    (copy / "README.md").unlink()
    message = _problems(copy)
    assert "data/test-extra.parquet: not listed in manifest.json" in message
    assert "README.md: listed in manifest.json but missing" in message
    (copy / "manifest.json").write_text("{ not json")
    assert "manifest.json: missing or not valid JSON" in _problems(copy)


def test_wrong_schema(copy: Path) -> None:
    table = pq.read_table(copy / SHARD)
    index = table.schema.get_field_index("text_answer")
    names = pa.array([COLORS[i] for i in table["text_answer"].to_pylist()])
    table = table.set_column(index, pa.field("text_answer", pa.string()), names)
    pq.write_table(table, copy / SHARD)
    rehash(copy, SHARD)
    message = _problems(copy)
    assert f"{SHARD}: column 'text_answer' has type string, expected int64" in message


def test_missing_column(copy: Path) -> None:
    table = pq.read_table(copy / SHARD).drop_columns(["occlusion"])
    pq.write_table(table, copy / SHARD)
    rehash(copy, SHARD)
    assert f"{SHARD}: missing column 'occlusion'" in _problems(copy)


def test_conflict_row_with_equal_answers(copy: Path) -> None:
    def edit(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rows[17]["text_answer"] = rows[17]["vision_answer"]
        return rows

    row_id = pq.read_table(copy / SHARD)["row_id"][17].as_py()
    _edit_rows(copy, edit)
    message = _problems(copy)
    colour = COLORS[0 if row_id.startswith("g0000") else 1]
    assert f"{SHARD} row 17 ({row_id}): field 'text_answer' equals 'vision_answer' ({colour})" in message


def test_undecodable_image(copy: Path) -> None:
    def edit(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rows[3]["image"] = {"bytes": b"\x89PNG\r\n\x1a\nbroken", "path": "x.png"}
        return rows

    _edit_rows(copy, edit)
    message = _problems(copy)
    assert f"{SHARD} row 3 (g0000-v03-none): field 'image' cannot be decoded" in message


def test_missing_visual_tier(copy: Path) -> None:
    _edit_rows(copy, lambda rows: [r for r in rows if not (r["group_id"] == 2 and r["visual_tier"] == 7)])
    message = _problems(copy)
    assert "tier coverage: group 2 lacks 8 row(s): g0002-v07-none, g0002-v07-t0-none" in message


def test_unbalanced_answers(copy: Path) -> None:
    rows = pq.read_table(copy / SHARD).to_pylist()
    group1_text = next(r["text_answer"] for r in rows if r["group_id"] == 1)
    # Give group 1 (yellow) another vision colour that still differs from its text colour.
    new = next(i for i in range(len(COLORS)) if i not in (1, group1_text))

    def edit(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for r in rows:
            if r["group_id"] == 1:
                r["vision_answer"] = new
        return rows

    _edit_rows(copy, edit)
    message = _problems(copy)
    assert "answer balance: groups per 'vision_answer' colour differ by more than one" in message
    assert f"{COLORS[new]}: 2" in message and "yellow: 0" in message


def test_inconsistent_keys_and_text(copy: Path) -> None:
    def edit(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        rows[20]["vision_key"] = "g0009-v00-none"
        rows[21]["text"] = "The thing is nice."
        return rows

    _edit_rows(copy, edit)
    rows = pq.read_table(copy / SHARD).to_pylist()
    message = _problems(copy)
    assert f"row 20 ({rows[20]['row_id']}): field 'vision_key' is 'g0009-v00-none'" in message
    assert f"row 21 ({rows[21]['row_id']}): field 'text'" in message


def test_card_features_must_match(copy: Path) -> None:
    card = copy / "README.md"
    card.write_text(card.read_text().replace("dtype: int16", "dtype: int32", 1))
    rehash(copy, "README.md")
    assert "README.md: dataset_info.features differ from the expected features" in _problems(copy)


def test_not_a_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetValidationError, match="not a folder"):
        validate_dataset(tmp_path / "absent")


def test_cli_reports_problems_with_exit_status_2(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (copy / SHARD).write_bytes(b"garbage")
    rehash(copy, SHARD)  # only bytes the manifest vouches for are parsed
    assert cli_main(["validate", str(copy)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert f"{SHARD}: cannot be read as parquet" in err
    assert "Traceback" not in err


# --- paths a manifest names, and unreadable cards ---------------------------------------------------------


def _list_in_manifest(folder: Path, name: str, *, sha256: str = "0" * 64, size: int = 1) -> None:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["files"][name] = {"sha256": sha256, "size": size}
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("../../../../etc/passwd", "'../../../../etc/passwd' points outside the dataset folder"),
        ("/etc/passwd", "'/etc/passwd' points outside the dataset folder"),
        ("data/..\\..\\x", "is not a relative path"),
        ("data/link.parquet", "'data/link.parquet' is a link that leads outside the dataset folder"),
    ],
)
def test_manifest_paths_never_leave_the_folder(
    copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, message: str
) -> None:
    from modality_conflict.dataset_builder import folder as folder_module

    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"secret")
    (copy / "data" / "link.parquet").symlink_to(outside)
    _list_in_manifest(copy, name)
    read: list[Path] = []
    real_sha = folder_module.sha256_file
    monkeypatch.setattr(folder_module, "sha256_file", lambda path: read.append(Path(path)) or real_sha(path))
    assert message in _problems(copy)
    # validate, a build re-run and the folder reader refuse alike, and read nothing outside.
    with pytest.raises(Exception, match="outside the dataset folder|not a relative path"):
        build_dataset(copy, groups=GROUPS, seed=3, workers=1)
    assert all(path.resolve().is_relative_to(copy.resolve()) for path in read), read
    assert all(path.resolve() != outside.resolve() for path in read)


def test_sizes_are_compared_before_hashing(copy: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from modality_conflict.dataset_builder import folder as folder_module

    huge = copy / "data" / "huge.bin"
    with open(huge, "wb") as handle:  # sparse: 50 GB that take no room, and must never be read
        handle.truncate(50 << 30)
    _list_in_manifest(copy, "data/huge.bin", size=10)
    read: list[str] = []
    real_sha = folder_module.sha256_file
    monkeypatch.setattr(
        folder_module, "sha256_file", lambda path: read.append(Path(path).name) or real_sha(path)
    )
    assert f"data/huge.bin: size {50 << 30} bytes does not match manifest.json (10)" in _problems(copy)
    assert "huge.bin" not in read


def test_a_card_that_is_not_utf8_is_named(copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = copy / "README.md"
    card.write_bytes(b"---\n\xff\xfe not utf-8\n---\n")
    rehash(copy, "README.md")
    assert cli_main(["validate", str(copy)]) == 2
    err = capsys.readouterr().err
    assert f"{card}: the dataset card is not UTF-8 text (byte 4: invalid start byte)" in err
