"""Numbers an lmms-eval run must reproduce, computed here straight from a checkpoint's logits.

The checkpoint is loaded as ``modality_conflict_hf`` loads it (its dtype, its family fixes) and the prompt is
the wrapper's rendering (whose BOS, date and reasoning handling ``tests/models/test_conformance.py``
checks); everything after that is one plain forward pass per prompt here: the processor's tensors, the
model's logits, ``log_softmax``, the entropy. No batching, no padding, no generation, no envelope.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from modality_conflict.mc_tasks import task_logic
from modality_conflict.models.hf_model import ModalityConflictHF


@dataclass(frozen=True)
class Prompt:
    """One document's generation prompt as the model receives it."""

    text: str
    images: list[Any]


def prompt_of(wrapper: ModalityConflictHF, doc: Mapping[str, Any]) -> Prompt:
    """The task's text and images of ``doc`` (its own ``doc_to_text`` / ``doc_to_visual``), rendered."""
    images = task_logic.doc_to_visual(doc)
    return Prompt(wrapper.chat.prompt(task_logic.doc_to_text(doc), len(images)), images)


def _inputs(wrapper: ModalityConflictHF, text: str, images: list[Any]) -> Any:
    options = {"return_tensors": "pt", "add_special_tokens": wrapper.add_special_tokens}
    if images:
        inputs = wrapper.processor(text=[text], images=[images], **options)
    else:
        inputs = wrapper.processor(text=[text], **options)
    dtype = wrapper.model.dtype
    return {
        key: value.to(dtype) if torch.is_floating_point(value) else value
        for key, value in inputs.items()
        if isinstance(value, torch.Tensor)
    }


@torch.no_grad()
def log_probs(wrapper: ModalityConflictHF, text: str, images: list[Any]) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, log-probabilities at every position)`` of one unpadded prompt, in float64."""
    inputs = _inputs(wrapper, text, images)
    logits = wrapper.model(**inputs).logits[0].double()
    return inputs["input_ids"][0], torch.log_softmax(logits, dim=-1)


def next_token_entropy(wrapper: ModalityConflictHF, prompt: Prompt) -> tuple[float, list[int]]:
    """The full-vocabulary entropy (nats) of the first answer token, and the token ids that reach the
    maximum probability (more than one on a tie)."""
    _, lp = log_probs(wrapper, prompt.text, prompt.images)
    last = lp[-1]
    entropy = float(-(last.exp() * last).sum())
    top = torch.nonzero(last >= last.max() - 1e-6).flatten().tolist()
    return entropy, top


def continuation_log_prob(wrapper: ModalityConflictHF, prompt: Prompt, continuation: str) -> float:
    """log P(continuation | prompt) in nats: the sum over the tokens of ``prompt + continuation`` past the
    tokens of the prompt alone."""
    context_ids, _ = log_probs(wrapper, prompt.text, prompt.images)
    ids, lp = log_probs(wrapper, prompt.text + continuation, prompt.images)
    common = 0
    for a, b in zip(ids.tolist(), context_ids.tolist(), strict=False):
        if a != b:
            break
        common += 1
    assert common < len(ids), f"{continuation!r} adds no token to the prompt"
    return float(sum(lp[t - 1, ids[t]] for t in range(common, len(ids))))


def answer_log_prob(wrapper: ModalityConflictHF, prompt: Prompt, answer: str) -> float:
    """log P(answer | prompt) as the README defines it: the probabilities of its two surface forms, as
    written and capitalised (each after the template's answer prefix), added."""
    forms = dict.fromkeys((answer, answer.capitalize()))
    logs = [continuation_log_prob(wrapper, prompt, wrapper.answer_prefix + form) for form in forms]
    top = max(logs)
    return top + math.log(sum(math.exp(value - top) for value in logs))


def entropy_of_scores(scores: Sequence[float]) -> float:
    """The entropy (nats) of the distribution that normalises ``exp(scores)`` (log-sum-exp, by hand)."""
    top = max(scores)
    log_total = top + math.log(sum(math.exp(s - top) for s in scores))
    return -sum(math.exp(s - log_total) * (s - log_total) for s in scores)
