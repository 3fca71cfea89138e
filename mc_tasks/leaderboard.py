"""Publishing verified submissions: ``modality-conflict leaderboard`` and ``modality-conflict eval-results``.

The leaderboard lists only submissions that pass :func:`~modality_conflict.mc_tasks.submission.verify_file`;
the others are named with the reason they were left out. Results are comparable only on the same task,
dataset and entropy estimator (entropies from different estimators are on different scales, and so are
their balance points), so each such combination gets its own table.

``eval-results`` writes the Hugging Face Hub "Eval Results" files from one verified submission: an
``eval.yaml`` for the benchmark dataset repo (one Hub task per headline metric) and a
``.eval_results/<name>.yaml`` for the model repo.
"""

from __future__ import annotations

import argparse
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modality_conflict.mc_tasks.submission import (
    LOCAL_DATASET,
    DatasetIndex,
    SubmissionError,
    Verification,
    load_dataset_index,
    verify_file,
)

SORT_KEYS = ("balance_point", "tfr", "mean_hv", "mean_ht", "n_conflicts", "model")
# Hub tasks defined in eval.yaml: (suffix, metric key, what it is).
HUB_METRICS: tuple[tuple[str, str, str], ...] = (
    (
        "balance_point",
        "balance_point",
        "dH where P(follow text) = 0.5; negative = the model prefers the image",
    ),
    ("tfr", "tfr", "text-following rate among conflicts answered with one of the unimodal answers"),
    ("mean_hv", "mean_hv", "mean entropy (nats) of the vision-only answers"),
    ("mean_ht", "mean_ht", "mean entropy (nats) of the text-only answers"),
)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def metric_interval(metrics: Mapping[str, Any], name: str) -> tuple[float | None, float | None]:
    """The reported interval of ``name``: ``<name>_ci_low/high``, else ``<name>_delta_low/high``."""
    for low_key, high_key in (
        (f"{name}_ci_low", f"{name}_ci_high"),
        (f"{name}_delta_low", f"{name}_delta_high"),
    ):
        if low_key in metrics or high_key in metrics:
            return _number(metrics.get(low_key)), _number(metrics.get(high_key))
    return None, None


# --- leaderboard -----------------------------------------------------------------------------------------


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

    @property
    def board(self) -> tuple[str, str, str, str]:
        """Which table the entry belongs in: task, dataset (repo@revision or fingerprint), estimator."""
        dataset = self.dataset
        where = dataset.get("revision") or (dataset.get("fingerprint") or "unknown")[:12]
        return (
            f"{self.task['name']} v{self.task.get('version')}",
            f"{dataset['repo']}@{where}",
            self.estimator,
            str(dataset.get("split")),
        )


def _entry(path: Path, verification: Verification) -> Entry:
    s = verification.submission
    return Entry(path, s["model"], s["dataset"], s["task"], s["estimator"], s["created"], s["metrics"])


