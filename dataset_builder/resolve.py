"""Where a task's data comes from: a folder the user names, the cache, the pinned Hub commit, or a build.

Resolution order for a task that pins a dataset by fingerprint:

1. ``MODALITY_CONFLICT_DATA=DIR`` (``modality-conflict eval --data DIR``), else a local ``dataset_path``
   in the task YAML (``modality-conflict tasks --data DIR``): used as it is, after its files are checked
   against its manifest; a fingerprint other than the pin is allowed and recorded.
2. The cache folder (:func:`cache_root`), when it holds a copy whose files and fingerprint verify.
3. The pinned Hub commit, when one is pinned and the Hub answers within a short timeout
   (``HF_HUB_OFFLINE=1`` skips it); it is downloaded into the cache.
4. A build of the pinned dataset into the cache (once per machine), checked against the pin.

Steps 3 and 4 run under a file lock, into a temporary sibling that is renamed into place when complete,
so concurrent ranks or runs build once and never see a half-written folder. The cache is checked before
the Hub because a copy whose fingerprint verifies is byte-identical to the published one: asking the Hub
again would only cost a round trip per run and per rank. Every failure is a :class:`DataResolutionError`
whose one-line message says what to do.

This module chooses the source; :mod:`.data_source` holds what a resolution gives and the folder check,
:mod:`.data_cache` the cache (reuse, lock, build) and :mod:`.hub_fetch` the Hub download.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from modality_conflict.dataset_builder.canonical import CANONICAL, spec_for_fingerprint
from modality_conflict.dataset_builder.data_cache import CACHE_ENV, WORKERS_ENV, cache_root, ensure_dataset
from modality_conflict.dataset_builder.data_source import (
    DATA_ENV,
    WHAT_TO_DO,
    Log,
    ResolvedData,
    log_line,
    verify_folder,
)
from modality_conflict.dataset_builder.errors import DataResolutionError

__all__ = [
    "CACHE_ENV",
    "DATA_ENV",
    "WORKERS_ENV",
    "DataResolutionError",
    "cache_root",
    "ensure_dataset",
    "resolve_data",
    "verify_folder",
]


def _explicit(path: Path, source: str, pinned: str | None, log: Log) -> ResolvedData:
    started = time.perf_counter()
    path = Path(path).expanduser().resolve()
    fingerprint = verify_folder(path)
    resolved = ResolvedData(path, source, fingerprint, pinned, seconds=time.perf_counter() - started)
    if pinned is not None and not resolved.canonical:
        log(
            f"note: {path} is not the pinned dataset (fingerprint {fingerprint[:12]}, pinned "
            f"{pinned[:12]}); the results record which one was used"
        )
    return resolved


def resolve_data(
    pinned: str | None = CANONICAL.fingerprint,
    *,
    data_dir: str | os.PathLike[str] | None = None,
    task_path: str | os.PathLike[str] | None = None,
    root: str | os.PathLike[str] | None = None,
    log: Log = log_line,
) -> ResolvedData:
    """The data folder for a task that pins the dataset ``pinned`` (see the module docstring).

    ``pinned``: The fingerprint the task pins (default: the canonical dataset).
    ``data_dir``: An explicit folder; default ``$MODALITY_CONFLICT_DATA``.
    ``task_path``: A local folder the task YAML names as its ``dataset_path``.
    ``root``: The cache folder; default :func:`cache_root`.
    ``log``: Where progress lines go (default stderr).
    Raises ``DataResolutionError``: one line saying what went wrong and what to do.
    """
    data_dir = data_dir if data_dir is not None else (os.environ.get(DATA_ENV) or None)
    if data_dir is not None:
        resolved = _explicit(Path(data_dir), "env", pinned, log)
    elif task_path is not None:
        resolved = _explicit(Path(task_path), "path", pinned, log)
    else:
        spec = spec_for_fingerprint(pinned) if pinned is not None else None
        if spec is None:
            raise DataResolutionError(
                f"the task pins a dataset with fingerprint {pinned}, which this version of "
                f"modality-conflict cannot build: install the release the task comes from, {WHAT_TO_DO}"
            )
        resolved = ensure_dataset(spec, root=root, log=log)
    log(f"data: {resolved.describe()}; ready in {resolved.seconds:.1f} s")
    return resolved
