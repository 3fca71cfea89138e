"""The HTML report: how to read it, the overlaid figures, and per run its preference, table and heatmap."""

from __future__ import annotations

import html
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from modality_conflict.analysis.figures import plot_entropy_by_tier, plot_following_curve, plot_tfr_heatmap
from modality_conflict.analysis.formatting import interval_text, number_text
from modality_conflict.analysis.results import TaskResult, TaskSummary
from modality_conflict.dataset_builder.atomic import ensure_folder


def summary_rows(summary: TaskSummary) -> list[tuple[str, str, str]]:
    """(quantity, value, 95% interval) rows of a run's table."""
    point = summary.balance_point
    balance = point.text()
    if point.bounded:
        balance += f" ({point.status})"
    rows = [
        (
            "balance point",
            balance,
            interval_text(point.ci_low, point.ci_high, signed=True)
            + (f" ({point.ci_method or 'delta'})" if point.ci_low is not None else ""),
        ),
        (
            "balance point, delta method",
            number_text(point.estimate, signed=True),
            interval_text(point.delta_low, point.delta_high, signed=True),
        ),
        ("balance point, isotonic check", number_text(point.isotonic, signed=True), ""),
        ("TFR (text-following rate)", number_text(summary.get("tfr")), interval_text(*summary.ci("tfr"))),
        ("VFR (vision-following rate)", number_text(summary.get("vfr")), interval_text(*summary.ci("vfr"))),
        ("other answers", number_text(summary.get("other_rate")), interval_text(*summary.ci("other_rate"))),
        (
            "TFR, both unimodal answers correct",
            number_text(summary.get("tfr_correct")),
            interval_text(*summary.ci("tfr", suffix="_correct")),
        ),
        ("mean Hv (nats)", number_text(summary.get("mean_hv")), ""),
        ("mean Ht (nats)", number_text(summary.get("mean_ht")), ""),
        ("mean dH", number_text(summary.get("mean_dh"), signed=True), ""),
        (
            "law: logistic slope of P(follow text) on dH",
            f"{number_text(summary.logistic_fit[1], signed=True)} ({summary.get('law_verdict', 'n/a')})",
            interval_text(*summary.ci("law_slope"), signed=True),
        ),
        ("conflicts", str(summary.get("n_conflicts", "n/a")), ""),
        (
            "conflict rows left out (a vision-only or text-only row is missing)",
            str(summary.n_incomplete_conflicts)
            + (f" of {summary.get('n_conflict_rows')}" if summary.get("n_conflict_rows") is not None else ""),
            "",
        ),
        ("entropy estimator", str(summary.get("entropy_estimator", "n/a")), ""),
    ]
    for control, entry in sorted(summary.controls.items()):
        # The control's relevant modality should win: its following rate and that rate's interval.
        relevant = entry.get("relevant_modality")
        rate = "vfr" if relevant == "vision" else "tfr"
        rows.append(
            (
                f"control {control} ({entry.get('n_conflicts', 0)} conflicts): "
                f"follows the relevant {'image' if relevant == 'vision' else 'text'}",
                number_text(entry.get("relevant_rate")),
                interval_text(*entry.ci(rate)),
            )
        )
    return rows


def attribute_rows(summary: TaskSummary) -> list[tuple[str, str, str, str, str]]:
    """(attribute, TFR, its interval, balance point, its interval) per attribute, pooled first; empty for a
    task that asks about one attribute only."""
    parts = summary.by_attribute
    if not parts:
        return []
    rows = []
    for name, part in [("pooled", summary), *parts.items()]:
        point = part.balance_point
        balance = number_text(point.estimate, signed=True) if point.status == "ok" else point.status
        if point.status != "ok" and point.bound is not None:
            balance += f" (bound {point.bound:+.3f})"
        rows.append(
            (
                f"{name} ({part.get('n_conflicts', 0)} conflicts)",
                number_text(part.get("tfr")),
                interval_text(*part.ci("tfr")),
                balance,
                interval_text(point.ci_low, point.ci_high, signed=True),
            )
        )
    return rows


def _slug(text: str) -> str:
    kept = "".join(c if c.isalnum() or c in "-_" else "_" for c in text)
    return kept.strip("_")[:80] or "run"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """The lines of a table whose first column is a label and the others numbers."""
    head = "".join(f"<th>{html.escape(name)}</th>" for name in header)
    lines = [f"<table><thead><tr>{head}</tr></thead><tbody>"]
    for label, *numbers in rows:
        cells = "".join(f'<td class="n">{html.escape(cell)}</td>' for cell in numbers)
        lines.append(f"<tr><td>{html.escape(label)}</td>{cells}</tr>")
    return [*lines, "</tbody></table>"]


