"""The leaderboard: ranked tables (Markdown and HTML) of verified submissions.

Only submissions that pass :func:`~modality_conflict.analysis.submission.verify_file` against the dataset
(the pinned one, or ``data``) and cover their task's whole split are ranked; partial ones are listed as
unranked, the others named with the reason they were left out, and without a dataset nothing is ranked.
Each (task, dataset fingerprint, entropy estimator), all verified and never text a submitter writes, gets
its own table (estimators differ in scale); a model has one row per table (its latest submission), and a
file whose bytes repeat another's is listed once.
"""

from __future__ import annotations

import dataclasses
import hashlib
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modality_conflict.analysis.formatting import interval_text, number_text
from modality_conflict.analysis.results import TaskSummary
from modality_conflict.analysis.submission import (
    MAX_SUBMISSION_BYTES,
    DatasetIndex,
    SubmissionError,
    load_dataset_index,
    verify_file,
)
from modality_conflict.dataset_builder.atomic import ensure_folder, write_text_atomic
from modality_conflict.dataset_builder.errors import ModalityConflictError, UnsafeFileError
from modality_conflict.dataset_builder.regular_files import read_regular_file
from modality_conflict.mc_tasks.names import RANKED_METRICS


class NoReferenceDatasetError(ModalityConflictError, ValueError):
    """There is no dataset to check the submissions against, so nothing can be ranked."""


def reference_dataset() -> Path:
    """The pinned dataset as a verified local folder, resolved as a task without ``--data`` resolves it
    (cache, Hub, build); :class:`NoReferenceDatasetError`, saying why and what to pass, when it cannot."""
    from modality_conflict.dataset_builder.canonical import CANONICAL
    from modality_conflict.dataset_builder.resolve import DataResolutionError, ensure_dataset

    try:
        return ensure_dataset(CANONICAL).path
    except DataResolutionError as error:
        raise NoReferenceDatasetError(
            f"no dataset to check the submissions against, so nothing can be ranked: {error}; "
            "or pass --data DIR (a folder made by `modality-conflict build`)"
        ) from None


SORT_KEYS = (*RANKED_METRICS, "n_conflicts", "model")


ENTRY_FIELDS = ("model", "dataset", "task", "estimator", "created", "metrics")  # copied from the submission


@dataclass(frozen=True)
class Entry:
    """One verified submission, without its records."""

    path: Path
    model: dict[str, Any]
    dataset: dict[str, Any]
    task: dict[str, Any]
    estimator: str
    created: str
    metrics: dict[str, Any]
    unranked_reason: str | None = None

    @property
    def summary(self) -> TaskSummary:
        """The submission's metrics, typed."""
        return TaskSummary(self.metrics)

    @property
    def board(self) -> tuple[str, str, str]:
        """Which table the entry belongs in, from verified fields only: the task (its split was checked),
        the dataset's fingerprint (checked against the dataset) and the estimator (checked against the
        records)."""
        return (str(self.task["name"]), f"fingerprint {self.dataset['fingerprint'][:12]}", self.estimator)


