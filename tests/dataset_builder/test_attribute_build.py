"""The attribute set built by the package's builder: Hub layout, manifest, card, rows, reproducibility."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from datasets import load_dataset
from PIL import Image

from modality_conflict.cli.main import main as cli_main
from modality_conflict.dataset_builder.attribute_constants import (
    ANSWERS,
    ATTRIBUTE_VALUES,
    ATTRIBUTES,
    BUILDER_VERSION,
    DATASET_NAME,
    VISUAL_TIERS,
)
from modality_conflict.dataset_builder.builder import build_dataset, resolve_groups
from modality_conflict.dataset_builder.constants import CONDITIONS, CONTROLS
from modality_conflict.dataset_builder.errors import BuildError
from modality_conflict.dataset_builder.features import arrow_schema, features_for
from modality_conflict.dataset_builder.folder import DatasetFolder
from modality_conflict.dataset_builder.scene import Scene, SceneObject, other_attribute
from modality_conflict.dataset_builder.specs import ATTRIBUTE
from modality_conflict.dataset_builder.validate import validate_dataset

SHARD = "data/test-00000-of-00001.parquet"


def _groups(folder: Path) -> int:
    return json.loads((folder / "manifest.json").read_text())["arguments"]["groups"]


def _rows(folder: Path) -> list[dict]:
    return [r for f in sorted((folder / "data").glob("*.parquet")) for r in pq.read_table(f).to_pylist()]


def test_layout_manifest_and_card(attribute_dataset_dir: Path) -> None:
    folder = attribute_dataset_dir
    groups = _groups(folder)
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert files == ["README.md", SHARD, "manifest.json"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["dataset"] == DATASET_NAME and manifest["builder_version"] == BUILDER_VERSION
    assert manifest["num_rows"] == groups * ATTRIBUTE.layout.rows_per_group() == groups * 41
    counts = ATTRIBUTE.layout.rows_per_condition(groups)
    assert manifest["counts"]["condition"] == {c: sum(counts[k][c] for k in CONTROLS) for c in CONDITIONS}
    assert manifest["counts"]["attribute"] == {a: manifest["num_rows"] // 2 for a in ATTRIBUTES}
    assert manifest["layout"]["images_per_group"] == len(VISUAL_TIERS)
    for name, entry in manifest["files"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == entry["sha256"]
    card = (folder / "README.md").read_text()
    meta = yaml.safe_load(card.split("---\n")[1])
    assert meta["pretty_name"] == "Modality Conflict: attribute recognition"
    assert meta["dataset_info"]["splits"][0]["num_examples"] == manifest["num_rows"]
    # The card documents the tiers, the answer normalisation and the rows per condition.
    for text in (
        "| 5 | 15 | small |",
        "| metal | metallic",
        "| none | 24 | 12 | 72 | 108 |",
        "docs/attribute/tier_5.png",
    ):
        assert text in card, text
    assert DatasetFolder(folder).kind.key == "attribute"


def test_validates_and_loads_with_its_features(attribute_dataset_dir: Path) -> None:
    report = validate_dataset(attribute_dataset_dir)
    assert report.dataset == "attribute" and report.num_rows == _groups(attribute_dataset_dir) * 41
    assert report.counts["attribute"] == {"shape": report.num_rows // 2, "material": report.num_rows // 2}
    assert report.images_decoded == _groups(attribute_dataset_dir) * len(VISUAL_TIERS)
    assert pq.read_schema(attribute_dataset_dir / SHARD).equals(arrow_schema(ATTRIBUTE), check_metadata=False)
    dataset = load_dataset(str(attribute_dataset_dir), split="test")
    assert dataset.features == features_for(ATTRIBUTE) and dataset.features["vision_answer"].names == list(
        ANSWERS
    )


def test_rows_keys_answers_and_scenes(attribute_dataset_dir: Path) -> None:
    rows = _rows(attribute_dataset_dir)
    groups = _groups(attribute_dataset_dir)
    expected = [i for g in range(groups) for i in ATTRIBUTE.layout.expected_row_ids(g)]
    assert [r["row_id"] for r in rows] == expected
    by_id = {r["row_id"]: r for r in rows}
    for r in rows:
        attribute = ATTRIBUTES[r["attribute"]]
        assert r["answer_choices"] == list(ATTRIBUTE_VALUES[attribute])
        yv, yt = ANSWERS[r["vision_answer"]], ANSWERS[r["text_answer"]]
        assert yv in r["answer_choices"] and yt in r["answer_choices"] and yv != yt
        assert r["question"].endswith(f"the {r['target']}?")
        condition, control = CONDITIONS[r["condition"]], CONTROLS[r["control"]]
        if condition == "conflict":
            vision, text = by_id[r["vision_key"]], by_id[r["text_key"]]
            assert vision["image"] == r["image"] and text["text"] == r["text"]
            assert vision["question"] == text["question"] == r["question"]
        if condition == "text_only":
            assert r["image"] is None and r["visual_tier"] == -1 and r["scene"] == ""
            continue
        scene = json.loads(r["scene"])
        objects = [
            SceneObject(o["shape"], o["color"], o["material"], o["size"], o["x"], o["y"])
            for o in scene["objects"]
        ]
        target = objects[scene["target"]]
        assert target.value(attribute) == yv
        assert len(objects) == r["num_objects"] == r["num_distractors"] + 1
        color, other = r["target"].split()[:2]
        matching = Scene(tuple(objects), scene["target"], attribute, (0.0, 0.0, 1.0)).count_matching(
            color, other
        )
        if control != "image_irrelevant":
            assert (color, other) == (target.color, target.value(other_attribute(attribute)))
        # The question names exactly one object, except the image-irrelevant control (none).
        assert matching == (0 if control == "image_irrelevant" else 1)
        with Image.open(io.BytesIO(r["image"]["bytes"])) as img:
            assert img.size == (r["image_width"], r["image_height"])


@pytest.mark.slow
def test_one_worker_gives_the_same_bytes_as_two(attribute_dataset_dir: Path, tmp_path: Path) -> None:
    # The session build used two workers.
    again = build_dataset(
        tmp_path / "one", dataset="attribute", groups=_groups(attribute_dataset_dir), seed=0, workers=1
    )
    for name in ("manifest.json", "README.md", SHARD):
        assert (again.out / name).read_bytes() == (attribute_dataset_dir / name).read_bytes(), name


def test_rerun_is_a_verified_no_op_and_another_dataset_needs_overwrite(attribute_dataset_dir: Path) -> None:
    groups = _groups(attribute_dataset_dir)
    result = build_dataset(attribute_dataset_dir, dataset="attribute", groups=groups, seed=0, workers=1)
    assert result.reused and result.dataset == "attribute"
    with pytest.raises(BuildError, match="other arguments .*dataset modality-conflict-attribute"):
        build_dataset(attribute_dataset_dir, dataset="color", groups=groups, seed=0, workers=1)


def test_presets_and_unknown_dataset() -> None:
    assert resolve_groups("small", None, dataset="attribute") == 12
    assert resolve_groups(None, None, dataset="attribute") == 400
    with pytest.raises(ValueError, match="unknown dataset 'clevr'"):
        resolve_groups("small", None, dataset="clevr")


def test_cli_build_rejects_an_unknown_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli_main(["build", "--dataset", "clevr", "--out", str(tmp_path / "x")])
    assert "invalid choice: 'clevr'" in capsys.readouterr().err
