"""The results view: one read of an lmms-eval output folder, and what a summary's numbers mean."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures_results import TASK, write_lmms_eval_run

from modality_conflict.analysis.results import (
    BalancePoint,
    ResultsFile,
    TaskSummary,
    read_sample_log,
    read_task_results,
)


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_lmms_eval_run(tmp_path_factory.mktemp("results"), n_groups=6)


def test_results_file_reads_metrics_config_and_sample_log(run_folder: Path) -> None:
    (path,) = run_folder.glob("*_results.json")
    results = ResultsFile.read(path)
    assert results.stem == path.name.removesuffix("_results.json")
    assert TASK in results.task_names and "modality_conflict" in results.task_names
    metrics = results.metrics(TASK)
    assert metrics["tfr"] == results.summary(TASK).raw["tfr"] and "tfr_stderr" in metrics
    assert results.report_path.name == f"{results.stem}_modality_conflict.json"
    assert results.summary("modality_conflict") is None  # the group has no summary of its own
    assert [task for task, _ in results.summaries()] == [TASK]
    assert results.task_config(TASK)["dataset_kwargs"]["revision"]
    assert results.task_version(TASK) == 1
    assert results.samples_path(TASK) == path.with_name(f"{results.stem}_samples_{TASK}.jsonl")
    assert results.samples_path("absent") is None
    assert "pretrained=" in results.model_args


def test_sample_log_gives_records_and_envelopes_in_one_pass(run_folder: Path) -> None:
    (log,) = run_folder.glob("*_samples_*.jsonl")
    plain = read_sample_log(log)
    assert plain.envelopes == {} and len(plain.records) == sum(1 for line in log.open() if line.strip())
    both = read_sample_log(log, with_envelopes=True)
    assert both.records == plain.records
    assert set(both.envelopes) == {r["row_id"] for r in both.records}
    first = both.records[0]
    assert (
        both.envelopes[first["row_id"]]["text"].strip().lower().startswith(first["raw_response"][:3].lower())
    )
    broken = log.with_name("broken.jsonl")
    broken.write_text(log.read_text().splitlines()[0] + "\n{not json\n")
    with pytest.raises(ValueError, match=r"broken\.jsonl:2: not a JSON line"):
        read_sample_log(broken)


def test_task_results_carry_the_summary_records_and_labels(run_folder: Path) -> None:
    (run,) = read_task_results([run_folder.parent], with_envelopes=True)
    assert run.task == TASK and run.label == run_folder.name
    assert run.summary.ok and run.summary.n_conflicts == run.summary.raw["n_conflicts"]
    assert len(run.records) == run.summary.get("n_records") and run.envelopes
    assert run.results_json.parent == run_folder and run.samples_jsonl is not None
    (again,) = read_task_results([run_folder])
    assert again.envelopes == {} and again.records == run.records


def test_balance_point_status_bound_and_interval() -> None:
    ok = TaskSummary(
        {
            "status": "ok",
            "balance_point": -0.25,
            "balance_point_status": "ok",
            "balance_point_ci_low": -0.5,
            "balance_point_ci_high": -0.1,
            "balance_point_ci_method": "bootstrap",
            "balance_point_delta_low": -0.45,
            "balance_point_delta_high": -0.05,
        }
    )
    point = ok.balance_point
    assert (
        point == BalancePoint("ok", -0.25, -0.5, -0.1, "bootstrap", -0.45, -0.05, None, None, None)
        and point.defined
        and point.has_interval
        and not point.censored
    )
    assert ok.inherent_preference().modality == "vision"
    censored = TaskSummary(
        {
            "status": "ok",
            "balance_point": None,
            "balance_point_status": "censored_above",
            "balance_point_bound": 1.2,
            "balance_point_reason": "above the data",
        }
    ).balance_point
    assert not censored.defined and censored.censored and censored.bound == 1.2
    assert censored.reason == "above the data"
    # A number next to a status other than "ok" is no estimate; an undefined report has no status.
    assert (
        TaskSummary({"balance_point": 0.3, "balance_point_status": "undefined"}).balance_point.estimate
        is None
    )
    empty = TaskSummary({"status": "undefined", "reason": "no conflicts"})
    assert empty.balance_point.status == "undefined" and empty.balance_point.reason == "no conflicts"
    assert not empty.ok and empty.status == "undefined"


def test_summary_numbers_and_intervals_are_typed() -> None:
    summary = TaskSummary(
        {
            "tfr": 0.4,
            "tfr_ci_low": 0.3,
            "tfr_ci_high": 0.5,
            "mean_hv": True,
            "x_delta_low": -1,
            "x_delta_high": 1,
            "y_reason": "too few",
            "mean_hv_by_tier": {"2": 0.5, "0": 0.1, "1": None},
        }
    )
    assert summary.number("tfr") == 0.4 and summary.number("mean_hv") is None  # a boolean is not a number
    assert summary.ci("tfr") == (0.3, 0.5) and summary.interval("tfr") == (0.3, 0.5)
    assert summary.interval("x") == (-1.0, 1.0) and summary.interval("absent") == (None, None)
    assert summary.why_undefined("y") == "too few"
    assert summary.tier_table("mean_hv_by_tier") == {0: 0.1, 2: 0.5}
    assert json.loads(json.dumps(summary.raw)) == summary.raw
