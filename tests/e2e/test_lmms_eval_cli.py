"""End to end through the real lmms-eval CLI on tiny random-weight models built on the spot.

Three paths to uncertainty: full-vocabulary entropy from one forward pass (the project's
``modality_conflict_hf``), answer-set entropy from one loglikelihood per candidate (the ``multiple_choice``
task variant) and sampled-answer entropy for generation-only wrappers (lmms-eval's own
``qwen2_vl``). Random weights make the numbers meaningless; what is
checked is that every metric is there, finite or flagged with a reason, and that the logs carry what a
submission needs.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from lmms_eval_runs import assert_sampled_entropy_is_that_of_the_logged_answers, offline_env, run_lmms_eval

from modality_conflict.analysis.evaluate import EvaluationFailedError, RunOutputs, find_run_outputs
from modality_conflict.analysis.results import ResultsFile
from modality_conflict.mc_tasks.names import METRIC_NAMES, RECORD_KEY
from modality_conflict.models.envelope import decode_envelope

pytestmark = pytest.mark.slow

RECORD_FIELDS = {
    "row_id",
    "condition",
    "control",
    "group_id",
    "item_id",
    "vision_key",
    "text_key",
    "visual_tier",
    "text_tier",
    "vision_answer",
    "text_answer",
    "answer",
    "entropy",
    "entropy_estimator",
}


def _metrics(outputs: RunOutputs, task: str) -> dict[str, Any]:
    return {key.split(",")[0]: value for key, value in outputs.results["results"][task].items()}


def _report(outputs: RunOutputs, task: str) -> dict[str, Any]:
    """The task's whole summary, from the report file beside the results file."""
    assert outputs.report_json is not None and outputs.report_json.is_file()
    return json.loads(outputs.report_json.read_text())["reports"][task]


def _table_metrics(printed: str) -> set[str]:
    """The metric names of lmms-eval's printed results table (its Metric column)."""
    names = set()
    for line in printed.splitlines():
        cells = [cell.strip() for cell in line.split("|")] if line.startswith("|") else []
        if len(cells) > 5 and cells[4] and not set(cells[4]) <= set("-:"):
            names.add(cells[4])
    return names - {"Metric"}


def _samples(outputs: RunOutputs, task: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in outputs.samples[task].read_text().splitlines()]


def _assert_finite_or_flagged(report: dict[str, Any]) -> None:
    for key, value in report.items():
        if isinstance(value, float):
            assert math.isfinite(value), f"{key} = {value}"
        if value is None and not key.endswith("_reason"):
            assert report.get(f"{key}_reason"), f"{key} is undefined without a reason"


def _n_rows(data_dir: Path, predicate: Any = None) -> int:
    import datasets

    rows = datasets.load_dataset(str(data_dir), split="test").remove_columns("image")
    return sum(1 for row in rows if predicate is None or predicate(row))


def test_wrapper_reports_every_metric_with_full_vocab_entropy(
    tiny_lmms_eval_run: Path, small_dataset_dir: Path
) -> None:
    outputs = find_run_outputs(tiny_lmms_eval_run, ["modality_conflict"])
    metrics = _metrics(outputs, "modality_conflict_color")
    # lmms-eval's metrics are the headline numbers only; the whole report is in the report file.
    assert {name for name in metrics if "_stderr" not in name and name != "alias"} == set(METRIC_NAMES)
    report = _report(outputs, "modality_conflict_color")
    assert outputs.report_json == ResultsFile.read(outputs.results_json).report_path
    assert report["status"] == "ok" and report["entropy_estimator"] == "full_vocab"
    assert all(metrics[name] == report[name] for name in METRIC_NAMES)
    printed = (tiny_lmms_eval_run / "lmms_eval.log").read_text().split("--- stderr ---")[0]
    assert _table_metrics(printed) == set(METRIC_NAMES), printed[-3000:]
    assert max(len(line) for line in printed.splitlines() if line.startswith("|")) < 400
    _assert_finite_or_flagged(report)
    assert report["mean_hv"] > 0 and report["mean_ht"] > 0
    # The config pins the dataset, and the version is a dict-style metadata field.
    config = outputs.results["configs"]["modality_conflict_color"]
    assert config["metadata"]["version"] == 1
    assert Path(config["dataset_path"]) == small_dataset_dir.resolve()

    samples = _samples(outputs, "modality_conflict_color")
    assert len(samples) == _n_rows(small_dataset_dir)
    for sample in samples:
        record = sample[RECORD_KEY]
        assert set(record) >= RECORD_FIELDS
        assert record["entropy"] is not None and record["entropy"] >= 0
    conflict = next(s for s in samples if s[RECORD_KEY]["condition"] == "conflict")
    # lmms-eval drops `resps` from the log when it equals `filtered_resps`.
    response = conflict.get("resps", conflict["filtered_resps"])
    while isinstance(response, list):
        response = response[0]
    envelope = decode_envelope(response)
    assert envelope is not None and envelope["estimator"] == "full_vocab"
    lens = envelope["lens"]
    assert lens["n_layers"] == len(lens["top1_ids"]) == len(lens["answer_logits"]) >= 2


