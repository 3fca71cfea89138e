"""Property-based tests of the submission reader and ``verify`` on random and mutated submissions.

Every input is either accepted unchanged (what verification returns is exactly what the file holds) or
rejected with an error that says where the problem is (a field, a record, or a line and column of the
JSON), never another exception, and always within a bounded time. Against the run it was made from
(``verify --run``), a submission with any verified field changed (every field but the few claims listed in
:data:`UNVERIFIED_WITH_RUN`) is always rejected, by place: "accepted unchanged" alone would let a verifier
that accepts tampered files pass.
"""

from __future__ import annotations

import copy
import json
import re
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
from fixtures_results import write_lmms_eval_run
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from modality_conflict.analysis import submission as sub
from modality_conflict.analysis.results import read_task_results

SECONDS_PER_INPUT = 10.0  # generous: a valid submission is recomputed, bootstrap included
# Derandomised (the same inputs on every run, so CI cannot flake) and without shrinking: a failure is
# printed as it was drawn. Few examples: most are rejected at once, the rest cost one recomputation.
FUZZ = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# Where a message points: a schema path, a record, a metric, a JSON position, a byte, or the file's limits.
PLACE = re.compile(
    r"(\n  - ([^\s:]+|\(top level\)): |records\[\d+\]|records:|records \(|metric '|dataset\.|"
    r"estimator is|analysis uses|line \d+ column \d+|byte \d+|deeper than|duplicate key|"
    r"NaN and Infinity|overflows a double|unreadable value|limited to)"
)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """lmms-eval output of a small simulated run (three item groups, every condition)."""
    root = tmp_path_factory.mktemp("fuzz-results")
    write_lmms_eval_run(root, model_id="org/fuzzed", balance_point=-0.2, n_groups=3, seed=11)
    return root


@pytest.fixture(scope="module")
def valid(run_folder: Path) -> dict[str, Any]:
    """A real submission of that run."""
    (run,) = read_task_results([run_folder], require_samples=True)
    built = sub.build_submission(run, created="2025-11-25T10:15:00+00:00")
    path = sub.write_submission(built, run_folder.parent / "valid.json")
    return json.loads(path.read_text())


