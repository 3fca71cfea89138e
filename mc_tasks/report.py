"""``modality-conflict report``: plots and an HTML page from lmms-eval result folders.

Everything is read from what lmms-eval left on disk: ``<date_id>_results.json`` (the task's aggregated
``report`` metric and its configuration) and ``<date_id>_samples_<task>.jsonl`` (the per-doc records that
``process_results`` emitted). The model is never run again. What the plots draw is the run's own report
(binned curve with Wilson intervals, logistic fit, balance point and its interval, per-tier tables), so a
plot can never disagree with the numbers in the results file; the per-doc records add the spread of the
unimodal entropies per tier.
"""

from __future__ import annotations

import argparse
import html
import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

RECORD_KEY = "report"  # every metric key of a sample holds the same record; this one always exists
RESULTS_SUFFIX = "_results.json"
MAX_RESULTS_BYTES = 64 * 1024 * 1024


# --- reading lmms-eval output folders --------------------------------------------------------------------


@dataclass(frozen=True)
class TaskRun:
    """One modality_conflict task of one lmms-eval run, as found on disk.

    Attributes
    ----------
    task
        The lmms-eval task name (e.g. ``modality_conflict_color``).
    results_json
        The ``*_results.json`` file the run wrote.
    samples_jsonl
        The task's per-sample log, or None when the run was made without ``--log_samples``.
    results
        The whole parsed results file (configuration, versions, model arguments).
    report
        The task's ``report`` metric: the flat dict of :func:`task_logic.build_report`.
    records
        Per-doc records from the sample log, in file order (empty without a sample log).
    label
        A short name for plots and tables (the model folder, plus the task when it is not the main one).
    """

    task: str
    results_json: Path
    samples_jsonl: Path | None
    results: dict[str, Any]
    report: dict[str, Any]
    records: tuple[dict[str, Any], ...] = field(repr=False)
    label: str = ""

    @property
    def task_config(self) -> dict[str, Any]:
        """The task's configuration as lmms-eval recorded it (empty when absent)."""
        configs = self.results.get("configs")
        config = configs.get(self.task) if isinstance(configs, dict) else None
        return config if isinstance(config, dict) else {}


def _read_json_file(path: Path, max_bytes: int = MAX_RESULTS_BYTES) -> dict[str, Any]:
    size = path.stat().st_size
    if size > max_bytes:
        raise ValueError(f"{path} is {size} bytes, more than the {max_bytes} this command reads")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a JSON file: {error}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object")
    return data


