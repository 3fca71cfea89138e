"""Generation: one ``generate`` call per batch gives the answer, its entropy and (optionally) the logit lens.

The first step of ``generate`` is the prompt's forward pass: its raw logits give the entropy and the
candidates' first-token log-probabilities, and the lens hooks record the same pass.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
import transformers
from transformers import StoppingCriteriaList

from modality_conflict.metrics.entropy import full_vocab_entropy
from modality_conflict.models.chat import AnswerTokens
from modality_conflict.models.envelope import cut_at_stops, encode_envelope
from modality_conflict.models.errors import ModelArgumentError
from modality_conflict.models.logit_lens import LastPositionRecorder, LensModules, lens_records
from modality_conflict.models.stopping import AnswerStop

GENERATION_KEYS = frozenset(
    {"until", "max_new_tokens", "do_sample", "temperature", "top_p", "top_k", "num_beams"}
)
"""The generation arguments the wrapper honours; others are ignored with a warning."""

ENTROPY_ESTIMATOR = "full_vocab"

REASONING_PROBABILITY = 0.5
"""A model whose first answer token is its reasoning opener with at least this probability is refused."""

# generate()'s name for a ready key/value cache: transformers 5 takes ``cache``, 4.x ``past_key_values``.
CACHE_ARGUMENT = "cache" if int(transformers.__version__.split(".")[0]) >= 5 else "past_key_values"


def generation_settings(
    gen_kwargs: Mapping[str, Any], *, default_max_new_tokens: int
) -> tuple[dict[str, Any], list[str]]:
    """``generate`` keyword arguments and the stop strings for a task's generation arguments."""
    until = gen_kwargs.get("until")
    if until is None:
        until = []
    elif isinstance(until, str):
        until = [until]
    elif not isinstance(until, (list, tuple)):
        raise ModelArgumentError(f"'until' must be a string or a list of strings, got {type(until).__name__}")
    if int(gen_kwargs.get("num_beams", 1) or 1) != 1:
        raise ModelArgumentError("modality_conflict_hf supports num_beams=1 only (first-token entropy)")
    temperature = float(gen_kwargs.get("temperature", 0.0) or 0.0)
    do_sample = bool(gen_kwargs.get("do_sample", temperature > 0))
    if do_sample and temperature == 0.0:
        if "temperature" in gen_kwargs:
            do_sample = False  # lmms-eval convention: temperature 0 means greedy
        else:
            temperature = 1.0
    settings: dict[str, Any] = {
        "max_new_tokens": int(gen_kwargs.get("max_new_tokens", default_max_new_tokens)),
        "do_sample": do_sample,
    }
    if do_sample:
        settings["temperature"] = temperature
        if gen_kwargs.get("top_p") is not None:
            settings["top_p"] = float(gen_kwargs["top_p"])
        if gen_kwargs.get("top_k") is not None:
            settings["top_k"] = int(gen_kwargs["top_k"])
    else:
        # Neutralise sampling defaults of the checkpoint's generation config.
        settings.update(temperature=None, top_p=None, top_k=None)
    return settings, [u for u in until if u]


def eos_token_ids(model: Any, tokenizer: Any) -> set[int]:
    """Every end-of-sequence id: the tokenizer's and the generation config's."""
    ids: set[int] = set()
    generation_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in (tokenizer.eos_token_id, generation_eos):
        if isinstance(value, int):
            ids.add(value)
        elif isinstance(value, (list, tuple)):
            ids.update(int(v) for v in value)
    return ids


def decode_answer(tokenizer: Any, ids: torch.Tensor, until: Iterable[str], eos: set[int]) -> str:
    """The text of generated ids up to the first end token, cut at the first stop string."""
    kept = []
    for token in ids.tolist():
        if token in eos or token == tokenizer.pad_token_id:
            break
        kept.append(token)
    return cut_at_stops(tokenizer.decode(kept, skip_special_tokens=True), until)


def answer_logprobs(log_probs: torch.Tensor, answers: AnswerTokens) -> list[dict[str, float]]:
    """Case-insensitive first-token log-probabilities of each candidate, one dict per batch row."""
    # One gather for every candidate: (rows, answers, 2) ids, a form that repeats the other one masked out.
    forms = [answers.case_insensitive_ids(answer) for answer in answers.answers]
    ids = torch.tensor([[f[0], f[-1]] for f in forms], device=log_probs.device)
    picked = log_probs[:, ids]
    repeated = torch.tensor([len(f) == 1 for f in forms], device=log_probs.device)
    picked[:, :, 1] = picked[:, :, 1].masked_fill(repeated, float("-inf"))
    table = torch.logsumexp(picked, dim=-1).tolist()
    return [
        {a: (v if math.isfinite(v) else -1e30) for a, v in zip(answers.answers, row, strict=True)}
        for row in table
    ]


