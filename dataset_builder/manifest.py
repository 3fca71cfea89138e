"""The build manifest's fields and their types, checked whenever a manifest is trusted for anything.

``manifest.json`` is untrusted input like every other file of a folder: a value of the wrong type (``groups:
"twelve"``, a size that is a string, a hash that is not hex) must be named, not crash a reader later or be
taken at face value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

MANIFEST_NAME = "manifest.json"
_SHA256 = re.compile(r"[0-9a-f]{64}")


def _is_int(value: Any, minimum: int = 0) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _count(minimum: int) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if _is_int(value, minimum) else f"an integer >= {minimum}"

    return check


def _text(value: Any) -> str | None:
    return None if isinstance(value, str) and value else "a non-empty string"


def _int_list(value: Any) -> str | None:
    ok = isinstance(value, list) and all(_is_int(item) for item in value)
    return None if ok else "a list of integers >= 0"


def _counts(value: Any) -> str | None:
    ok = isinstance(value, dict) and all(
        isinstance(table, dict) and all(isinstance(k, str) and _is_int(n) for k, n in table.items())
        for table in value.values()
    )
    return None if ok else "a table of tables of counts (integers >= 0)"


def _software(value: Any) -> str | None:
    ok = isinstance(value, dict) and all(isinstance(v, str) for v in value.values())
    return None if ok else "a table of version strings"


#: Each field of a manifest, and the check of its value (None when it is right, else what it must be).
_FIELDS: dict[str, Callable[[Any], str | None]] = {
    "dataset": _text,
    "builder_version": _text,
    "split": _text,
    "num_rows": _count(0),
    "rows_per_group": _count(1),
    "counts": _counts,
    "software": _software,
}
_ARGUMENTS = {"groups": _count(1), "seed": _count(0)}
_LAYOUT = {"control_visual_tiers": _int_list, "groups_per_shard": _int_list, "images_per_group": _count(0)}


def _table_problems(value: Any, where: str, fields: Mapping[str, Callable[[Any], str | None]]) -> list[str]:
    if not isinstance(value, dict):
        return [f"{MANIFEST_NAME}: '{where}' is {_kind(value)}, expected a table"]
    problems = [f"{MANIFEST_NAME}: '{where}' lacks '{name}'" for name in fields if name not in value]
    for name, item in value.items():
        check = fields.get(name)
        if check is None:
            problems.append(f"{MANIFEST_NAME}: '{where}' has an unknown field {str(name)!r}")
            continue
        expected = check(item)
        if expected is not None:
            problems.append(f"{MANIFEST_NAME}: '{where}.{name}' is {_show(item)}, expected {expected}")
    return problems


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    return {dict: "a table", list: "a list", str: "a string"}.get(type(value), _show(value))


def _files_problems(files: Any) -> list[str]:
    if not isinstance(files, dict) or not files:
        return [f"{MANIFEST_NAME}: 'files' is {_kind(files)}, expected a table of the folder's files"]
    problems = []
    for name, entry in files.items():
        if not isinstance(entry, dict) or set(entry) != {"sha256", "size"}:
            problems.append(f"{MANIFEST_NAME}: files[{name!r}] must hold exactly 'sha256' and 'size'")
        elif not isinstance(entry["sha256"], str) or not _SHA256.fullmatch(entry["sha256"]):
            problems.append(f"{MANIFEST_NAME}: files[{name!r}].sha256 is {_show(entry['sha256'])}, not hex")
        elif not _is_int(entry["size"]):
            problems.append(
                f"{MANIFEST_NAME}: files[{name!r}].size is {_show(entry['size'])}, expected an integer >= 0"
            )
    return problems


def manifest_problems(manifest: Any) -> list[str]:
    """Every field of a parsed manifest whose type or value is wrong, missing or unknown (one line each).

    Empty for a manifest as ``modality-conflict build`` writes it.
    """
    if not isinstance(manifest, dict):
        return [f"{MANIFEST_NAME}: holds {_kind(manifest)}, expected a table"]
    nested = {"arguments": _ARGUMENTS, "layout": _LAYOUT}
    required = [*_FIELDS, *nested, "files"]
    problems = [f"{MANIFEST_NAME}: lacks '{name}'" for name in required if name not in manifest]
    for name, value in manifest.items():
        if name == "files":
            problems.extend(_files_problems(value))
        elif name in nested:
            problems.extend(_table_problems(value, name, nested[name]))
        elif name in _FIELDS:
            expected = _FIELDS[name](value)
            if expected is not None:
                problems.append(f"{MANIFEST_NAME}: '{name}' is {_show(value)}, expected {expected}")
        else:
            problems.append(f"{MANIFEST_NAME}: unknown field {str(name)!r}")
    return problems
