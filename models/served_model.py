"""The project's lmms-eval model for served models: any OpenAI-compatible ``/v1/chat/completions`` endpoint.

Registered as ``modality_conflict_openai``. Each benchmark prompt is one chat completion with the
in-process user turn (images as PNG data URLs), answered with the same envelope, without a lens. At
start, short requests find whether ``top_logprobs=-1`` returns the whole vocabulary (exact entropy) or
only the top k (bounds over ``vocab_size``), and, through ``/tokenize``, whether requests must ask for the
BOS the in-process path adds. Answers are cached by request, so a stopped run resumes.
"""

from __future__ import annotations

import base64
import contextlib
import io
import math
import os
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from lmms_eval.api.instance import Instance
from lmms_eval.api.model import lmms
from loguru import logger
from tqdm import tqdm

from modality_conflict.models.envelope import cut_at_stops, decode_envelope
from modality_conflict.models.errors import ModelArgumentError
from modality_conflict.models.loading import DEFAULT_IMAGE_TOKEN
from modality_conflict.models.requests import ModelRequest, as_list, collect_requests
from modality_conflict.models.response_cache import ResponseCache, request_key
from modality_conflict.models.served_client import (
    ChatClient,
    ClientRequestError,
    EndpointError,
    parse_base_urls,
)
from modality_conflict.models.served_envelope import MalformedResponseError, served_envelope

__all__ = ["ModalityConflictOpenAI"]

MODEL_ID = "modality_conflict_openai"
CACHE_ENV = "MODALITY_CONFLICT_RESPONSE_CACHE"
DEFAULT_CACHE = Path("~/.cache/modality-conflict/served-responses.sqlite")
DEFAULT_TOP_K = 20
PROBE_MESSAGES = [{"role": "user", "content": [{"type": "text", "text": "Say a word."}]}]
NO_LOGPROBS = (
    "modality_conflict_openai: {url} returned no logprobs, so the first-answer-token entropy cannot be "
    "measured; evaluate this endpoint with the sampled task instead (--tasks modality_conflict_sampled "
    "with lmms-eval's own API model, e.g. --model openai)"
)


