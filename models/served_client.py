"""The HTTP side of served models: one ``/v1/chat/completions`` call, retried, spread over servers.

Throttling, server failures and broken connections are retried with backoff on the next server; other
4xx fail at once. The API key only ever goes in the ``Authorization`` header.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import random
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import httpx

from modality_conflict.models.errors import ModelArgumentError

RETRY_STATUSES = frozenset({408, 409, 429}) | frozenset(range(500, 600))
"""HTTP statuses worth another try: throttling and server-side failures."""


class EndpointError(ModelArgumentError):
    """A request that failed for good (after its retries), or an answer that is not a chat completion."""


class ClientRequestError(EndpointError):
    """The endpoint refused the request itself (a 4xx other than 429): retrying cannot help."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_base_urls(value: str | Sequence[str]) -> list[str]:
    """``base_url`` model argument: one URL, or several separated by ``|`` (lmms-eval splits on commas)."""
    parts = value.split("|") if isinstance(value, str) else list(value)
    urls = [part.strip().rstrip("/") for part in parts if part.strip()]
    if not urls:
        raise ModelArgumentError(
            "modality_conflict_openai: base_url is empty (e.g. http://localhost:8000/v1)"
        )
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise ModelArgumentError(f"modality_conflict_openai: base_url {url!r} is not an http(s) URL")
    return urls


class ChatClient:
    """Posts chat completions to one or several OpenAI-compatible servers (thread-safe), taking turns.

    The first retry waits about ``backoff`` seconds, each next one twice as long, never more than
    ``max_backoff`` (jittered by up to 25%).
    """

    def __init__(
        self,
        base_urls: Sequence[str],
        *,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 120.0,
        max_retries: int = 5,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
    ) -> None:
        if max_retries < 0 or backoff < 0 or timeout <= 0:
            raise ModelArgumentError("max_retries and backoff must be >= 0 and timeout > 0")
        self.base_urls = list(base_urls)
        self.max_retries = int(max_retries)
        self.backoff = float(backoff)
        self.max_backoff = float(max_backoff)
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(api_key_env, "") if api_key_env else ""
        if key:
            headers["Authorization"] = f"Bearer {key}"
        self._http = httpx.Client(timeout=timeout, headers=headers)
        self._turns = itertools.cycle(range(len(self.base_urls)))
        self._lock = threading.Lock()
        self.retries = 0
        """Retries made so far (all requests)."""

    def close(self) -> None:
        self._http.close()

    def _next_url(self) -> str:
        with self._lock:
            return self.base_urls[next(self._turns)]

    def _wait(self, attempt: int, retry_after: str | None) -> None:
        delay = min(self.backoff * 2**attempt, self.max_backoff)
        if retry_after:
            with contextlib.suppress(ValueError):
                delay = min(max(float(retry_after), delay), self.max_backoff)
        time.sleep(delay * (1 + 0.25 * random.random()))

    def get_json(self, path: str) -> Any:
        """GET ``path`` from the first server (no retries); its JSON body."""
        url = self.base_urls[0] + path
        try:
            response = self._http.get(url)
            response.raise_for_status()
            return response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise EndpointError(f"GET {url}: {_short(str(error))}") from None

    def tokenize(self, body: Mapping[str, Any]) -> list[int] | None:
        """POST ``body`` to the first server's ``/tokenize`` (vLLM's, at the server root, beside ``/v1``);
        the token ids, or None where the endpoint offers no such route (no retries: a start-up question)."""
        root = self.base_urls[0].removesuffix("/v1")
        try:
            response = self._http.post(root + "/tokenize", content=json.dumps(body))
            tokens = response.json().get("tokens") if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        if isinstance(tokens, list) and all(isinstance(t, int) for t in tokens):
            return tokens
        return None

    def chat(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """POST one chat completion; its decoded JSON (a dict with ``choices``), retried as described."""
        payload = json.dumps(body)
        problem = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                with self._lock:
                    self.retries += 1
            url = self._next_url() + "/chat/completions"
            retry_after = None
            try:
                response = self._http.post(url, content=payload)
            except httpx.TimeoutException:
                problem = f"{url}: timed out"
            except httpx.TransportError as error:
                problem = f"{url}: {_short(str(error)) or type(error).__name__}"
            else:
                if response.status_code == 200:
                    try:
                        data = response.json()
                    except ValueError:
                        data = None
                    if isinstance(data, dict) and isinstance(data.get("choices"), list) and data["choices"]:
                        return data
                    problem = f"{url}: the answer is not a chat completion: {_short(response.text)!r}"
                elif response.status_code in RETRY_STATUSES:
                    retry_after = response.headers.get("retry-after")
                    problem = f"{url}: HTTP {response.status_code} {_short(response.text)}"
                else:
                    raise ClientRequestError(
                        f"{url}: HTTP {response.status_code} {_short(response.text)}", response.status_code
                    )
            if attempt < self.max_retries:
                self._wait(attempt, retry_after)
        raise EndpointError(f"request failed after {self.max_retries + 1} tries; last: {problem}")
