"""``modality-conflict probe``: the logit lens at the answer position, layer by layer, on conflict items.

For every conflict item (method.md, "Layer-wise probing") each decoder layer's hidden state at the answer
position goes through the model's own final norm and LM head (:mod:`modality_conflict.models.logit_lens`);
the layer's top-1 token is labelled *vision* when it is the first token of the model's vision-only answer
Yv, *text* when it is the first token of its text-only answer Yt, and *other* otherwise. The oscillation
count is the number of switches between vision and text, ignoring *other* layers
(:func:`modality_conflict.metrics.probing.count_oscillations`). Per layer, logit(Yt) - logit(Yv) is kept
too, and averaged into a heatmap by layer and dH bin.

Where the lens data come from
    The project's lmms-eval model (``modality_conflict_hf``) records the lens in the same ``generate`` call
    that produces the answer and its entropy, and packs it into the response envelope. So probing never
    needs a second forward pass:

    - ``--results DIR``: an lmms-eval output folder of a run with ``--model modality_conflict_hf
      --log_samples``. Answers, keys and entropies are the per-doc records of the sample log, the lens is
      the envelope of each conflict row, the balance point is the run's report. No model is loaded, unless
      the logs carry no lens data and ``--model`` is given (then the model runs on those conflict rows only).
    - ``--model ID --data DIR``: the wrapper answers the dataset rows (vision-only and text-only rows give
      Yv, Yt, Hv, Ht; conflict rows give Ym and the lens); the records and the balance point are computed
      exactly as the task computes them (:func:`task_logic.make_record`, :func:`task_logic.build_report`).

Answer tokens
    Multi-token answers are tracked by their first token only. Case is ignored: a colour's tokens are its
    lowercase and capitalised first tokens as they follow the chat template's answer prefix (the wrapper
    records both), a layer's top-1 counts for the colour when it is either, and the colour's logit at a
    layer is the larger of the two.

Regions
    Ambiguous: ``|dH - balance point| <= radius`` (default 0.5); clear: the rest. When the balance point is
    undefined or censored the regions are reported as undefined with the reason, unless ``--balance-point``
    sets one.
"""

from __future__ import annotations

import argparse
import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from modality_conflict.dataset_builder.constants import COLORS, CONTROLS
from modality_conflict.dataset_builder.errors import ModalityConflictError
from modality_conflict.mc_tasks import task_logic
from modality_conflict.mc_tasks.report import iter_samples, load_task_runs
from modality_conflict.metrics.following import classify_following
from modality_conflict.metrics.probing import count_oscillations, oscillation_summary
from modality_conflict.metrics.uncertainty import relative_uncertainty
from modality_conflict.models.envelope import decode_envelope

__all__ = [
    "FIRST_TOKEN_NOTE",
    "GENERATION_KWARGS",
    "ProbeError",
    "ProbeResult",
    "add_parser",
    "heatmap_grid",
    "load_rows",
    "plot_heatmap",
    "probe_from_model",
    "probe_from_results",
    "probe_item",
    "read_sample_envelopes",
    "run_probe",
    "summarize_oscillations",
    "write_outputs",
]

FIRST_TOKEN_NOTE = "multi-token answers: first token only"
ANSWER_FORMS_NOTE = (
    "case-insensitive: a colour's tokens are its lowercase and capitalised first tokens; its logit at a "
    "layer is the larger of the two"
)
TASK_NAME = "modality_conflict_color"
# The greedy settings of the task YAML (_default_template_yaml), plus lmms-eval's default stop string.
GENERATION_KWARGS: dict[str, Any] = {
    "max_new_tokens": 8,
    "temperature": 0,
    "do_sample": False,
    "num_beams": 1,
    "until": ["\n\n"],
}
DH_RANGE = (-2.0, 2.0)
SKIP_REASONS = {
    "not_conflict": "the vision-only and text-only answers agree (Yv == Yt)",
    "unimodal_other": "a unimodal answer is not a colour (Yv or Yt is 'other')",
    "no_lens": "the conflict row has no logit-lens record",
    "same_first_token": "Yv and Yt start with the same token",
    "incomplete": "the conflict row's vision-only or text-only row is missing",
}


class ProbeError(ModalityConflictError, ValueError):
    """The probe cannot run on what it was given (missing lens data, bad folders, bad options)."""


# --- one item ---------------------------------------------------------------------------------------------


def _check_lens(lens: object) -> str | None:
    """Why ``lens`` is not a logit-lens record of :func:`logit_lens.lens_records`, or None when it is."""
    if not isinstance(lens, Mapping):
        return "not a mapping"
    n_layers = lens.get("n_layers")
    if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
        return "no positive 'n_layers'"
    ids = lens.get("answer_token_ids")
    if not isinstance(ids, Mapping) or any(not isinstance(ids.get(c), int) for c in COLORS):
        return f"'answer_token_ids' lacks an integer id for one of {list(COLORS)}"
    for key in ("top1_ids", "answer_logits"):
        value = lens.get(key)
        if not isinstance(value, list) or len(value) != n_layers:
            return f"'{key}' is not a list of {n_layers} layers"
    if any(not isinstance(row, list) or len(row) != len(ids) for row in lens["answer_logits"]):
        return f"'answer_logits' rows do not hold {len(ids)} logits"
    return None


