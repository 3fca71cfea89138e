"""The project's lmms-eval model: any Hugging Face image-text-to-text checkpoint, with uncertainty and lens.

Registered with lmms-eval as ``modality_conflict_hf`` (``--model modality_conflict_hf --model_args
pretrained=DIR_OR_REPO,...``). It works for checkpoints that ``AutoModelForImageTextToText`` and
``AutoProcessor`` load and whose processor has a chat template: LLaVA, LLaVA-NeXT, Qwen2-VL, Qwen2.5-VL,
Idefics3 / SmolVLM; plain causal LMs (``AutoModelForCausalLM`` + tokenizer) answer text-only prompts.

For every ``generate_until`` request it returns a response envelope
(:mod:`modality_conflict.mc_tasks.envelope`) holding, from one ``generate`` call per batch whose first step
is the prompt's forward pass:

- ``text``: the decoded continuation (greedy unless the task asks for sampling), cut at ``until``;
- ``entropy``: the full-vocabulary entropy (nats) of the first answer token's distribution, from the
  model's raw logits (temperature 1, before any sampling processor), estimator ``"full_vocab"``;
- ``answer_logprobs``: per colour, the log-probability that the first answer token starts that colour,
  case-insensitively: the log of the summed probabilities of the distinct first tokens of ``"red"`` and
  ``"Red"`` (as they follow the assistant prefix, see :func:`answer_first_token_ids`);
- ``lens``: the logit-lens record of the prompt (:mod:`modality_conflict.mc_tasks.logit_lens`), unless
  ``lens=False``.
"""

from __future__ import annotations

import inspect
import json
import math
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from loguru import logger
from tqdm import tqdm

from modality_conflict.dataset_builder.errors import ModalityConflictError
from modality_conflict.mc_tasks.envelope import encode_envelope
from modality_conflict.mc_tasks.logit_lens import LastPositionRecorder, find_lens_modules, lens_records
from modality_conflict.metrics.entropy import full_vocab_entropy

__all__ = [
    "ANSWER_WORDS",
    "ModalityConflictHF",
    "ModelArgumentError",
    "answer_first_token_ids",
    "answer_prefix",
]

ANSWER_WORDS = ("red", "yellow", "blue", "green", "purple", "orange")
"""The closed answer set, in the project's COLORS order."""

_GEN_KEYS = {"until", "max_new_tokens", "do_sample", "temperature", "top_p", "top_k", "num_beams"}
_DEFAULT_IMAGE_TOKEN = "<image>"


class ModelArgumentError(ModalityConflictError, ValueError):
    """A ``--model_args`` value or a task's generation argument cannot be honoured."""


def answer_prefix(render: Callable[[list[dict[str, Any]], bool], str], probe: str = "red") -> str:
    """What the chat template puts between the generation prompt and the answer text.

    The template is rendered once with the generation prompt and once with an assistant turn holding
    ``probe``. When the second starts with the first, the text between the end of the generation prompt
    and ``probe`` is the prefix (``" "`` after LLaVA's ``"ASSISTANT:"`` or SmolVLM's ``"Assistant:"``,
    ``""`` after ChatML's ``"assistant\\n"``). Otherwise a space is assumed unless the generation prompt
    ends in whitespace.

    Parameters
    ----------
    render
        ``render(messages, add_generation_prompt) -> str``, the chat template.
    probe
        A word to place in the assistant turn.
    """
    user = {"role": "user", "content": [{"type": "text", "text": "Say a word."}]}
    prompt = render([user], True)
    full = render([user, {"role": "assistant", "content": [{"type": "text", "text": probe}]}], False)
    if full.startswith(prompt):
        position = full.find(probe, len(prompt))
        if position >= 0:
            return full[len(prompt) : position]
    return "" if prompt[-1:].isspace() else " "


