"""Check a built dataset folder: files, schema, construction invariants, coverage, balance, images.

Each shard is read into memory, checked against the manifest's sha256 and parsed from those bytes; its
rows are streamed by batch (memory grows with one shard: only row ids and one digest per image are kept).
Every problem names the file, the row number (0-based over the split, in file order), the row id and field.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from modality_conflict.dataset_builder.constants import SPLIT
from modality_conflict.dataset_builder.errors import DatasetValidationError
from modality_conflict.dataset_builder.folder import (
    CARD_NAME,
    DATA_DIR,
    MANIFEST_NAME,
    DatasetFolder,
    DatasetFolderError,
)
from modality_conflict.dataset_builder.manifest import manifest_problems
from modality_conflict.dataset_builder.row_checks import Problems, RowChecker
from modality_conflict.dataset_builder.specs import COLOR, DATASETS, kind_of_manifest

_BATCH_ROWS = 512


@dataclass
class ValidationReport:
    """Summary of a folder that passed :func:`validate_dataset`.

    ``dataset``: Which set it holds (``color``, ``attribute``).
    ``counts``: ``{"condition": {...}, "control": {...}}`` row counts by name.
    """

    folder: Path
    dataset: str = COLOR.key
    num_rows: int = 0
    num_groups: int = 0
    files: list[str] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    images_decoded: int = 0

    def summary(self) -> str:
        """One-paragraph human-readable summary."""
        cond = ", ".join(f"{v} {k}" for k, v in self.counts.get("condition", {}).items())
        ctrl = ", ".join(f"{v} {k}" for k, v in self.counts.get("control", {}).items())
        return (
            f"{self.folder}: OK - {self.num_rows} rows in {len(self.files)} file(s), "
            f"{self.num_groups} groups ({self.dataset} set); conditions: {cond}; controls: {ctrl}; "
            f"{self.images_decoded} distinct images decoded"
        )


def _check_card(meta: dict[str, Any], problems: Problems, expected_features: Any) -> int | None:
    """Check the card's features and configs; return its declared number of test rows."""
    from datasets import Features

    for key in ("license", "task_categories", "size_categories", "pretty_name", "configs", "dataset_info"):
        if key not in meta:
            problems.add(f"{CARD_NAME}: front matter lacks '{key}'")
    info = meta.get("dataset_info") or {}
    try:
        features = Features._from_yaml_list(info.get("features") or [])
    except Exception as error:  # noqa: BLE001 - any parse failure of third-party YAML is reported
        problems.add(f"{CARD_NAME}: dataset_info.features cannot be read ({error})")
    else:
        if features != expected_features:
            diff = sorted(set(expected_features) ^ set(features)) or [
                k for k in expected_features if features.get(k) != expected_features[k]
            ]
            problems.add(
                f"{CARD_NAME}: dataset_info.features differ from the expected features (columns {diff})"
            )
    configs = meta.get("configs") or []
    paths = [
        df.get("path")
        for cfg in configs
        if isinstance(cfg, dict)
        for df in (cfg.get("data_files") or [])
        if isinstance(df, dict) and df.get("split") == SPLIT
    ]
    if not paths:
        problems.add(f"{CARD_NAME}: configs declare no data files for split '{SPLIT}'")
    for split in info.get("splits") or []:
        if isinstance(split, dict) and split.get("name") == SPLIT:
            return split.get("num_examples")
    problems.add(f"{CARD_NAME}: dataset_info.splits has no '{SPLIT}' entry")
    return None


def _check_schema(name: str, schema: pa.Schema, problems: Problems, expected_features: Any) -> bool:
    """Compare a shard's schema with the expected one; True when rows can be checked."""
    from datasets import Features

    expected = expected_features.arrow_schema
    ok = True
    for f in expected:
        if f.name not in schema.names:
            problems.add(f"{name}: missing column '{f.name}'")
            ok = False
        elif not schema.field(f.name).type.equals(f.type):
            problems.add(f"{name}: column '{f.name}' has type {schema.field(f.name).type}, expected {f.type}")
            ok = False
    for extra in [n for n in schema.names if n not in expected.names]:
        problems.add(f"{name}: unexpected column '{extra}'")
        ok = False
    if ok and schema.names != expected.names:
        problems.add(f"{name}: columns are in the order {schema.names}, expected {expected.names}")
    if (schema.metadata or {}).get(b"huggingface") is None:
        problems.add(f"{name}: schema has no 'huggingface' features metadata")
    elif ok:
        features = Features.from_arrow_schema(schema)
        wrong = [k for k in expected_features if features.get(k) != expected_features[k]]
        if wrong:
            problems.add(
                f"{name}: 'huggingface' features metadata differs from the expected features for {wrong}"
            )
    return ok


