"""Running a probe: where the lens data come from, and what one probe writes.

``modality_conflict_hf`` packs the lens into the envelope of the ``generate`` call that answers, so probing
needs no second forward pass. :func:`probe_from_results` reads a logged run (records, envelopes and balance
point in one pass; a model runs only on conflict rows whose logs carry no lens); :func:`probe_from_model`
lets the wrapper answer the dataset's rows and computes records and balance point as the task does.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modality_conflict.analysis.probe.lens import (
    ANSWER_FORMS_NOTE,
    FIRST_TOKEN_NOTE,
    SKIP_REASONS,
    ProbeError,
    build_items,
    lens_of,
    lens_problem,
)
from modality_conflict.analysis.probe.plots import plot_heatmap
from modality_conflict.analysis.probe.statistics import (
    Balance,
    balance_from_summary,
    heatmap_grid,
    oscillations_by_control,
)
from modality_conflict.analysis.results import TaskSummary, read_task_results
from modality_conflict.dataset_builder.atomic import ensure_folder, write_text_atomic
from modality_conflict.dataset_builder.folder import DatasetFolder, DatasetFolderError
from modality_conflict.mc_tasks import records as task_records
from modality_conflict.mc_tasks import task_logic
from modality_conflict.mc_tasks.names import MAIN_TASK
from modality_conflict.models.envelope import decode_envelope

# The greedy settings of the task YAML (_default_template_yaml), plus lmms-eval's default stop string.
GENERATION_KWARGS: dict[str, Any] = {
    "max_new_tokens": 8,
    "temperature": 0,
    "do_sample": False,
    "num_beams": 1,
    "until": ["\n\n"],
}


@dataclass(frozen=True)
class ProbeOptions:
    """How a probe is computed, whatever the source of its lens data."""

    balance_point: float | None = None  # the ambiguous region's centre; default the run's (or records')
    radius: float = 0.5  # the ambiguous region's half-width
    bins: int = 8  # dH bins of the heatmap
    confidence_level: float = 0.95
    n_resamples: int = 2000
    max_new_tokens: int | None = None  # when a model answers; default the task's (8)
    wrapper_kwargs: Mapping[str, Any] = field(default_factory=dict)  # of ModalityConflictHF

    def __post_init__(self) -> None:
        if not float(self.radius) > 0 or not math.isfinite(self.radius):
            raise ProbeError(f"--radius must be a positive number, got {self.radius!r}")


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


def probe_records(
    records: list[dict[str, Any]],
    lenses: dict[str, Mapping[str, Any]],
    balance: Balance,
    options: ProbeOptions,
    provenance: dict[str, Any],
) -> ProbeResult:
    """Probe the conflict items of a run's records with their lens records and summarise them."""
    items, skipped = build_items(records, lenses)
    n_layers = items[0]["n_layers"] if items else None
    heatmap = heatmap_grid(items, n_layers, options.bins) if n_layers else {"reason": "no probed items"}
    settings = {"confidence_level": options.confidence_level, "n_resamples": options.n_resamples}
    aggregates = oscillations_by_control(items, balance, radius=options.radius, **settings)
    return ProbeResult(items, dict(skipped), balance, aggregates, heatmap, n_layers, provenance)


def load_rows(data: Path, *, limit_groups: int | None = None, row_ids: set[str] | None = None) -> Any:
    """The rows of a built folder (first ``limit_groups`` item groups, or ``row_ids``) as a
    ``datasets.Dataset`` whose images are decoded only when a row is read."""
    folder = DatasetFolder(Path(data))
    if not folder.is_dir:
        raise ProbeError(f"--data {folder.path} is not a folder")
    if not folder.data_files():
        raise ProbeError(f"{folder.path} has no data/*.parquet files (not made by `modality-conflict build`)")
    try:
        rows = folder.rows(limit_groups=limit_groups, row_ids=row_ids)
    except DatasetFolderError as error:
        raise ProbeError(str(error)) from None
    if len(rows) == 0:
        raise ProbeError(f"no rows of {folder.path} are left to probe (limit_groups={limit_groups})")
    return rows


