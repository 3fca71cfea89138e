"""The canonical datasets: the builds that the modality_conflict tasks read unless told otherwise.

One per dataset kind: the colour set (:data:`CANONICAL`, every colour task) and the attribute set
(:data:`CANONICAL_ATTRIBUTE`, every attribute task).

Each is fully determined by the builder's code, a preset and a seed, so the published Hub copy is a
convenience: any machine can rebuild it byte for byte and check it against its fingerprint, the sha256 of
the build's per-file hashes (:func:`~modality_conflict.dataset_builder.folder.dataset_fingerprint`).
The pins are declared in one data file, ``pins.json`` beside this module (:data:`PINS_PATH`), read here
and validated field by field; the tasks name which pin they read (``metadata.modality_conflict_dataset.
dataset``) and :func:`write_pin` rewrites the file atomically.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modality_conflict.dataset_builder.atomic import write_text_atomic
from modality_conflict.dataset_builder.errors import ModalityConflictError
from modality_conflict.dataset_builder.specs import DATASETS

#: The one file that declares the pin of each dataset kind.
PINS_PATH = Path(__file__).resolve().parent / "pins.json"
#: Presets of each dataset kind's builder.
KIND_PRESETS: dict[str, Mapping[str, int]] = {key: kind.presets for key, kind in DATASETS.items()}

#: Key of the task's ``metadata`` that marks a task as reading a pinned dataset of this project; its
#: ``dataset`` names the pin (a key of ``pins.json``).
METADATA_KEY = "modality_conflict_dataset"
#: Key of the task's ``metadata`` under which the data actually read is recorded (source, path, ...).
USED_KEY = "dataset_used"

_SHA = re.compile(r"[0-9a-f]{40}")
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_VERSION = re.compile(r"\d+(\.\d+)*")
_NAME = re.compile(r"[a-z0-9][a-z0-9-]*")
_FIELDS = ("name", "preset", "seed", "builder_version", "repo_id", "revision", "fingerprint", "software")


class PinError(ModalityConflictError, ValueError):
    """The pins file is missing, unreadable or holds a malformed pin."""


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset the builder can reproduce, and where its published copy lives.

    ``name``: Short name, used for the cache folder.
    ``builder_version``: Builder version the fingerprint was made with.
    ``repo_id``, ``revision``: The Hub copy; ``revision`` is a commit sha, or "unpublished".
    ``software``: Library versions the pinned build was made with.
    ``kind``: The dataset kind the builder makes (``color`` or ``attribute``).
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


def _check(where: str, field: str, value: Any, ok: bool, expected: str) -> Any:
    if not ok:
        raise PinError(f"{where}: {field} {value!r} is not {expected}")
    return value


def _parse_pin(kind: str, entry: Any, where: str) -> DatasetSpec:
    here = f"{where}: pin {kind!r}"
    if not isinstance(entry, dict):
        raise PinError(f"{here} is not a JSON object")
    missing = [field for field in _FIELDS if field not in entry]
    extra = sorted(set(entry) - set(_FIELDS))
    if missing or extra:
        raise PinError(f"{here} lacks {missing} or has unknown fields {extra}")
    name, preset, seed = entry["name"], entry["preset"], entry["seed"]
    _check(here, "name", name, isinstance(name, str) and bool(_NAME.fullmatch(name)), "a lower-case name")
    presets = KIND_PRESETS[kind]
    _check(here, "preset", preset, isinstance(preset, str) and preset in presets, f"one of {sorted(presets)}")
    ok_seed = isinstance(seed, int) and not isinstance(seed, bool) and 0 <= seed < 2**32
    _check(here, "seed", seed, ok_seed, "an integer in [0, 2**32)")
    version = entry["builder_version"]
    ok_version = isinstance(version, str) and bool(_VERSION.fullmatch(version))
    _check(here, "builder_version", version, ok_version, "a version like 1.0.1")
    repo_id, revision, fingerprint = entry["repo_id"], entry["revision"], entry["fingerprint"]
    ok_repo = isinstance(repo_id, str) and bool(_REPO_ID.fullmatch(repo_id))
    _check(here, "repo_id", repo_id, ok_repo, "of the form USER/NAME")
    ok_revision = isinstance(revision, str) and (revision == "unpublished" or bool(_SHA.fullmatch(revision)))
    _check(here, "revision", revision, ok_revision, 'a 40-character commit sha or "unpublished"')
    ok_fingerprint = isinstance(fingerprint, str) and bool(_FINGERPRINT.fullmatch(fingerprint))
    _check(here, "fingerprint", fingerprint, ok_fingerprint, "a 64-character sha256")
    software = entry["software"]
    ok_software = isinstance(software, dict) and all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in software.items()
    )
    _check(here, "software", software, ok_software, "an object of library names to version strings")
    return DatasetSpec(
        name=name,
        preset=preset,
        groups=presets[preset],
        seed=seed,
        builder_version=version,
        fingerprint=fingerprint,
        repo_id=repo_id,
        revision=revision,
        software=tuple(sorted(software.items())),
        kind=kind,
    )


def _read_pins_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PinError(f"{path}: the dataset pins file is missing") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PinError(f"{path}: unreadable dataset pins file: {error}") from None
    if not isinstance(data, dict) or set(data) != set(KIND_PRESETS):
        shown = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise PinError(f"{path}: expected one pin for each of {sorted(KIND_PRESETS)}, found {shown}")
    return data


def read_pins(path: Path | None = None) -> dict[str, DatasetSpec]:
    """The pin of each dataset kind, read from ``pins.json`` (or ``path``) and validated.

    Raises ``PinError`` when the file is missing, not JSON, or any field of any pin is malformed (one line
        naming it).
    """
    path = Path(path) if path is not None else PINS_PATH
    data = _read_pins_json(path)
    specs = {kind: _parse_pin(kind, data[kind], str(path)) for kind in KIND_PRESETS}
    fingerprints = [spec.fingerprint for spec in specs.values()]
    if len(set(fingerprints)) != len(fingerprints):
        raise PinError(f"{path}: two dataset kinds pin the same fingerprint")
    return specs


#: The canonical dataset of each kind.
CANONICAL_BY_KIND: dict[str, DatasetSpec] = read_pins()
CANONICAL = CANONICAL_BY_KIND["color"]
CANONICAL_ATTRIBUTE = CANONICAL_BY_KIND["attribute"]

#: Every dataset a task may pin, by fingerprint.
KNOWN_DATASETS: dict[str, DatasetSpec] = {spec.fingerprint: spec for spec in CANONICAL_BY_KIND.values()}


def spec_for_fingerprint(fingerprint: str) -> DatasetSpec | None:
    """The known dataset with this fingerprint, or None."""
    return KNOWN_DATASETS.get(fingerprint)


def current_builder_version(kind: str) -> str:
    """The version of this package's builder of dataset ``kind``."""
    return DATASETS[kind].builder_version