def test_loglikelihood_path_through_multiple_choice_with_include_path(
    tmp_path: Path, quick_dataset_dir: Path, tiny_llava_dir: Path
) -> None:
    # lmms-eval 0.7.3's own llava_hf cannot score these prompts under transformers 5 (its context-length
    # call to the processor passes the image token without the image), so the loglikelihood path is driven
    # by the project's wrapper, whose loglikelihood returns exact summed log-probabilities. The responses
    # still travel through lmms-eval's multiple_choice machinery, which stringifies them.
    tasks_dir = tmp_path / "tasks" / "modality_conflict"
    command = [sys.executable, "-m", "modality_conflict.cli.main", "tasks"]
    subprocess.run([*command, "--data", str(quick_dataset_dir), "--out", str(tasks_dir)], check=True)
    out = tmp_path / "run"
    out.mkdir()
    outputs = run_lmms_eval(
        out,
        model="modality_conflict_hf",
        model_args=f"pretrained={tiny_llava_dir},device=cpu,device_map=cpu",
        tasks="modality_conflict_loglik",
        data_dir=None,
        extra=["--include_path", str(tasks_dir.parent)],
    )
    # The copy's generated template, which includes the verbatim one, points the task at the folder.
    used = outputs.results["configs"]["modality_conflict_loglik"]["metadata"]["dataset_used"]
    assert used["source"] == "path" and Path(used["path"]) == quick_dataset_dir.resolve()
    report = _report(outputs, "modality_conflict_loglik")
    assert report["entropy_estimator"] == "answer_set"
    _assert_finite_or_flagged(report)
    assert 0 <= report["mean_hv"] <= math.log(6) + 1e-9 and 0 <= report["mean_ht"] <= math.log(6) + 1e-9
    samples = _samples(outputs, "modality_conflict_loglik")
    assert len(samples) == _n_rows(quick_dataset_dir)
    assert all(len(s[RECORD_KEY]["answer_scores"]) == 6 for s in samples)
    # The answer is the best-scoring candidate, so "other" never occurs on this path.
    assert all(s[RECORD_KEY]["answer"] != "other" for s in samples)
    assert all(max(s[RECORD_KEY]["answer_scores"]) <= 0 for s in samples)


def test_qwen2_vl_generation_path_uses_sampled_entropy(
    tmp_path: Path, quick_dataset_dir: Path, tiny_qwen2_vl_dir: Path
) -> None:
    outputs = run_lmms_eval(
        tmp_path,
        model="qwen2_vl",
        model_args=f"pretrained={tiny_qwen2_vl_dir},device=cpu,device_map=cpu,max_pixels=3136,min_pixels=784",
        tasks="modality_conflict_sampled",
        data_dir=quick_dataset_dir,
        extra=["--repeats", "3"],
    )
    report = _report(outputs, "modality_conflict_sampled")
    assert report["entropy_estimator"] == "sampled"
    _assert_finite_or_flagged(report)
    # All three answers of every prompt reach the task, and each entropy is theirs (not 0 from one answer).
    assert_sampled_entropy_is_that_of_the_logged_answers(
        outputs, "modality_conflict_sampled", n_docs=_n_rows(quick_dataset_dir), repeats=3
    )


def test_two_processes_give_the_same_aggregate_as_one(
    tmp_path: Path, tiny_lmms_eval_run: Path, datasets_dir: Path, tiny_llava_dir: Path
) -> None:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    assert torchrun is not None
    outputs = run_lmms_eval(
        tmp_path,
        model="modality_conflict_hf",
        model_args=f"pretrained={tiny_llava_dir},device=cpu,device_map=cpu,dtype=float64",
        tasks="modality_conflict",
        data_dir=datasets_dir,
        launcher=[torchrun, "--nproc_per_node", "2", "--master_port", "29533", "-m"],
    )
    single = find_run_outputs(tiny_lmms_eval_run, ["modality_conflict"])
    # Rank 0 alone writes the report file, from the records of both ranks.
    assert len(list(tmp_path.rglob("*_modality_conflict.json"))) == 1
    # Ranks batch the prompts differently, so entropies may differ in the last bits; nothing else may.
    for task in ("modality_conflict_color", "modality_conflict_attribute"):
        two = _report(outputs, task)
        one = _report(single, task)
        _assert_same_report(two, one, path=f"{task}.report")


