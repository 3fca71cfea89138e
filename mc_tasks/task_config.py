"""Copies of the task folder that read a local dataset folder, and the dataset pin of the task YAMLs."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

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


def _point_template_at(template: Path, data_dir: Path) -> None:
    rewritten, skipping = [], False
    for line in template.read_text().splitlines():
        if line.startswith("dataset_path:"):
            rewritten.append(f"dataset_path: {json.dumps(str(data_dir))}")
            continue
        if line.startswith("dataset_kwargs:"):
            rewritten.append("dataset_kwargs: {}")
            skipping = True
            continue
        if skipping and line.startswith("  "):
            continue
        skipping = False
        rewritten.append(line)
    template.write_text("\n".join(rewritten) + "\n")


def _stage_task_dir(data_dir: Path, parent: Path, name: str) -> Path:
    """Write the rewritten task folder into a fresh temporary sibling and return it.

    Each template whose dataset ``data_dir`` holds reads that folder; the others keep their Hub source.
    """
    folders = dataset_folders(data_dir)
    parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}.", dir=parent))
    try:
        for source in _task_files():
            shutil.copy2(source, staging / source.name)
        for template_name, dataset in TEMPLATE_DATASETS.items():
            if dataset in folders:
                _point_template_at(staging / template_name, folders[dataset].resolve())
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


def write_local_task_dir(data_dir: Path, out_dir: Path) -> Path:
    """Write the task folder to ``out_dir`` with ``dataset_path`` set to the local ``data_dir``.

    An existing ``out_dir`` is replaced when it holds only task files (an earlier copy).

    Raises
    ------
    FileNotFoundError
        When ``data_dir`` is no folder made by ``modality-conflict build`` and holds none.
    FileExistsError
        When ``out_dir`` holds other files.
    """
    data_dir, out_dir = Path(data_dir).resolve(), Path(out_dir)
    if out_dir.exists():
        known = {source.name for source in _task_files()}
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


def pin_dataset(
    repo_id: str,
    revision: str,
    *,
    fingerprint: str | None = None,
    kind: str = "color",
    pins: Path | None = None,
) -> list[Path]:
    """Pin the tasks of dataset ``kind`` to ``repo_id`` at the commit ``revision`` (what ``push`` printed).

    The pin lives in ``dataset_builder/pins.json`` only; the tasks read it from there.

    Parameters
    ----------
    repo_id, revision
        The Hub repository and a full 40-character commit sha (a branch name is not a pin).
    fingerprint
        The published build's content fingerprint, when it changes too.
    kind
        Whose pin changes (``color`` or ``attribute``).
    pins
        The pins file to rewrite (default: the package's).

    Raises
    ------
    ValueError
        On a malformed value or pins file.
    """
    from modality_conflict.dataset_builder.canonical import write_pin

    return write_pin(repo_id=repo_id, revision=revision, fingerprint=fingerprint, kind=kind, pins=pins)
