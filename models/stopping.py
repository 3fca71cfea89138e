"""Early stop: a short answer ends once it has named its candidate, or at a stop string.

Stopping after the first *word* would change what is parsed for answers in sentences ("The ball is
blue."), so a row stops after the first word that names a candidate by the parser's own rules. The parse
then differs only where the text would have named a second candidate, an answer ambiguous either way
(``benchmarks/bench_sharing.py`` counts such changes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
from transformers import StoppingCriteria

from modality_conflict.metrics.answers import first_named_answer, normalize_answer

__all__ = ["AnswerStop"]


class AnswerStop(StoppingCriteria):
    """``generate`` stopping criterion that also counts each row's decoding steps (:attr:`steps`); with
    ``early`` a row also stops once it names a candidate or hits a stop string."""

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
