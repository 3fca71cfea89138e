"""The canonical dataset: one definition, copied into the task YAMLs, reproducible by this builder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from modality_conflict.dataset_builder import canonical
from modality_conflict.dataset_builder.attribute.constants import PRESETS as ATTRIBUTE_PRESETS
from modality_conflict.dataset_builder.constants import BUILDER_VERSION, PRESETS

REPO_ROOT = Path(__file__).resolve().parents[2]


class _TaskLoader(yaml.SafeLoader):
    """Reads lmms-eval task YAMLs, ignoring ``!function`` hooks."""


_TaskLoader.add_constructor("!function", lambda loader, node: None)


def _template(kind: str = "color") -> dict[str, Any]:
    return yaml.load(canonical.task_template_path(kind).read_text(encoding="utf-8"), Loader=_TaskLoader)


def test_the_task_yamls_pin_what_the_module_defines() -> None:
    template = _template()
    assert template["dataset_path"] == canonical.HUB_REPO_ID == canonical.CANONICAL.repo_id
    assert template["dataset_kwargs"] == {"revision": canonical.HUB_REVISION}
    assert template["metadata"][canonical.METADATA_KEY] == {"fingerprint": canonical.FINGERPRINT}
    # Variants inherit the pin; none of them may point elsewhere.
    for path in canonical.task_template_path().parent.glob("*.yaml"):
        variant = yaml.load(path.read_text(encoding="utf-8"), Loader=_TaskLoader)
        assert not {"dataset_path", "dataset_kwargs"} & set(variant), path.name
        if "task" in variant and not isinstance(variant["task"], list):
            assert variant.get("include") in canonical.PIN_TEMPLATES.values(), path.name
            assert "metadata" not in variant, path.name


def test_the_attribute_template_pins_the_attribute_set() -> None:
    template = _template("attribute")
    spec = canonical.CANONICAL_ATTRIBUTE
    assert template["dataset_path"] == canonical.ATTRIBUTE_HUB_REPO_ID == spec.repo_id
    assert template["dataset_kwargs"] == {"revision": canonical.ATTRIBUTE_HUB_REVISION}
    assert template["metadata"][canonical.METADATA_KEY] == {"fingerprint": canonical.ATTRIBUTE_FINGERPRINT}
    assert template["metadata"]["dataset"] == "modality-conflict-attribute"
    assert spec.kind == "attribute" and canonical.builder_matches_pin(spec)
    assert canonical.spec_for_fingerprint(spec.fingerprint) is spec
    assert spec.groups == ATTRIBUTE_PRESETS[canonical.ATTRIBUTE_PRESET]
    assert spec.cache_name == f"attribute-conflict-{spec.fingerprint[:16]}"


def test_write_pin_rewrites_only_the_pin_of_the_named_kind(tmp_path: Path) -> None:
    module = tmp_path / "canonical.py"
    module.write_text(Path(canonical.__file__).read_text())
    template = tmp_path / "template"
    template.write_text(canonical.task_template_path("attribute").read_text())
    canonical.write_pin(fingerprint="cd" * 32, kind="attribute", module=module, template=template)
    text = module.read_text()
    assert f'ATTRIBUTE_FINGERPRINT = "{"cd" * 32}"' in text
    assert f'\nFINGERPRINT = "{canonical.FINGERPRINT}"' in text  # the colour pin is untouched
    assert f"    fingerprint: {'cd' * 32}" in template.read_text().splitlines()


def test_the_pin_is_a_build_this_builder_can_make() -> None:
    spec = canonical.CANONICAL
    assert (spec.preset, spec.groups, spec.seed) == (
        canonical.PRESET,
        PRESETS[canonical.PRESET],
        canonical.SEED,
    )
    assert spec.builder_version == BUILDER_VERSION, "the builder changed: rebuild and re-pin the dataset"
    assert canonical.builder_matches_pin()
    assert canonical.spec_for_fingerprint(canonical.FINGERPRINT) is spec
    assert spec.published is (len(spec.revision) == 40)
    assert spec.cache_name == f"color-conflict-{canonical.FINGERPRINT[:16]}"


def test_the_pinned_library_versions_are_the_tested_ones() -> None:
    # The parquet bytes depend on pyarrow; the suite pins the versions the fingerprint was made with.
    constraints = dict(
        line.split("==", 1)
        for line in (REPO_ROOT / ".ci" / "constraints.txt").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    for name, version in canonical.PINNED_SOFTWARE.items():
        assert constraints[name] == version, name