def find_results_files(path: Path) -> list[Path]:
    """The newest ``*_results.json`` of every folder under ``path`` (or ``path`` itself if it is one).

    lmms-eval writes one folder per model and names files by start time (``2025-01-31T12-00-00.123``),
    so within a folder the lexicographically last file is the latest run of that model.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist or holds no results file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    if path.is_file():
        if not path.name.endswith(RESULTS_SUFFIX):
            raise ValueError(f"{path} is not an lmms-eval results file (*{RESULTS_SUFFIX})")
        return [path]
    newest: dict[Path, Path] = {}
    for candidate in sorted(path.rglob(f"*{RESULTS_SUFFIX}")):
        if candidate.is_file():
            newest[candidate.parent] = candidate  # sorted, so the last one per folder wins
    if not newest:
        raise FileNotFoundError(f"no lmms-eval results (*{RESULTS_SUFFIX}) under {path}")
    return [newest[folder] for folder in sorted(newest)]


def iter_samples(path: Path) -> Iterator[tuple[int, dict[str, Any], dict[str, Any]]]:
    """``(line number, sample, record)`` for each doc of an lmms-eval sample log, one line at a time.

    Each line of the log is one doc; its ``report`` key holds the record that ``process_results`` returned
    (the same dict stands under every metric key).

    Raises
    ------
    ValueError
        When a line is not JSON or has no record, naming the line.
    """
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                sample = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}:{number}: not a JSON line ({error})") from None
            record = sample.get(RECORD_KEY) if isinstance(sample, dict) else None
            if not isinstance(record, dict) or "row_id" not in record:
                raise ValueError(f"{path}:{number}: no per-doc record under {RECORD_KEY!r}")
            yield number, sample, record


def read_sample_records(path: Path) -> list[dict[str, Any]]:
    """The per-doc records of an lmms-eval sample log (logit-lens data in the responses is not kept)."""
    return [record for _, _, record in iter_samples(path)]


def _task_reports(results: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    per_task = results.get("results")
    if not isinstance(per_task, dict):
        return
    for task, metrics in sorted(per_task.items()):
        report = metrics.get(f"{RECORD_KEY},none") if isinstance(metrics, dict) else None
        if isinstance(report, dict):
            yield task, report


def load_task_runs(
    paths: Sequence[Path], *, tasks: Sequence[str] | None = None, require_samples: bool = False
) -> list[TaskRun]:
    """Every modality_conflict task result found under ``paths``.

    Parameters
    ----------
    paths
        Result folders (an lmms-eval ``--output_path``, one model folder below it) or results files.
    tasks
        Keep only these task names; default all tasks that have a ``report`` metric.
    require_samples
        Raise when a task has no per-sample log (submissions need the records).

    Returns
    -------
    list of TaskRun
        In the order of ``paths``, then folder, then task name. Labels are made unique.

    Raises
    ------
    FileNotFoundError
        When a path has no results, or no task of ``tasks`` is found.
    """
    runs: list[TaskRun] = []
    for path in paths:
        found = 0
        for results_json in find_results_files(Path(path)):
            results = _read_json_file(results_json)
            stem = results_json.name[: -len(RESULTS_SUFFIX)]
            for task, report in _task_reports(results):
                if tasks and task not in tasks:
                    continue
                samples = results_json.parent / f"{stem}_samples_{task}.jsonl"
                if not samples.is_file():
                    if require_samples:
                        raise FileNotFoundError(
                            f"{results_json}: task {task!r} has no sample log {samples.name}; "
                            "rerun lmms-eval with --log_samples"
                        )
                    samples_path, records = None, []
                else:
                    samples_path, records = samples, read_sample_records(samples)
                label = results_json.parent.name
                runs.append(TaskRun(task, results_json, samples_path, results, report, tuple(records), label))
                found += 1
        if not found:
            wanted = f" for tasks {list(tasks)}" if tasks else ""
            raise FileNotFoundError(f"no modality_conflict report{wanted} in the results under {path}")
    return _unique_labels(runs)


def _unique_labels(runs: list[TaskRun]) -> list[TaskRun]:
    main_only = all(run.task == "modality_conflict_color" for run in runs)
    labelled = [
        run if main_only else TaskRun(**{**run.__dict__, "label": f"{run.label} / {run.task}"})
        for run in runs
    ]
    seen: dict[str, int] = {}
    out = []
    for run in labelled:
        count = seen.get(run.label, 0)
        seen[run.label] = count + 1
        out.append(run if count == 0 else TaskRun(**{**run.__dict__, "label": f"{run.label} ({count + 1})"}))
    return out


# --- numbers for the plots -------------------------------------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _tier_dict(report: Mapping[str, Any], key: str) -> dict[int, float]:
    table = report.get(key)
    if not isinstance(table, dict):
        return {}
    out = {}
    for tier, value in table.items():
        number = _number(value)
        if number is not None:
            out[int(tier)] = number
    return dict(sorted(out.items()))


def entropy_spread(records: Sequence[Mapping[str, Any]], condition: str) -> dict[int, tuple[float, int]]:
    """Per tier, the half-width of a normal 95% interval of the mean entropy, and the number of prompts.

    Only main-set (``control == "none"``) unimodal records of ``condition`` with an entropy count; each
    unimodal prompt is one record, which is the unit the report's per-tier means average over.
    """
    tier_key = "visual_tier" if condition == "vision_only" else "text_tier"
    values: dict[int, list[float]] = {}
    for record in records:
        if record.get("condition") != condition or record.get("control") != "none":
            continue
        entropy = _number(record.get("entropy"))
        if entropy is not None:
            values.setdefault(int(record[tier_key]), []).append(entropy)
    out = {}
    for tier, entries in sorted(values.items()):
        array = np.asarray(entries)
        half = 1.96 * float(array.std(ddof=1)) / math.sqrt(array.size) if array.size > 1 else 0.0
        out[tier] = (half, int(array.size))
    return out


@dataclass(frozen=True)
class Preference:
    """The model's inherent preference as one phrase, read off the balance point and its interval."""

    modality: str  # "vision", "text", "none" (interval covers 0) or "unknown"
    text: str