def collect_submissions(
    folder: Path, *, data: Path | DatasetIndex, dataset_revision: str | None = None
) -> tuple[list[Entry], list[tuple[Path, str]]]:
    """Verify every ``*.json`` in ``folder`` against the dataset ``data``: the verified entries
    (``unranked_reason`` None when rankable), and ``(path, first problem)`` of each one left out."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    index = data if isinstance(data, DatasetIndex) else load_dataset_index(Path(data))
    entries, rejected = [], []
    first_of_content: dict[str, Path] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            digest = hashlib.sha256(read_regular_file(path, max_bytes=MAX_SUBMISSION_BYTES)).hexdigest()
        except (UnsafeFileError, OSError) as error:
            rejected.append((path, str(error)))
            continue
        if digest in first_of_content:
            rejected.append((path, f"the same bytes as {first_of_content[digest].name}, which is listed"))
            continue
        first_of_content[digest] = path
        try:
            verification = verify_file(
                path, data=index, dataset_revision=dataset_revision, allow_partial=True
            )
        except (SubmissionError, ValueError, OSError) as error:
            lines = [line.strip(" -") for line in str(error).splitlines() if line.strip()]
            reason = lines[1] if len(lines) > 1 and lines[0].endswith(":") else lines[0]
            rejected.append((path, reason))
            continue
        fields = {name: verification.submission[name] for name in ENTRY_FIELDS}
        entries.append(Entry(path, **fields, unranked_reason=verification.unranked_reason))
    return entries, rejected


def one_row_per_model(entries: Sequence[Entry]) -> tuple[dict[tuple[str, ...], list[Entry]], list[Entry]]:
    """The rankable entries by table, one per model id (its latest submission, ties by file name), and the
    entries not ranked: partial ones, and every earlier submission of a model (with the reason)."""
    unranked = [entry for entry in entries if entry.unranked_reason is not None]
    latest: dict[tuple[tuple[str, ...], str], Entry] = {}
    for entry in sorted(
        (e for e in entries if e.unranked_reason is None), key=lambda e: (e.created, e.path.name)
    ):
        key = (entry.board, str(entry.model["id"]))
        if key in latest:
            kept = latest[key]
            unranked.append(
                dataclasses.replace(
                    kept, unranked_reason=f"an earlier submission of this model; {entry.path.name} is ranked"
                )
            )
        latest[key] = entry
    boards: dict[tuple[str, ...], list[Entry]] = {}
    for (board, _), entry in latest.items():
        boards.setdefault(board, []).append(entry)
    return boards, unranked


def rank_entries(
    entries: Sequence[Entry], *, sort: str = "balance_point", descending: bool = False
) -> list[Entry]:
    """Order entries by a metric; entries without a value for it come last, ties by model id."""
    if sort not in SORT_KEYS:
        raise ValueError(f"unknown sort key {sort!r}; expected one of {list(SORT_KEYS)}")
    if sort == "model":
        return sorted(entries, key=lambda e: str(e.model["id"]), reverse=descending)

    def value(entry: Entry) -> tuple[float, int] | None:
        # A censored or bracketed balance point ranks by its bound: "below -1.2" comes before -1.1.
        if sort == "balance_point":
            return entry.summary.balance_point.rank_value()
        number = entry.summary.number(sort)
        return None if number is None else (number, 0)

    sign = -1 if descending else 1
    with_value = [e for e in entries if value(e) is not None]
    without = [e for e in entries if value(e) is None]
    with_value.sort(key=lambda e: (sign * value(e)[0], sign * value(e)[1], str(e.model["id"])))
    return with_value + sorted(without, key=lambda e: str(e.model["id"]))


def _interval_cell(summary: TaskSummary, name: str, signed: bool = False) -> str:
    return interval_text(*summary.interval(name), signed=signed, missing="n/a")


def _balance_cell(summary: TaskSummary) -> str:
    point = summary.balance_point
    return (
        point.text() if point.defined or point.bounded else str(summary.get("balance_point_status") or "n/a")
    )


COLUMNS = (
    "rank",
    "model",
    "revision",
    "balance point",
    "95% CI",
    "TFR",
    "TFR 95% CI",
    "mean Hv",
    "mean Ht",
    "conflicts",
    "submitted",
)
TEXT_COLUMNS = frozenset({"model", "revision"})  # what the submitter wrote; every other cell is ours


def table_rows(entries: Sequence[Entry]) -> list[list[str]]:
    """The cells of a ranked table, in :data:`COLUMNS` order."""
    rows = []
    for rank, entry in enumerate(entries, start=1):
        m = entry.summary
        revision = entry.model.get("revision")
        rows.append(
            [
                str(rank),
                str(entry.model["id"]),
                str(revision)[:12] if revision else "unknown",
                _balance_cell(m),
                _interval_cell(m, "balance_point", signed=True),
                number_text(m.get("tfr")),
                _interval_cell(m, "tfr"),
                number_text(m.get("mean_hv")),
                number_text(m.get("mean_ht")),
                str(m.get("n_conflicts", "n/a")),
                entry.created[:10],
            ]
        )
    return rows


_MARKDOWN_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "|": "&#124;", "`": "&#96;", "\\": "&#92;"}
_LINK_ENTITIES = {"[": "&#91;", "]": "&#93;"}  # in free text only: no link can be made of a model id


def _md_cell(text: str, *, free_text: bool = True) -> str:
    """``text`` safe in a Markdown table cell: markup and raw HTML become entities, line breaks spaces.
    Entities render as the characters themselves, so a model id reads the same as in the HTML page, and
    nothing in it can open a tag, a link, a code span or a new table cell."""
    out = []
    for char in str(text):
        if char in _MARKDOWN_ENTITIES:
            out.append(_MARKDOWN_ENTITIES[char])
        elif free_text and char in _LINK_ENTITIES:
            out.append(_LINK_ENTITIES[char])
        elif ord(char) < 32 or 0x7F <= ord(char) < 0xA0 or char in "\u2028\u2029":
            out.append(" ")
        else:
            out.append(char)
    return "".join(out)


def unranked_rows(entries: Sequence[Entry]) -> list[list[str]]:
    """Cells of the unranked list: file, model, task, balance point, why it is not ranked."""
    return [
        [
            entry.path.name,
            str(entry.model["id"]),
            str(entry.task["name"]),
            _balance_cell(entry.summary),
            str(entry.unranked_reason),
        ]
        for entry in sorted(entries, key=lambda e: e.path.name)
    ]


UNRANKED_HEADING = "Unranked (verified, but not on the whole split, or not a model's latest submission)"
INTRO = (
    "Balance point: the relative uncertainty dH = 2 (Ht {minus} Hv) / (Ht + Hv) at which the model follows "
    "the text half of the time (negative: it prefers the image; positive: the text). Only submissions whose "
    "metrics were recomputed from their records, checked against the dataset and covering every row of "
    "their task are ranked."
)


def render_markdown(
    boards: Mapping[tuple[str, ...], list[Entry]],
    rejected: Sequence[tuple[Path, str]],
    unranked: Sequence[Entry] = (),
) -> str:
    """Markdown: one ranked table per (task, dataset, estimator), the unranked ones, those left out."""
    lines = ["# modality-conflict leaderboard", "", INTRO.format(minus="-")]
    if not boards:
        lines += ["", "No ranked submissions."]
    for (task, dataset, estimator), entries in boards.items():
        heading = f"{_md_cell(task)} on the dataset of {_md_cell(dataset)}, entropy: {_md_cell(estimator)}"
        lines += ["", f"## {heading}", ""]
        lines.append("| " + " | ".join(COLUMNS) + " |")
        lines.append("|" + "|".join("---" if c in TEXT_COLUMNS else "---:" for c in COLUMNS) + "|")
        for row in table_rows(entries):
            cells = (
                _md_cell(c, free_text=name in TEXT_COLUMNS) for name, c in zip(COLUMNS, row, strict=True)
            )
            lines.append("| " + " | ".join(cells) + " |")
    if unranked:
        lines += ["", f"## {UNRANKED_HEADING}", ""]
        for name, model, task, balance, reason in unranked_rows(unranked):
            lines.append(
                f"- UNRANKED {_md_cell(name)}: {_md_cell(model)} on {_md_cell(task)}, balance point "
                f"{_md_cell(balance, free_text=False)} ({_md_cell(reason)})"
            )
    if rejected:
        lines += ["", "## Not listed", ""]
        for path, reason in rejected:
            lines.append(f"- {_md_cell(path.name)}: {_md_cell(reason)}")
    return "\n".join(lines) + "\n"


def render_html(
    boards: Mapping[tuple[str, ...], list[Entry]],
    rejected: Sequence[tuple[Path, str]],
    unranked: Sequence[Entry] = (),
) -> str:
    """A standalone HTML page with the same tables as :func:`render_markdown`."""
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>modality-conflict leaderboard</title>',
        "<style>body{font-family:sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse}"
        "td,th{border:1px solid #bbb;padding:0.3em 0.6em;text-align:right}td.t,th.t{text-align:left}"
        "th{background:#eee}</style></head><body>",
        "<h1>modality-conflict leaderboard</h1>",
        f"<p>{e(INTRO).format(minus='&minus;')}</p>",
    ]
    if not boards:
        parts.append("<p>No ranked submissions.</p>")
    for (task, dataset, estimator), entries in boards.items():
        parts.append(f"<h2>{e(task)} on the dataset of {e(dataset)}, entropy: {e(estimator)}</h2>")
        head = "".join(f'<th class="{"t" if c in TEXT_COLUMNS else ""}">{e(c)}</th>' for c in COLUMNS)
        parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>")
        for row in table_rows(entries):
            cells = "".join(
                f'<td class="{"t" if c in TEXT_COLUMNS else ""}">{e(cell)}</td>'
                for c, cell in zip(COLUMNS, row, strict=True)
            )
            parts.append(f"<tr>{cells}</tr>")
        parts.append("</tbody></table>")
    if unranked:
        parts.append(f"<h2>{e(UNRANKED_HEADING)}</h2><ul>")
        parts.extend(
            f"<li><b>UNRANKED</b> <code>{e(name)}</code>: {e(model)} on {e(task)}, balance point "
            f"{e(balance)} ({e(reason)})</li>"
            for name, model, task, balance, reason in unranked_rows(unranked)
        )
        parts.append("</ul>")
    if rejected:
        parts.append("<h2>Not listed</h2><ul>")
        parts.extend(f"<li><code>{e(path.name)}</code>: {e(reason)}</li>" for path, reason in rejected)
        parts.append("</ul>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def build_leaderboard(
    folder: Path,
    out: Path | None = None,
    *,
    data: Path | None = None,
    dataset_revision: str | None = None,
    sort: str = "balance_point",
    descending: bool = False,
) -> tuple[Path, Path, str]:
    """Verify the submissions in ``folder`` against ``data`` (default :func:`reference_dataset`) and write
    ``leaderboard.md`` and ``leaderboard.html``; returns both paths and the Markdown text."""
    index = load_dataset_index(Path(data) if data is not None else reference_dataset())
    entries, rejected = collect_submissions(folder, data=index, dataset_revision=dataset_revision)
    boards, unranked = one_row_per_model(entries)
    boards = {key: rank_entries(boards[key], sort=sort, descending=descending) for key in sorted(boards)}
    out = ensure_folder(Path(out) if out is not None else Path(folder))
    markdown = render_markdown(boards, rejected, unranked)
    md_path, html_path = out / "leaderboard.md", out / "leaderboard.html"
    write_text_atomic(md_path, markdown)
    write_text_atomic(html_path, render_html(boards, rejected, unranked))
    return md_path, html_path, markdown
