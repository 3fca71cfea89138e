"""The linear-time nesting count against a byte-at-a-time state machine, across chunk boundaries."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modality_conflict.analysis import json_input
from modality_conflict.analysis.json_input import UntrustedJSONError, nesting_depth, parse_json

_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def depth_one_byte_at_a_time(data: bytes) -> int:
    """The specification: outside a string, inside one, or just after a backslash (in or outside one)."""
    depth = deepest = 0
    state = "outside"
    for byte in data:
        if state in ("escape", "escape_outside"):
            state = "string" if state == "escape" else "outside"  # the escaped byte counts for nothing
        elif byte == ord("\\"):
            state = "escape" if state == "string" else "escape_outside"
        elif byte == ord('"'):
            state = "outside" if state == "string" else "string"
        elif state == "outside" and byte in _STEP:
            depth += _STEP[byte]
            deepest = max(deepest, depth)
    return deepest


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        (b"", 0),
        (b'{"a": [1, {"b": []}]}', 4),
        (b'["[[[", "]]]"]', 1),  # brackets inside strings do not count
        (b'["\\"[[["]', 1),  # an escaped quote does not end the string
        (b'["\\\\", [[]]]', 3),  # an escaped backslash does not escape the quote after it
        (b"\\[[", 1),  # outside a string a backslash swallows the next byte
    ],
)
def test_hand_counted_depths(text: bytes, depth: int) -> None:
    assert nesting_depth(text) == depth == depth_one_byte_at_a_time(text)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([b"[", b"]", b"{", b"}", b'"', b"\\", b"a", b","]), max_size=200),
    st.integers(1, 7),
)
def test_equals_the_state_machine_whatever_the_chunk_size(pieces: list[bytes], chunk: int) -> None:
    data = b"".join(pieces)
    expected = depth_one_byte_at_a_time(data)
    assert nesting_depth(data) == expected
    whole = json_input._CHUNK
    json_input._CHUNK = chunk  # tiny chunks: the state carried from one to the next decides
    try:
        assert nesting_depth(data) == expected
    finally:
        json_input._CHUNK = whole


def test_too_deep_input_is_refused_in_one_line() -> None:
    with pytest.raises(UntrustedJSONError, match=r"^x.json nests arrays/objects deeper than 64 levels$"):
        parse_json(
            b"[" * 200 + b"]" * 200, source="x.json", max_nesting=64, strict=True, error=UntrustedJSONError
        )
