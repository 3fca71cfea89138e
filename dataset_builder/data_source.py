"""What resolving a task's data gives (:class:`ResolvedData`), how a folder is checked before it is used
(:func:`verify_folder`), and the progress lines every step writes."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modality_conflict.dataset_builder.errors import DataResolutionError
from modality_conflict.dataset_builder.folder import MANIFEST_NAME, DatasetFolder, DatasetFolderError

DATA_ENV = "MODALITY_CONFLICT_DATA"
CACHE_ENV = "MODALITY_CONFLICT_CACHE"
LOG_PREFIX = "[modality_conflict]"
WHAT_TO_DO = f"or set {DATA_ENV}=DIR to a folder made by `modality-conflict build`"

Log = Callable[[str], None]


def log_line(message: str) -> None:
    """Print one progress line on stderr (with the rank under a multi-process launch)."""
    rank = os.environ.get("RANK") if os.environ.get("WORLD_SIZE", "1") not in ("", "1") else None
    prefix = LOG_PREFIX if rank is None else f"{LOG_PREFIX} rank {rank}:"
    print(f"{prefix} {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class ResolvedData:
    """The data folder a task will read, and how it was found.

    ``path``: A folder made by ``modality-conflict build`` (or downloaded from the Hub), verified.
    ``source``: ``"env"`` (``MODALITY_CONFLICT_DATA``), ``"path"`` (a local ``dataset_path`` in the task
        YAML), ``"cache"``, ``"hub"`` or ``"built"``.
    ``revision``: The Hub commit the data came from (source ``"hub"``, or a cache filled from the Hub
        earlier).
    ``seconds``: Time spent resolving (verification, download or build).
    """

    path: Path
    source: str
    fingerprint: str
    pinned_fingerprint: str | None = None
    revision: str | None = None
    seconds: float = 0.0

    @property
    def canonical(self) -> bool:
        """Whether the data is exactly the pinned dataset."""
        return self.pinned_fingerprint is not None and self.fingerprint == self.pinned_fingerprint

    def record(self) -> dict[str, Any]:
        """What the results record about the data (JSON-serialisable)."""
        return {
            "source": self.source,
            "path": str(self.path),
            "revision": self.revision,
            "fingerprint": self.fingerprint,
            "canonical": self.canonical,
        }

    def describe(self) -> str:
        """One line, e.g. ``built (canonical, fingerprint bfcfece73000) in /root/.cache/...``."""
        kind = "canonical" if self.canonical else "not the pinned dataset"
        origin = f", Hub commit {self.revision[:12]}" if self.revision else ""
        return f"{self.source} ({kind}, fingerprint {self.fingerprint[:12]}{origin}) in {self.path}"


def verify_folder(path: str | os.PathLike[str]) -> str:
    """Check a dataset folder against its manifest and return its fingerprint.

    Every file the manifest lists must be inside the folder and match its recorded size (checked first,
    without reading) and sha256; the folder may hold no parquet shard the manifest does not list (the
    loader would read it).

    Raises ``DataResolutionError``, naming the folder and the first problem.
    """
    folder = DatasetFolder(Path(path))
    if not folder.is_dir:
        raise DataResolutionError(
            f"{path} is not a folder: build one with `modality-conflict build --out {path}`"
        )
    try:
        manifest = folder.manifest
    except DatasetFolderError as error:
        raise DataResolutionError(f"{path}: {error}") from None
    if manifest is None:
        raise DataResolutionError(
            f"{path} has no readable {MANIFEST_NAME}: it was not made by `modality-conflict build` "
            f"(build one with `modality-conflict build --out {path}`)"
        )
    try:
        problems = folder.hash_mismatches()
        listed = folder.manifest_data_files()
        fingerprint = folder.fingerprint
    except (DatasetFolderError, ValueError) as error:
        raise DataResolutionError(f"{path}: {error}") from None
    if problems:
        more = f" and {len(problems) - 1} more" if len(problems) > 1 else ""
        raise DataResolutionError(
            f"{path} does not match its {MANIFEST_NAME} ({problems[0]}{more}): "
            f"rebuild it with `modality-conflict build --out {path} --overwrite`"
        )
    unlisted = sorted(set(folder.data_files()) - set(listed))
    if unlisted:
        raise DataResolutionError(
            f"{path} holds data files its {MANIFEST_NAME} does not list ({', '.join(unlisted[:3])}): "
            "remove them, or rebuild the folder"
        )
    assert fingerprint is not None  # a manifest exists
    return fingerprint
