"""Chat rendering: the prompt a model sees, where its answer starts, and the answers' first tokens.

Every render sees the same date and template switches (``templates``): a prompt depends on the document only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from modality_conflict.models.errors import ModelArgumentError
from modality_conflict.models.loading import DEFAULT_IMAGE_TOKEN
from modality_conflict.models.templates import (
    PROMPT_DATE,
    check_distinct_first_tokens,
    pinned_template_clock,
    template_preamble,
    template_source,
    template_switches,
)

PROBE_REQUEST = "Say a word."
"""The user turn rendered to find the template's answer prefix and the answers' first tokens."""


def answer_prefix(render: Callable[[list[dict[str, Any]], bool], str], probe: str = "red") -> str:
    """What the chat template puts between the generation prompt and the answer text.

    The text between the generation prompt and ``probe`` in a render with an assistant turn (``" "`` after
    LLaVA's ``"ASSISTANT:"``, ``""`` after ChatML's); when the renders disagree, a space unless the
    generation prompt ends in whitespace.
    """
    user = {"role": "user", "content": [{"type": "text", "text": PROBE_REQUEST}]}
    prompt = render([user], True)
    full = render([user, {"role": "assistant", "content": [{"type": "text", "text": probe}]}], False)
    if full.startswith(prompt):
        position = full.find(probe, len(prompt))
        if position >= 0:
            return full[len(prompt) : position]
    return "" if prompt[-1:].isspace() else " "


def answer_first_token_ids(tokenizer: Any, prompt: str, prefix: str, words: Iterable[str]) -> dict[str, int]:
    """The first token id of each answer word as the model would emit it right after ``prompt``.

    Taken from ``prompt + prefix + word``, so tokenisers that mark word starts (``▁``, ``Ġ``) give the form
    that actually follows the assistant prefix.
    """
    base = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    ids: dict[str, int] = {}
    for word in words:
        full = tokenizer(prompt + prefix + word, add_special_tokens=False)["input_ids"]
        if full[: len(base)] == base and len(full) > len(base):
            ids[word] = int(full[len(base)])
        else:  # a merge across the boundary: fall back to the word on its own
            ids[word] = int(tokenizer(prefix + word, add_special_tokens=False)["input_ids"][0])
    return ids


def read_system_prompt(value: str) -> str:
    """A ``system_prompt=`` model argument: the text itself, or the content of the file it names."""
    path = Path(value)
    try:
        if path.is_file():
            return path.read_text(encoding="utf-8").strip()
    except (OSError, ValueError):  # a long prompt is not a valid path on some systems
        pass
    return value


@dataclass(frozen=True)
class AnswerTokens:
    """First-token ids (``answer -> id``) of one candidate answer set (in the task's order), as written
    and capitalised."""

    answers: tuple[str, ...]
    lower: dict[str, int]
    capitalized: dict[str, int]

    def case_insensitive_ids(self, answer: str) -> list[int]:
        """The distinct first tokens of ``answer`` in either case."""
        return sorted({self.lower[answer], self.capitalized[answer]})


class ChatRenderer:
    """Renders the benchmark's single-turn prompts with a checkpoint's chat template (the tokenizer's
    for a text-only model); ``prompt_date`` is what ``strftime_now`` and ``date_string`` see."""

    def __init__(
        self,
        processor: Any,
        tokenizer: Any,
        *,
        text_only: bool,
        image_token: str,
        system_prompt: str | None,
        name: str,
        prompt_date: datetime = PROMPT_DATE,
    ) -> None:
        self.processor = processor
        self.tokenizer = tokenizer
        self.text_only = text_only
        self.image_token = image_token
        self.system_prompt = system_prompt
        self.name = name
        self.prompt_date = prompt_date
        self.template_kwargs = template_switches(template_source(processor, tokenizer), prompt_date)
        """Template variables passed to every render (``enable_thinking``, ``date_string``)."""
        self.answer_prefix = answer_prefix(self.render)
        self.probe_prompt = self.render([self.user_message(PROBE_REQUEST, 0)], True)
        """A text-only generation prompt, for the checks made at load."""
        self._answer_tokens: dict[tuple[str, ...], AnswerTokens] = {}

    def user_message(self, text: str, n_images: int) -> dict[str, Any]:
        """A user turn: ``n_images`` image placeholders, then the text."""
        content: list[dict[str, Any]] = [{"type": "image"} for _ in range(n_images)]
        content.append({"type": "text", "text": text})
        return {"role": "user", "content": content}

    def render(self, messages: list[dict[str, Any]], add_generation_prompt: bool) -> str:
        """The chat template applied to ``messages`` (with the system prompt, when there is one)."""
        if self.system_prompt:
            messages = [
                {"role": "system", "content": [{"type": "text", "text": self.system_prompt}]},
                *messages,
            ]
        template_owner = self.processor if getattr(self.processor, "chat_template", None) else None
        if template_owner is not None and not self.text_only:
            with pinned_template_clock(self.prompt_date):
                return template_owner.apply_chat_template(
                    messages,
                    add_generation_prompt=add_generation_prompt,
                    tokenize=False,
                    **self.template_kwargs,
                )
        if getattr(self.tokenizer, "chat_template", None) is None:
            raise ModelArgumentError(
                f"{self.name}: neither the processor nor the tokenizer has a chat template"
            )
        # Tokenizer templates expect string content: images become the image token before the text.
        flat = []
        for message in messages:
            parts = message["content"]
            text = "".join(
                f"{self.image_token}\n" if part["type"] == "image" else part.get("text", "") for part in parts
            )
            flat.append({"role": message["role"], "content": text})
        with pinned_template_clock(self.prompt_date):
            return self.tokenizer.apply_chat_template(
                flat, add_generation_prompt=add_generation_prompt, tokenize=False, **self.template_kwargs
            )

    def user_text(self, context: str) -> str:
        """A task's context as the user turn's text."""
        # Images always go first, as placeholders of the chat template; stray image tokens in the task's
        # text would be counted twice, so they are removed.
        return context.replace(self.image_token, "").replace(DEFAULT_IMAGE_TOKEN, "").strip()

    def prompt(self, context: str, n_images: int) -> str:
        """The generation prompt of a task's context with ``n_images`` images."""
        return self.render([self.user_message(self.user_text(context), n_images)], True)

    def prompt_facts(self, prompt: str, context: str) -> dict[str, str]:
        """What a rendered prompt holds beyond the task's text: the template's date and its preamble (the
        system prompt and markup written before the user's text)."""
        return {
            "date": self.prompt_date.strftime("%Y-%m-%d"),
            "preamble": template_preamble(prompt, self.user_text(context)),
        }

    def answer_tokens(self, answers: Sequence[str]) -> AnswerTokens:
        """First-token ids of a candidate set as they follow the answer prefix (computed once per set);
        two candidates that start with the same token are a ``ModelArgumentError``."""
        key = tuple(str(a) for a in answers)
        cached = self._answer_tokens.get(key)
        if cached is None:
            lower = answer_first_token_ids(self.tokenizer, self.probe_prompt, self.answer_prefix, key)
            check_distinct_first_tokens(
                self.name, lower, lambda token: self.tokenizer.decode([token]), self.answer_prefix
            )
            upper = answer_first_token_ids(
                self.tokenizer, self.probe_prompt, self.answer_prefix, [a.capitalize() for a in key]
            )
            cached = AnswerTokens(key, lower, {a: upper[a.capitalize()] for a in key})
            self._answer_tokens[key] = cached
        return cached
