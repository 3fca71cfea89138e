"""Submissions: ``submit``, ``verify`` (untrusted input, recomputation, dataset check), ``leaderboard`` and
the Hub "Eval Results" files."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml
from fixtures_results import write_lmms_eval_run
from huggingface_hub import parse_eval_result_entries

from modality_conflict.analysis import submission as sub
from modality_conflict.analysis.eval_results import write_eval_results
from modality_conflict.analysis.leaderboard import COLUMNS, NoReferenceDatasetError, build_leaderboard
from modality_conflict.analysis.results import read_task_results
from modality_conflict.analysis.submission import schema as submission_schema
from modality_conflict.cli.main import main
from modality_conflict.dataset_builder.builder import build_dataset
from modality_conflict.dataset_builder.resolve import CACHE_ENV
from modality_conflict.mc_tasks.records import summarize_records

RESULT_SOURCES = ("synthetic", "tiny_lmms_eval_run")
CREATED = "2025-11-25T10:15:00+00:00"


@pytest.fixture(scope="module")
def synthetic_results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An lmms-eval --output_path folder of one simulated model (balance point -0.4)."""
    root = tmp_path_factory.mktemp("results")
    write_lmms_eval_run(root, model_id="org/vision-lover", balance_point=-0.4, n_groups=12, seed=5)
    return root


