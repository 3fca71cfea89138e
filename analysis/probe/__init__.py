"""Probing: the logit lens at the answer position, layer by layer, on conflict items.

For every conflict item (method.md, "Layer-wise probing") each decoder layer's hidden state at the answer
position goes through the model's own final norm and LM head (:mod:`modality_conflict.models.logit_lens`);
the layer's top-1 token is labelled *vision* when it is the first token of the model's vision-only answer
Yv, *text* when it is the first token of its text-only answer Yt, and *other* otherwise. The oscillation
count is the number of switches between vision and text, ignoring *other* layers
(:func:`modality_conflict.metrics.probing.count_oscillations`). Per layer, logit(Yt) - logit(Yv) is kept
too, and averaged into a heatmap by layer and dH bin.

Where the lens data come from: :mod:`~modality_conflict.analysis.probe.runner`.

Answer tokens
    Multi-token answers are tracked by their first token only. Case is ignored: a colour's tokens are its
    lowercase and capitalised first tokens as they follow the chat template's answer prefix (the wrapper
    records both), a layer's top-1 counts for the colour when it is either, and the colour's logit at a
    layer is the larger of the two.

Regions
    See :mod:`~modality_conflict.analysis.probe.statistics`.

Modules: :mod:`~.lens` (records and items), :mod:`~.statistics` (regions, oscillations, heatmap grid),
:mod:`~.plots` (the heatmap), :mod:`~.runner` (sources of lens data, options, outputs). The command line
is :mod:`modality_conflict.cli.probe`.
"""

from modality_conflict.analysis.probe.lens import (
    ANSWER_FORMS_NOTE,
    FIRST_TOKEN_NOTE,
    SKIP_REASONS,
    ProbeError,
    answer_token_ids,
    build_items,
    lens_of,
    lens_problem,
    probe_item,
)
from modality_conflict.analysis.probe.plots import plot_heatmap
from modality_conflict.analysis.probe.runner import (
    GENERATION_KWARGS,
    ProbeOptions,
    ProbeResult,
    answer_rows,
    load_rows,
    probe_from_model,
    probe_from_results,
    probe_records,
    summary_lines,
    write_outputs,
)
from modality_conflict.analysis.probe.statistics import (
    Balance,
    balance_from_summary,
    heatmap_grid,
    oscillations_by_control,
    summarize_oscillations,
)

__all__ = [
    "ANSWER_FORMS_NOTE",
    "FIRST_TOKEN_NOTE",
    "GENERATION_KWARGS",
    "SKIP_REASONS",
    "Balance",
    "ProbeError",
    "ProbeOptions",
    "ProbeResult",
    "answer_rows",
    "answer_token_ids",
    "balance_from_summary",
    "build_items",
    "heatmap_grid",
    "lens_of",
    "lens_problem",
    "load_rows",
    "oscillations_by_control",
    "plot_heatmap",
    "probe_from_model",
    "probe_from_results",
    "probe_item",
    "probe_records",
    "summarize_oscillations",
    "summary_lines",
    "write_outputs",
]