def inherent_preference(report: Mapping[str, Any]) -> Preference:
    """Which modality the model follows when both are equally uncertain (dH = 0).

    The balance point is where P(follow text) = 0.5 and the curve falls with dH, so a balance point below
    zero means the model already follows the image at equal uncertainty. The call is made only when the
    whole confidence interval lies on one side of zero; a censored estimate counts when its bound does.
    """
    status = report.get("balance_point_status")
    estimate = _number(report.get("balance_point"))
    low, high = _number(report.get("balance_point_ci_low")), _number(report.get("balance_point_ci_high"))
    method = report.get("balance_point_ci_method") or "delta"
    if status == "ok" and estimate is not None:
        interval = f" (balance point {estimate:+.3f}" + (
            f", 95% CI [{low:+.3f}, {high:+.3f}], {method})" if low is not None and high is not None else ")"
        )
        if low is not None and high is not None and high < 0:
            return Preference("vision", "prefers the image" + interval)
        if low is not None and high is not None and low > 0:
            return Preference("text", "prefers the text" + interval)
        return Preference("none", "no clear preference: the interval includes 0" + interval)
    bound = _number(report.get("balance_point_bound"))
    if status == "censored_below" and bound is not None:
        side = Preference("vision", "") if bound <= 0 else Preference("unknown", "")
        phrase = "prefers the image" if side.modality == "vision" else "preference unclear"
        return Preference(
            side.modality, f"{phrase} (the curve crosses 0.5 below the smallest dH, {bound:+.3f})"
        )
    if status == "censored_above" and bound is not None:
        modality = "text" if bound >= 0 else "unknown"
        phrase = "prefers the text" if modality == "text" else "preference unclear"
        return Preference(modality, f"{phrase} (the curve crosses 0.5 above the largest dH, {bound:+.3f})")
    reason = report.get("balance_point_reason") or report.get("reason") or "undefined"
    return Preference("unknown", f"no balance point ({status or 'undefined'}: {reason})")


# --- plots -----------------------------------------------------------------------------------------------

COLORS_CYCLE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
DH_LABEL = "relative uncertainty dH = 2 (Ht - Hv) / (Ht + Hv)"


def _figure(width: float, height: float) -> Any:
    # The object-oriented API with an Agg canvas: no pyplot state, no GUI backend, safe in threads.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Any, path: Path) -> Path:
    figure.savefig(path, format="png")
    return path