def collect_submissions(
    folder: Path, *, data: Path | None = None, dataset_revision: str | None = None
) -> tuple[list[Entry], list[tuple[Path, str]]]:
    """Verify every ``*.json`` in ``folder``.

    Returns
    -------
    tuple
        The verified entries, and ``(path, first problem)`` for every submission left out.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    index: DatasetIndex | None = load_dataset_index(data) if data is not None else None
    entries, rejected = [], []
    for path in sorted(folder.glob("*.json")):
        try:
            verification = verify_file(path, data=index, dataset_revision=dataset_revision)
        except (SubmissionError, ValueError, OSError) as error:
            lines = [line.strip(" -") for line in str(error).splitlines() if line.strip()]
            reason = lines[1] if len(lines) > 1 and lines[0].endswith(":") else lines[0]
            rejected.append((path, reason))
            continue
        entries.append(_entry(path, verification))
    return entries, rejected


def rank_entries(
    entries: Sequence[Entry], *, sort: str = "balance_point", descending: bool = False
) -> list[Entry]:
    """Order entries by a metric; entries without a value for it come last, ties by model id."""
    if sort not in SORT_KEYS:
        raise ValueError(f"unknown sort key {sort!r}; expected one of {list(SORT_KEYS)}")
    if sort == "model":
        return sorted(entries, key=lambda e: str(e.model["id"]), reverse=descending)
    with_value = [e for e in entries if _number(e.metrics.get(sort)) is not None]
    without = [e for e in entries if _number(e.metrics.get(sort)) is None]
    with_value.sort(key=lambda e: (_number(e.metrics[sort]) * (-1 if descending else 1), str(e.model["id"])))
    return with_value + sorted(without, key=lambda e: str(e.model["id"]))


def _fmt(value: Any, digits: int = 3, signed: bool = False) -> str:
    number = _number(value)
    if number is None:
        return "n/a"
    return f"{number:+.{digits}f}" if signed else f"{number:.{digits}f}"


def _fmt_interval(metrics: Mapping[str, Any], name: str, signed: bool = False) -> str:
    low, high = metric_interval(metrics, name)
    if low is None or high is None:
        return "n/a"
    return f"[{_fmt(low, signed=signed)}, {_fmt(high, signed=signed)}]"


def _balance_text(metrics: Mapping[str, Any]) -> str:
    value = _number(metrics.get("balance_point"))
    if value is not None:
        return _fmt(value, signed=True)
    status = metrics.get("balance_point_status")
    bound = _number(metrics.get("balance_point_bound"))
    if bound is not None:
        return f"{status} ({_fmt(bound, signed=True)})"
    return str(status or "n/a")


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


def table_rows(entries: Sequence[Entry]) -> list[list[str]]:
    """The cells of a ranked table, in :data:`COLUMNS` order."""
    rows = []
    for rank, entry in enumerate(entries, start=1):
        m = entry.metrics
        revision = entry.model.get("revision")
        rows.append(
            [
                str(rank),
                str(entry.model["id"]),
                str(revision)[:12] if revision else "unknown",
                _balance_text(m),
                _fmt_interval(m, "balance_point", signed=True),
                _fmt(m.get("tfr")),
                _fmt_interval(m, "tfr"),
                _fmt(m.get("mean_hv")),
                _fmt(m.get("mean_ht")),
                str(m.get("n_conflicts", "n/a")),
                entry.created[:10],
            ]
        )
    return rows


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_markdown(
    boards: Mapping[tuple[str, ...], list[Entry]], rejected: Sequence[tuple[Path, str]]
) -> str:
    """Markdown: one ranked table per (task, dataset, estimator), then the submissions left out."""
    lines = ["# modality-conflict leaderboard", ""]
    lines.append(
        "Balance point: the relative uncertainty dH = 2 (Ht - Hv) / (Ht + Hv) at which the model follows the "
        "text half of the time (negative: it prefers the image; positive: the text). Only submissions whose "
        "metrics were recomputed from their records are listed."
    )
    if not boards:
        lines += ["", "No verified submissions."]
    for (task, dataset, estimator, split), entries in boards.items():
        lines += [
            "",
            f"## {_md_cell(task)} on {_md_cell(dataset)} ({_md_cell(split)}), entropy: {_md_cell(estimator)}",
            "",
        ]
        lines.append("| " + " | ".join(COLUMNS) + " |")
        lines.append(
            "|" + "|".join("---:" if c not in ("model", "revision") else "---" for c in COLUMNS) + "|"
        )
        for row in table_rows(entries):
            lines.append("| " + " | ".join(_md_cell(cell) for cell in row) + " |")
    if rejected:
        lines += ["", "## Not listed", ""]
        for path, reason in rejected:
            lines.append(f"- `{_md_cell(path.name)}`: {_md_cell(reason)}")
    return "\n".join(lines) + "\n"


def render_html(boards: Mapping[tuple[str, ...], list[Entry]], rejected: Sequence[tuple[Path, str]]) -> str:
    """A standalone HTML page with the same tables as :func:`render_markdown`."""
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>modality-conflict leaderboard</title>',
        "<style>body{font-family:sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse}"
        "td,th{border:1px solid #bbb;padding:0.3em 0.6em;text-align:right}td.t,th.t{text-align:left}"
        "th{background:#eee}</style></head><body>",
        "<h1>modality-conflict leaderboard</h1>",
        "<p>Balance point: the relative uncertainty dH = 2 (Ht &minus; Hv) / (Ht + Hv) at which the model"
        " follows the text half of the time (negative: it prefers the image; positive: the text). Only"
        " submissions whose"
        " metrics were recomputed from their records are listed.</p>",
    ]
    if not boards:
        parts.append("<p>No verified submissions.</p>")
    text_columns = {"model", "revision"}
    for (task, dataset, estimator, split), entries in boards.items():
        parts.append(f"<h2>{e(task)} on {e(dataset)} ({e(split)}), entropy: {e(estimator)}</h2>")
        head = "".join(f'<th class="{"t" if c in text_columns else ""}">{e(c)}</th>' for c in COLUMNS)
        parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>")
        for row in table_rows(entries):
            cells = "".join(
                f'<td class="{"t" if c in text_columns else ""}">{e(cell)}</td>'
                for c, cell in zip(COLUMNS, row, strict=True)
            )
            parts.append(f"<tr>{cells}</tr>")
        parts.append("</tbody></table>")
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
    """Verify the submissions in ``folder`` and write ``leaderboard.md`` and ``leaderboard.html``.

    Returns
    -------
    tuple
        The Markdown path, the HTML path and the Markdown text.
    """
    entries, rejected = collect_submissions(folder, data=data, dataset_revision=dataset_revision)
    boards: dict[tuple[str, ...], list[Entry]] = {}
    for entry in entries:
        boards.setdefault(entry.board, []).append(entry)
    boards = {key: rank_entries(boards[key], sort=sort, descending=descending) for key in sorted(boards)}
    out = Path(out) if out is not None else Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    markdown = render_markdown(boards, rejected)
    md_path, html_path = out / "leaderboard.md", out / "leaderboard.html"
    md_path.write_text(markdown, encoding="utf-8")
    html_path.write_text(render_html(boards, rejected), encoding="utf-8")
    return md_path, html_path, markdown


# --- Hugging Face Hub "Eval Results" files ---------------------------------------------------------------


def hub_task_id(task: str, metric: str) -> str:
    """The Hub task id of one headline metric of one lmms-eval task."""
    return f"{task}-{metric}"


def eval_yaml(dataset_id: str, task: str, *, split: str = "test") -> dict[str, Any]:
    """The ``eval.yaml`` of the benchmark dataset repo: one Hub task (leaderboard) per headline metric.

    Notes
    -----
    The Hub validates ``evaluation_framework`` against a list it maintains; ``lmms-eval`` has to be added
    to that list (huggingface.js ``packages/tasks/src/eval.ts``) before the Hub accepts the file.
    """
    return {
        "name": "Modality Conflict (colour)",
        "description": (
            "Image-text conflicts for multimodal LLMs (arXiv:2511.02243): a shape's colour in an image "
            "against a text that claims another colour, at graded visual and textual difficulty. Each model "
            "answers the "
            "image alone, the text alone and both; the leaderboards give its balance point (the relative "
            "uncertainty at which it follows text and image equally often), its text-following rate and its "
            f"mean unimodal entropies. Run with lmms-eval (`--tasks {task}`) and checked with "
            "`modality-conflict verify`."
        ),
        "evaluation_framework": "lmms-eval",
        "tasks": [
            {"id": hub_task_id(task, suffix), "config": "default", "split": split}
            for suffix, _, _ in HUB_METRICS
        ],
    }


def eval_result_entries(
    submission: Mapping[str, Any],
    *,
    dataset_id: str,
    source_url: str | None = None,
    source_name: str | None = None,
) -> tuple[list[Any], list[str]]:
    """``huggingface_hub.EvalResultEntry`` objects for a verified submission's headline metrics.

    Returns
    -------
    tuple
        The entries, and one line per metric left out because the submission reports it as undefined.
    """
    from huggingface_hub import EvalResultEntry

    metrics = submission["metrics"]
    task = submission["task"]["name"]
    version = _package_version_text(submission)
    entries, skipped = [], []
    for suffix, key, _ in HUB_METRICS:
        value = _number(metrics.get(key))
        if value is None:
            reason = metrics.get(f"{key}_reason") or metrics.get(f"{key}_status") or "undefined"
            skipped.append(f"{key}: not reported ({reason})")
            continue
        notes = [f"entropy estimator {submission['estimator']}", f"{metrics.get('n_conflicts')} conflicts"]
        low, high = metric_interval(metrics, key)
        if low is not None and high is not None:
            method = metrics.get(f"{key}_ci_method") or ("wilson" if key == "tfr" else "delta")
            notes.insert(0, f"95% CI [{low:.4f}, {high:.4f}] ({method})")
        notes.append(f"verified with modality-conflict {version}")
        entries.append(
            EvalResultEntry(
                dataset_id=dataset_id,
                task_id=hub_task_id(task, suffix),
                value=round(value, 6),
                dataset_revision=submission["dataset"].get("revision"),
                date=submission["created"],
                source_url=source_url,
                source_name=source_name if source_url else None,
                notes="; ".join(notes),
            )
        )
    return entries, skipped


def _package_version_text(submission: Mapping[str, Any]) -> str:
    return str(submission["analysis"].get("package_version", "unknown"))


def write_eval_results(
    submission_path: Path,
    out: Path,
    *,
    data: Path | None = None,
    dataset_id: str | None = None,
    source_url: str | None = None,
    source_name: str | None = None,
) -> tuple[Path, Path, list[str]]:
    """Verify a submission, then write ``out/eval.yaml`` and ``out/.eval_results/<name>.yaml``.

    Returns
    -------
    tuple
        The two paths and the lines about metrics left out.

    Raises
    ------
    RejectedSubmissionError
        When the submission does not verify.
    ValueError
        When no Hub dataset id is known (a submission made on a local, unpublished folder).
    """
    import yaml
    from huggingface_hub import eval_result_entries_to_yaml

    verification = verify_file(Path(submission_path), data=data)
    submission = verification.submission
    dataset_id = dataset_id or submission["dataset"]["repo"]
    if dataset_id == LOCAL_DATASET or "/" not in dataset_id:
        raise ValueError(
            f"the submission names no Hub dataset (dataset.repo is {submission['dataset']['repo']!r}); "
            "pass --dataset-id"
        )
    task = submission["task"]["name"]
    entries, skipped = eval_result_entries(
        submission, dataset_id=dataset_id, source_url=source_url, source_name=source_name
    )
    if not entries:
        raise ValueError("the submission reports none of the headline metrics: " + "; ".join(skipped))
    out = Path(out)
    (out / ".eval_results").mkdir(parents=True, exist_ok=True)
    header = (
        "# Benchmark definition for the Hugging Face Hub (https://huggingface.co/docs/hub/eval-results).\n"
        "# `lmms-eval` must be on the Hub's list of evaluation frameworks before the Hub accepts this file.\n"
    )
    eval_path = out / "eval.yaml"
    eval_path.write_text(
        header
        + yaml.safe_dump(eval_yaml(dataset_id, task, split=submission["dataset"]["split"]), sort_keys=False),
        encoding="utf-8",
    )
    name = dataset_id.split("/")[-1] + ("" if task == "modality_conflict_color" else f"_{task}")
    result_path = out / ".eval_results" / f"{name}.yaml"
    result_path.write_text(
        f"# {submission['model']['id']} on {dataset_id}, "
        "from a submission verified by `modality-conflict verify`.\n"
        + yaml.safe_dump(eval_result_entries_to_yaml(entries), sort_keys=False),
        encoding="utf-8",
    )
    return eval_path, result_path, skipped


# --- command line ----------------------------------------------------------------------------------------


def run_leaderboard(args: argparse.Namespace) -> int:
    """``modality-conflict leaderboard``: write and print the ranked tables."""
    md_path, html_path, markdown = build_leaderboard(
        Path(args.submissions),
        Path(args.out) if args.out else None,
        data=Path(args.data) if args.data else None,
        dataset_revision=args.dataset_revision,
        sort=args.sort,
        descending=args.descending,
    )
    print(markdown)
    print(f"wrote {md_path} and {html_path}")
    return 0


def run_eval_results(args: argparse.Namespace) -> int:
    """``modality-conflict eval-results``: write the Hub files for one verified submission."""
    eval_path, result_path, skipped = write_eval_results(
        Path(args.submission),
        Path(args.out),
        data=Path(args.data) if args.data else None,
        dataset_id=args.dataset_id,
        source_url=args.source_url,
        source_name=args.source_name,
    )
    print(f"dataset repo file: {eval_path}")
    print(f"model repo file:   {result_path}")
    for line in skipped:
        print(f"left out {line}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> None:
    """Register ``leaderboard`` or ``eval-results``."""
    if name == "leaderboard":
        parser = subparsers.add_parser(
            "leaderboard", help="ranked tables (Markdown, HTML) of verified submissions"
        )
        parser.add_argument("submissions", help="folder of submission JSON files")
        parser.add_argument(
            "--out", help="where to write leaderboard.md/.html (default: the submissions folder)"
        )
        parser.add_argument("--data", help="dataset folder to check every submission against")
        parser.add_argument("--dataset-revision", help="list only submissions on this dataset revision")
        parser.add_argument("--sort", choices=SORT_KEYS, default="balance_point", help="ranking metric")
        parser.add_argument("--descending", action="store_true", help="largest value first")
        parser.set_defaults(func=run_leaderboard)
        return
    parser = subparsers.add_parser(
        "eval-results", help="Hub eval.yaml and .eval_results/*.yaml from a submission"
    )
    parser.add_argument("submission", help="submission JSON file (verified first)")
    parser.add_argument("--out", required=True, help="folder to write eval.yaml and .eval_results/ into")
    parser.add_argument("--data", help="dataset folder to check the submission against")
    parser.add_argument("--dataset-id", help="Hub dataset id (default: the submission's dataset.repo)")
    parser.add_argument("--source-url", help="link to the evaluation logs, shown on the Hub")
    parser.add_argument("--source-name", help="display name of the source link")
    parser.set_defaults(func=run_eval_results)
