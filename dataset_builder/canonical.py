"""The canonical datasets: the builds that the modality_conflict tasks read unless told otherwise.

One per dataset kind: the colour set (:data:`CANONICAL`, every colour task) and the attribute set
(:data:`CANONICAL_ATTRIBUTE`, every attribute task).

It is fully determined by the builder's code, a preset and a seed, so the published Hub copy is a
convenience: any machine can rebuild it byte for byte and check it against :data:`FINGERPRINT`, the
sha256 of the build's per-file hashes (:func:`~modality_conflict.dataset_builder.folder.dataset_fingerprint`).
The task YAMLs carry a copy of the pin (``dataset_path``, ``dataset_kwargs.revision`` and
``metadata.modality_conflict_dataset.fingerprint``); :func:`write_pin` updates every copy at once and a
test keeps them equal.
"""

from __future__ import annotations

import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

from modality_conflict.dataset_builder.atomic import write_text_atomic
from modality_conflict.dataset_builder.attribute.constants import PRESETS as ATTRIBUTE_PRESETS
from modality_conflict.dataset_builder.constants import BUILDER_VERSION, PRESETS

PRESET = "paper"
SEED = 0
#: The builder version the pin was made with; a change of the builder that changes bytes must re-pin.
PINNED_BUILDER_VERSION = "1.0.1"
HUB_REPO_ID = "modality-conflict/color-conflict"
#: Commit of the Hub copy, or "unpublished" while there is none (then the Hub is not asked).
HUB_REVISION = "unpublished"
FINGERPRINT = "bfcfece7300082857bde21b988e3df415d35976444dd7110bd089cfb622a1c2b"
#: Library versions the pinned build was made with (the parquet bytes depend on pyarrow's writer).
PINNED_SOFTWARE = {"numpy": "2.4.6", "pillow": "13.0.0", "pyarrow": "26.0.1"}

#: Key of the task's ``metadata`` that marks a task as reading a pinned dataset of this project.
METADATA_KEY = "modality_conflict_dataset"
#: Key of the task's ``metadata`` under which the data actually read is recorded (source, path, ...).
USED_KEY = "dataset_used"

_SHA = re.compile(r"[0-9a-f]{40}")
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
TEMPLATE_NAME = "_default_template_yaml"

# The attribute set's pin. Its paper preset renders 2,400 ray-cast scenes (about 7 minutes on 2 cores),
# too long for a first run that builds on demand, so the tasks pin the medium preset (48 groups).
ATTRIBUTE_PRESET = "medium"
ATTRIBUTE_SEED = 0
ATTRIBUTE_PINNED_BUILDER_VERSION = "1.0.0"
ATTRIBUTE_HUB_REPO_ID = "modality-conflict/attribute-conflict"
ATTRIBUTE_HUB_REVISION = "unpublished"
ATTRIBUTE_FINGERPRINT = "5d8370c72875ae0e3b127dfc1c4a7d74feb9af66f157a3245e3d3b4fe1822886"
ATTRIBUTE_TEMPLATE_NAME = "_attribute_template_yaml"

#: Module constants and task template of each dataset kind's pin (what :func:`write_pin` rewrites).
PIN_PREFIXES = {"color": "", "attribute": "ATTRIBUTE_"}
PIN_TEMPLATES = {"color": TEMPLATE_NAME, "attribute": ATTRIBUTE_TEMPLATE_NAME}


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset the builder can reproduce, and where its published copy lives.

    Attributes
    ----------
    name
        Short name, used for the cache folder.
    preset
        Preset name (for messages).
    groups, seed
        Build arguments.
    builder_version
        Builder version the fingerprint was made with.
    fingerprint
        Content fingerprint of the build.
    repo_id, revision
        The Hub copy; ``revision`` is a commit sha, or "unpublished".
    software
        Library versions the pinned build was made with.
    kind
        The dataset kind the builder makes (``color`` or ``attribute``).
    """

    name: str
    preset: str
    groups: int
    seed: int
    builder_version: str
    fingerprint: str
    repo_id: str
    revision: str
    software: tuple[tuple[str, str], ...] = ()
    kind: str = "color"

    @property
    def published(self) -> bool:
        """Whether a Hub commit is pinned."""
        return bool(_SHA.fullmatch(self.revision))

    @property
    def cache_name(self) -> str:
        """Folder name of this build in the cache (a new pin never reuses an old folder)."""
        return f"{self.name}-{self.fingerprint[:16]}"

    def describe(self) -> str:
        """E.g. ``color-conflict, paper preset: 400 groups, seed 0, builder 1.0.1``."""
        return (
            f"{self.name}, {self.preset} preset: {self.groups} groups, seed {self.seed}, "
            f"builder {self.builder_version}"
        )


CANONICAL = DatasetSpec(
    name="color-conflict",
    preset=PRESET,
    groups=PRESETS[PRESET],
    seed=SEED,
    builder_version=PINNED_BUILDER_VERSION,
    fingerprint=FINGERPRINT,
    repo_id=HUB_REPO_ID,
    revision=HUB_REVISION,
    software=tuple(sorted(PINNED_SOFTWARE.items())),
)

CANONICAL_ATTRIBUTE = DatasetSpec(
    name="attribute-conflict",
    preset=ATTRIBUTE_PRESET,
    groups=ATTRIBUTE_PRESETS[ATTRIBUTE_PRESET],
    seed=ATTRIBUTE_SEED,
    builder_version=ATTRIBUTE_PINNED_BUILDER_VERSION,
    fingerprint=ATTRIBUTE_FINGERPRINT,
    repo_id=ATTRIBUTE_HUB_REPO_ID,
    revision=ATTRIBUTE_HUB_REVISION,
    software=tuple(sorted(PINNED_SOFTWARE.items())),
    kind="attribute",
)

#: The canonical dataset of each kind.
CANONICAL_BY_KIND: dict[str, DatasetSpec] = {"color": CANONICAL, "attribute": CANONICAL_ATTRIBUTE}

#: Every dataset a task may pin, by fingerprint.
KNOWN_DATASETS: dict[str, DatasetSpec] = {spec.fingerprint: spec for spec in CANONICAL_BY_KIND.values()}


def spec_for_fingerprint(fingerprint: str) -> DatasetSpec | None:
    """The known dataset with this fingerprint, or None."""
    return KNOWN_DATASETS.get(fingerprint)


def current_builder_version(kind: str) -> str:
    """The version of this package's builder of dataset ``kind``."""
    if kind == "attribute":
        from modality_conflict.dataset_builder.attribute.constants import (
            BUILDER_VERSION as ATTRIBUTE_BUILDER_VERSION,
        )

        return ATTRIBUTE_BUILDER_VERSION
    return BUILDER_VERSION


