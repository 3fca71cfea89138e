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
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modality_conflict.dataset_builder.atomic import os_error_text, temporary_sibling
from modality_conflict.dataset_builder.canonical import (
    CANONICAL,
    DatasetSpec,
    builder_matches_pin,
    current_builder_version,
    spec_for_fingerprint,
)
from modality_conflict.dataset_builder.errors import BuildError, DataResolutionError
from modality_conflict.dataset_builder.folder import (
    MANIFEST_NAME,
    DatasetFolder,
    DatasetFolderError,
    confined_path,
)
from modality_conflict.dataset_builder.regular_files import read_regular_file
from modality_conflict.dataset_builder.writer import remove_stale_partials

DATA_ENV = "MODALITY_CONFLICT_DATA"
CACHE_ENV = "MODALITY_CONFLICT_CACHE"
WORKERS_ENV = "MODALITY_CONFLICT_BUILD_WORKERS"
#: Seconds to wait for the Hub's answer before building locally.
HUB_TIMEOUT_S = 10.0
#: Seconds to wait for another process that is preparing the same cache folder.
LOCK_TIMEOUT_S = 3600.0
DATASETS_DIR = "datasets"
# Beside a cache folder filled from the Hub: the commit it came from.
_ORIGIN_SUFFIX = ".hub-revision"
_ORIGIN_MAX_BYTES = 256
LOG_PREFIX = "[modality_conflict]"

_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG}
_WHAT_TO_DO = f"or set {DATA_ENV}=DIR to a folder made by `modality-conflict build`"

Log = Callable[[str], None]


def log_line(message: str) -> None:
    """Print one progress line on stderr (with the rank under a multi-process launch)."""
    rank = os.environ.get("RANK") if os.environ.get("WORLD_SIZE", "1") not in ("", "1") else None
    prefix = LOG_PREFIX if rank is None else f"{LOG_PREFIX} rank {rank}:"
    print(f"{prefix} {message}", file=sys.stderr, flush=True)


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


