"""The response envelope: how the project's model wrapper hands uncertainty to the task.

lmms-eval passes only the generated string from a model to ``process_results``. The project's wrapper
therefore returns a JSON object as its "generation"; the task recognises it by its ``mc_envelope`` key and
falls back to treating any other response as plain generated text. Everything in it also lands in
lmms-eval's per-sample logs, which is what lets probing and submissions reuse it without a second pass.

lmms-eval strips reasoning blocks (``<think>...</think>`` and the like, ``--reasoning_tags``) from every
response before the task sees it; the envelope escapes ``<`` and ``>`` (``\\u003c``, ``\\u003e``, still
valid JSON for the same object), so decoded tokens in the lens record can never look like such tags.
"""

from __future__ import annotations

import json
import math
from typing import Any

ENVELOPE_VERSION = 1
ENVELOPE_KEY = "mc_envelope"


def encode_envelope(
    *,
    text: str,
    entropy: float | None,
    estimator: str,
    answer_logprobs: dict[str, float] | None = None,
    lens: dict[str, Any] | None = None,
    prompt: dict[str, Any] | None = None,
    decode_steps: int | None = None,
    entropy_bounds: tuple[float, float] | None = None,
    uncovered_mass: float | None = None,
    lens_reason: str | None = None,
    usage: dict[str, int] | None = None,
) -> str:
    """Serialise one prompt's outcome as the string the wrapper returns to lmms-eval.

    Parameters
    ----------
    text
        The generated answer text (what any other model would have returned).
    entropy
        First-answer-token entropy in nats, or None when it could not be computed.
    estimator
        Label of the entropy estimator, e.g. ``"full_vocab"``.
    answer_logprobs
        Optional log-probabilities of each candidate answer's first token at the answer position.
    lens
        Optional logit-lens record (see ``modality_conflict.models.logit_lens``).
    prompt
        Optional facts about the rendered prompt that do not show in the task's text: the date the chat
        template saw (``date``) and what it wrote before the user's turn (``preamble``: the system prompt,
        the template's default or the one given).
    decode_steps
        Optional number of tokens generated for the answer (end token included).
    entropy_bounds
        Optional proven ``(lower, upper)`` bounds on the full-vocabulary entropy, for estimators that do
        not see the whole vocabulary (``"top_k"``).
    uncovered_mass
        Optional probability of the tokens the estimator did not see.
    lens_reason
        Why there is no ``lens`` (e.g. a served model exposes no hidden states).
    usage
        Optional token counts the server reported (``prompt_tokens``, ``completion_tokens``).
    """
    if entropy is not None and not math.isfinite(entropy):
        raise ValueError(f"entropy must be finite, got {entropy!r}")
    payload: dict[str, Any] = {
        ENVELOPE_KEY: ENVELOPE_VERSION,
        "text": text,
        "entropy": entropy,
        "estimator": estimator,
    }
    if answer_logprobs is not None:
        payload["answer_logprobs"] = answer_logprobs
    if lens is not None:
        payload["lens"] = lens
    if prompt is not None:
        payload["prompt"] = prompt
    if decode_steps is not None:
        payload["decode_steps"] = int(decode_steps)
    if entropy_bounds is not None:
        low, high = (float(v) for v in entropy_bounds)
        if not (math.isfinite(low) and math.isfinite(high) and low <= high):
            raise ValueError(f"entropy_bounds must be finite and ordered, got {entropy_bounds!r}")
        payload["entropy_bounds"] = [low, high]
    if uncovered_mass is not None:
        payload["uncovered_mass"] = float(uncovered_mass)
    if lens_reason is not None:
        payload["lens_reason"] = lens_reason
    if usage is not None:
        payload["usage"] = {k: int(v) for k, v in usage.items()}
    text = json.dumps(payload, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e")


def decode_envelope(response: object) -> dict[str, Any] | None:
    """Return the envelope carried by ``response``, or None when it is ordinary generated text."""
    if not isinstance(response, str):
        return None
    stripped = response.strip()
    if not stripped.startswith("{") or ENVELOPE_KEY not in stripped:
        return None
    try:
        payload = json.loads(stripped)
    except json.JSONDecodeError:
        return None
    if not isinstance(payload, dict) or payload.get(ENVELOPE_KEY) != ENVELOPE_VERSION:
        return None
    if not isinstance(payload.get("text"), str):
        raise ValueError("response envelope has no 'text' string")
    return payload
