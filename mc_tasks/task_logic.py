"""The hooks that the modality_conflict task YAMLs name (``!function utils.<name>``): prompts and images,
the control and quick subsets, ``process_results`` of each variant and one aggregation per metric.

``__all__`` is exactly what the task folder's ``utils.py`` shim exposes to lmms-eval.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from modality_conflict.dataset_builder.constants import CONDITIONS, CONTROLS
from modality_conflict.dataset_builder.prompts import label_name as _label
from modality_conflict.dataset_builder.prompts import prompt_for
from modality_conflict.mc_tasks.names import METRIC_NAMES
from modality_conflict.mc_tasks.records import answer_set, cached_summary, doc_vocabulary, make_record

QUICK_GROUPS = 4


def doc_to_visual(doc: Mapping[str, Any]) -> list:
    """The image of vision-only and conflict rows; text-only rows have none."""
    condition = _label(doc["condition"], CONDITIONS, "condition")
    image = doc.get("image")
    if condition == "text_only" or image is None:
        return []
    return [image.convert("RGB")]


def doc_to_text(doc: Mapping[str, Any], lmms_eval_specific_kwargs: Mapping[str, str] | None = None) -> str:
    """The paper's prompt, "[conflict description] [question] [command]", with optional wrapping."""
    kwargs = lmms_eval_specific_kwargs or {}
    condition = _label(doc["condition"], CONDITIONS, "condition")
    prompt = prompt_for(condition, doc["text"], doc["question"])
    return f"{kwargs.get('pre_prompt', '')}{prompt}{kwargs.get('post_prompt', '')}"


def doc_to_target(doc: Mapping[str, Any]) -> int:
    """Index of the answer the row's own modality supports (unused by the metrics, needed by lmms-eval)."""
    condition = _label(doc["condition"], CONDITIONS, "condition")
    field = "text_answer" if condition == "text_only" else "vision_answer"
    answers = answer_set(doc)
    name = _label(doc[field], doc_vocabulary(doc).answer_labels, field)
    if name not in answers:
        raise ValueError(
            f"row {doc.get('row_id')!r}: {field} {name!r} is not in its answer_choices {list(answers)}"
        )
    return answers.index(name)


def doc_to_choice(doc: Mapping[str, Any]) -> list[str]:
    """The row's closed answer set (its ``answer_choices``); a ``ValueError`` naming the row when it is no
    dataset's answer set."""
    doc_vocabulary(doc)
    return list(answer_set(doc))


def process_docs_quick(dataset: Any) -> Any:
    """Keep the first few item groups: a smoke test that still has every condition of each item."""
    return dataset.filter(lambda group_id: group_id < QUICK_GROUPS, input_columns=["group_id"])


def process_docs_controls(dataset: Any) -> Any:
    """Keep only the control groups (text-irrelevant and image-irrelevant)."""
    none_index = CONTROLS.index("none")
    return dataset.filter(lambda control: control not in ("none", none_index), input_columns=["control"])


class KeepAllResponses:
    """lmms-eval filter that keeps every response of a doc (all ``repeats``): the default ``take_first``
    would keep one of the K answers and give the sampled variant an entropy of 0 on every prompt."""

    def apply(self, resps: Sequence[Sequence[object]], docs: Sequence[Any]) -> list[list[object]]:
        """One list of all responses per doc."""
        del docs
        return [list(responses) for responses in resps]


def process_results(doc: Mapping[str, Any], results: Sequence[object]) -> dict[str, dict[str, Any]]:
    """lmms-eval hook for greedy generation: the same record under every metric, since each
    aggregation sees only the values of its own key."""
    return dict.fromkeys(METRIC_NAMES, make_record(doc, results, mode="generate"))


def process_results_loglik(doc: Mapping[str, Any], results: Sequence[object]) -> dict[str, dict[str, Any]]:
    """lmms-eval hook for the multiple_choice variant (one loglikelihood per candidate answer)."""
    return dict.fromkeys(METRIC_NAMES, make_record(doc, results, mode="loglik"))


def process_results_sampled(doc: Mapping[str, Any], results: Sequence[object]) -> dict[str, dict[str, Any]]:
    """lmms-eval hook for the sampled variant (``repeats`` answers per prompt)."""
    return dict.fromkeys(METRIC_NAMES, make_record(doc, results, mode="sampled"))


def metric_aggregation(name: str) -> Callable[[Sequence[Mapping[str, Any]]], Any]:
    """The lmms-eval aggregation of metric ``name``: its value in the (cached) summary of the records (the
    whole summary goes to the report file, :mod:`modality_conflict.mc_tasks.report_file`)."""

    def aggregation(records: Sequence[Mapping[str, Any]]) -> Any:
        return cached_summary(records).get(name)

    aggregation.__name__ = f"aggregate_{name}"
    aggregation.__doc__ = f"lmms-eval aggregation: ``{name}`` from the joined conflict summary."
    aggregation.modality_conflict_metric = name  # type: ignore[attr-defined]  # how the report hook knows it
    return aggregation


AGGREGATIONS: dict[str, Callable[[Sequence[Mapping[str, Any]]], Any]] = {
    f"aggregate_{name}": metric_aggregation(name) for name in METRIC_NAMES
}
globals().update(AGGREGATIONS)  # aggregate_tfr, aggregate_vfr, ...: the names the YAMLs use

__all__ = [
    "KeepAllResponses",
    "doc_to_choice",
    "doc_to_target",
    "doc_to_text",
    "doc_to_visual",
    "process_docs_controls",
    "process_docs_quick",
    "process_results",
    "process_results_loglik",
    "process_results_sampled",
    *AGGREGATIONS,
]
