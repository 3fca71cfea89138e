"""The early stop inside a real ``generate``: each row ends once its answer names a candidate."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForImageTextToText, AutoTokenizer, StoppingCriteriaList

from modality_conflict.dataset_builder.constants import COLOR_SYNONYMS, COLORS
from modality_conflict.models.stopping import AnswerStop

SCRIPTS = (
    " The ball is blue. The sky is red",  # a sentence: stops after the full stop
    " Red, not blue.",  # the first colour, once its word has ended
    " the sky",  # never names one
    " Blue red blue red blue red blue red",  # "Blue red" parses to no single colour: it goes on
)
MAX_NEW = 8


def _generate(folder: Path, *, early: bool) -> tuple[list[list[int]], AnswerStop, list[list[int]]]:
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForImageTextToText.from_pretrained(folder).eval()
    # Each script goes on long enough for every step (BPE merges words, so scripts are short in tokens).
    scripts = [tokenizer(s + " the sky" * MAX_NEW, add_special_tokens=False)["input_ids"] for s in SCRIPTS]
    prompt = tokenizer(["USER: What color is the ball? ASSISTANT:"] * len(scripts), return_tensors="pt")
    width = prompt["input_ids"].shape[1]
    eos = {tokenizer.eos_token_id, tokenizer.pad_token_id or tokenizer.eos_token_id}
    stop = AnswerStop(tokenizer, width, COLORS, ["\n\n"], eos, synonyms=COLOR_SYNONYMS, early=early)

    def forced(row: int, ids: torch.Tensor) -> list[int]:  # the scripted token of this step
        return [scripts[row][len(ids) - width]]

    with torch.no_grad():
        out = model.generate(
            **prompt,
            max_new_tokens=MAX_NEW,
            do_sample=False,
            prefix_allowed_tokens_fn=forced,
            stopping_criteria=StoppingCriteriaList([stop]),
            pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
        )
    return out[:, width:].tolist(), stop, scripts


def _steps_until(tokenizer: object, script: list[int], text: str) -> int:
    for count in range(1, len(script) + 1):
        if tokenizer.decode(script[:count]) == text:  # type: ignore[attr-defined]
            return count
    raise AssertionError(f"{text!r} is no prefix of the script")


def test_rows_stop_once_their_answer_is_named(tiny_llava_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_llava_dir)
    new, stop, scripts = _generate(tiny_llava_dir, early=True)
    steps = stop.counted_steps(len(new[0]))
    assert steps[0] == _steps_until(tokenizer, scripts[0], " The ball is blue.")
    assert steps[1] == _steps_until(tokenizer, scripts[1], " Red,")
    assert steps[2] == MAX_NEW and steps[3] == MAX_NEW
    for row, count in enumerate(steps):
        assert new[row][:count] == scripts[row][:count]


def test_without_the_early_stop_every_row_runs_to_the_end(tiny_llava_dir: Path) -> None:
    new, stop, scripts = _generate(tiny_llava_dir, early=False)
    assert stop.counted_steps(len(new[0])) == [MAX_NEW] * len(SCRIPTS)
    assert all(row == script[:MAX_NEW] for row, script in zip(new, scripts, strict=True))


def test_stop_strings_end_a_row() -> None:
    stop = AnswerStop(None, 0, COLORS, ["\n\n"], set())
    assert stop.answered("maybe\n\nred") and not stop.answered("maybe red")
    assert stop.answered("maybe red.") and not stop.answered("Blue red ")
    assert not AnswerStop(None, 0, (), [], set()).answered("red.")
