"""The served model's client, envelope, cache and start-up checks against a real HTTP server on loopback.

The whole path through the lmms-eval CLI is ``tests/e2e/test_served_cli.py`` (this server) and
``tests/e2e/test_served_vllm.py`` (a real vLLM server).
"""

from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import pytest
from served_fake import ANSWER, EXACT_ENTROPY, VOCAB, Behaviour, FakeServer, completion

from modality_conflict.models.errors import ModelArgumentError
from modality_conflict.models.response_cache import ResponseCache, request_key
from modality_conflict.models.served_client import (
    ChatClient,
    ClientRequestError,
    EndpointError,
    parse_base_urls,
)
from modality_conflict.models.served_envelope import MalformedResponseError, answer_logprobs, served_envelope
from modality_conflict.models.served_model import ModalityConflictOpenAI

BODY = {
    "model": "fake-model",
    "messages": [{"role": "user", "content": "q"}],
    "logprobs": True,
    "top_logprobs": -1,
}


def _client(*servers: FakeServer, **kwargs: object) -> ChatClient:
    return ChatClient([s.base_url for s in servers], backoff=0.0, **kwargs)  # type: ignore[arg-type]


def test_retries_500_429_and_garbage_then_answers() -> None:
    with FakeServer(Behaviour(errors_500=2, errors_429=1, garbage=1)) as server:
        client = _client(server, max_retries=4)
        data = client.chat(BODY)
    assert data["choices"][0]["message"]["content"] == ANSWER
    assert server.behaviour.chat_requests == 5 and client.retries == 4


def test_gives_up_with_the_last_problem() -> None:
    with FakeServer(Behaviour(garbage=10)) as server:
        client = _client(server, max_retries=2)
        with pytest.raises(EndpointError, match=r"failed after 3 tries; last: .*not a chat completion"):
            client.chat(BODY)
    assert server.behaviour.chat_requests == 3


def test_client_errors_are_not_retried() -> None:
    with FakeServer(Behaviour(max_top_logprobs=20)) as server:
        client = _client(server, max_retries=5)
        with pytest.raises(ClientRequestError, match="HTTP 400"):
            client.chat(BODY)
    assert server.behaviour.chat_requests == 1


def test_refused_connection_is_retried_then_reported() -> None:
    with FakeServer() as server:
        url = server.base_url
    client = ChatClient([url], backoff=0.0, max_retries=1)
    with pytest.raises(EndpointError, match="failed after 2 tries"):
        client.chat(BODY)


def test_several_base_urls_share_the_load(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MC_TEST_KEY", "sk-test-secret")
    with FakeServer() as first, FakeServer() as second:
        client = _client(first, second, api_key_env="MC_TEST_KEY")
        for _ in range(6):
            client.chat(BODY)
    assert first.behaviour.chat_requests == 3 and second.behaviour.chat_requests == 3
    assert set(first.behaviour.authorizations) == {"Bearer sk-test-secret"}


@pytest.mark.parametrize("value", ["", "ftp://x", "|"])
def test_bad_base_urls(value: str) -> None:
    with pytest.raises(ModelArgumentError, match="base_url"):
        parse_base_urls(value)


def test_envelope_full_vocabulary_is_exact() -> None:
    envelope = json.loads(
        served_envelope(completion(BODY, Behaviour()), answers=("red", "blue"), vocab_size=VOCAB)
    )
    assert envelope["estimator"] == "full_vocab" and envelope["text"] == ANSWER
    assert envelope["entropy"] == pytest.approx(EXACT_ENTROPY, abs=1e-12)
    assert envelope["answer_logprobs"]["red"] == pytest.approx(math.log(0.5))
    assert envelope["answer_logprobs"]["blue"] == -1e6
    assert "lens" not in envelope and "hidden states" in envelope["lens_reason"]
    assert envelope["usage"] == {"prompt_tokens": 11, "completion_tokens": 1}


def test_envelope_top_k_bounds_hold_the_exact_entropy() -> None:
    data = completion({**BODY, "top_logprobs": 5}, Behaviour())
    envelope = json.loads(served_envelope(data, answers=("red",), vocab_size=VOCAB))
    low, high = envelope["entropy_bounds"]
    # The fake's tail is uniform: the upper bound is attained.
    assert envelope["estimator"] == "top_k" and low < EXACT_ENTROPY and high == pytest.approx(EXACT_ENTROPY)
    assert envelope["uncovered_mass"] == pytest.approx(0.5 * 25 / 29)


def test_answer_logprobs_sum_the_forms_of_an_answer() -> None:
    pairs = [(" red", math.log(0.2)), ("Red", math.log(0.1)), (" bl", math.log(0.3)), ("b", math.log(0.05))]
    values = answer_logprobs(pairs, ("red", "black", "green"))
    assert values["red"] == pytest.approx(math.log(0.3))
    assert values["black"] == pytest.approx(math.log(0.3))  # the longest start of "black" only
    assert values["green"] == -1e6


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"choices": [{"message": {"content": "red"}, "logprobs": None}]}, "no logprobs"),
        ({"choices": []}, "no choices"),
        (
            {
                "choices": [
                    {
                        "message": {"content": "red"},
                        "logprobs": {"content": [{"top_logprobs": [{"token": "a", "logprob": 0.7}]}]},
                    }
                ]
            },
            "not a log-probability",
        ),
        (
            {
                "choices": [
                    {
                        "message": {"content": "red"},
                        "logprobs": {
                            "content": [
                                {
                                    "top_logprobs": [
                                        {"token": "a", "logprob": -0.01},
                                        {"token": "b", "logprob": -0.01},
                                    ]
                                }
                            ]
                        },
                    }
                ]
            },
            "not a distribution",
        ),
    ],
)
def test_malformed_responses(data: dict, message: str) -> None:
    with pytest.raises(MalformedResponseError, match=message):
        served_envelope(data, answers=("red",), vocab_size=VOCAB)