def _assert_same_report(actual: Any, expected: Any, *, path: str) -> None:
    if isinstance(expected, float):
        assert actual == pytest.approx(expected, rel=1e-6, abs=1e-9), path
    elif isinstance(expected, dict):
        assert isinstance(actual, dict) and actual.keys() == expected.keys(), path
        for key, value in expected.items():
            _assert_same_report(actual[key], value, path=f"{path}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), path
        for index, (left, right) in enumerate(zip(actual, expected, strict=True)):
            _assert_same_report(left, right, path=f"{path}[{index}]")
    else:
        assert actual == expected, path


def test_eval_command_fails_loudly_when_lmms_eval_writes_nothing(
    tmp_path: Path, small_dataset_dir: Path
) -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "modality_conflict.cli.main",
            "eval",
            "--model",
            "modality_conflict_hf",
            "--model-args",
            f"pretrained={tmp_path / 'no-such-model'},device=cpu",
            "--data",
            str(small_dataset_dir),
            "--output",
            str(tmp_path / "out"),
        ],
        env=offline_env(None),
        capture_output=True,
        text=True,
    )
    assert completed.returncode == 1
    assert "error: lmms-eval wrote no *_results.json" in completed.stderr


def _without_half_the_text_rows(source: Path, out: Path) -> Path:
    """A copy of a built dataset folder whose shard lacks every second text-only row (manifest updated)."""
    import hashlib

    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    shutil.copytree(source, out)
    (shard,) = sorted((out / "data").glob("*.parquet"))
    table = pq.read_table(shard)
    text_only = pc.equal(table["condition"], 1).to_pylist()
    ordinal = [sum(text_only[: i + 1]) for i in range(len(text_only))]
    keep = [not (is_text and ordinal[i] % 2 == 0) for i, is_text in enumerate(text_only)]
    kept = table.filter(keep)
    pq.write_table(kept, shard)
    card = out / "README.md"
    card.write_text(
        card.read_text().replace(f"num_examples: {table.num_rows}", f"num_examples: {kept.num_rows}")
    )
    manifest = json.loads((out / "manifest.json").read_text())
    for path in (shard, card):
        entry = manifest["files"][path.relative_to(out).as_posix()]
        entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
        entry["size"] = path.stat().st_size
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return out


def test_eval_command_shows_the_headline_table_the_report_file_and_dropped_conflicts(
    tmp_path: Path, quick_dataset_dir: Path, tiny_llava_dir: Path
) -> None:
    data = _without_half_the_text_rows(quick_dataset_dir, tmp_path / "data")
    out = tmp_path / "out"
    completed = subprocess.run(
        [
            sys.executable, "-m", "modality_conflict.cli.main", "eval",
            "--model-args", f"pretrained={tiny_llava_dir},device=cpu,device_map=cpu",
            "--tasks", "modality_conflict_color", "--data", str(data), "--output", str(out),
            "--batch-size", "8",
        ],
        env=offline_env(None), capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    printed = completed.stdout
    # lmms-eval's own table: the headline numbers only, no report cell thousands of characters wide.
    assert _table_metrics(printed) == set(METRIC_NAMES), printed[-3000:]
    report_json = next(out.rglob("*_modality_conflict.json"))
    assert f"full report: {report_json}" in printed
    report = json.loads(report_json.read_text())["reports"]["modality_conflict_color"]
    missing, total = report["n_incomplete_conflicts"], report["n_conflict_rows"]
    assert 0 < missing < total
    assert f"incomplete conflicts: {missing} of {total} conflict rows left out" in printed
    assert f"{missing} of {total} conflict rows were left out" in completed.stderr
    # ... logged once by the aggregation inside lmms-eval, printed again by eval.
    assert completed.stderr.count("modality_conflict: " + f"{missing} of {total} conflict rows") == 1
    # `report` finds the report file and says the same.
    reported = subprocess.run(
        [sys.executable, "-m", "modality_conflict.cli.main", "report", str(out), "--out",
         str(tmp_path / "r")],
        env=offline_env(None), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert reported.returncode == 0, reported.stderr
    assert f"{missing} of {total} conflict rows were left out" in reported.stderr
    page = (tmp_path / "r" / "index.html").read_text()
    assert f'<td class="n">{missing} of {total}</td>' in page


def test_find_run_outputs_names_a_missing_task(tiny_lmms_eval_run: Path) -> None:
    with pytest.raises(EvaluationFailedError, match="no results for task 'modality_conflict_loglik'"):
        find_run_outputs(tiny_lmms_eval_run, ["modality_conflict_loglik"])
