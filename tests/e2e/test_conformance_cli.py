"""The support matrix through the real lmms-eval CLI: lmms-eval's own wrappers and ``modality_conflict_hf``.

Every lmms-eval wrapper named in ``tests/support_matrix.json`` is run on its tiny checkpoint: a
*supported* one must give, on ``modality_conflict_sampled``, all K answers per document and an entropy that
is the Miller-Madow entropy of the logged answers (and not the same for every document); one *broken
upstream* must fail for the reason the matrix gives. ``modality_conflict_hf`` runs the families that need
something special (cross-attention layers, unscaled logits, a multimodal LM, an Omni thinker), the
sampled task, and, in one command with a plain lmms-eval task, a template that writes its own BOS.

The runs share one lmms-eval process (``lmms_eval_batch.py``) and ``--limit 20`` (14 vision-only, 3
text-only and 3 conflict rows of the quick dataset), so that the matrix stays within the CI budget.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import support_matrix
from lmms_eval_runs import (
    BatchRun,
    assert_sampled_entropy_is_that_of_the_logged_answers,
    logged_responses,
    run_lmms_eval,
    run_lmms_eval_batch,
    samples,
)

from modality_conflict.analysis.evaluate import EvaluationFailedError, RunOutputs, find_run_outputs
from modality_conflict.analysis.results import ResultsFile
from modality_conflict.mc_tasks.names import RECORD_KEY
from modality_conflict.models.envelope import decode_envelope

pytestmark = pytest.mark.slow

LIMIT, REPEATS = "20", "3"
SAMPLED, LOGLIK, GENERATE = (
    "modality_conflict_sampled",
    "modality_conflict_loglik",
    "modality_conflict_color_quick",
)
STOCK = list(support_matrix.lmms_eval_runs())
FAMILIES = tuple(
    name
    for name in ("mllama", "aya_vision", "phi4_multimodal", "qwen2_5_omni")
    if support_matrix.load()["architectures"][name]["modality_conflict_hf"]["status"] == "supported"
)
"""Families run through the CLI with ``modality_conflict_hf`` (gemma3 runs on its own, below), those the
installed transformers supports."""


def _stock_run(arch: str, index: int, entry: dict[str, Any], folder: Path) -> BatchRun:
    task = LOGLIK if entry.get("task") == "loglik" else SAMPLED
    model_args = ",".join(
        p for p in (f"pretrained={folder}", "device=cpu", "device_map=cpu", entry.get("model_args")) if p
    )
    extra = ["--limit", LIMIT, *entry.get("cli", [])]
    if task == SAMPLED:
        extra += ["--repeats", REPEATS]
    return BatchRun(f"{entry['wrapper']}-{arch}-{index}", entry["wrapper"], model_args, task, tuple(extra))


@pytest.fixture(scope="session")
def cli_runs(
    tmp_path_factory: pytest.TempPathFactory, quick_dataset_dir: Path, tiny_checkpoints: Any
) -> dict[str, Path]:
    runs = [_stock_run(arch, index, entry, tiny_checkpoints[arch]) for arch, index, entry in STOCK]
    for family in FAMILIES:
        runs.append(
            BatchRun(
                f"ours-{family}",
                "modality_conflict_hf",
                f"pretrained={tiny_checkpoints[family]},device=cpu",
                GENERATE,
                ("--limit", LIMIT),
                batch_size=4,
            )
        )
    runs.append(
        BatchRun(
            "ours-sampled",
            "modality_conflict_hf",
            f"pretrained={tiny_checkpoints['qwen2_5_vl']},device=cpu",
            SAMPLED,
            ("--limit", LIMIT, "--repeats", REPEATS),
            batch_size=8,
        )
    )
    return run_lmms_eval_batch(tmp_path_factory.mktemp("cli_matrix"), runs, data_dir=quick_dataset_dir)


def _envelope_responses(sample: dict[str, Any]) -> list[dict[str, Any]]:
    envelopes = [decode_envelope(r) for r in logged_responses(sample)]
    assert all(e is not None for e in envelopes)
    return envelopes


def _assert_sampled(outputs: RunOutputs) -> None:
    assert_sampled_entropy_is_that_of_the_logged_answers(
        outputs, SAMPLED, n_docs=int(LIMIT), repeats=int(REPEATS)
    )


@pytest.mark.parametrize(
    ("arch", "index", "entry"), STOCK, ids=[f"{e['wrapper']}-{a}-{i}" for a, i, e in STOCK]
)
def test_lmms_eval_wrapper_does_what_the_matrix_says(
    arch: str, index: int, entry: dict[str, Any], cli_runs: dict[str, Path]
) -> None:
    output = cli_runs[f"{entry['wrapper']}-{arch}-{index}"]
    log = (output / "lmms_eval.log").read_text()
    task = LOGLIK if entry.get("task") == "loglik" else SAMPLED
    if entry["status"] == "supported":
        _assert_sampled(find_run_outputs(output, [task]))
    else:
        with pytest.raises(EvaluationFailedError):
            find_run_outputs(output, [task])
        assert re.search(entry["evidence"], log), (
            f"{output / 'lmms_eval.log'} does not show {entry['evidence']!r}"
        )


def test_sampled_task_decodes_the_envelopes_of_modality_conflict_hf(cli_runs: dict[str, Path]) -> None:
    outputs = find_run_outputs(cli_runs["ours-sampled"], [SAMPLED])
    for sample in samples(outputs, SAMPLED):
        assert len(_envelope_responses(sample)) == int(REPEATS)
    _assert_sampled(outputs)


@pytest.mark.parametrize("family", FAMILIES)
def test_modality_conflict_hf_runs_the_family_through_the_cli(family: str, cli_runs: dict[str, Path]) -> None:
    outputs = find_run_outputs(cli_runs[f"ours-{family}"], [GENERATE])
    rows = samples(outputs, GENERATE)
    assert len(rows) == int(LIMIT)
    for sample in rows:
        (response,) = _envelope_responses(sample)
        record = sample[RECORD_KEY]
        assert record["entropy_estimator"] == "full_vocab" and math.isfinite(record["entropy"])
        assert response["prompt"]["date"] == "2025-01-01"
        if family == "mllama":
            expected = [1] if record["condition"] == "text_only" else []
            assert response["lens"]["skipped_layers"] == expected


PLAIN_TASK = """\
task: mc_plain_questions
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{question}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  max_new_tokens: 4
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
"""


def test_other_tasks_in_the_same_command_get_plain_text(
    tmp_path: Path, quick_dataset_dir: Path, tiny_checkpoints: Any
) -> None:
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    data = tasks / "plain.jsonl"
    questions = ["What is two plus two?", "Name a colour.", "Say hello."]
    data.write_text("".join(json.dumps({"question": q, "answer": "x"}) + "\n" for q in questions))
    (tasks / "mc_plain_questions.yaml").write_text(PLAIN_TASK.format(data=data))
    out = tmp_path / "run"
    out.mkdir()
    # Gemma 3's template writes the BOS itself: the benchmark's half of the run is a BOS-writing family.
    outputs = run_lmms_eval(
        out,
        model="modality_conflict_hf",
        model_args=f"pretrained={tiny_checkpoints['gemma3']},device=cpu",
        tasks=f"{GENERATE},mc_plain_questions",
        data_dir=quick_dataset_dir,
        extra=["--include_path", str(tasks), "--limit", LIMIT],
        batch_size=4,
        checked_tasks=[GENERATE],
    )
    results = ResultsFile.read(outputs.results_json)
    plain_log = results.samples_path("mc_plain_questions")
    assert plain_log is not None
    plain = [json.loads(line) for line in plain_log.read_text().splitlines()]
    assert len(plain) == len(questions)
    responses = []
    for sample in plain:
        (response,) = logged_responses(sample)
        assert isinstance(response, str) and decode_envelope(response) is None
        assert "mc_envelope" not in response
        responses.append(response)
    # The plain task's metric is computed on the plain answers.
    score = sum(r == "x" for r in responses) / len(responses)
    assert results.metrics("mc_plain_questions")["exact_match"] == pytest.approx(score)
    benchmark = samples(outputs, GENERATE)
    assert len(benchmark) == int(LIMIT)
    for sample in benchmark:
        (envelope,) = _envelope_responses(sample)
        assert envelope["estimator"] == "full_vocab"
        assert sample[RECORD_KEY]["entropy_estimator"] == "full_vocab"