def answer_first_token_ids(tokenizer: Any, prompt: str, prefix: str, words: Iterable[str]) -> dict[str, int]:
    """The first token id of each answer word as the model would emit it right after ``prompt``.

    ``prompt + prefix + word`` is tokenised and the first id after the tokens of ``prompt`` is taken, so
    tokenisers that mark word starts (SentencePiece's ``▁``, byte-level BPE's ``Ġ``) get the form that
    actually follows the assistant prefix. Only the first token of a multi-token answer is used.

    Parameters
    ----------
    tokenizer
        A Hugging Face tokenizer.
    prompt
        A rendered generation prompt (text only).
    prefix
        From :func:`answer_prefix`.
    words
        The answers.
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


def _resolve_dtype(dtype: Any, device: torch.device) -> Any:
    if dtype is None or dtype == "auto":
        # Half precision on CPU is slow and less exact; on accelerators keep the checkpoint's dtype.
        return torch.float32 if device.type == "cpu" else "auto"
    if isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, str(dtype), None)
    if not isinstance(resolved, torch.dtype):
        raise ModelArgumentError(f"unknown dtype {dtype!r} (use auto, float32, float16 or bfloat16)")
    return resolved


def _as_list(visual: Any) -> list[Any]:
    if visual is None:
        return []
    if isinstance(visual, (list, tuple)):
        flat: list[Any] = []
        for item in visual:
            flat.extend(_as_list(item))
        return flat
    return [visual]


@dataclass(frozen=True)
class _Request:
    context: str
    second: Any  # generation kwargs (generate_until) or continuation (loglikelihood)
    n_images: int
    doc_to_visual: Any
    doc_id: int
    task: str
    split: str


def _process_layout(accelerator: Any) -> tuple[int, int, int]:
    """(rank, local rank, world size) under ``accelerate launch``, ``torchrun`` or a single process.

    Accelerate reports a single process when ``torchrun`` starts CPU-only workers, so the torch.distributed
    group (or torchrun's environment) is consulted as well.
    """
    if accelerator.num_processes > 1:
        return accelerator.process_index, accelerator.local_process_index, accelerator.num_processes
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world_size = torch.distributed.get_rank(), torch.distributed.get_world_size()
    else:
        rank, world_size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    return rank, int(os.environ.get("LOCAL_RANK", rank)), world_size


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
        from transformers import AutoProcessor, AutoTokenizer

        del max_batch_size
        accelerator = Accelerator()
        device_map = device_map or None
        rank, local_rank, world_size = _process_layout(accelerator)
        if world_size > 1:
            # Data parallelism: one full model per process; lmms-eval shards the documents by rank.
            if device_map not in (None, "cpu"):
                raise ModelArgumentError("device_map cannot be combined with several processes")
            use_cuda = torch.cuda.is_available() and str(device or "cuda") != "cpu"
            self._device = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
            self._rank = rank
            self._world_size = world_size
            device_map = None
        else:
            self._device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.accelerator = accelerator

        load_dtype = _resolve_dtype(torch_dtype if torch_dtype is not None else dtype, self._device)
        load_kwargs: dict[str, Any] = {"dtype": load_dtype, "trust_remote_code": trust_remote_code}
        if revision:
            load_kwargs["revision"] = revision
        if attn_implementation:
            load_kwargs["attn_implementation"] = attn_implementation
        if device_map is not None:
            load_kwargs["device_map"] = device_map
        self._model, multimodal = self._load_model(pretrained, load_kwargs)
        self._model.eval()
        if device_map is None:
            self._model.to(self._device)
        else:
            self._device = self._model.device  # inputs go where the embeddings are

        processor_kwargs: dict[str, Any] = {"trust_remote_code": trust_remote_code}
        if revision:
            processor_kwargs["revision"] = revision
        if multimodal:
            if min_pixels is not None:
                processor_kwargs["min_pixels"] = int(min_pixels)
            if max_pixels is not None:
                processor_kwargs["max_pixels"] = int(max_pixels)
            self.processor = AutoProcessor.from_pretrained(pretrained, **processor_kwargs)
        else:
            self.processor = AutoTokenizer.from_pretrained(pretrained, **processor_kwargs)
        tokenizer = getattr(self.processor, "tokenizer", None)
        self.text_only = tokenizer is None
        self._tokenizer = self.processor if tokenizer is None else tokenizer
        self._tokenizer.padding_side = "left"  # the answer position is the last column of the batch
        if self._tokenizer.pad_token_id is None:
            self._tokenizer.pad_token = self._tokenizer.eos_token
        self.image_token = str(getattr(self.processor, "image_token", _DEFAULT_IMAGE_TOKEN))

        self.pretrained = pretrained
        self.batch_size_per_gpu = self._parse_batch_size(batch_size)
        self.max_new_tokens = int(max_new_tokens)
        self.use_lens = bool(lens)
        self.align_continuation = bool(align_continuation)
        self.system_prompt = self._resolve_system_prompt(system_prompt) if system_prompt else None
        self.lens_modules = find_lens_modules(self.model) if self.use_lens else None
        self.n_model_calls = 0
        """Number of ``generate`` / forward calls issued by this wrapper."""
        self.n_forward_passes = 0
        """Number of forward passes of the model, decoding steps included."""
        self._model.register_forward_pre_hook(self._count_forward)
        self._warned_gen_keys: set[str] = set()

        self.answer_prefix = answer_prefix(self._render)
        probe_prompt = self._render([self._user_message("Say a word.", 0)], True)
        self.answer_token_ids = answer_first_token_ids(
            self._tokenizer, probe_prompt, self.answer_prefix, ANSWER_WORDS
        )
        capitalized = answer_first_token_ids(
            self._tokenizer, probe_prompt, self.answer_prefix, [w.capitalize() for w in ANSWER_WORDS]
        )
        self.answer_token_ids_capitalized = {w: capitalized[w.capitalize()] for w in ANSWER_WORDS}
        if self._rank == 0:
            logger.info(
                f"modality_conflict_hf: {type(self.model).__name__} on {self._device}, "
                f"dtype {self.model.dtype}, world size {self._world_size}, "
                f"answer prefix {self.answer_prefix!r}"
            )

    # -- lmms-eval plumbing ---------------------------------------------------------------------------

    @staticmethod
    def _load_model(pretrained: str, load_kwargs: dict[str, Any]) -> tuple[Any, bool]:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText
        from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

        config = AutoConfig.from_pretrained(
            pretrained,
            trust_remote_code=load_kwargs["trust_remote_code"],
            **({"revision": load_kwargs["revision"]} if "revision" in load_kwargs else {}),
        )
        if (
            config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES
            or load_kwargs["trust_remote_code"]
        ):
            return AutoModelForImageTextToText.from_pretrained(pretrained, **load_kwargs), True
        return AutoModelForCausalLM.from_pretrained(pretrained, **load_kwargs), False

    @staticmethod
    def _parse_batch_size(batch_size: int | str) -> int:
        if isinstance(batch_size, str) and batch_size.startswith("auto"):
            logger.warning("modality_conflict_hf: batch_size=auto is not supported; using 1")
            return 1
        try:
            value = int(batch_size)
        except (TypeError, ValueError):
            raise ModelArgumentError(f"batch_size must be a positive integer, got {batch_size!r}") from None
        if value < 1:
            raise ModelArgumentError(f"batch_size must be a positive integer, got {batch_size!r}")
        return value

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

    def tok_encode(
        self, string: str, left_truncate_len: int | None = None, add_special_tokens: Any = None
    ) -> list[int]:
        """Token ids of ``string`` (no special tokens unless asked)."""
        ids = self._tokenizer.encode(string, add_special_tokens=bool(add_special_tokens))
        return ids[-left_truncate_len:] if left_truncate_len else ids

    def tok_decode(self, tokens: Sequence[int] | int) -> str:
        """Text of token ids."""
        return self._tokenizer.decode(tokens)

    # -- prompts --------------------------------------------------------------------------------------

    def _user_message(self, text: str, n_images: int) -> dict[str, Any]:
        content: list[dict[str, Any]] = [{"type": "image"} for _ in range(n_images)]
        content.append({"type": "text", "text": text})
        return {"role": "user", "content": content}

    def _render(self, messages: list[dict[str, Any]], add_generation_prompt: bool) -> str:
        if self.system_prompt:
            messages = [
                {"role": "system", "content": [{"type": "text", "text": self.system_prompt}]},
                *messages,
            ]
        template_owner = self.processor if getattr(self.processor, "chat_template", None) else None
        if template_owner is not None and not self.text_only:
            return template_owner.apply_chat_template(
                messages, add_generation_prompt=add_generation_prompt, tokenize=False
            )
        if getattr(self._tokenizer, "chat_template", None) is None:
            raise ModelArgumentError(
                f"{self.pretrained}: neither the processor nor the tokenizer has a chat template"
            )
        # Tokenizer templates expect string content: images become the image token before the text.
        flat = []
        for message in messages:
            parts = message["content"]
            text = "".join(
                f"{self.image_token}\n" if part["type"] == "image" else part.get("text", "") for part in parts
            )
            flat.append({"role": message["role"], "content": text})
        return self._tokenizer.apply_chat_template(
            flat, add_generation_prompt=add_generation_prompt, tokenize=False
        )

    def _prompt(self, context: str, n_images: int) -> str:
        # Images always go first, as placeholders of the chat template; stray image tokens in the task's
        # text would be counted twice, so they are removed.
        text = context.replace(self.image_token, "").replace(_DEFAULT_IMAGE_TOKEN, "").strip()
        return self._render([self._user_message(text, n_images)], True)

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

    def _docs(self, requests: list[Instance]) -> list[_Request]:
        """Each request's context, second argument and image count.

        The images are counted here and fetched again batch by batch (:meth:`_visuals`), so that no more
        than one batch of decoded images is held in memory, whatever the number of requests.
        """
        out = []
        for request in requests:
            context, second, doc_to_visual, doc_id, task, split = request.args[:6]
            doc = self.task_dict[task][split][doc_id]
            if not isinstance(second, (str, dict)) and callable(second):
                second = second(doc)  # a loglikelihood target given as a function of the document
            n_images = len(_as_list(doc_to_visual(doc))) if doc_to_visual is not None else 0
            out.append(_Request(context, second, n_images, doc_to_visual, doc_id, task, split))
        return out

    def _visuals(self, request: _Request) -> list[Any]:
        if request.n_images == 0:
            return []
        visuals = _as_list(request.doc_to_visual(self.task_dict[request.task][request.split][request.doc_id]))
        if len(visuals) != request.n_images:
            raise ModalityConflictError(
                f"doc {request.doc_id}: doc_to_visual returned a different image count"
            )
        return visuals

    def _batches(self, keys: list[Any], lengths: list[int]) -> list[list[int]]:
        """Request indices grouped by key, longest prompts first, cut into batches."""
        groups: dict[Any, list[int]] = defaultdict(list)
        for index, key in enumerate(keys):
            groups[key].append(index)
        batches = []
        for members in groups.values():
            members.sort(key=lambda i: -lengths[i])
            batches += [members[i : i + self.batch_size] for i in range(0, len(members), self.batch_size)]
        return batches

    # -- generation -----------------------------------------------------------------------------------

    def _generation_settings(self, gen_kwargs: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
        unknown = sorted(set(gen_kwargs) - _GEN_KEYS - self._warned_gen_keys)
        if unknown:
            logger.warning(f"modality_conflict_hf: ignoring generation arguments {unknown}")
            self._warned_gen_keys.update(unknown)
        until = gen_kwargs.get("until")
        if until is None:
            until = []
        elif isinstance(until, str):
            until = [until]
        elif not isinstance(until, (list, tuple)):
            raise ModelArgumentError(
                f"'until' must be a string or a list of strings, got {type(until).__name__}"
            )
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
            "max_new_tokens": int(gen_kwargs.get("max_new_tokens", self.max_new_tokens)),
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

    def _decode_answer(self, ids: torch.Tensor, until: list[str]) -> str:
        eos = self._eos_ids()
        kept = []
        for token in ids.tolist():
            if token in eos or token == self._tokenizer.pad_token_id:
                break
            kept.append(token)
        text = self._tokenizer.decode(kept, skip_special_tokens=True)
        for stop in until:
            position = text.find(stop)
            if position >= 0:
                text = text[:position]
        return text.strip()

    def _eos_ids(self) -> set[int]:
        ids: set[int] = set()
        generation_eos = getattr(getattr(self._model, "generation_config", None), "eos_token_id", None)
        for value in (self._tokenizer.eos_token_id, generation_eos):
            if isinstance(value, int):
                ids.add(value)
            elif isinstance(value, (list, tuple)):
                ids.update(int(v) for v in value)
        return ids

    def _answer_logprobs(self, log_probs: torch.Tensor) -> list[dict[str, float]]:
        """Case-insensitive first-token log-probabilities of each colour, one dict per batch row."""
        columns = []
        for word in ANSWER_WORDS:
            ids = sorted({self.answer_token_ids[word], self.answer_token_ids_capitalized[word]})
            columns.append(torch.logsumexp(log_probs[:, ids], dim=-1))
        table = torch.stack(columns, dim=-1).tolist()
        return [
            {w: (v if math.isfinite(v) else -1e30) for w, v in zip(ANSWER_WORDS, row, strict=True)}
            for row in table
        ]

    def generate_until(self, requests: list[Instance]) -> list[str]:
        """Answer each request; returns response envelopes (JSON strings), in request order."""
        docs = self._docs(requests)
        prompts = [self._prompt(d.context, d.n_images) for d in docs]
        keys = [(json.dumps(d.second, sort_keys=True, default=str), d.n_images) for d in docs]
        lengths = [len(self._tokenizer.encode(p, add_special_tokens=False)) for p in prompts]
        results: list[str | None] = [None] * len(requests)
        progress = tqdm(total=len(requests), disable=self._rank != 0, desc="modality_conflict_hf")
        for batch in self._batches(keys, lengths):
            settings, until = self._generation_settings(dict(docs[batch[0]].second or {}))
            inputs = self._encode([prompts[i] for i in batch], [self._visuals(docs[i]) for i in batch])
            envelopes = self._generate_batch(inputs, settings, until)
            for index, envelope in zip(batch, envelopes, strict=True):
                results[index] = envelope
                self.cache_hook.add_partial(
                    "generate_until", (docs[index].context, docs[index].second), envelope
                )
            progress.update(len(batch))
        progress.close()
        return [r if r is not None else "" for r in results]

    @torch.no_grad()
    def _generate_batch(self, inputs: Any, settings: dict[str, Any], until: list[str]) -> list[str]:
        recorder = LastPositionRecorder(self.lens_modules) if self.lens_modules is not None else None
        pad_id = self._tokenizer.pad_token_id
        eos = sorted(self._eos_ids())
        self.n_model_calls += 1
        if recorder is not None:
            with recorder:
                output = self._model.generate(
                    **inputs,
                    **settings,
                    return_dict_in_generate=True,
                    output_logits=True,
                    pad_token_id=pad_id,
                    eos_token_id=eos or None,
                )
        else:
            output = self._model.generate(
                **inputs,
                **settings,
                return_dict_in_generate=True,
                output_logits=True,
                pad_token_id=pad_id,
                eos_token_id=eos or None,
            )
        # The raw (unprocessed) logits of the first step are the prompt pass's answer-position logits.
        first = output.logits[0].float()
        entropies = full_vocab_entropy(first.double().cpu().numpy()).values
        answer_logprobs = self._answer_logprobs(torch.log_softmax(first, dim=-1))
        lens = None
        if recorder is not None:
            lens = lens_records(
                self.lens_modules,
                recorder.states(),
                self.answer_token_ids,
                lambda token: self._tokenizer.decode([token]),
                extra_answer_token_ids={"capitalized": self.answer_token_ids_capitalized},
            )
        new_tokens = output.sequences[:, inputs["input_ids"].shape[1] :]
        envelopes = []
        for row in range(new_tokens.shape[0]):
            entropy = float(entropies[row])
            envelopes.append(
                encode_envelope(
                    text=self._decode_answer(new_tokens[row], until),
                    entropy=entropy if math.isfinite(entropy) else None,
                    estimator="full_vocab",
                    answer_logprobs=answer_logprobs[row],
                    lens=lens[row] if lens is not None else None,
                )
            )
        return envelopes

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
        docs = self._docs(requests)
        prompts, continuations = [], []
        for request in docs:
            continuation = request.second
            if isinstance(continuation, (list, tuple)):
                continuation = continuation[0]
            continuation = str(continuation)
            if self.align_continuation:
                continuation = self.answer_prefix + continuation.lstrip()
            prompts.append(self._prompt(request.context, request.n_images))
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
        for batch in self._batches(keys, lengths):
            images = [self._visuals(docs[i]) for i in batch]
            scored = self._score_batch([prompts[i] for i in batch], [continuations[i] for i in batch], images)
            for index, value in zip(batch, scored, strict=True):
                results[index] = value
                self.cache_hook.add_partial(
                    "loglikelihood", (docs[index].context, continuations[index]), value
                )
            progress.update(len(batch))
        progress.close()
        return [r if r is not None else (float("-inf"), False) for r in results]

    @torch.no_grad()
    def _score_batch(
        self, prompts: list[str], continuations: list[str], images: list[list[Any]]
    ) -> list[tuple[float, bool]]:
        full = self._encode([p + c for p, c in zip(prompts, continuations, strict=True)], images)
        ids, mask = full["input_ids"], full["attention_mask"]
        n_conts = []
        for row, (prompt, row_images) in enumerate(zip(prompts, images, strict=True)):
            context = self._encode([prompt], [row_images])["input_ids"][0].tolist()
            real = ids[row][mask[row].bool()].tolist()
            common = 0
            for a, b in zip(real, context, strict=False):
                if a != b:
                    break
                common += 1
            n_conts.append(len(real) - common)
        keep = max(n_conts) + 1
        self.n_model_calls += 1
        # Only the positions that predict continuation tokens need vocabulary logits.
        if "logits_to_keep" in inspect.signature(self._model.forward).parameters:
            logits = self._model(**full, logits_to_keep=keep).logits
        else:
            logits = self._model(**full).logits[:, -keep:]
        predicting = logits[:, :-1].float()  # position t predicts token t + 1
        out = []
        for row, n_cont in enumerate(n_conts):
            if n_cont <= 0:
                out.append((0.0, True))
                continue
            # Left padding: the continuation is the last n_cont tokens of the row.
            targets = ids[row, -n_cont:].to(predicting.device)
            row_lp = torch.log_softmax(predicting[row, -n_cont:], dim=-1)
            picked = row_lp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
            greedy = bool((row_lp.argmax(dim=-1) == targets).all())
            out.append((float(picked.double().sum()), greedy))
        return out

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        """Not supported: the benchmark asks single-turn questions."""
        raise NotImplementedError(
            "modality_conflict_hf does not implement generate_until_multi_round: the modality-conflict tasks "
            "are single-turn; use another lmms-eval model for multi-round tasks"
        )