def _forms(lens: Mapping[str, Any]) -> list[tuple[dict[str, int], list[list[float | None]]]]:
    """(answer -> token id, per-layer logits in that id order) for each recorded form of the answers."""
    out = []
    for suffix in ("", "_capitalized"):
        ids = lens.get(f"answer_token_ids{suffix}")
        logits = lens.get(f"answer_logits{suffix}")
        if isinstance(ids, Mapping) and isinstance(logits, list) and len(logits) == lens["n_layers"]:
            out.append(({str(k): int(v) for k, v in ids.items()}, logits))
    return out


def answer_token_ids(lens: Mapping[str, Any], answer: str) -> list[int]:
    """The first-token ids of ``answer`` in every form the lens recorded (lowercase, capitalised)."""
    return sorted({ids[answer] for ids, _ in _forms(lens) if answer in ids})


def _answer_logit(lens: Mapping[str, Any], answer: str, layer: int) -> float | None:
    values = []
    for ids, logits in _forms(lens):
        position = list(ids).index(answer)
        value = logits[layer][position]
        if value is None:
            return None  # a non-finite logit: the layer's difference is undefined
        values.append(float(value))
    return max(values) if values else None


def probe_item(lens: Mapping[str, Any], yv: str, yt: str) -> dict[str, Any]:
    """Layer-wise labels, logit differences and oscillations of one conflict item.

    Parameters
    ----------
    lens
        The conflict prompt's logit-lens record (``envelope["lens"]``).
    yv, yt
        The model's vision-only and text-only answers (two different colours).

    Returns
    -------
    dict
        ``n_layers``; ``top1_ids`` and ``top1_tokens`` per layer; ``top1_labels`` per layer ("vision",
        "text" or "other"); ``logit_diff`` per layer, logit(Yt) - logit(Yv) (None where a logit was not
        finite); ``oscillations``; ``yv_token_ids`` and ``yt_token_ids`` (the first tokens matched).

    Raises
    ------
    ProbeError
        When the record is malformed, an answer is not a colour, or Yv and Yt share a first token.
    """
    problem = _check_lens(lens)
    if problem is not None:
        raise ProbeError(f"not a logit-lens record: {problem}")
    for name, answer in (("yv", yv), ("yt", yt)):
        if answer not in COLORS:
            raise ProbeError(f"{name} is {answer!r}, not one of {list(COLORS)}")
    if yv == yt:
        raise ProbeError(f"yv and yt are both {yv!r}: not a conflict")
    vision_ids, text_ids = set(answer_token_ids(lens, yv)), set(answer_token_ids(lens, yt))
    if vision_ids & text_ids:
        raise ProbeError(f"{yv!r} and {yt!r} share the first token {sorted(vision_ids & text_ids)}")
    top1 = [int(t) for t in lens["top1_ids"]]
    labels = ["vision" if t in vision_ids else "text" if t in text_ids else "other" for t in top1]
    diffs: list[float | None] = []
    for layer in range(int(lens["n_layers"])):
        text_logit, vision_logit = _answer_logit(lens, yt, layer), _answer_logit(lens, yv, layer)
        diffs.append(None if text_logit is None or vision_logit is None else text_logit - vision_logit)
    tokens = lens.get("top1_tokens")
    return {
        "n_layers": int(lens["n_layers"]),
        "top1_ids": top1,
        "top1_tokens": [str(t) for t in tokens] if isinstance(tokens, list) else None,
        "top1_labels": labels,
        "logit_diff": diffs,
        "oscillations": int(count_oscillations(labels)),
        "yv_token_ids": sorted(vision_ids),
        "yt_token_ids": sorted(text_ids),
    }


# --- items of a run ---------------------------------------------------------------------------------------


