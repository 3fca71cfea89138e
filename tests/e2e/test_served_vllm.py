"""``modality_conflict_openai`` against a real vLLM server, through the real lmms-eval CLI.

The server is vLLM's CPU build from its own environment (``make vllm-env``; ``MC_VLLM_PYTHON`` names another
interpreter), started on a loopback port for this module, waited for and stopped. On the same servable tiny
LLaVA (saved under the Hub's weight names) and the same documents: the served answers equal the in-process
ones, entropies agree within 1e-3 and so does the balance point; a ``top_logprobs=20`` run's bounds hold the
exact entropy of every document; a run whose server is killed part-way resumes from its response cache.
``demo --engine vllm`` on the packaged demo checkpoint (whose template writes no BOS, so the served prompts
need the tokenizer's, as in-process) prints the in-process headline, every entropy within 1e-3.

Without the vLLM environment the module is skipped, unless ``MC_REQUIRE_VLLM=1`` (CI) makes that a failure.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from lmms_eval_runs import logged_responses, offline_env, run_lmms_eval

from modality_conflict.analysis.results import read_task_results
from modality_conflict.mc_tasks.names import RECORD_KEY
from modality_conflict.models.envelope import decode_envelope
from modality_conflict.models.vllm_server import VLLMServer, VLLMServerError, vllm_python

pytestmark = pytest.mark.slow

TASK = "modality_conflict_color"


def _vllm_python() -> Path:
    try:
        return vllm_python()
    except VLLMServerError as error:
        if os.environ.get("MC_REQUIRE_VLLM") == "1":
            pytest.fail(str(error))
        pytest.skip(str(error))


def _started(model_dir: Path, log: Path) -> VLLMServer:
    return VLLMServer(_vllm_python(), model_dir, log, env=offline_env(None)).start()


@pytest.fixture(scope="module")
def served_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tiny_zoo.llava import build_llava_served

    return build_llava_served(tmp_path_factory.mktemp("served") / "llava")


@pytest.fixture(scope="module")
def vllm(tmp_path_factory: pytest.TempPathFactory, served_dir: Path) -> Iterator[VLLMServer]:
    server = _started(served_dir, tmp_path_factory.mktemp("vllm") / "server.log")
    yield server
    server.stop()


def _records(outputs: Any) -> dict[str, dict[str, Any]]:
    rows = [json.loads(line) for line in outputs.samples[TASK].read_text().splitlines()]
    return {
        row[RECORD_KEY]["row_id"]: {**row[RECORD_KEY], "_response": logged_responses(row)[0]} for row in rows
    }


def _report(outputs: Any) -> dict[str, Any]:
    return json.loads(outputs.report_json.read_text())["reports"][TASK]


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory, vllm: VLLMServer, served_dir: Path, quick_dataset_dir: Path
) -> dict[str, Any]:
    """The in-process run, the served run over the whole vocabulary and the served top-20 run."""
    root = tmp_path_factory.mktemp("served_runs")
    args = {
        "in_process": (
            "modality_conflict_hf",
            f"pretrained={served_dir},device=cpu,device_map=cpu,lens=False",
        ),
        "served": ("modality_conflict_openai", f"base_url={vllm.base_url},cache={root / 'full.sqlite'}"),
        "top20": (
            "modality_conflict_openai",
            f"base_url={vllm.base_url},cache={root / 'top20.sqlite'},top_logprobs=20",
        ),
    }
    out = {}
    for name, (model, model_args) in args.items():
        (root / name).mkdir()
        started = time.monotonic()
        outputs = run_lmms_eval(
            root / name, model=model, model_args=model_args, tasks=TASK, data_dir=quick_dataset_dir
        )
        out[name] = {
            "records": _records(outputs),
            "report": _report(outputs),
            "seconds": time.monotonic() - started,
        }
    return out


def test_served_answers_equal_the_in_process_ones(runs: dict[str, Any]) -> None:
    local, served = runs["in_process"]["records"], runs["served"]["records"]
    assert set(local) == set(served) and len(served) > 300
    for row_id, record in served.items():
        assert record["answer"] == local[row_id]["answer"], row_id
        assert record["entropy_estimator"] == "full_vocab"
        assert abs(record["entropy"] - local[row_id]["entropy"]) < 1e-3, row_id
        envelope = decode_envelope(record["_response"])
        assert envelope is not None and "lens" not in envelope and envelope["lens_reason"]
        assert envelope["usage"]["prompt_tokens"] > 16  # the 16 image tokens and the question
    mine, theirs = runs["served"]["report"], runs["in_process"]["report"]
    assert mine["balance_point_status"] == theirs["balance_point_status"]
    if theirs["balance_point"] is None:
        assert mine["balance_point"] is None
    else:
        assert abs(mine["balance_point"] - theirs["balance_point"]) < 1e-3
    assert mine["usage"]["completion_tokens"] >= len(served)


def test_top_20_bounds_hold_the_exact_entropy(runs: dict[str, Any]) -> None:
    exact, bounded = runs["served"]["records"], runs["top20"]["records"]
    assert set(exact) == set(bounded)
    for row_id, record in bounded.items():
        low, high = record["entropy_bounds"]
        assert record["entropy_estimator"] == "top_k" and 0.0 <= record["uncovered_mass"] < 1.0
        assert low - 1e-6 <= exact[row_id]["entropy"] <= high + 1e-6, row_id
        assert record["answer"] == exact[row_id]["answer"]
    report = runs["top20"]["report"]
    assert report["entropy_estimator"] == "top_k" and 0 < report["uncovered_mass_max"] < 1
    for side in ("lower", "upper"):
        assert f"balance_point_at_entropy_{side}" in report
        assert report[f"balance_point_status_at_entropy_{side}"] is not None


def test_checkpoint_loads_in_the_vllm_environments_transformers(served_dir: Path) -> None:
    script = (
        "import sys; from transformers import LlavaForConditionalGeneration as M; "
        "_, info = M.from_pretrained(sys.argv[1], output_loading_info=True); "
        "assert not (info['missing_keys'] or info['unexpected_keys']), info; print('loaded')"
    )
    completed = subprocess.run(
        [str(_vllm_python()), "-c", script, str(served_dir)], capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0 and "loaded" in completed.stdout, completed.stderr[-2000:]


def _cached(path: Path) -> int:
    if not path.is_file():
        return 0
    try:
        with sqlite3.connect(path, timeout=5) as db:
            return int(db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])
    except sqlite3.Error:
        return 0


def test_killed_server_run_resumes_from_the_cache(
    tmp_path: Path, vllm: VLLMServer, served_dir: Path, quick_dataset_dir: Path, runs: dict[str, Any]
) -> None:
    """Runs last: it kills the module's server."""
    cache = tmp_path / "resume.sqlite"
    options = f"cache={cache},concurrency=2,max_retries=1,backoff=0.1"
    first = tmp_path / "first"
    first.mkdir()
    command = [sys.executable, "-m", "lmms_eval", "--model", "modality_conflict_openai", "--tasks", TASK]
    command += ["--output_path", str(first), "--log_samples"]
    with (first / "lmms_eval.log").open("w") as log:
        run = subprocess.Popen(
            [*command, "--model_args", f"base_url={vllm.base_url},{options}"],
            cwd=first, env=offline_env(quick_dataset_dir), stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 600
        while _cached(cache) < 40 and run.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        vllm.stop(signal.SIGKILL)
        run.wait(timeout=600)
    answered = _cached(cache)
    rows = len(runs["served"]["records"])
    assert 40 <= answered < rows, "the server was not killed part-way"
    assert not list(first.rglob("*_results.json"))
    assert "request failed after 2 tries" in (first / "lmms_eval.log").read_text()

    restarted = _started(served_dir, tmp_path / "restarted.log")
    try:
        second = tmp_path / "second"
        second.mkdir()
        outputs = run_lmms_eval(
            second,
            model="modality_conflict_openai",
            model_args=f"base_url={restarted.base_url},{options}",
            tasks=TASK,
            data_dir=quick_dataset_dir,
        )
        sent = restarted.chat_requests()
    finally:
        restarted.stop()
    found = re.search(r"(\d+) answers \((\d+) from the cache\)", (second / "lmms_eval.log").read_text())
    assert found is not None and int(found[1]) == rows and int(found[2]) >= answered
    # Only what was not answered went out again (plus the start's probe).
    assert sent == rows - int(found[2]) + 1
    resumed = _records(outputs)
    for row_id, record in runs["served"]["records"].items():
        assert resumed[row_id]["answer"] == record["answer"]
        assert abs(resumed[row_id]["entropy"] - record["entropy"]) < 1e-6


DEMO_GROUPS = 3
_NUMBER = re.compile(r"[-+]?\d+\.\d+|[-+]?\d+")


def _demo(out: Path, *extra: str) -> list[str]:
    """``modality-conflict demo`` as a user runs it; its headline without the model and wall-time lines."""
    command = [sys.executable, "-m", "modality_conflict.cli.main", "demo", "--out", str(out)]
    command += ["--groups", str(DEMO_GROUPS), *extra]
    done = subprocess.run(command, env=offline_env(None), capture_output=True, text=True, timeout=1200)
    (out.parent / f"{out.name}.log").write_text(done.stdout + "\n--- stderr ---\n" + done.stderr)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    lines = (out / "headline.txt").read_text().splitlines()
    assert lines[0].startswith("model: ") and lines[-1].startswith("wall time ")
    return lines[1:-1]


def _same_headline(served: list[str], local: list[str]) -> None:
    """The same words, and every number within the rounding of an entropy within 1e-3."""
    assert len(served) == len(local)
    for mine, theirs in zip(served, local, strict=True):
        assert _NUMBER.sub("#", mine) == _NUMBER.sub("#", theirs), (mine, theirs)
        for a, b in zip(_NUMBER.findall(mine), _NUMBER.findall(theirs), strict=True):
            assert abs(float(a) - float(b)) <= 2e-3, (mine, theirs)


def test_demo_through_vllm_prints_the_in_process_headline(tmp_path: Path) -> None:
    """``demo --engine vllm`` starts its own server, answers through it and stops it; the probe is local.

    On the packaged demo checkpoint: its chat template writes no BOS and its tokenizer adds one, so this
    fails unless the served prompts carry the in-process BOS (``add_special_tokens``).
    """
    _vllm_python()
    served_lines = _demo(tmp_path / "served", "--engine", "vllm")
    local_lines = _demo(tmp_path / "local")
    _same_headline(served_lines, local_lines)
    assert served_lines[-1].startswith("oscillations") and "no probe" not in served_lines[-1]

    served = {r["row_id"]: r for r in next(iter(read_task_results([tmp_path / "served/results"]))).records}
    local = {r["row_id"]: r for r in next(iter(read_task_results([tmp_path / "local/results"]))).records}
    assert set(served) == set(local) and len(served) == 81 * DEMO_GROUPS
    for row_id, record in served.items():
        assert record["answer"] == local[row_id]["answer"], row_id
        assert record["entropy_estimator"] == "full_vocab"
        assert abs(record["entropy"] - local[row_id]["entropy"]) < 1e-3, row_id
    log = (tmp_path / "served/vllm-server.log").read_text()
    # Identical documents share one request (the response cache); the start sends one probe more.
    assert 0 < log.count('"POST /v1/chat/completions HTTP/1.1" 200') <= len(served) + 1
    port = re.search(r"on http://127\.0\.0\.1:(\d+)/v1", (tmp_path / "served.log").read_text())
    assert port is not None
    with pytest.raises(httpx.HTTPError):  # stopped when the demo ended
        httpx.get(f"http://127.0.0.1:{port[1]}/v1/models", timeout=2)


def test_demo_stops_its_vllm_server_on_sigterm(tmp_path: Path) -> None:
    """SIGTERM while the server starts: the demo exits 130 and leaves no vLLM process behind."""
    _vllm_python()
    out = tmp_path / "demo"
    command = [sys.executable, "-m", "modality_conflict.cli.main", "demo", "--out", str(out), "--groups", "1"]
    with (tmp_path / "demo.log").open("w") as log:
        demo = subprocess.Popen([*command, "--engine", "vllm"], env=offline_env(None), stdout=log, stderr=log)
        server_log, pids = out / "vllm-server.log", set()
        deadline = time.monotonic() + 600
        while not pids and demo.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
            if server_log.is_file():
                pids = {int(pid) for pid in re.findall(r"\(APIServer pid=(\d+)\)", server_log.read_text())}
        demo.send_signal(signal.SIGTERM)
        assert demo.wait(timeout=120) == 130, (tmp_path / "demo.log").read_text()[-3000:]
    assert pids, "the server never started"
    assert "interrupted" in (tmp_path / "demo.log").read_text()
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
