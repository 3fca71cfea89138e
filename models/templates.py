"""What a chat template is allowed to do to the benchmark's prompts, decided once at load.

Every render sees one fixed date, so an item is asked alike every day; ``enable_thinking`` switches are
turned off, and a ``<think>`` block open at the answer position is refused (the entropy would measure the
reasoning), as are candidates whose first tokens collapse and prompts with two leading BOS tokens.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from modality_conflict.models.errors import ModelArgumentError

PROMPT_DATE = datetime(2025, 1, 1)
"""The date chat templates see (``strftime_now``, ``date_string``) unless ``prompt_date=`` says otherwise."""

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"

_clock_lock = threading.Lock()


def parse_prompt_date(value: str | datetime | None) -> datetime:
    """A ``prompt_date=`` model argument (``YYYY-MM-DD``); the default is :data:`PROMPT_DATE`."""
    if value is None or value == "":
        return PROMPT_DATE
    if isinstance(value, datetime):
        return value
    try:
        return datetime.strptime(str(value), "%Y-%m-%d")
    except ValueError:
        raise ModelArgumentError(f"prompt_date must be YYYY-MM-DD, got {value!r}") from None


@contextlib.contextmanager
def pinned_template_clock(day: datetime) -> Iterator[None]:
    """Let chat templates' ``strftime_now`` see ``day``: a callable cannot be a template variable, so
    transformers' chat-template clock is swapped for the duration of the render, under a lock."""
    from transformers.utils import chat_template_utils

    class _Clock(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> datetime:  # noqa: ARG003
            return day

    with _clock_lock:
        original = chat_template_utils.datetime
        chat_template_utils.datetime = _Clock
        try:
            yield
        finally:
            chat_template_utils.datetime = original


def template_source(*owners: Any) -> str:
    """The chat template text of the processor and the tokenizer (named templates joined)."""
    parts = []
    for owner in owners:
        template = getattr(owner, "chat_template", None)
        if isinstance(template, str):
            parts.append(template)
        elif isinstance(template, Mapping):
            parts.extend(str(t) for t in template.values())
    return "\n".join(parts)


def template_switches(source: str, day: datetime) -> dict[str, Any]:
    """Template variables that make prompts fixed and reasoning-free, where the template reads them."""
    switches: dict[str, Any] = {}
    if "enable_thinking" in source:
        switches["enable_thinking"] = False  # hybrid reasoning templates: answer at once
    if "date_string" in source:
        switches["date_string"] = day.strftime("%d %b %Y")  # Llama-3 templates
    return switches


def check_no_open_reasoning(name: str, probe_prompt: str, answer_prefix: str) -> None:
    """Refuse a template whose generation prompt leaves a ``<think>`` block open at the answer position."""
    opened = probe_prompt.rfind(THINK_OPEN)
    if (opened >= 0 and probe_prompt.rfind(THINK_CLOSE) < opened) or THINK_OPEN in answer_prefix:
        raise ModelArgumentError(
            f"{name}: the chat template opens a reasoning block ({THINK_OPEN}) at the answer position and "
            "has no enable_thinking switch; the first-token entropy would measure the reasoning, not the "
            "answer. Use the checkpoint's non-reasoning (Instruct) variant"
        )


def check_distinct_first_tokens(
    name: str, first_tokens: Mapping[str, int], decode: Any, answer_prefix: str
) -> None:
    """Refuse when two candidate answers start with the same token after the generation prompt."""
    if len(set(first_tokens.values())) == len(first_tokens):
        return
    shown = {answer: decode(token) for answer, token in first_tokens.items()}
    if len(first_tokens) > 2 and len(set(first_tokens.values())) == 1:
        raise ModelArgumentError(
            f"{name}: every answer's first token after the generation prompt is the same ({shown}); the chat "
            f"template's answer prefix {answer_prefix!r} does not end where the answer starts, so answer "
            "log-probabilities would be meaningless"
        )
    raise ModelArgumentError(
        f"{name}: some answers share their first token after the generation prompt ({shown}), so their "
        "first-token log-probabilities cannot be told apart"
    )


def adds_special_tokens(prompt: str, bos_token: str | None) -> bool:
    """Whether to encode rendered prompts with the tokenizer's special tokens: not when the template wrote
    the BOS itself."""
    return not (bos_token and prompt.startswith(bos_token))


def leading_bos(ids: Sequence[int], bos_token_id: int | None) -> int:
    """How many BOS ids open ``ids`` (the leading run only: a ChatML BOS ``<|im_start|>`` opens each turn)."""
    if bos_token_id is None:
        return 0
    return next((i for i, token in enumerate(ids) if token != bos_token_id), len(ids))


def check_one_bos(name: str, ids: Sequence[int], bos_token_id: int | None) -> None:
    """Refuse an encoded prompt that starts with more than one BOS token."""
    count = leading_bos(ids, bos_token_id)
    if count > 1:
        raise ModelArgumentError(
            f"{name}: the prompt starts with {count} BOS tokens after encoding; the chat template and the "
            "processor both add one"
        )


def template_preamble(rendered: str, user_text: str) -> str:
    """What the template wrote before the user's text: the system prompt (default or given) and markup."""
    position = rendered.find(user_text)
    return rendered[:position] if position >= 0 else rendered
