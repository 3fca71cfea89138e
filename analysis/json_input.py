"""Reading JSON that nobody vouches for, in time linear in its size.

Submissions, results files and report files go through :func:`nesting_depth` before the parser sees them
(sample logs are read line by line with :func:`json.loads`, whose C decoder is linear and stops deep nesting
with ``RecursionError``): bracket nesting is what could exhaust the parser's stack. A backslash escapes the
next byte wherever it stands; outside a string that is invalid JSON, which the parser rejects at that byte,
so it can never reach a deeper nesting than the one counted here.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from modality_conflict.dataset_builder.errors import ModalityConflictError

_CHUNK = 1 << 20
_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_OPEN = np.zeros(256, dtype=np.int8)
_OPEN[[ord("["), ord("{")]] = 1
_OPEN[[ord("]"), ord("}")]] = -1


class UntrustedJSONError(ModalityConflictError, ValueError):
    """Bytes that are not the JSON a command accepts (not UTF-8, too deep, not JSON, ...)."""


def nesting_depth(data: bytes | bytearray | memoryview, *, limit: int | None = None) -> int:
    """Deepest nesting of arrays and objects outside strings, in one vectorised linear pass (stopping once it
    exceeds ``limit``). Only quotes, backslashes and brackets are looked at (UTF-8 multi-byte sequences
    never hold them): the parity of the backslash run before a quote says whether it is escaped, the parity
    of the unescaped quotes before a bracket whether it stands in a string. Each chunk carries over the run
    at its end, whether it ends inside a string, and the depth, so memory stays bounded."""
    codes = np.frombuffer(data, dtype=np.uint8)
    depth = deepest = 0
    in_string = False  # the state carried from one chunk to the next
    backslash_run = 0  # backslashes that end the previous chunk
    for start in range(0, codes.size, _CHUNK):
        chunk = codes[start : start + _CHUNK]
        special = (chunk == _QUOTE) | (chunk == _BACKSLASH) | (_OPEN.take(chunk) != 0)
        where = np.flatnonzero(special)
        if where.size == 0:
            backslash_run = 0
            continue
        kind = chunk[where]
        is_backslash = kind == _BACKSLASH
        order = np.arange(where.size, dtype=np.int32)
        # continues[i]: the special byte just before byte i is a backslash right next to it.
        continues = np.empty(where.size, dtype=bool)
        continues[0] = backslash_run > 0 and where[0] == 0
        np.logical_and(is_backslash[:-1], np.diff(where) == 1, out=continues[1:])
        chain_start = np.where(continues, np.int32(-(2**31)), order)
        if continues[0]:
            chain_start[0] = -backslash_run
        np.maximum.accumulate(chain_start, out=chain_start)
        # An even run of backslashes before the byte (or none): the byte is not escaped.
        plain = ((order - chain_start) & 1) == 0
        quotes = (kind == _QUOTE) & plain
        parity = np.bitwise_xor.accumulate(quotes.view(np.uint8))  # odd quotes up to and including
        outside = parity == (1 if in_string else 0)
        steps = _OPEN.take(kind) * (outside & plain)
        levels = np.cumsum(steps, dtype=np.int32)
        deepest = max(deepest, depth + int(levels.max()))
        depth += int(levels[-1])
        if limit is not None and deepest > limit:
            return deepest
        in_string = in_string != bool(parity[-1])
        ends_in_backslash = is_backslash[-1] and where[-1] == chunk.size - 1
        backslash_run = int(order[-1] - chain_start[-1]) + 1 if ends_in_backslash else 0
    return deepest


def _reject_constant(name: str) -> Any:
    raise UntrustedJSONError(f"non-standard JSON value {name} (NaN and Infinity are not allowed)")


def _finite_json_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UntrustedJSONError(f"number {text[:40]} overflows a double")
    return value


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise UntrustedJSONError(f"duplicate key {key[:80]!r} in a JSON object")
        out[key] = value
    return out


def parse_json(
    data: bytes, *, source: str, max_nesting: int, strict: bool = True, error: type[Exception] | None = None
) -> Any:
    """Parse untrusted bytes as JSON after the linear nesting check, raising ``error`` (default
    :class:`UntrustedJSONError`) naming ``source`` and the problem. ``strict`` also refuses NaN, Infinity,
    numbers that overflow a double and duplicate keys (lmms-eval's own files may hold NaN, so its readers
    pass False)."""
    fail = error or UntrustedJSONError
    if nesting_depth(data, limit=max_nesting) > max_nesting:
        raise fail(f"{source} nests arrays/objects deeper than {max_nesting} levels")
    try:
        text = bytes(data).decode("utf-8")
    except UnicodeDecodeError as problem:
        raise fail(f"{source} is not UTF-8 text (byte {problem.start})") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    options: dict[str, Any] = {}
    if strict:
        options = {
            "parse_constant": _reject_constant,
            "parse_float": _finite_json_float,
            "object_pairs_hook": _no_duplicate_keys,
        }
    try:
        return json.loads(text, **options)
    except UntrustedJSONError as problem:
        raise fail(f"{source}: {problem}") from None
    except json.JSONDecodeError as problem:
        # Some of json's messages end in "at" ("Unterminated string starting at"): one "at" is enough.
        what = problem.msg.removesuffix(" at")
        where = f"line {problem.lineno} column {problem.colno}"
        raise fail(f"{source} is not valid JSON: {what} at {where}") from None
    except (ValueError, RecursionError) as problem:  # e.g. an integer with thousands of digits
        raise fail(f"{source} holds an unreadable value: {problem}") from None