def plot_following_curve(runs: Sequence[TaskRun], path: Path) -> Path:
    """P(follow text) against dH for every run: binned points with Wilson intervals, the fitted logistic
    curve over the observed dH range, and the balance point with its confidence band."""
    figure = _figure(8.0, 5.2 + 0.25 * len(runs))
    axes = figure.add_subplot()
    axes.axhline(0.5, color="0.6", lw=0.8, ls=":")
    axes.axvline(0.0, color="0.6", lw=0.8, ls=":")
    drawn = 0
    for index, run in enumerate(runs):
        colour = COLORS_CYCLE[index % len(COLORS_CYCLE)]
        report = run.report
        curve = report.get("binned_curve") if isinstance(report.get("binned_curve"), dict) else None
        preference = inherent_preference(report)
        label = f"{run.label}: {preference.text}"
        if curve is None:
            axes.plot(
                [], [], color=colour, label=f"{run.label}: no curve ({report.get('binned_curve_reason')})"
            )
            continue
        drawn += 1
        centres = np.asarray(curve["centres"], dtype=float)
        rate = np.array([np.nan if v is None else v for v in curve["tfr"]], dtype=float)
        low = np.array([np.nan if v is None else v for v in curve["tfr_ci_low"]], dtype=float)
        high = np.array([np.nan if v is None else v for v in curve["tfr_ci_high"]], dtype=float)
        shown = np.isfinite(rate)
        axes.errorbar(
            centres[shown],
            rate[shown],
            yerr=[rate[shown] - low[shown], high[shown] - rate[shown]],
            fmt="o",
            color=colour,
            ms=5,
            capsize=3,
            lw=1,
            alpha=0.9,
        )
        intercept, slope = _number(report.get("logistic_intercept")), _number(report.get("logistic_slope"))
        edges = np.asarray(curve["edges"], dtype=float)
        if intercept is not None and slope is not None:
            grid = np.linspace(edges[0], edges[-1], 200)
            axes.plot(
                grid, 1.0 / (1.0 + np.exp(-(intercept + slope * grid))), color=colour, lw=2, label=label
            )
        else:
            axes.plot([], [], color=colour, lw=2, label=label)
        estimate = _number(report.get("balance_point"))
        ci_low, ci_high = (
            _number(report.get("balance_point_ci_low")),
            _number(report.get("balance_point_ci_high")),
        )
        if estimate is not None:
            if ci_low is not None and ci_high is not None:
                axes.axvspan(ci_low, ci_high, color=colour, alpha=0.15, lw=0)
                axes.errorbar(
                    [estimate],
                    [0.5],
                    xerr=[[estimate - ci_low], [ci_high - estimate]],
                    fmt="none",
                    ecolor=colour,
                    capsize=5,
                    lw=2,
                )
            axes.plot([estimate], [0.5], marker="D", ms=9, color=colour, mec="black", zorder=5)
        bound = _number(report.get("balance_point_bound"))
        if estimate is None and bound is not None:
            arrow = "<" if report.get("balance_point_status") == "censored_below" else ">"
            axes.plot([bound], [0.5], marker=arrow, ms=12, color=colour, mec="black", zorder=5)
    axes.set_xlabel(
        f"{DH_LABEL}\n\u2190 more confident in the text          more confident in the image \u2192"
    )
    axes.set_ylabel("P(follow text)")
    axes.set_ylim(-0.03, 1.03)
    axes.set_xlim(-2.05, 2.05)  # the whole range of dH, so that reports of different runs line up
    if not drawn:
        axes.text(
            0, 0.5, "no conflict was answered with the text or the image answer", ha="center", va="bottom"
        )
    axes.set_title(
        "Text-following against relative uncertainty (diamond: balance point, band: 95% CI)", fontsize=10
    )
    axes.grid(alpha=0.25)
    # Below the axes: long labels (one per model) must never hide the points.
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), fontsize=8, frameon=False)
    return _save(figure, path)


