"""Scoring: the exact log-probability of a continuation after the generation prompt (``loglikelihood``)."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from typing import Any

import torch


def continuation_token_counts(
    encode: Callable[[list[str], list[list[Any]]], Any],
    full: Any,
    prompts: Sequence[str],
    images: Sequence[list[Any]],
) -> list[int]:
    """Per row, how many tokens of ``prompt + continuation`` lie past the tokens of ``prompt`` alone.

    A token merged across the boundary counts as continuation.
    """
    ids, mask = full["input_ids"], full["attention_mask"]
    counts = []
    for row, (prompt, row_images) in enumerate(zip(prompts, images, strict=True)):
        context = encode([prompt], [row_images])["input_ids"][0].tolist()
        real = ids[row][mask[row].bool()].tolist()
        common = 0
        for a, b in zip(real, context, strict=False):
            if a != b:
                break
            common += 1
        counts.append(len(real) - common)
    return counts


@torch.no_grad()
def score_continuations(
    model: Any,
    encode: Callable[[list[str], list[list[Any]]], Any],
    prompts: Sequence[str],
    continuations: Sequence[str],
    images: Sequence[list[Any]],
    *,
    check_answer_position: Callable[[torch.Tensor], None] | None = None,
) -> list[tuple[float, bool]]:
    """``(sum of the continuation tokens' log-probabilities in nats, whether greedy decoding gives them)``.

    ``encode(texts, images)`` is the wrapper's left-padding processor call; ``check_answer_position`` gets
    the ``(1, vocab)`` log-probabilities that predict each continuation's first token and may refuse.
    """
    full = encode([p + c for p, c in zip(prompts, continuations, strict=True)], list(images))
    ids = full["input_ids"]
    n_conts = continuation_token_counts(encode, full, prompts, images)
    keep = max(n_conts) + 1
    # Only the positions that predict continuation tokens need vocabulary logits.
    if "logits_to_keep" in inspect.signature(model.forward).parameters:
        logits = model(**full, logits_to_keep=keep).logits
    else:
        logits = model(**full).logits[:, -keep:]
    predicting = logits[:, :-1].double()  # position t predicts token t + 1
    out = []
    for row, n_cont in enumerate(n_conts):
        if n_cont <= 0:
            out.append((0.0, True))
            continue
        # Left padding: the continuation is the last n_cont tokens of the row.
        targets = ids[row, -n_cont:].to(predicting.device)
        row_lp = torch.log_softmax(predicting[row, -n_cont:], dim=-1)
        if check_answer_position is not None:
            check_answer_position(row_lp[:1])
        picked = row_lp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        greedy = bool((row_lp.argmax(dim=-1) == targets).all())
        out.append((float(picked.double().sum()), greedy))
    return out


def answer_surface_forms(continuation: str, answers: Sequence[str]) -> list[str]:
    """The spellings whose probabilities add up to a candidate answer's: as written and capitalised,
    the event the generation estimator measures too; another continuation is scored as written."""
    stripped = continuation.lstrip()
    if stripped not in answers:
        return [continuation]
    lead = continuation[: len(continuation) - len(stripped)]
    return list(dict.fromkeys((continuation, lead + stripped.capitalize())))


def combine_surface_forms(scored: Sequence[tuple[float, bool]]) -> tuple[float, bool]:
    """One answer's ``(log-probability, greedy)`` from its forms': the log of the summed probabilities
    (the forms are distinct token sequences, so their events are disjoint), greedy when any form is."""
    total = torch.logsumexp(torch.tensor([score for score, _ in scored], dtype=torch.float64), dim=0)
    return float(total), any(greedy for _, greedy in scored)
