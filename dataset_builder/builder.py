"""Build one of the conflict sets (:mod:`~modality_conflict.dataset_builder.specs`) into a Hub-style folder.

Groups are rendered in worker processes (one task per group) and written in group order by the parent,
which keeps only a bounded window of finished groups in memory. Output goes to a temporary sibling folder
that is renamed into place at the end, so an interrupted build never leaves a folder that looks complete.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import re
import signal
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Generator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from multiprocessing import get_all_start_methods, get_context
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

from modality_conflict.dataset_builder.atomic import os_error_text
from modality_conflict.dataset_builder.card import render_card
from modality_conflict.dataset_builder.constants import CONTROLS, GROUPS_PER_SHARD, SPLIT
from modality_conflict.dataset_builder.errors import BuildError
from modality_conflict.dataset_builder.folder import CARD_NAME, DATA_DIR, MANIFEST_NAME, DatasetFolder
from modality_conflict.dataset_builder.plan import group_rows
from modality_conflict.dataset_builder.specs import (
    DEFAULT_DATASET,
    DatasetKind,
    dataset_kind,
    kind_of_manifest,
)
from modality_conflict.dataset_builder.writer import (
    ShardWriter,
    atomic_output_dir,
    file_entries,
    remove_stale_partials,
    shard_name,
    write_manifest,
)

#: Largest accepted group count (group ids are formatted with four digits).
MAX_GROUPS = 10_000

#: The files a build writes; anything else in an output folder belongs to someone else.
_OWNED_FILE = re.compile(
    rf"^(?:{re.escape(CARD_NAME)}|{re.escape(MANIFEST_NAME)}|{DATA_DIR}/{SPLIT}-\d{{5}}-of-\d{{5}}\.parquet)$"
)
_PR_SET_PDEATHSIG = 1
_PARENT_POLL_S = 1.0


@dataclass(frozen=True)
class BuildResult:
    """Outcome of :func:`build_dataset`.

    ``dataset``: The dataset's command-line key (``color``, ``attribute``).
    ``num_image_cells``: Rows that carry an image (vision-only and conflict rows).
    ``num_rendered``: Distinct images drawn (one per group and visual tier).
    ``files``: Relative paths of the files in the folder, manifest last.
    ``reused``: True when an identical, verified build was already there and nothing was written.
    """

    out: Path
    groups: int
    seed: int
    num_rows: int
    num_image_cells: int
    num_rendered: int
    files: list[str] = field(default_factory=list)
    reused: bool = False
    seconds: float = 0.0
    dataset: str = DEFAULT_DATASET


def resolve_groups(preset: str | None, groups: int | None, *, dataset: str = DEFAULT_DATASET) -> int:
    """Number of groups from a preset name and/or an explicit count (the count wins).

    ``preset``: A preset of the dataset (``small``, ``paper``) or None (``paper``).
    """
    return dataset_kind(dataset).resolve_groups(preset, groups)


def shard_bounds(groups: int, groups_per_shard: int = GROUPS_PER_SHARD) -> list[tuple[int, int]]:
    """Group ranges ``[start, stop)`` of each shard; depends on the group count only."""
    count = max(1, math.ceil(groups / groups_per_shard))
    edges = [round(i * groups / count) for i in range(count + 1)]
    return list(zip(edges[:-1], edges[1:], strict=True))


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _stop_progress_monitors() -> None:
    """End tqdm's monitor threads (idle helpers that a later bar restarts), so that fork stays possible.

    Inside lmms-eval the model's loading bars leave one running; spawned workers would instead
    re-import the whole evaluation harness each.
    """
    monitor_class = getattr(sys.modules.get("tqdm._monitor"), "TMonitor", None)
    if monitor_class is None:
        return
    for thread in threading.enumerate():
        if isinstance(thread, monitor_class):
            thread.exit()


def _mp_context() -> BaseContext:
    # Fork starts workers fastest and works for scripts read from stdin; it is unsafe once the parent
    # runs other threads (HTTP clients), and then "spawn" starts them clean instead.
    _stop_progress_monitors()
    if "fork" in get_all_start_methods() and threading.active_count() == 1:
        return get_context("fork")
    return get_context("spawn")


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(_PARENT_POLL_S)
        if os.getppid() != parent_pid:
            os._exit(1)


def _die_with_parent(parent_pid: int) -> None:
    """Worker initializer: end this worker as soon as the building process is gone.

    A parent killed by SIGKILL (or by SIGTERM before it can clean up) runs no shutdown code, and its pool
    workers would otherwise live on, holding memory and the caller's stdout. Linux delivers SIGKILL to
    the worker when its parent dies (``PR_SET_PDEATHSIG``); elsewhere a thread polls the parent's pid.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before the line above took effect
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="parent-watch", daemon=True).start()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Generator[None, None, None]:
    """Handle SIGTERM like Ctrl-C, so a build (or a data resolution that may start one) cleans up its
    temporary folder and workers and says so in one line. Only the main thread installs a handler, and one
    that someone else installed is left alone."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)
    if previous not in (signal.SIG_DFL, None):  # someone else already decides what SIGTERM does
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt("terminated (SIGTERM)")

    signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _iter_groups(
    group_rows: Any, seed: int, groups: Sequence[int], workers: int
) -> Generator[list[dict[str, Any]], None, None]:
    """Rows of each group, in order, rendered by ``workers`` processes."""
    if workers <= 1 or len(groups) <= 1:
        for g in groups:
            yield group_rows(seed, g)
        return
    # A bounded window of submitted groups keeps memory flat when rendering outpaces writing.
    window = 2 * workers + 2
    todo = iter(groups)
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=_mp_context(),
        initializer=_die_with_parent,
        initargs=(os.getpid(),),
    ) as pool:
        pending: deque[Future[list[dict[str, Any]]]] = deque()
        for g in todo:
            pending.append(pool.submit(group_rows, seed, g))
            if len(pending) >= window:
                break
        try:
            while pending:
                rows = pending.popleft().result()
                nxt = next(todo, None)
                if nxt is not None:
                    pending.append(pool.submit(group_rows, seed, nxt))
                yield rows
        finally:
            # The consumer stopped early (error, interrupt): drop queued groups instead of rendering them.
            for future in pending:
                future.cancel()


def _progress_bar(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    class _Bar(tqdm):  # type: ignore[misc, valid-type]
        # No monitor thread: the parent may still fork its workers after the bar exists.
        monitor_interval = 0

    return _Bar(total=total, unit="group", desc="building", disable=not enabled, dynamic_ncols=True)


def _check_arguments(groups: int, seed: int, workers: int) -> None:
    if not 1 <= groups <= MAX_GROUPS:
        raise BuildError(f"--groups must be between 1 and {MAX_GROUPS}, got {groups}")
    if seed < 0:
        raise BuildError(f"--seed must be a non-negative integer, got {seed}")
    if workers < 1:
        raise BuildError(f"--workers must be at least 1, got {workers}")


def build_arguments(groups: int, seed: int) -> dict[str, int]:
    """The arguments that determine the output bytes (recorded in the manifest)."""
    return {"groups": int(groups), "seed": int(seed)}


def foreign_files(out: Path) -> list[str]:
    """Entries of ``out`` that a build does not write (a user's notes, other data): never deleted."""
    found = []
    for path in sorted(Path(out).rglob("*")):
        name = path.relative_to(out).as_posix()
        if path.is_dir() and not path.is_symlink():
            if name != DATA_DIR and not any(path.iterdir()):
                found.append(name + "/")
        elif not _OWNED_FILE.match(name):
            found.append(name)
    return found


def _existing_build(
    spec: DatasetKind, out: Path, groups: int, seed: int, overwrite: bool
) -> dict[str, Any] | None:
    """Decide what to do with an existing ``out``: the manifest of a verified identical build, or None
    to (re)build. Raises when ``out`` must not be replaced.

    Only files the builder writes are ever replaced: a folder holding anything else is refused, with
    or without ``overwrite``; a build whose files changed since (an edited card, a damaged shard) is
    rebuilt only with ``overwrite``.
    """
    if not out.exists():
        return None
    if not out.is_dir():
        raise BuildError(f"{out} exists and is not a folder")
    folder = DatasetFolder(out)
    manifest = folder.manifest
    if manifest is None or kind_of_manifest(manifest) is None:
        if any(out.iterdir()):
            raise BuildError(
                f"{out} exists and is not a dataset made by `modality-conflict build` "
                f"(no valid {MANIFEST_NAME}); choose another --out or empty it first"
            )
        return None
    same = (
        manifest.get("dataset") == spec.name
        and manifest.get("arguments") == build_arguments(groups, seed)
        and manifest.get("builder_version") == spec.builder_version
    )
    if not overwrite:
        if not same:
            args = manifest.get("arguments", {})
            raise BuildError(
                f"{out} holds a build with other arguments (groups={args.get('groups')}, "
                f"seed={args.get('seed')}, builder {manifest.get('builder_version')}, "
                f"dataset {manifest.get('dataset')}); "
                "pass --overwrite to replace it"
            )
        changed = folder.hash_mismatches()
        if not changed:
            return manifest
        more = f" and {len(changed) - 1} more" if len(changed) > 1 else ""
        raise BuildError(
            f"{out} holds this build but its files changed since ({changed[0]}{more}); "
            "pass --overwrite to rebuild it"
        )
    foreign = foreign_files(out)
    if foreign:
        shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
        raise BuildError(
            f"{out} holds files that `modality-conflict build` did not write ({shown}); "
            "move them elsewhere before rebuilding, they would be lost"
        )
    return None


def software_versions() -> dict[str, str]:
    """Versions of the libraries whose output the dataset bytes depend on."""
    import numpy
    import PIL
    import pyarrow

    return {"numpy": numpy.__version__, "pillow": PIL.__version__, "pyarrow": pyarrow.__version__}


def build_dataset(
    out: str | os.PathLike[str],
    *,
    groups: int,
    dataset: str = DEFAULT_DATASET,
    seed: int = 0,
    workers: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> BuildResult:
    """Build the set into ``out`` (Hub dataset layout: ``data/*.parquet``, ``README.md``, ``manifest.json``).

    ``out``: Output folder. If it already holds a verified build with the same arguments nothing is done; a
        build with other arguments is replaced only with ``overwrite``; other non-empty folders are never
        replaced.
    ``groups``: Number of item groups (400 in the paper).
    ``dataset``: Which set to build: a key of :data:`~modality_conflict.dataset_builder.specs.DATASETS`
        (``color``, the default, or ``attribute``).
    ``seed``: Seed of every random choice; the same seed gives byte-identical files.
    ``workers``: Worker processes (default: all cores). The output does not depend on it.
    ``overwrite``: Replace an existing build made with other arguments.
    Raises ``BuildError``: bad arguments or an output folder that must not be replaced.
    """
    started = time.perf_counter()
    spec = dataset_kind(dataset)
    workers = default_workers() if workers is None else int(workers)
    _check_arguments(groups, seed, workers)
    out = Path(out).absolute()
    try:
        with sigterm_as_interrupt():
            return _build(spec, out, groups, seed, workers, overwrite, progress, started)
    except OSError as error:
        raise BuildError(f"{os_error_text(error, out)}; nothing was left behind") from None


def _build(
    spec: DatasetKind,
    out: Path,
    groups: int,
    seed: int,
    workers: int,
    overwrite: bool,
    progress: bool,
    started: float,
) -> BuildResult:
    per_group = spec.rows_per_group()
    text_rows = sum(len(spec.layout.control_tiers(c)[1]) for c in CONTROLS)

    def result(num_rows: int, files: list[str], reused: bool) -> BuildResult:
        return BuildResult(
            out=out,
            groups=groups,
            seed=seed,
            num_rows=num_rows,
            num_image_cells=groups * (per_group - text_rows),
            num_rendered=groups * spec.images_per_group,
            files=files,
            reused=reused,
            seconds=time.perf_counter() - started,
            dataset=spec.key,
        )

    remove_stale_partials(out)
    existing = _existing_build(spec, out, groups, seed, overwrite)
    if existing is not None:
        return result(
            int(existing.get("num_rows", 0)), sorted(existing.get("files", {})) + [MANIFEST_NAME], True
        )

    schema = spec.arrow_schema()
    bounds = shard_bounds(groups, spec.groups_per_shard)
    # The label columns counted in the manifest (and their names, in ClassLabel order).
    counted = {c: spec.label_names[c] for c in ("condition", "control", "attribute") if c in spec.label_names}
    counters: dict[str, Counter[str]] = {column: Counter() for column in counted}
    num_rows = num_bytes = 0
    with (
        atomic_output_dir(out) as tmp,
        _progress_bar(groups, progress) as bar,
        contextlib.closing(
            _iter_groups(partial(group_rows, kind=spec.key), seed, range(groups), workers)
        ) as stream,
    ):
        (tmp / "data").mkdir()
        names = []
        for index, (start, stop) in enumerate(bounds):
            name = shard_name(index, len(bounds))
            names.append(name)
            with ShardWriter(tmp / name, schema) as writer:
                for _ in range(start, stop):
                    rows = next(stream)
                    writer.write_rows(rows)
                    for column, labels in counted.items():
                        counters[column].update(labels[r[column]] for r in rows)
                    bar.update(1)
            num_rows += writer.num_rows
            num_bytes += writer.num_bytes
        download_size = sum((tmp / n).stat().st_size for n in names)
        card = render_card(
            spec,
            num_rows=num_rows,
            num_bytes=num_bytes,
            download_size=download_size,
            groups=groups,
            seed=seed,
            counts=dict(counters["condition"]),
        )
        (tmp / CARD_NAME).write_text(card, encoding="utf-8")
        counts = {column: {n: counters[column][n] for n in labels} for column, labels in counted.items()}
        manifest = {
            "dataset": spec.name,
            "builder_version": spec.builder_version,
            "arguments": build_arguments(groups, seed),
            "split": SPLIT,
            "num_rows": num_rows,
            "rows_per_group": per_group,
            "counts": counts,
            "layout": {
                "control_visual_tiers": list(spec.control_visual_tiers),
                "groups_per_shard": [stop - start for start, stop in bounds],
                "images_per_group": spec.images_per_group,
            },
            "software": software_versions(),
            "files": file_entries(tmp, [*names, CARD_NAME]),
        }
        # The manifest is written last: a folder with a manifest is a finished build.
        write_manifest(tmp, manifest)
    return result(num_rows, [*names, CARD_NAME, MANIFEST_NAME], False)
