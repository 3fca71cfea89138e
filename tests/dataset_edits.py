"""Editing a built dataset folder in a test: re-hash an edited file in the manifest, so that only the
corruption under test is reported."""

from __future__ import annotations

import json
from pathlib import Path

from modality_conflict.dataset_builder.folder import sha256_file


def rehash(folder: Path, name: str) -> None:
    """Update the manifest entry of ``name`` (a path relative to ``folder``) to the file as it is now."""
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["files"][name] = {"sha256": sha256_file(folder / name), "size": (folder / name).stat().st_size}
    path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
