"""Copies of the task folder that read a local dataset folder, and the templates naming each dataset pin."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import yaml

from modality_conflict.dataset_builder.folder import dataset_folders
from modality_conflict.dataset_builder.specs import DATASETS

TASKS_DIR = Path(__file__).resolve().parent / "modality_conflict"
TEMPLATE_NAME = "_default_template_yaml"
#: The task template of each dataset kind; its ``metadata.modality_conflict_dataset.dataset`` names the pin.
PIN_TEMPLATES = {"color": TEMPLATE_NAME, "attribute": "_attribute_template_yaml"}

#: Each template of the task folder and the dataset (manifest name) its tasks read.
TEMPLATE_DATASETS: dict[str, str] = {
    template: DATASETS[kind].name for kind, template in PIN_TEMPLATES.items()
}


def _task_files() -> list[Path]:
    return sorted(
        p
        for p in TASKS_DIR.iterdir()
        if p.is_file() and (p.suffix in {".yaml", ".py", ".md"} or p.name in TEMPLATE_DATASETS)
    )


def hub_template_name(template: str) -> str:
    """What a local copy calls the verbatim ``template`` whose generated replacement reads a local folder."""
    return f"_hub{template}"


def local_template_text(template: str, folder: Path) -> str:
    """A template that includes the verbatim one and reads ``folder`` (lmms-eval's ``include:`` lets the
    including file override its keys), so no copied YAML is edited."""
    generated = yaml.safe_dump({"include": hub_template_name(template), "dataset_path": str(folder)})
    return f"# Written by `modality-conflict tasks`: {template} reading a local dataset folder.\n{generated}"


def _stage_task_dir(data_dir: Path, parent: Path, name: str) -> Path:
    """Write the local task folder into a fresh temporary sibling: each template whose dataset ``data_dir``
    holds reads that folder, the others keep their Hub source."""
    folders = dataset_folders(data_dir)
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=parent))
    try:
        for source in _task_files():
            shutil.copy2(source, staging / source.name)
        for template, dataset in TEMPLATE_DATASETS.items():
            if dataset in folders:
                os.replace(staging / template, staging / hub_template_name(template))
                text = local_template_text(template, folders[dataset].resolve())
                (staging / template).write_text(text, encoding="utf-8")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


def write_local_task_dir(data_dir: Path, out_dir: Path) -> Path:
    """Write the task folder to ``out_dir`` reading the dataset folders of ``data_dir``, replacing an earlier
    copy (``FileExistsError`` when ``out_dir`` holds other files)."""
    data_dir, out_dir = Path(data_dir).resolve(), Path(out_dir)
    if out_dir.exists():
        known = {source.name for source in _task_files()} | set(map(hub_template_name, TEMPLATE_DATASETS))
        foreign = sorted(p.name for p in out_dir.iterdir()) if out_dir.is_dir() else [out_dir.name]
        foreign = [name for name in foreign if name not in known and name != "__pycache__"]
        if foreign:
            raise FileExistsError(
                f"{out_dir} holds files that are not part of the task folder ({', '.join(foreign[:5])}); "
                "choose another --out"
            )
    staging = _stage_task_dir(data_dir, out_dir.parent, out_dir.name)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(staging, out_dir)
    return out_dir