def builder_matches_pin(spec: DatasetSpec = CANONICAL) -> bool:
    """Whether this builder is the version the pin was made with."""
    return spec.builder_version == current_builder_version(spec.kind)


def task_template_path(kind: str = "color") -> Path:
    """The task folder's template of dataset ``kind`` (``_default_template_yaml`` for the colour set),
    which carries a copy of the pin.

    Located without importing the task package (this package comes first in the import order).
    """
    spec = importlib.util.find_spec("modality_conflict.mc_tasks")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the modality_conflict.mc_tasks package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "modality_conflict" / PIN_TEMPLATES[kind]


def pin_files(kind: str = "color") -> tuple[Path, Path]:
    """The files :func:`write_pin` rewrites by default: this module and the task template of ``kind``."""
    return Path(__file__), task_template_path(kind)


def _replace_line(lines: list[str], pattern: str, new: str, where: Path) -> None:
    matches = [i for i, line in enumerate(lines) if re.match(pattern, line)]
    if len(matches) != 1:
        raise ValueError(f"{where}: expected one line matching {pattern!r}, found {len(matches)}")
    lines[matches[0]] = new


def _rewrite(path: Path, edits: list[tuple[str, str]]) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    for pattern, new in edits:
        _replace_line(lines, pattern, new, path)
    write_text_atomic(path, "\n".join(lines) + "\n")


def write_pin(
    *,
    repo_id: str | None = None,
    revision: str | None = None,
    fingerprint: str | None = None,
    software: dict[str, str] | None = None,
    module: Path | None = None,
    template: Path | None = None,
    kind: str = "color",
) -> list[Path]:
    """Change the pin in this module's source and in the task template (run in a source checkout).

    Parameters
    ----------
    repo_id
        New Hub repository ``USER/NAME``; default unchanged.
    revision
        New Hub commit (40 hex digits); default unchanged.
    fingerprint
        New content fingerprint (64 hex digits); default unchanged. A new fingerprint also records
        :data:`~modality_conflict.dataset_builder.constants.BUILDER_VERSION` as the pinned version.
    software
        Library versions of the new build (from its manifest); default unchanged.
    module, template
        Files to rewrite (default: :func:`pin_files`).
    kind
        Whose pin changes: the colour set's (default) or the attribute set's.

    Returns
    -------
    list of Path
        The files rewritten.

    Raises
    ------
    ValueError
        On a malformed value, or a file without exactly one line to rewrite.
    """
    if revision is not None and not _SHA.fullmatch(revision):
        raise ValueError(f"revision {revision!r} is not a 40-character commit sha")
    if repo_id is not None and not _REPO_ID.fullmatch(repo_id):
        raise ValueError(f"repo id {repo_id!r} is not of the form USER/NAME")
    if fingerprint is not None and not _FINGERPRINT.fullmatch(fingerprint):
        raise ValueError(f"fingerprint {fingerprint!r} is not a 64-character sha256")
    if kind not in PIN_PREFIXES:
        raise ValueError(f"unknown dataset kind {kind!r}; expected one of {sorted(PIN_PREFIXES)}")
    prefix = PIN_PREFIXES[kind]
    default_module, default_template = pin_files(kind)
    module = Path(module) if module is not None else default_module
    template = Path(template) if template is not None else default_template
    module_edits: list[tuple[str, str]] = []
    template_edits: list[tuple[str, str]] = []
    if repo_id is not None:
        module_edits.append((rf"{prefix}HUB_REPO_ID = ", f'{prefix}HUB_REPO_ID = "{repo_id}"'))
        template_edits.append((r"dataset_path:", f"dataset_path: {repo_id}"))
    if revision is not None:
        module_edits.append((rf"{prefix}HUB_REVISION = ", f'{prefix}HUB_REVISION = "{revision}"'))
        template_edits.append((r"  revision:", f"  revision: {revision}"))
    if fingerprint is not None:
        module_edits.append((rf"{prefix}FINGERPRINT = ", f'{prefix}FINGERPRINT = "{fingerprint}"'))
        version = current_builder_version(kind)
        module_edits.append(
            (rf"{prefix}PINNED_BUILDER_VERSION = ", f'{prefix}PINNED_BUILDER_VERSION = "{version}"')
        )
        template_edits.append((r"    fingerprint:", f"    fingerprint: {fingerprint}"))
    if software is not None:
        shown = ", ".join(f'"{k}": "{v}"' for k, v in sorted(software.items()))
        module_edits.append((r"PINNED_SOFTWARE = ", f"PINNED_SOFTWARE = {{{shown}}}"))
    written = []
    for path, edits in ((module, module_edits), (template, template_edits)):
        if edits:
            _rewrite(path, edits)
            written.append(path)
    return written
