"""The dataset-folder reader: everything anyone reads from a folder made by ``modality-conflict build``.

A built folder holds ``manifest.json`` (arguments, builder version, every file's sha256 and size),
``README.md`` (the dataset card, YAML front matter first) and ``data/<split>-NNNNN-of-NNNNN.parquet``.
Validation, submissions, probing, task configuration and the lmms-eval tasks read it through
:class:`DatasetFolder` only. Rows come from exactly the shards the manifest lists, and from the very bytes
whose sha256 was checked against it (read once into memory, hashed, then parsed): a card pointing
elsewhere, an unlisted shard or a file changed after a check can never be what a task reads. Every file is
read only when it is a regular file of bounded size (:mod:`.regular_files`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from functools import cached_property
from pathlib import Path, PurePosixPath
from typing import Any

from modality_conflict.dataset_builder.errors import (
    DatasetValidationError,
    ModalityConflictError,
    UnsafeFileError,
)
from modality_conflict.dataset_builder.manifest import MANIFEST_NAME, manifest_problems
from modality_conflict.dataset_builder.regular_files import read_regular_file, regular_file_size
from modality_conflict.dataset_builder.specs import COLOR, DatasetKind, kind_of_manifest

CARD_NAME = "README.md"
DATA_DIR = "data"
_HASH_CHUNK = 1 << 20
#: The most read from a manifest or a dataset card (both are a few kilobytes when built).
MAX_MANIFEST_BYTES = 1 << 22
MAX_CARD_BYTES = 1 << 22
#: The most read from one parquet shard (a build writes shards of a few megabytes).
MAX_SHARD_BYTES = 1 << 31


class DatasetFolderError(ModalityConflictError, ValueError):
    """A dataset folder is missing a piece, or its files do not match its manifest."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def confined_path(folder: Path, name: object) -> Path:
    """The file ``name`` (a manifest's relative path) inside ``folder``, refusing any path that leaves it.

    Absolute paths, ``..`` parts, backslashes and symbolic links that lead out of the folder are refused,
    so a manifest can never make a reader open a file elsewhere.

    Raises ``DatasetFolderError``, naming the path and why it is refused.
    """
    if not isinstance(name, str) or not name or "\\" in name or "\0" in name:
        raise DatasetFolderError(f"{MANIFEST_NAME}: file name {name!r} is not a relative path")
    relative = PurePosixPath(name)
    if relative.is_absolute() or ".." in relative.parts:
        raise DatasetFolderError(f"{MANIFEST_NAME}: file name {name!r} points outside the dataset folder")
    root = Path(folder).resolve()
    path = root.joinpath(*relative.parts)
    try:
        inside = path.resolve().is_relative_to(root)
    except (OSError, RuntimeError):  # a symlink loop
        inside = False
    if not inside:
        raise DatasetFolderError(
            f"{MANIFEST_NAME}: {name!r} is a link that leads outside the dataset folder {root}"
        )
    return path


