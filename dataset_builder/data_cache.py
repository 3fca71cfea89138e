"""The dataset cache: a verified copy of a pinned dataset, reused, or filled once (under a file lock, into a
temporary sibling renamed into place) from the pinned Hub commit or a local build."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from modality_conflict.dataset_builder.atomic import os_error_text, temporary_sibling
from modality_conflict.dataset_builder.canonical import (
    CANONICAL,
    DatasetSpec,
    builder_matches_pin,
    current_builder_version,
)
from modality_conflict.dataset_builder.data_source import (
    CACHE_ENV,
    WHAT_TO_DO,
    Log,
    ResolvedData,
    log_line,
    verify_folder,
)
from modality_conflict.dataset_builder.errors import BuildError, DataResolutionError
from modality_conflict.dataset_builder.folder import DatasetFolder
from modality_conflict.dataset_builder.hub_fetch import ORIGIN_SUFFIX, fetch_from_hub
from modality_conflict.dataset_builder.regular_files import read_regular_file
from modality_conflict.dataset_builder.writer import remove_stale_partials

WORKERS_ENV = "MODALITY_CONFLICT_BUILD_WORKERS"
#: Seconds to wait for another process that is preparing the same cache folder.
LOCK_TIMEOUT_S = 3600.0
DATASETS_DIR = "datasets"
_ORIGIN_MAX_BYTES = 256


def cache_root() -> Path:
    """The project's cache folder.

    ``$MODALITY_CONFLICT_CACHE``, else ``$HF_HOME/modality_conflict``, else
    ``$XDG_CACHE_HOME/modality_conflict``, else ``~/.cache/modality_conflict``.
    """
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    hf_home = os.environ.get("HF_HOME")
    if hf_home:
        return Path(hf_home).expanduser() / "modality_conflict"
    return Path(os.environ.get("XDG_CACHE_HOME") or "~/.cache").expanduser() / "modality_conflict"


def _env_workers() -> int | None:
    text = os.environ.get(WORKERS_ENV)
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise DataResolutionError(f"{WORKERS_ENV} must be a positive integer, got {text!r}")
    return value


def _discard(folder: Path) -> None:
    """Remove a cache folder atomically (renamed away first, so no reader sees it half-deleted)."""
    folder.with_name(folder.name + ORIGIN_SUFFIX).unlink(missing_ok=True)
    if not folder.exists():
        return
    aside = temporary_sibling(folder, "old")
    os.replace(folder, aside)
    shutil.rmtree(aside, ignore_errors=True)


def _cached(folder: Path, spec: DatasetSpec, log: Log) -> ResolvedData | None:
    if not folder.exists():
        return None
    started = time.perf_counter()
    try:
        fingerprint = verify_folder(folder)
    except DataResolutionError as error:
        log(f"the cached copy is unusable ({error}); preparing it again")
        return None
    if fingerprint != spec.fingerprint:
        log(
            f"the cached copy in {folder} has fingerprint {fingerprint[:12]}, not "
            f"{spec.fingerprint[:12]}; preparing it again"
        )
        return None
    revision = _hub_origin(folder)
    return ResolvedData(
        folder, "cache", fingerprint, spec.fingerprint, revision, time.perf_counter() - started
    )


def _hub_origin(folder: Path) -> str | None:
    try:
        raw = read_regular_file(folder.with_name(folder.name + ORIGIN_SUFFIX), max_bytes=_ORIGIN_MAX_BYTES)
        text = raw.decode("utf-8").strip()
    except (OSError, ValueError):  # absent, a pipe, a device, too long or not text: no known origin
        return None
    return text or None


@contextlib.contextmanager
def _locked(root: Path, spec: DatasetSpec, folder: Path, log: Log) -> Iterator[None]:
    import filelock

    parent = root / DATASETS_DIR
    try:
        parent.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(str(parent / f".{spec.cache_name}.lock"))
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            log(f"waiting for another process that is preparing {folder}")
            lock.acquire(timeout=LOCK_TIMEOUT_S)
    except filelock.Timeout:
        raise DataResolutionError(
            f"another process held the lock on {folder} for over {LOCK_TIMEOUT_S:.0f} s: "
            f"if none is running, delete {parent / f'.{spec.cache_name}.lock'} {WHAT_TO_DO}"
        ) from None
    except OSError as error:
        raise DataResolutionError(
            f"the dataset cache is not writable: {os_error_text(error)}; set {CACHE_ENV}=DIR to a "
            f"writable folder {WHAT_TO_DO}"
        ) from None
    try:
        yield
    finally:
        lock.release()


def ensure_dataset(
    spec: DatasetSpec = CANONICAL,
    *,
    root: str | os.PathLike[str] | None = None,
    workers: int | None = None,
    log: Log = log_line,
) -> ResolvedData:
    """A verified copy of ``spec`` in the cache: reused, downloaded from the pinned Hub commit, or built.

    ``spec``: The dataset (default: the canonical one).
    ``root``: The cache folder; default :func:`cache_root`.
    ``workers``: Build processes; default ``$MODALITY_CONFLICT_BUILD_WORKERS``, else all cores.
    Raises ``DataResolutionError`` when the cache cannot be written, the disk is full, or the build does not
        reproduce the pin.
    """
    root = Path(root) if root is not None else cache_root()
    folder = root / DATASETS_DIR / spec.cache_name
    found = _cached(folder, spec, log)
    if found is not None:
        return found
    started = time.perf_counter()
    workers = workers if workers is not None else _env_workers()
    with _locked(root, spec, folder, log):
        # Another rank or run may have finished while this one waited.
        found = _cached(folder, spec, log)
        if found is not None:
            return found
        try:
            remove_stale_partials(folder)
            _discard(folder)
            if fetch_from_hub(spec, folder, log):
                return ResolvedData(
                    folder,
                    "hub",
                    spec.fingerprint,
                    spec.fingerprint,
                    spec.revision,
                    time.perf_counter() - started,
                )
            _build(spec, folder, workers, log)
        except OSError as error:
            raise DataResolutionError(
                f"{os_error_text(error)}; set {CACHE_ENV}=DIR to a folder with room {WHAT_TO_DO}"
            ) from None
    return ResolvedData(
        folder, "built", spec.fingerprint, spec.fingerprint, None, time.perf_counter() - started
    )


def _build(spec: DatasetSpec, folder: Path, workers: int | None, log: Log) -> None:
    from modality_conflict.dataset_builder.builder import build_dataset, software_versions

    if not builder_matches_pin(spec):
        raise DataResolutionError(
            f"the tasks pin a dataset made by builder {spec.builder_version}, but this is builder "
            f"{current_builder_version(spec.kind)}, which cannot reproduce it: install the matching "
            f"modality-conflict release {WHAT_TO_DO}"
        )
    why = "no Hub copy is pinned" if not spec.published else "the Hub copy is out of reach"
    log(
        f"building the dataset ({spec.describe()}) into {folder}: {why}, so it is made here once "
        "and reused by later runs"
    )
    try:
        result = build_dataset(
            folder,
            groups=spec.groups,
            dataset=spec.kind,
            seed=spec.seed,
            workers=workers,
            progress=sys.stderr.isatty(),
        )
    except BuildError as error:
        raise DataResolutionError(
            f"{error}; set {CACHE_ENV}=DIR to a writable folder with room {WHAT_TO_DO}"
        ) from None
    fingerprint = DatasetFolder(folder).fingerprint
    if fingerprint != spec.fingerprint:
        _discard(folder)
        here = software_versions()
        pinned = dict(spec.software)
        differ = [f"{k} {here.get(k)} (pin: {v})" for k, v in sorted(pinned.items()) if here.get(k) != v]
        hint = f"library versions differ: {', '.join(differ)}" if differ else "same library versions"
        raise DataResolutionError(
            f"the dataset built here has fingerprint {fingerprint}, not the pinned {spec.fingerprint} "
            f"({hint}): install the pinned versions (pip install -c .ci/constraints.txt) {WHAT_TO_DO}"
        )
    log(
        f"built {result.num_rows} rows in {result.seconds:.1f} s; "
        f"fingerprint {fingerprint[:12]} matches the pin"
    )
