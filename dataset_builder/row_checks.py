"""What the row checkers of both datasets share: collecting problems, the labels, row ids and group of a
row, its tiers and join keys, each modality's fields, group coverage and decoding each distinct image once.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from collections import Counter
from collections.abc import Callable, Collection, Sequence
from typing import Any

from PIL import Image

from modality_conflict.dataset_builder.constants import TEXT_TIERS
from modality_conflict.dataset_builder.errors import DatasetValidationError
from modality_conflict.dataset_builder.rows import item_id, text_key, vision_key


class Problems:
    """Collects problem lines, keeping the first ``limit`` and counting the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.lines: list[str] = []
        self.dropped = 0

    def add(self, line: str) -> None:
        if len(self.lines) < self.limit:
            self.lines.append(line)
        else:
            self.dropped += 1

    def raise_if_any(self) -> None:
        if self.lines:
            lines = list(self.lines)
            if self.dropped:
                lines.append(f"... and {self.dropped} more problem(s)")
            raise DatasetValidationError(lines)


def _label(value: Any, names: tuple[str, ...]) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
        return names[value]
    return None


def check_coverage(
    problems: Problems,
    groups: Sequence[int],
    seen: Collection[str],
    num_groups: int | None,
    expected_row_ids: Callable[[int], Sequence[str]],
) -> int:
    """Check that the rows cover every expected row id of every group and nothing else.

    ``groups`` are the group ids seen (sorted), ``seen`` the row ids; ``num_groups`` is the manifest's
    count (None: from the largest group id). Returns the group count.
    """
    if num_groups is None:
        num_groups = (groups[-1] + 1) if groups else 0
    if groups and (groups[0] < 0 or groups[-1] >= num_groups):
        problems.add(f"group ids run {groups[0]}..{groups[-1]}, the manifest says {num_groups} groups")
    allowed: set[str] = set()
    for g in range(num_groups):
        expected = expected_row_ids(g)
        allowed.update(expected)
        missing = [rid for rid in expected if rid not in seen]
        if missing:
            shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
            problems.add(f"tier coverage: group {g} lacks {len(missing)} row(s): {shown}")
    extra = [rid for rid in seen if rid not in allowed]
    if extra:
        problems.add(f"tier coverage: {len(extra)} unexpected row id(s), e.g. {extra[:3]}")
    return num_groups


def check_tiers_and_keys(
    fail: Callable[[str, str, str], None],
    where: str,
    row: dict[str, Any],
    *,
    condition: str,
    control: str,
    group: int,
    n_visual_tiers: int,
    text_tiers: Sequence[int],
) -> tuple[int, int] | None:
    """Check a row's tiers against its condition and its row id and join keys against its tiers.

    Returns the (visual, text) tiers, or None when a tier is out of range (the key checks are then
    skipped).
    """
    dv, dt = row.get("visual_tier"), row.get("text_tier")
    has_image = condition in ("vision_only", "conflict")
    has_text = condition in ("text_only", "conflict")
    if has_image and dv not in range(n_visual_tiers):
        fail(where, "visual_tier", f"is {dv!r}, expected 0..{n_visual_tiers - 1}")
        return None
    if not has_image and dv != -1:
        fail(where, "visual_tier", f"is {dv!r}, expected -1 for a {condition} row")
    if has_text and dt not in text_tiers:
        fail(where, "text_tier", f"is {dt!r}, expected one of {list(text_tiers)}")
        return None
    if not has_text and dt != -1:
        fail(where, "text_tier", f"is {dt!r}, expected -1 for a {condition} row")
    row_id = row.get("row_id")
    if condition == "vision_only":
        expected = {
            "row_id": vision_key(group, dv, control),
            "vision_key": row_id,
            "text_key": "",
            "item_id": "",
        }
    elif condition == "text_only":
        expected = {
            "row_id": text_key(group, dt, control),
            "vision_key": "",
            "text_key": row_id,
            "item_id": "",
        }
    else:
        iid = item_id(group, dv, dt, control)
        expected = {
            "row_id": iid,
            "item_id": iid,
            "vision_key": vision_key(group, dv, control),
            "text_key": text_key(group, dt, control),
        }
    for name, want in expected.items():
        if row.get(name) != want:
            fail(where, name, f"is {row.get(name)!r}, expected {want!r}")
    return int(dv), int(dt)