def dataset_fingerprint(manifest: Mapping[str, Any]) -> str:
    """sha256 of the data files' hashes in a build manifest (the README card is not part of the data).

    Raises ``ValueError`` when the manifest lists no parquet files.
    """
    files = manifest.get("files")
    if not isinstance(files, dict):
        raise ValueError("the dataset manifest has no 'files' table")
    table = {
        name: entry.get("sha256")
        for name, entry in files.items()
        if name.endswith(".parquet") and isinstance(entry, dict)
    }
    if not table:
        raise ValueError("the dataset manifest lists no parquet files")
    canonical = json.dumps(table, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


class DatasetFolder:
    """A folder made by ``modality-conflict build``, read lazily."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"DatasetFolder({str(self.path)!r})"

    @property
    def is_dir(self) -> bool:
        """Whether the folder exists."""
        return self.path.is_dir()

    @cached_property
    def manifest(self) -> dict[str, Any] | None:
        """The parsed ``manifest.json``, or None when it is missing or not a JSON object.

        Raises ``DatasetFolderError`` when ``manifest.json`` is a pipe, a device or a folder, or larger than
            :data:`MAX_MANIFEST_BYTES`.
        """
        if not self.path.is_dir():
            return None
        path = self.path / MANIFEST_NAME
        try:
            data = json.loads(read_regular_file(path, max_bytes=MAX_MANIFEST_BYTES).decode("utf-8"))
        except UnsafeFileError as error:
            raise DatasetFolderError(str(error)) from None
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def require_manifest(self) -> dict[str, Any]:
        """The manifest, every field of the right type.

        Raises ``DatasetFolderError`` when there is none, it is no regular file of bounded size, or a field
            is wrong (the first named).
        """
        if self.manifest is None:
            raise DatasetFolderError(
                f"{self.path} has no readable {MANIFEST_NAME} (not made by `modality-conflict build`)"
            )
        problems = manifest_problems(self.manifest)
        if problems:
            more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
            raise DatasetFolderError(f"{self.path}: {problems[0]}{more}")
        return self.manifest

    @property
    def kind(self) -> DatasetKind:
        """Which dataset the folder holds, from its manifest (the colour set when the manifest names none)."""
        return kind_of_manifest(self.manifest) or COLOR

    @property
    def fingerprint(self) -> str | None:
        """The data's content fingerprint (:func:`dataset_fingerprint`), or None without a manifest.

        Raises ``DatasetFolderError`` when the manifest has a field of the wrong type.
        """
        return None if self.manifest is None else dataset_fingerprint(self.require_manifest())

    @property
    def builder_version(self) -> str | None:
        """The builder version the manifest records."""
        return None if self.manifest is None else self.manifest.get("builder_version")

    def card_metadata(self) -> dict[str, Any]:
        """YAML front matter of the folder's ``README.md``.

        Raises ``DatasetValidationError`` if the card is missing or has no parseable front matter.
        """
        import yaml

        path = self.path / CARD_NAME
        try:
            text = read_regular_file(path, max_bytes=MAX_CARD_BYTES).decode("utf-8")
        except UnsafeFileError as error:
            raise DatasetValidationError(f"{CARD_NAME}: {error}") from None
        except UnicodeDecodeError as error:
            raise DatasetValidationError(
                f"{path}: the dataset card is not UTF-8 text (byte {error.start}: {error.reason})"
            ) from None
        except OSError as error:
            raise DatasetValidationError(f"{CARD_NAME}: cannot read the dataset card ({error})") from error
        if not text.startswith("---\n"):
            raise DatasetValidationError(
                f"{CARD_NAME}: no YAML front matter (the file must start with '---')"
            )
        end = text.find("\n---", 4)
        if end < 0:
            raise DatasetValidationError(f"{CARD_NAME}: YAML front matter is not closed by '---'")
        try:
            meta = yaml.safe_load(text[4:end])
        except yaml.YAMLError as error:
            raise DatasetValidationError(f"{CARD_NAME}: front matter is not valid YAML ({error})") from error
        if not isinstance(meta, dict):
            raise DatasetValidationError(f"{CARD_NAME}: front matter is not a mapping")
        return meta

    def data_files(self) -> list[str]:
        """Relative paths of the parquet files under ``data/``, sorted."""
        return sorted(p.relative_to(self.path).as_posix() for p in (self.path / DATA_DIR).glob("*.parquet"))

    def manifest_data_files(self) -> list[str]:
        """The parquet files the manifest lists, sorted (each confined to the folder): the data."""
        files = self.require_manifest().get("files")
        if not isinstance(files, dict):
            raise DatasetFolderError(f"{self.path / MANIFEST_NAME}: no 'files' table")
        names = sorted(name for name in files if isinstance(name, str) and name.endswith(".parquet"))
        for name in names:
            confined_path(self.path, name)
        return names

    def hash_mismatches(self) -> list[str]:
        """Files listed in a manifest that are missing, of another size or of another sha256 (one line each).

        Every path is confined to the folder (:func:`confined_path`) and its size is compared with the
        recorded one before it is read, so a manifest cannot make this read a file elsewhere or a huge one.
        """
        problems = []
        files = self.require_manifest().get("files")
        if not isinstance(files, dict) or not files:
            return [f"{MANIFEST_NAME}: no 'files' table"]
        for name, entry in sorted(files.items(), key=lambda item: str(item[0])):
            try:
                path = confined_path(self.path, name)
            except DatasetFolderError as error:
                problems.append(str(error))
                continue
            expected = entry.get("sha256") if isinstance(entry, dict) else None
            size = entry.get("size") if isinstance(entry, dict) else None
            if (
                not isinstance(size, int)
                or isinstance(size, bool)
                or size < 0
                or not isinstance(expected, str)
            ):
                problems.append(f"{name}: {MANIFEST_NAME} records no valid size and sha256 for it")
                continue
            try:
                actual_size = regular_file_size(path)
            except UnsafeFileError as error:
                problems.append(f"{name}: {error}")
                continue
            except OSError:
                problems.append(f"{name}: listed in {MANIFEST_NAME} but missing")
                continue
            if actual_size != size:
                problems.append(f"{name}: size {actual_size} bytes does not match {MANIFEST_NAME} ({size})")
                continue
            actual = sha256_file(path)
            if actual != expected:
                problems.append(f"{name}: sha256 {actual} does not match {MANIFEST_NAME} ({expected})")
        return problems

    def verify_hashes(self) -> None:
        """Raise :class:`DatasetFolderError` unless every file matches the manifest's sha256."""
        mismatches = self.hash_mismatches()
        if mismatches:
            raise DatasetFolderError(
                f"dataset folder {self.path} does not match its manifest: " + "; ".join(mismatches[:5])
            )

    def verified_shard(self, name: str) -> bytes:
        """The bytes of the shard ``name``, checked against the manifest's size and sha256.

        What the caller parses is exactly what was hashed, so a file changed after an earlier check (or
        between two reads) is refused here and never parsed.

        Raises ``DatasetFolderError`` when the manifest does not list the shard, or the file is missing, not
            a regular file, or differs from the manifest (naming it).
        """

        entry = self.require_manifest()["files"].get(name)
        if not isinstance(entry, dict):
            raise DatasetFolderError(f"{self.path / name}: not listed in {MANIFEST_NAME}, so it is not read")
        path = confined_path(self.path, name)
        try:
            size = regular_file_size(path)
            if size != entry["size"]:
                raise DatasetFolderError(
                    f"{path}: {size} bytes are not the shard {MANIFEST_NAME} records ({entry['size']} "
                    "bytes), so it is not read"
                )
            data = read_regular_file(path, max_bytes=min(entry["size"], MAX_SHARD_BYTES))
        except UnsafeFileError as error:
            raise DatasetFolderError(str(error)) from None
        except OSError as error:
            raise DatasetFolderError(f"{path}: cannot read the dataset shard ({error.strerror})") from None
        digest = hashlib.sha256(data).hexdigest()
        if len(data) != entry["size"] or digest != entry["sha256"]:
            raise DatasetFolderError(
                f"{path}: the bytes read (sha256 {digest[:12]}, {len(data)} bytes) are not the shard "
                f"{MANIFEST_NAME} records (sha256 {entry['sha256'][:12]}, {entry['size']} bytes)"
            )
        return data

    def read_table(
        self,
        columns: Sequence[str] | None = None,
        *,
        files: Sequence[str] | None = None,
        limit_groups: int | None = None,
        row_ids: Collection[str] | None = None,
    ) -> Any:
        """The rows of the manifest's shards as one ``pyarrow.Table``, parsed from verified bytes.

        ``columns``: Columns to read; default all.
        ``files``: Shards to read (each must be listed in the manifest); default :meth:`manifest_data_files`.
        ``limit_groups``: Keep the item groups ``0 .. limit_groups - 1`` only.
        Raises ``DatasetFolderError`` when a shard is not listed, differs from the manifest or cannot be
            parsed (naming it).
        """
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        tables = []
        for name in self.manifest_data_files() if files is None else files:
            data = self.verified_shard(name)
            try:
                table = pq.read_table(pa.BufferReader(data), columns=list(columns) if columns else None)
            except Exception as error:  # noqa: BLE001 - any arrow error means an unreadable shard
                raise DatasetFolderError(
                    f"{self.path / name}: cannot read the dataset shard ({error})"
                ) from None
            if limit_groups is not None:
                table = table.filter(pc.less(table["group_id"], int(limit_groups)))
            if row_ids is not None:
                table = table.filter(pc.is_in(table["row_id"], pa.array(sorted(row_ids), pa.string())))
            tables.append(table)
        if not tables:
            raise DatasetFolderError(f"{self.path}: {MANIFEST_NAME} lists no {DATA_DIR}/*.parquet files")
        return pa.concat_tables(tables)

    def rows(self, *, limit_groups: int | None = None, row_ids: Collection[str] | None = None) -> Any:
        """The rows as a ``datasets.Dataset`` with the explicit features (images decoded when read)."""
        import datasets

        features = self.kind.features
        table = self.read_table(limit_groups=limit_groups, row_ids=row_ids)
        return datasets.Dataset(
            table.cast(features.arrow_schema), info=datasets.DatasetInfo(features=features)
        )

    def splits(self, fingerprint: str) -> Any:
        """The rows as a ``datasets.DatasetDict`` under the manifest's split, for a task to evaluate.

        ``fingerprint``: The fingerprint the data was resolved as: the manifest read now must still give it,
            and every row comes from bytes that match that manifest, so the data evaluated is provably that
            dataset.
        Raises ``DatasetFolderError`` when the folder changed since it was resolved, or a shard does not
            match the manifest.
        """
        import datasets

        if self.fingerprint != fingerprint:
            raise DatasetFolderError(
                f"{self.path}: the manifest changed after the data was checked (fingerprint "
                f"{str(self.fingerprint)[:12]}, checked {fingerprint[:12]}); run again"
            )
        return datasets.DatasetDict({self.require_manifest()["split"]: self.rows()})

    def index_rows(self, fields: Sequence[str]) -> dict[str, dict[str, Any]]:
        """``row_id -> {field: value}`` over the shards the manifest lists, ClassLabel values as names."""
        columns = self.read_table(["row_id", *fields]).to_pydict()
        rows: dict[str, dict[str, Any]] = {}
        label_names = self.kind.label_names
        for index, row_id in enumerate(columns["row_id"]):
            row = {}
            for key in fields:
                value = columns[key][index]
                names = label_names.get(key)
                row[key] = names[value] if names is not None and isinstance(value, int) else value
            rows[row_id] = row
        return rows


def is_one_dataset_folder(path: Path) -> bool:
    """Whether ``--data``-style ``path`` names one dataset folder (or nothing usable: its check then says
    what is wrong) rather than a folder of dataset folders."""
    path = Path(path)
    return not path.is_dir() or (path / DATA_DIR).exists() or (path / MANIFEST_NAME).exists()


def _dataset_name(folder: Path) -> str | None:
    kind = kind_of_manifest(DatasetFolder(folder).manifest) if (folder / DATA_DIR).is_dir() else None
    return None if kind is None else kind.name


def dataset_folders(data_dir: Path) -> dict[str, Path]:
    """The dataset folders under ``data_dir``, by dataset (manifest) name.

    ``data_dir`` is either one folder made by ``modality-conflict build`` or a folder holding several of
    them (one level down); each is identified by its manifest. This is the only place that tells them
    apart: the task copies, ``eval --data`` and ``MODALITY_CONFLICT_DATA`` all use it.

    Raises ``FileNotFoundError`` when ``data_dir`` holds no dataset folder, or holds two of the same dataset
        (naming them).
    Raises ``DatasetFolderError`` when a manifest is a pipe, a device or too large.
    """
    data_dir = Path(data_dir)
    own = _dataset_name(data_dir)
    if own is not None:
        return {own: data_dir}
    found: dict[str, Path] = {}
    children = sorted(p for p in data_dir.iterdir() if p.is_dir()) if data_dir.is_dir() else []
    for child in children:
        name = _dataset_name(child)
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
