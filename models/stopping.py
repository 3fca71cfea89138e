"""Early stop: a short answer ends once it has named its candidate, or at a stop string.

Stopping at the end of the first *word* would change what is parsed for models that answer in sentences
("The ball is blue."), so a sequence stops at the end of the first word that names a candidate by the
parser's own rules (:func:`~modality_conflict.metrics.answers.first_named_answer`), at end of sequence, or
once a stop string appears. What is parsed then differs from the full-length answer only when the text
would have gone on to name a second candidate ("red or blue"), an answer that is ambiguous either way;
``benchmarks/bench_sharing.py`` counts such changes on real SmolLM2 answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from transformers import StoppingCriteria

from modality_conflict.metrics.answers import first_named_answer, normalize_answer

__all__ = ["AnswerStop"]


class AnswerStop(StoppingCriteria):
    """``generate`` stopping criterion that also counts each row's decoding steps.

    Per row: the step at which it ended (an end token, or, with ``early``, an answer that names a candidate
    or hits a stop string) is kept in :attr:`steps`; with ``early`` the row stops there, else it only
    counts. Without ``candidates`` only stop strings stop early.
    """

    def __init__(
        self,
        tokenizer: Any,
        prompt_length: int,
        candidates: Sequence[str],
        until: Iterable[str],
        end_ids: Iterable[int],
        *,
        synonyms: Mapping[str, str] | None = None,
        early: bool = True,
    ) -> None:
        self.tokenizer = tokenizer
        self.prompt_length = prompt_length
        self.candidates = tuple(candidates)
        self.until = [u for u in until if u]
        self.end_ids = set(end_ids)
        self.synonyms = dict(synonyms or {})
        self.early = early
        self.steps: list[int | None] = []
        """Per row, the step (1 = the first generated token) at which it ended; None while it runs."""

    def answered(self, text: str) -> bool:
        """Whether a generated ``text`` is finished: a stop string, or a candidate named in a full word
        that is also what the whole text parses to (``"Blue red"`` is not finished)."""
        for stop in self.until:
            if stop in text:
                return True
        if not self.candidates:
            return False
        named = first_named_answer(text, self.candidates, synonyms=self.synonyms)
        return named is not None and normalize_answer(text, self.candidates, synonyms=self.synonyms) == named

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        step = input_ids.shape[1] - self.prompt_length
        if not self.steps:
            self.steps = [None] * input_ids.shape[0]
        last = input_ids[:, -1].tolist()
        for row, token in enumerate(last):
            if self.steps[row] is not None:
                continue
            if token in self.end_ids:
                self.steps[row] = step
            elif self.early:
                text = self.tokenizer.decode(input_ids[row, self.prompt_length :], skip_special_tokens=True)
                if self.answered(text):
                    self.steps[row] = step
        done = [self.early and s is not None for s in self.steps]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    def counted_steps(self, generated: int) -> list[int]:
        """Each row's decoding steps, once ``generate`` returned ``generated`` new columns."""
        return [generated if s is None else s for s in self.steps] if self.steps else []
