"""Per-doc records and the task's summary: what ``process_results`` emits and what the aggregations compute.

:func:`make_record` turns a doc (one (unit, condition) row) and the model's response into a compact record;
:func:`summarize_records` joins each conflict record with its vision-only and text-only records by key (so
the order in which ranks deliver them never matters) and hands the items to ``metrics.summarize``. Answers
are normalised to the doc's ``answer_choices`` with its dataset's synonyms (anything else is ``"other"``);
each record keeps its answer set and attribute, so a summary needs nothing but the records: its candidates
are the union of their sets, and a task over several attributes adds each one's numbers (``by_attribute``).
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import math
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from modality_conflict.dataset_builder.constants import COLORS, CONDITIONS, CONTROLS
from modality_conflict.dataset_builder.prompts import label_name as _label
from modality_conflict.dataset_builder.specs import DatasetKind, vocabulary_for
from modality_conflict.metrics import ConflictItems, summarize
from modality_conflict.metrics.answers import OTHER, normalize_answer
from modality_conflict.metrics.entropy import answer_set_entropy, sampled_answer_entropy
from modality_conflict.models.envelope import decode_envelope

logger = logging.getLogger("modality_conflict")

RAW_RESPONSE_CHARS = 200  # a record keeps this much of the response; the answer is read from it
REPORT_SEED = 20251104  # fixed so that the bootstrap interval in a results file can be recomputed exactly
N_RESAMPLES = 2000


def answer_set(doc: Mapping[str, Any]) -> tuple[str, ...]:
    """A doc's or record's closed answer set (its ``answer_choices``; the colours for rows and records
    without one)."""
    return tuple(str(c) for c in (doc.get("answer_choices") or COLORS))


def doc_vocabulary(doc: Mapping[str, Any]) -> DatasetKind:
    """The dataset the doc's answer set belongs to (its answer labels and synonyms); a ``ValueError`` naming
    the row when it is no dataset's."""
    try:
        return vocabulary_for(answer_set(doc))
    except ValueError as error:
        raise ValueError(f"row {doc.get('row_id')!r}: {error}") from None


def doc_attribute(doc: Mapping[str, Any], spec: DatasetKind) -> str:
    """The attribute the doc's question asks about (``color``, ``shape``, ``material``)."""
    if len(spec.attributes) == 1:
        return spec.attributes[0]
    return _label(doc["attribute"], spec.attributes, "attribute")


def _parse_loglikelihood(result: object) -> float:
    """One multiple_choice response: a (score, is_greedy) pair, or its string form from lmms-eval 0.7.x."""
    if isinstance(result, str):
        try:
            result = ast.literal_eval(result.strip())
        except (ValueError, SyntaxError) as error:
            raise ValueError(f"cannot read loglikelihood response {result!r}") from error
    if isinstance(result, (tuple, list)) and len(result) == 2:
        result = result[0]
    if isinstance(result, bool) or not isinstance(result, (int, float)) or not math.isfinite(result):
        raise ValueError(f"loglikelihood response {result!r} is not a finite number")
    return float(result)


def _scores_to_answer(values: list[float], answers: Sequence[str]) -> tuple[str, float, str, list[float]]:
    """Answer, entropy, estimator and log-probabilities from one score per candidate answer. Wrappers return a
    log-probability (<= 0, the project's) or a mean token loss (>= 0, llava_hf and others); the sign tells
    them apart, and a loss gives a length-normalised log-probability (the task is not passed the token
    count)."""
    scores = np.asarray(values, dtype=float)
    if np.all(scores <= 0) and np.any(scores < 0):
        estimate = answer_set_entropy(log_probs=scores)
    elif np.all(scores >= 0):
        estimate = answer_set_entropy(mean_losses=scores, length_normalised=True)
    else:
        raise ValueError(f"loglikelihood scores {values} mix log-probabilities and losses")
    log_probs = -scores if estimate.estimator.endswith("length_normalised") else scores
    answer = answers[int(np.argmax(log_probs))]
    return answer, float(np.asarray(estimate.values).reshape(-1)[0]), estimate.estimator, log_probs.tolist()


