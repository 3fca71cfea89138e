"""Every supported cell of the support matrix through the real ``lmms-eval`` command, numbers checked.

For each architecture of ``tests/support_matrix.json`` whose ``modality_conflict_hf`` or ``loglik`` column
is *supported*, one separate ``lmms-eval`` process runs, as the README tells a user to type it
(``lmms-eval --model modality_conflict_hf --model_args pretrained=DIR --tasks ...``), the generation task
and the loglik task together (``--tasks a,b``: one start-up and one model load per architecture) with the
tasks' own YAML settings, on the first 20 rows of the quick dataset (14 vision-only, 3 text-only, 3
conflict). Then, for every logged document:

- generation: the envelope's entropy equals the full-vocabulary entropy of the next-token logits the test
  computes itself from the same checkpoint (``direct_scores``), its greedy first token is the logits'
  argmax, and the record's answer is the envelope's text as the answer normaliser reads it;
- loglik: each candidate's logged score equals log P(answer | prompt) computed directly, both surface
  forms of the answer added (on one image and one text-only document: the rest are the same code); the
  record's entropy is that of the normalised logged scores and its answer their argmax.

Two runs carry one more task: Gemma 3's a plain lmms-eval task (plain text back, not envelopes), Qwen2.5-VL's
the sampled variant (the wrapper's envelopes decoded by the sampled estimator).
"""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import support_matrix
from direct_scores import answer_log_prob, entropy_of_scores, next_token_entropy, prompt_of
from lmms_eval_runs import (
    assert_sampled_entropy_is_that_of_the_logged_answers,
    logged_responses,
    run_lmms_eval,
    samples,
)

from modality_conflict.analysis.evaluate import RunOutputs
from modality_conflict.analysis.results import ResultsFile
from modality_conflict.mc_tasks import task_logic
from modality_conflict.mc_tasks.names import RECORD_KEY
from modality_conflict.metrics.answers import normalize_answer
from modality_conflict.models.envelope import decode_envelope
from modality_conflict.models.hf_model import ModalityConflictHF

pytestmark = pytest.mark.slow

LIMIT = 20
GENERATE, LOGLIK, SAMPLED = (
    "modality_conflict_color_quick",
    "modality_conflict_loglik",
    "modality_conflict_sampled",
)
MATRIX = support_matrix.load()["architectures"]
TASK_OF_COLUMN = {"modality_conflict_hf": GENERATE, "loglik": LOGLIK}
ARCHITECTURES = [
    name
    for name, row in MATRIX.items()
    if any(row[column]["status"] == "supported" for column in TASK_OF_COLUMN)
]
ENTROPY_TOLERANCE = 1e-4  # the CLI batches 4 left-padded prompts in float32; here one prompt in float32


def _tasks(name: str) -> list[str]:
    return [task for column, task in TASK_OF_COLUMN.items() if MATRIX[name][column]["status"] == "supported"]


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
PLAIN_QUESTIONS = ["What is two plus two?", "Name a colour.", "Say hello."]


def _plain_task(folder: Path) -> Path:
    folder.mkdir()
    data = folder / "plain.jsonl"
    data.write_text("".join(json.dumps({"question": q, "answer": "x"}) + "\n" for q in PLAIN_QUESTIONS))
    (folder / "mc_plain_questions.yaml").write_text(PLAIN_TASK.format(data=data))
    return folder


@dataclass
class ArchitectureRun:
    """One architecture's lmms-eval process and the checkpoint loaded here for the direct numbers."""

    name: str
    outputs: RunOutputs
    wrapper: ModalityConflictHF
    docs: list[dict[str, Any]]


class Runs:
    """Each architecture's run, made on first use and kept for the module's other tests."""

    def __init__(self, root: Path, data_dir: Path, checkpoints: Any, docs: list[dict[str, Any]]) -> None:
        self.root, self.data_dir, self.checkpoints, self.docs = root, data_dir, checkpoints, docs
        self._runs: dict[str, ArchitectureRun] = {}

    def __getitem__(self, name: str) -> ArchitectureRun:
        if name not in self._runs:
            self._runs[name] = self._launch(name)
        return self._runs[name]

    def _launch(self, name: str) -> ArchitectureRun:
        folder = self.checkpoints[name]
        out = self.root / name
        out.mkdir()
        tasks, extra = _tasks(name), ["--limit", str(LIMIT)]
        checked = list(tasks)
        if name == "gemma3":  # a BOS-writing template, with a task of another benchmark in the same command
            tasks.append("mc_plain_questions")
            extra += ["--include_path", str(_plain_task(out / "plain_task"))]
        if name == "qwen2_5_vl":
            tasks.append(SAMPLED)
            checked.append(SAMPLED)
        outputs = run_lmms_eval(
            out,
            model="modality_conflict_hf",
            model_args=f"pretrained={folder}",
            tasks=",".join(tasks),
            data_dir=self.data_dir,
            extra=extra,
            batch_size=4,
            checked_tasks=checked,
        )
        wrapper = ModalityConflictHF(pretrained=str(folder), device="cpu")
        return ArchitectureRun(name, outputs, wrapper, self.docs)


@pytest.fixture(scope="module")
def quick_docs(quick_dataset_dir: Path) -> list[dict[str, Any]]:
    """The quick dataset's first rows in lmms-eval's doc order (both tasks see the same rows)."""
    import datasets

    table = task_logic.process_docs_quick(datasets.load_dataset(str(quick_dataset_dir), split="test"))
    return [table[i] for i in range(LIMIT)]


