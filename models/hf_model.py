"""The project's lmms-eval model: any Hugging Face image-text-to-text checkpoint, with uncertainty and lens.

Registered with lmms-eval as ``modality_conflict_hf`` (``--model modality_conflict_hf --model_args
pretrained=DIR_OR_REPO,...``). It works for checkpoints that ``AutoModelForImageTextToText`` and
``AutoProcessor`` load and whose processor has a chat template: LLaVA, LLaVA-NeXT, Qwen2-VL, Qwen2.5-VL,
Idefics3 / SmolVLM; plain causal LMs (``AutoModelForCausalLM`` + tokenizer) answer text-only prompts.

For every ``generate_until`` request it returns a response envelope
(:mod:`modality_conflict.models.envelope`) holding, from one ``generate`` call per batch whose first step
is the prompt's forward pass (:mod:`modality_conflict.models.generation`):

- ``text``: the decoded continuation (greedy unless the task asks for sampling), cut at ``until``;
- ``entropy``: the full-vocabulary entropy (nats) of the first answer token's distribution, from the
  model's raw logits (temperature 1, before any sampling processor), estimator ``"full_vocab"``;
- ``answer_logprobs``: per candidate answer of the document (its ``answer_choices``), the log-probability
  that the first answer token starts that answer, case-insensitively: the log of the summed probabilities
  of the distinct first tokens of ``"red"`` and ``"Red"`` (as they follow the assistant prefix, see
  :func:`~modality_conflict.models.chat.answer_first_token_ids`);
- ``lens``: the logit-lens record of the prompt (:mod:`modality_conflict.models.logit_lens`), unless
  ``lens=False``.

This module is the lmms-eval face only: loading is :mod:`~modality_conflict.models.loading`, prompts are
:mod:`~modality_conflict.models.chat`, scoring is :mod:`~modality_conflict.models.scoring`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import torch
from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from loguru import logger
from tqdm import tqdm

from modality_conflict.models import generation
from modality_conflict.models.chat import AnswerTokens, ChatRenderer, read_system_prompt
from modality_conflict.models.loading import ModelArgumentError, load_model, parse_batch_size
from modality_conflict.models.logit_lens import find_lens_modules
from modality_conflict.models.requests import ModelRequest, batches, collect_requests, fetch_visuals
from modality_conflict.models.scoring import score_continuations

__all__ = ["ModalityConflictHF", "ModelArgumentError"]


class ModalityConflictHF(lmms):
    """lmms-eval simple model for Hugging Face image-text-to-text checkpoints (see the module docstring).

    Parameters
    ----------
    pretrained
        Hub repository id or local checkpoint folder.
    device
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default CUDA when available. Ignored for ``device_map``
        placements and replaced by ``cuda:LOCAL_RANK`` (or CPU) under data parallelism.
    device_map
        Passed to ``from_pretrained`` (e.g. ``"auto"`` to spread a large model over the visible GPUs).
        Empty: the whole model on ``device``.
    dtype, torch_dtype
        ``"auto"`` (default: float32 on CPU, the checkpoint's dtype elsewhere), ``"float32"``,
        ``"float16"``, ``"bfloat16"``.
    batch_size
        Prompts per ``generate`` call (left padding).
    max_new_tokens
        Default answer length when the task does not set one.
    lens
        Record the logit lens of every generation prompt.
    attn_implementation
        Passed to ``from_pretrained`` (e.g. ``"sdpa"``, ``"eager"``, ``"flash_attention_2"``).
    revision, trust_remote_code
        Passed to ``from_pretrained``.
    system_prompt
        Optional system message (a string or a path to a file holding it); default none, so the chat
        template's own default applies.
    min_pixels, max_pixels
        Optional image-size bounds forwarded to the processor (Qwen2-VL family).
    max_batch_size
        Accepted for lmms-eval's CLI and ignored.
    align_continuation
        In ``loglikelihood``, replace the continuation's leading whitespace by the chat template's answer
        prefix (so ``" red"`` is scored as ``"red"`` after ChatML's ``"assistant\\n"`` and as ``" red"``
        after LLaVA's ``"ASSISTANT:"``); False scores the continuation verbatim.
    """

    is_simple = True

    def __init__(
        self,
        pretrained: str,
        device: str | None = None,
        device_map: str | None = "",
        dtype: str | None = "auto",
        torch_dtype: str | None = None,
        batch_size: int | str = 1,
        max_new_tokens: int = 8,
        lens: bool = True,
        attn_implementation: str | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
        system_prompt: str | None = None,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        max_batch_size: int | None = None,
        align_continuation: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if kwargs:
            raise ModelArgumentError(f"modality_conflict_hf: unknown model_args {sorted(kwargs)}")
        from accelerate import Accelerator

        del max_batch_size
        self.accelerator = Accelerator()
        loaded = load_model(
            pretrained,
            accelerator=self.accelerator,
            device=device,
            device_map=device_map,
            dtype=torch_dtype if torch_dtype is not None else dtype,
            revision=revision,
            trust_remote_code=trust_remote_code,
            attn_implementation=attn_implementation,
            min_pixels=min_pixels,
            max_pixels=max_pixels,
        )
        self._model, self.processor, self._tokenizer = loaded.model, loaded.processor, loaded.tokenizer
        self._device, self.text_only, self.image_token = loaded.device, loaded.text_only, loaded.image_token
        self._rank, self._world_size = loaded.layout.rank, loaded.layout.world_size

        self.pretrained = pretrained
        self.batch_size_per_gpu = parse_batch_size(batch_size)
        self.max_new_tokens = int(max_new_tokens)
        self.use_lens = bool(lens)
        self.align_continuation = bool(align_continuation)
        self.system_prompt = read_system_prompt(system_prompt) if system_prompt else None
        self.lens_modules = find_lens_modules(self.model) if self.use_lens else None
        self.n_model_calls = 0
        """Number of ``generate`` / forward calls issued by this wrapper."""
        self.n_forward_passes = 0
        """Number of forward passes of the model, decoding steps included."""
        self._model.register_forward_pre_hook(self._count_forward)
        self._warned_gen_keys: set[str] = set()
        self.chat = ChatRenderer(
            self.processor,
            self._tokenizer,
            text_only=self.text_only,
            image_token=self.image_token,
            system_prompt=self.system_prompt,
            name=pretrained,
        )
        if self._rank == 0:
            logger.info(
                f"modality_conflict_hf: {type(self.model).__name__} on {self._device}, "
                f"dtype {self.model.dtype}, world size {self._world_size}, "
                f"answer prefix {self.answer_prefix!r}"
            )

    # -- lmms-eval plumbing ---------------------------------------------------------------------------

    def _count_forward(self, _module: Any, _args: Any) -> None:
        self.n_forward_passes += 1

    @property
    def model(self) -> Any:
        """The underlying transformers model (unwrapped)."""
        return self._model

    @property
    def tokenizer(self) -> Any:
        """The tokenizer (the processor's)."""
        return self._tokenizer

    @property
    def config(self) -> Any:
        """The model's config."""
        return self._model.config

    @property
    def device(self) -> torch.device:
        """Where inputs are placed."""
        return self._device

    @property
    def batch_size(self) -> int:
        """Prompts per model call."""
        return self.batch_size_per_gpu

    @property
    def eot_token_id(self) -> int | None:
        """End-of-turn token id (the tokenizer's eos)."""
        return self._tokenizer.eos_token_id

    @property
    def answer_prefix(self) -> str:
        """What the chat template puts between the generation prompt and the answer."""
        return self.chat.answer_prefix

    def answer_tokens(self, answers: Sequence[str]) -> AnswerTokens:
        """First-token ids of a candidate answer set (see :meth:`ChatRenderer.answer_tokens`)."""
        return self.chat.answer_tokens(answers)

    def tok_encode(
        self, string: str, left_truncate_len: int | None = None, add_special_tokens: Any = None
    ) -> list[int]:
        """Token ids of ``string`` (no special tokens unless asked)."""
        ids = self._tokenizer.encode(string, add_special_tokens=bool(add_special_tokens))
        return ids[-left_truncate_len:] if left_truncate_len else ids

    def tok_decode(self, tokens: Sequence[int] | int) -> str:
        """Text of token ids."""
        return self._tokenizer.decode(tokens)

    def _encode(self, texts: list[str], images: list[list[Any]]) -> Any:
        n_images = sum(len(i) for i in images)
        if n_images and self.text_only:
            raise ModelArgumentError(f"{self.pretrained} is a text-only model but a document has an image")
        if self.text_only:
            # The chat template already holds every special token the model expects.
            inputs = self._tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=False)
        elif n_images:
            inputs = self.processor(text=texts, images=images, padding=True, return_tensors="pt")
        else:
            # Through the processor too, so text-only prompts get the same special tokens as image prompts.
            inputs = self.processor(text=texts, padding=True, return_tensors="pt")
        return inputs.to(self._device, dtype=self._model.dtype) if n_images else inputs.to(self._device)

    def _requests(self, requests: list[Instance]) -> list[ModelRequest]:
        return collect_requests(requests, self.task_dict)

    def _visuals(self, request: ModelRequest) -> list[Any]:
        return fetch_visuals(request, self.task_dict)

    # -- generation -----------------------------------------------------------------------------------

    def _generation_settings(self, gen_kwargs: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        unknown = sorted(set(gen_kwargs) - generation.GENERATION_KEYS - self._warned_gen_keys)
        if unknown:
            logger.warning(f"modality_conflict_hf: ignoring generation arguments {unknown}")
            self._warned_gen_keys.update(unknown)
        return generation.generation_settings(gen_kwargs, default_max_new_tokens=self.max_new_tokens)

    def generate_until(self, requests: list[Instance]) -> list[str]:
        """Answer each request; returns response envelopes (JSON strings), in request order."""
        docs = self._requests(requests)
        prompts = [self.chat.prompt(d.context, d.n_images) for d in docs]
        keys = [(json.dumps(d.argument, sort_keys=True, default=str), d.n_images, d.answers) for d in docs]
        lengths = [len(self._tokenizer.encode(p, add_special_tokens=False)) for p in prompts]
        results: list[str | None] = [None] * len(requests)
        progress = tqdm(total=len(requests), disable=self._rank != 0, desc="modality_conflict_hf")
        for batch in batches(keys, lengths, self.batch_size):
            first = docs[batch[0]]
            settings, until = self._generation_settings(dict(first.argument or {}))
            inputs = self._encode([prompts[i] for i in batch], [self._visuals(docs[i]) for i in batch])
            answers = self.answer_tokens(first.answers) if first.answers else None
            envelopes = self._generate_batch(inputs, settings, until, answers)
            for index, envelope in zip(batch, envelopes, strict=True):
                results[index] = envelope
                self.cache_hook.add_partial(
                    "generate_until", (docs[index].context, docs[index].argument), envelope
                )
            progress.update(len(batch))
        progress.close()
        return [r if r is not None else "" for r in results]

    def _generate_batch(
        self, inputs: Any, settings: dict[str, Any], until: list[str], answers: AnswerTokens | None
    ) -> list[str]:
        self.n_model_calls += 1
        return generation.generate_envelopes(
            self._model,
            self._tokenizer,
            inputs,
            settings,
            until,
            answers=answers,
            lens_modules=self.lens_modules,
        )

    # -- scoring --------------------------------------------------------------------------------------

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        """Exact log-probability of each continuation after the generation prompt.

        The context is rendered as a user turn with the chat template (images first) plus the generation
        prompt; the continuation string is appended to it (no end-of-turn token, so template end tokens
        are never scored), its leading whitespace replaced by the template's answer prefix unless
        ``align_continuation=False``. Returns ``(sum of the continuation tokens' log-probabilities in nats,
        whether greedy decoding would produce exactly those tokens)``: a sum, not lmms-eval ``llava_hf``'s
        mean loss. Continuation tokens are those of ``prompt + continuation`` past the tokens of
        ``prompt`` alone; if the tokeniser merges across the boundary, the merged token counts as
        continuation.
        """
        docs = self._requests(requests)
        prompts, continuations = [], []
        for request in docs:
            continuation = request.argument
            if isinstance(continuation, (list, tuple)):
                continuation = continuation[0]
            continuation = str(continuation)
            if self.align_continuation:
                continuation = self.answer_prefix + continuation.lstrip()
            prompts.append(self.chat.prompt(request.context, request.n_images))
            continuations.append(continuation)
        keys = [d.n_images for d in docs]
        lengths = [
            len(self._tokenizer.encode(p + c, add_special_tokens=False))
            for p, c in zip(prompts, continuations, strict=True)
        ]
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        progress = tqdm(
            total=len(requests), disable=self._rank != 0, desc="modality_conflict_hf loglikelihood"
        )
        for batch in batches(keys, lengths, self.batch_size):
            images = [self._visuals(docs[i]) for i in batch]
            self.n_model_calls += 1
            scored = score_continuations(
                self._model,
                self._encode,
                [prompts[i] for i in batch],
                [continuations[i] for i in batch],
                images,
            )
            for index, value in zip(batch, scored, strict=True):
                results[index] = value
                self.cache_hook.add_partial(
                    "loglikelihood", (docs[index].context, continuations[index]), value
                )
            progress.update(len(batch))
        progress.close()
        return [r if r is not None else (float("-inf"), False) for r in results]

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        """Not supported: the benchmark asks single-turn questions."""
        raise NotImplementedError(
            "modality_conflict_hf does not implement generate_until_multi_round: the modality-conflict tasks "
            "are single-turn; use another lmms-eval model for multi-round tasks"
        )
