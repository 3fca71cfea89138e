"""The README's support matrix: ``support_matrix.json``, checked cell by cell by the conformance tests.

``tests/models/test_conformance.py`` runs every architecture of the tiny zoo through ``modality_conflict_hf``
and expects exactly the status written here (for a refusal, an error matching ``evidence``);
``tests/e2e/test_conformance_cli.py`` runs every supported cell through the ``lmms-eval`` CLI and
``tests/e2e/test_stock_wrappers_cli.py`` lmms-eval's own wrappers, each failing one to the exception its
entry names. :func:`render_markdown` turns the file into the README's table; ``test_support_matrix.py`` keeps
the two equal. After changing the file: ``python tests/support_matrix.py --write`` (or
``make support-matrix``).

A cell or a wrapper entry may hold ``"transformers_4"``: the keys that differ under transformers 4.x (the
tested 4.x release, see the README's tested matrix). :func:`load` applies them when the installed
transformers is a 4.x, so the tests of every environment expect what that environment does; the README shows
both.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

MATRIX_FILE = Path(__file__).with_name("support_matrix.json")
README = Path(__file__).parents[1] / "README.md"
START = "<!-- support-matrix:start (rendered from tests/support_matrix.json) -->"
END = "<!-- support-matrix:end -->"
WRAPPER_PATHS = ("modality_conflict_hf", "loglik")
FAILING_WRAPPER_STATUSES = ("broken upstream", "missing dependency", "refused")
"""lmms-eval wrapper statuses whose entries name the exception the run ends with (``exception``, a
``message`` pattern, and the upstream file ``raised_in`` and ``function`` of the innermost frame)."""
SIGNATURE_KEYS = ("exception", "message", "raised_in", "function")
OLDER_MAJOR = "transformers_4"
"""The key of a cell's or an entry's transformers 4.x differences."""


def installed_transformers_major() -> int:
    """The major version of the installed transformers."""
    return int(version("transformers").split(".")[0])


def _for_major(cell: dict[str, Any], major: int) -> dict[str, Any]:
    override = cell.get(OLDER_MAJOR) if major == 4 else None
    merged = {k: v for k, v in cell.items() if k != OLDER_MAJOR}
    if override:
        # A status change replaces the reason and the evidence too; a missing one means there is none.
        if "status" in override:
            for key in ("reason", "evidence", "note", "when", "model_args", *SIGNATURE_KEYS):
                merged.pop(key, None)
        merged.update(override)
    return merged


def load(*, transformers_major: int | None = None) -> dict[str, Any]:
    """The matrix as it holds for ``transformers_major`` (by default the installed transformers'):
    ``paths`` (column titles) and ``architectures`` (one row per tiny checkpoint)."""
    major = installed_transformers_major() if transformers_major is None else transformers_major
    matrix = load_file()
    for row in matrix["architectures"].values():
        for path in WRAPPER_PATHS:
            row[path] = _for_major(row[path], major)
        row["lmms_eval"] = [_for_major(entry, major) for entry in row["lmms_eval"]]
    return matrix


def load_file() -> dict[str, Any]:
    """The matrix as written, transformers 4.x differences included (for the README)."""
    return json.loads(MATRIX_FILE.read_text(encoding="utf-8"))


def cells(path: str, status: str | None = None) -> list[str]:
    """The architectures whose ``path`` column (``modality_conflict_hf`` or ``loglik``) has ``status``."""
    rows = load()["architectures"]
    return [name for name, row in rows.items() if status is None or row[path]["status"] == status]


def lmms_eval_runs() -> Iterator[tuple[str, int, dict[str, Any]]]:
    """``(architecture, index, entry)`` of every lmms-eval wrapper entry that names a wrapper."""
    for name, row in load()["architectures"].items():
        for index, entry in enumerate(row["lmms_eval"]):
            if entry.get("wrapper") and entry["status"] in ("supported", *FAILING_WRAPPER_STATUSES):
                yield name, index, entry


def _older_major(cell: dict[str, Any]) -> str:
    override = cell.get(OLDER_MAJOR)
    if not override:
        return ""
    merged = _for_major(cell, 4)
    detail = merged.get("reason") or merged.get("note")
    return f"<br>transformers 4.x: **{merged['status']}**" + (f": {detail}" if detail else "")


def _wrapper_cell(cell: dict[str, Any]) -> str:
    text = f"**{cell['status']}**"
    detail = cell.get("reason") or cell.get("note")
    return (f"{text}: {detail}" if detail else text) + _older_major(cell)


def _lmms_eval_cell(entries: list[dict[str, Any]]) -> str:
    if not entries:
        return "-"
    parts = []
    for entry in entries:
        name = f"`{entry['wrapper']}`" if entry.get("wrapper") else ""
        extra = " ".join(f"`{flag}`" for flag in entry.get("cli", []))
        head = " ".join(p for p in (name, extra) if p)
        detail = entry.get("reason") or entry.get("note")
        status = f"**{entry['status']}**" + (f" ({detail})" if detail else "") + _older_major(entry)
        parts.append(f"{head}: {status}" if head else status)
    return "<br>".join(parts)


def render_markdown(matrix: dict[str, Any] | None = None) -> str:
    """The README section between :data:`START` and :data:`END` (markers included)."""
    matrix = matrix or load_file()
    paths = matrix["paths"]
    lines = [
        START,
        "",
        f"| architecture (tiny checkpoint) | {paths['modality_conflict_hf']} | {paths['loglik']} | "
        f"{paths['lmms_eval']} |",
        "|---|---|---|---|",
    ]
    for name, row in matrix["architectures"].items():
        lines.append(
            f"| {row['label']} (`{name}`) | {_wrapper_cell(row['modality_conflict_hf'])} | "
            f"{_wrapper_cell(row['loglik'])} | {_lmms_eval_cell(row['lmms_eval'])} |"
        )
    failing: dict[str, list[str]] = {}
    for row in matrix["architectures"].values():
        for entry in row["lmms_eval"]:
            if entry["status"] in FAILING_WRAPPER_STATUSES:
                where = f"`{entry['raised_in']}`, `{entry['function']}`"
                error = f"`{entry['exception']}` in {where}"
                failing.setdefault(entry["wrapper"], []).append(
                    f"{row['label']}: {entry['status']}, {entry['reason']} ({error})"
                )
    lines += [
        "",
        "lmms-eval 0.7.3 wrappers that fail or refuse on these tasks, with the exception each run ends in "
        "(checked by the test suite):",
        "",
    ]
    for wrapper, reasons in failing.items():
        lines.append(f"- `{wrapper}`: " + "; ".join(dict.fromkeys(reasons)) + ".")
    lines += ["", END]
    return "\n".join(lines)


def readme_section(text: str) -> str:
    """The rendered section as it stands in the README text (empty when the markers are missing)."""
    start, end = text.find(START), text.find(END)
    return text[start : end + len(END)] if 0 <= start < end else ""


def write_readme(readme: Path = README) -> None:
    """Replace the README's section with the rendered one (through a temporary sibling)."""
    text = readme.read_text(encoding="utf-8")
    current = readme_section(text)
    if not current:
        raise SystemExit(f"{readme}: no support-matrix markers ({START!r} ... {END!r})")
    tmp = readme.with_name(readme.name + ".tmp")
    tmp.write_text(text.replace(current, render_markdown()), encoding="utf-8")
    tmp.replace(readme)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="rewrite the README section")
    args = parser.parse_args(argv)
    if args.write:
        write_readme()
    else:
        print(render_markdown())
    return 0


if __name__ == "__main__":
    sys.exit(main())