def _iter_rows(shard: pa.BufferReader) -> Iterator[dict[str, Any]]:
    handle = pq.ParquetFile(shard)
    for batch in handle.iter_batches(batch_size=_BATCH_ROWS):
        yield from batch.to_pylist()


def validate_dataset(
    folder: str | os.PathLike[str], *, check_images: bool = True, max_problems: int = 20
) -> ValidationReport:
    """Validate a folder made by :func:`modality_conflict.dataset_builder.builder.build_dataset`.

    Checks the manifest and every file's sha256, the dataset card's YAML (features, configs, split size),
    each shard's schema and embedded features, every row's fields and keys, that Yv != Yt on every row
    (so every conflict is a conflict by construction), tier coverage of every group, answer balance over
    groups, and that each distinct image decodes to its tier's size.

    ``check_images``: Decode images (the slowest step).
    ``max_problems``: Problems listed in the error before the rest are only counted.
    Raises ``DatasetValidationError``, listing every problem found (up to ``max_problems``), each naming the
        file, row and field.
    """
    root = Path(folder)
    if not root.is_dir():
        raise DatasetValidationError(f"{root}: not a folder")
    problems = Problems(max_problems)
    dataset = DatasetFolder(root)
    try:
        manifest = dataset.manifest
    except DatasetFolderError as error:
        raise DatasetValidationError(str(error)) from None
    # Which set the folder holds decides the schema and the row checks; without a manifest the colour
    # set's are used (and the missing manifest is the first problem).
    spec = kind_of_manifest(manifest) or COLOR
    num_groups = None
    if manifest is None:
        problems.add(f"{MANIFEST_NAME}: missing or not valid JSON")
    else:
        if kind_of_manifest(manifest) is None:
            names = [s.name for s in DATASETS.values()]
            problems.add(
                f"{MANIFEST_NAME}: 'dataset' is {manifest.get('dataset')!r}, expected one of {names}"
            )
        for line in manifest_problems(manifest):
            problems.add(line)
        for line in dataset.hash_mismatches():
            problems.add(f"manifest hash mismatch: {line}")
        listed = manifest.get("files") if isinstance(manifest.get("files"), dict) else {}
        for name in dataset.data_files():
            if name not in listed:
                problems.add(f"{name}: not listed in {MANIFEST_NAME}")
        arguments = manifest.get("arguments")
        groups = arguments.get("groups") if isinstance(arguments, dict) else None
        num_groups = groups if isinstance(groups, int) and not isinstance(groups, bool) else None
    try:
        card_rows = _check_card(dataset.card_metadata(), problems, spec.features)
    except DatasetValidationError as error:
        problems.add(str(error))
        card_rows = None
    files = dataset.data_files()
    if not files:
        problems.add(f"{DATA_DIR}/: no parquet files")
    checker = RowChecker(spec, problems, check_images)
    for name in files:
        if manifest is None or name not in listed:
            continue  # only bytes the manifest vouches for are parsed (the problem is listed above)
        try:
            shard = pa.BufferReader(dataset.verified_shard(name))  # the bytes whose sha256 matched
            schema = pq.read_schema(shard)
        except DatasetFolderError:
            continue  # a mistyped manifest, or a hash or size mismatch: listed above
        except (OSError, pa.ArrowException) as error:
            problems.add(f"{name}: cannot be read as parquet ({error})")
            continue
        if not _check_schema(name, schema, problems, spec.features):
            continue
        try:
            for row in _iter_rows(shard):
                checker.check(name, row)
        except (OSError, pa.ArrowException) as error:
            problems.add(f"{name}: reading rows failed after row {checker.rows} ({error})")
    num_groups = checker.finish(num_groups)
    if manifest is not None and manifest.get("num_rows") != checker.rows:
        problems.add(
            f"{MANIFEST_NAME}: num_rows is {manifest.get('num_rows')}, the files hold {checker.rows}"
        )
    if card_rows is not None and card_rows != checker.rows:
        problems.add(f"{CARD_NAME}: split '{SPLIT}' declares {card_rows} rows, the files hold {checker.rows}")
    problems.raise_if_any()
    return ValidationReport(
        folder=root,
        dataset=spec.key,
        num_rows=checker.rows,
        num_groups=num_groups,
        files=files,
        counts=checker.counts(),
        images_decoded=len(checker.image_sizes),
    )
