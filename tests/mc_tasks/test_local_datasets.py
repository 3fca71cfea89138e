"""A local data folder for the task folder: one dataset folder, or a folder holding one per dataset."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modality_conflict.mc_tasks.task_config import dataset_folders, write_local_task_dir


def _path(tasks: Path, template: str) -> str:
    lines = [line for line in (tasks / template).read_text().splitlines() if line.startswith("dataset_path:")]
    return yaml.safe_load(lines[0])["dataset_path"]


def test_a_folder_of_datasets_points_each_template_at_its_own(datasets_dir: Path, tmp_path: Path) -> None:
    folders = dataset_folders(datasets_dir)
    assert {name: path.name for name, path in folders.items()} == {
        "modality-conflict-colour": "color",
        "modality-conflict-attribute": "attribute",
    }
    tasks = write_local_task_dir(datasets_dir, tmp_path / "tasks" / "modality_conflict")
    assert _path(tasks, "_default_template_yaml") == str((datasets_dir / "color").resolve())
    assert _path(tasks, "_attribute_template_yaml") == str((datasets_dir / "attribute").resolve())


def test_one_dataset_folder_serves_its_own_tasks_only(attribute_dataset_dir: Path, tmp_path: Path) -> None:
    tasks = write_local_task_dir(attribute_dataset_dir, tmp_path / "tasks" / "modality_conflict")
    assert _path(tasks, "_attribute_template_yaml") == str(attribute_dataset_dir.resolve())
    assert _path(tasks, "_default_template_yaml") == "modality-conflict/color-conflict"


def test_a_folder_without_datasets_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    with pytest.raises(FileNotFoundError, match=f"{tmp_path} is no dataset folder and holds none"):
        dataset_folders(tmp_path)