def _check(content: bytes) -> None:
    """The property: accepted unchanged, or a SubmissionError that names a place; in bounded time."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "submission.json"
        path.write_bytes(content)
        started = time.perf_counter()
        try:
            verification = sub.verify_file(path)
        except sub.SubmissionError as error:
            message = str(error)
            assert PLACE.search(message), message[:500]
        else:
            assert verification.submission == json.loads(content.decode("utf-8-sig"))
        elapsed = time.perf_counter() - started
    assert elapsed < SECONDS_PER_INPUT, f"{elapsed:.1f} s"


def test_the_valid_submission_is_accepted(valid: dict[str, Any]) -> None:
    verification = sub.verify_submission(copy.deepcopy(valid))
    assert verification.submission == valid


JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path into a JSON value (records sampled: they are many and alike)."""
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out.extend(_paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for index in sorted({0, 1, len(value) // 2, len(value) - 1} & set(range(len(value)))):
            out.extend(_paths(value[index], (*prefix, index)))
    return out


@st.composite
def mutated(draw: st.DrawFn, valid: dict[str, Any]) -> bytes:
    """The valid submission with one structural edit: a value replaced, a key dropped or added, a record
    repeated or dropped, a number nudged."""
    data = copy.deepcopy(valid)
    paths = _paths(data)
    path = draw(st.sampled_from(paths))
    parent = data
    for part in path[:-1]:
        parent = parent[part]
    kind = draw(st.sampled_from(["replace", "drop", "add", "nudge", "repeat_record", "drop_record"]))
    if kind == "repeat_record":
        data["records"].append(copy.deepcopy(data["records"][draw(st.integers(0, len(data["records"]) - 1))]))
    elif kind == "drop_record":
        del data["records"][draw(st.integers(0, len(data["records"]) - 1))]
    elif not path:
        data = draw(JSON_VALUES)
    elif kind == "drop" and isinstance(parent, dict):
        del parent[path[-1]]
    elif kind == "add" and isinstance(parent, dict):
        parent[draw(st.text(max_size=10))] = draw(JSON_VALUES)
    elif (
        kind == "nudge"
        and isinstance(parent[path[-1]], (int, float))
        and not isinstance(parent[path[-1]], bool)
    ):
        parent[path[-1]] = parent[path[-1]] + draw(st.sampled_from([1, -1, 1e-6, 0.5]))
    else:
        parent[path[-1]] = draw(JSON_VALUES)
    return json.dumps(data).encode()


@FUZZ
@given(data=st.data())
def test_mutated_submissions_are_accepted_unchanged_or_rejected_by_name(
    valid: dict[str, Any], data: st.DataObject
) -> None:
    _check(data.draw(mutated(valid)))


@FUZZ
@given(data=st.data())
def test_byte_level_damage_is_rejected_by_place(valid: dict[str, Any], data: st.DataObject) -> None:
    content = bytearray(json.dumps(valid).encode())
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(content) - 1))
        action = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "flip":
            content[position] ^= data.draw(st.integers(1, 255))
        elif action == "insert":
            content[position:position] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del content[position : position + data.draw(st.integers(1, 8))]
    _check(bytes(content))


@FUZZ
@given(
    content=st.one_of(
        st.binary(max_size=200),
        st.text(alphabet='[]{}"\\:,0123456789.eE+-truefalsnl \n\t', max_size=300).map(str.encode),
        JSON_VALUES.map(lambda value: json.dumps(value).encode()),
    )
)
def test_random_input_is_rejected_by_place(content: bytes) -> None:
    _check(content)


# Claims that ``verify --run`` alone does not check: the dataset's name, revision and split are held to a
# dataset folder (``--data``, ``--dataset-revision``); the rest are the submitter's word. Every other field
# of a submission is verified: changing it must get the submission rejected.
UNVERIFIED_WITH_RUN = {
    ("dataset", "repo"),
    ("dataset", "revision"),
    ("dataset", "split"),
    ("analysis", "package_version"),
    ("lmms_eval", "version"),
    ("lmms_eval", "reported_version"),
    ("lmms_eval", "git_hash"),
    ("model", "id"),
    ("model", "revision"),
    ("task", "output_type"),
    ("task", "version"),
}


def _at(value: Any, path: tuple) -> Any:
    for part in path:
        value = value[part]
    return value


@st.composite
def changed_field(draw: st.DrawFn, valid: dict[str, Any]) -> tuple[tuple, dict[str, Any]]:
    """One verified leaf of the valid submission given another value (nudged, or any JSON value)."""
    paths = [p for p in _paths(valid) if p and not isinstance(_at(valid, p), (dict, list))]
    paths = [p for p in paths if tuple(x for x in p if isinstance(x, str)) not in UNVERIFIED_WITH_RUN]
    path = draw(st.sampled_from(paths))
    old = _at(valid, path)
    if isinstance(old, (int, float)) and not isinstance(old, bool) and draw(st.booleans()):
        new = old + draw(st.sampled_from([1, -1, 1e-6, 0.5]))
    else:
        new = draw(JSON_VALUES.filter(lambda value: json.dumps(value) != json.dumps(old) and value != old))
    data = copy.deepcopy(valid)
    parent = _at(data, path[:-1])
    parent[path[-1]] = new
    return path, data


@FUZZ
@given(data=st.data())
def test_any_change_to_a_verified_field_is_rejected(
    valid: dict[str, Any], run_folder: Path, data: st.DataObject
) -> None:
    path, changed = data.draw(changed_field(valid))
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "submission.json"
        file.write_text(json.dumps(changed))
        with pytest.raises(sub.SubmissionError) as rejected:
            sub.verify_file(file, run=run_folder)
    assert PLACE.search(str(rejected.value)), (path, str(rejected.value)[:500])


def test_the_unchanged_submission_passes_against_its_run(valid: dict[str, Any], run_folder: Path) -> None:
    with tempfile.TemporaryDirectory() as folder:
        file = Path(folder) / "submission.json"
        file.write_text(json.dumps(valid))
        assert sub.verify_file(file, run=run_folder).submission == valid