def builder_matches_pin(spec: DatasetSpec = CANONICAL) -> bool:
    """Whether this builder is the version the pin was made with."""
    return spec.builder_version == current_builder_version(spec.kind)


def spec_for_kind(kind: str) -> DatasetSpec:
    """The pin of dataset ``kind`` (``color`` or ``attribute``).

    Raises ``PinError`` for an unknown kind.
    """
    if kind not in CANONICAL_BY_KIND:
        raise PinError(f"unknown dataset {kind!r}; the pins file declares {sorted(CANONICAL_BY_KIND)}")
    return CANONICAL_BY_KIND[kind]


def write_pin(
    *,
    repo_id: str | None = None,
    revision: str | None = None,
    fingerprint: str | None = None,
    software: dict[str, str] | None = None,
    pins: Path | None = None,
    kind: str = "color",
) -> list[Path]:
    """Change the pin of dataset ``kind`` in the pins file (run in a source checkout); written atomically.

    ``repo_id``: New Hub repository ``USER/NAME``; default unchanged.
    ``revision``: New Hub commit (40 hex digits); default unchanged.
    ``fingerprint``: New content fingerprint (64 hex digits); default unchanged. A new fingerprint also
        records this package's builder version of ``kind`` as the pinned version.
    ``software``: Library versions of the new build (from its manifest); default unchanged.
    ``pins``: The pins file to rewrite (default: :data:`PINS_PATH`).
    ``kind``: Whose pin changes: the colour set's (default) or the attribute set's.
    Returns the file rewritten.
    Raises ``ValueError`` on a malformed value (:class:`PinError` for a malformed pins file).
    """
    if revision is not None and not _SHA.fullmatch(revision):
        raise ValueError(f"revision {revision!r} is not a 40-character commit sha")
    if repo_id is not None and not _REPO_ID.fullmatch(repo_id):
        raise ValueError(f"repo id {repo_id!r} is not of the form USER/NAME")
    if fingerprint is not None and not _FINGERPRINT.fullmatch(fingerprint):
        raise ValueError(f"fingerprint {fingerprint!r} is not a 64-character sha256")
    if kind not in KIND_PRESETS:
        raise ValueError(f"unknown dataset kind {kind!r}; expected one of {sorted(KIND_PRESETS)}")
    path = Path(pins) if pins is not None else PINS_PATH
    data = _read_pins_json(path)
    entry = dict(data[kind])
    if repo_id is not None:
        entry["repo_id"] = repo_id
    if revision is not None:
        entry["revision"] = revision
    if fingerprint is not None:
        entry["fingerprint"] = fingerprint
        entry["builder_version"] = current_builder_version(kind)
    if software is not None:
        entry["software"] = dict(sorted(software.items()))
    data[kind] = entry
    _parse_pin(kind, entry, str(path))  # never write a pin the reader would refuse
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")
    return [path]