def probing_wrapper(model: Any, wrapper_kwargs: Mapping[str, Any]) -> Any:
    """``model`` when it is a ready wrapper with the lens on, else a new ``ModalityConflictHF`` for it."""
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
    wrapper.task_dict = {MAIN_TASK: {"test": rows}}
    requests = [
        Instance(
            "generate_until",
            (task_logic.doc_to_text(rows[i]), dict(settings), task_logic.doc_to_visual, i, MAIN_TASK, "test"),
            idx=0,
            metadata={"task": MAIN_TASK, "doc_id": i, "repeats": 1},
        )
        for i in range(len(rows))
    ]
    return wrapper.generate_until(requests)


def _answer_with_lens(
    model: Any, rows: Any, options: ProbeOptions
) -> tuple[list[dict[str, Any]], list[str], dict[str, Any], dict[str, Any]]:
    """Records, envelopes and lens records (by row id) of ``model`` answering ``rows``, and its provenance."""
    wrapper = probing_wrapper(model, options.wrapper_kwargs)
    calls, forwards = wrapper.n_model_calls, wrapper.n_forward_passes
    responses = answer_rows(wrapper, rows, max_new_tokens=options.max_new_tokens)
    records = [task_records.make_record(rows[i], [response]) for i, response in enumerate(responses)]
    lenses = {
        record["row_id"]: lens
        for record, response in zip(records, responses, strict=True)
        if (lens := lens_of(decode_envelope(response))) is not None
    }
    provenance = {
        "model": str(wrapper.pretrained),
        "model_class": type(wrapper.model).__name__,
        "generate_calls": int(wrapper.n_model_calls - calls),
        "forward_passes": int(wrapper.n_forward_passes - forwards),
    }
    return records, responses, lenses, provenance


def probe_from_model(
    model: Any, data: Path, *, limit_groups: int | None = None, options: ProbeOptions | None = None
) -> ProbeResult:
    """Answer a built folder's rows with ``model`` (a checkpoint, Hub id or ``ModalityConflictHF`` with
    ``lens=True``) and probe the conflict items; the result also holds every row's record and envelope."""
    options = options or ProbeOptions()
    rows = load_rows(Path(data), limit_groups=limit_groups)
    records, responses, lenses, answered = _answer_with_lens(model, rows, options)
    envelopes = {record["row_id"]: response for record, response in zip(records, responses, strict=True)}
    conflicts = {record["row_id"] for record in records if record["condition"] == "conflict"}
    lenses = {row_id: lens for row_id, lens in lenses.items() if row_id in conflicts}
    if options.balance_point is not None:
        balance = Balance(float(options.balance_point), "--balance-point", "given")
    else:
        summary = TaskSummary(task_records.summarize_records(records))
        balance = balance_from_summary(summary, f"records.summarize_records over the {len(records)} records")
    provenance = {
        "source": "model",
        "data": str(Path(data)),
        "limit_groups": limit_groups,
        "n_rows": len(rows),
        **answered,
    }
    result = probe_records(records, lenses, balance, options, provenance)
    result.envelopes, result.records = envelopes, records
    return result


