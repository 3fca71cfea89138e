"""Answering the prompts that show the same images from one shared prefix (the image encoded once),
in calls that fit ``batch_size``, ``max_batch_tokens`` and the attention window."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from modality_conflict.models.chat import AnswerTokens
from modality_conflict.models.image_groups import same_images
from modality_conflict.models.sharing import (
    PrefixSplit,
    continuation_inputs,
    fork_cache,
    prefill,
    split_encoded,
    split_prompts,
)


def same_image_runs(members: list[int], visuals: list[list[Any]]) -> list[tuple[list[int], list[Any]]]:
    """``members`` split into runs that show exactly the same images (in first-seen order)."""
    runs: list[tuple[list[int], list[Any]]] = []
    for index, images in zip(members, visuals, strict=True):
        for indices, shown in runs:
            if same_images(shown, images):
                indices.append(index)
                break
        else:
            runs.append(([index], images))
    return runs


class SharedPrefixAnswers:
    """Shared-prefix answering; the wrapper provides the model, tokenizer, settings, ``_generate_batch``."""

    # Provided by the wrapper.
    _model: Any
    _tokenizer: Any
    _device: Any
    stats: Any
    sharing: Any
    share_images: bool
    max_batch_tokens: int | None
    add_special_tokens: bool
    n_model_calls: int
    _splice_trusted: bool
    _splice_checked: bool
    _added_token_ids: Any

    def _rows_per_call(self, tokens_per_row: int) -> int:
        """Rows of one model call: ``batch_size``, fewer when ``max_batch_tokens`` asks for it."""
        if self.max_batch_tokens is None:
            return self.batch_size
        return max(1, min(self.batch_size, self.max_batch_tokens // max(tokens_per_row, 1)))

    def _shared_group(
        self,
        prompts: list[str],
        images: list[Any],
        settings: dict[str, Any],
        until: list[str],
        answers: AnswerTokens | None,
        facts: list[dict[str, Any]],
    ) -> Iterator[tuple[list[int], list[str]]] | None:
        """Envelopes of prompts that show the same ``images``, continuing one shared prefix: (rows of
        ``prompts``, their envelopes) fork by fork, or None when the group is not shared."""
        if not self.share_images or len(prompts) < 2:
            return None
        split = self._split(prompts, images)
        if split is None:
            return None
        budget = int(settings["max_new_tokens"])
        order = sorted(range(len(prompts)), key=lambda r: -len(split.suffixes[r]))
        longest = split.length + len(split.suffixes[order[0]]) + budget
        rows = self._rows_per_call(longest)
        chunks = [order[start : start + rows] for start in range(0, len(order), rows)]
        if not self.sharing.fits(longest):
            # The window would count the padding between prefix and suffix: forks of equal-length suffixes.
            self._log_once("prompts longer than the attention window share their prefix unpadded")
            chunks = []
            for row in order:
                if (
                    chunks
                    and len(chunks[-1]) < rows
                    and len(split.suffixes[chunks[-1][0]]) == len(split.suffixes[row])
                ):
                    chunks[-1].append(row)
                else:
                    chunks.append([row])
        return self._forks(split, chunks, settings, until, answers, facts)

    def _forks(
        self,
        split: PrefixSplit,
        chunks: list[list[int]],
        settings: dict[str, Any],
        until: list[str],
        answers: AnswerTokens | None,
        facts: list[dict[str, Any]],
    ) -> Iterator[tuple[list[int], list[str]]]:
        self.stats.shared_groups += 1
        self.n_model_calls += 1
        cache = prefill(self._model, split)
        for chunk in chunks:
            inputs = continuation_inputs(split, chunk, self._tokenizer.pad_token_id, self._device)
            fork = fork_cache(cache, len(chunk))
            chunk_facts = [facts[r] for r in chunk]
            yield (
                chunk,
                self._generate_batch(inputs, settings, until, answers, cache=fork, prompt_facts=chunk_facts),
            )

    def _split(self, prompts: list[str], images: list[Any]) -> PrefixSplit | None:
        """The group's prompts cut after their image prefix, or None (logged once) when they cannot be."""
        image_token_id = self.sharing.image_token_id
        assert image_token_id is not None
        first = self._encode([prompts[0]], [images])
        split: PrefixSplit | str = "the tokenizer's cut is not trusted"
        if self._splice_trusted:
            raw = self._tokenizer(prompts, add_special_tokens=self.add_special_tokens)["input_ids"]
            split = split_prompts(
                first, raw, image_token_id=image_token_id, boundary_ids=self._added_token_ids
            )
        if not isinstance(split, PrefixSplit) or not self._splice_checked:
            encoded = [first["input_ids"][0].tolist()]
            encoded += [self._encode([p], [images])["input_ids"][0].tolist() for p in prompts[1:]]
            if isinstance(split, PrefixSplit):
                # Once per run: the tokenizer's cut against the processor's tokens of every prompt.
                self._splice_checked = True
                spliced = [first["input_ids"][0, : split.length].tolist() + s for s in split.suffixes]
                if spliced == encoded:
                    return split
                self._splice_trusted = False
                self._log_once("the tokenizer's cut after the image differs from the processor's; not used")
            split = split_encoded(first, encoded, image_token_id=image_token_id)
        if isinstance(split, str):
            self._log_once(f"prompts run whole where {split}")
            return None
        return split