def render_html(runs: Sequence[TaskResult], images: Mapping[str, str]) -> str:
    """The report page: how to read it, the overlaid plots, and per run its preference, table and heatmap."""
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>modality-conflict report</title>',
        "<style>body{font-family:sans-serif;margin:2em;max-width:70em}"
        "table{border-collapse:collapse;margin:0.5em 0}"
        "td,th{border:1px solid #bbb;padding:0.25em 0.6em}td.n{text-align:right}th{background:#eee}"
        ".pref{font-size:1.2em;font-weight:bold}.vision{color:#1f5fa8}.text{color:#b22222}"
        ".warn{background:#fff3cd;border:1px solid #e0c36b;padding:0.3em 0.6em}"
        "img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}</style></head><body>",
        "<h1>modality-conflict report</h1>",
        "<p>Each model answered a question (a colour; or an object's shape or material) from the image "
        "alone, the text alone and both. "
        "dH = 2 (Ht &minus; Hv) / (Ht + Hv) compares its uncertainty on the text with its uncertainty on the "
        "image (negative: more "
        "confident in the text). The <b>balance point</b> is the dH at which it follows the text half of the "
        "time: below 0 the model prefers the image when both are equally uncertain, above 0 the text.</p>",
        "<ul>",
    ]
    for run in runs:
        preference = run.summary.inherent_preference()
        parts.append(
            f'<li><b>{e(run.label)}</b> ({e(run.task)}): <span class="pref {e(preference.modality)}">'
            f"{e(preference.text)}</span></li>"
        )
    parts.append("</ul>")
    # One pair of figures per task: the tasks' tiers and answer sets differ, so their curves are not overlaid.
    for task in dict.fromkeys(run.task for run in runs):
        for key, caption in (
            ("curve", "P(follow text) against dH"),
            ("entropy", "Entropy per difficulty tier"),
        ):
            name = images.get(f"{key}-{task}")
            if name:
                title = f"{caption}: {task}"
                parts.append(f'<h2>{e(title)}</h2><img src="{e(name)}" alt="{e(title)}">')
    for index, run in enumerate(runs):
        parts.append(f"<h2>{e(run.label)}</h2>")
        parts.append(
            f"<p>task <code>{e(run.task)}</code>, results <code>{e(str(run.results_json))}</code>"
            + (f", {len(run.records)} per-doc records" if run.records else ", no per-sample log")
            + "</p>"
        )
        for (date, preamble), count in sorted(run.prompts.items(), key=lambda item: -item[1]):
            parts.append(
                f"<p>{count} prompts rendered on the template date {e(date)}; before the question the chat "
                f"template wrote:</p><pre>{e(preamble)}</pre>"
            )
        parts.extend(f'<p class="warn">warning: {e(warning)}</p>' for warning in run.warnings)
        if not run.summary.ok:
            parts.append(f"<p>No report: {e(str(run.summary.get('reason', 'undefined')))}</p>")
            continue
        parts += _table(("quantity", "value", "95% interval"), summary_rows(run.summary))
        by_attribute = attribute_rows(run.summary)
        if by_attribute:
            header = ("attribute", "TFR", "95% interval", "balance point", "95% interval")
            parts += _table(header, by_attribute)
        heatmap = images.get(f"heatmap-{index}")
        if heatmap:
            parts.append(f'<img src="{e(heatmap)}" alt="TFR per tier of {e(run.label)}">')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(runs: Sequence[TaskResult], out: Path) -> Path:
    """Write the PNG plots and ``index.html`` for ``runs`` into ``out``; return the page's path. Every summary
    is checked first; the files are made in a hidden folder and moved in only when all exist, so a failure
    leaves nothing half-written behind."""
    for run in runs:
        run.summary.check()
    out = Path(out)
    created = not out.exists()
    out = ensure_folder(out)
    staging = Path(tempfile.mkdtemp(prefix=".report-", dir=out))
    try:
        ready = [run for run in runs if run.summary.ok]
        images: dict[str, str] = {}
        tasks = list(dict.fromkeys(run.task for run in ready))
        for task in tasks:
            of_task = [run for run in ready if run.task == task]
            # File names carry the task only when the report holds several.
            suffix = f"_{_slug(task)}" if len(tasks) > 1 else ""
            curve = plot_following_curve(of_task, staging / f"following_curve{suffix}.png")
            entropy = plot_entropy_by_tier(of_task, staging / f"entropy_by_tier{suffix}.png")
            images[f"curve-{task}"], images[f"entropy-{task}"] = curve.name, entropy.name
        for index, run in enumerate(runs):
            if run.summary.ok:
                name = f"tfr_heatmap_{index + 1:02d}_{_slug(run.label)}.png"
                images[f"heatmap-{index}"] = plot_tfr_heatmap(run, staging / name).name
        (staging / "index.html").write_text(render_html(runs, images), encoding="utf-8")
        for path in sorted(staging.iterdir(), key=lambda p: p.name == "index.html"):  # the page last
            os.replace(path, out / path.name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    staging.rmdir()
    return out / "index.html"