def _sampled_texts(row_id: object, results: Sequence[object]) -> list[str]:
    """The K sampled answers, whether lmms-eval passes them flat or as one list (the filter's output), as
    plain text or as the project's response envelopes."""
    flat: list[object] = []
    for result in results:
        flat.extend(result if isinstance(result, (list, tuple)) else [result])
    if len(flat) < 2:
        raise ValueError(
            f"row {row_id!r}: the sampled variant received {len(flat)} response(s); it needs all K repeats "
            "(repeats >= 2 and a filter_list that keeps them, see modality_conflict_sampled.yaml)"
        )
    texts = []
    for response in flat:
        envelope = decode_envelope(response)
        texts.append(envelope["text"] if envelope is not None else str(response))
    return texts


def _mode(answers: list[str], candidates: Sequence[str]) -> str:
    """Most frequent answer; ties go to the earliest in the closed answer order, then "other"."""
    counts = Counter(answers)
    order = {name: i for i, name in enumerate((*candidates, OTHER))}
    return min(counts, key=lambda name: (-counts[name], order[name]))


def make_record(
    doc: Mapping[str, Any], results: Sequence[object], *, mode: str = "generate"
) -> dict[str, Any]:
    """Everything the metrics and a submission need from one doc and its responses, for the task variant
    ``mode``: ``"generate"`` (one answer, maybe an envelope), ``"loglik"`` (one loglikelihood per candidate)
    or ``"sampled"`` (the K sampled answers; fewer than two is an error, one answer's entropy being 0)."""
    if len(results) == 0:
        raise ValueError(f"row {doc.get('row_id')!r}: no model response")
    answers = answer_set(doc)
    vocabulary = doc_vocabulary(doc)
    labels, synonyms = vocabulary.answer_labels, vocabulary.synonyms
    record: dict[str, Any] = {
        "row_id": str(doc["row_id"]),
        "condition": _label(doc["condition"], CONDITIONS, "condition"),
        "control": _label(doc["control"], CONTROLS, "control"),
        "group_id": int(doc["group_id"]),
        "item_id": str(doc["item_id"]),
        "vision_key": str(doc["vision_key"]),
        "text_key": str(doc["text_key"]),
        "visual_tier": int(doc["visual_tier"]),
        "text_tier": int(doc["text_tier"]),
        "vision_answer": _label(doc["vision_answer"], labels, "vision_answer"),
        "text_answer": _label(doc["text_answer"], labels, "text_answer"),
        "attribute": doc_attribute(doc, vocabulary),
        "answer_choices": list(answers),
    }
    for field in ("vision_answer", "text_answer"):
        if record[field] not in answers:
            raise ValueError(f"row {record['row_id']!r}: {field} {record[field]!r} is not in {list(answers)}")
    answer_scores: list[float] | None = None
    served: dict[str, Any] = {}
    if mode == "loglik":
        if len(results) != len(answers):
            raise ValueError(
                f"row {record['row_id']!r}: {len(results)} loglikelihoods for {len(answers)} answers"
            )
        raw = ""
        answer, entropy, estimator, answer_scores = _scores_to_answer(
            [_parse_loglikelihood(r) for r in results], answers
        )
    elif mode == "sampled":
        texts = _sampled_texts(record["row_id"], results)
        sampled = [normalize_answer(text, answers, synonyms=synonyms) for text in texts]
        raw = texts[0]
        answer = _mode(sampled, answers)
        estimate = sampled_answer_entropy([sampled], candidates=(*answers, OTHER))
        entropy = float(np.asarray(estimate.values).reshape(-1)[0])
        estimator = estimate.estimator
    elif mode == "generate":
        envelope = decode_envelope(results[0])
        if envelope is not None:
            raw = envelope["text"]
            entropy = envelope.get("entropy")
            estimator = envelope.get("estimator", "full_vocab")
            logprobs = envelope.get("answer_logprobs")
            if isinstance(logprobs, Mapping):
                answer_scores = [float(logprobs[candidate]) for candidate in answers]
            served = _served_fields(record["row_id"], envelope)
        else:
            raw, entropy, estimator = str(results[0]), None, "none"
        # Read from the part the record keeps, so that anyone can check the answer against it.
        answer = normalize_answer(raw[:RAW_RESPONSE_CHARS], answers, synonyms=synonyms)
    else:
        raise ValueError(f"unknown mode {mode!r}; expected 'generate', 'loglik' or 'sampled'")
    if entropy is not None and not math.isfinite(float(entropy)):
        raise ValueError(f"row {record['row_id']!r}: entropy {entropy!r} is not finite")
    record.update(
        raw_response=raw[:RAW_RESPONSE_CHARS],
        answer=answer,
        entropy=None if entropy is None else float(entropy),
        entropy_estimator=str(estimator),
        answer_scores=answer_scores,
    )
    record.update(served)
    return record


