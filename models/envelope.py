"""The response envelope: how the project's model wrappers hand uncertainty to the task.

lmms-eval passes only the generated string to ``process_results``, so the wrapper returns a JSON object
marked ``mc_envelope`` (it also lands in the sample logs). ``<`` and ``>`` are escaped, so lmms-eval's
reasoning-tag stripping never touches decoded tokens in the lens record.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
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
    """Serialise one prompt's outcome as the string the wrapper returns to lmms-eval (None fields left out).

    ``prompt`` holds what the task's text does not show (the template's ``date`` and ``preamble``);
    ``entropy_bounds`` and ``uncovered_mass`` come from estimators that do not see the whole vocabulary.
    """
    if entropy is not None and not math.isfinite(entropy):
        raise ValueError(f"entropy must be finite, got {entropy!r}")
    payload: dict[str, Any] = {
        ENVELOPE_KEY: ENVELOPE_VERSION,
        "text": text,
        "entropy": entropy,
        "estimator": estimator,
    }
    optional = {"answer_logprobs": answer_logprobs, "lens": lens, "prompt": prompt}
    payload.update((key, value) for key, value in optional.items() if value is not None)
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


def cut_at_stops(text: str, until: Iterable[str]) -> str:
    """``text`` up to the first stop string, stripped."""
    for stop in until:
        position = text.find(stop)
        if position >= 0:
            text = text[:position]
    return text.strip()


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
