"""Conformance of ``modality_conflict_hf`` on every architecture of the tiny zoo, as the support matrix says.

Each architecture whose ``modality_conflict_hf`` cell in ``tests/support_matrix.json`` is *supported* must
give, on real dataset rows: exactly one BOS in every prompt, a last logit-lens layer equal to the logits
(1e-5, float32), left-padded batches equal to one prompt at a time (1e-6, in float64: float32 rounding
alone reaches 1e-6 on log-probabilities of magnitude 6), distinct first tokens for the answers, and
prompts that neither change with the date nor leave a reasoning block open. Every *refused* cell must be
refused with its reason. The same holds for the ``loglik`` column on the scoring path. The requests carry
the task YAML's generation settings. That each supported cell's entropies, scores and parsed answers come
out of the real ``lmms-eval`` command is ``tests/e2e/test_conformance_cli.py``'s job.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import support_matrix
import torch
from conformance import (
    Prefill,
    instances,
    is_image_doc,
    leading_bos,
    make_wrapper,
    pick_docs,
    real_clock_says,
    watch_prefills,
)

from modality_conflict.dataset_builder.constants import COLORS
from modality_conflict.mc_tasks import task_logic
from modality_conflict.models.envelope import decode_envelope
from modality_conflict.models.hf_model import ModalityConflictHF
from modality_conflict.models.logit_lens import LastPositionRecorder, lens_logits

SUPPORTED = support_matrix.cells("modality_conflict_hf", "supported")
SCORED = support_matrix.cells("loglik", "supported")
MATRIX = support_matrix.load()["architectures"]


@pytest.fixture(scope="session")
def docs(quick_dataset_dir: Path) -> list[dict[str, Any]]:
    return pick_docs(quick_dataset_dir)


@dataclass
class Observed:
    """One architecture run through the wrapper (float32, one prompt per call) and what its model saw."""

    name: str
    folder: Path
    wrapper: ModalityConflictHF
    docs: list[dict[str, Any]]
    responses: list[str] = field(default_factory=list)
    prefills: list[Prefill] = field(default_factory=list)
    lens_last: list[torch.Tensor] = field(default_factory=list)
    scored_prefills: list[Prefill] = field(default_factory=list)

    @property
    def envelopes(self) -> list[dict[str, Any]]:
        return [decode_envelope(r) for r in self.responses]


def _observe(name: str, folder: Path, docs: list[dict[str, Any]]) -> Observed:
    wrapper = make_wrapper(folder, docs, dtype="float32", batch_size=1)
    observed = Observed(name, folder, wrapper, docs)
    for doc in docs:
        with watch_prefills(wrapper.model) as calls, LastPositionRecorder(wrapper.lens_modules) as recorder:
            (response,) = wrapper.generate_until(instances("generate_until", [doc], docs))
        (prefill,) = calls
        _, states = recorder.recorded()
        observed.responses.append(response)
        observed.prefills.append(prefill)
        observed.lens_last.append(list(lens_logits(wrapper.lens_modules, states))[-1])
    return observed


@pytest.fixture(scope="module", params=SUPPORTED)
def observed(request: pytest.FixtureRequest, tiny_checkpoints: Any, docs: list[dict[str, Any]]) -> Observed:
    return _observe(request.param, tiny_checkpoints[request.param], docs)


@pytest.fixture(scope="module", params=SCORED)
def scored(request: pytest.FixtureRequest, tiny_checkpoints: Any, docs: list[dict[str, Any]]) -> Observed:
    wrapper = make_wrapper(tiny_checkpoints[request.param], docs, dtype="float32", batch_size=1)
    observed = Observed(request.param, tiny_checkpoints[request.param], wrapper, docs)
    with watch_prefills(wrapper.model) as calls:
        wrapper.loglikelihood(instances("loglikelihood", docs, docs))
    observed.scored_prefills = list(calls)
    return observed


def _expected_bos(wrapper: ModalityConflictHF) -> int:
    return 0 if wrapper.tokenizer.bos_token_id is None else 1


# --- generation path (modality_conflict_hf column) --------------------------------------------------------


def test_every_generation_prompt_starts_with_exactly_one_bos(observed: Observed) -> None:
    bos = observed.wrapper.tokenizer.bos_token_id
    counts = [leading_bos(row, bos) for prefill in observed.prefills for row in prefill.rows()]
    assert counts == [_expected_bos(observed.wrapper)] * len(observed.docs)


def test_last_lens_layer_equals_the_logits(observed: Observed) -> None:
    for prefill, last, envelope in zip(
        observed.prefills, observed.lens_last, observed.envelopes, strict=True
    ):
        logits = prefill.logits[0].float()
        assert float((last[0] - logits).abs().max()) <= 1e-5  # over the whole vocabulary
        lens = envelope["lens"]
        assert lens["top1_ids"][-1] == int(logits.argmax())
        ids = list(lens["answer_token_ids"].values())
        assert lens["answer_logits"][-1] == pytest.approx([float(logits[i]) for i in ids], abs=1e-5)


def test_answer_first_tokens_are_distinct_and_start_the_answers(observed: Observed) -> None:
    wrapper = observed.wrapper
    tokens = wrapper.answer_tokens(COLORS)
    for ids in (tokens.lower, tokens.capitalized):
        assert len(set(ids.values())) == len(COLORS)
    for color in COLORS:
        assert wrapper.tokenizer.decode([tokens.lower[color]]).strip() == color
        assert wrapper.tokenizer.decode([tokens.capitalized[color]]).strip() == color.capitalize()
    lens = observed.envelopes[0]["lens"]
    assert lens["answer_token_ids"] == tokens.lower


def test_prompts_do_not_change_with_the_date(observed: Observed) -> None:
    wrapper, docs = observed.wrapper, observed.docs
    probe = [docs[0], docs[-1]]  # one image row, one text-only row
    seen = []
    for day in (datetime(2024, 2, 29), datetime(2031, 11, 3)):
        with real_clock_says(day), watch_prefills(wrapper.model) as calls:
            responses = wrapper.generate_until(instances("generate_until", probe, docs))
        seen.append([row for prefill in calls for row in prefill.rows()])
        for response, doc in zip(responses, probe, strict=True):
            facts = decode_envelope(response)["prompt"]
            assert facts["date"] == "2025-01-01"
            prompt = wrapper.chat.prompt(task_logic.doc_to_text(doc), int(is_image_doc(doc)))
            assert prompt.startswith(facts["preamble"])
    assert seen[0] == seen[1]


def test_no_reasoning_block_is_open_at_the_answer(observed: Observed) -> None:
    for prefill in observed.prefills:
        prompt = observed.wrapper.tokenizer.decode(prefill.rows()[0])
        tail = prompt[prompt.rfind("<think>") :] if "<think>" in prompt else ""
        assert not tail or "</think>" in tail


def _batched(name: str, folder: Path, docs: list[dict[str, Any]]) -> Iterator[tuple[ModalityConflictHF, int]]:
    # Whole prompts: a shared image prefix changes the calls (tests/models/test_sharing.py checks it).
    for batch_size in (1, 4):
        yield (
            make_wrapper(folder, docs, dtype="float64", batch_size=batch_size, share_images=False),
            batch_size,
        )


@pytest.mark.parametrize("name", SUPPORTED)
def test_left_padded_batch_equals_one_prompt_at_a_time(
    name: str, tiny_checkpoints: Any, docs: list[dict[str, Any]]
) -> None:
    results: dict[int, list[dict[str, Any]]] = {}
    for wrapper, batch_size in _batched(name, tiny_checkpoints[name], docs):
        with watch_prefills(wrapper.model) as calls:
            responses = wrapper.generate_until(instances("generate_until", docs, docs))
        results[batch_size] = [decode_envelope(r) for r in responses]
        if batch_size > 1:  # the image rows and the text rows each share a padded batch
            assert len(calls) == 2 and all(call.padded for call in calls)
    for one, many in zip(results[1], results[4], strict=True):
        assert one["text"] == many["text"] and one["lens"]["top1_ids"] == many["lens"]["top1_ids"]
        assert many["entropy"] == pytest.approx(one["entropy"], abs=1e-6)
        assert many["answer_logprobs"] == pytest.approx(one["answer_logprobs"], abs=1e-6)
        for key in ("answer_logits", "answer_logits_capitalized"):
            for a, b in zip(one["lens"][key], many["lens"][key], strict=True):
                assert b == pytest.approx(a, abs=1e-6)


# --- scoring path (loglik column) ---------------------------------------------------------------------------


def test_every_scored_prompt_starts_with_exactly_one_bos(scored: Observed) -> None:
    bos = scored.wrapper.tokenizer.bos_token_id
    counts = [leading_bos(row, bos) for prefill in scored.scored_prefills for row in prefill.rows()]
    # An answer is scored in each of its surface forms (as written, capitalised): one or two rows per doc.
    assert len(scored.docs) <= len(counts) <= 2 * len(scored.docs)
    assert set(counts) == {_expected_bos(scored.wrapper)}


@pytest.mark.parametrize("name", SCORED)
def test_scored_batch_equals_one_prompt_at_a_time(
    name: str, tiny_checkpoints: Any, docs: list[dict[str, Any]]
) -> None:
    scores = {}
    for wrapper, batch_size in _batched(name, tiny_checkpoints[name], docs):
        scores[batch_size] = wrapper.loglikelihood(instances("loglikelihood", docs, docs))
    for (one, greedy_one), (many, greedy_many) in zip(scores[1], scores[4], strict=True):
        assert math.isfinite(one) and one < 0
        assert many == pytest.approx(one, abs=1e-6) and greedy_many == greedy_one


# --- refusals -----------------------------------------------------------------------------------------------

REFUSED = [
    (name, path)
    for path in support_matrix.WRAPPER_PATHS
    for name in support_matrix.cells(path)
    if MATRIX[name][path]["status"] == "refused"
]


@pytest.mark.parametrize(("name", "path"), REFUSED)
def test_refused_with_the_reason(
    name: str, path: str, tiny_checkpoints: Any, docs: list[dict[str, Any]]
) -> None:
    cell = MATRIX[name][path]
    options = dict(item.split("=", 1) for item in cell.get("model_args", "").split(",") if item)
    options = {k: v == "True" if v in ("True", "False") else v for k, v in options.items()}
    evidence = re.compile(cell["evidence"])
    when = cell.get("when", "load")
    if when == "load":
        with pytest.raises(ValueError, match=evidence):
            make_wrapper(tiny_checkpoints[name], docs, **options)
        return
    wrapper = make_wrapper(tiny_checkpoints[name], docs, **options)
    kind = "generate_until" if when == "generate" else "loglikelihood"
    with pytest.raises(ValueError, match=evidence):
        getattr(wrapper, kind)(instances(kind, docs[:1], docs))


TEXT_ROWS_ONLY = support_matrix.cells("modality_conflict_hf", "text rows only")


@pytest.mark.parametrize("name", TEXT_ROWS_ONLY)
def test_text_only_models_answer_text_rows_and_refuse_images(
    name: str, tiny_checkpoints: Any, docs: list[dict[str, Any]]
) -> None:
    wrapper = make_wrapper(tiny_checkpoints[name], docs)
    text_rows = [d for d in docs if not is_image_doc(d)]
    envelopes = [
        decode_envelope(r) for r in wrapper.generate_until(instances("generate_until", text_rows, docs))
    ]
    assert all(math.isfinite(e["entropy"]) for e in envelopes)
    scores = wrapper.loglikelihood(instances("loglikelihood", text_rows, docs))
    assert all(score < 0 for score, _ in scores)
    evidence = MATRIX[name]["modality_conflict_hf"]["evidence"]
    for kind in ("generate_until", "loglikelihood"):
        with pytest.raises(ValueError, match=evidence):
            getattr(wrapper, kind)(instances(kind, docs[:1], docs))