class RowCheckerBase:
    """What every dataset's row checker shares: the row-id bookkeeping, the labels and their counts, the
    group id, and decoding each distinct image once."""

    def __init__(self, problems: Problems, check_images: bool) -> None:
        self.problems = problems
        self.check_images = check_images
        self.seen: dict[str, int] = {}
        self.condition_counts: Counter[str] = Counter()
        self.control_counts: Counter[str] = Counter()
        self.image_sizes: dict[bytes, tuple[int, int] | str] = {}
        self.rows = 0

    def _fail(self, where: str, field_name: str, message: str) -> None:
        self.problems.add(f"{where}: field '{field_name}' {message}")

    def _start_row(
        self, file: str, row: dict[str, Any], label_names: dict[str, tuple[str, ...]]
    ) -> tuple[str, dict[str, str], int] | None:
        """Count the row and check its id, labels and group: ``(where, labels, group)``, or None when the
        row is too broken for the checks that follow (each problem is reported)."""
        index = self.rows
        self.rows += 1
        row_id = row.get("row_id")
        where = f"{file} row {index} ({row_id})"
        if not isinstance(row_id, str) or not row_id:
            self._fail(where, "row_id", "is empty")
            return None
        if row_id in self.seen:
            self._fail(where, "row_id", f"repeats row {self.seen[row_id]}")
        self.seen[row_id] = index

        labels: dict[str, str] = {}
        for name, names in label_names.items():
            value = _label(row.get(name), names)
            if value is None:
                self._fail(where, name, f"has value {row.get(name)!r}, not an index of {list(names)}")
            else:
                labels[name] = value
        if len(labels) < len(label_names):
            return None
        self.condition_counts[labels["condition"]] += 1
        self.control_counts[labels["control"]] += 1
        group = row.get("group_id")
        if not isinstance(group, int) or group < 0:
            self._fail(where, "group_id", f"is {group!r}, expected a non-negative integer")
            return None
        return where, labels, group

    def _check_image_bytes(
        self, where: str, row: dict[str, Any], size: tuple[int, int], expected_by: str
    ) -> None:
        """The row's image is embedded, decodes (once per distinct image) and is ``size`` pixels;
        ``expected_by`` names where that size comes from in the message (``"tier 2 uses"``)."""
        image = row.get("image")
        data = image.get("bytes") if isinstance(image, dict) else None
        if not data:
            self._fail(where, "image", "has no embedded bytes")
            return
        if not self.check_images:
            return
        digest = hashlib.blake2b(data, digest_size=16).digest()
        if digest not in self.image_sizes:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error", Image.DecompressionBombWarning)
                    with Image.open(io.BytesIO(data)) as img:
                        img.load()
                        self.image_sizes[digest] = img.size
            except Exception as error:  # noqa: BLE001 - PIL raises many types for corrupt data
                self.image_sizes[digest] = f"{type(error).__name__}: {error}"
        result = self.image_sizes[digest]
        if isinstance(result, str):
            self._fail(where, "image", f"cannot be decoded ({result})")
        elif result != size:
            self._fail(where, "image", f"is {result[0]}x{result[1]}, {expected_by} {size[0]}x{size[1]}")

    def _check_modalities(
        self,
        where: str,
        row: dict[str, Any],
        unit: tuple[str, str, int],
        n_visual_tiers: int,
        *,
        text: Callable[[int], None],
        image: Callable[[int], None],
        image_columns: tuple[str, ...] = (),
    ) -> None:
        """Tiers and keys of a ``(condition, control, group)`` row, then ``text(dt)`` on a row with a text and
        ``image(dv)`` on one with an image; the other modality's fields must be empty (``image`` and
        ``image_columns``)."""
        condition, control, group = unit
        tiers = check_tiers_and_keys(
            self._fail,
            where,
            row,
            condition=condition,
            control=control,
            group=group,
            n_visual_tiers=n_visual_tiers,
            text_tiers=TEXT_TIERS,
        )
        if tiers is None:
            return
        dv, dt = tiers
        if condition in ("text_only", "conflict"):
            text(dt)
        elif row.get("text") or row.get("template_id"):
            self._fail(where, "text", "is not empty on a vision_only row")
        if condition in ("vision_only", "conflict"):
            image(dv)
        elif row.get("image") is not None or any(row.get(name) for name in image_columns):
            self._fail(where, "image", "is set on a text_only row")