@pytest.fixture(scope="module")
def submission_file(synthetic_results: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    (run,) = read_task_results([synthetic_results], require_samples=True)
    path = tmp_path_factory.mktemp("submissions") / "vision-lover.json"
    return sub.write_submission(sub.build_submission(run, created=CREATED), path)


@pytest.fixture(params=RESULT_SOURCES)
def results_dir(request: pytest.FixtureRequest, synthetic_results: Path) -> Path:
    """An lmms-eval --output_path folder: the synthetic run, and the real tiny-model run once it exists."""
    if request.param == "synthetic":
        return synthetic_results
    try:
        run = request.getfixturevalue(request.param)
    except pytest.FixtureLookupError:
        pytest.skip(f"fixture {request.param!r} is not defined in this test session")
    return Path(run)


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _write(data: Any, path: Path) -> Path:
    path.write_text(json.dumps(data))
    return path


def _rejected(path: Path, **kwargs: Any) -> str:
    with pytest.raises(sub.RejectedSubmissionError) as caught:
        sub.verify_file(path, **kwargs)
    return str(caught.value)


# --- submit and verify on a result folder ----------------------------------------------------------------


def check_submission_round_trip(results: Path, tmp_path: Path) -> None:
    """Assertions that hold for any lmms-eval result folder of a modality_conflict task with sample logs."""
    runs = read_task_results([results], require_samples=True)
    run = runs[0]
    path = sub.write_submission(sub.build_submission(run), tmp_path / "submission.json")
    data = _load(path)
    assert sub.schema_problems(data) == []
    assert data["metrics"] == run.summary.raw
    assert len(data["records"]) == len(run.records)
    assert all("lens" not in record for record in data["records"])
    verification = sub.verify_file(path)
    assert verification.recomputed["n_records"] == len(run.records)
    assert any("dataset check skipped" in note for note in verification.notes)
    # Tampering with any reported number is caught and named.
    for key in ("n_conflicts", "n_records"):
        tampered = copy.deepcopy(data)
        tampered["metrics"][key] += 1
        message = _rejected(_write(tampered, tmp_path / "tampered.json"))
        assert f"metric '{key}'" in message


def test_submit_and_verify_round_trip(results_dir: Path, tmp_path: Path) -> None:
    check_submission_round_trip(results_dir, tmp_path)


def test_submission_records_provenance(submission_file: Path) -> None:
    data = _load(submission_file)
    assert data["model"] == {
        "id": "org/vision-lover",
        "revision": "fedcba9876543210fedcba9876543210fedcba98",
        "lmms_eval_model": "modality_conflict_hf",
        "model_args": f"pretrained=org/vision-lover,revision={'fedcba9876543210' * 2}fedcba98,device=cpu",
    }
    assert data["dataset"]["repo"] == "modality-conflict/color-conflict"
    assert data["dataset"]["revision"] == "0123456789abcdef0123456789abcdef01234567"
    assert data["task"] == {"name": "modality_conflict_color", "version": 1, "output_type": "generate_until"}
    assert data["lmms_eval"]["reported_version"] == "main@1a2b3c4d"
    assert data["lmms_eval"]["version"]  # the installed package
    assert data["estimator"] == "full_vocab"
    assert data["created"] == CREATED
    run = data["run"]
    assert run["results_file"].endswith("_results.json") and run["samples_file"].endswith(".jsonl")
    assert run["report_file"].endswith("_modality_conflict.json")
    assert all(len(run[f"{kind}_sha256"]) == 64 for kind in ("results", "samples", "report"))
    for key in (
        "balance_point",
        "balance_point_ci_low",
        "balance_point_ci_high",
        "tfr",
        "tfr_ci_low",
        "mean_hv",
    ):
        assert isinstance(data["metrics"][key], float)


def test_cli_submit_and_verify(
    synthetic_results: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s.json"
    assert main(["submit", str(synthetic_results), "--out", str(out), "--model-revision", "abc123"]) == 0
    assert "balance point" in capsys.readouterr().out
    assert _load(out)["model"]["revision"] == "abc123"
    assert main(["verify", str(out)]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("verified: org/vision-lover on modality_conflict_color")
    assert "dataset check skipped" in printed


def test_submit_refuses_a_sample_log_from_another_run(synthetic_results: Path, tmp_path: Path) -> None:
    (run,) = read_task_results([synthetic_results])
    other = write_lmms_eval_run(tmp_path, model_id="org/other", balance_point=0.6, n_groups=12, seed=9)
    (other_run,) = read_task_results([other])
    mixed = dataclasses.replace(run, samples=other_run.samples)
    with pytest.raises(ValueError, match="does not reproduce the task's report"):
        sub.build_submission(mixed)


# --- tampering -------------------------------------------------------------------------------------------


def test_tampered_metric_is_rejected_and_named(submission_file: Path, tmp_path: Path) -> None:
    data = _load(submission_file)
    data["metrics"]["balance_point"] += 1e-6
    data["metrics"]["tfr"] = 0.99
    message = _rejected(_write(data, tmp_path / "t.json"))
    assert "metric 'balance_point': reported" in message
    assert "metric 'tfr': reported 0.99, recomputed" in message


def test_tampered_nested_metric_is_rejected(submission_file: Path, tmp_path: Path) -> None:
    data = _load(submission_file)
    data["metrics"]["tfr_by_tier_cell"]["0"]["0"] = 0.5
    assert "metric 'tfr_by_tier_cell.0.0'" in _rejected(_write(data, tmp_path / "t.json"))


def test_missing_or_extra_metric_is_rejected(submission_file: Path, tmp_path: Path) -> None:
    data = _load(submission_file)
    del data["metrics"]["mean_hv"]
    data["metrics"]["accuracy"] = 1.0
    message = _rejected(_write(data, tmp_path / "t.json"))
    assert "metric 'mean_hv' is missing" in message
    assert "metric 'accuracy' is reported but the recomputation has no such metric" in message


def test_tampered_records_change_the_recomputed_metrics(submission_file: Path, tmp_path: Path) -> None:
    data = _load(submission_file)
    flipped = 0
    for record in data["records"]:
        if record["condition"] == "conflict" and record["answer"] == record["vision_answer"] and flipped < 40:
            # A consistent edit (the response too): only the recomputation can tell.
            record["answer"], record["raw_response"] = record["text_answer"], record["text_answer"].title()
            flipped += 1
    message = _rejected(_write(data, tmp_path / "t.json"))
    assert "metric 'tfr'" in message and "metric 'balance_point'" in message


def test_an_answer_that_is_not_its_response_is_rejected_and_named(
    submission_file: Path, tmp_path: Path
) -> None:
    data = _load(submission_file)
    position, record = next(
        (i, r)
        for i, r in enumerate(data["records"])
        if r["condition"] == "conflict" and r["answer"] != "other"
    )
    record["answer"] = next(c for c in ("red", "blue") if c != record["answer"])
    message = _rejected(_write(data, tmp_path / "t.json"))
    assert (
        f"records[{position}] ({record['row_id']}): answer is {record['answer']!r} but raw_response"
        in message
    )
    assert "metric '" not in message  # caught before the recomputation


def test_answer_scores_must_agree_with_the_entropy(submission_file: Path, tmp_path: Path) -> None:
    data = _load(submission_file)
    record = next(r for r in data["records"] if r["condition"] == "vision_only")
    record["answer_scores"] = [-0.01] * 6  # probabilities summing to 5.9
    assert "sum to 5.94" in _rejected(_write(data, tmp_path / "t.json"))
    data = _load(submission_file)
    record = next(r for r in data["records"] if r["condition"] == "text_only")
    record["answer_scores"] = [-1.8] * 6  # 99% of the mass spread over six answers: their share is 1.8 nats
    record["entropy"] = 0.01
    assert "smaller than the candidates' own share" in _rejected(_write(data, tmp_path / "t.json"))


def test_duplicate_rows_and_foreign_estimators_are_rejected(submission_file: Path, tmp_path: Path) -> None:
    data = _load(submission_file)
    data["records"].append(dict(data["records"][0]))
    assert "repeats records[0]" in _rejected(_write(data, tmp_path / "dup.json"))
    data = _load(submission_file)
    data["estimator"] = "sampled"
    assert "the records use ['full_vocab']" in _rejected(_write(data, tmp_path / "est.json"))
    data = _load(submission_file)
    data["analysis"]["seed"] = 1
    assert "seed=1" in _rejected(_write(data, tmp_path / "seed.json"))


def test_dataset_revision_can_be_required(submission_file: Path) -> None:
    assert "dataset.revision" in _rejected(submission_file, dataset_revision="main")
    sub.verify_file(submission_file, dataset_revision="0123456789abcdef0123456789abcdef01234567")


def test_cli_verify_rejects_with_exit_status_2(
    submission_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _load(submission_file)
    data["metrics"]["mean_ht"] = 0.0
    path = _write(data, tmp_path / "t.json")
    assert main(["verify", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: submission rejected:")
    assert "metric 'mean_ht': reported 0.0" in err


# --- consistency of each record and the run it came from ----------------------------------------------


def _records(mode: str, responses: list[object] | None = None) -> list[dict[str, Any]]:
    from fixtures_results import synthetic_docs

    from modality_conflict.mc_tasks.records import make_record

    docs = synthetic_docs(2, with_controls=False)
    if mode == "loglik":
        return [
            make_record(doc, [f"({-0.5 * (i + 1):.2f}, False)" for i in range(6)], mode=mode) for doc in docs
        ]
    return [make_record(doc, ["Red", "red.", "Blue"], mode=mode) for doc in docs]


def test_loglikelihood_records_must_agree_with_their_scores() -> None:
    records = _records("loglik")
    assert all(sub.record_inconsistency(r) is None for r in records)
    record = dict(records[0])
    assert record["answer"] == "red"  # the best of -0.5, -1.0, ...
    assert "best-scoring candidate in answer_scores is 'red'" in sub.record_inconsistency(
        {**record, "answer": "blue"}
    )
    assert "answer-set entropy of answer_scores" in sub.record_inconsistency({**record, "entropy": 0.1})
    flipped = {**record, "answer_scores": list(reversed(record["answer_scores"]))}
    assert "best-scoring candidate" in sub.record_inconsistency(flipped)


def test_sampled_records_are_checked_where_they_can_be() -> None:
    records = _records("sampled")
    assert all(sub.record_inconsistency(r) is None for r in records)
    record = dict(records[0])
    assert "exceeds" in sub.record_inconsistency({**record, "entropy": 3.0})
    assert "must be null" in sub.record_inconsistency({**record, "answer_scores": [-1.0] * 6})
    agreed = {**record, "entropy": 0.0, "answer": "blue", "raw_response": "Red"}
    assert "every sample agreed (entropy 0) and the first reads 'red'" in sub.record_inconsistency(agreed)


def test_verify_run_recomputes_from_the_files_it_names(
    synthetic_results: Path, submission_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    verification = sub.verify_file(submission_file, run=synthetic_results)
    assert any(note.startswith("run check passed") for note in verification.notes)
    assert main(["verify", str(submission_file), "--run", str(synthetic_results)]) == 0
    assert "run check passed" in capsys.readouterr().out
    # The same names with other bytes: the hashes differ.
    copy_dir = tmp_path / "copy"
    shutil.copytree(synthetic_results, copy_dir)
    log = next(copy_dir.rglob("*_samples_*.jsonl"))
    log.write_text(log.read_text().replace('"Red."', '"Red!"', 1))
    assert "run.samples_sha256" in _rejected(submission_file, run=copy_dir)
    assert "no file" in _rejected(submission_file, run=tmp_path / "empty")
    # A consistent, recomputed forgery passes every check on the file alone, but not against its run.
    data = _load(submission_file)
    record = next(
        r for r in data["records"] if r["condition"] == "conflict" and r["answer"] == r["vision_answer"]
    )
    record["answer"], record["raw_response"] = record["text_answer"], record["text_answer"]
    data["metrics"] = sub.json_normal(summarize_records(data["records"]))
    forged = _write(data, tmp_path / "forged.json")
    sub.verify_file(forged)
    assert (
        f"records ({record['row_id']}): ['answer', 'raw_response'] differ from the sample log"
        in _rejected(forged, run=synthetic_results)
    )


def test_submit_data_checks_the_folder_against_its_manifest(
    dataset_run: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    data_dir, results = dataset_run
    copy_dir = tmp_path / "copy"
    shutil.copytree(data_dir, copy_dir)
    shard = next((copy_dir / "data").glob("*.parquet"))
    shard.write_bytes(shard.read_bytes()[:-1] + b"\0")  # same size, other bytes
    out = tmp_path / "s.json"
    assert main(["submit", str(results), "--out", str(out), "--data", str(copy_dir)]) == 2
    err = capsys.readouterr().err
    assert "does not match its manifest" in err and "unmodified folder" in err
    assert not out.exists()
    assert main(["submit", str(results), "--out", str(out), "--data", str(data_dir)]) == 0


def test_eval_data_checks_the_folder_before_running(
    dataset_run: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    data_dir, _ = dataset_run
    copy_dir = tmp_path / "copy"
    shutil.copytree(data_dir, copy_dir)
    shard = next((copy_dir / "data").glob("*.parquet"))
    shard.write_bytes(shard.read_bytes() + b"\0")
    code = main(
        [
            "eval",
            "--model-args",
            "pretrained=never/run",
            "--data",
            str(copy_dir),
            "--output",
            str(tmp_path / "o"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "does not match its manifest" in err and "running:" not in err


# --- untrusted input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x80\x04\x95pickle", "not UTF-8"),
        (b"cos\nsystem\n(S'echo'\ntR.", "not valid JSON"),
        (b'{"a": NaN}', "NaN and Infinity are not allowed"),
        (b'{"a": 1e400}', "overflows a double"),
        (b'{"a": 1, "a": 2}', "duplicate key 'a'"),
        (b"[" * 5000 + b"]" * 5000, "deeper than"),
        (b"format: yaml", "not valid JSON"),
    ],
)
def test_unreadable_files_are_clear_errors(content: bytes, message: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(sub.SubmissionError, match=message):
        sub.load_submission(path)


@pytest.mark.parametrize(
    "content",
    [
        b'"' + b'\\"' * 500_000,  # one unterminated string of escaped quotes: quadratic for a regex
        b'["' + b'\\\\\\"' * 300_000 + b'"]',  # runs of backslashes before quotes
        b"[" * 1_000_000,  # deep nesting
        b'{"a":' * 200_000 + b"1" + b"}" * 200_000,
        b'"\\u' * 340_000,
    ],
    ids=["escaped-quotes", "backslash-runs", "brackets", "objects", "unicode-escapes"],
)
def test_one_megabyte_adversarial_file_is_rejected_fast(content: bytes, tmp_path: Path) -> None:
    import time

    path = tmp_path / "bad.json"
    path.write_bytes(content)
    assert len(content) >= 1_000_000
    started = time.perf_counter()
    with pytest.raises(sub.SubmissionError) as caught:
        sub.load_submission(path)
    elapsed = time.perf_counter() - started
    assert elapsed < 2.0, f"{elapsed:.2f} s"  # generous: benchmarks/bench_submission.py has the timings
    assert str(path) in str(caught.value)


def test_size_and_record_limits(submission_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(submission_schema, "MAX_SUBMISSION_BYTES", 1000)
    with pytest.raises(sub.SubmissionError, match="limited to 1000 bytes"):
        sub.load_submission(submission_file)
    monkeypatch.undo()
    monkeypatch.setattr(submission_schema, "MAX_RECORDS", 10)
    with pytest.raises(sub.SubmissionError, match="more than the 10 allowed"):
        sub.load_submission(submission_file)


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d["records"][3].update(entropy=-1.0), "records[3].entropy"),
        (lambda d: d["records"][5].update(lens={"layers": [1]}), "records[5]"),
        (lambda d: d["records"][7].update(answer="magenta"), "records[7].answer"),
        (lambda d: d["records"][2].pop("row_id"), "records[2]"),
        (lambda d: d["model"].update(id=""), "model.id"),
        (lambda d: d.update(format="something-else"), "format"),
        (lambda d: d["metrics"].update(tfr="1" * 5000), "metrics.tfr"),
        (lambda d: d["metrics"].update(tfr=1e300), "metrics.tfr"),
        (lambda d: d.update(extra=True), "(top level)"),
    ],
)
def test_schema_violations_name_the_field(
    edit: Any, field: str, submission_file: Path, tmp_path: Path
) -> None:
    data = _load(submission_file)
    edit(data)
    with pytest.raises(sub.SubmissionError) as caught:
        sub.load_submission(_write(data, tmp_path / "bad.json"))
    assert f"  - {field}" in str(caught.value)
    assert not isinstance(caught.value, sub.RejectedSubmissionError)


def test_schema_file_is_valid_and_shipped() -> None:
    from jsonschema import Draft202012Validator

    schema = sub.load_schema()
    Draft202012Validator.check_schema(schema)
    assert sub.SCHEMA_PATH.parent.name == "submission" and sub.SCHEMA_PATH.is_file()
    assert set(schema["required"]) >= {
        "model",
        "dataset",
        "task",
        "lmms_eval",
        "estimator",
        "metrics",
        "records",
    }


# --- dataset check ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A built dataset folder, and a simulated run on its rows (dataset_path = the folder, as with --data)."""
    data_dir = tmp_path_factory.mktemp("data") / "color-conflict"
    build_dataset(data_dir, groups=6, seed=0, workers=1)
    columns = [c for c in pq.read_schema(next((data_dir / "data").glob("*.parquet"))).names if c != "image"]
    docs = []
    for shard in sorted((data_dir / "data").glob("*.parquet")):
        docs.extend(pq.read_table(shard, columns=columns).to_pylist())
    results = tmp_path_factory.mktemp("results")
    write_lmms_eval_run(
        results, docs=docs, dataset_path=str(data_dir), dataset_revision=None, balance_point=0.2
    )
    return data_dir, results


def test_dataset_check_passes_on_the_dataset_the_run_used(
    dataset_run: tuple[Path, Path], tmp_path: Path
) -> None:
    data_dir, results = dataset_run
    (run,) = read_task_results([results])
    data = sub.build_submission(run)
    assert data["dataset"]["repo"] == "local" and data["dataset"]["revision"] is None
    assert data["dataset"]["fingerprint"] == sub.dataset_fingerprint(
        json.loads((data_dir / "manifest.json").read_text())
    )
    assert data["dataset"]["builder_version"]
    path = sub.write_submission(data, tmp_path / "s.json")
    verification = sub.verify_file(path, data=data_dir)
    assert verification.ranked and verification.coverage.covered == verification.coverage.expected == len(
        run.records
    )
    assert any(
        note.startswith("dataset check passed")
        and f"covers {len(run.records)} of {len(run.records)} rows" in note
        for note in verification.notes
    )


def test_dataset_check_catches_recomputed_forgeries(dataset_run: tuple[Path, Path], tmp_path: Path) -> None:
    data_dir, results = dataset_run
    (run,) = read_task_results([results])
    data = sub.build_submission(run)
    # A forger who edits the truth and then recomputes the metrics passes the recomputation ...
    record = next(r for r in data["records"] if r["condition"] == "conflict")
    record["text_answer"] = next(c for c in ("red", "blue") if c != record["text_answer"])
    data["metrics"] = sub.json_normal(summarize_records(data["records"]))
    path = _write(data, tmp_path / "forged.json")
    sub.verify_file(path)
    # ... but not the dataset check.
    message = _rejected(path, data=data_dir)
    assert f"({record['row_id']}): text_answer is" in message


def test_dataset_check_catches_unknown_rows_and_other_datasets(
    dataset_run: tuple[Path, Path], tmp_path: Path
) -> None:
    data_dir, results = dataset_run
    (run,) = read_task_results([results])
    data = sub.build_submission(run)
    data["records"][0]["row_id"] = "g9999-v00-none"
    data["metrics"] = sub.json_normal(summarize_records(data["records"]))
    assert "row_id 'g9999-v00-none' is not in the dataset" in _rejected(
        _write(data, tmp_path / "x.json"), data=data_dir
    )
    other = tmp_path / "other"
    build_dataset(other, groups=6, seed=1, workers=1)
    data = sub.build_submission(run)
    assert "differs from the dataset in" in _rejected(_write(data, tmp_path / "y.json"), data=other)
    data["dataset"]["fingerprint"] = None
    assert "dataset.fingerprint is null" in _rejected(_write(data, tmp_path / "z.json"), data=data_dir)


def test_dataset_folder_that_does_not_match_its_manifest_is_refused(
    dataset_run: tuple[Path, Path], tmp_path: Path
) -> None:
    import shutil

    data_dir, _ = dataset_run
    copy_dir = tmp_path / "copy"
    shutil.copytree(data_dir, copy_dir)
    shard = next((copy_dir / "data").glob("*.parquet"))
    shard.write_bytes(shard.read_bytes() + b"\0")
    with pytest.raises(sub.SubmissionError, match="does not match its manifest"):
        sub.load_dataset_index(copy_dir)
    with pytest.raises(sub.SubmissionError, match="no readable manifest.json"):
        sub.load_dataset_index(tmp_path)


# --- leaderboard and Hub files ---------------------------------------------------------------------------


def _dataset_docs(data_dir: Path) -> list[dict[str, Any]]:
    columns = [c for c in pq.read_schema(next((data_dir / "data").glob("*.parquet"))).names if c != "image"]
    docs = []
    for shard in sorted((data_dir / "data").glob("*.parquet")):
        docs.extend(pq.read_table(shard, columns=columns).to_pylist())
    return docs


def _run_on(data_dir: Path, root: Path, *, model_id: str, balance_point: float, seed: int) -> Path:
    """A simulated run on every row of a built dataset (dataset_path = the folder, as with --data)."""
    write_lmms_eval_run(
        root,
        model_id=model_id,
        docs=_dataset_docs(data_dir),
        dataset_path=str(data_dir),
        dataset_revision=None,
        balance_point=balance_point,
        seed=seed,
    )
    return root


@pytest.fixture(scope="module")
def board_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small preset (12 groups, 972 rows): the dataset the leaderboard checks against."""
    data_dir = tmp_path_factory.mktemp("board-data") / "color-conflict"
    build_dataset(data_dir, groups=12, seed=0, workers=1)
    return data_dir


@pytest.fixture(scope="module")
def submissions_dir(board_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two verified submissions, a tampered one, a cherry-picked one (2 of 12 groups, recomputed) and one
    whose truth fields were swapped (recomputed)."""
    folder = tmp_path_factory.mktemp("board")
    made = {}
    for name, model_id, balance, seed in (
        ("vision", "org/vision-lover", -0.4, 5),
        ("text", "org/text|lover", 0.5, 6),
        ("picky", "org/cherry-picker", -0.4, 7),
    ):
        results = _run_on(
            board_data,
            tmp_path_factory.mktemp(f"{name}-results"),
            model_id=model_id,
            balance_point=balance,
            seed=seed,
        )
        (run,) = read_task_results([results])
        made[name] = sub.build_submission(run, created=CREATED)
    sub.write_submission(made["vision"], folder / "vision.json")
    sub.write_submission(made["text"], folder / "text.json")
    tampered = copy.deepcopy(made["vision"])
    tampered["model"]["id"] = "org/cheater"
    tampered["metrics"]["balance_point"] = -1.5
    _write(tampered, folder / "cheater.json")
    # Keep the two groups whose conflicts follow the image most: a lower balance point, recomputed.
    picky = copy.deepcopy(made["picky"])
    kept = _most_vision_following_groups(picky["records"], 2)
    picky["records"] = [r for r in picky["records"] if r["group_id"] in kept]
    picky["metrics"] = sub.json_normal(summarize_records(picky["records"]))
    _write(picky, folder / "picky.json")
    swapped = copy.deepcopy(made["text"])
    swapped["model"]["id"] = "org/swapper"
    for record in swapped["records"]:
        if record["condition"] == "conflict" and record["answer"] == record["text_answer"]:
            record["text_answer"], record["vision_answer"] = record["vision_answer"], record["text_answer"]
    swapped["metrics"] = sub.json_normal(summarize_records(swapped["records"]))
    _write(swapped, folder / "swapper.json")
    return folder


def _most_vision_following_groups(records: list[dict[str, Any]], n: int) -> set[int]:
    share: dict[int, list[int]] = {}
    for record in records:
        if record["condition"] == "conflict" and record["control"] == "none":
            share.setdefault(record["group_id"], []).append(record["answer"] == record["vision_answer"])
    ranked = sorted(share, key=lambda g: -sum(share[g]) / len(share[g]))
    return set(ranked[:n])


def _ranked_rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("| ") and line[2].isdigit()]


def test_leaderboard_ranks_verified_submissions_only(
    submissions_dir: Path, board_data: Path, tmp_path: Path
) -> None:
    md_path, html_path, markdown = build_leaderboard(submissions_dir, tmp_path, data=board_data)
    assert md_path.read_text() == markdown
    rows = _ranked_rows(markdown)
    assert len(rows) == 2
    assert "org/vision-lover" in rows[0] and "org/text&#124;lover" in rows[1]  # negative balance point first
    not_listed = markdown.split("## Not listed")[1]
    assert "cheater.json" in not_listed and "metric 'balance_point'" in not_listed
    html = html_path.read_text()
    assert "org/text|lover" in html and "<table>" in html and "cheater.json" in html
    _, _, descending = build_leaderboard(
        submissions_dir, tmp_path, data=board_data, sort="balance_point", descending=True
    )
    assert "org/text&#124;lover" in _ranked_rows(descending)[0]


def test_partial_coverage_is_listed_apart_and_never_ranked(
    submissions_dir: Path, board_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    picky = _load(submissions_dir / "picky.json")
    vision = _load(submissions_dir / "vision.json")
    # The cherry-picked subset recomputes (it would rank first) ...
    assert (
        len(picky["records"]) == 162
        and picky["metrics"]["balance_point"] < vision["metrics"]["balance_point"]
    )
    sub.verify_file(submissions_dir / "picky.json")
    # ... but it covers 162 of the 972 rows, so it is rejected, or verified as unranked when asked.
    message = _rejected(submissions_dir / "picky.json", data=board_data)
    assert "covers 162 of 972 rows of the split of modality_conflict_color" in message
    partial = sub.verify_file(submissions_dir / "picky.json", data=board_data, allow_partial=True)
    assert not partial.ranked and partial.coverage == sub.Coverage(
        "modality_conflict_color", 972, 162, partial.coverage.missing
    )
    _, html_path, markdown = build_leaderboard(submissions_dir, tmp_path, data=board_data)
    assert all("cherry-picker" not in row for row in _ranked_rows(markdown))
    unranked = markdown.split("## Unranked")[1].split("## Not listed")[0]
    assert "UNRANKED picky.json: org/cherry-picker" in unranked and "covers 162 of 972 rows" in unranked
    assert "<b>UNRANKED</b> <code>picky.json</code>" in html_path.read_text()
    assert main(["verify", str(submissions_dir / "picky.json"), "--data", str(board_data)]) == 2
    assert "covers 162 of 972 rows" in capsys.readouterr().err
    args = ["verify", str(submissions_dir / "picky.json"), "--data", str(board_data), "--allow-partial"]
    assert main(args) == 0
    assert "ranked: NO (partial: covers 162 of 972 rows" in capsys.readouterr().out
    assert main(["verify", str(submissions_dir / "vision.json"), "--data", str(board_data)]) == 0
    assert "ranked: yes" in capsys.readouterr().out


def test_rows_outside_the_tasks_split_are_rejected(
    submissions_dir: Path, board_data: Path, tmp_path: Path
) -> None:
    data = _load(submissions_dir / "vision.json")
    data["task"]["name"] = "modality_conflict_color_quick"  # four groups: rows of groups 4-11 are foreign
    message = _rejected(_write(data, tmp_path / "quick.json"), data=board_data)
    assert "is in the dataset but not in the split of task 'modality_conflict_color_quick'" in message
    data["task"]["name"] = "somebody_elses_task"
    assert "not a modality_conflict task of this package" in _rejected(
        _write(data, tmp_path / "other.json"), data=board_data
    )


def test_leaderboard_checks_every_submission_against_the_dataset(
    submissions_dir: Path, board_data: Path, tmp_path: Path
) -> None:
    _, _, markdown = build_leaderboard(submissions_dir, tmp_path, data=board_data)
    not_listed = markdown.split("## Not listed")[1]
    assert "swapper.json" in not_listed and "but the dataset has" in not_listed
    assert all("swapper" not in row for row in _ranked_rows(markdown))


def test_leaderboard_without_a_dataset_refuses_to_rank(
    submissions_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The pinned dataset can be neither found nor built here: its cache folder cannot be made.
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv(CACHE_ENV, str(blocker / "cache"))
    out = tmp_path / "board"
    with pytest.raises(NoReferenceDatasetError, match="nothing can be ranked: .*pass --data DIR"):
        build_leaderboard(submissions_dir, out)
    assert not out.exists()
    assert main(["leaderboard", str(submissions_dir), "--out", str(out)]) == 2
    assert "error: no dataset to check the submissions against" in capsys.readouterr().err
    assert not out.exists()


def test_markdown_escapes_model_ids_as_the_html_does(board_data: Path, tmp_path: Path) -> None:
    folder = tmp_path / "subs"
    folder.mkdir()
    results = _run_on(board_data, tmp_path / "r", model_id="org/plain", balance_point=0.1, seed=3)
    (run,) = read_task_results([results])
    evil = '<img src=x onerror="alert(1)">|`code`&amp;[link](javascript:x)'
    sub.write_submission(sub.build_submission(run, model_id=evil, created=CREATED), folder / "evil.json")
    _, html_path, markdown = build_leaderboard(folder, tmp_path / "out", data=board_data)
    (row,) = _ranked_rows(markdown)
    assert "<" not in row and ">" not in row and "`" not in row and "](" not in row
    assert '&lt;img src=x onerror="alert(1)"&gt;&#124;&#96;code&#96;&amp;amp;' in row
    assert row.count(" | ") == len(COLUMNS) - 1  # the id opened no cell of its own
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html_path.read_text()


def test_leaderboard_shows_balance_point_interval_tfr_and_entropies(
    submissions_dir: Path, board_data: Path, tmp_path: Path
) -> None:
    metrics = _load(submissions_dir / "vision.json")["metrics"]
    _, _, markdown = build_leaderboard(submissions_dir, tmp_path, data=board_data)
    row = next(line for line in markdown.splitlines() if "org/vision-lover" in line)
    for value in (
        f"{metrics['balance_point']:+.3f}",
        f"[{metrics['balance_point_ci_low']:+.3f}, {metrics['balance_point_ci_high']:+.3f}]",
        f"{metrics['tfr']:.3f}",
        f"{metrics['mean_hv']:.3f}",
        f"{metrics['mean_ht']:.3f}",
    ):
        assert value in row


def test_cli_leaderboard(
    submissions_dir: Path, board_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["leaderboard", str(submissions_dir), "--out", str(tmp_path), "--data", str(board_data)]) == 0
    assert "# modality-conflict leaderboard" in capsys.readouterr().out
    assert (tmp_path / "leaderboard.html").is_file()


def test_eval_results_files(submission_file: Path, tmp_path: Path) -> None:
    # The simulated run's rows are not the pinned dataset's: written only as plainly unverified.
    eval_path, result_path, skipped = write_eval_results(
        submission_file, tmp_path, source_url="https://example.org/x", unverified=True
    )
    assert "UNVERIFIED" in result_path.read_text().splitlines()[0]
    assert skipped == []
    assert result_path == tmp_path / ".eval_results" / "color-conflict.yaml"
    benchmark = yaml.safe_load(eval_path.read_text())
    task_ids = {task["id"] for task in benchmark["tasks"]}
    entries = parse_eval_result_entries(yaml.safe_load(result_path.read_text()))
    metrics = _load(submission_file)["metrics"]
    assert {e.task_id for e in entries} <= task_ids
    by_task = {e.task_id: e for e in entries}
    balance = by_task["modality_conflict_color-balance_point"]
    assert balance.dataset_id == "modality-conflict/color-conflict"
    assert balance.dataset_revision == "0123456789abcdef0123456789abcdef01234567"
    assert balance.value == pytest.approx(metrics["balance_point"], abs=1e-6)
    assert f"95% CI [{metrics['balance_point_ci_low']:.4f}" in balance.notes
    assert by_task["modality_conflict_color-tfr"].value == pytest.approx(metrics["tfr"], abs=1e-6)
    assert balance.source_url == "https://example.org/x"
    assert "UNVERIFIED: not checked against the dataset" in balance.notes
    assert "verified with" not in balance.notes


def test_eval_results_need_a_verified_submission_and_a_hub_dataset(
    submission_file: Path, dataset_run: tuple[Path, Path], tmp_path: Path
) -> None:
    data = _load(submission_file)
    data["metrics"]["tfr"] = 0.1
    with pytest.raises(sub.RejectedSubmissionError):
        write_eval_results(_write(data, tmp_path / "t.json"), tmp_path / "out", unverified=True)
    assert not (tmp_path / "out").exists()
    data_dir, results = dataset_run
    (run,) = read_task_results([results])
    local = sub.write_submission(sub.build_submission(run), tmp_path / "local.json")
    with pytest.raises(ValueError, match="pass --dataset-id"):
        write_eval_results(local, tmp_path / "out", data=data_dir)
    _, result_path, _ = write_eval_results(
        local, tmp_path / "out", data=data_dir, dataset_id="me/color-conflict"
    )
    text = result_path.read_text()
    assert "me/color-conflict" in text and "verified against the dataset" in text and "UNVERIFIED" not in text
