"""Probing: the logit lens at the answer position, layer by layer, on conflict items (method.md,
"Layer-wise probing").

Each decoder layer's state at the answer position goes through the model's final norm and LM head
(:mod:`modality_conflict.models.logit_lens`); its top-1 token is labelled *vision* (a first token of the
vision-only answer Yv), *text* (of the text-only answer Yt) or *other*, and the oscillations are the
switches between vision and text. Per layer, logit(Yt) - logit(Yv) is averaged into a heatmap by layer and
dH bin. Answers are tracked by their first token, lowercase or capitalised (a colour's logit is the larger).

Modules: :mod:`~.lens` (records and items), :mod:`~.statistics` (regions, oscillations, heatmap grid),
:mod:`~.plots` (the heatmap), :mod:`~.runner` (sources of lens data, options, outputs).
"""

from modality_conflict.analysis.probe.lens import FIRST_TOKEN_NOTE, ProbeError, build_items, probe_item
from modality_conflict.analysis.probe.runner import (
    ProbeOptions,
    ProbeResult,
    answer_rows,
    load_rows,
    probe_from_model,
    probe_from_results,
    summary_lines,
    write_outputs,
)
from modality_conflict.analysis.probe.statistics import (
    Balance,
    balance_from_summary,
    heatmap_grid,
    oscillations_by_control,
)

__all__ = [
    "FIRST_TOKEN_NOTE",
    "Balance",
    "ProbeError",
    "ProbeOptions",
    "ProbeResult",
    "answer_rows",
    "balance_from_summary",
    "build_items",
    "heatmap_grid",
    "load_rows",
    "oscillations_by_control",
    "probe_from_model",
    "probe_from_results",
    "probe_item",
    "summary_lines",
    "write_outputs",
]
