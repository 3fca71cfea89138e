"""Logit-lens records of one conflict item: checking them, reading the answers' tokens, labelling layers.

A record (``models.logit_lens.lens_records``, carried in the envelope) holds per layer the top-1 token and
each candidate answer's first-token logits, lowercase and capitalised. A layer's top-1 is *vision* when it
is a first token of the vision-only answer Yv, *text* when one of the text-only answer Yt, else *other*.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from modality_conflict.dataset_builder.errors import ModalityConflictError
from modality_conflict.mc_tasks import records as task_records
from modality_conflict.metrics.following import classify_following
from modality_conflict.metrics.probing import count_oscillations
from modality_conflict.metrics.uncertainty import relative_uncertainty

FIRST_TOKEN_NOTE = "multi-token answers: first token only"
ANSWER_FORMS_NOTE = (
    "case-insensitive: a colour's tokens are its lowercase and capitalised first tokens; its logit at a "
    "layer is the larger of the two"
)
SKIP_REASONS = {
    "not_conflict": "the vision-only and text-only answers agree (Yv == Yt)",
    "unimodal_other": "a unimodal answer is none of the row's answers (Yv or Yt is 'other')",
    "no_lens": "the conflict row has no logit-lens record",
    "same_first_token": "Yv and Yt start with the same token",
    "incomplete": "the conflict row's vision-only or text-only row is missing",
}


class ProbeError(ModalityConflictError, ValueError):
    """The probe cannot run on what it was given (missing lens data, bad folders, bad options)."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_logit(value: object) -> bool:
    return value is None or (not isinstance(value, bool) and isinstance(value, (int, float)))


def lens_problem(lens: object, candidates: Sequence[str] | None = None) -> str | None:
    """Why ``lens`` is not a logit-lens record over ``candidates`` (default: the answers it records), naming
    the field, or None when it is."""
    if not isinstance(lens, Mapping):
        return "the lens is not a JSON object"
    n_layers = lens.get("n_layers")
    if not _is_int(n_layers) or n_layers < 1:
        return f"field 'n_layers' is {n_layers!r}, not a positive integer"
    top1 = lens.get("top1_ids")
    if not isinstance(top1, list) or len(top1) != n_layers:
        return f"field 'top1_ids' is not a list of {n_layers} layers"
    bad = next((i for i, token in enumerate(top1) if not _is_int(token)), None)
    if bad is not None:
        return f"field 'top1_ids[{bad}]' is {top1[bad]!r}, not a token id"
    tokens = lens.get("top1_tokens")
    if tokens is not None and (not isinstance(tokens, list) or len(tokens) != n_layers):
        return f"field 'top1_tokens' is not a list of {n_layers} layers"
    if candidates is None:
        recorded = lens.get("answer_token_ids")
        candidates = list(recorded) if isinstance(recorded, Mapping) else []
        if not candidates:
            return "field 'answer_token_ids' names no answer"
    for suffix in ("", "_capitalized"):
        ids_key, logits_key = f"answer_token_ids{suffix}", f"answer_logits{suffix}"
        if suffix and ids_key not in lens and logits_key not in lens:
            continue
        ids = lens.get(ids_key)
        if not isinstance(ids, Mapping) or any(not _is_int(ids.get(c)) for c in candidates):
            return f"field {ids_key!r} lacks an integer id for one of {list(candidates)}"
        logits = lens.get(logits_key)
        if not isinstance(logits, list) or len(logits) != n_layers:
            return f"field {logits_key!r} is not a list of {n_layers} layers"
        for layer, row in enumerate(logits):
            if not isinstance(row, list) or len(row) != len(ids):
                return f"field '{logits_key}[{layer}]' does not hold {len(ids)} logits"
            if not all(_is_logit(value) for value in row):
                return f"field '{logits_key}[{layer}]' holds a value that is not a number"
    return None


def answer_forms(lens: Mapping[str, Any]) -> list[tuple[dict[str, int], list[list[float | None]]]]:
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
    return sorted({ids[answer] for ids, _ in answer_forms(lens) if answer in ids})


def _answer_logit(lens: Mapping[str, Any], answer: str, layer: int) -> float | None:
    values = []
    for ids, logits in answer_forms(lens):
        position = list(ids).index(answer)
        value = logits[layer][position]
        if value is None:
            return None  # a non-finite logit: the layer's difference is undefined
        values.append(float(value))
    return max(values) if values else None


def probe_item(lens: Mapping[str, Any], yv: str, yt: str) -> dict[str, Any]:
    """Layer-wise labels, logit differences and oscillations of one conflict item, from its lens record and
    the model's vision-only and text-only answers. Per layer: ``top1_ids``/``top1_tokens``, ``top1_labels``
    ("vision", "text" or "other") and ``logit_diff`` = logit(Yt) - logit(Yv) (None where one was not
    finite); also ``oscillations`` and the first tokens matched. A ``ProbeError`` when the record is
    malformed, an answer is not one of its answers, or Yv and Yt share a first token."""
    problem = lens_problem(lens)
    if problem is not None:
        raise ProbeError(f"the logit-lens record is malformed: {problem}")
    for name, answer in (("yv", yv), ("yt", yt)):
        if answer not in lens["answer_token_ids"]:
            raise ProbeError(f"{name} is {answer!r}, not one of {list(lens['answer_token_ids'])}")
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


def build_items(
    records: Sequence[Mapping[str, Any]], lenses: Mapping[str, Mapping[str, Any]]
) -> tuple[list[dict[str, Any]], Counter]:
    """Probe every conflict item of a run (its records, and conflict ``row_id`` -> lens record): one dict per
    probed item (by item id), and how many were skipped, by reason (:data:`SKIP_REASONS`)."""
    try:
        items, bookkeeping = task_records.join_records(records)
    except task_records.IncompleteRecordsError as error:
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


def lens_of(envelope: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The envelope's logit-lens record when it is a well-formed one, else None."""
    lens = envelope.get("lens") if envelope is not None else None
    return lens if lens is not None and lens_problem(lens) is None else None
