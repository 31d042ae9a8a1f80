"""Direct mode's transport (``providers/http.JsonPoster``) against the fakes, over real HTTP:
connections reused and bounded by the calls in flight, each provider's headers, and every
outcome a ``Reply`` that says whether the request may have run."""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import anthropic._constants
from pydantic import SecretStr

from batchgrader.providers.anthropic.direct import API_VERSION, anthropic_direct
from batchgrader.providers.base import Reply
from batchgrader.providers.http import JsonPoster
from batchgrader.providers.openai.direct import openai_direct
from batchgrader.settings import AnthropicSettings, ApiSettings
from tests.conftest import FAKE_ANTHROPIC_KEY, FAKE_KEY
from tests.fakes.anthropic_api import FakeAnthropicAPI
from tests.fakes.batch_api import FakeBatchAPI

CHAT = "/v1/chat/completions"


def _body(i: int) -> dict[str, Any]:
    text = f"Answer {i}. [[score:{i % 5 + 1}]]"
    return {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": text}]}


def _poster(fake: FakeBatchAPI, *, timeout: float = 10.0, **api: Any) -> JsonPoster:
    settings = ApiSettings(key=SecretStr(FAKE_KEY), **api)
    return openai_direct(settings, fake.base_url, timeout=timeout)


def _send(poster: JsonPoster, bodies: list[dict[str, Any]], at_once: int) -> list[Reply]:
    async def main() -> list[Reply]:
        slots = asyncio.Semaphore(at_once)

        async def one(body: dict[str, Any]) -> Reply:
            async with slots:
                return await poster.send(CHAT, body)

        try:
            return await asyncio.gather(*(one(b) for b in bodies))
        finally:
            await poster.aclose()

    return asyncio.run(main())


def test_calls_reuse_as_many_connections_as_were_in_flight(fake_api: FakeBatchAPI) -> None:
    fake_api.chat_latency = 0.01
    poster = _poster(fake_api)
    replies = _send(poster, [_body(i) for i in range(64)], at_once=8)
    assert [r.status for r in replies] == [200] * 64
    # A connection for each call in flight at once, kept alive: not one for each call.
    assert fake_api.max_chat_in_flight <= fake_api.connections_opened <= 8
    scores = [r.body["choices"][0]["message"]["content"] for r in replies]
    assert scores == [str(i % 5 + 1) for i in range(64)]  # each answer to its own request


def test_openai_calls_carry_the_key_organization_and_project(fake_api: FakeBatchAPI) -> None:
    poster = _poster(fake_api, organization="org-abc", project="proj_xyz")
    _send(poster, [_body(0)], at_once=1)
    (call,) = fake_api.calls
    assert call.path == CHAT
    assert call.headers["authorization"] == f"Bearer {FAKE_KEY}"
    assert call.headers["openai-organization"] == "org-abc"
    assert call.headers["openai-project"] == "proj_xyz"
    assert call.headers["user-agent"].startswith("batchgrader/")


def test_anthropic_calls_speak_the_sdks_api_version(fake_anthropic: FakeAnthropicAPI) -> None:
    # The batch path (SDK) and the direct path (JsonPoster) must send the same version:
    # it decides which request fields are accepted.
    assert API_VERSION == anthropic._constants.ANTHROPIC_API_VERSION
    settings = AnthropicSettings(key=SecretStr(FAKE_ANTHROPIC_KEY))
    poster = anthropic_direct(settings, fake_anthropic.base_url, timeout=10.0)
    body = {
        "model": "claude-haiku-4-5",
        "max_tokens": 16,
        "messages": [{"role": "user", "content": "Answer 1."}],
    }

    async def main() -> Reply:
        try:
            return await poster.send("/v1/messages", body)
        finally:
            await poster.aclose()

    reply = asyncio.run(main())
    assert reply.status == 200, reply.body
    assert reply.body["type"] == "message"


def test_a_refused_connection_was_not_sent() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = ApiSettings(key=SecretStr(FAKE_KEY))
    poster = openai_direct(settings, f"http://127.0.0.1:{port}/v1", timeout=5.0)
    (reply,) = _send(poster, [_body(0)], at_once=1)
    assert (reply.status, reply.sent) == (0, False)
    assert reply.error is not None and reply.error.startswith("ConnectError: ")


def test_a_dropped_connection_may_have_run(fake_api: FakeBatchAPI) -> None:
    fake_api.inject_fault("chat", "reset")
    (reply,) = _send(_poster(fake_api), [_body(0)], at_once=1)
    assert (reply.status, reply.sent) == (0, True)
    assert reply.error is not None and FAKE_KEY not in reply.error


def test_a_timeout_may_have_run_and_says_how_long_it_waited(fake_api: FakeBatchAPI) -> None:
    fake_api.inject_fault("chat", "timeout", delay=2)
    (reply,) = _send(_poster(fake_api, timeout=0.2), [_body(0)], at_once=1)
    assert (reply.status, reply.sent) == (0, True)
    assert reply.error == "ReadTimeout: no answer within 0.2 s (api.timeout_seconds)"


def test_an_error_answer_keeps_its_body_wait_and_rate_limits(fake_api: FakeBatchAPI) -> None:
    fake_api.inject_fault("chat", "429", retry_after_ms=250)
    replies = _send(_poster(fake_api), [_body(0), _body(1)], at_once=1)
    assert replies[0].status == 429
    assert replies[0].retry_after == 0.25
    assert replies[0].body["error"]["code"] == "rate_limit_exceeded"
    assert replies[1].status == 200 and replies[1].retry_after is None
