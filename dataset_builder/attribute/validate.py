"""Row and group checks of a built attribute folder (files, manifest, card and schema are checked by
:func:`modality_conflict.dataset_builder.validate.validate_dataset`, which dispatches here on the manifest's
dataset name).

Per row: labels over :data:`ANSWERS`, ``answer_choices`` equal to the attribute's values, Yv != Yt and both in
the row's set, the question equal to its template, keys and tiers, the text claiming the text answer
(:func:`claimed_value`) and talking about the right object, and for image rows the scene graph: it parses,
the target's value is ``vision_answer``, exactly one object fits the asked name (none for
``image_irrelevant``), the object counts and occlusion fit the tier, the image decodes to the set's size.
Per group: coverage of every expected row, one attribute and one answer pair, and balance of the answers.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from typing import Any

from modality_conflict.dataset_builder.attribute.constants import (
    ANSWERS,
    ATTRIBUTE_VALUES,
    ATTRIBUTES,
    IMAGE_HEIGHT,
    IMAGE_WIDTH,
    QUESTION_TEMPLATES,
    VISUAL_TIERS,
)
from modality_conflict.dataset_builder.attribute.plan import (
    group_attribute,
)
from modality_conflict.dataset_builder.attribute.scene import other_attribute
from modality_conflict.dataset_builder.attribute.texts import TEMPLATE_PREFIX, claimed_value
from modality_conflict.dataset_builder.constants import CONDITIONS, CONTROLS
from modality_conflict.dataset_builder.row_checks import Problems, RowCheckerBase, check_coverage
from modality_conflict.dataset_builder.specs import ATTRIBUTE

#: Visible share of an occluded target may sit a little outside the tier's band at the edges of the
#: float32 columns that store it.
_SHARE_SLACK = 1e-4


def _names(attribute: str, target: str) -> tuple[str, str] | None:
    """``(colour, other value)`` of a target name such as ``"purple metal object"`` / ``"red cylinder"``."""
    words = target.split()
    expected_len = 3 if attribute == "shape" else 2
    if len(words) != expected_len or (attribute == "shape" and words[2] != "object"):
        return None
    return words[0], words[1]


class AttributeRowChecker(RowCheckerBase):
    """Per-row and per-group invariants of the attribute set, accumulated while streaming."""

    def __init__(self, problems: Problems, check_images: bool) -> None:
        super().__init__(problems, check_images)
        self.group_answers: dict[int, set[tuple[str, str, str]]] = defaultdict(set)
        self.group_targets: dict[int, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        self.attribute_counts: Counter[str] = Counter()

    def check(self, file: str, row: dict[str, Any]) -> None:
        started = self._start_row(
            file,
            row,
            {
                "condition": CONDITIONS,
                "control": CONTROLS,
                "attribute": ATTRIBUTES,
                "vision_answer": ANSWERS,
                "text_answer": ANSWERS,
            },
        )
        if started is None:
            return
        where, labels, group = started
        condition, control, attribute, yv, yt = (labels[k] for k in labels)
        self.attribute_counts[attribute] += 1
        if attribute != group_attribute(group):
            self._fail(
                where, "attribute", f"is {attribute!r}, group {group} asks about {group_attribute(group)}"
            )
        choices = list(ATTRIBUTE_VALUES[attribute])
        if row.get("answer_choices") != choices:
            self._fail(where, "answer_choices", f"is {row.get('answer_choices')!r}, expected {choices}")
        for name, value in (("vision_answer", yv), ("text_answer", yt)):
            if value not in choices:
                self._fail(where, name, f"is {value!r}, not a {attribute} ({choices})")
        if yv == yt:
            self._fail(where, "text_answer", f"equals 'vision_answer' ({yv})")
        self.group_answers[group].add((attribute, yv, yt))

        target = row.get("target")
        parts = _names(attribute, target) if isinstance(target, str) else None
        expected_question = QUESTION_TEMPLATES[attribute].format(name=target)
        if parts is None:
            self._fail(where, "target", f"is {target!r}, not a name of a {attribute} question")
        elif row.get("question") != expected_question:
            self._fail(where, "question", f"is {row.get('question')!r}, expected {expected_question!r}")
        else:
            self.group_targets[group][control].add(target)

        self._check_modalities(
            where,
            row,
            (condition, control, group),
            len(VISUAL_TIERS),
            text=lambda dt: self._check_text(where, row, dt, control, attribute, yt),
            image=lambda dv: self._check_image(where, row, dv, control, attribute, yv, parts),
            image_columns=("scene",),
        )

    def _check_text(
        self, where: str, row: dict[str, Any], dt: int, control: str, attribute: str, yt: str
    ) -> None:
        text = row.get("text") or ""
        if not text:
            self._fail(where, "text", "is empty")
            return
        prefix = f"{TEMPLATE_PREFIX[dt]}-{attribute}-"
        if not str(row.get("template_id", "")).startswith(prefix):
            self._fail(
                where, "template_id", f"is {row.get('template_id')!r}, expected a '{prefix}*' template"
            )
        claimed = claimed_value(text, attribute, dt)
        if claimed != yt:
            self._fail(where, "text", f"claims {claimed!r}, not the text answer {yt!r}: {text!r}")
        target = str(row.get("target", ""))
        mentions = f"{target}" in text
        if control == "text_irrelevant" and mentions:
            self._fail(where, "text", f"talks about the asked object {target!r} in a text_irrelevant row")
        if control != "text_irrelevant" and not mentions:
            self._fail(where, "text", f"does not talk about the asked object {target!r}")

    def _check_image(
        self,
        where: str,
        row: dict[str, Any],
        dv: int,
        control: str,
        attribute: str,
        yv: str,
        parts: tuple[str, str] | None,
    ) -> None:
        tier = VISUAL_TIERS[dv]
        if (row.get("image_width"), row.get("image_height")) != (IMAGE_WIDTH, IMAGE_HEIGHT):
            self._fail(
                where,
                "image_width",
                f"and 'image_height' are {row.get('image_width')}x{row.get('image_height')}, "
                f"expected {IMAGE_WIDTH}x{IMAGE_HEIGHT}",
            )
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
            self._fail(
                where,
                "occlusion",
                f"is {occlusion!r}, tier {dv} hides {1 - tier.visible_max:.2f}-{1 - tier.visible_min:.2f}",
            )
        if tier.occluded and not (isinstance(row.get("num_occluders"), int) and row["num_occluders"] >= 1):
            self._fail(where, "num_occluders", f"is {row.get('num_occluders')!r}, tier {dv} is occluded")
        self._check_scene(where, row, control, attribute, yv, parts, tier.num_objects)
        self._check_image_bytes(where, row, (IMAGE_WIDTH, IMAGE_HEIGHT), "expected")

    def _check_scene(
        self,
        where: str,
        row: dict[str, Any],
        control: str,
        attribute: str,
        yv: str,
        parts: tuple[str, str] | None,
        num_objects: int,
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
            self._fail(
                where,
                "target",
                f"{row.get('target')!r} fits {matching} objects of the scene, expected {want}",
            )
        if control != "image_irrelevant" and (target.get("color"), target.get(naming)) != (color, other):
            self._fail(where, "target", f"{row.get('target')!r} does not name the scene's target")

    def counts(self) -> dict[str, dict[str, int]]:
        """Rows by condition, control and attribute name."""
        return {
            "condition": {c: self.condition_counts[c] for c in CONDITIONS},
            "control": {c: self.control_counts[c] for c in CONTROLS},
            "attribute": {a: self.attribute_counts[a] for a in ATTRIBUTES},
        }

    def finish(self, num_groups: int | None) -> int:
        """Group-level checks: coverage, consistent answers, balance. Returns the group count."""
        groups = sorted(self.group_answers)
        num_groups = check_coverage(
            self.problems, groups, self.seen, num_groups, ATTRIBUTE.layout.expected_row_ids
        )
        counts: dict[str, dict[str, Counter[str]]] = {
            a: {"vision_answer": Counter(), "text_answer": Counter()} for a in ATTRIBUTES
        }
        for g in groups:
            triples = self.group_answers[g]
            if len(triples) != 1:
                self.problems.add(
                    f"group {g}: rows disagree on (attribute, vision_answer, text_answer): {sorted(triples)}"
                )
            attribute, yv, yt = min(triples)
            counts[attribute]["vision_answer"][yv] += 1
            counts[attribute]["text_answer"][yt] += 1
            targets = self.group_targets[g]
            asked = targets.get("none", set()) | targets.get("text_irrelevant", set())
            if len(asked) > 1:
                self.problems.add(f"group {g}: rows disagree on the target: {sorted(asked)}")
            if asked & targets.get("image_irrelevant", set()):
                self.problems.add(
                    f"group {g}: the image_irrelevant rows ask about the target {sorted(asked)}"
                )
        # Within an attribute, answers cycle over blocks of len(values) groups: counts differ by one at most.
        for attribute in ATTRIBUTES:
            values = ATTRIBUTE_VALUES[attribute]
            for name, counter in counts[attribute].items():
                if not sum(counter.values()):
                    continue
                per_value = [counter.get(v, 0) for v in values]
                if max(per_value) - min(per_value) > 1:
                    shown = ", ".join(f"{v}: {n}" for v, n in zip(values, per_value, strict=True))
                    self.problems.add(
                        f"answer balance: {attribute} groups per '{name}' differ by more than one ({shown})"
                    )
        return num_groups


def make_row_checker(problems: Problems, check_images: bool) -> AttributeRowChecker:
    """The attribute set's row checker (used by ``validate_dataset`` for attribute folders)."""
    return AttributeRowChecker(problems, check_images)
