"""Copies of the task folder that read a local dataset folder instead of the Hub."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

TASKS_DIR = Path(__file__).resolve().parent / "modality_conflict"
TEMPLATE_NAME = "_default_template_yaml"

#: Each template of the task folder and the dataset (manifest name) its tasks read.
TEMPLATE_DATASETS: dict[str, str] = {
    TEMPLATE_NAME: "modality-conflict-colour",
    "_attribute_template_yaml": "modality-conflict-attribute",
}


def _default_cache_root() -> Path:
    root = os.environ.get("MODALITY_CONFLICT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "modality_conflict"
    )
    return Path(root)


def _task_files() -> list[Path]:
    return sorted(
        p
        for p in TASKS_DIR.iterdir()
        if p.is_file() and (p.suffix in {".yaml", ".py", ".md"} or p.name in TEMPLATE_DATASETS)
    )


def _manifest_dataset(folder: Path) -> str | None:
    from modality_conflict.dataset_builder.folder import read_manifest
    from modality_conflict.dataset_builder.specs import kind_of_manifest

    spec = kind_of_manifest(read_manifest(folder)) if (folder / "data").is_dir() else None
    return None if spec is None else spec.name


def dataset_folders(data_dir: Path) -> dict[str, Path]:
    """The dataset folders under ``data_dir``, by dataset (manifest) name.

    ``data_dir`` is either one folder made by ``modality-conflict build`` or a folder holding several of
    them (one level down); each is identified by its manifest.

    Raises
    ------
    FileNotFoundError
        When ``data_dir`` holds no dataset folder, or holds two of the same dataset (naming them).
    """
    data_dir = Path(data_dir)
    own = _manifest_dataset(data_dir)
    if own is not None:
        return {own: data_dir}
    found: dict[str, Path] = {}
    children = sorted(p for p in data_dir.iterdir() if p.is_dir()) if data_dir.is_dir() else []
    for child in children:
        name = _manifest_dataset(child)
        if name is None:
            continue
        if name in found:
            raise FileNotFoundError(
                f"{data_dir} holds two {name} folders ({found[name].name}, {child.name}); keep one"
            )
        found[name] = child
    if not found:
        raise FileNotFoundError(
            f"{data_dir} is no dataset folder and holds none (no data/*.parquet with a manifest.json): "
            f"build one with `modality-conflict build --out {data_dir}`"
        )
    return found


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

    An existing ``out_dir`` is replaced.

    Raises
    ------
    FileNotFoundError
        When ``data_dir`` is no folder made by ``modality-conflict build`` and holds none.
    """
    data_dir, out_dir = Path(data_dir).resolve(), Path(out_dir)
    staging = _stage_task_dir(data_dir, out_dir.parent, out_dir.name)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(staging, out_dir)
    return out_dir


def local_task_dir(data_dir: Path) -> Path:
    """A cached task folder for ``data_dir``, safe when several ranks of one run ask at once.

    The folder name hashes the data path and the task files, so a folder that exists is complete and
    current: it is reused, never rewritten in place. A rank that loses the race to create it drops its copy.
    """
    data_dir = Path(data_dir).resolve()
    digest = hashlib.sha256(str(data_dir).encode())
    for source in _task_files():
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    out_dir = _default_cache_root() / "tasks" / digest.hexdigest()[:20] / "modality_conflict"
    if out_dir.is_dir():
        return out_dir
    staging = _stage_task_dir(data_dir, out_dir.parent, out_dir.name)
    try:
        os.rename(staging, out_dir)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not out_dir.is_dir():
            raise
    return out_dir


_SHA = re.compile(r"[0-9a-f]{40}")
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def pin_dataset(repo_id: str, revision: str, *, template: Path = TASKS_DIR / TEMPLATE_NAME) -> Path:
    """Point the task template at ``repo_id`` pinned to the commit ``revision`` (what ``push`` printed).

    Raises
    ------
    ValueError
        When ``revision`` is not a full 40-character commit sha (a branch name is not a pin) or
        ``repo_id`` is not ``USER/NAME``.
    """
    if not _SHA.fullmatch(revision):
        raise ValueError(f"revision {revision!r} is not a 40-character commit sha")
    if not _REPO_ID.fullmatch(repo_id):
        raise ValueError(f"repo id {repo_id!r} is not of the form USER/NAME")
    lines = Path(template).read_text().splitlines()
    path_lines = [i for i, line in enumerate(lines) if line.startswith("dataset_path:")]
    revision_lines = [i for i, line in enumerate(lines) if line.startswith("  revision:")]
    if len(path_lines) != 1 or len(revision_lines) != 1:
        raise ValueError(f"{template} has no single dataset_path / dataset_kwargs.revision to pin")
    lines[path_lines[0]] = f"dataset_path: {repo_id}"
    lines[revision_lines[0]] = f"  revision: {revision}"
    staging = Path(template).with_name(f".{Path(template).name}.tmp")
    staging.write_text("\n".join(lines) + "\n")
    os.replace(staging, template)
    return Path(template)
