"""A local data folder for the task folder: one dataset folder, or a folder holding one per dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
from lmms_eval.utils import load_yaml_config

from modality_conflict.mc_tasks.task_config import (
    TASKS_DIR,
    dataset_folders,
    hub_template_name,
    write_local_task_dir,
)

TASK_OF_TEMPLATE = {
    "_default_template_yaml": "modality_conflict_color.yaml",
    "_attribute_template_yaml": "modality_conflict_attribute.yaml",
}


def _path(tasks: Path, template: str) -> str:
    """The ``dataset_path`` lmms-eval's own loader gives a task of ``template`` in the copy."""
    return load_yaml_config(str(tasks / TASK_OF_TEMPLATE[template]), mode="simple")["dataset_path"]


def _unchanged(tasks: Path, name: str) -> bool:
    return (tasks / name).read_bytes() == (TASKS_DIR / name).read_bytes()


def test_a_folder_of_datasets_points_each_template_at_its_own(datasets_dir: Path, tmp_path: Path) -> None:
    folders = dataset_folders(datasets_dir)
    assert {name: path.name for name, path in folders.items()} == {
        "modality-conflict-colour": "color",
        "modality-conflict-attribute": "attribute",
    }
    tasks = write_local_task_dir(datasets_dir, tmp_path / "tasks" / "modality_conflict")
    assert _path(tasks, "_default_template_yaml") == str((datasets_dir / "color").resolve())
    assert _path(tasks, "_attribute_template_yaml") == str((datasets_dir / "attribute").resolve())
    # No copied YAML is edited: each template stands verbatim under its Hub name, included by a new one.
    for template in TASK_OF_TEMPLATE:
        assert (tasks / hub_template_name(template)).read_bytes() == (TASKS_DIR / template).read_bytes()
    assert all(_unchanged(tasks, path.name) for path in TASKS_DIR.glob("*.yaml"))


def test_one_dataset_folder_serves_its_own_tasks_only(attribute_dataset_dir: Path, tmp_path: Path) -> None:
    tasks = write_local_task_dir(attribute_dataset_dir, tmp_path / "tasks" / "modality_conflict")
    assert _path(tasks, "_attribute_template_yaml") == str(attribute_dataset_dir.resolve())
    assert _path(tasks, "_default_template_yaml") == "modality-conflict/color-conflict"
    assert _unchanged(tasks, "_default_template_yaml")
    assert not (tasks / hub_template_name("_default_template_yaml")).exists()


def test_a_folder_without_datasets_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    with pytest.raises(FileNotFoundError, match=f"{tmp_path} is no dataset folder and holds none"):
        dataset_folders(tmp_path)