def plot_entropy_by_tier(runs: Sequence[TaskRun], path: Path) -> Path:
    """Mean vision-only entropy per visual tier and mean text-only entropy per text tier, runs overlaid.

    Means are the run's reported per-tier means; error bars (95%, normal) come from its per-doc records.
    """
    from modality_conflict.dataset_builder.constants import TEXT_TIER_NAMES

    figure = _figure(10.0, 4.2)
    vision_axes, text_axes = figure.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1]})
    offsets = np.linspace(-0.15, 0.15, len(runs)) if len(runs) > 1 else np.zeros(1)
    for index, run in enumerate(runs):
        colour = COLORS_CYCLE[index % len(COLORS_CYCLE)]
        for axes, key, condition in (
            (vision_axes, "mean_hv_by_tier", "vision_only"),
            (text_axes, "mean_ht_by_tier", "text_only"),
        ):
            means = _tier_dict(run.report, key)
            if not means:
                continue
            spread = entropy_spread(run.records, condition)
            tiers = np.array(list(means), dtype=float)
            values = np.array(list(means.values()))
            errors = np.array([spread.get(int(t), (0.0, 0))[0] for t in tiers])
            axes.errorbar(
                tiers + offsets[index],
                values,
                yerr=errors,
                fmt="-o",
                color=colour,
                capsize=3,
                ms=4,
                label=run.label,
            )
    vision_axes.set_xlabel("visual difficulty tier dv")
    vision_axes.set_ylabel("mean entropy Hv (nats)")
    vision_axes.set_title("Vision-only entropy")
    text_axes.set_xlabel("text difficulty tier dt")
    text_axes.set_ylabel("mean entropy Ht (nats)")
    text_axes.set_title("Text-only entropy")
    text_axes.set_xticks(
        range(len(TEXT_TIER_NAMES)), [f"{i}\n{n}" for i, n in enumerate(TEXT_TIER_NAMES)], fontsize=7
    )
    for axes in (vision_axes, text_axes):
        axes.grid(alpha=0.3)
        axes.set_ylim(bottom=0)
    vision_axes.legend(fontsize=8)
    return _save(figure, path)


def plot_tfr_heatmap(run: TaskRun, path: Path) -> Path:
    """TFR per (visual tier, text tier) cell, annotated with the rate and the number of conflicts."""
    cells = run.report.get("tfr_by_tier_cell")
    counts = run.report.get("n_by_tier_cell") if isinstance(run.report.get("n_by_tier_cell"), dict) else {}
    figure = _figure(5.6, 6.0)
    axes = figure.add_subplot()
    if not isinstance(cells, dict) or not cells:
        axes.text(0.5, 0.5, "no per-tier TFR in this run", ha="center", va="center")
        axes.set_axis_off()
        return _save(figure, path)
    visual = sorted(int(v) for v in cells)
    text = sorted({int(t) for row in cells.values() for t in row})
    grid = np.full((len(visual), len(text)), np.nan)
    for i, dv in enumerate(visual):
        for j, dt in enumerate(text):
            value = _number(cells[str(dv)].get(str(dt)))
            grid[i, j] = np.nan if value is None else value
    from matplotlib import colormaps

    palette = colormaps["coolwarm"].with_extremes(bad="0.85")  # cells without conflicts in grey
    image = axes.imshow(np.ma.masked_invalid(grid), cmap=palette, vmin=0.0, vmax=1.0, aspect="auto")
    for i, dv in enumerate(visual):
        for j, dt in enumerate(text):
            n = (counts.get(str(dv)) or {}).get(str(dt), 0)
            shown = "n/a" if np.isnan(grid[i, j]) else f"{grid[i, j]:.2f}"
            axes.text(
                j,
                i,
                f"{shown}\nn={n}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if not np.isnan(grid[i, j]) and abs(grid[i, j] - 0.5) > 0.3 else "black",
            )
    axes.set_xticks(range(len(text)), [str(t) for t in text])
    axes.set_yticks(range(len(visual)), [str(v) for v in visual])
    axes.set_xlabel("text difficulty tier dt")
    axes.set_ylabel("visual difficulty tier dv")
    axes.set_title(f"TFR by tier: {run.label}", fontsize=9)
    figure.colorbar(image, ax=axes, label="text-following rate (1 = always the text)")
    return _save(figure, path)


# --- the page --------------------------------------------------------------------------------------------


def _fmt(value: Any, signed: bool = False) -> str:
    number = _number(value)
    if number is None:
        return "n/a"
    return f"{number:+.3f}" if signed else f"{number:.3f}"