def probe_from_results(
    results: Path,
    *,
    task: str | None = None,
    model: Any = None,
    data: Path | None = None,
    options: ProbeOptions | None = None,
) -> ProbeResult:
    """Probe a logged ``modality_conflict_hf --log_samples`` run: no forward pass when its envelopes carry
    the lens; else ``model`` answers the conflict rows of ``data`` that lack one, for the lens only."""
    options = options or ProbeOptions()
    try:
        runs = read_task_results([Path(results)], tasks=[task] if task else None, with_envelopes=True)
    except (FileNotFoundError, ValueError) as error:
        raise ProbeError(str(error)) from None
    if len(runs) > 1:
        found = ", ".join(f"{run.task} in {run.results_json}" for run in runs)
        raise ProbeError(f"--results holds several task runs ({found}); choose one with --task or a folder")
    run, log = runs[0], runs[0].samples
    if log is None:
        raise ProbeError(
            f"{run.results_json}: task {run.task!r} has no sample log; rerun lmms-eval with --log_samples"
        )
    records = [dict(r) for r in log.records]
    conflict_ids = {r["row_id"] for r in records if r["condition"] == "conflict"}
    lenses: dict[str, Mapping[str, Any]] = {}
    for row_id in sorted(conflict_ids & set(log.envelopes)):
        # A lens that is there but broken is an error of its own, not "made without the lens".
        envelope = log.envelopes[row_id]
        if "lens" in envelope and (problem := lens_problem(envelope["lens"])) is not None:
            raise ProbeError(
                f"{log.where(row_id)}: row {row_id}: the logit-lens record is malformed: {problem}"
            )
        if (lens := lens_of(envelope)) is not None:
            lenses[row_id] = lens
    missing = conflict_ids - set(lenses)
    provenance: dict[str, Any] = {
        "source": "results",
        "results_json": str(run.results_json),
        "samples": str(log.path),
        "task": run.task,
        "model_args": run.results_file.model_args,
        "lens_from_logs": len(conflict_ids & set(lenses)),
        "generate_calls": 0,
    }
    if missing and not lenses and model is None:
        raise ProbeError(
            f"{log.path.name}: the logged responses carry no logit-lens data (the run was not made "
            "with --model modality_conflict_hf and lens=True); pass --model (and --data) to compute the lens"
        )
    if missing and model is not None:
        if data is None:
            raise ProbeError(
                f"{len(missing)} conflict rows of {log.path.name} have no lens data; the model "
                "needs --data to answer them"
            )
        print(
            f"probe: {len(missing)} of {len(conflict_ids)} conflict rows in the logs carry no logit-lens "
            f"data; running {model} on those rows for the lens only"
        )
        rows = load_rows(Path(data), row_ids=missing)
        answers, _, found, answered = _answer_with_lens(model, rows, options)
        lenses.update(found)
        logged = {r["row_id"]: r["answer"] for r in records}
        mismatches = sum(record["answer"] != logged[record["row_id"]] for record in answers)
        provenance.update(answered)
        provenance["lens_from_model"] = len(rows)
        provenance["answers_differing_from_logs"] = int(mismatches)
        if mismatches:
            print(
                f"probe: warning: on {mismatches} of {len(rows)} rows the model's answer differs from the "
                "logged one; is it the model of the run?"
            )
    if options.balance_point is not None:
        balance = Balance(float(options.balance_point), "--balance-point", "given")
    else:
        balance = balance_from_summary(run.summary, run.summary.source)
    result = probe_records(records, lenses, balance, options, provenance)
    result.records = records
    return result


def write_outputs(result: ProbeResult, out: Path) -> dict[str, Path]:
    """Write ``probe.json`` and ``heatmap.png`` (when there are probed items) into ``out``."""
    out = ensure_folder(Path(out))
    paths = {"json": out / "probe.json"}
    write_text_atomic(paths["json"], json.dumps(result.to_json(), indent=1, allow_nan=False) + "\n")
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


def oscillation_text(entry: Mapping[str, Any]) -> str:
    """A region's mean oscillations, 95% interval and item count, e.g. ``1.50 [0.80, 2.20] (n=12)``."""
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
        line = f"{name}: mean oscillations {oscillation_text(entry)}"
        if "ambiguous" in entry:
            ambiguous, clear = oscillation_text(entry["ambiguous"]), oscillation_text(entry["clear"])
            line += f"; ambiguous {ambiguous} vs clear {clear}"
        lines.append(line)
    lines.append(f"note: {FIRST_TOKEN_NOTE}")
    return lines
