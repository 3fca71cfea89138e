"""A small real OpenAI-compatible HTTP server on loopback, for the served model's fault cases.

It answers ``GET /v1/models`` and ``POST /v1/chat/completions`` with a fixed next-token distribution over a
vocabulary of :data:`VOCAB` tokens (the answer ``red`` with probability one half), and misbehaves on request:
a number of 500s, 429s (with ``Retry-After``) or garbage bodies before the good answer to each distinct
request, no logprobs at all, or a cap on ``top_logprobs`` (400 beyond it, as OpenAI answers, or a silent
one). It counts what it was asked and keeps the ``Authorization`` headers it saw.

Like OpenAI's API it has no ``/tokenize`` and refuses fields it does not know (``add_special_tokens``), unless
``template_bos`` is set: then it tokenizes like vLLM (``POST /tokenize``, a tokenizer that adds ``<s>`` when
asked; the template writes that ``<s>`` itself when ``template_bos`` is True) and keeps the
``add_special_tokens`` fields of the chat requests.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANSWER = "red"
OTHERS = [f"tok{i}" for i in range(29)]
VOCAB = 1 + len(OTHERS)
ANSWER_PROBABILITY = 0.5
EXACT_ENTROPY = -(ANSWER_PROBABILITY * math.log(ANSWER_PROBABILITY)) - len(OTHERS) * (
    (1 - ANSWER_PROBABILITY) / len(OTHERS)
) * math.log((1 - ANSWER_PROBABILITY) / len(OTHERS))
"""The entropy (nats) of the server's next-token distribution."""


@dataclass
class Behaviour:
    """How the fake server answers: faults before each good answer, and what the good answers hold."""

    errors_500: int = 0
    errors_429: int = 0
    garbage: int = 0
    logprobs: bool = True
    max_top_logprobs: int | None = None
    silent_cap: int | None = None
    template_bos: bool | None = None
    special_token_fields: list[Any] = field(default_factory=list)
    served_faults: dict[str, int] = field(default_factory=dict)
    authorizations: list[str] = field(default_factory=list)
    chat_requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0
    _faults: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fault_for(self, key: str) -> str | None:
        """The fault to answer this request with (each request key gets its faults once, in order)."""
        with self.lock:
            done = self._faults.get(key, 0)
            self._faults[key] = done + 1
        plan = ["500"] * self.errors_500 + ["429"] * self.errors_429 + ["garbage"] * self.garbage
        fault = plan[done] if done < len(plan) else None
        if fault is not None:
            with self.lock:
                self.served_faults[fault] = self.served_faults.get(fault, 0) + 1
        return fault

    @property
    def distinct_requests(self) -> int:
        """How many different request bodies the server was sent."""
        with self.lock:
            return len(self._faults)


def _distribution(top: int) -> list[dict[str, Any]]:
    rest = math.log((1 - ANSWER_PROBABILITY) / len(OTHERS))
    entries = [{"token": " " + ANSWER, "logprob": math.log(ANSWER_PROBABILITY)}]
    entries += [{"token": token, "logprob": rest} for token in OTHERS]
    return entries if top == -1 else entries[:top]


def completion(body: dict[str, Any], behaviour: Behaviour) -> dict[str, Any]:
    top = int(body.get("top_logprobs") or 0)
    logprobs = None
    if behaviour.logprobs and body.get("logprobs"):
        first = {
            "token": " " + ANSWER,
            "logprob": math.log(ANSWER_PROBABILITY),
            "top_logprobs": _distribution(top),
        }
        logprobs = {"content": [first]}
    return {
        "id": "fake",
        "object": "chat.completion",
        "model": body.get("model"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": ANSWER},
                "logprobs": logprobs,
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 11, "completion_tokens": 1, "total_tokens": 12},
    }


def _handler(behaviour: Behaviour, counts: list[int]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, payload: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:  # noqa: N802
            if self.path.rstrip("/") == "/v1/models":
                self._send(200, json.dumps({"object": "list", "data": [{"id": "fake-model"}]}).encode())
            else:
                self._send(404, b'{"error": "not found"}')

        def do_POST(self) -> None:  # noqa: N802
            with behaviour.lock:
                behaviour.in_flight += 1
                behaviour.max_in_flight = max(behaviour.max_in_flight, behaviour.in_flight)
            try:
                self._answer_post()
            finally:
                with behaviour.lock:
                    behaviour.in_flight -= 1

        def _answer_post(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length))
            if self.path.rstrip("/") != "/v1/chat/completions":
                self._tokenize(body)
                return
            if behaviour.template_bos is None and "add_special_tokens" in body:
                self._send(
                    400, b'{"error": {"message": "Unrecognized request argument: add_special_tokens"}}'
                )
                return
            with behaviour.lock:
                behaviour.chat_requests += 1
                counts[0] += 1
                behaviour.authorizations.append(self.headers.get("Authorization", ""))
            key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
            fault = behaviour.fault_for(key)
            if fault == "500":
                self._send(500, b'{"error": "internal"}')
                return
            if fault == "429":
                self._send(429, b'{"error": "slow down"}', {"Retry-After": "0"})
                return
            if fault == "garbage":
                self._send(200, b"<html>proxy error</html>")
                return
            top = int(body.get("top_logprobs") or 0)
            if behaviour.max_top_logprobs is not None and (top == -1 or top > behaviour.max_top_logprobs):
                self._send(400, b'{"error": {"message": "top_logprobs must be at most 20"}}')
                return
            if behaviour.silent_cap is not None and (top == -1 or top > behaviour.silent_cap):
                body = {**body, "top_logprobs": behaviour.silent_cap}
            with behaviour.lock:
                behaviour.special_token_fields.append(body.get("add_special_tokens", "absent"))
            self._send(200, json.dumps(completion(body, behaviour)).encode())

        def _tokenize(self, body: dict[str, Any]) -> None:
            if self.path.rstrip("/") != "/tokenize" or behaviour.template_bos is None:
                self._send(404, b'{"detail": "Not Found"}')
                return
            bos = 1
            tokens = [bos] * bool(behaviour.template_bos) + [7, 8, 9]
            tokens = [bos] * bool(body.get("add_special_tokens")) + tokens
            self._send(200, json.dumps({"count": len(tokens), "tokens": tokens}).encode())

    return Handler


class FakeServer:
    """The fake server on an ephemeral loopback port, in a thread; use as a context manager. Servers given
    one :class:`Behaviour` share it (its counts and each request's faults)."""

    def __init__(self, behaviour: Behaviour | None = None) -> None:
        self.behaviour = behaviour or Behaviour()
        self._counts = [0]
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.behaviour, self._counts))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def chat_requests(self) -> int:
        """Chat requests this server (not its behaviour's other servers) received."""
        return self._counts[0]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
