"""Row and group checks of a built folder of either set, streamed row by row (files, manifest, card and
schema are checked by :func:`modality_conflict.dataset_builder.validate.validate_dataset`).

Per row: the labels, row id and group, Yv != Yt and both in the row's ``answer_choices``, the question equal
to its template, tiers and join keys, the text claiming the text answer and talking about the right subject,
and each image's layout columns against its tier (for the attribute set also the scene graph: it parses,
the target's value is ``vision_answer``, exactly one object fits the asked name, none for
``image_irrelevant``); each distinct image is decoded once. Per group: coverage of every expected row, one
attribute, subject and answer pair, and balance of the answers.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Sequence
from typing import Any

from PIL import Image

from modality_conflict.dataset_builder import attribute_constants as scene_set
from modality_conflict.dataset_builder import constants as color_set
from modality_conflict.dataset_builder.constants import CONDITIONS, CONTROLS, TEXT_TIERS
from modality_conflict.dataset_builder.errors import DatasetValidationError
from modality_conflict.dataset_builder.plan import group_attribute
from modality_conflict.dataset_builder.rows import row_keys
from modality_conflict.dataset_builder.scene import other_attribute
from modality_conflict.dataset_builder.specs import COLOR, DatasetKind
from modality_conflict.dataset_builder.texts import TEMPLATE_PREFIX

#: Visible share of an occluded target may sit a little outside the tier's band at the edges of the
#: float32 columns that store it.
_SHARE_SLACK = 1e-4


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


class RowChecker:
    """Per-row and per-group invariants of a folder of ``kind``, accumulated while streaming."""

    def __init__(self, kind: DatasetKind, problems: Problems, check_images: bool) -> None:
        self.kind = kind
        self.problems = problems
        self.check_images = check_images
        self.seen: dict[str, int] = {}
        self.condition_counts: Counter[str] = Counter()
        self.control_counts: Counter[str] = Counter()
        self.attribute_counts: Counter[str] = Counter()
        self.image_sizes: dict[bytes, tuple[int, int] | str] = {}
        self.rows = 0
        self.group_answers: dict[int, set[tuple[str, str, str]]] = defaultdict(set)
        self.group_subjects: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        self._subject_column = kind.subject_columns[-1][0]  # "shape" or "target"
        self._check_image = self._check_shape_image if kind.key == COLOR.key else self._check_scene_image

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

    def _check_tiers_and_keys(
        self, where: str, row: dict[str, Any], condition: str, control: str, group: int
    ) -> tuple[int, int] | None:
        """Check a row's tiers against its condition and its row id and join keys against its tiers.

        Returns the (visual, text) tiers, or None when a tier is out of range (the key checks are then
        skipped).
        """
        n_visual_tiers = len(self.kind.layout.visual_tiers)
        dv, dt = row.get("visual_tier"), row.get("text_tier")
        has_image = condition in ("vision_only", "conflict")
        has_text = condition in ("text_only", "conflict")
        if has_image and dv not in range(n_visual_tiers):
            self._fail(where, "visual_tier", f"is {dv!r}, expected 0..{n_visual_tiers - 1}")
            return None
        if not has_image and dv != -1:
            self._fail(where, "visual_tier", f"is {dv!r}, expected -1 for a {condition} row")
        if has_text and dt not in TEXT_TIERS:
            self._fail(where, "text_tier", f"is {dt!r}, expected one of {list(TEXT_TIERS)}")
            return None
        if not has_text and dt != -1:
            self._fail(where, "text_tier", f"is {dt!r}, expected -1 for a {condition} row")
        for name, want in row_keys(group, dv, dt, control, condition).items():
            if row.get(name) != want:
                self._fail(where, name, f"is {row.get(name)!r}, expected {want!r}")
        return int(dv), int(dt)

    def _check_modalities(
        self, where: str, row: dict[str, Any], labels: dict[str, str], group: int, attribute: str
    ) -> None:
        """Tiers and keys of a row, then its text on a row with a text and its image on one with an image;
        the other modality's fields must be empty (the image and the kind's string layout columns)."""
        condition, control = labels["condition"], labels["control"]
        tiers = self._check_tiers_and_keys(where, row, condition, control, group)
        if tiers is None:
            return
        dv, dt = tiers
        if condition in ("text_only", "conflict"):
            self._check_text(where, row, dt, control, attribute, labels["text_answer"])
        elif row.get("text") or row.get("template_id"):
            self._fail(where, "text", "is not empty on a vision_only row")
        if condition in ("vision_only", "conflict"):
            self._check_image(where, row, dv, control, attribute, labels["vision_answer"])
        elif row.get("image") is not None or any(
            row.get(name) for name, kind in self.kind.layout_columns if kind == "string"
        ):
            self._fail(where, "image", "is set on a text_only row")

    def check(self, file: str, row: dict[str, Any]) -> None:
        """Check one row (``file`` names where it was read)."""
        started = self._start_row(file, row, self.kind.label_names)
        if started is None:
            return
        where, labels, group = started
        control = labels["control"]
        yv, yt = labels["vision_answer"], labels["text_answer"]
        attribute = labels.get("attribute", self.kind.attributes[0])
        if "attribute" in labels:
            self.attribute_counts[attribute] += 1
            if attribute != group_attribute(group):
                asked = group_attribute(group)
                self._fail(where, "attribute", f"is {attribute!r}, group {group} asks about {asked}")
        choices = list(self.kind.answer_sets[attribute])
        if row.get("answer_choices") != choices:
            self._fail(where, "answer_choices", f"is {row.get('answer_choices')!r}, expected {choices}")
        for name, value in (("vision_answer", yv), ("text_answer", yt)):
            if value not in choices:
                self._fail(where, name, f"is {value!r}, not a {attribute} ({choices})")
        if yv == yt:
            self._fail(where, "text_answer", f"equals 'vision_answer' ({yv})")
        self.group_answers[group].add((attribute, yv, yt))

        subject = row.get(self._subject_column)
        question = _expected_question(attribute, subject)
        if question is None:
            what = (
                f"not one of {list(color_set.SHAPES)}"
                if attribute == "color"
                else f"not a name of a {attribute} question"
            )
            self._fail(where, self._subject_column, f"is {subject!r}, {what}")
        elif row.get("question") != question:
            self._fail(where, "question", f"is {row.get('question')!r}, expected {question!r}")
        else:
            self.group_subjects[group][control].add(subject)

        self._check_modalities(where, row, labels, group, attribute)

    def _check_text(
        self, where: str, row: dict[str, Any], dt: int, control: str, attribute: str, yt: str
    ) -> None:
        text = row.get("text") or ""
        if not text:
            self._fail(where, "text", "is empty")
            return
        prefix = f"{TEMPLATE_PREFIX[dt]}-" + (f"{attribute}-" if len(self.kind.attributes) > 1 else "")
        if not str(row.get("template_id", "")).startswith(prefix):
            self._fail(
                where, "template_id", f"is {row.get('template_id')!r}, expected a '{prefix}*' template"
            )
        # The text must claim the text answer: by name (tiers 0-1) or through an object known to have it.
        claimed = self.kind.texts.claimed_value(text, attribute, dt)
        if claimed != yt:
            self._fail(where, "text", f"claims {claimed!r}, not the text answer {yt!r}: {text!r}")
        if dt == 1 and not any(f" {b}" in text for b in self.kind.texts.intermediaries):
            self._fail(where, "text", f"names no intermediary object: {text!r}")
        subject = str(row.get(self._subject_column, ""))
        mentions = bool(re.search(rf"\b{re.escape(subject)}\b", text))
        what = "shape" if attribute == "color" else "object"
        if control == "text_irrelevant" and mentions:
            self._fail(where, "text", f"talks about the asked {what} {subject!r} in a text_irrelevant row")
        if control != "text_irrelevant" and not mentions:
            self._fail(where, "text", f"does not talk about the asked {what} {subject!r}")

    def _check_shape_image(
        self, where: str, row: dict[str, Any], dv: int, control: str, attribute: str, yv: str
    ) -> None:
        tier = color_set.VISUAL_TIERS[dv]
        size = (tier.width, tier.height)
        self._check_size(where, row, size, f"tier {dv} uses")
        if row.get("num_distractors") != tier.num_distractors:
            self._fail(
                where,
                "num_distractors",
                f"is {row.get('num_distractors')}, tier {dv} has {tier.num_distractors}",
            )
        self._check_image_bytes(where, row, size, f"tier {dv} uses")

    def _check_scene_image(
        self, where: str, row: dict[str, Any], dv: int, control: str, attribute: str, yv: str
    ) -> None:
        tier = scene_set.VISUAL_TIERS[dv]
        size = (scene_set.IMAGE_WIDTH, scene_set.IMAGE_HEIGHT)
        self._check_size(where, row, size, "expected")
        for name, want in (
            ("num_objects", tier.num_objects),
            ("num_distractors", tier.num_objects - 1),
            ("target_scale", tier.target_size),
        ):
            if row.get(name) != want:
                self._fail(where, name, f"is {row.get(name)!r}, tier {dv} has {want!r}")
        occlusion = row.get("occlusion")
        if not isinstance(occlusion, float) or not (
            1.0 - tier.visible_max - _SHARE_SLACK <= occlusion <= 1.0 - tier.visible_min + _SHARE_SLACK
        ):
            hides = f"{1 - tier.visible_max:.2f}-{1 - tier.visible_min:.2f}"
            self._fail(where, "occlusion", f"is {occlusion!r}, tier {dv} hides {hides}")
        if tier.occluded and not (isinstance(row.get("num_occluders"), int) and row["num_occluders"] >= 1):
            self._fail(where, "num_occluders", f"is {row.get('num_occluders')!r}, tier {dv} is occluded")
        self._check_scene(where, row, control, attribute, yv, tier.num_objects)
        self._check_image_bytes(where, row, size, "expected")

    def _check_size(self, where: str, row: dict[str, Any], size: tuple[int, int], expected_by: str) -> None:
        if (row.get("image_width"), row.get("image_height")) != size:
            found = f"{row.get('image_width')}x{row.get('image_height')}"
            self._fail(
                where, "image_width", f"and 'image_height' are {found}, {expected_by} {size[0]}x{size[1]}"
            )

    def _check_scene(
        self, where: str, row: dict[str, Any], control: str, attribute: str, yv: str, num_objects: int
    ) -> None:
        try:
            scene = json.loads(row.get("scene") or "")
            objects = scene["objects"]
            target = objects[int(scene["target"])]
            fields = [(o["color"], o["shape"], o["material"]) for o in objects]
        except (ValueError, TypeError, KeyError, IndexError) as error:
            self._fail(where, "scene", f"is not a scene graph ({type(error).__name__}: {error})")
            return
        if len(objects) != num_objects:
            self._fail(where, "scene", f"has {len(objects)} objects, the tier has {num_objects}")
        if target.get(attribute) != yv:
            self._fail(where, "scene", f"target's {attribute} is {target.get(attribute)!r}, not {yv!r}")
        name = row.get("target")
        parts = _name_parts(attribute, name)
        if parts is None:
            return
        color, other = parts
        naming = other_attribute(attribute)
        matching = sum(
            1
            for c, shape, material in fields
            if c == color and (shape if naming == "shape" else material) == other
        )
        want = 0 if control == "image_irrelevant" else 1
        if matching != want:
            self._fail(where, "target", f"{name!r} fits {matching} objects of the scene, expected {want}")
        if control != "image_irrelevant" and (target.get("color"), target.get(naming)) != (color, other):
            self._fail(where, "target", f"{name!r} does not name the scene's target")

    def counts(self) -> dict[str, dict[str, int]]:
        """Rows by condition and control name (and by attribute in a set with several)."""
        counts = {
            "condition": {c: self.condition_counts[c] for c in CONDITIONS},
            "control": {c: self.control_counts[c] for c in CONTROLS},
        }
        if len(self.kind.attributes) > 1:
            counts["attribute"] = {a: self.attribute_counts[a] for a in self.kind.attributes}
        return counts

    def finish(self, num_groups: int | None) -> int:
        """Group-level checks: coverage, consistent answers and subjects, balance. Returns the group count."""
        groups = sorted(self.group_answers)
        num_groups = check_coverage(
            self.problems, groups, self.seen, num_groups, self.kind.layout.expected_row_ids
        )
        balance: dict[str, dict[str, Counter[str]]] = {
            a: {"vision_answer": Counter(), "text_answer": Counter()} for a in self.kind.attributes
        }
        subject = "target shape" if self._subject_column == "shape" else "target"
        for g in groups:
            answers = self.group_answers[g]
            if len(answers) != 1:
                self.problems.add(
                    f"group {g}: rows disagree on (attribute, vision_answer, text_answer): {sorted(answers)}"
                )
            attribute, yv, yt = min(answers)
            balance[attribute]["vision_answer"][yv] += 1
            balance[attribute]["text_answer"][yt] += 1
            subjects = self.group_subjects[g]
            asked = subjects.get("none", set()) | subjects.get("text_irrelevant", set())
            if len(asked) > 1:
                self.problems.add(f"group {g}: rows disagree on the {subject}: {sorted(asked)}")
            if asked & subjects.get("image_irrelevant", set()):
                self.problems.add(
                    f"group {g}: the image_irrelevant rows ask about the {subject} {sorted(asked)}"
                )
        # Answers cycle over blocks of len(values) groups of one attribute: counts differ by one at most.
        for attribute, values in self.kind.answer_sets.items():
            for name, counter in balance[attribute].items():
                if not sum(counter.values()):
                    continue
                per_value = [counter.get(v, 0) for v in values]
                if max(per_value) - min(per_value) > 1:
                    shown = ", ".join(f"{v}: {n}" for v, n in zip(values, per_value, strict=True))
                    what = (
                        f"groups per '{name}' colour"
                        if attribute == "color"
                        else f"{attribute} groups per '{name}'"
                    )
                    self.problems.add(f"answer balance: {what} differ by more than one ({shown})")
        return num_groups


def _name_parts(attribute: str, name: Any) -> tuple[str, str] | None:
    """``(colour, other value)`` of a target name such as ``"purple metal object"`` / ``"red cylinder"``."""
    words = name.split() if isinstance(name, str) else []
    expected_len = 3 if attribute == "shape" else 2
    if len(words) != expected_len or (attribute == "shape" and words[2] != "object"):
        return None
    return words[0], words[1]


def _expected_question(attribute: str, subject: Any) -> str | None:
    """The question a row asking about ``subject`` must have, or None when ``subject`` is not one."""
    if attribute == "color":
        return color_set.QUESTION_TEMPLATE.format(shape=subject) if subject in color_set.SHAPES else None
    if _name_parts(attribute, subject) is None:
        return None
    return scene_set.QUESTION_TEMPLATES[attribute].format(name=subject)