@dataclass(frozen=True)
class ResolvedData:
    """The data folder a task will read, and how it was found.

    Attributes
    ----------
    path
        A folder made by ``modality-conflict build`` (or downloaded from the Hub), verified.
    source
        ``"env"`` (``MODALITY_CONFLICT_DATA``), ``"path"`` (a local ``dataset_path`` in the task YAML),
        ``"cache"``, ``"hub"`` or ``"built"``.
    fingerprint
        The folder's content fingerprint.
    pinned_fingerprint
        The fingerprint the task pins, if any.
    revision
        The Hub commit the data came from (source ``"hub"``, or a cache filled from the Hub earlier).
    seconds
        Time spent resolving (verification, download or build).
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

    Raises
    ------
    DataResolutionError
        Naming the folder and the first problem.
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

    Parameters
    ----------
    pinned
        The fingerprint the task pins (default: the canonical dataset).
    data_dir
        An explicit folder; default ``$MODALITY_CONFLICT_DATA``.
    task_path
        A local folder the task YAML names as its ``dataset_path``.
    root
        The cache folder; default :func:`cache_root`.
    log
        Where progress lines go (default stderr).

    Returns
    -------
    ResolvedData

    Raises
    ------
    DataResolutionError
        One line saying what went wrong and what to do.
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
                f"modality-conflict cannot build: install the release the task comes from, {_WHAT_TO_DO}"
            )
        resolved = ensure_dataset(spec, root=root, log=log)
    log(f"data: {resolved.describe()}; ready in {resolved.seconds:.1f} s")
    return resolved


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
    folder.with_name(folder.name + _ORIGIN_SUFFIX).unlink(missing_ok=True)
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
        raw = read_regular_file(folder.with_name(folder.name + _ORIGIN_SUFFIX), max_bytes=_ORIGIN_MAX_BYTES)
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
            f"if none is running, delete {parent / f'.{spec.cache_name}.lock'} {_WHAT_TO_DO}"
        ) from None
    except OSError as error:
        raise DataResolutionError(
            f"the dataset cache is not writable: {os_error_text(error)}; set {CACHE_ENV}=DIR to a "
            f"writable folder {_WHAT_TO_DO}"
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

    Parameters
    ----------
    spec
        The dataset (default: the canonical one).
    root
        The cache folder; default :func:`cache_root`.
    workers
        Build processes; default ``$MODALITY_CONFLICT_BUILD_WORKERS``, else all cores.
    log
        Where progress lines go.

    Returns
    -------
    ResolvedData

    Raises
    ------
    DataResolutionError
        When the cache cannot be written, the disk is full, or the build does not reproduce the pin.
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
            if _fetch_from_hub(spec, folder, log):
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
                f"{os_error_text(error)}; set {CACHE_ENV}=DIR to a folder with room {_WHAT_TO_DO}"
            ) from None
    return ResolvedData(
        folder, "built", spec.fingerprint, spec.fingerprint, None, time.perf_counter() - started
    )


def _build(spec: DatasetSpec, folder: Path, workers: int | None, log: Log) -> None:
    from modality_conflict.dataset_builder.builder import build_dataset

    if not builder_matches_pin(spec):
        raise DataResolutionError(
            f"the tasks pin a dataset made by builder {spec.builder_version}, but this is builder "
            f"{current_builder_version(spec.kind)}, which cannot reproduce it: install the matching "
            f"modality-conflict release {_WHAT_TO_DO}"
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
            f"{error}; set {CACHE_ENV}=DIR to a writable folder with room {_WHAT_TO_DO}"
        ) from None
    fingerprint = DatasetFolder(folder).fingerprint
    if fingerprint != spec.fingerprint:
        _discard(folder)
        here = _software_here()
        pinned = dict(spec.software)
        differ = [f"{k} {here.get(k)} (pin: {v})" for k, v in sorted(pinned.items()) if here.get(k) != v]
        hint = f"library versions differ: {', '.join(differ)}" if differ else "same library versions"
        raise DataResolutionError(
            f"the dataset built here has fingerprint {fingerprint}, not the pinned {spec.fingerprint} "
            f"({hint}): install the pinned versions (pip install -c .ci/constraints.txt) {_WHAT_TO_DO}"
        )
    log(
        f"built {result.num_rows} rows in {result.seconds:.1f} s; "
        f"fingerprint {fingerprint[:12]} matches the pin"
    )


def _software_here() -> dict[str, str]:
    import numpy
    import PIL
    import pyarrow

    return {"numpy": numpy.__version__, "pillow": PIL.__version__, "pyarrow": pyarrow.__version__}


def _hub_offline() -> bool:
    if os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}:
        return True
    constants = sys.modules.get("huggingface_hub.constants")  # set when huggingface_hub was imported
    return bool(getattr(constants, "HF_HUB_OFFLINE", False))


def _fetch_from_hub(spec: DatasetSpec, folder: Path, log: Log) -> bool:
    """Download the pinned commit into ``folder``; False (with a log line) when it is not to be had."""
    if not spec.published or _hub_offline():
        return False
    from huggingface_hub import HfApi, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = f"{spec.repo_id}@{spec.revision[:12]}"
    staging = temporary_sibling(folder, "partial")
    try:
        log(f"downloading the pinned dataset {where} into {folder}")
        HfApi().dataset_info(spec.repo_id, revision=spec.revision, timeout=HUB_TIMEOUT_S)

        def fetch(name: str) -> None:
            hf_hub_download(
                spec.repo_id,
                name,
                repo_type="dataset",
                revision=spec.revision,
                local_dir=staging,
                etag_timeout=HUB_TIMEOUT_S,
            )

        fetch(MANIFEST_NAME)
        manifest = DatasetFolder(staging).manifest or {}
        for name in sorted(manifest.get("files") or {}):
            confined_path(staging, name)
            fetch(name)
        shutil.rmtree(staging / ".cache", ignore_errors=True)
        fingerprint = verify_folder(staging)
        if fingerprint != spec.fingerprint:
            log(
                f"the Hub copy {where} has fingerprint {fingerprint[:12]}, not the pinned "
                f"{spec.fingerprint[:12]}; building instead"
            )
            return False
        os.replace(staging, folder)
        folder.with_name(folder.name + _ORIGIN_SUFFIX).write_text(spec.revision + "\n", encoding="utf-8")
        return True
    except (RevisionNotFoundError, RepositoryNotFoundError, EntryNotFoundError) as error:
        log(f"the pinned Hub commit {where} is not available ({_first_line(error)}); building instead")
    except HfHubHTTPError as error:
        log(f"the Hub refused the download of {where} ({_first_line(error)}); building instead")
    except (DataResolutionError, DatasetFolderError) as error:
        log(f"the Hub copy {where} is unusable ({_first_line(error)}); building instead")
    except OSError as error:
        if error.errno in _WRITE_ERRNOS:
            raise
        log(f"the Hub is unreachable ({_first_line(error)}); building instead")
    except Exception as error:  # noqa: BLE001 - httpx transport errors share no base class with OSError
        if type(error).__module__.split(".")[0] not in ("httpx", "httpx2", "httpcore"):
            raise
        log(f"the Hub is unreachable ({_first_line(error)}); building instead")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return False


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
