"""Copies of the task folder that read a local dataset folder instead of the Hub."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import yaml

TASKS_DIR = Path(__file__).resolve().parent / "modality_conflict"
TEMPLATE_NAME = "_default_template_yaml"


def _default_cache_root() -> Path:
    root = os.environ.get("MODALITY_CONFLICT_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "modality_conflict"
    )
    return Path(root)


def write_local_task_dir(data_dir: Path, out_dir: Path) -> Path:
    """Write the task folder to ``out_dir`` with ``dataset_path`` set to the local ``data_dir``.

    Raises
    ------
    FileNotFoundError
        When ``data_dir`` has no ``data/`` folder of parquet shards (not made by ``modality-conflict build``).
    """
    data_dir = Path(data_dir).resolve()
    if not any((data_dir / "data").glob("*.parquet")):
        raise FileNotFoundError(
            f"{data_dir} holds no data/*.parquet: build it with `modality-conflict build --out {data_dir}`"
        )
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        for source in TASKS_DIR.iterdir():
            if source.is_file() and (
                source.suffix in {".yaml", ".py", ".md"} or source.name == TEMPLATE_NAME
            ):
                shutil.copy2(source, staging / source.name)
        template = staging / TEMPLATE_NAME
        lines = template.read_text().splitlines()
        rewritten, skipping = [], False
        for line in lines:
            if line.startswith("dataset_path:"):
                rewritten.append(f"dataset_path: {yaml.safe_dump(str(data_dir)).splitlines()[0]}")
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
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(staging, out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out_dir


def local_task_dir(data_dir: Path) -> Path:
    """A cached task folder for ``data_dir`` (one per data folder, rewritten on every call)."""
    data_dir = Path(data_dir).resolve()
    tag = hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]
    return write_local_task_dir(data_dir, _default_cache_root() / "tasks" / tag / "modality_conflict")