def _served_fields(row_id: str, envelope: Mapping[str, Any]) -> dict[str, Any]:
    """What a served model's envelope adds to a record: the entropy's bounds and uncovered mass (``top_k``
    estimator) and the server's token counts."""
    out: dict[str, Any] = {}
    bounds = envelope.get("entropy_bounds")
    if bounds is not None:
        if not (
            isinstance(bounds, list)
            and len(bounds) == 2
            and all(_is_number(v) for v in bounds)
            and bounds[0] <= bounds[1]
        ):
            raise ValueError(f"row {row_id!r}: entropy_bounds {bounds!r} is not an ordered pair of numbers")
        out["entropy_bounds"] = [float(bounds[0]), float(bounds[1])]
    mass = envelope.get("uncovered_mass")
    if mass is not None:
        if not (_is_number(mass) and 0.0 <= mass <= 1.0):
            raise ValueError(f"row {row_id!r}: uncovered_mass {mass!r} is not a probability")
        out["uncovered_mass"] = float(mass)
    usage = envelope.get("usage")
    if isinstance(usage, Mapping):
        out["usage"] = {k: int(v) for k, v in usage.items() if _is_int(v) and v >= 0}
    return out


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return _is_int(value) or (isinstance(value, float) and math.isfinite(value))


# What each field of a record must hold (the record contract; the answers' vocabulary is the dataset's).
RECORD_FIELD_CHECKS: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "row_id": ("a string", lambda v: isinstance(v, str) and bool(v)),
    "condition": (f"one of {list(CONDITIONS)}", lambda v: v in CONDITIONS),
    "control": (f"one of {list(CONTROLS)}", lambda v: v in CONTROLS),
    "group_id": ("an integer", _is_int),
    "item_id": ("a string", lambda v: isinstance(v, str)),
    "vision_key": ("a string", lambda v: isinstance(v, str)),
    "text_key": ("a string", lambda v: isinstance(v, str)),
    "visual_tier": ("an integer", _is_int),
    "text_tier": ("an integer", _is_int),
    "vision_answer": ("a string", lambda v: isinstance(v, str)),
    "text_answer": ("a string", lambda v: isinstance(v, str)),
    "answer": ("a string", lambda v: isinstance(v, str)),
    "raw_response": ("a string", lambda v: isinstance(v, str)),
    "entropy": ("a finite number or null", lambda v: v is None or _is_number(v)),
    "entropy_estimator": ("a string", lambda v: isinstance(v, str)),
    "answer_scores": (
        "null or a list of finite numbers",
        lambda v: v is None or (isinstance(v, list) and all(_is_number(x) for x in v)),
    ),
}


def record_problem(record: object) -> str | None:
    """What is wrong with a per-doc record, naming the field (None when it follows the record contract)."""
    if not isinstance(record, Mapping):
        return "the record is not a JSON object"
    for name, (expected, check) in RECORD_FIELD_CHECKS.items():
        if name not in record:
            return f"field {name!r} is missing"
        if not check(record[name]):
            shown = json.dumps(record[name], default=str)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            return f"field {name!r} is {shown}, not {expected}"
    return None


class IncompleteRecordsError(ValueError):
    """Conflict rows whose unimodal rows are absent (e.g. a run with --limit)."""


def record_attribute(record: Mapping[str, Any]) -> str:
    """The attribute a record's question asks about (``color`` for records without the field)."""
    return str(record.get("attribute") or "color")


def _in_dataset_order(found: set[str], order_of: Callable[[DatasetKind], Sequence[str]]) -> tuple[str, ...]:
    """``found`` in the order of the first dataset whose ``order_of`` list holds them all (else sorted)."""
    from modality_conflict.dataset_builder.specs import DATASETS

    for spec in DATASETS.values():
        if found <= set(order_of(spec)):
            return tuple(word for word in order_of(spec) if word in found)
    return tuple(sorted(found))


