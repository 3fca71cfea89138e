"""The canonical datasets: declared once in pins.json, read by the builder and the tasks, reproducible."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from modality_conflict.dataset_builder import canonical
from modality_conflict.dataset_builder.attribute_constants import PRESETS as ATTRIBUTE_PRESETS
from modality_conflict.dataset_builder.canonical import CANONICAL, CANONICAL_ATTRIBUTE
from modality_conflict.dataset_builder.constants import BUILDER_VERSION, PRESETS
from modality_conflict.mc_tasks.plugin import pinned_fingerprint
from modality_conflict.mc_tasks.task_config import PIN_TEMPLATES, TASKS_DIR

REPO_ROOT = Path(__file__).resolve().parents[2]


class _TaskLoader(yaml.SafeLoader):
    """Reads lmms-eval task YAMLs, ignoring ``!function`` hooks."""


_TaskLoader.add_constructor("!function", lambda loader, node: None)


def _template(kind: str = "color") -> dict[str, Any]:
    return yaml.load((TASKS_DIR / PIN_TEMPLATES[kind]).read_text(encoding="utf-8"), Loader=_TaskLoader)


class _Config:
    def __init__(self, metadata: Any) -> None:
        self.task, self.metadata = "t", metadata


@pytest.mark.parametrize("kind", ["color", "attribute"])
def test_each_template_names_its_pin_and_holds_no_copy_of_it(kind: str) -> None:
    template = _template(kind)
    spec = canonical.CANONICAL_BY_KIND[kind]
    # lmms-eval needs a dataset_path; it must be the pinned repository (the only value left in YAML).
    assert template["dataset_path"] == spec.repo_id, "dataset_builder/pins.json and the template differ"
    assert "dataset_kwargs" not in template  # the revision is read from the pin
    assert template["metadata"][canonical.METADATA_KEY] == {"dataset": kind}
    assert pinned_fingerprint(_Config(template["metadata"])) == spec.fingerprint
    assert canonical.spec_for_fingerprint(spec.fingerprint) is spec


def test_variants_inherit_the_pin_of_a_template() -> None:
    for path in TASKS_DIR.glob("*.yaml"):
        variant = yaml.load(path.read_text(encoding="utf-8"), Loader=_TaskLoader)
        assert not {"dataset_path", "dataset_kwargs"} & set(variant), path.name
        if "task" in variant and not isinstance(variant["task"], list):
            assert variant.get("include") in PIN_TEMPLATES.values(), path.name
            assert "metadata" not in variant, path.name


def test_a_task_naming_no_pin_or_an_unknown_one_is_refused() -> None:
    assert pinned_fingerprint(_Config({"version": 1})) is None  # not one of this project's tasks
    with pytest.raises(canonical.PinError, match=r"unknown dataset 'colour'.*\['attribute', 'color'\]"):
        pinned_fingerprint(_Config({canonical.METADATA_KEY: {"dataset": "colour"}}))
    with pytest.raises(canonical.PinError, match="must name its dataset"):
        pinned_fingerprint(_Config({canonical.METADATA_KEY: {"fingerprint": "ab" * 32}}))


def test_the_attribute_pin_is_a_build_this_builder_can_make() -> None:
    spec = canonical.CANONICAL_ATTRIBUTE
    assert _template("attribute")["metadata"]["dataset"] == "modality-conflict-attribute"
    assert spec.kind == "attribute" and canonical.builder_matches_pin(spec)
    assert spec.groups == ATTRIBUTE_PRESETS[CANONICAL_ATTRIBUTE.preset] == ATTRIBUTE_PRESETS["medium"]
    assert spec.cache_name == f"attribute-conflict-{spec.fingerprint[:16]}"
    assert spec.fingerprint == "5d8370c72875ae0e3b127dfc1c4a7d74feb9af66f157a3245e3d3b4fe1822886"


def _pins_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "pins.json"
    copy.write_bytes(canonical.PINS_PATH.read_bytes())
    return copy


def test_write_pin_rewrites_only_the_pin_of_the_named_kind(tmp_path: Path) -> None:
    pins = _pins_copy(tmp_path)
    assert canonical.write_pin(fingerprint="cd" * 32, kind="attribute", pins=pins) == [pins]
    specs = canonical.read_pins(pins)
    assert specs["attribute"].fingerprint == "cd" * 32
    assert specs["color"] == canonical.CANONICAL  # the colour pin is untouched
    sha = "0123456789abcdef0123456789abcdef01234567"
    canonical.write_pin(repo_id="someone/colors", revision=sha, software={"pyarrow": "1"}, pins=pins)
    color = canonical.read_pins(pins)["color"]
    assert (color.repo_id, color.revision, color.software, color.published) == (
        "someone/colors",
        sha,
        (("pyarrow", "1"),),
        True,
    )
    assert color.fingerprint == CANONICAL.fingerprint
    assert not list(tmp_path.glob(".*"))  # no temporary file is left beside it
    before = pins.read_bytes()
    with pytest.raises(ValueError, match="not a 40-character commit sha"):
        canonical.write_pin(revision="main", pins=pins)
    with pytest.raises(ValueError, match="USER/NAME"):
        canonical.write_pin(repo_id="no-slash", pins=pins)
    with pytest.raises(ValueError, match="not a 64-character sha256"):
        canonical.write_pin(fingerprint="abc", pins=pins)
    with pytest.raises(ValueError, match="unknown dataset kind 'shape'"):
        canonical.write_pin(fingerprint="ab" * 32, kind="shape", pins=pins)
    assert pins.read_bytes() == before  # a refused pin writes nothing


def test_the_package_pins_file_is_written_as_write_pin_writes_it() -> None:
    # A re-pin changes only the pinned values, not the layout of the file.
    text = canonical.PINS_PATH.read_text(encoding="utf-8")
    assert text == json.dumps(json.loads(text), indent=2) + "\n"


def _bad(pins: Path, kind: str, **changes: Any) -> Path:
    data = json.loads(pins.read_text())
    data[kind].update(changes)
    pins.write_text(json.dumps(data))
    return pins


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"fingerprint": "ABC"}, "pin 'color': fingerprint 'ABC' is not a 64-character sha256"),
        ({"revision": "main"}, "revision 'main' is not a 40-character commit sha or \"unpublished\""),
        ({"repo_id": "nope"}, "repo_id 'nope' is not of the form USER/NAME"),
        ({"preset": "huge"}, "preset 'huge' is not one of"),
        ({"seed": -1}, r"seed -1 is not an integer in \[0, 2\*\*32\)"),
        ({"seed": True}, "seed True is not an integer"),
        ({"builder_version": 1}, "builder_version 1 is not a version"),
        ({"software": {"pyarrow": 26}}, "software .* is not an object of library names to version strings"),
        ({"name": "Bad Name"}, "name 'Bad Name' is not a lower-case name"),
        ({"extra": 1}, r"has unknown fields \['extra'\]"),
    ],
)
def test_every_field_of_a_pin_is_checked(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    pins = _bad(_pins_copy(tmp_path), "color", **changes)
    with pytest.raises(canonical.PinError, match=message) as error:
        canonical.read_pins(pins)
    assert "\n" not in str(error.value) and str(pins) in str(error.value)


def test_a_missing_or_malformed_pins_file_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(canonical.PinError, match="the dataset pins file is missing"):
        canonical.read_pins(tmp_path / "absent.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(canonical.PinError, match="unreadable dataset pins file"):
        canonical.read_pins(tmp_path / "broken.json")
    (tmp_path / "one.json").write_text(json.dumps({"color": {}}))
    with pytest.raises(
        canonical.PinError, match=r"one pin for each of \['attribute', 'color'\], found \['color'\]"
    ):
        canonical.read_pins(tmp_path / "one.json")
    data = json.loads(canonical.PINS_PATH.read_text())
    data["attribute"]["fingerprint"] = data["color"]["fingerprint"]
    (tmp_path / "same.json").write_text(json.dumps(data))
    with pytest.raises(canonical.PinError, match="two dataset kinds pin the same fingerprint"):
        canonical.read_pins(tmp_path / "same.json")
    data = json.loads(canonical.PINS_PATH.read_text())
    del data["color"]["seed"]
    (tmp_path / "lacks.json").write_text(json.dumps(data))
    with pytest.raises(canonical.PinError, match=r"pin 'color' lacks \['seed'\]"):
        canonical.read_pins(tmp_path / "lacks.json")


def test_the_pin_is_a_build_this_builder_can_make() -> None:
    spec = canonical.CANONICAL
    assert (spec.preset, spec.groups, spec.seed) == (
        CANONICAL.preset,
        PRESETS[CANONICAL.preset],
        CANONICAL.seed,
    )
    assert spec.builder_version == BUILDER_VERSION, "the builder changed: rebuild and re-pin the dataset"
    assert canonical.builder_matches_pin()
    assert canonical.spec_for_fingerprint(CANONICAL.fingerprint) is spec
    assert spec.published is (len(spec.revision) == 40)
    assert spec.cache_name == f"color-conflict-{CANONICAL.fingerprint[:16]}"
    assert CANONICAL.fingerprint == "bfcfece7300082857bde21b988e3df415d35976444dd7110bd089cfb622a1c2b"


def test_the_pinned_library_versions_are_the_tested_ones() -> None:
    # The parquet bytes depend on pyarrow; the suite pins the versions the fingerprint was made with.
    constraints = dict(
        line.split("==", 1)
        for line in (REPO_ROOT / ".ci" / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    for name, version in dict(CANONICAL.software).items():
        assert constraints[name] == version, name
