"""The attribute tasks end to end through the real lmms-eval CLI, on tiny random-weight models.

``--tasks modality_conflict`` runs the colour and the attribute task in one command and reports each;
the attribute rows carry their own answer set (three shapes or two materials), which the wrapper scores,
the logit lens records, the loglik variant turns into 3 or 2 choices and the sampled variant counts over.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
from lmms_eval_runs import assert_sampled_entropy_is_that_of_the_logged_answers, run_lmms_eval

from modality_conflict.analysis.evaluate import find_run_outputs, format_summary
from modality_conflict.analysis.results import TaskResult, read_task_results
from modality_conflict.mc_tasks.names import ATTRIBUTE_TASK, MAIN_TASK, REQUIRED_METRICS

pytestmark = pytest.mark.slow

SHAPES = ["cube", "sphere", "cylinder"]
MATERIALS = ["rubber", "metal"]


def _task(path: Path, task: str, *, with_envelopes: bool = False) -> TaskResult:
    (run,) = read_task_results([path], tasks=[task], require_samples=True, with_envelopes=with_envelopes)
    return run


def _check_answer_sets(records: tuple[dict[str, Any], ...]) -> None:
    for record in records:
        choices = SHAPES if record["attribute"] == "shape" else MATERIALS
        assert record["attribute"] in ("shape", "material") and record["answer_choices"] == choices
        assert record["vision_answer"] in choices and record["text_answer"] in choices
        assert record["answer"] in [*choices, "other"]


def test_group_reports_the_colour_and_the_attribute_task(
    tiny_lmms_eval_run: Path, attribute_dataset_dir: Path
) -> None:
    outputs = find_run_outputs(tiny_lmms_eval_run, ["modality_conflict"])
    metrics = {key.split(",")[0] for key in outputs.results["results"][ATTRIBUTE_TASK]}
    assert set(REQUIRED_METRICS) <= metrics
    colour, attribute = _task(tiny_lmms_eval_run, MAIN_TASK), _task(tiny_lmms_eval_run, ATTRIBUTE_TASK)
    assert colour.summary.ok and attribute.summary.ok
    # Each task reports its own balance point; the attribute task also each attribute's.
    assert attribute.summary.attributes == ("shape", "material") and colour.summary.attributes == ("color",)
    assert set(attribute.summary.by_attribute) == {"shape", "material"} and not colour.summary.by_attribute
    for part in attribute.summary.by_attribute.values():
        assert part.balance_point.status and part.get("n_conflicts") is not None
    n = sum(part.get("n_conflicts") for part in attribute.summary.by_attribute.values())
    assert n == attribute.summary.get("n_conflicts")
    assert len(attribute.records) == 164 and {r["attribute"] for r in attribute.records} == {
        "shape",
        "material",
    }
    _check_answer_sets(attribute.records)
    assert all(r["answer_choices"][0] == "red" for r in colour.records)
    config = outputs.results["configs"][ATTRIBUTE_TASK]
    assert Path(config["dataset_path"]) == attribute_dataset_dir.resolve()
    assert config["metadata"]["dataset"] == "modality-conflict-attribute"
    text = format_summary(outputs)
    assert f"\n{ATTRIBUTE_TASK}" in text and "\n  shape " in text and "\n  material " in text


def test_wrapper_scores_and_lenses_each_rows_own_candidates(tiny_lmms_eval_run: Path) -> None:
    run = _task(tiny_lmms_eval_run, ATTRIBUTE_TASK, with_envelopes=True)
    by_row = {r["row_id"]: r for r in run.records}
    assert len(run.envelopes) == len(by_row)
    for row_id, envelope in run.envelopes.items():
        choices = by_row[row_id]["answer_choices"]
        assert list(envelope["answer_logprobs"]) == choices
        assert by_row[row_id]["answer_scores"] == [envelope["answer_logprobs"][c] for c in choices]
        lens = envelope.get("lens")
        if lens is not None:
            assert list(lens["answer_token_ids"]) == choices
            assert all(len(layer) == len(choices) for layer in lens["answer_logits"])


def test_attribute_loglik_scores_three_or_two_choices(
    tmp_path: Path, attribute_dataset_dir: Path, tiny_llava_dir: Path
) -> None:
    task = "modality_conflict_attribute_loglik"
    run_lmms_eval(
        tmp_path,
        model="modality_conflict_hf",
        model_args=f"pretrained={tiny_llava_dir},device=cpu,device_map=cpu",
        tasks=task,
        data_dir=attribute_dataset_dir,
    )
    run = _task(tmp_path, task)
    assert run.summary.ok and run.summary.entropy_estimator == "answer_set"
    _check_answer_sets(run.records)
    for record in run.records:
        assert len(record["answer_scores"]) == len(record["answer_choices"])
        best = max(range(len(record["answer_scores"])), key=record["answer_scores"].__getitem__)
        assert record["answer"] == record["answer_choices"][best]
        assert 0 <= record["entropy"] <= math.log(len(record["answer_choices"])) + 1e-9


def test_attribute_sampled_path_with_lmms_evals_own_wrapper(
    tmp_path: Path, attribute_dataset_dir: Path, tiny_qwen2_vl_dir: Path
) -> None:
    task = "modality_conflict_attribute_sampled"
    run_lmms_eval(
        tmp_path,
        model="qwen2_vl",
        model_args=f"pretrained={tiny_qwen2_vl_dir},device=cpu,device_map=cpu,max_pixels=3136,min_pixels=784",
        tasks=task,
        data_dir=attribute_dataset_dir,
        extra=["--repeats", "3"],
    )
    run = _task(tmp_path, task)
    assert run.summary.entropy_estimator == "sampled"
    _check_answer_sets(run.records)
    # Three samples over the row's answers and "other": the corrected entropy is at most ln 3 + 1/3.
    assert all(0 <= r["entropy"] <= math.log(3) + 1 / 3 + 1e-9 for r in run.records)
    # Every repeat reaches the task, and each entropy is that of the logged answers (not 0 from one).
    assert_sampled_entropy_is_that_of_the_logged_answers(
        find_run_outputs(tmp_path, [task]), task, n_docs=len(run.records), repeats=3
    )


def test_report_has_plots_per_task_and_a_row_per_attribute(tiny_lmms_eval_run: Path, tmp_path: Path) -> None:
    from modality_conflict.cli.main import main

    out = tmp_path / "report"
    assert main(["report", str(tiny_lmms_eval_run), "--out", str(out)]) == 0
    for task in (MAIN_TASK, ATTRIBUTE_TASK):
        for figure in ("following_curve", "entropy_by_tier"):
            path = out / f"{figure}_{task}.png"
            assert path.is_file() and path.stat().st_size > 5000, path
    page = (out / "index.html").read_text()
    assert f"P(follow text) against dH: {ATTRIBUTE_TASK}" in page
    assert "<td>pooled (" in page and "<td>shape (" in page and "<td>material (" in page


def test_attribute_submission_round_trip_checked_against_the_dataset(
    tiny_lmms_eval_run: Path, attribute_dataset_dir: Path, tmp_path: Path
) -> None:
    from modality_conflict.analysis import submission as sub

    run = _task(tiny_lmms_eval_run, ATTRIBUTE_TASK)
    path = sub.write_submission(sub.build_submission(run), tmp_path / "submission.json")
    verification = sub.verify_file(path, data=attribute_dataset_dir)
    assert verification.recomputed["by_attribute"] == run.summary.raw["by_attribute"]
    assert not any("dataset check skipped" in note for note in verification.notes)


def test_probe_reads_the_attribute_runs_lens_per_row(tiny_lmms_eval_run: Path) -> None:
    from modality_conflict.analysis.probe import probe_from_results

    result = probe_from_results(tiny_lmms_eval_run, task=ATTRIBUTE_TASK)
    # 4 groups x 24 conflict rows: each is probed or skipped for a stated reason, and every row's lens
    # (over its own three or two answers) is usable.
    assert len(result.items) + sum(result.skipped.values()) == 4 * 24
    assert result.skipped.get("no_lens", 0) == 0
    for item in result.items:
        assert len(item["top1_labels"]) == item["n_layers"] == result.n_layers
