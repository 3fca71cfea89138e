"""Cheap per-record checks: does each record agree with itself, as ``records.make_record`` would make it?

- ``full_vocab`` / ``none`` (generation): the answer is the normalised ``raw_response``; ``answer_scores``
  (first-token log-probabilities of distinct tokens) sum to at most 1 in probability, and the entropy is at
  least their share ``-sum p log p``; ``none`` has no entropy.
- ``answer_set`` / ``answer_set_length_normalised`` (loglikelihood): the answer is the best-scoring
  candidate and the entropy that of the scores' softmax, both exactly.
- ``sampled``: the entropy lies between 0 and the largest Miller-Madow value any K can give; 0 means every
  sample agreed, so the answer is the normalised ``raw_response`` (the first sample).

A record whose response, answer and entropy were forged together passes; only a trusted re-run catches it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from modality_conflict.dataset_builder.specs import vocabulary_for
from modality_conflict.mc_tasks.records import RAW_RESPONSE_CHARS, answer_set
from modality_conflict.metrics.answers import OTHER, normalize_answer
from modality_conflict.metrics.entropy import answer_set_entropy

LOGLIK_ESTIMATORS = ("answer_set", "answer_set_length_normalised")
SAMPLED_ESTIMATOR = "sampled"
# Float32 log-softmax on the model side: probabilities may sum to 1 + a few ulps.
PROBABILITY_TOLERANCE = 1e-4
# The answer-set entropy is recomputed from the very numbers it was computed from.
EXACT_TOLERANCE = 1e-9


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=EXACT_TOLERANCE, abs_tol=EXACT_TOLERANCE)


def _normalised(text: str, candidates: Sequence[str]) -> str:
    # The synonyms of the dataset whose answers these are (colours; or shapes and materials).
    return normalize_answer(text, candidates, synonyms=vocabulary_for(candidates).synonyms)


def record_inconsistency(record: Mapping[str, Any], candidates: Sequence[str] | None = None) -> str | None:
    """Why a (schema-valid) record contradicts itself over ``candidates`` (default: its own answer set),
    naming the field, or None when it does not."""
    candidates = answer_set(record) if candidates is None else candidates
    estimator = record["entropy_estimator"]
    answer, raw, entropy, scores = (
        record["answer"],
        record["raw_response"],
        record["entropy"],
        record["answer_scores"],
    )
    if estimator in LOGLIK_ESTIMATORS:
        if scores is None or len(scores) != len(candidates):
            return f"answer_scores must hold one score per candidate for the {estimator} estimator"
        values = np.asarray(scores, dtype=float)
        if np.any(values > 0):
            return "answer_scores holds a positive log-probability"
        best = candidates[int(np.argmax(values))]
        if answer != best:
            return f"answer is {answer!r} but the best-scoring candidate in answer_scores is {best!r}"
        expected = float(np.asarray(answer_set_entropy(log_probs=values).values).reshape(-1)[0])
        if entropy is None or not _close(float(entropy), expected):
            return f"entropy is {entropy!r} but the answer-set entropy of answer_scores is {expected!r}"
        if raw != "":
            return "raw_response must be empty for a loglikelihood record"
        return None
    if estimator == SAMPLED_ESTIMATOR:
        if scores is not None:
            return "answer_scores must be null for sampled answers"
        if entropy is None:
            return "entropy is null, but sampled answers always have an entropy"
        outcomes = len(candidates) + 1  # the candidates and "other"
        ceiling = math.log(outcomes) + (outcomes - 1) / (2 * outcomes)
        if float(entropy) > ceiling + EXACT_TOLERANCE:
            return f"entropy {entropy!r} exceeds {ceiling:.4f}, the most any number of samples can give"
        if float(entropy) == 0.0 and len(raw) < RAW_RESPONSE_CHARS and _normalised(raw, candidates) != answer:
            return (
                f"answer is {answer!r} but every sample agreed (entropy 0) and the first reads "
                f"{_normalised(raw, candidates)!r}"
            )
        return None
    expected_answer = _normalised(raw, candidates)
    if answer != expected_answer:
        return f"answer is {answer!r} but raw_response normalises to {expected_answer!r}"
    if estimator == "none" and (entropy is not None or scores is not None):
        return "a record without an entropy estimator (none) has an entropy or answer_scores"
    if scores is not None:
        if len(scores) != len(candidates):
            return f"answer_scores holds {len(scores)} scores for {len(candidates)} candidates"
        probabilities = np.exp(np.minimum(np.asarray(scores, dtype=float), 0.0))
        if np.any(np.asarray(scores, dtype=float) > PROBABILITY_TOLERANCE):
            return "answer_scores holds a positive log-probability"
        total = float(probabilities.sum())
        if total > 1.0 + PROBABILITY_TOLERANCE:
            return f"the candidates' probabilities in answer_scores sum to {total:.6f}, more than 1"
        share = float(-(probabilities * np.log(np.where(probabilities > 0, probabilities, 1.0))).sum())
        if entropy is not None and float(entropy) < share - PROBABILITY_TOLERANCE:
            return (
                f"entropy {entropy!r} is smaller than the candidates' own share of it ({share:.6f}) "
                "given answer_scores"
            )
    if answer != OTHER and answer not in candidates:
        return f"answer {answer!r} is not a candidate"
    return None


def consistency_problems(records: Sequence[Mapping[str, Any]], *, limit: int = 20) -> list[str]:
    """One line per record that contradicts itself (at most ``limit``, then a count)."""
    problems, bad = [], 0
    for position, record in enumerate(records):
        problem = record_inconsistency(record)
        if problem is None:
            continue
        bad += 1
        if bad <= limit:
            problems.append(f"records[{position}] ({record['row_id']}): {problem}")
    if bad > limit:
        problems.append(f"... {bad - limit} more records contradict themselves")
    return problems