def build_items(
    records: Sequence[Mapping[str, Any]], lenses: Mapping[str, Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], Counter]:
    """Probe every conflict item of a run.

    Parameters
    ----------
    records
        Per-doc records of every row (the task's ``process_results`` output).
    lenses
        Conflict ``row_id`` -> lens record.

    Returns
    -------
    items, skipped
        One dict per probed item (sorted by item id), and how many conflict items were skipped, by reason
        (keys of :data:`SKIP_REASONS`, plus ``incomplete`` for conflict rows without their unimodal rows).
    """
    try:
        items, bookkeeping = task_logic.join_records(records)
    except task_logic.IncompleteRecordsError as error:
        raise ProbeError(f"nothing to probe: {error}") from None
    skipped: Counter = Counter()
    if bookkeeping["n_incomplete_conflicts"]:
        skipped["incomplete"] = int(bookkeeping["n_incomplete_conflicts"])
    following = classify_following(items.yv, items.yt, items.ym)
    has_entropy = np.isfinite(items.hv) & np.isfinite(items.ht)
    dh = np.full(len(items), np.nan)
    if has_entropy.any():
        dh[has_entropy] = relative_uncertainty(items.ht[has_entropy], items.hv[has_entropy])
    out = []
    for i in range(len(items)):
        label = str(following[i])
        if label in ("not_conflict", "unimodal_other"):
            skipped[label] += 1
            continue
        lens = lenses.get(str(items.item_id[i]))
        if lens is None:
            skipped["no_lens"] += 1
            continue
        vision_ids = set(answer_token_ids(lens, str(items.yv[i])))
        if vision_ids & set(answer_token_ids(lens, str(items.yt[i]))):
            skipped["same_first_token"] += 1
            continue
        entry: dict[str, Any] = {
            "item_id": str(items.item_id[i]),
            "group_id": int(items.group_id[i]),
            "control": str(items.control[i]),
            "visual_tier": int(items.visual_tier[i]),
            "text_tier": int(items.text_tier[i]),
            "yv": str(items.yv[i]),
            "yt": str(items.yt[i]),
            "ym": str(items.ym[i]),
            "following": label,
            "hv": float(items.hv[i]) if has_entropy[i] else None,
            "ht": float(items.ht[i]) if has_entropy[i] else None,
            "dh": float(dh[i]) if has_entropy[i] else None,
        }
        entry.update(probe_item(lens, str(items.yv[i]), str(items.yt[i])))
        out.append(entry)
    layers = {item["n_layers"] for item in out}
    if len(layers) > 1:
        raise ProbeError(f"the lens records disagree on the number of layers: {sorted(layers)}")
    return out, skipped


# --- balance point and aggregates -------------------------------------------------------------------------


@dataclass(frozen=True)
class Balance:
    """The balance point the regions are centred on, where it came from, or why there is none."""

    value: float | None
    source: str
    status: str
    reason: str | None = None


def balance_from_report(report: Mapping[str, Any], source: str) -> Balance:
    """The balance point of a task report (:func:`task_logic.build_report`), or why it is undefined."""
    status = str(report.get("balance_point_status") or report.get("status") or "undefined")
    value = report.get("balance_point")
    if status == "ok" and isinstance(value, (int, float)) and math.isfinite(value):
        return Balance(float(value), source, status)
    reason = report.get("balance_point_reason") or report.get("reason") or "no estimate"
    bound = report.get("balance_point_bound")
    if isinstance(bound, (int, float)):
        reason = f"{reason} (bound {bound:+.3f})"
    return Balance(
        None,
        source,
        status,
        f"the balance point is undefined ({status}: {reason}); pass --balance-point X to set the "
        "centre of the ambiguous region",
    )


