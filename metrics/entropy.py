"""Entropy estimators for a model's uncertainty on a unimodal prompt, all in nats.

Each result names its estimator, because their values are not interchangeable: ``"full_vocab"`` (the
paper's), ``"answer_set"`` (renormalised over the candidates, for models that only expose scores),
``"sampled"`` (for generation-only models) and ``"top_k"`` (an API's top-k log-probabilities).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike

from modality_conflict.metrics._common import as_float_array

ESTIMATORS: tuple[str, ...] = (
    "full_vocab",
    "answer_set",
    "answer_set_length_normalised",
    "sampled",
    "top_k",
)
"""Labels of the entropy estimators, as carried in records and reports."""


@dataclass(frozen=True)
class EntropyEstimate:
    """Entropies in nats from one of :data:`ESTIMATORS` (the input's shape without the category axis),
    with a note on what they mean and their caveats."""

    values: np.ndarray = field(compare=False)
    estimator: str
    note: str


def _index_text(index: tuple[int, ...]) -> str:
    return str(index[0]) if len(index) == 1 else str(index)


def _entropy_from_log_weights(log_weights: np.ndarray, name: str, axis: int) -> np.ndarray:
    """Entropy of softmax(log_weights) along ``axis``; -inf entries are zero-probability outcomes."""
    if log_weights.ndim == 0 or log_weights.shape[axis] == 0:
        raise ValueError(
            f"{name} needs at least one category along axis {axis}, got shape {log_weights.shape}"
        )
    bad = np.isnan(log_weights) | (log_weights == np.inf)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"{name} has {float(log_weights[index])!r} at index {_index_text(index)}")
    peak = np.max(log_weights, axis=axis, keepdims=True)
    if np.any(peak == -np.inf):
        index = tuple(int(i) for i in np.argwhere(np.squeeze(peak == -np.inf, axis=axis))[0])
        raise ValueError(
            f"{name} is -inf for every category at distribution {_index_text(index) if index else '()'}"
        )
    # Shift by the maximum (log-sum-exp trick) so that exp never overflows.
    shifted = log_weights - peak
    weights = np.exp(shifted)
    total = np.sum(weights, axis=axis, keepdims=True)
    probs = weights / total
    # p * log p with p = 0 (shifted = -inf) contributes 0, not NaN.
    plogp = np.where(probs > 0, probs * np.where(probs > 0, shifted, 0.0), 0.0)
    entropy = np.log(np.squeeze(total, axis=axis)) - np.sum(plogp, axis=axis)
    return np.maximum(entropy, 0.0)


def full_vocab_entropy(logits: ArrayLike, *, axis: int = -1) -> EntropyEstimate:
    """Entropy of the next-token distribution from logits over the whole vocabulary (``axis``); ``-inf``
    marks masked tokens. Shifting by the largest logit keeps it exact and free of overflow.

    >>> float(full_vocab_entropy([0.0, 0.0]).values)
    0.6931...
    """
    array = as_float_array(logits, "logits", ndim=None)
    values = _entropy_from_log_weights(array, "logits", axis)
    vocab = array.shape[axis]
    return EntropyEstimate(
        values=values,
        estimator="full_vocab",
        note=f"next-token entropy over the full vocabulary of {vocab} tokens, nats (at most log V = "
        f"{np.log(vocab):.4f})",
    )


def answer_set_entropy(
    log_probs: ArrayLike | None = None,
    *,
    mean_losses: ArrayLike | None = None,
    token_counts: ArrayLike | None = None,
    length_normalised: bool = False,
    axis: int = -1,
) -> EntropyEstimate:
    """Entropy over the closed answer set from one log-likelihood per candidate answer.

    Give ``log_probs`` (summed, ``<= 0``) or ``mean_losses`` (mean per-token losses, as several lmms-eval
    ``loglikelihood`` implementations return) with ``token_counts`` to undo the mean, or with
    ``length_normalised=True`` for that different estimator. Probability outside the answer set is ignored,
    so the value is not comparable to the full-vocabulary entropy.
    """
    if (log_probs is None) == (mean_losses is None):
        raise ValueError("give exactly one of log_probs or mean_losses")
    if log_probs is not None:
        if token_counts is not None or length_normalised:
            raise ValueError("token_counts and length_normalised apply to mean_losses, not log_probs")
        scores = as_float_array(log_probs, "log_probs", ndim=None)
        positive = scores > 0
        if positive.any():
            index = tuple(int(i) for i in np.argwhere(positive)[0])
            raise ValueError(
                f"log_probs must be <= 0, got {float(scores[index])!r} at index {_index_text(index)} "
                "(pass mean_losses= for losses)"
            )
        estimator, source = "answer_set", "summed answer log-probabilities"
    else:
        losses = as_float_array(mean_losses, "mean_losses", ndim=None)
        negative = losses < 0
        if negative.any():
            index = tuple(int(i) for i in np.argwhere(negative)[0])
            value = float(losses[index])
            raise ValueError(f"mean_losses must be >= 0, got {value!r} at index {_index_text(index)}")
        if token_counts is not None:
            if length_normalised:
                raise ValueError("length_normalised=True ignores token counts; pass one or the other")
            counts = as_float_array(token_counts, "token_counts", ndim=None)
            try:
                losses, counts = np.broadcast_arrays(losses, counts)
            except ValueError:
                raise ValueError(
                    f"token_counts shape {counts.shape} does not match mean_losses shape {losses.shape}"
                ) from None
            invalid = ~(np.isfinite(counts) & (counts >= 1) & (counts == np.round(counts)))
            if invalid.any():
                index = tuple(int(i) for i in np.argwhere(invalid)[0])
                raise ValueError(
                    f"token_counts must be positive integers, got {float(counts[index])!r} "
                    f"at index {_index_text(index)}"
                )
            scores = -losses * counts
            estimator, source = "answer_set", "summed answer log-probabilities (mean loss x token count)"
        elif length_normalised:
            scores = -losses
            estimator, source = "answer_set_length_normalised", "per-token mean log-likelihoods"
        else:
            raise ValueError(
                "mean_losses without token_counts: pass token_counts, or length_normalised=True for the "
                "length-normalised estimator"
            )
    values = _entropy_from_log_weights(scores, "log_probs" if log_probs is not None else "mean_losses", axis)
    size = scores.shape[axis]
    note = (
        f"entropy over {size} candidate answers renormalised from {source}, nats (at most log {size} = "
        f"{np.log(size):.4f}); probability outside the answer set is ignored"
    )
    if estimator == "answer_set_length_normalised":
        note += "; length-normalised scores are not log-probabilities of the answers"
    return EntropyEstimate(values=values, estimator=estimator, note=note)


def sampled_answer_entropy(
    samples: Sequence[Sequence[str]] | np.ndarray,
    *,
    candidates: Sequence[str] | None = None,
    correction: Literal["miller_madow"] | None = "miller_madow",
) -> EntropyEstimate:
    """Entropy of the empirical distribution of K sampled answers per item (K may differ between items).

    The plug-in estimate is biased low by about ``(m - 1) / (2K)`` for ``m`` distinct answers; the default
    Miller-Madow correction adds that term. With ``candidates``, every sample must be one of them.
    """
    if correction not in ("miller_madow", None):
        raise ValueError(f"correction must be 'miller_madow' or None, got {correction!r}")
    if isinstance(samples, str) or (len(samples) > 0 and isinstance(samples[0], str)):
        raise ValueError("samples must hold one sequence of answers per item, e.g. [['red', 'blue', ...]]")
    rows = [np.asarray(row, dtype=object).reshape(-1) for row in samples]
    lengths = np.array([len(row) for row in rows], dtype=np.int64)
    empty = np.flatnonzero(lengths == 0)
    if empty.size:
        raise ValueError(f"item {int(empty[0])} has no sampled answers")
    n_items = len(rows)
    if n_items == 0:
        values = np.zeros(0)
    else:
        flat = np.concatenate(rows)
        non_str = [i for i, value in enumerate(flat) if not isinstance(value, str)]
        if non_str:
            item = int(np.searchsorted(np.cumsum(lengths), non_str[0], side="right"))
            raise ValueError(f"item {item} has a non-string sample {flat[non_str[0]]!r}")
        labels, codes = np.unique(flat.astype(str), return_inverse=True)
        if candidates is not None:
            unknown = np.setdiff1d(labels, np.asarray(list(candidates), dtype=str))
            if unknown.size:
                position = int(np.flatnonzero(flat.astype(str) == unknown[0])[0])
                item = int(np.searchsorted(np.cumsum(lengths), position, side="right"))
                raise ValueError(f"item {item} has sample {str(unknown[0])!r}, not one of {list(candidates)}")
        item_index = np.repeat(np.arange(n_items), lengths)
        counts = np.bincount(item_index * labels.size + codes, minlength=n_items * labels.size)
        counts = counts.reshape(n_items, labels.size).astype(float)
        k = lengths.astype(float)
        clogc = np.where(counts > 0, counts * np.log(np.where(counts > 0, counts, 1.0)), 0.0)
        values = np.maximum(np.log(k) - clogc.sum(axis=1) / k, 0.0)
        if correction == "miller_madow":
            observed = (counts > 0).sum(axis=1)
            values = values + (observed - 1) / (2.0 * k)
    if correction == "miller_madow":
        note = "entropy of K sampled answers with the Miller-Madow correction (m - 1)/(2K), nats"
    else:
        note = "plug-in entropy of K sampled answers, nats; biased low by about (m - 1)/(2K)"
    return EntropyEstimate(values=values, estimator="sampled", note=note)
