"""A chat completion with logprobs, read into the project's response envelope.

The first token's ``top_logprobs`` is the answer position's distribution: exact entropy over the whole
vocabulary, else the ``"top_k"`` bounds. An endpoint gives no token ids, so a candidate's log-probability
sums the returned tokens whose stripped text is the longest start of it, lower case or capitalised.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from modality_conflict.metrics.entropy import full_vocab_entropy
from modality_conflict.metrics.top_k_entropy import TOP_K_ESTIMATOR, top_k_entropy_bounds
from modality_conflict.models.envelope import cut_at_stops, encode_envelope
from modality_conflict.models.errors import ModelArgumentError

FULL_VOCAB = "full_vocab"
NO_LENS = "served model: the endpoint exposes no hidden states, so the logit lens runs in-process only"
MISSING_ANSWER_LOGPROB = -1e6
"""A candidate none of whose first tokens came back (the floor of the submission schema's scores)."""


class MalformedResponseError(ModelArgumentError):
    """A chat completion without the fields the envelope needs (text, first-token logprobs)."""


def _first_token_logprobs(data: Mapping[str, Any]) -> tuple[str, list[tuple[str, float]], int]:
    """The answer text, the first token's returned (token, logprob) pairs and the number of tokens."""
    try:
        choice = data["choices"][0]
        text = choice["message"]["content"]
        content = (choice.get("logprobs") or {}).get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        raise MalformedResponseError("the response has no choices[0].message.content") from None
    if text is None:
        text = ""
    if not isinstance(text, str):
        raise MalformedResponseError("the response's message content is not text")
    if not content:
        raise MalformedResponseError("the response has no logprobs (choices[0].logprobs.content is empty)")
    first = content[0]
    top = first.get("top_logprobs") if isinstance(first, Mapping) else None
    if not isinstance(top, list) or not top:
        raise MalformedResponseError("the response's first token has no top_logprobs")
    pairs = []
    for entry in top:
        try:
            token, logprob = str(entry["token"]), float(entry["logprob"])
        except (KeyError, TypeError, ValueError):
            raise MalformedResponseError(f"a top_logprobs entry is malformed: {str(entry)[:80]!r}") from None
        if math.isnan(logprob) or logprob > 1e-6:
            raise MalformedResponseError(f"top_logprobs holds {logprob!r}, not a log-probability")
        pairs.append((token, min(logprob, 0.0)))
    return text, pairs, len(content)


def answer_logprobs(pairs: Sequence[tuple[str, float]], answers: Sequence[str]) -> dict[str, float]:
    """Each candidate's first-token log-probability from the returned tokens' text (see the module)."""
    out = {}
    for answer in answers:
        values = []
        for form in dict.fromkeys((answer.lower(), answer.capitalize())):
            # The first token of the form: the longest returned text that starts it ("red", or "bl" of
            # "black"), with or without leading whitespace.
            starts = [(token.strip(), logprob) for token, logprob in pairs if token.strip()]
            starts = [(text, logprob) for text, logprob in starts if form.startswith(text)]
            if starts:
                longest = max(len(text) for text, _ in starts)
                values += [logprob for text, logprob in starts if len(text) == longest]
        if values:
            peak = max(values)
            out[answer] = peak + math.log(sum(math.exp(v - peak) for v in values))
        else:
            out[answer] = MISSING_ANSWER_LOGPROB
    return out


def served_envelope(
    data: Mapping[str, Any],
    *,
    answers: Sequence[str],
    vocab_size: int,
    until: Sequence[str] = (),
) -> str:
    """The envelope of one decoded chat completion (see the module docstring): a first token with
    ``vocab_size`` returned entries is the whole distribution, fewer give the ``"top_k"`` bounds."""
    text, pairs, n_tokens = _first_token_logprobs(data)
    logprobs = np.array([logprob for _, logprob in pairs])
    bounds = None
    mass = None
    try:
        if len(pairs) >= vocab_size:
            entropy = float(full_vocab_entropy(logprobs).values)
            estimator = FULL_VOCAB
        else:
            estimate = top_k_entropy_bounds(logprobs, vocab_size=vocab_size)
            entropy, estimator = float(estimate.estimate), TOP_K_ESTIMATOR
            bounds = (float(estimate.lower), float(estimate.upper))
            mass = float(estimate.uncovered_mass)
    except ValueError as error:
        raise MalformedResponseError(f"the first token's logprobs are not a distribution: {error}") from None
    usage = data.get("usage")
    counts = None
    if isinstance(usage, Mapping):
        counts = {
            key: int(usage[key])
            for key in ("prompt_tokens", "completion_tokens")
            if isinstance(usage.get(key), int) and not isinstance(usage.get(key), bool)
        }
    return encode_envelope(
        text=cut_at_stops(text, until),
        entropy=entropy,
        estimator=estimator,
        answer_logprobs=answer_logprobs(pairs, answers) if answers else None,
        decode_steps=n_tokens,
        entropy_bounds=bounds,
        uncovered_mass=mass,
        lens_reason=NO_LENS,
        usage=counts,
    )