def _interval_fields(
    summary: Any,
    region: str,
    level: float,
    methods: Sequence[str] = ("t", "bootstrap"),
    no_bootstrap_reason: str | None = None,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for method in methods:
        prefix = "ci" if method == "t" else method
        interval = summary.confidence_interval(level, region=region, method=method)
        out[f"{prefix}_low"], out[f"{prefix}_high"] = interval.low, interval.high
        if interval.reason:
            out[f"{prefix}_reason"] = interval.reason
            if method == "bootstrap" and summary.n_resamples == 0 and no_bootstrap_reason:
                out[f"{prefix}_reason"] = no_bootstrap_reason
    return out


def summarize_oscillations(
    counts: Sequence[int],
    dh: Sequence[float],
    balance: Balance,
    *,
    radius: float = 0.5,
    confidence_level: float = 0.95,
    n_resamples: int = 2000,
    seed: int = task_logic.REPORT_SEED,
) -> dict[str, Any]:
    """Mean oscillations of one set of items, overall and in the ambiguous vs the clear region.

    Intervals: Student t (``ci_*``) and percentile bootstrap over items (``bootstrap_*``), from
    :func:`modality_conflict.metrics.probing.oscillation_summary`. Undefined numbers are None with a reason.
    """
    counts_array = np.asarray(counts, dtype=float)
    dh_array = np.asarray(dh, dtype=float)
    out: dict[str, Any] = {"n_items": int(counts_array.size)}
    if counts_array.size == 0:
        out.update(mean_oscillations=None, reason="no probed items")
        return out
    # The overall mean: every item in one "region" (infinite radius), so it gets the same t interval
    # (oscillation_summary draws bootstrap resamples only when both regions hold items).
    overall = oscillation_summary(
        counts_array, np.zeros(counts_array.size), 0.0, radius=math.inf, n_resamples=0
    )
    out["mean_oscillations"] = overall.mean_ambiguous
    out.update(_interval_fields(overall, "ambiguous", confidence_level, methods=("t",)))
    known = np.isfinite(dh_array)
    if balance.value is None:
        out["regions_reason"] = balance.reason
        return out
    if not known.any():
        out["regions_reason"] = "no item has a dH (the run has no entropies)"
        return out
    if not known.all():
        out["n_without_dh"] = int((~known).sum())
    summary = oscillation_summary(
        counts_array[known],
        dh_array[known],
        balance.value,
        radius=radius,
        n_resamples=n_resamples,
        rng=seed,
    )
    # oscillation_summary resamples only when both regions hold items.
    why = "no bootstrap: a region is empty" if n_resamples > 0 else None
    for region, n, mean in (
        ("ambiguous", summary.n_ambiguous, summary.mean_ambiguous),
        ("clear", summary.n_clear, summary.mean_clear),
    ):
        entry: dict[str, Any] = {"n_items": n, "mean_oscillations": mean}
        if mean is None:
            entry["reason"] = "no items in this region"
        entry.update(_interval_fields(summary, region, confidence_level, no_bootstrap_reason=why))
        out[region] = entry
    difference: dict[str, Any] = {"ambiguous_minus_clear": summary.difference}
    if summary.difference is None:
        difference["reason"] = "a region is empty"
    difference.update(_interval_fields(summary, "difference", confidence_level, no_bootstrap_reason=why))
    out["difference"] = difference
    return out


def aggregate(
    items: Sequence[Mapping[str, Any]],
    balance: Balance,
    *,
    radius: float = 0.5,
    confidence_level: float = 0.95,
    n_resamples: int = 2000,
) -> dict[str, Any]:
    """Per control type (``none`` = the main set), mean oscillations overall and by region."""
    out: dict[str, Any] = {
        "balance_point": balance.value,
        "balance_point_source": balance.source,
        "balance_point_status": balance.status,
        "radius": float(radius),
        "confidence_level": float(confidence_level),
        "interval_methods": "ci_*: Student t over items; bootstrap_*: percentile bootstrap over items "
        "(regions and their difference only)",
        "note": FIRST_TOKEN_NOTE,
    }
    if balance.reason:
        out["balance_point_reason"] = balance.reason
    by_control = {}
    for control in CONTROLS:
        subset = [item for item in items if item["control"] == control]
        by_control[control] = summarize_oscillations(
            [item["oscillations"] for item in subset],
            [math.nan if item["dh"] is None else item["dh"] for item in subset],
            balance,
            radius=radius,
            confidence_level=confidence_level,
            n_resamples=n_resamples,
        )
    out["by_control"] = by_control
    return out


# --- heatmap ----------------------------------------------------------------------------------------------


def heatmap_grid(items: Sequence[Mapping[str, Any]], n_layers: int, bins: int = 8) -> dict[str, Any]:
    """Mean logit(Yt) - logit(Yv) per (layer, dH bin) over the main (``control == "none"``) items.

    Bins are equal-width over dH's whole range [-2, 2] (the last one closed), so heatmaps of different
    runs line up. Returns ``edges`` (bins + 1), ``counts`` (items per bin) and ``mean`` (n_layers x bins,
    None where a bin has no item).
    """
    if int(bins) < 1:
        raise ProbeError(f"bins must be a positive integer, got {bins!r}")
    edges = np.linspace(*DH_RANGE, int(bins) + 1)
    sums = np.zeros((n_layers, int(bins)))
    counts = np.zeros((n_layers, int(bins)), dtype=int)
    per_bin = np.zeros(int(bins), dtype=int)
    for item in items:
        if item["control"] != "none" or item["dh"] is None:
            continue
        column = min(int(np.searchsorted(edges, item["dh"], side="right")) - 1, int(bins) - 1)
        per_bin[column] += 1
        for layer, value in enumerate(item["logit_diff"]):
            if value is not None:
                sums[layer, column] += value
                counts[layer, column] += 1
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return {
        "items": "main items (control 'none') with a dH",
        "edges": [float(e) for e in edges],
        "counts": per_bin.tolist(),
        "mean": [[None if not np.isfinite(v) else float(v) for v in row] for row in mean],
    }


def plot_heatmap(grid: Mapping[str, Any], balance: Balance, radius: float, path: Path, *, title: str) -> Path:
    """Draw the heatmap (layers up, dH bins across; diverging colours centred on 0) as a PNG."""
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    mean = np.array([[np.nan if v is None else v for v in row] for row in grid["mean"]], dtype=float)
    edges = np.asarray(grid["edges"], dtype=float)
    n_layers = mean.shape[0]
    figure = Figure(figsize=(8.0, 1.8 + 0.28 * max(n_layers, 8)), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    limit = float(np.nanmax(np.abs(mean))) if np.isfinite(mean).any() else 1.0
    limit = limit if limit > 0 else 1.0
    palette = colormaps["RdBu_r"].with_extremes(bad="0.85")  # bins without items in grey
    image = axes.pcolormesh(
        edges,
        np.arange(n_layers + 1) + 0.5,
        np.ma.masked_invalid(mean),
        cmap=palette,
        vmin=-limit,
        vmax=limit,
        shading="flat",
    )
    if balance.value is not None:
        axes.axvline(balance.value, color="black", lw=1.5, label=f"balance point {balance.value:+.2f}")
        for edge in (balance.value - radius, balance.value + radius):
            axes.axvline(edge, color="black", lw=1.0, ls="--")
        axes.legend(loc="upper right", fontsize=8, framealpha=0.8)
    centres = (edges[:-1] + edges[1:]) / 2
    axes.set_xticks(edges)
    axes.set_xlim(edges[0], edges[-1])
    for centre, count in zip(centres, grid["counts"], strict=True):
        axes.text(centre, n_layers + 0.5, f"n={count}", ha="center", va="bottom", fontsize=7)
    step = max(1, n_layers // 16)
    axes.set_yticks(range(1, n_layers + 1, step))
    axes.set_ylim(0.5, n_layers + 0.5)
    axes.set_xlabel("relative uncertainty dH = 2 (Ht - Hv) / (Ht + Hv)")
    axes.set_ylabel("decoder layer (logit lens at the answer position)")
    axes.set_title(title, fontsize=9, pad=14)
    figure.colorbar(image, ax=axes, label="mean logit(Yt) - logit(Yv)  (> 0: text answer ahead)")
    figure.savefig(path, format="png")
    return path


# --- the two sources of lens data -------------------------------------------------------------------------


@dataclass
class ProbeResult:
    """Everything one probe produced (see :meth:`to_json` for the file layout)."""

    items: list[dict[str, Any]]
    skipped: dict[str, int]
    balance: Balance
    aggregates: dict[str, Any]
    heatmap: dict[str, Any]
    n_layers: int | None
    provenance: dict[str, Any]
    envelopes: dict[str, str] = field(default_factory=dict, repr=False)
    records: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def to_json(self) -> dict[str, Any]:
        """The content of ``probe.json``."""
        return {
            "note": FIRST_TOKEN_NOTE,
            "answer_tokens": ANSWER_FORMS_NOTE,
            "oscillation": "switches of the layer-wise top-1 between the vision and the text answer; "
            "layers whose top-1 is neither are ignored",
            "n_layers": self.n_layers,
            "n_items": len(self.items),
            "skipped": dict(self.skipped),
            "skipped_reasons": {k: SKIP_REASONS[k] for k in self.skipped},
            "aggregates": self.aggregates,
            "heatmap": self.heatmap,
            "provenance": self.provenance,
            "items": self.items,
        }


def _finish(
    records: list[dict[str, Any]],
    lenses: dict[str, Mapping[str, Any]],
    balance: Balance,
    *,
    radius: float,
    bins: int,
    confidence_level: float,
    n_resamples: int,
    provenance: dict[str, Any],
) -> ProbeResult:
    if not float(radius) > 0 or not math.isfinite(radius):
        raise ProbeError(f"--radius must be a positive number, got {radius!r}")
    items, skipped = build_items(records, lenses)
    n_layers = items[0]["n_layers"] if items else None
    heatmap = heatmap_grid(items, n_layers, bins) if n_layers else {"reason": "no probed items"}
    aggregates = aggregate(
        items, balance, radius=radius, confidence_level=confidence_level, n_resamples=n_resamples
    )
    return ProbeResult(items, dict(skipped), balance, aggregates, heatmap, n_layers, provenance)


def _lens_of(envelope: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    lens = envelope.get("lens") if envelope is not None else None
    return lens if lens is not None and _check_lens(lens) is None else None


def _first_string(value: object) -> str | None:
    while isinstance(value, list) and value:
        value = value[0]
    return value if isinstance(value, str) else None


def read_sample_envelopes(path: Path) -> dict[str, dict[str, Any]]:
    """``row_id -> envelope`` of the conflict rows of an lmms-eval sample log.

    Reads the log with :func:`modality_conflict.mc_tasks.report.iter_samples` and keeps what
    ``read_sample_records`` leaves out: the raw response (``resps``, or ``filtered_resps`` where
    lmms-eval dropped an identical ``resps``), decoded as the wrapper's envelope. Rows whose response is
    not an envelope are left out.
    """
    out: dict[str, dict[str, Any]] = {}
    try:
        for _, sample, record in iter_samples(path):
            if record.get("condition") != "conflict":
                continue
            for key in ("resps", "filtered_resps"):
                envelope = decode_envelope(_first_string(sample.get(key)))
                if envelope is not None:
                    out[str(record["row_id"])] = envelope
                    break
    except ValueError as error:
        raise ProbeError(str(error)) from None
    return out


def load_rows(data: Path, *, limit_groups: int | None = None, row_ids: set[str] | None = None) -> Any:
    """The dataset rows of a folder made by ``modality-conflict build``, as a ``datasets.Dataset``.

    Images are decoded only when a row is read, so the rows of a paper-size set fit in memory.

    Parameters
    ----------
    data
        The dataset folder (``data/*.parquet``).
    limit_groups
        Keep the item groups ``0 .. limit_groups - 1`` only.
    row_ids
        Keep only these rows.
    """
    import datasets
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from modality_conflict.dataset_builder.features import FEATURES
    from modality_conflict.dataset_builder.writer import data_files

    folder = Path(data)
    if not folder.is_dir():
        raise ProbeError(f"--data {folder} is not a folder")
    names = data_files(folder)
    if not names:
        raise ProbeError(f"{folder} has no data/*.parquet files (not made by `modality-conflict build`)")
    tables = []
    for name in names:
        table = pq.read_table(folder / name)
        if limit_groups is not None:
            table = table.filter(pc.less(table["group_id"], int(limit_groups)))
        if row_ids is not None:
            table = table.filter(pc.is_in(table["row_id"], pa.array(sorted(row_ids), pa.string())))
        tables.append(table)
    table = pa.concat_tables(tables)
    if table.num_rows == 0:
        raise ProbeError(f"no rows of {folder} are left to probe (limit_groups={limit_groups})")
    return datasets.Dataset(table.cast(FEATURES.arrow_schema), info=datasets.DatasetInfo(features=FEATURES))


def _wrapper(model: Any, wrapper_kwargs: Mapping[str, Any]) -> Any:
    from modality_conflict.models.hf_model import ModalityConflictHF

    if isinstance(model, ModalityConflictHF):
        if model.lens_modules is None:
            raise ProbeError("the model wrapper was made with lens=False; the probe needs lens=True")
        return model
    return ModalityConflictHF(pretrained=str(model), lens=True, **dict(wrapper_kwargs))


def answer_rows(wrapper: Any, rows: Any, *, max_new_tokens: int | None = None) -> list[str]:
    """The wrapper's envelopes for ``rows`` (one ``generate_until`` pass, as lmms-eval would ask)."""
    from lmms_eval.api.instance import Instance

    settings = dict(GENERATION_KWARGS)
    if max_new_tokens is not None:
        settings["max_new_tokens"] = int(max_new_tokens)
    wrapper.task_dict = {TASK_NAME: {"test": rows}}
    requests = [
        Instance(
            "generate_until",
            (task_logic.doc_to_text(rows[i]), dict(settings), task_logic.doc_to_visual, i, TASK_NAME, "test"),
            idx=0,
            metadata={"task": TASK_NAME, "doc_id": i, "repeats": 1},
        )
        for i in range(len(rows))
    ]
    return wrapper.generate_until(requests)


def _provenance_of_wrapper(wrapper: Any, calls_before: int, forwards_before: int) -> dict[str, Any]:
    return {
        "model": str(wrapper.pretrained),
        "model_class": type(wrapper.model).__name__,
        "generate_calls": int(wrapper.n_model_calls - calls_before),
        "forward_passes": int(wrapper.n_forward_passes - forwards_before),
    }


def probe_from_model(
    model: Any,
    data: Path,
    *,
    limit_groups: int | None = None,
    balance_point: float | None = None,
    radius: float = 0.5,
    bins: int = 8,
    confidence_level: float = 0.95,
    n_resamples: int = 2000,
    max_new_tokens: int | None = None,
    wrapper_kwargs: Mapping[str, Any] | None = None,
) -> ProbeResult:
    """Answer the dataset's rows with the project's wrapper and probe the conflict items.

    Parameters
    ----------
    model
        A checkpoint folder or Hub id, or a ready ``ModalityConflictHF`` (made with ``lens=True``).
    data
        A folder made by ``modality-conflict build``.
    limit_groups
        Use the first item groups only.
    balance_point
        Centre of the ambiguous region; default the balance point of the records
        (:func:`task_logic.build_report`).
    radius, bins, confidence_level, n_resamples
        Ambiguous-region half-width, dH bins of the heatmap, interval level, bootstrap resamples.
    max_new_tokens
        Answer length; default the task's (8).
    wrapper_kwargs
        Arguments of ``ModalityConflictHF`` (``device``, ``dtype``, ``batch_size``, ...).

    Returns
    -------
    ProbeResult
        Also holds the records and the envelopes (``row_id -> JSON string``) of every row.
    """
    rows = load_rows(Path(data), limit_groups=limit_groups)
    wrapper = _wrapper(model, wrapper_kwargs or {})
    calls, forwards = wrapper.n_model_calls, wrapper.n_forward_passes
    responses = answer_rows(wrapper, rows, max_new_tokens=max_new_tokens)
    records, envelopes, lenses = [], {}, {}
    for i, response in enumerate(responses):
        row = rows[i]
        record = task_logic.make_record(row, [response])
        records.append(record)
        envelopes[record["row_id"]] = response
        lens = _lens_of(decode_envelope(response))
        if record["condition"] == "conflict" and lens is not None:
            lenses[record["row_id"]] = lens
    if balance_point is not None:
        balance = Balance(float(balance_point), "--balance-point", "given")
    else:
        report = task_logic.build_report(records)
        balance = balance_from_report(report, f"task_logic.build_report over the {len(records)} records")
    provenance = {
        "source": "model",
        "data": str(Path(data)),
        "limit_groups": limit_groups,
        "n_rows": len(rows),
        **_provenance_of_wrapper(wrapper, calls, forwards),
    }
    result = _finish(
        records,
        lenses,
        balance,
        radius=radius,
        bins=bins,
        confidence_level=confidence_level,
        n_resamples=n_resamples,
        provenance=provenance,
    )
    result.envelopes, result.records = envelopes, records
    return result


def probe_from_results(
    results: Path,
    *,
    task: str | None = None,
    model: Any = None,
    data: Path | None = None,
    balance_point: float | None = None,
    radius: float = 0.5,
    bins: int = 8,
    confidence_level: float = 0.95,
    n_resamples: int = 2000,
    max_new_tokens: int | None = None,
    wrapper_kwargs: Mapping[str, Any] | None = None,
) -> ProbeResult:
    """Probe a logged lmms-eval run: no model forward pass when its envelopes carry the lens.

    Parameters
    ----------
    results
        An lmms-eval ``--output_path`` folder, one model folder below it, or a ``*_results.json`` file,
        of a run with ``--model modality_conflict_hf --log_samples``.
    task
        Which task of the run (needed when there are several).
    model, data
        Only used when the logs carry no lens data: the model then answers the conflict rows of ``data``
        that lack one (their answers, entropies and the balance point still come from the logs).
    balance_point, radius, bins, confidence_level, n_resamples, max_new_tokens, wrapper_kwargs
        As in :func:`probe_from_model`.
    """
    try:
        runs = load_task_runs([Path(results)], tasks=[task] if task else None)
    except FileNotFoundError as error:
        raise ProbeError(str(error)) from None
    if len(runs) > 1:
        found = ", ".join(f"{run.task} in {run.results_json}" for run in runs)
        raise ProbeError(f"--results holds several task runs ({found}); choose one with --task or a folder")
    run = runs[0]
    if run.samples_jsonl is None:
        raise ProbeError(
            f"{run.results_json}: task {run.task!r} has no sample log; rerun lmms-eval with --log_samples"
        )
    records = [dict(r) for r in run.records]
    envelopes = read_sample_envelopes(run.samples_jsonl)
    lenses = {row_id: lens for row_id, e in envelopes.items() if (lens := _lens_of(e)) is not None}
    conflict_ids = {r["row_id"] for r in records if r["condition"] == "conflict"}
    missing = conflict_ids - set(lenses)
    provenance: dict[str, Any] = {
        "source": "results",
        "results_json": str(run.results_json),
        "samples": str(run.samples_jsonl),
        "task": run.task,
        "model_args": (run.results.get("config") or {}).get("model_args"),
        "lens_from_logs": len(conflict_ids & set(lenses)),
        "generate_calls": 0,
    }
    if missing and not lenses and model is None:
        raise ProbeError(
            f"{run.samples_jsonl.name}: the logged responses carry no logit-lens data (the run was not made "
            "with --model modality_conflict_hf and lens=True); pass --model (and --data) to compute the lens"
        )
    if missing and model is not None:
        if data is None:
            raise ProbeError(
                f"{len(missing)} conflict rows of {run.samples_jsonl.name} have no lens data; the model "
                "needs --data to answer them"
            )
        print(
            f"probe: {len(missing)} of {len(conflict_ids)} conflict rows in the logs carry no logit-lens "
            f"data; running {model} on those rows for the lens only"
        )
        rows = load_rows(Path(data), row_ids=missing)
        wrapper = _wrapper(model, wrapper_kwargs or {})
        calls, forwards = wrapper.n_model_calls, wrapper.n_forward_passes
        logged = {r["row_id"]: r for r in records}
        mismatches = 0
        for i, response in enumerate(answer_rows(wrapper, rows, max_new_tokens=max_new_tokens)):
            record = task_logic.make_record(rows[i], [response])
            lens = _lens_of(decode_envelope(response))
            if lens is not None:
                lenses[record["row_id"]] = lens
            mismatches += record["answer"] != logged[record["row_id"]]["answer"]
        provenance.update(_provenance_of_wrapper(wrapper, calls, forwards))
        provenance["lens_from_model"] = len(rows)
        provenance["answers_differing_from_logs"] = int(mismatches)
        if mismatches:
            print(
                f"probe: warning: on {mismatches} of {len(rows)} rows the model's answer differs from the "
                "logged one; is it the model of the run?"
            )
    if balance_point is not None:
        balance = Balance(float(balance_point), "--balance-point", "given")
    else:
        balance = balance_from_report(run.report, f"{run.results_json} (report of task {run.task})")
    result = _finish(
        records,
        lenses,
        balance,
        radius=radius,
        bins=bins,
        confidence_level=confidence_level,
        n_resamples=n_resamples,
        provenance=provenance,
    )
    result.records = records
    return result


# --- output -----------------------------------------------------------------------------------------------


def write_outputs(result: ProbeResult, out: Path) -> dict[str, Path]:
    """Write ``probe.json`` and ``heatmap.png`` (when there are probed items) into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "probe.json"}
    paths["json"].write_text(json.dumps(result.to_json(), indent=1, allow_nan=False) + "\n", encoding="utf-8")
    if result.n_layers:
        model = result.provenance.get("model") or result.provenance.get("model_args") or ""
        shaded = "; dashed: ambiguous region" if result.balance.value is not None else ""
        title = (
            f"Logit lens at the answer position, main conflict items ({model})\n{FIRST_TOKEN_NOTE}{shaded}"
        )
        paths["heatmap"] = plot_heatmap(
            result.heatmap, result.balance, result.aggregates["radius"], out / "heatmap.png", title=title
        )
    return paths


def _fmt_mean(entry: Mapping[str, Any]) -> str:
    mean = entry.get("mean_oscillations")
    if mean is None:
        return f"n/a (n={entry.get('n_items', 0)})"
    low, high = entry.get("ci_low"), entry.get("ci_high")
    interval = f" [{low:.2f}, {high:.2f}]" if low is not None and high is not None else ""
    return f"{mean:.2f}{interval} (n={entry['n_items']})"


def summary_lines(result: ProbeResult) -> list[str]:
    """A few lines for the terminal: items, balance point, and the region means with 95% t intervals."""
    skipped = ", ".join(f"{n} {SKIP_REASONS.get(k, k)}" for k, n in sorted(result.skipped.items()))
    layers = f" over {result.n_layers} layers" if result.n_layers else ""
    lines = [
        f"probed {len(result.items)} conflict items{layers}" + (f" (skipped: {skipped})" if skipped else "")
    ]
    if not result.items:
        lines.append("no heatmap: no conflict item was left to probe")
    aggregates = result.aggregates
    if result.balance.value is not None:
        lines.append(
            f"balance point {result.balance.value:+.3f} from {result.balance.source}; ambiguous region "
            f"|dH - balance| <= {aggregates['radius']:g}"
        )
    else:
        lines.append(f"regions undefined: {result.balance.reason}")
    for control, name in (("none", "main items"), ("text_irrelevant", "text-irrelevant controls")):
        entry = aggregates["by_control"][control]
        line = f"{name}: mean oscillations {_fmt_mean(entry)}"
        if "ambiguous" in entry:
            line += f"; ambiguous {_fmt_mean(entry['ambiguous'])} vs clear {_fmt_mean(entry['clear'])}"
        lines.append(line)
    lines.append(f"note: {FIRST_TOKEN_NOTE}")
    return lines


# --- command line -----------------------------------------------------------------------------------------


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def run_probe(args: argparse.Namespace) -> int:
    """``modality-conflict probe``: probe, write probe.json and heatmap.png, print a summary."""
    if args.results is None and (args.model is None or args.data is None):
        raise ProbeError("probe needs --results RESULTS_DIR, or --model PATH_OR_ID with --data DIR")
    wrapper_kwargs = {"device": args.device, "dtype": args.dtype, "batch_size": args.batch_size}
    options = {
        "balance_point": args.balance_point,
        "radius": args.radius,
        "bins": args.bins,
        "n_resamples": args.n_resamples,
        "max_new_tokens": args.max_new_tokens,
        "wrapper_kwargs": wrapper_kwargs,
    }
    if args.results is not None:
        result = probe_from_results(
            Path(args.results),
            task=args.task,
            model=args.model,
            data=Path(args.data) if args.data else None,
            **options,
        )
        results = Path(args.results)
        default_out = (results if results.is_dir() else results.parent) / "probe"
    else:
        result = probe_from_model(args.model, Path(args.data), limit_groups=args.limit_groups, **options)
        default_out = Path("probe")
    paths = write_outputs(result, Path(args.out) if args.out else default_out)
    for line in summary_lines(result):
        print(line)
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def add_parser(subparsers: argparse._SubParsersAction, name: str) -> argparse.ArgumentParser:
    """Register the ``probe`` subcommand and set ``func``."""
    parser = subparsers.add_parser(
        name,
        help="logit lens per layer on the conflict items: oscillations and a heatmap",
        description="Project each decoder layer's state at the answer position through the model's final "
        "norm and LM head, label its top-1 token as the vision answer, the text answer or neither, and "
        "count vision/text switches. With --results the lens is read from the sample logs of a "
        "`--model modality_conflict_hf --log_samples` run (no forward pass); otherwise the model answers "
        "the dataset's rows once. Writes probe.json and heatmap.png. Multi-token answers are tracked by "
        "their first token only.",
    )
    parser.add_argument("--model", metavar="PATH_OR_ID", help="checkpoint folder or Hub id (HF decoder MLLM)")
    parser.add_argument("--data", metavar="DIR", help="dataset folder made by `modality-conflict build`")
    parser.add_argument(
        "--results",
        metavar="RESULTS_DIR",
        help="lmms-eval output folder (or *_results.json) of a modality_conflict_hf run with --log_samples",
    )
    parser.add_argument("--task", help="task of the results folder to probe, when it holds several")
    parser.add_argument("--out", metavar="DIR", help="output folder (default RESULTS_DIR/probe, or ./probe)")
    parser.add_argument(
        "--limit-groups", type=_positive_int, metavar="N", help="model path: only the first N item groups"
    )
    parser.add_argument(
        "--balance-point",
        type=_finite_float,
        metavar="X",
        help="centre of the ambiguous region (default: the run's balance point)",
    )
    parser.add_argument(
        "--radius", type=_finite_float, default=0.5, help="ambiguous region |dH - balance| <= radius (0.5)"
    )
    parser.add_argument("--bins", type=_positive_int, default=8, help="dH bins of the heatmap (default 8)")
    parser.add_argument(
        "--n-resamples", type=int, default=2000, help="bootstrap resamples for the intervals (2000)"
    )
    parser.add_argument("--device", default=None, help="model device (default cuda when available)")
    parser.add_argument("--dtype", default="auto", help="auto, float32, float16 or bfloat16")
    parser.add_argument("--batch-size", type=_positive_int, default=8, help="prompts per generate call")
    parser.add_argument(
        "--max-new-tokens", type=_positive_int, default=None, help="answer length (default the task's, 8)"
    )
    parser.set_defaults(func=run_probe)
    return parser
