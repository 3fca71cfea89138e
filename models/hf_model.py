"""The project's lmms-eval model: any Hugging Face image-text-to-text checkpoint, with uncertainty and lens.

Registered as ``modality_conflict_hf`` for checkpoints that transformers loads natively with a chat
template (``routing`` decides from ``config.json``; ``templates`` checks at load what would make numbers
silently wrong). A benchmark document gets a response envelope from one ``generate`` call per batch: the
text, the first answer token's full-vocabulary entropy, the candidates' case-insensitive first-token
log-probabilities, the logit lens and the template's preamble; any other task gets plain text.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
from collections.abc import Sequence
from typing import Any

import torch
from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from loguru import logger
from tqdm import tqdm

from modality_conflict.dataset_builder.constants import COLOR_SYNONYMS, COLORS
from modality_conflict.models import generation
from modality_conflict.models.chat import AnswerTokens, ChatRenderer, read_system_prompt
from modality_conflict.models.errors import ModelArgumentError
from modality_conflict.models.image_groups import DocumentStore
from modality_conflict.models.loading import load_model, parse_batch_size
from modality_conflict.models.logit_lens import LastPositionRecorder, calibrate_lens, find_lens_modules
from modality_conflict.models.requests import ModelRequest, batches, collect_requests, fetch_visuals
from modality_conflict.models.run_stats import RunCounters, RunStats
from modality_conflict.models.scoring import (
    answer_surface_forms,
    combine_surface_forms,
    score_continuations,
)
from modality_conflict.models.shared_prefix import SharedPrefixAnswers, same_image_runs
from modality_conflict.models.sharing import (
    sharing_support,
    vision_tower,
)
from modality_conflict.models.templates import (
    THINK_OPEN,
    adds_special_tokens,
    check_no_open_reasoning,
    check_one_bos,
    parse_prompt_date,
)

__all__ = ["ModalityConflictHF", "ModelArgumentError", "RunStats"]


class ModalityConflictHF(SharedPrefixAnswers, RunCounters, lmms):
    """lmms-eval simple model for Hugging Face image-text-to-text checkpoints (see the module docstring).

    ``device`` is ignored for ``device_map`` placements and replaced by ``cuda:LOCAL_RANK`` (or CPU) under
    data parallelism; ``dtype="auto"`` is float32 on CPU and the checkpoint's dtype elsewhere;
    ``device_map``, ``attn_implementation``, ``revision`` and ``trust_remote_code`` go to ``from_pretrained``.
    ``system_prompt`` is a string or a file holding it; ``prompt_date`` (``YYYY-MM-DD``, default 2025-01-01)
    is the date chat templates see; ``min_pixels`` / ``max_pixels`` go to the processor (Qwen2-VL family);
    ``max_batch_size`` is accepted for lmms-eval's CLI and ignored. ``share_images`` continues all prompts
    of an image from one cached prefix where that gives the same numbers (``sharing``);
    ``early_stop`` stops an answer once it names a candidate (``stopping``); ``max_batch_tokens``
    bounds rows times sequence length of one call by splitting an image's prompts into several forks.
    ``align_continuation`` scores a ``loglikelihood`` continuation after the template's answer prefix in
    place of its leading whitespace (``" red"`` as ``"red"`` after ChatML's ``"assistant\\n"``).
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
        prompt_date: str | None = None,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        max_batch_size: int | None = None,
        align_continuation: bool = True,
        share_images: bool = True,
        early_stop: bool = True,
        max_batch_tokens: int | None = None,
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
        self._takes_token_type_ids = "token_type_ids" in inspect.signature(self._model.forward).parameters
        self._device, self.text_only, self.image_token = loaded.device, loaded.text_only, loaded.image_token
        self._rank, self._world_size = loaded.layout.rank, loaded.layout.world_size

        self.pretrained = pretrained
        self.batch_size_per_gpu = parse_batch_size(batch_size)
        self.max_new_tokens = int(max_new_tokens)
        self.use_lens = bool(lens)
        self.align_continuation = bool(align_continuation)
        self.system_prompt = read_system_prompt(system_prompt) if system_prompt else None
        self.lens_modules = find_lens_modules(self.model) if self.use_lens else None
        self.early_stop = bool(early_stop)
        self.max_batch_tokens = int(max_batch_tokens) if max_batch_tokens else None
        if self.max_batch_tokens is not None and self.max_batch_tokens < 1:
            raise ModelArgumentError(f"max_batch_tokens must be positive, got {max_batch_tokens!r}")
        self.sharing = sharing_support(self._model, text_only=self.text_only)
        """Whether this architecture shares image prefixes, and why not."""
        self.share_images = bool(share_images) and self.sharing.shared
        self._added_token_ids = frozenset(int(i) for i in self._tokenizer.added_tokens_decoder)
        self._splice_checked = False
        self._splice_trusted = True
        self._logged: set[str] = set()
        self.stats = RunStats()
        """What the wrapper asked of the model: image encodings, prefill and decoding tokens."""
        self._model.register_forward_pre_hook(self._count_tokens, with_kwargs=True)
        tower = vision_tower(self._model)
        if tower is not None:
            tower.register_forward_pre_hook(self._count_image_encoding, with_kwargs=True)
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
            prompt_date=parse_prompt_date(prompt_date),
        )
        self._check_template()
        if self.lens_modules is not None:
            self.lens_modules = self._calibrated_lens()
        self.n_forward_passes = 0  # the load-time checks are not the benchmark's passes
        self.stats = RunStats()
        vocabulary = self._tokenizer.get_vocab()
        self.reasoning_token_id = vocabulary.get(THINK_OPEN)
        """The id of ``<think>``, if any: a model that starts its answers with it is refused."""
        if self._rank == 0:
            logger.info(
                f"modality_conflict_hf: {type(self.model).__name__} on {self._device}, "
                f"dtype {self.model.dtype}, world size {self._world_size}, "
                f"answer prefix {self.answer_prefix!r}"
            )

    # -- checks at load -------------------------------------------------------------------------------

    def _check_template(self) -> None:
        """Refuse what would make the numbers silently wrong; choose how prompts are encoded."""
        probe = self.chat.probe_prompt
        check_no_open_reasoning(self.pretrained, probe, self.answer_prefix)
        self.answer_tokens(COLORS)  # refuses answers whose first tokens collapse
        self.add_special_tokens = adds_special_tokens(probe, self._tokenizer.bos_token)
        """Whether prompts are encoded with the tokenizer's special tokens (not when the template wrote the
        BOS itself): exactly one BOS whatever the template."""
        ids = self._encode([probe], [[]])["input_ids"][0].tolist()
        check_one_bos(self.pretrained, ids, self._tokenizer.bos_token_id)

    @torch.no_grad()
    def _calibrated_lens(self) -> Any:
        """The lens, checked against the model's own logits on the probe prompt (see ``calibrate_lens``)."""
        assert self.lens_modules is not None
        inputs = self._encode([self.chat.probe_prompt], [[]])
        with LastPositionRecorder(self.lens_modules) as recorder:
            logits = self._model(**inputs).logits[:, -1]
        _, states = recorder.recorded()
        return calibrate_lens(self.lens_modules, states[-1], logits, model_name=type(self._model).__name__)

    # -- lmms-eval plumbing ---------------------------------------------------------------------------

    def _log_once(self, message: str) -> None:
        if message not in self._logged:
            self._logged.add(message)
            if self._rank == 0:
                logger.info(f"modality_conflict_hf: {message}")

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
        # One BOS whatever the template: special tokens are added only when the template wrote none.
        options = {"padding": True, "return_tensors": "pt", "add_special_tokens": self.add_special_tokens}
        if self.text_only:
            inputs = self._tokenizer(texts, **options)
        elif n_images:
            inputs = self.processor(text=texts, images=images, **options)
        else:
            # Through the processor too, so text-only prompts get the same special tokens as image prompts.
            inputs = self.processor(text=texts, **options)
        # Tokenizers that emit token_type_ids for models that take none: transformers 4.x's generate
        # refuses the unused argument, 5.x drops it.
        if "token_type_ids" in inputs and not self._takes_token_type_ids:
            del inputs["token_type_ids"]
        return inputs.to(self._device, dtype=self._model.dtype) if n_images else inputs.to(self._device)

    def _requests(self, requests: list[Instance], store: DocumentStore | None = None) -> list[ModelRequest]:
        if store is None:
            return collect_requests(requests, self.task_dict)
        return collect_requests(requests, self.task_dict, count_images=False, read_document=store.document)

    # -- generation -----------------------------------------------------------------------------------

    def _generation_settings(self, gen_kwargs: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        unknown = sorted(set(gen_kwargs) - generation.GENERATION_KEYS - self._warned_gen_keys)
        if unknown:
            logger.warning(f"modality_conflict_hf: ignoring generation arguments {unknown}")
            self._warned_gen_keys.update(unknown)
        return generation.generation_settings(gen_kwargs, default_max_new_tokens=self.max_new_tokens)

    def generate_until(self, requests: list[Instance]) -> list[str]:
        """Answer each request, in request order: response envelopes for the benchmark's documents, the
        plain answer for any other task's.

        Requests are grouped by generation arguments, candidates and images; each group's images are decoded
        once and, where the architecture allows it, encoded once with a shared prefix. Other image prompts are
        batched across images, prompts without images longest first.
        """
        store = DocumentStore(self.task_dict)
        docs = self._requests(requests, store)
        prompts: list[str] = [""] * len(docs)
        settings_keys = [
            (json.dumps(d.argument, sort_keys=True, default=str), d.answers, d.benchmark) for d in docs
        ]
        groups: dict[tuple[Any, ...], list[int]] = {}
        for index, request in enumerate(docs):
            groups.setdefault((settings_keys[index], store.visual_key(request)), []).append(index)
        if not self.share_images:
            self._log_once(f"image prefixes not shared: {self.sharing.reason or 'share_images=False'}")
        results: list[str | None] = [None] * len(requests)
        progress = tqdm(total=len(requests), disable=self._rank != 0, desc="modality_conflict_hf")

        def finish(indices: Sequence[int], outputs: Sequence[str]) -> None:
            for index, output in zip(indices, outputs, strict=True):
                results[index] = output
                self.cache_hook.add_partial(
                    "generate_until", (docs[index].context, docs[index].argument), output
                )
            progress.update(len(indices))

        def settings_of(index: int) -> tuple[dict[str, Any], list[str], AnswerTokens | None]:
            request = docs[index]
            settings, until = self._generation_settings(dict(request.argument or {}))
            return settings, until, self.answer_tokens(request.answers) if request.answers else None

        def run(indices: list[int], images: list[list[Any]]) -> None:
            settings, until, answers = settings_of(indices[0])
            inputs = self._encode([prompts[i] for i in indices], images)
            if docs[indices[0]].benchmark:
                facts = [self.chat.prompt_facts(prompts[i], docs[i].context) for i in indices]
                finish(indices, self._generate_batch(inputs, settings, until, answers, prompt_facts=facts))
            else:
                self.n_model_calls += 1
                finish(
                    indices, generation.generate_texts(self._model, self._tokenizer, inputs, settings, until)
                )

        # Image prompts that are not shared wait here, a batch per key, so that batches mix images.
        pending: dict[tuple[Any, ...], list[tuple[int, list[Any]]]] = {}

        def run_pending(key: tuple[Any, ...], flush: bool = False) -> None:
            waiting = pending.get(key, [])
            while waiting and (flush or len(waiting) >= self.batch_size):
                batch, waiting[:] = waiting[: self.batch_size], waiting[self.batch_size :]
                run([i for i, _ in batch], [images for _, images in batch])

        text_only: list[int] = []
        for members in groups.values():
            visuals = store.group_visuals([docs[i] for i in members])
            for indices, images in same_image_runs(members, visuals):
                for index in indices:
                    docs[index] = dataclasses.replace(docs[index], n_images=len(images))
                    prompts[index] = self.chat.prompt(docs[index].context, len(images))
                if not images:
                    text_only += indices
                    continue
                shared = None
                if docs[indices[0]].benchmark:
                    facts = [self.chat.prompt_facts(prompts[i], docs[i].context) for i in indices]
                    group = [prompts[i] for i in indices]
                    shared = self._shared_group(group, images, *settings_of(indices[0]), facts)
                if shared is None:
                    key = (settings_keys[indices[0]], len(images))
                    pending.setdefault(key, []).extend((i, images) for i in indices)
                    run_pending(key)
                    continue
                for rows, envelopes in shared:
                    finish([indices[r] for r in rows], envelopes)
        for key in list(pending):
            run_pending(key, flush=True)
        self.stats.decoded_images += store.decoded_images
        lengths = [len(self._tokenizer.encode(prompts[i], add_special_tokens=False)) for i in text_only]
        for batch in batches([settings_keys[i] for i in text_only], lengths, self.batch_size):
            run([text_only[b] for b in batch], [[] for _ in batch])
        progress.close()
        return [r if r is not None else "" for r in results]

    def _generate_batch(
        self,
        inputs: Any,
        settings: dict[str, Any],
        until: list[str],
        answers: AnswerTokens | None,
        cache: Any = None,
        prompt_facts: list[dict[str, Any]] | None = None,
    ) -> list[str]:
        self.n_model_calls += 1
        envelopes = generation.generate_envelopes(
            self._model,
            self._tokenizer,
            inputs,
            settings,
            until,
            answers=answers,
            lens_modules=self.lens_modules,
            cache=cache,
            early_stop=self.early_stop,
            synonyms=COLOR_SYNONYMS if answers is not None and set(answers.answers) <= set(COLORS) else None,
            prompt_facts=prompt_facts,
            reasoning_token_id=self.reasoning_token_id,
        )
        self.stats.prompts += len(envelopes)
        return envelopes

    # -- scoring --------------------------------------------------------------------------------------

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        """Exact log-probability of each continuation after the generation prompt.

        ``(sum of its tokens' log-probabilities in nats, whether greedy decoding gives exactly them)``:
        a sum, not ``llava_hf``'s mean loss. A candidate answer is scored as written and capitalised, and
        gets the log of their summed probabilities: the event the generation estimator measures too.
        """
        docs = self._requests(requests)
        # One scored row per distinct token sequence of each request's surface forms.
        owners, prompts, continuations, lengths, seen = [], [], [], [], set()
        asked = []
        for index, request in enumerate(docs):
            continuation = request.argument
            if isinstance(continuation, (list, tuple)):
                continuation = continuation[0]
            continuation = str(continuation)
            asked.append(continuation)
            prompt = self.chat.prompt(request.context, request.n_images)
            answers = request.answers if request.benchmark else ()
            for form in answer_surface_forms(continuation, answers):
                if self.align_continuation:
                    form = self.answer_prefix + form.lstrip()
                ids = tuple(self._tokenizer.encode(prompt + form, add_special_tokens=False))
                if (index, ids) not in seen:
                    seen.add((index, ids))
                    owners.append(index)
                    prompts.append(prompt)
                    continuations.append(form)
                    lengths.append(len(ids))
        keys = [docs[i].n_images for i in owners]
        scored_forms: list[list[tuple[float, bool]]] = [[] for _ in docs]
        progress = tqdm(
            total=len(prompts), disable=self._rank != 0, desc="modality_conflict_hf loglikelihood"
        )
        for batch in batches(keys, lengths, self.batch_size):
            images = [fetch_visuals(docs[owners[i]], self.task_dict) for i in batch]
            self.n_model_calls += 1
            scored = score_continuations(
                self._model,
                self._encode,
                [prompts[i] for i in batch],
                [continuations[i] for i in batch],
                images,
                check_answer_position=lambda log_probs: generation.check_not_reasoning(
                    log_probs, self.reasoning_token_id, self._tokenizer
                ),
            )
            for index, value in zip(batch, scored, strict=True):
                scored_forms[owners[index]].append(value)
            progress.update(len(batch))
        progress.close()
        results = [combine_surface_forms(forms) for forms in scored_forms]
        for request, continuation, value in zip(docs, asked, results, strict=True):
            self.cache_hook.add_partial("loglikelihood", (request.context, continuation), value)
        return results

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        """Not supported: the benchmark asks single-turn questions."""
        raise NotImplementedError(
            "modality_conflict_hf does not implement generate_until_multi_round: the modality-conflict tasks "
            "are single-turn; use another lmms-eval model for multi-round tasks"
        )