def _generate(
    model: Any, tokenizer: Any, inputs: Any, settings: Mapping[str, Any], eos: set[int], **extra: Any
) -> Any:
    return model.generate(
        **inputs,
        **settings,
        return_dict_in_generate=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=sorted(eos) or None,
        **extra,
    )


@torch.no_grad()
def generate_texts(
    model: Any, tokenizer: Any, inputs: Any, settings: Mapping[str, Any], until: list[str]
) -> list[str]:
    """One ``generate`` call for a batch of another task's prompts; the decoded answers, plain text."""
    eos = eos_token_ids(model, tokenizer)
    output = _generate(model, tokenizer, inputs, settings, eos)
    new_tokens = output.sequences[:, inputs["input_ids"].shape[1] :]
    return [decode_answer(tokenizer, row, until, eos) for row in new_tokens]


def check_not_reasoning(log_probs: torch.Tensor, reasoning_token_id: int | None, tokenizer: Any) -> None:
    """Refuse a model that opens a reasoning block itself at the answer position (GLM-4.1V-Thinking style)."""
    if reasoning_token_id is None:
        return
    probability = float(log_probs[:, reasoning_token_id].exp().max())
    if probability >= REASONING_PROBABILITY:
        token = tokenizer.decode([reasoning_token_id])
        raise ModelArgumentError(
            f"the model opens a reasoning block ({token}) itself at the answer position (probability "
            f"{probability:.2f}); the first-token entropy would measure the reasoning, not the answer. Use "
            "the checkpoint's non-reasoning variant, or a chat template with an enable_thinking switch"
        )


@torch.no_grad()
def generate_envelopes(
    model: Any,
    tokenizer: Any,
    inputs: Any,
    settings: Mapping[str, Any],
    until: list[str],
    *,
    answers: AnswerTokens | None,
    lens_modules: LensModules | None,
    prompt_facts: list[dict[str, Any]] | None = None,
    reasoning_token_id: int | None = None,
    cache: Any = None,
    early_stop: bool = True,
    synonyms: Mapping[str, str] | None = None,
) -> list[str]:
    """One ``generate`` call for a batch (left-padded); one response envelope per row.

    A ``cache`` holds the first columns of ``inputs`` (a forked image prefix); ``early_stop`` stops a row once
    its answer names a candidate, and steps are counted either way.
    """
    recorder = LastPositionRecorder(lens_modules) if lens_modules is not None else None
    eos = eos_token_ids(model, tokenizer)
    prompt_length = inputs["input_ids"].shape[1]
    stop = AnswerStop(
        tokenizer,
        prompt_length,
        answers.answers if answers is not None else (),
        until,
        eos | {tokenizer.pad_token_id},
        synonyms=synonyms,
        early=early_stop,
    )
    extra = {CACHE_ARGUMENT: cache} if cache is not None else {}
    with recorder if recorder is not None else contextlib.nullcontext():
        output = _generate(
            model,
            tokenizer,
            inputs,
            settings,
            eos,
            output_logits=True,
            stopping_criteria=StoppingCriteriaList([stop]),
            **extra,
        )
    # The raw (unprocessed) logits of the first step are the prompt pass's answer-position logits.
    first = output.logits[0].double()
    log_probs = torch.log_softmax(first, dim=-1)
    check_not_reasoning(log_probs, reasoning_token_id, tokenizer)
    entropies = full_vocab_entropy(first.cpu().numpy()).values
    logprobs = answer_logprobs(log_probs, answers) if answers is not None else None
    lens = None
    if recorder is not None:
        layer_indices, states = recorder.recorded()
        lens = lens_records(
            lens_modules,
            states,
            answers.lower if answers is not None else {},
            lambda token: tokenizer.decode([token]),
            extra_answer_token_ids={"capitalized": answers.capitalized if answers is not None else {}},
            layer_indices=layer_indices,
        )
    new_tokens = output.sequences[:, prompt_length:]
    steps = stop.counted_steps(new_tokens.shape[1]) or [new_tokens.shape[1]] * new_tokens.shape[0]
    envelopes = []
    for row in range(new_tokens.shape[0]):
        entropy = float(entropies[row])
        envelopes.append(
            encode_envelope(
                text=decode_answer(tokenizer, new_tokens[row], until, eos),
                entropy=entropy if math.isfinite(entropy) else None,
                estimator=ENTROPY_ESTIMATOR,
                answer_logprobs=logprobs[row] if logprobs is not None else None,
                lens=lens[row] if lens is not None else None,
                prompt=prompt_facts[row] if prompt_facts is not None else None,
                decode_steps=steps[row],
            )
        )
    return envelopes