def records_candidates(records: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """Every answer the records' questions admit: the union of their answer sets, in ClassLabel order."""
    words = {word for record in records for word in answer_set(record)}
    return _in_dataset_order(words, lambda spec: spec.answer_labels)


def records_attributes(records: Sequence[Mapping[str, Any]]) -> tuple[str, ...]:
    """The attributes the records ask about, in the dataset's order (shape before material)."""
    return _in_dataset_order({record_attribute(r) for r in records}, lambda spec: spec.attributes)


def join_records(
    records: Sequence[Mapping[str, Any]], *, candidates: Sequence[str] | None = None
) -> tuple[ConflictItems, dict[str, Any]]:
    """Join each conflict record with its vision-only and text-only records, whatever their order: the items
    over ``candidates`` (default: the union of the records' answer sets), the number of conflict rows that
    lacked a unimodal row, and the one entropy estimator of every record."""
    if candidates is None:
        candidates = records_candidates(records)
    by_key: dict[str, Mapping[str, Any]] = {}
    conflicts: list[Mapping[str, Any]] = []
    for record in records:
        if record["condition"] == "conflict":
            conflicts.append(record)
        else:
            key = record["vision_key"] if record["condition"] == "vision_only" else record["text_key"]
            previous = by_key.get(key)
            if previous is not None and previous["row_id"] != record["row_id"]:
                raise ValueError(f"two unimodal rows share the key {key!r}")
            by_key[key] = record
    estimators = sorted({str(r["entropy_estimator"]) for r in records})
    if len(estimators) > 1:
        raise ValueError(f"records mix entropy estimators {estimators}; evaluate one estimator per run")
    conflicts.sort(key=lambda r: r["item_id"])
    joined, missing = [], 0
    for conflict in conflicts:
        vision = by_key.get(conflict["vision_key"])
        text = by_key.get(conflict["text_key"])
        if vision is None or text is None:
            missing += 1
            continue
        joined.append((conflict, vision, text))
    if not joined:
        raise IncompleteRecordsError(
            f"no conflict item has all three conditions "
            f"({len(conflicts)} conflict rows, {missing} incomplete)"
        )

    def column(pick: Callable[[tuple], Any], dtype: Any = object) -> np.ndarray:
        return np.array([pick(triple) for triple in joined], dtype=dtype)

    def entropy(value: Any) -> float:
        return math.nan if value is None else float(value)

    items = ConflictItems.from_columns(
        item_id=column(lambda t: t[0]["item_id"]),
        group_id=column(lambda t: t[0]["group_id"], np.int64),
        visual_tier=column(lambda t: t[0]["visual_tier"], np.int64),
        text_tier=column(lambda t: t[0]["text_tier"], np.int64),
        control=column(lambda t: t[0]["control"]),
        vision_answer=column(lambda t: t[0]["vision_answer"]),
        text_answer=column(lambda t: t[0]["text_answer"]),
        yv=column(lambda t: t[1]["answer"]),
        yt=column(lambda t: t[2]["answer"]),
        ym=column(lambda t: t[0]["answer"]),
        hv=column(lambda t: entropy(t[1]["entropy"]), float),
        ht=column(lambda t: entropy(t[2]["entropy"]), float),
        estimator=estimators[0],
        candidates=tuple(candidates),
    )
    bookkeeping = {
        "n_conflict_rows": len(conflicts),
        "n_incomplete_conflicts": missing,
        "entropy_estimator": estimators[0],
    }
    return items, bookkeeping


def summarize_records(
    records: Sequence[Mapping[str, Any]], *, candidates: Sequence[str] | None = None
) -> dict[str, Any]:
    """The task's summary as a flat JSON-safe dict (undefined numbers are None with a reason). When the
    records ask about several attributes, ``by_attribute`` holds each one's summary over its own records
    (same keys, without the nested tables and curves) next to the pooled one."""
    attributes = records_attributes(records)
    try:
        items, bookkeeping = join_records(records, candidates=candidates)
    except IncompleteRecordsError as error:
        summary = {"status": "undefined", "reason": str(error), "n_conflicts": 0}
    else:
        summary = summarize(items, n_resamples=N_RESAMPLES, rng=np.random.default_rng(REPORT_SEED)).to_dict()
        summary.update(bookkeeping)
        summary["n_records"] = len(records)
        summary["status"] = "ok"
        if bookkeeping["entropy_estimator"] == "sampled" and all(r["entropy"] == 0 for r in records):
            summary["warnings"] = [
                "every prompt's sampled answers were identical: the model wrapper may ignore do_sample "
                "(lmms-eval 0.7.3's qwen2_5_omni decodes greedily whatever the task asks)"
            ]
        summary.update(_served_summary(records, candidates))
    summary["candidates"] = list(candidates if candidates is not None else records_candidates(records))
    summary["attributes"] = list(attributes)
    if len(attributes) > 1:
        summary["by_attribute"] = {
            attribute: _flat(summarize_records([r for r in records if record_attribute(r) == attribute]))
            for attribute in attributes
        }
    return summary


def _served_summary(records: Sequence[Mapping[str, Any]], candidates: Sequence[str] | None) -> dict[str, Any]:
    """A served model's additions to the summary: the token counts and, for the ``top_k`` estimator, the
    uncovered mass and the balance point recomputed with every entropy at its lower and its upper bound."""
    out: dict[str, Any] = {}
    usages = [r["usage"] for r in records if isinstance(r.get("usage"), Mapping)]
    if usages:
        out["usage"] = {
            key: sum(int(u.get(key, 0)) for u in usages) for key in ("prompt_tokens", "completion_tokens")
        }
    measured = [r for r in records if r.get("entropy") is not None]
    if not measured or any(r.get("entropy_bounds") is None for r in measured):
        return out
    masses = [float(r.get("uncovered_mass", 0.0)) for r in measured]
    out["uncovered_mass_mean"] = float(np.mean(masses))
    out["uncovered_mass_max"] = float(np.max(masses))
    for side, index in (("lower", 0), ("upper", 1)):
        at_bound = [
            r if r.get("entropy") is None else dict(r, entropy=r["entropy_bounds"][index]) for r in records
        ]
        items, _ = join_records(at_bound, candidates=candidates)
        bound = summarize(items, n_resamples=0, rng=np.random.default_rng(REPORT_SEED)).to_dict()
        out[f"balance_point_at_entropy_{side}"] = bound.get("balance_point")
        out[f"balance_point_at_entropy_{side}_reason"] = bound.get("balance_point_reason")
        out[f"balance_point_status_at_entropy_{side}"] = bound.get("balance_point_status")
    return out


def _flat(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary's scalars and lists of scalars, without its nested tables (small enough for a submission)."""

    def scalar(value: Any) -> bool:
        return value is None or isinstance(value, (bool, int, float, str))

    return {
        key: value
        for key, value in summary.items()
        if scalar(value) or (isinstance(value, list) and all(scalar(v) for v in value))
    }


def incomplete_conflicts_warning(summary: Mapping[str, Any]) -> str | None:
    """The warning for conflict rows that were left out because a unimodal row was missing, or None."""
    missing = summary.get("n_incomplete_conflicts")
    if not _is_int(missing) or missing <= 0:
        return None
    total = summary.get("n_conflict_rows")
    of = f" of {total}" if _is_int(total) else ""
    return (
        f"{missing}{of} conflict rows were left out: their vision-only or text-only row is missing from "
        "the run (a --limit run, or a dataset with rows removed); the numbers cover the complete items only"
    )


_cache_lock = threading.Lock()
_summary_cache: dict[str, dict[str, Any]] = {}
# The records last summarised, kept alive so that their ids cannot be reused: lmms-eval hands every
# metric's aggregation the same record objects, and comparing ids is far cheaper than hashing them.
_last_records: tuple[tuple[int, ...], list[Any], dict[str, Any]] | None = None


def _fingerprint(records: Sequence[Mapping[str, Any]]) -> str:
    digest = hashlib.sha256()
    for record in sorted(records, key=lambda r: r["row_id"]):
        digest.update(json.dumps(record, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def cached_summary(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One summary per set of records (every metric's aggregation asks; the bootstrap runs once); a new one
    with dropped conflict rows logs :func:`incomplete_conflicts_warning` once."""
    global _last_records
    identity = tuple(map(id, records))
    with _cache_lock:
        if _last_records is not None and _last_records[0] == identity:
            return _last_records[2]
        key = _fingerprint(records)
        if key not in _summary_cache:
            _summary_cache.clear()
            _summary_cache[key] = summarize_records(records)
            warning = incomplete_conflicts_warning(_summary_cache[key])
            if warning:
                logger.warning("modality_conflict: %s", warning)
        summary = _summary_cache[key]
        _last_records = (identity, list(records), summary)
        return summary
