"""``modality_conflict_openai`` through the real lmms-eval CLI against a misbehaving server of the test's own.

The server (``tests/served_fake.py``, real HTTP on loopback) answers every prompt with a known distribution
after a 500, a 429 and a garbage body; the run must retry past them, spread the load over both servers,
keep the API key out of every file and give every document the exact entropy. A server without logprobs is
refused at start. The same model against a real vLLM server is ``test_served_vllm.py``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from lmms_eval_runs import logged_responses, offline_env, run_lmms_eval
from served_fake import ANSWER, EXACT_ENTROPY, VOCAB, Behaviour, FakeServer

from modality_conflict.mc_tasks.names import RECORD_KEY
from modality_conflict.models.envelope import decode_envelope

pytestmark = pytest.mark.slow

TASK = "modality_conflict_color"
SECRET = "sk-served-test-0123456789"


def _n_rows(data_dir: Path) -> int:
    import datasets

    return datasets.load_dataset(str(data_dir), split="test").remove_columns("image").num_rows


def test_faults_are_retried_and_the_key_is_never_written(
    tmp_path: Path, quick_dataset_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MC_SERVED_TEST_KEY", SECRET)
    cache = tmp_path / "responses.sqlite"
    out = tmp_path / "run"
    out.mkdir()
    faults = Behaviour(errors_500=1, errors_429=1, garbage=1)
    with FakeServer(faults) as first, FakeServer(faults) as second:
        outputs = run_lmms_eval(
            out,
            model="modality_conflict_openai",
            model_args=(
                f"base_url={first.base_url}|{second.base_url},api_key_env=MC_SERVED_TEST_KEY,"
                f"cache={cache},backoff=0.01,concurrency=4"
            ),
            tasks=TASK,
            data_dir=quick_dataset_dir,
        )
    rows = _n_rows(quick_dataset_dir)
    samples = [json.loads(line) for line in outputs.samples[TASK].read_text().splitlines()]
    assert len(samples) == rows
    for sample in samples:
        envelope = decode_envelope(logged_responses(sample)[0])
        assert envelope is not None and envelope["estimator"] == "full_vocab"
        assert envelope["entropy"] == pytest.approx(EXACT_ENTROPY, abs=1e-9)
        record = sample[RECORD_KEY]
        assert record["answer"] == ANSWER and record["entropy_estimator"] == "full_vocab"
    # Every distinct request (each prompt, and the start's probe) met a 500, a 429 and garbage first.
    distinct = faults.distinct_requests
    assert distinct > rows * 0.9
    assert faults.served_faults == {"500": distinct, "429": distinct, "garbage": distinct}
    assert faults.chat_requests == 4 * distinct == first.chat_requests + second.chat_requests
    assert first.chat_requests > distinct and second.chat_requests > distinct  # both took a share
    assert 1 < faults.max_in_flight <= 4  # concurrency=4, over both servers together
    assert set(faults.authorizations) == {f"Bearer {SECRET}"}
    # Prompts asked twice (the same image and question) were answered from the cache, unless in flight.
    cached = re.search(r"(\d+) answers \((\d+) from the cache\)", (out / "lmms_eval.log").read_text())
    assert cached is not None and int(cached[1]) == rows and int(cached[2]) <= rows - distinct + 1
    report = json.loads(outputs.report_json.read_text())["reports"][TASK]
    assert report["entropy_estimator"] == "full_vocab"
    assert report["usage"] == {"prompt_tokens": 11 * rows, "completion_tokens": rows}
    # The key is in no file the run wrote, the response cache included.
    for path in [*out.rglob("*"), cache]:
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_endpoint_without_logprobs_is_refused_at_start(tmp_path: Path, quick_dataset_dir: Path) -> None:
    import subprocess
    import sys

    with FakeServer(Behaviour(logprobs=False)) as server:
        completed = subprocess.run(
            [
                sys.executable, "-m", "lmms_eval", "--model", "modality_conflict_openai",
                "--model_args", f"base_url={server.base_url},cache=off", "--tasks", TASK,
                "--output_path", str(tmp_path / "run"),
            ],
            cwd=tmp_path, env=offline_env(quick_dataset_dir), capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    output = completed.stdout + completed.stderr
    assert "returned no logprobs" in output and "modality_conflict_sampled" in output, output[-3000:]
    assert server.behaviour.chat_requests == 1
    assert not list((tmp_path / "run").rglob("*_results.json"))


def test_capped_endpoint_gives_bounded_entropies_and_says_so(tmp_path: Path, quick_dataset_dir: Path) -> None:
    """An API that caps top_logprobs at 20: top_k estimates whose bounds hold the exact entropy, and the
    printed summary says how much mass was uncovered and where the balance point goes at both bounds."""
    from modality_conflict.analysis import submission as sub
    from modality_conflict.analysis.evaluate import format_summary
    from modality_conflict.analysis.results import read_task_results

    out = tmp_path / "run"
    out.mkdir()
    with FakeServer(Behaviour(max_top_logprobs=20)) as server:
        outputs = run_lmms_eval(
            out,
            model="modality_conflict_openai",
            model_args=f"base_url={server.base_url},cache=off,vocab_size={VOCAB}",
            tasks=TASK,
            data_dir=quick_dataset_dir,
        )
    uncovered = 19 * 0.5 / 29 + 0.5  # the answer and 19 of the other 29 tokens are returned
    for line in outputs.samples[TASK].read_text().splitlines():
        record = json.loads(line)[RECORD_KEY]
        low, high = record["entropy_bounds"]
        # The fake's tail is as likely as its least likely returned token: both bounds are attained.
        assert record["entropy_estimator"] == "top_k" and low - 1e-9 <= EXACT_ENTROPY <= high + 1e-9
        assert record["uncovered_mass"] == pytest.approx(1 - uncovered)
    report = json.loads(outputs.report_json.read_text())["reports"][TASK]
    assert report["uncovered_mass_max"] == pytest.approx(1 - uncovered)
    assert "balance_point_status_at_entropy_lower" in report and "balance_point_at_entropy_upper" in report
    assert f"top-k logprobs: uncovered mass mean {1 - uncovered:.3f}" in format_summary(outputs)
    # A submission of the run keeps the bounds and passes the schema and the recomputation.
    (run,) = read_task_results([out], require_samples=True)
    path = sub.write_submission(sub.build_submission(run), tmp_path / "submission.json")
    submission = json.loads(path.read_text())
    assert sub.schema_problems(submission) == []
    assert all(len(record["entropy_bounds"]) == 2 for record in submission["records"])
    verification = sub.verify_file(path)  # raises on any record or metric that does not recompute
    assert verification.recomputed["n_records"] == len(submission["records"])
    assert verification.recomputed["uncovered_mass_max"] == pytest.approx(1 - uncovered)