def test_cache_round_trip_and_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "cache" / "responses.sqlite"
    cache = ResponseCache(path)
    key = request_key(BODY)
    assert cache.get(key) is None
    cache.put(key, {"output": "x"})
    cache.close()
    reopened = ResponseCache(path)
    assert reopened.get(key) == {"output": "x"} and len(reopened) == 1
    reopened.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE responses SET response = 'not json'")
    assert ResponseCache(path).get(key) is None
    assert request_key({**BODY, "top_logprobs": 20}) != key


def test_start_learns_the_vocabulary(tmp_path: Path) -> None:
    with FakeServer() as server:
        model = ModalityConflictOpenAI(base_url=server.base_url, cache=str(tmp_path / "c.sqlite"))
    assert (model.model_name, model.top_logprobs, model.vocab_size) == ("fake-model", -1, VOCAB)


def test_start_refuses_an_endpoint_without_logprobs() -> None:
    with FakeServer(Behaviour(logprobs=False)) as server, pytest.raises(EndpointError) as error:
        ModalityConflictOpenAI(base_url=server.base_url, cache="off")
    assert "returned no logprobs" in str(error.value) and "modality_conflict_sampled" in str(error.value)
    assert "\n" not in str(error.value)


def test_capped_endpoint_needs_the_vocabulary_size(tmp_path: Path) -> None:
    with FakeServer(Behaviour(max_top_logprobs=20)) as server:
        with pytest.raises(ModelArgumentError, match="pass vocab_size=N"):
            ModalityConflictOpenAI(base_url=server.base_url, cache="off")
        model = ModalityConflictOpenAI(base_url=server.base_url, cache="off", vocab_size=VOCAB)
    assert (model.top_logprobs, model.vocab_size) == (20, VOCAB)


def test_a_silent_cap_is_not_taken_for_the_whole_vocabulary() -> None:
    """An endpoint that answers top_logprobs=-1 with 20 tokens: their mass is not 1, so top_k it is."""
    with FakeServer(Behaviour(silent_cap=20)) as server:
        with pytest.raises(ModelArgumentError, match="pass vocab_size=N"):
            ModalityConflictOpenAI(base_url=server.base_url, cache="off")
        model = ModalityConflictOpenAI(base_url=server.base_url, cache="off", vocab_size=VOCAB)
    assert (model.top_logprobs, model.vocab_size) == (20, VOCAB)


def test_unknown_model_args_are_refused() -> None:
    with pytest.raises(ModelArgumentError, match="unknown model_args"):
        ModalityConflictOpenAI(base_url="http://127.0.0.1:9/v1", nonsense=1)


@pytest.mark.parametrize(
    ("template_bos", "setting", "sent"),
    [
        (None, "auto", "absent"),  # OpenAI-like: no /tokenize, and the field would be refused
        (False, "auto", True),  # the template writes no BOS: add the tokenizer's, as in-process
        (True, "auto", "absent"),  # the template writes it: one BOS already
        (True, "true", True),
        (False, "false", False),
    ],
)
def test_prompts_get_the_in_process_bos(template_bos: bool | None, setting: str, sent: object) -> None:
    """The start decides from ``/tokenize``; an endpoint that refuses the field is never sent it."""
    with FakeServer(Behaviour(template_bos=template_bos)) as server:
        model = ModalityConflictOpenAI(base_url=server.base_url, cache="off", add_special_tokens=setting)
        assert model.add_special_tokens == (None if sent == "absent" else sent)
        body = {"model": model.model_name, "messages": [{"role": "user", "content": "q"}]}
        if model.add_special_tokens is not None:
            body["add_special_tokens"] = model.add_special_tokens
        model.client.chat(body)
    assert server.behaviour.special_token_fields[-1] == sent


def test_bad_add_special_tokens_is_refused() -> None:
    with FakeServer() as server, pytest.raises(ModelArgumentError, match="add_special_tokens must be"):
        ModalityConflictOpenAI(base_url=server.base_url, cache="off", add_special_tokens="maybe")