def _interval(report: Mapping[str, Any], low_key: str, high_key: str, signed: bool = False) -> str:
    low, high = _number(report.get(low_key)), _number(report.get(high_key))
    return "" if low is None or high is None else f"[{_fmt(low, signed)}, {_fmt(high, signed)}]"


def summary_rows(report: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(quantity, value, 95% interval) rows of a run's table."""
    method = report.get("balance_point_ci_method") or "delta"
    balance = _fmt(report.get("balance_point"), True)
    if report.get("balance_point_status") not in (None, "ok"):
        bound = _number(report.get("balance_point_bound"))
        balance = f"{report.get('balance_point_status')}" + (
            f" (bound {bound:+.3f})" if bound is not None else ""
        )
    controls = report.get("controls") if isinstance(report.get("controls"), dict) else {}
    rows = [
        (
            "balance point",
            balance,
            _interval(report, "balance_point_ci_low", "balance_point_ci_high", True)
            + (f" ({method})" if _number(report.get("balance_point_ci_low")) is not None else ""),
        ),
        (
            "balance point, delta method",
            _fmt(report.get("balance_point"), True),
            _interval(report, "balance_point_delta_low", "balance_point_delta_high", True),
        ),
        ("balance point, isotonic check", _fmt(report.get("balance_point_isotonic"), True), ""),
        (
            "TFR (text-following rate)",
            _fmt(report.get("tfr")),
            _interval(report, "tfr_ci_low", "tfr_ci_high"),
        ),
        (
            "VFR (vision-following rate)",
            _fmt(report.get("vfr")),
            _interval(report, "vfr_ci_low", "vfr_ci_high"),
        ),
        (
            "other answers",
            _fmt(report.get("other_rate")),
            _interval(report, "other_rate_ci_low", "other_rate_ci_high"),
        ),
        (
            "TFR, both unimodal answers correct",
            _fmt(report.get("tfr_correct")),
            _interval(report, "tfr_ci_low_correct", "tfr_ci_high_correct"),
        ),
        ("mean Hv (nats)", _fmt(report.get("mean_hv")), ""),
        ("mean Ht (nats)", _fmt(report.get("mean_ht")), ""),
        ("mean dH", _fmt(report.get("mean_dh"), True), ""),
        (
            "law: logistic slope of P(follow text) on dH",
            f"{_fmt(report.get('logistic_slope'), True)} ({report.get('law_verdict', 'n/a')})",
            _interval(report, "law_slope_ci_low", "law_slope_ci_high", True),
        ),
        ("conflicts", str(report.get("n_conflicts", "n/a")), ""),
        ("entropy estimator", str(report.get("entropy_estimator", "n/a")), ""),
    ]
    for control, entry in sorted(controls.items()):
        if not isinstance(entry, dict):
            continue
        # The control's relevant modality should win: its following rate and that rate's interval.
        relevant = entry.get("relevant_modality")
        rate = "vfr" if relevant == "vision" else "tfr"
        rows.append(
            (
                f"control {control} ({entry.get('n_conflicts', 0)} conflicts): "
                f"follows the relevant {'image' if relevant == 'vision' else 'text'}",
                _fmt(entry.get("relevant_rate")),
                _interval(entry, f"{rate}_ci_low", f"{rate}_ci_high"),
            )
        )
    return rows


def _slug(text: str) -> str:
    kept = "".join(c if c.isalnum() or c in "-_" else "_" for c in text)
    return kept.strip("_")[:80] or "run"


def render_html(runs: Sequence[TaskRun], images: Mapping[str, str]) -> str:
    """The report page: how to read it, the overlaid plots, and per run its preference, table and heatmap."""
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>modality-conflict report</title>',
        "<style>body{font-family:sans-serif;margin:2em;max-width:70em}"
        "table{border-collapse:collapse;margin:0.5em 0}"
        "td,th{border:1px solid #bbb;padding:0.25em 0.6em}td.n{text-align:right}th{background:#eee}"
        ".pref{font-size:1.2em;font-weight:bold}.vision{color:#1f5fa8}.text{color:#b22222}"
        "img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}</style></head><body>",
        "<h1>modality-conflict report</h1>",
        "<p>Each model answered a colour question from the image alone, the text alone and both. "
        "dH = 2 (Ht &minus; Hv) / (Ht + Hv) compares its uncertainty on the text with its uncertainty on the "
        "image (negative: more "
        "confident in the text). The <b>balance point</b> is the dH at which it follows the text half of the "
        "time: below 0 the model prefers the image when both are equally uncertain, above 0 the text.</p>",
        "<ul>",
    ]
    for run in runs:
        preference = inherent_preference(run.report)
        parts.append(
            f'<li><b>{e(run.label)}</b> ({e(run.task)}): <span class="pref {e(preference.modality)}">'
            f"{e(preference.text)}</span></li>"
        )
    parts.append("</ul>")
    for key, caption in (("curve", "P(follow text) against dH"), ("entropy", "Entropy per difficulty tier")):
        if key in images:
            parts.append(f'<h2>{e(caption)}</h2><img src="{e(images[key])}" alt="{e(caption)}">')
    for index, run in enumerate(runs):
        parts.append(f"<h2>{e(run.label)}</h2>")
        parts.append(
            f"<p>task <code>{e(run.task)}</code>, results <code>{e(str(run.results_json))}</code>"
            + (f", {len(run.records)} per-doc records" if run.records else ", no per-sample log")
            + "</p>"
        )
        if run.report.get("status") != "ok":
            parts.append(f"<p>No report: {e(str(run.report.get('reason', 'undefined')))}</p>")
            continue
        parts.append(
            "<table><thead><tr><th>quantity</th><th>value</th><th>95% interval</th></tr></thead><tbody>"
        )
        for name, value, interval in summary_rows(run.report):
            parts.append(
                f'<tr><td>{e(name)}</td><td class="n">{e(value)}</td><td class="n">{e(interval)}</td></tr>'
            )
        parts.append("</tbody></table>")
        heatmap = images.get(f"heatmap-{index}")
        if heatmap:
            parts.append(f'<img src="{e(heatmap)}" alt="TFR per tier of {e(run.label)}">')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def write_report(runs: Sequence[TaskRun], out: Path) -> Path:
    """Write the PNG plots and ``index.html`` for ``runs`` into ``out``; return the page's path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ready = [run for run in runs if run.report.get("status") == "ok"]
    images: dict[str, str] = {}
    if ready:
        images["curve"] = plot_following_curve(ready, out / "following_curve.png").name
        images["entropy"] = plot_entropy_by_tier(ready, out / "entropy_by_tier.png").name
    for index, run in enumerate(runs):
        if run.report.get("status") == "ok":
            name = f"tfr_heatmap_{index + 1:02d}_{_slug(run.label)}.png"
            images[f"heatmap-{index}"] = plot_tfr_heatmap(run, out / name).name
    page = out / "index.html"
    page.write_text(render_html(runs, images), encoding="utf-8")
    return page


def run_report(args: argparse.Namespace) -> int:
    """``modality-conflict report``: write the plots and the page, print each run's preference."""
    runs = load_task_runs([Path(p) for p in args.results], tasks=args.task or None)
    page = write_report(runs, Path(args.out))
    for run in runs:
        print(f"{run.label} ({run.task}): {inherent_preference(run.report).text}")
    print(f"report: {page}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> None:
    """Register the ``report`` subcommand."""
    parser = subparsers.add_parser(name, help="plots and an HTML page from lmms-eval result folders")
    parser.add_argument(
        "results", nargs="+", help="lmms-eval --output_path folders, model folders or results files"
    )
    parser.add_argument("--out", default="report", help="output folder (default: report)")
    parser.add_argument("--task", action="append", help="only this task (repeatable)")
    parser.set_defaults(func=run_report)