def image_data_url(image: Any) -> str:
    """A PIL image as a lossless PNG data URL (the server decodes exactly the dataset's pixels)."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


FULL_MASS_TOLERANCE = 1e-3
"""How far from 1 the probabilities of a whole-vocabulary answer may sum (float32 rounding)."""


def _mass(top: list[Any]) -> float:
    """The summed probability of a ``top_logprobs`` list (0 when an entry is malformed)."""
    try:
        return sum(math.exp(min(float(entry["logprob"]), 0.0)) for entry in top)
    except (KeyError, TypeError, ValueError):
        return 0.0


def _bool(value: Any) -> bool:
    return value if isinstance(value, bool) else str(value).strip().lower() in ("1", "true", "yes")


class ModalityConflictOpenAI(lmms):
    """lmms-eval simple model for OpenAI-compatible chat endpoints (see the module docstring).

    ``model`` defaults to the first one ``GET /models`` lists; an unset ``api_key_env`` sends no key.
    ``top_logprobs="all"`` asks for the whole vocabulary and falls back to 20. ``backoff`` is the first
    wait in seconds, doubling each retry. ``cache`` is a file or ``off`` (default
    ``$MODALITY_CONFLICT_RESPONSE_CACHE`` or ``~/.cache/modality-conflict/served-responses.sqlite``).
    ``add_special_tokens`` is ``auto``, ``true`` or ``false``. ``batch_size``, ``max_batch_size`` and
    ``device`` are accepted for lmms-eval's CLI and ignored.
    """

    is_simple = True

    def __init__(
        self,
        base_url: str = "http://localhost:8000/v1",
        model: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        top_logprobs: int | str = "all",
        vocab_size: int | None = None,
        concurrency: int = 8,
        max_retries: int = 5,
        backoff: float = 1.0,
        timeout: float = 120.0,
        cache: str | None = None,
        max_new_tokens: int = 8,
        system_prompt: str | None = None,
        add_special_tokens: str | bool = "auto",
        batch_size: Any = None,
        max_batch_size: Any = None,
        device: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__()
        if kwargs:
            raise ModelArgumentError(f"{MODEL_ID}: unknown model_args {sorted(kwargs)}")
        del batch_size, max_batch_size, device
        self.concurrency = int(concurrency)
        if self.concurrency < 1:
            raise ModelArgumentError(f"{MODEL_ID}: concurrency must be at least 1, got {concurrency!r}")
        self.client = ChatClient(
            parse_base_urls(base_url),
            api_key_env=api_key_env,
            timeout=float(timeout),
            max_retries=int(max_retries),
            backoff=float(backoff),
        )
        self.max_new_tokens = int(max_new_tokens)
        self.system_prompt = system_prompt
        self.model_name = str(model) if model else self._served_model()
        self.top_logprobs, self.vocab_size = self._probe(top_logprobs, vocab_size)
        self.add_special_tokens = self._special_tokens(add_special_tokens)
        """The ``add_special_tokens`` field every request carries; None: not sent."""
        self.cache = self._open_cache(cache)
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0}
        """Token counts the server reported over this wrapper's requests (cached answers included)."""
        estimator = "full_vocab" if self.top_logprobs == -1 else f"top_k (top_logprobs={self.top_logprobs})"
        logger.info(
            f"{MODEL_ID}: {self.model_name} at {', '.join(self.client.base_urls)}; vocabulary "
            f"{self.vocab_size} tokens, entropy estimator {estimator}; add_special_tokens "
            f"{'not sent' if self.add_special_tokens is None else self.add_special_tokens}; cache "
            f"{self.cache.path if self.cache is not None else 'off'}"
        )

    # -- start ----------------------------------------------------------------------------------------

    def _served_model(self) -> str:
        listing = self.client.get_json("/models")
        try:
            return str(listing["data"][0]["id"])
        except (KeyError, IndexError, TypeError):
            raise EndpointError(
                f"{MODEL_ID}: GET {self.client.base_urls[0]}/models lists no model; pass model=NAME"
            ) from None

    def _probe_response(self, top_logprobs: int) -> dict[str, Any]:
        body = {
            "model": self.model_name,
            "messages": PROBE_MESSAGES,
            "max_tokens": 1,
            "temperature": 0,
            "logprobs": True,
            "top_logprobs": top_logprobs,
        }
        return self.client.chat(body)

    def _first_top(self, data: dict[str, Any]) -> list[Any]:
        choice = data["choices"][0] if isinstance(data["choices"][0], dict) else {}
        content = (choice.get("logprobs") or {}).get("content") if isinstance(choice, dict) else None
        top = content[0].get("top_logprobs") if content and isinstance(content[0], dict) else None
        if not top:
            raise EndpointError(NO_LOGPROBS.format(url=self.client.base_urls[0]))
        return top

    def _probe(self, requested: int | str, vocab_size: int | None) -> tuple[int, int]:
        """(top_logprobs to send, vocabulary size) from one or two short requests; see the module."""
        wants_all = str(requested).strip().lower() in ("all", "-1")
        given_vocab = int(vocab_size) if vocab_size not in (None, "") else None
        learnt = None
        # A 4xx here: the endpoint caps top_logprobs (OpenAI at 20, vLLM at --max-logprobs).
        with contextlib.suppress(ClientRequestError):
            top = self._first_top(self._probe_response(-1))
            # Only a distribution that sums to 1 is the whole vocabulary; an endpoint may cap silently.
            if abs(_mass(top) - 1.0) <= FULL_MASS_TOLERANCE:
                learnt = len(top)
            else:
                logger.warning(
                    f"{MODEL_ID}: top_logprobs=-1 returned {len(top)} tokens, not the whole vocabulary"
                )
        if learnt is not None and wants_all:
            return -1, learnt
        top_k = DEFAULT_TOP_K if wants_all else int(requested)
        if top_k < 1:
            raise ModelArgumentError(
                f"{MODEL_ID}: top_logprobs must be 'all' or at least 1, got {requested!r}"
            )
        if learnt is None:
            self._first_top(self._probe_response(top_k))
        vocab = given_vocab or learnt
        if vocab is None:
            raise ModelArgumentError(
                f"{MODEL_ID}: the endpoint returns at most top_logprobs tokens and not the whole vocabulary; "
                "pass vocab_size=N (the model's vocabulary size) so the entropy's upper bound is defined"
            )
        if wants_all:
            logger.warning(f"{MODEL_ID}: the endpoint refuses top_logprobs=-1; using {top_k} (top_k bounds)")
        return top_k, vocab

    def _special_tokens(self, setting: str | bool) -> bool | None:
        """The ``add_special_tokens`` field to send (None: none); see the module docstring."""
        choice = str(setting).strip().lower()
        if choice in ("true", "false"):
            return choice == "true"
        if choice != "auto":
            raise ModelArgumentError(
                f"{MODEL_ID}: add_special_tokens must be auto, true or false, got {setting!r}"
            )
        ask = {"model": self.model_name, "messages": PROBE_MESSAGES, "add_generation_prompt": True}
        plain = self.client.tokenize({**ask, "add_special_tokens": False})
        special = self.client.tokenize({**ask, "add_special_tokens": True}) if plain is not None else None
        if plain is None or special is None:
            logger.info(f"{MODEL_ID}: the endpoint offers no /tokenize; prompts are encoded as it chooses")
            return None
        added = len(special) - len(plain)
        # Added in front and not already written by the template: the in-process path would add it too.
        if added > 0 and special[added:] == plain and plain[:added] != special[:added]:
            return True
        return None

    def _open_cache(self, cache: str | None) -> ResponseCache | None:
        if cache is not None and str(cache).strip().lower() in ("off", "none", "false", "0"):
            return None
        path = cache or os.environ.get(CACHE_ENV) or DEFAULT_CACHE
        return ResponseCache(Path(path).expanduser())

    # -- requests -------------------------------------------------------------------------------------

    def _settings(self, argument: Any) -> tuple[dict[str, Any], list[str]]:
        gen = dict(argument or {}) if isinstance(argument, dict) else {}
        until = gen.get("until") or []
        until = [until] if isinstance(until, str) else [u for u in until if u]
        temperature = float(gen.get("temperature", 0.0) or 0.0)
        do_sample = _bool(gen.get("do_sample", temperature > 0))
        settings: dict[str, Any] = {
            "max_tokens": int(gen.get("max_new_tokens", self.max_new_tokens)),
            "temperature": temperature if do_sample else 0,
        }
        if do_sample and gen.get("top_p") is not None:
            settings["top_p"] = float(gen["top_p"])
        if until:
            settings["stop"] = until
        return settings, until

    def _body(self, request: ModelRequest) -> tuple[dict[str, Any], list[str]]:
        doc = self.task_dict[request.task][request.split][request.doc_id]
        images = as_list(request.doc_to_visual(doc)) if request.doc_to_visual is not None else []
        content: list[dict[str, Any]] = [
            {"type": "image_url", "image_url": {"url": image_data_url(image)}} for image in images
        ]
        text = request.context.replace(DEFAULT_IMAGE_TOKEN, "").strip()
        content.append({"type": "text", "text": text})
        messages: list[dict[str, Any]] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": [{"type": "text", "text": self.system_prompt}]})
        messages.append({"role": "user", "content": content})
        settings, until = self._settings(request.argument)
        body = {"model": self.model_name, "messages": messages, **settings}
        if self.add_special_tokens is not None:
            body["add_special_tokens"] = self.add_special_tokens
        body.update(logprobs=True, top_logprobs=self.top_logprobs)
        return body, until

    def _answer(self, request: ModelRequest) -> tuple[str, bool]:
        """One request's envelope (or plain text for another task's document), and whether it was cached."""
        body, until = self._body(request)
        key = request_key({"request": body, "answers": list(request.answers), "vocab_size": self.vocab_size})
        cached = self.cache.get(key) if self.cache is not None else None
        if cached is not None and isinstance(cached.get("output"), str):
            return cached["output"], True
        data = self.client.chat(body)
        try:
            if request.benchmark:
                output = served_envelope(
                    data, answers=request.answers, vocab_size=self.vocab_size, until=until
                )
            else:
                output = cut_at_stops(str(data["choices"][0]["message"]["content"] or ""), until)
        except MalformedResponseError as error:
            url = self.client.base_urls[0] if len(self.client.base_urls) == 1 else "the endpoint"
            raise EndpointError(f"{MODEL_ID}: {url}: {error} (doc {request.doc_id})") from None
        except (KeyError, IndexError, TypeError):
            raise EndpointError(f"{MODEL_ID}: doc {request.doc_id}: the response has no message") from None
        if self.cache is not None:
            self.cache.put(key, {"output": output})
        return output, False

    def generate_until(self, requests: list[Instance]) -> list[str]:
        """One chat completion per request, ``concurrency`` at a time; envelopes for the benchmark's docs."""
        docs = collect_requests(requests, self.task_dict, count_images=False)
        results: list[str | None] = [None] * len(docs)
        progress = tqdm(total=len(docs), desc=MODEL_ID)
        from_cache = 0
        with ThreadPoolExecutor(max_workers=self.concurrency) as pool:
            futures = {pool.submit(self._answer, doc): index for index, doc in enumerate(docs)}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    if future.exception() is not None:
                        for other in pending:
                            other.cancel()
                        raise future.exception()  # type: ignore[misc]
                    index = futures[future]
                    output, cached = future.result()
                    from_cache += cached
                    results[index] = output
                    self._count_usage(output)
                    self.cache_hook.add_partial(
                        "generate_until", (docs[index].context, docs[index].argument), output
                    )
                    progress.update(1)
        progress.close()
        logger.info(
            f"{MODEL_ID}: {len(docs)} answers ({from_cache} from the cache), {self.client.retries} retries, "
            f"{self.usage['prompt_tokens']} prompt and {self.usage['completion_tokens']} completion tokens"
        )
        return [r if r is not None else "" for r in results]

    def _count_usage(self, output: str) -> None:
        envelope = decode_envelope(output)
        usage = envelope.get("usage") if envelope is not None else None
        if isinstance(usage, dict):
            for key in self.usage:
                self.usage[key] += int(usage.get(key, 0))

    def loglikelihood(self, requests: list[Instance]) -> list[tuple[float, bool]]:
        """Not offered: chat endpoints score no given continuation; the generation tasks need none."""
        raise NotImplementedError(
            f"{MODEL_ID} answers generation tasks only (modality_conflict_color, "
            "modality_conflict_attribute, their _quick and _controls variants); the _loglik tasks need an "
            "in-process model"
        )

    def generate_until_multi_round(self, requests: list[Instance]) -> list[str]:
        """Not supported: the benchmark asks single-turn questions."""
        raise NotImplementedError(f"{MODEL_ID}: the modality-conflict tasks are single-turn")
