"""Byte-deterministic parquet shards, the generation manifest and atomic output folders.

Shards are written row group by row group (one row group per item group), so memory stays bounded by
one group's rows whatever the size of the set. Writer settings are fixed: no timestamps, the same
compression, statistics only on the small scalar columns, and the ``datasets`` features embedded in the
schema metadata. Rows of one group share their images, and parquet's dictionary encoding stores each
distinct PNG once per row group.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from modality_conflict.dataset_builder.atomic import process_alive, temporary_sibling
from modality_conflict.dataset_builder.constants import SPLIT
from modality_conflict.dataset_builder.errors import BuildError
from modality_conflict.dataset_builder.folder import DATA_DIR, MANIFEST_NAME, sha256_file

_STAT_COLUMNS = ("row_id", "condition", "control", "group_id", "visual_tier", "text_tier", "attribute")
_PARTIAL_RE = re.compile(r"^\.(?P<name>.+)\.(?:partial|old)-(?P<pid>\d+)-[0-9a-f]+$")


def shard_name(index: int, count: int, split: str = SPLIT) -> str:
    """Hub-style shard path, e.g. ``data/test-00000-of-00002.parquet``."""
    return f"{DATA_DIR}/{split}-{index:05d}-of-{count:05d}.parquet"


class ShardWriter:
    """Stream rows into one parquet file with fixed, reproducible settings.

    ``schema``: Arrow schema (with the ``huggingface`` metadata).
    """

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.path = Path(path)
        self.schema = schema
        self.num_rows = 0
        self.num_bytes = 0
        self._writer = pq.ParquetWriter(
            self.path,
            schema,
            compression="zstd",
            compression_level=3,
            use_dictionary=True,
            # Statistics of binary image columns would only bloat the footer.
            write_statistics=[name for name in _STAT_COLUMNS if name in schema.names],
            # Large enough for every distinct PNG of a group, so identical images are stored once.
            dictionary_pagesize_limit=16 << 20,
        )

    def write_rows(self, rows: Sequence[dict[str, Any]]) -> None:
        """Append ``rows`` as one row group.

        ``rows``: Rows encoded for Arrow (see :func:`modality_conflict.dataset_builder.plan.group_rows`).
        """
        table = pa.Table.from_pylist(list(rows), schema=self.schema)
        self._writer.write_table(table, row_group_size=max(1, table.num_rows))
        self.num_rows += table.num_rows
        self.num_bytes += table.nbytes

    def close(self) -> None:
        """Finish the file (writes the footer)."""
        self._writer.close()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_manifest(folder: Path, payload: dict[str, Any]) -> Path:
    """Write ``manifest.json`` with sorted keys and a trailing newline (byte-stable).

    ``folder``: Dataset folder.
    ``payload``: Manifest content (JSON-serialisable).
    Returns the manifest path.
    """
    path = Path(folder) / MANIFEST_NAME
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path


def file_entries(folder: Path, names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{relative path: {"sha256", "size"}}`` for files of a folder."""
    out = {}
    for name in sorted(names):
        path = Path(folder) / name
        out[name] = {"sha256": sha256_file(path), "size": path.stat().st_size}
    return out


def remove_stale_partials(out: Path) -> list[Path]:
    """Delete temporary siblings left by interrupted builds of ``out``.

    These are ``.<name>.partial-*`` (a build in progress) and ``.<name>.old-*`` (a replaced build not
    yet deleted). Folders of a dead process, or of this process (left by an earlier interrupted call),
    are removed; folders of other live processes are left alone.

    ``out``: The final output folder.
    Returns the folders removed.
    """
    out = Path(out)
    removed = []
    if not out.parent.is_dir():
        return removed
    for entry in out.parent.iterdir():
        match = _PARTIAL_RE.match(entry.name)
        if not match or match["name"] != out.name or not entry.is_dir():
            continue
        pid = int(match["pid"])
        if pid == os.getpid() or not process_alive(pid):
            shutil.rmtree(entry, ignore_errors=True)
            removed.append(entry)
    return removed


@contextlib.contextmanager
def atomic_output_dir(out: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``out`` that replaces ``out`` only if the block succeeds.

    On an exception the temporary folder is deleted and ``out`` is left as it was. A process killed
    mid-build leaves only a hidden ``.<name>.partial-<pid>-<token>`` folder, which
    :func:`remove_stale_partials` deletes on the next run. An existing ``out`` is moved aside, the new
    folder renamed into place, then the old one deleted.

    ``out``: Final folder.
    Yields empty temporary folder on the same filesystem.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(out)
    tmp.mkdir()
    try:
        yield tmp
        old = None
        if out.exists():
            old = temporary_sibling(out, "old")
            os.replace(out, old)
        try:
            os.replace(tmp, out)
        except OSError as error:
            if old is not None:
                os.replace(old, out)
            raise BuildError(f"could not move the new dataset into {out}: {error}") from error
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
