"""Both estimators sum an answer over the same surface forms: as written and capitalised.

The checkpoint is the tiny LLaVA with its language model rewired so that, after any prompt, nearly all of
its mass sits on " Blue" (some on " Green"), followed by the end of the turn, and the lowercase answers get
about e^-12 of it each. Scoring only the lowercase answers would pick among near-equal scores and disagree
with generation on every document; summing both forms, the loglikelihood task and the generation task must
both answer "blue" everywhere, through the real lmms-eval CLI.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from lmms_eval_runs import run_lmms_eval, samples

from modality_conflict.dataset_builder.constants import COLORS
from modality_conflict.mc_tasks.names import RECORD_KEY
from modality_conflict.models.hf_model import ModalityConflictHF

pytestmark = pytest.mark.slow

LIMIT = "24"
GENERATE, LOGLIK = "modality_conflict_color_quick", "modality_conflict_loglik"
BLUE_LOGIT, GREEN_LOGIT, EMBEDDING_SCALE = 12.0, 10.0, 30.0


def _rewire_to_capitalised_answers(source: Path, out: Path) -> dict[str, float]:
    """Copy the tiny LLaVA to ``out`` with the mass on " Blue" / " Green"; returns the expected first-token
    log-probabilities of each colour in either case (by hand, from the logits it was given)."""
    shutil.copytree(source, out)
    wrapper = ModalityConflictHF(pretrained=str(out), device="cpu", dtype="float32")
    capitalized = wrapper.answer_tokens(COLORS).capitalized
    model, eos = wrapper.model, wrapper.tokenizer.eos_token_id
    embeddings, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    width = embeddings.shape[1]
    with torch.no_grad():
        # Residual stream = its token's embedding (the layers' random outputs are small beside it): every
        # token puts the stream on axis 0, the two capitalised answers on axis 1. The final RMS norm makes
        # either axis sqrt(width) long, so a head row of (logit / sqrt(width)) on it gives that logit.
        embeddings.zero_()
        embeddings[:, 0] = EMBEDDING_SCALE
        for answer in ("blue", "green"):
            embeddings[capitalized[answer]] = 0.0
            embeddings[capitalized[answer], 1] = EMBEDDING_SCALE
        head.zero_()
        head[capitalized["blue"], 0] = BLUE_LOGIT / math.sqrt(width)
        head[capitalized["green"], 0] = GREEN_LOGIT / math.sqrt(width)
        head[eos, 1] = BLUE_LOGIT / math.sqrt(width)  # after either answer, the end of the turn
    model.save_pretrained(out)
    vocab = head.shape[0]
    norm = math.log(math.exp(BLUE_LOGIT) + math.exp(GREEN_LOGIT) + vocab - 2)
    expected = {c: math.log(2.0) - norm for c in COLORS}  # both forms at logit 0
    expected["blue"] = math.log(math.exp(BLUE_LOGIT) + 1.0) - norm
    expected["green"] = math.log(math.exp(GREEN_LOGIT) + 1.0) - norm
    return expected


@pytest.fixture(scope="module")
def rewired(tmp_path_factory: pytest.TempPathFactory, tiny_checkpoints: Any) -> tuple[Path, dict[str, float]]:
    out = tmp_path_factory.mktemp("capitalised") / "llava_capitalised"
    return out, _rewire_to_capitalised_answers(tiny_checkpoints["llava"], out)


@pytest.fixture(scope="module")
def records(
    rewired: tuple[Path, dict[str, float]], quick_dataset_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, dict[str, Any]]]:
    """``task -> row_id -> record`` of one lmms-eval run of the generation and the loglikelihood task."""
    folder, _ = rewired
    outputs = run_lmms_eval(
        tmp_path_factory.mktemp("capitalised_run"),
        model="modality_conflict_hf",
        model_args=f"pretrained={folder},device=cpu,dtype=float32",
        tasks=f"{GENERATE},{LOGLIK}",
        data_dir=quick_dataset_dir,
        extra=["--limit", LIMIT],
        batch_size=4,
    )
    return {
        task: {s[RECORD_KEY]["row_id"]: s[RECORD_KEY] for s in samples(outputs, task)}
        for task in (GENERATE, LOGLIK)
    }


def test_generation_and_loglik_give_the_same_answer_on_every_document(
    records: dict[str, dict[str, dict[str, Any]]],
) -> None:
    generated, scored = records[GENERATE], records[LOGLIK]
    assert len(generated) == len(scored) == int(LIMIT)
    assert set(generated) == set(scored)
    assert {r["answer"] for r in generated.values()} == {"blue"}
    assert {r["answer"] for r in scored.values()} == {"blue"}
    for row_id, record in generated.items():
        assert record["raw_response"].strip() == "Blue", row_id


def test_both_estimators_sum_the_same_two_forms(
    records: dict[str, dict[str, dict[str, Any]]], rewired: tuple[Path, dict[str, float]]
) -> None:
    _, expected = rewired
    for task in (GENERATE, LOGLIK):
        for record in records[task].values():
            scores = dict(zip(record["answer_choices"], record["answer_scores"], strict=True))
            # The layers' small random outputs move the logits a little off the designed values.
            for colour, value in expected.items():
                assert scores[colour] == pytest.approx(value, abs=0.05), (task, colour)
    # The two answers' shares as the loglikelihood task reports them: P(Blue or blue) over the set.
    record = next(iter(records[LOGLIK].values()))
    shares = np.exp(record["answer_scores"]) / np.exp(record["answer_scores"]).sum()
    assert shares[record["answer_choices"].index("blue")] == pytest.approx(
        1 / (1 + math.exp(GREEN_LOGIT - BLUE_LOGIT)), abs=0.01
    )