@pytest.fixture(scope="module")
def runs(
    tmp_path_factory: pytest.TempPathFactory,
    quick_dataset_dir: Path,
    tiny_checkpoints: Any,
    quick_docs: list[dict[str, Any]],
) -> Runs:
    return Runs(tmp_path_factory.mktemp("cli_matrix"), quick_dataset_dir, tiny_checkpoints, quick_docs)


def _rows(run: ArchitectureRun, task: str) -> list[dict[str, Any]]:
    rows = samples(run.outputs, task)
    assert sorted(r["doc_id"] for r in rows) == list(range(LIMIT))
    return rows


GENERATION_CELLS = [n for n in ARCHITECTURES if GENERATE in _tasks(n)]
LOGLIK_CELLS = [n for n in ARCHITECTURES if LOGLIK in _tasks(n)]


@pytest.mark.parametrize("name", GENERATION_CELLS)
def test_generation_entropies_are_the_checkpoints_own(name: str, runs: Runs) -> None:
    run = runs[name]
    conditions = set()
    for sample in _rows(run, GENERATE):
        doc = run.docs[sample["doc_id"]]
        (response,) = logged_responses(sample)
        envelope = decode_envelope(response)
        assert envelope is not None and envelope["estimator"] == "full_vocab"
        entropy, top = next_token_entropy(run.wrapper, prompt_of(run.wrapper, doc))
        assert envelope["entropy"] == pytest.approx(entropy, abs=ENTROPY_TOLERANCE)
        assert envelope["lens"]["top1_ids"][-1] in top
        record = sample[RECORD_KEY]
        assert record["row_id"] == doc["row_id"]
        assert record["entropy"] == envelope["entropy"] and record["entropy_estimator"] == "full_vocab"
        choices = record["answer_choices"]
        assert record["answer"] == normalize_answer(envelope["text"], choices, synonyms=_synonyms(choices))
        assert envelope["prompt"]["date"] == "2025-01-01"
        if run.name == "mllama":  # cross-attention layers do not run without an image
            expected = [1] if record["condition"] == "text_only" else []
            assert envelope["lens"]["skipped_layers"] == expected
        conditions.add(record["condition"])
    assert conditions == {"vision_only", "text_only", "conflict"}


def _synonyms(choices: list[str]) -> Any:
    from modality_conflict.dataset_builder.specs import vocabulary_for

    return vocabulary_for(choices).synonyms


def _logged_score(response: Any) -> float:
    """lmms-eval logs a multiple_choice response as the string of ``(log-probability, is_greedy)``."""
    score, greedy = ast.literal_eval(response) if isinstance(response, str) else response
    assert isinstance(greedy, bool)
    return float(score)


@pytest.mark.parametrize("name", LOGLIK_CELLS)
def test_loglik_scores_are_the_checkpoints_own(name: str, runs: Runs) -> None:
    run = runs[name]
    rows = _rows(run, LOGLIK)
    checked_directly = set()
    for sample in rows:
        doc, record = run.docs[sample["doc_id"]], sample[RECORD_KEY]
        choices = task_logic.doc_to_choice(doc)
        scores = [_logged_score(r) for r in logged_responses(sample)]
        assert len(scores) == len(choices) and all(s < 0 for s in scores)
        assert record["answer_scores"] == pytest.approx(scores, abs=1e-12)
        assert record["entropy_estimator"] == "answer_set"
        assert record["entropy"] == pytest.approx(entropy_of_scores(scores), abs=1e-9)
        assert record["answer"] == choices[max(range(len(scores)), key=scores.__getitem__)]
        has_image = bool(task_logic.doc_to_visual(doc))
        if has_image not in checked_directly:
            checked_directly.add(has_image)
            prompt = prompt_of(run.wrapper, doc)
            direct = [answer_log_prob(run.wrapper, prompt, choice) for choice in choices]
            assert scores == pytest.approx(direct, abs=ENTROPY_TOLERANCE)
    assert checked_directly == {True, False}


def test_the_other_benchmarks_task_in_the_command_gets_plain_text(runs: Runs) -> None:
    run = runs["gemma3"]
    results = ResultsFile.read(run.outputs.results_json)
    plain_log = results.samples_path("mc_plain_questions")
    assert plain_log is not None
    plain = [json.loads(line) for line in plain_log.read_text().splitlines()]
    assert len(plain) == len(PLAIN_QUESTIONS)
    responses = []
    for sample in plain:
        (response,) = logged_responses(sample)
        assert isinstance(response, str) and decode_envelope(response) is None
        assert "mc_envelope" not in response
        responses.append(response)
    score = sum(r == "x" for r in responses) / len(responses)
    assert results.metrics("mc_plain_questions")["exact_match"] == pytest.approx(score)


def test_the_sampled_task_decodes_the_wrappers_envelopes(runs: Runs) -> None:
    run = runs["qwen2_5_vl"]
    repeats = 8  # modality_conflict_sampled.yaml
    for sample in samples(run.outputs, SAMPLED):
        envelopes = [decode_envelope(r) for r in logged_responses(sample)]
        assert len(envelopes) == repeats and all(e is not None for e in envelopes)
    assert_sampled_entropy_is_that_of_the_logged_answers(run.outputs, SAMPLED, n_docs=LIMIT, repeats=repeats)
