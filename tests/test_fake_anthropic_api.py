"""The fake Anthropic API, driven over HTTP by the real anthropic SDK."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import anthropic
import httpx2
import pytest
from anthropic import Anthropic, omit
from anthropic._models import FinalRequestOptions
from anthropic.types import Message, ToolUseBlock
from anthropic.types.messages import MessageBatch, MessageBatchIndividualResponse
from pydantic import BaseModel

from tests.fakes.anthropic_api import FakeAnthropicAPI
from tests.fakes.anthropic_judge import schema_answer
from tests.fakes.anthropic_models import (
    BASE_TOKENS,
    MESSAGE_OVERHEAD,
    SYSTEM_OVERHEAD,
    count_input_tokens,
    tokens,
)
from tests.fakes.judge import GARBAGE_ANSWER, judge_score

MODEL = "claude-haiku-4-5"  # not deprecated: the SDK warns on deprecated models (an error here)
OLD_VERSION = {"anthropic-version": "2023-06-01"}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "score": {"type": "integer"},
        "reason": {"type": "string"},
        "label": {"type": "string", "enum": ["bad", "ok", "good"]},
    },
    "required": ["score", "reason", "label"],
    "additionalProperties": False,
}


class NoSleepAnthropic(Anthropic):
    """The real client with its retry back-off at zero, so retry tests never wait."""

    def _calculate_retry_timeout(
        self,
        remaining_retries: int,
        options: FinalRequestOptions,
        response_headers: httpx2.Headers | None = None,
    ) -> float:
        return 0.0


@pytest.fixture(autouse=True)
def _no_anthropic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ANTHROPIC_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def server() -> Iterator[FakeAnthropicAPI]:
    with FakeAnthropicAPI() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeAnthropicAPI) -> FakeAnthropicAPI:
    server.reset()
    return server


@pytest.fixture(scope="module")
def _clients(server: FakeAnthropicAPI) -> Iterator[tuple[Anthropic, Anthropic]]:
    """One plain and one retrying client per module: building a client costs ~60 ms."""
    with (
        Anthropic(api_key="sk-ant-test", base_url=server.base_url, max_retries=0) as plain,
        NoSleepAnthropic(
            api_key="sk-ant-test", base_url=server.base_url, max_retries=2
        ) as retrying,
    ):
        yield plain, retrying


@pytest.fixture
def client(fake: FakeAnthropicAPI, _clients: tuple[Anthropic, Anthropic]) -> Anthropic:
    """The SDK without retries, pointed at the (reset) fake."""
    return _clients[0]


@pytest.fixture
def retrying_client(fake: FakeAnthropicAPI, _clients: tuple[Anthropic, Anthropic]) -> Anthropic:
    """The SDK with 2 retries and no back-off sleep."""
    return _clients[1]


def params(text: str, model: str = MODEL, **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": 256,
        "system": "You are a judge.",
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


def row(custom_id: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"custom_id": custom_id, "params": params(text, **extra)}


def create(client: Anthropic, requests: list[dict[str, Any]], **kwargs: Any) -> MessageBatch:
    return client.messages.batches.create(requests=requests, **kwargs)  # type: ignore[arg-type]


def poll(client: Anthropic, batch_id: str) -> tuple[MessageBatch, list[str]]:
    statuses: list[str] = []
    for _ in range(20):
        batch = client.messages.batches.retrieve(batch_id)
        statuses.append(batch.processing_status)
        if batch.processing_status == "ended":
            return batch, statuses
    raise AssertionError(f"batch not ended after 20 polls: {statuses}")


def results(client: Anthropic, batch_id: str) -> list[MessageBatchIndividualResponse]:
    return list(client.messages.batches.results(batch_id))


def by_id(lines: list[MessageBatchIndividualResponse]) -> dict[str, Any]:
    return {line.custom_id: line.result for line in lines}


def message(client: Anthropic, body: dict[str, Any], **kwargs: Any) -> Message:
    answer = client.messages.create(**body, **kwargs)
    assert isinstance(answer, Message)
    return answer


def text_of(msg: Message) -> str:
    block = msg.content[0]
    assert block.type == "text"
    return block.text


def counts(batch: MessageBatch) -> dict[str, int]:
    return batch.request_counts.model_dump()


TEXTS = ["first answer", "second answer [[score:4]]", "third", "fourth one", "fifth!", "sixth é"]


# ---------------------------------------------------------------------- batches


def test_batch_end_to_end(client: Anthropic, fake: FakeAnthropicAPI) -> None:
    """Create, poll to ended, stream results: shuffled, exact scores, usage and counts."""
    rows = [row(f"row-{i}", text) for i, text in enumerate(TEXTS)]

    batch = create(client, rows)

    assert batch.id.startswith("msgbatch_")
    assert batch.type == "message_batch"
    assert batch.processing_status == "in_progress"
    assert counts(batch) == {
        "processing": 6,
        "succeeded": 0,
        "errored": 0,
        "canceled": 0,
        "expired": 0,
    }
    assert batch.expires_at - batch.created_at == timedelta(hours=24)
    assert (batch.results_url, batch.ended_at, batch.archived_at) == (None, None, None)
    assert "metadata" not in fake.calls[-1].payload

    batch, statuses = poll(client, batch.id)

    assert statuses == ["ended"]
    assert counts(batch)["succeeded"] == 6 and counts(batch)["processing"] == 0
    assert batch.ended_at is not None
    assert batch.results_url == f"{fake.base_url}/v1/messages/batches/{batch.id}/results"
    lines = results(client, batch.id)
    assert [line.custom_id for line in lines] != [r["custom_id"] for r in rows]
    outcome = by_id(lines)
    for i, text in enumerate(TEXTS):
        result = outcome[f"row-{i}"]
        assert result.type == "succeeded"
        assert text_of(result.message) == str(judge_score(text))
        assert result.message.model == "claude-haiku-4-5-20251001"
        assert result.message.usage.input_tokens == count_input_tokens(rows[i]["params"])
        assert result.message.usage.output_tokens == 2
        assert result.message.usage.service_tier == "batch"
    assert text_of(outcome["row-1"].message) == "4"
    assert fake.batches_created == 1
    assert fake.request_count("create") == 1


def test_polls_per_state_and_processing_steps(client: Anthropic, fake: FakeAnthropicAPI) -> None:
    """A batch ends after polls_per_state x processing_steps polls; counts stay in processing."""
    fake.polls_per_state = 2
    fake.processing_steps = 2
    batch = create(client, [row("a", "x"), row("b", "y")])

    seen = [client.messages.batches.retrieve(batch.id) for _ in range(4)]

    assert [b.processing_status for b in seen] == ["in_progress"] * 3 + ["ended"]
    assert [counts(b)["processing"] for b in seen] == [2, 2, 2, 0]
    ended = client.messages.batches.retrieve(batch.id)
    assert ended.ended_at == seen[-1].ended_at  # polling an ended batch changes nothing


def test_advance_and_run_to_completion(client: Anthropic, fake: FakeAnthropicAPI) -> None:
    """advance() takes one step without HTTP; run_to_completion() ends every batch."""
    fake.next_batch(processing_steps=3)
    first = create(client, [row("a", "x")])
    second = create(client, [row("a", "x")])

    fake.advance(first.id)
    assert fake.batch(first.id)["processing_status"] == "in_progress"
    fake.run_to_completion()

    assert fake.batch(first.id)["processing_status"] == "ended"
    assert fake.batch(second.id)["processing_status"] == "ended"
    assert fake.request_count("retrieve") == 0


class TestCreateRefusals:
    """POST /v1/messages/batches refuses malformed batches synchronously, creating nothing."""

    CASES: ClassVar[list[tuple[str, Any, str]]] = [
        ("empty", [], "at least 1 item"),
        ("space in id", [row("a b", "x")], "custom_id: String should match pattern"),
        ("empty id", [row("", "x")], "custom_id: String should match pattern"),
        ("65 chars", [row("a" * 65, "x")], "custom_id: String should match pattern"),
        ("duplicate", [row("a", "x"), row("a", "y")], "Duplicate custom_id 'a'"),
        ("extra key", [{**row("a", "x"), "method": "POST"}], "method: Extra inputs"),
        ("no params", [{"custom_id": "a"}], "params: Field required"),
        ("no custom_id", [{"params": params("x")}], "custom_id: Field required"),
        ("params not object", [{"custom_id": "a", "params": "x"}], "valid dictionary"),
    ]

    @pytest.mark.parametrize(("name", "requests", "message"), CASES, ids=[c[0] for c in CASES])
    def test_refused(
        self, client: Anthropic, fake: FakeAnthropicAPI, name: str, requests: Any, message: str
    ) -> None:
        """Each malformed batch is a 400 invalid_request_error."""
        with pytest.raises(anthropic.BadRequestError) as raised:
            create(client, requests)

        assert raised.value.type == "invalid_request_error"
        assert message in str(raised.value.api_message)
        assert raised.value.request_id is not None
        assert raised.value.request_id.startswith("req_")
        assert fake.batches_created == 0

    def test_unknown_top_level_field(self, client: Anthropic, fake: FakeAnthropicAPI) -> None:
        """The batch has no metadata (or any other) field besides requests."""
        with pytest.raises(anthropic.BadRequestError, match="metadata: Extra inputs"):
            create(client, [row("a", "x")], extra_body={"metadata": {"job": "1"}})
        assert fake.batches_created == 0

    def test_too_many_requests(self, client: Anthropic, fake: FakeAnthropicAPI) -> None:
        """More than max_requests_per_batch (100,000 by default) rows is a 400."""
        fake.max_requests_per_batch = 2
        with pytest.raises(anthropic.BadRequestError, match="at most 2 items"):
            create(client, [row(f"r{i}", "x") for i in range(3)])
        assert create(client, [row("a", "x"), row("b", "x")]).request_counts.processing == 2

    def test_too_large(self, client: Anthropic, fake: FakeAnthropicAPI) -> None:
        """A body over max_batch_bytes (256 MB by default) is a 413 request_too_large."""
        fake.max_batch_bytes = 500
        with pytest.raises(anthropic.ContentTooLargeError) as raised:
            create(client, [row(f"r{i}", "x" * 50) for i in range(10)])
        assert str(raised.value.type) == "request_too_large"  # not in the SDK's ErrorType
        assert fake.batches_created == 0


INVALID_PARAMS: list[tuple[str, dict[str, Any], str]] = [
    ("no max_tokens", {k: v for k, v in params("x").items() if k != "max_tokens"}, "max_tokens"),
    ("no model", {k: v for k, v in params("x").items() if k != "model"}, "model: Field"),
    ("no messages", {k: v for k, v in params("x").items() if k != "messages"}, "messages: Field"),
    ("no role", params("x", messages=[{"content": "x"}]), "messages.0.role: Field required"),
    (
        "system role",
        params(
            "x", messages=[{"role": "system", "content": "s"}, {"role": "user", "content": "x"}]
        ),
        'Unexpected role "system"',
    ),
    ("unknown param", params("x", top_n=3), "top_n: Extra inputs are not permitted"),
    ("temperature", params("x", temperature=0.5), "temperature: Extra inputs"),
    ("unknown model", params("x", model="claude-nope-1"), "model: claude-nope-1"),
    ("retired model", params("x", model="claude-3-5-haiku-20241022"), "model: claude-3-5-haiku"),
    ("max_tokens too big", params("x", max_tokens=64_001), "64001 > 64000"),
    ("empty content", params("x", messages=[{"role": "user", "content": ""}]), "non-empty"),
    ("stream", params("x", stream=True), "stream"),
    (
        "no structured outputs",
        params(
            "x",
            model="claude-sonnet-4-0",
            output_config={"format": {"type": "json_schema", "schema": SCHEMA}},
        ),
        "does not support output format",
    ),
]


def test_invalid_params_become_errored_rows(client: Anthropic, fake: FakeAnthropicAPI) -> None:
    """Bad params pass the create and come back as errored invalid_request_error rows."""
    requests = [
        {"custom_id": f"bad-{i}", "params": p} for i, (_, p, _) in enumerate(INVALID_PARAMS)
    ]
    requests.append(row("good", "fine"))

    batch = create(client, requests)
    batch, _ = poll(client, batch.id)

    assert counts(batch) == {
        "processing": 0,
        "succeeded": 1,
        "errored": len(INVALID_PARAMS),
        "canceled": 0,
        "expired": 0,
    }
    outcome = by_id(results(client, batch.id))
    assert outcome["good"].type == "succeeded"
    for i, (name, _, message) in enumerate(INVALID_PARAMS):
        result = outcome[f"bad-{i}"]
        assert result.type == "errored", name
        assert result.error.type == "error"
        assert result.error.error.type == "invalid_request_error", name
        assert message in result.error.error.message, name


@pytest.mark.parametrize(
    ("name", "body", "message"), INVALID_PARAMS, ids=[case[0] for case in INVALID_PARAMS]
)
def test_invalid_params_refused_by_messages(
    client: Anthropic, name: str, body: dict[str, Any], message: str
) -> None:
    """POST /v1/messages refuses the same params synchronously (unknown models: 404)."""
    expected: type[anthropic.APIStatusError] = anthropic.BadRequestError
    if name in ("unknown model", "retired model"):
        expected = anthropic.NotFoundError
    with pytest.raises(expected) as raised:
        client.post("/v1/messages", body=body, cast_to=Message)
    assert message in str(raised.value.api_message)


def test_sampling_params_by_version_and_model(client: Anthropic) -> None:
    """temperature works on 2023-06-01 (0..1, not with top_p), never on 2026-10-21 or Opus 4.7."""
    body = params("x")

    msg = message(client, body, extra_body={"temperature": 0.0}, extra_headers=OLD_VERSION)
    assert text_of(msg) == str(judge_score("x"))
    refusals = [
        ({"temperature": 1.5}, OLD_VERSION, "temperature: range: 0..1"),
        ({"top_p": -0.1}, OLD_VERSION, "top_p: range: 0..1"),
        ({"temperature": 0.5, "top_p": 0.9}, OLD_VERSION, "cannot both be specified"),
        ({"top_k": 5}, {}, "Sampling parameters were removed in anthropic-version 2026-10-21"),
    ]
    for extra, headers, expected in refusals:
        with pytest.raises(anthropic.BadRequestError, match=expected):
            message(client, body, extra_body=extra, extra_headers=headers)
    with pytest.raises(anthropic.BadRequestError, match="deprecated for this model"):
        message(
            client,
            params("x", model="claude-opus-4-7"),
            extra_body={"temperature": 0.2},
            extra_headers=OLD_VERSION,
        )


def test_batch_rows_use_the_version_of_the_create(
    client: Anthropic, fake: FakeAnthropicAPI
) -> None:
    """A batch created under 2023-06-01 accepts temperature in its rows; range still checked."""
    requests = [row("ok", "x", temperature=0.3), row("hot", "x", temperature=2)]

    batch = create(client, requests, extra_headers=OLD_VERSION)
    fake.run_to_completion(batch.id)

    outcome = by_id(results(client, batch.id))
    assert outcome["ok"].type == "succeeded"
    assert outcome["hot"].type == "errored"
    assert "range: 0..1" in outcome["hot"].error.error.message


def test_system_messages_on_models_that_take_them(
    client: Anthropic, fake: FakeAnthropicAPI
) -> None:
    """Role system inside messages is refused on Haiku 4.5 but taken by Opus 4.8."""
    turns = [{"role": "system", "content": "be strict"}, {"role": "user", "content": "hi"}]

    msg = message(client, params("hi", model="claude-opus-4-8", messages=turns))

    assert text_of(msg) == str(judge_score("hi"))
    assert msg.usage.input_tokens == count_input_tokens(params("hi", messages=turns))


# ---------------------------------------------------------------------- outcomes


def test_cancel_keeps_finished_rows(client: Anthropic, fake: FakeAnthropicAPI) -> None:
    """Cancel: canceling (counts still processing), then ended with unfinished rows canceled."""
    fake.next_batch(processing_steps=4)
    batch = create(client, [row(f"r{i}", f"text {i}") for i in range(8)])
    client.messages.batches.retrieve(batch.id)  # one step: 2 of 8 rows ran

    canceling = client.messages.batches.cancel(batch.id)

    assert canceling.processing_status == "canceling"
    assert canceling.cancel_initiated_at is not None
    assert counts(canceling)["processing"] == 8
    assert client.messages.batches.cancel(batch.id).processing_status == "canceling"
    ended, statuses = poll(client, batch.id)
    assert statuses == ["ended"]
    assert (counts(ended)["succeeded"], counts(ended)["canceled"]) == (2, 6)
    outcome = by_id(results(client, batch.id))
    assert [outcome[f"r{i}"].type for i in range(8)] == ["succeeded"] * 2 + ["canceled"] * 6
    with pytest.raises(anthropic.BadRequestError, match="already ended"):
        client.messages.batches.cancel(batch.id)


def test_cancel_with_non_interruptible_rows(client: Anthropic, fake: FakeAnthropicAPI) -> None:
    """finished=N: N rows complete although the cancel came first; cancel_steps=0 ends at once."""
    fake.next_batch(finished=3, cancel_steps=0)
    batch = create(client, [row(f"r{i}", "x") for i in range(5)])

    ended = client.messages.batches.cancel(batch.id)

    assert ended.processing_status == "ended"
    assert (counts(ended)["succeeded"], counts(ended)["canceled"]) == (3, 2)


def test_expiry_with_partial_results(client: Anthropic, fake: FakeAnthropicAPI) -> None:
    """outcome=expire: the first `finished` rows succeeded, the rest expired."""
    fake.next_batch(outcome="expire", finished=2)
    batch = create(client, [row(f"r{i}", "x") for i in range(5)])

    ended, _ = poll(client, batch.id)

    assert (counts(ended)["succeeded"], counts(ended)["expired"]) == (2, 3)
    outcome = by_id(results(client, batch.id))
    assert sorted(result.type for result in outcome.values()) == ["expired"] * 3 + ["succeeded"] * 2


def test_expiry_by_the_clock(client: Anthropic, fake: FakeAnthropicAPI) -> None:
    """A batch still processing 24 h after creation ends on its next poll, rows expired."""
    fake.polls_per_state = 100
    batch = create(client, [row("a", "x"), row("b", "y")])

    fake.clock.advance(days=1)  # type: ignore[attr-defined]
    ended = client.messages.batches.retrieve(batch.id)

    assert ended.processing_status == "ended"
    assert counts(ended)["expired"] == 2


def test_canceled_elsewhere(client: Anthropic, fake: FakeAnthropicAPI) -> None:
    """outcome=cancel: canceled elsewhere; the client sees cancel_initiated_at, canceled rows."""
    fake.next_batch(outcome="cancel", finished=1)
    batch = create(client, [row("a", "x"), row("b", "y")])

    ended, _ = poll(client, batch.id)

    assert ended.cancel_initiated_at is not None
    assert (counts(ended)["succeeded"], counts(ended)["canceled"]) == (1, 1)


def test_scripted_errored_rows(client: Anthropic, fake: FakeAnthropicAPI) -> None:
    """errored=N with error_type, fail_requests per custom_id, and [[fail:TYPE]] markers."""
    fake.next_batch(errored=2, error_type="overloaded_error")
    fake.fail_requests["r3"] = "api_error"
    texts = ["a", "b", "c", "d", "e [[fail:invalid_request_error]]", "f"]
    batch = create(client, [row(f"r{i}", text) for i, text in enumerate(texts)])
    fake.run_to_completion(batch.id)

    outcome = by_id(results(client, batch.id))

    kinds = {
        cid: (r.type, r.error.error.type if r.type == "errored" else None)
        for cid, r in outcome.items()
    }
    assert kinds == {
        "r0": ("errored", "overloaded_error"),
        "r1": ("errored", "overloaded_error"),
        "r2": ("succeeded", None),
        "r3": ("errored", "api_error"),
        "r4": ("errored", "invalid_request_error"),
        "r5": ("succeeded", None),
    }
    assert counts(client.messages.batches.retrieve(batch.id))["errored"] == 4


def test_delete_only_after_end(client: Anthropic, fake: FakeAnthropicAPI) -> None:
    """DELETE is refused while processing; afterwards the batch is gone (404, not listed)."""
    batch = create(client, [row("a", "x")])
    with pytest.raises(anthropic.BadRequestError, match="cancel it first"):
        client.messages.batches.delete(batch.id)
    fake.run_to_completion(batch.id)

    deleted = client.messages.batches.delete(batch.id)

    assert (deleted.id, deleted.type) == (batch.id, "message_batch_deleted")
    with pytest.raises(anthropic.NotFoundError) as raised:
        client.messages.batches.retrieve(batch.id)
    assert raised.value.type == "not_found_error"
    assert list(client.messages.batches.list()) == []


def test_results_only_once_ended_and_for_29_days(client: Anthropic, fake: FakeAnthropicAPI) -> None:
    """No results before the end; a batch older than 29 days is archived and its results 404."""
    batch = create(client, [row("a", "x")])
    fake.polls_per_state = 100
    with pytest.raises(anthropic.AnthropicError, match="No `results_url`"):
        client.messages.batches.results(batch.id)  # the SDK checks results_url first
    direct = f"/v1/messages/batches/{batch.id}/results"
    with pytest.raises(anthropic.NotFoundError):
        client.get(direct, cast_to=httpx2.Response)
    fake.run_to_completion(batch.id)
    assert len(results(client, batch.id)) == 1

    fake.age_batch(batch.id, days=29)

    aged = client.messages.batches.retrieve(batch.id)
    assert aged.archived_at is not None
    assert aged.archived_at == aged.created_at + timedelta(days=29)
    with pytest.raises(anthropic.NotFoundError) as raised:
        results(client, batch.id)
    assert raised.value.type == "not_found_error"


def test_results_stream_in_small_chunks(client: Anthropic, fake: FakeAnthropicAPI) -> None:
    """Results come chunked with lines split across chunks; one line per request."""
    fake.results_chunk_bytes = 7
    batch = create(client, [row(f"r{i}", f"text {i}") for i in range(20)])
    fake.run_to_completion(batch.id)

    lines = results(client, batch.id)

    assert sorted(line.custom_id for line in lines) == sorted(f"r{i}" for i in range(20))
    assert [line.custom_id for line in lines] != [f"r{i}" for i in range(20)]
    call = fake.calls[-1]
    assert (call.route, call.status) == ("results", 200)


def test_list_pagination(client: Anthropic, fake: FakeAnthropicAPI) -> None:
    """Newest first; auto-pagination with after_id; before_id pages back; limit 1..1000."""
    ids = [create(client, [row("a", "x")]).id for _ in range(7)]
    newest_first = ids[::-1]

    assert [b.id for b in client.messages.batches.list(limit=3)] == newest_first
    assert [c.query.get("after_id") for c in fake.calls if c.route == "list"] == [
        None,
        newest_first[2],
        newest_first[5],
    ]
    page = client.messages.batches.list(limit=3)
    assert (page.has_more, page.first_id, page.last_id) == (True, newest_first[0], newest_first[2])
    assert len(client.messages.batches.list().data) == 7  # default limit 20
    back = client.messages.batches.list(before_id=newest_first[5], limit=2)
    assert [b.id for b in back.data] == newest_first[3:5]
    assert back.has_more is True
    walked = [b.id for b in back]  # auto-pagination walks back (newer) with before_id
    assert walked == newest_first[3:5] + newest_first[1:3] + newest_first[0:1]
    for bad in ({"limit": 0}, {"limit": 1001}, {"after_id": ids[0], "before_id": ids[1]}):
        with pytest.raises(anthropic.BadRequestError):
            client.messages.batches.list(**bad)


def test_unknown_batch_and_route(client: Anthropic) -> None:
    """Unknown batch ids and routes are 404 not_found_error."""
    with pytest.raises(anthropic.NotFoundError) as raised:
        client.messages.batches.retrieve("msgbatch_nope")
    assert raised.value.type == "not_found_error"
    with pytest.raises(anthropic.NotFoundError):
        client.get("/v1/nothing", cast_to=httpx2.Response)


# ---------------------------------------------------------------------- auth and headers


def test_auth_and_version_headers(client: Anthropic, fake: FakeAnthropicAPI) -> None:
    """A key is required (x-api-key or Bearer), and a known anthropic-version header."""
    with pytest.raises(anthropic.AuthenticationError) as raised:
        client.messages.batches.list(extra_headers={"Authorization": omit})
    assert raised.value.type == "authentication_error"
    assert raised.value.request_id is not None
    assert (
        client.messages.batches.list(
            extra_headers={"Authorization": omit, "x-api-key": "sk-ant-other"}
        ).data
        == []
    )
    assert fake.calls[-1].headers["x-api-key"] == "sk-ant-other"

    fake.api_keys = {"sk-ant-test"}
    with pytest.raises(anthropic.AuthenticationError, match="invalid x-api-key"):
        client.messages.batches.list(extra_headers={"Authorization": "Bearer sk-ant-wrong"})
    assert client.messages.batches.list().data == []

    with pytest.raises(anthropic.BadRequestError, match="anthropic-version: header is required"):
        client.messages.batches.list(extra_headers={"anthropic-version": omit})
    with pytest.raises(anthropic.BadRequestError, match="invalid version"):
        client.messages.batches.list(extra_headers={"anthropic-version": "2099-01-01"})
    assert fake.calls[-1].headers["authorization"] == "Bearer sk-ant-test"  # SDK 2.x sends Bearer


# ---------------------------------------------------------------------- messages


def test_answer_modes(client: Anthropic) -> None:
    """Plain text, structured output (output_config, parse, beta output_format), forced tool."""
    text = "hello"
    plain = message(client, params(text))
    assert (text_of(plain), plain.stop_reason) == (str(judge_score(text)), "end_turn")

    fmt = {"format": {"type": "json_schema", "schema": SCHEMA}}
    structured = message(client, params(text, output_config=fmt))
    assert json.loads(text_of(structured)) == schema_answer(SCHEMA, text)

    class Grade(BaseModel):
        score: int
        reason: str

    parsed = client.messages.parse(
        model=MODEL,
        max_tokens=100,
        messages=[{"role": "user", "content": text}],
        output_format=Grade,
    )
    assert parsed.parsed_output == Grade(score=judge_score(text), reason="reasoning for hello")

    beta = client.beta.messages.create(
        model=MODEL,
        max_tokens=100,
        messages=[{"role": "user", "content": text}],
        betas=["structured-outputs-2025-11-13"],
        extra_body={"output_format": {"type": "json_schema", "schema": SCHEMA}},
    )
    assert beta.content[0].type == "text"
    assert json.loads(beta.content[0].text) == schema_answer(SCHEMA, text)

    tool = {"name": "grade", "description": "Record a grade.", "input_schema": SCHEMA}
    forced = message(
        client, params(text, tools=[tool], tool_choice={"type": "tool", "name": "grade"})
    )
    assert forced.stop_reason == "tool_use"
    assert isinstance(forced.content[0], ToolUseBlock)
    assert forced.content[0].name == "grade"
    assert forced.content[0].input == schema_answer(SCHEMA, text)


def test_structured_output_refusals(client: Anthropic) -> None:
    """Unsupported models, open object schemas, a missing forced tool and thinking + forced tool."""
    open_schema = {"type": "object", "properties": {"s": {"type": "integer"}}}
    tool = {"name": "grade", "input_schema": SCHEMA}
    cases: list[tuple[dict[str, Any], str]] = [
        (
            params(
                "x",
                model="claude-sonnet-4-0",
                output_config={"format": {"type": "json_schema", "schema": SCHEMA}},
            ),
            "does not support output format",
        ),
        (
            params("x", output_config={"format": {"type": "json_schema", "schema": open_schema}}),
            "additionalProperties",
        ),
        (
            params("x", output_format={"type": "json_schema", "schema": SCHEMA}),
            "output_format: Extra inputs",  # only under the structured-outputs beta header
        ),
        (params("x", tools=[tool], tool_choice={"type": "tool", "name": "other"}), "not found"),
        (
            params(
                "x",
                max_tokens=4000,
                tools=[tool],
                tool_choice={"type": "tool", "name": "grade"},
                thinking={"type": "enabled", "budget_tokens": 2000},
            ),
            "Thinking may not be enabled when tool_choice forces tool use",
        ),
    ]
    for body, expected in cases:
        with pytest.raises(anthropic.BadRequestError) as raised:
            client.post("/v1/messages", body=body, cast_to=Message)
        assert expected in str(raised.value.api_message)


def test_markers_max_tokens_and_stop_sequences(client: Anthropic) -> None:
    """[[garbage]], [[refuse]], [[fail:TYPE]], max_tokens cuts, stop sequences."""
    garbage = message(
        client,
        params(
            "x [[garbage]]", output_config={"format": {"type": "json_schema", "schema": SCHEMA}}
        ),
    )
    assert text_of(garbage) == GARBAGE_ANSWER

    refused = message(client, params("x [[refuse]]"))
    assert (refused.stop_reason, refused.content) == ("refusal", [])
    assert refused.stop_details is not None and refused.stop_details.type == "refusal"

    with pytest.raises(anthropic.OverloadedError) as raised:
        message(client, params("x [[fail:overloaded_error]]"))
    assert raised.value.type == "overloaded_error"

    fmt = {"format": {"type": "json_schema", "schema": SCHEMA}}
    full = text_of(message(client, params("x", output_config=fmt)))
    cut = message(client, params("x", max_tokens=3, output_config=fmt))
    assert cut.stop_reason == "max_tokens"
    assert cut.usage.output_tokens == 3
    assert full.startswith(text_of(cut)) and len(text_of(cut)) < len(full)

    tool = {"name": "grade", "input_schema": SCHEMA}
    cut_tool = message(
        client,
        params("x", max_tokens=2, tools=[tool], tool_choice={"type": "tool", "name": "grade"}),
    )
    assert cut_tool.stop_reason == "max_tokens"
    assert isinstance(cut_tool.content[0], ToolUseBlock) and cut_tool.content[0].input == {}

    stopped = message(client, params("x", output_config=fmt, stop_sequences=['"reason"']))
    assert stopped.stop_reason == "stop_sequence"
    assert stopped.stop_sequence == '"reason"'
    assert text_of(stopped) == full[: full.index('"reason"')]


def test_count_tokens_matches_billed_input(client: Anthropic) -> None:
    """count_tokens equals input + cache tokens of the same request; the rule is documented."""
    assert count_input_tokens(params("hello")) == (
        BASE_TOKENS
        + SYSTEM_OVERHEAD
        + tokens("You are a judge.")
        + MESSAGE_OVERHEAD
        + tokens("hello")
    )
    tool = {"name": "grade", "description": "Record a grade.", "input_schema": SCHEMA}
    bodies = [
        params("hello"),
        params(
            "héllo wörld " * 20,
            system=[{"type": "text", "text": "A"}, {"type": "text", "text": "B"}],
        ),
        params(
            "third",
            messages=[
                {"role": "user", "content": "one"},
                {"role": "assistant", "content": "two"},
                {"role": "user", "content": [{"type": "text", "text": "three"}]},
            ],
        ),
        params("x", tools=[tool], tool_choice={"type": "tool", "name": "grade"}),
        params("x", output_config={"format": {"type": "json_schema", "schema": SCHEMA}}),
    ]
    for body in bodies:
        counted = client.messages.count_tokens(
            **{k: v for k, v in body.items() if k != "max_tokens"}
        ).input_tokens
        usage = message(client, body).usage
        assert counted == count_input_tokens(body)
        assert counted == usage.input_tokens + (usage.cache_creation_input_tokens or 0) + (
            usage.cache_read_input_tokens or 0
        )
    with pytest.raises(anthropic.BadRequestError, match="max_tokens: Extra inputs"):
        client.post("/v1/messages/count_tokens", body=params("x"), cast_to=httpx2.Response)
    with pytest.raises(anthropic.NotFoundError):
        client.messages.count_tokens(
            model="claude-nope", messages=[{"role": "user", "content": "x"}]
        )


def _cached_system(words: int, ttl: str | None = None) -> list[dict[str, Any]]:
    control: dict[str, Any] = {"type": "ephemeral"}
    if ttl:
        control["ttl"] = ttl
    return [{"type": "text", "text": "rule " * words, "cache_control": control}]


def test_prompt_caching(client: Anthropic, fake: FakeAnthropicAPI) -> None:
    """A long enough cached system prompt is written once, then read; short ones are not cached."""
    system = _cached_system(3000)  # ~3000 tokens: over Sonnet 4.6's 2048, under Haiku 4.5's 4096
    prefix = SYSTEM_OVERHEAD + tokens("rule " * 3000)
    body = params("a", model="claude-sonnet-4-6", system=system)
    total = count_input_tokens(body)

    first = message(client, body).usage
    second = message(client, {**body, "messages": [{"role": "user", "content": "b"}]}).usage

    assert (first.cache_creation_input_tokens, first.cache_read_input_tokens) == (prefix, 0)
    assert first.input_tokens == total - prefix
    assert (
        first.cache_creation is not None
        and first.cache_creation.ephemeral_5m_input_tokens == prefix
    )
    assert (second.cache_creation_input_tokens, second.cache_read_input_tokens) == (0, prefix)
    short = message(client, params("a", system=system)).usage  # Haiku 4.5: 4096 minimum
    assert (short.cache_creation_input_tokens, short.cache_read_input_tokens) == (0, 0)
    assert short.input_tokens == count_input_tokens(params("a", system=system))

    fake.clear_prompt_cache()
    hour = message(
        client, params("a", model="claude-sonnet-4-6", system=_cached_system(3000, "1h"))
    )
    assert hour.usage.cache_creation is not None
    assert hour.usage.cache_creation.ephemeral_1h_input_tokens == prefix


def test_prompt_caching_in_a_batch(client: Anthropic, fake: FakeAnthropicAPI) -> None:
    """Rows sharing a cached prefix: the first writes, the others read."""
    system = _cached_system(5000)
    requests = [row(f"r{i}", f"text {i}", system=system) for i in range(3)]
    batch = create(client, requests)
    fake.run_to_completion(batch.id)

    outcome = by_id(results(client, batch.id))

    writes = [outcome[f"r{i}"].message.usage.cache_creation_input_tokens for i in range(3)]
    reads = [outcome[f"r{i}"].message.usage.cache_read_input_tokens for i in range(3)]
    prefix = SYSTEM_OVERHEAD + tokens("rule " * 5000)
    assert (writes, reads) == ([prefix, 0, 0], [0, prefix, prefix])


def test_unknown_and_added_models(client: Anthropic, fake: FakeAnthropicAPI) -> None:
    """Unknown and retired models are a 404; add_model serves a new one."""
    with pytest.raises(anthropic.NotFoundError, match="claude-test-9"):
        message(client, params("x", model="claude-test-9"))

    fake.add_model("claude-test-9", max_output_tokens=100)

    assert (
        message(client, params("x", model="claude-test-9", max_tokens=100)).model == "claude-test-9"
    )
    with pytest.raises(anthropic.BadRequestError, match="101 > 100"):
        message(client, params("x", model="claude-test-9", max_tokens=101))


def test_message_body_too_large(client: Anthropic, fake: FakeAnthropicAPI) -> None:
    """/v1/messages bodies over max_message_bytes (32 MB by default) are a 413."""
    fake.max_message_bytes = 100
    with pytest.raises(anthropic.ContentTooLargeError):
        message(client, params("x" * 200))


def test_concurrency_probe(client: Anthropic, fake: FakeAnthropicAPI) -> None:
    """hold_messages + wait_for_in_flight make the peak of requests seen at once exact."""
    fake.hold_messages()
    answers: list[str] = []

    def call() -> None:
        answers.append(text_of(message(client, params("x"))))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    assert fake.wait_for_in_flight(4)
    fake.release_messages()
    for thread in threads:
        thread.join()

    assert fake.max_concurrent_messages == 4
    assert fake.in_flight_messages == 0
    assert answers == [str(judge_score("x"))] * 4


def test_messages_latency(client: Anthropic, fake: FakeAnthropicAPI) -> None:
    """messages_latency holds each /v1/messages request; a short client timeout trips."""
    fake.messages_latency = 1.0
    with pytest.raises(anthropic.APITimeoutError):
        message(client.with_options(timeout=0.1), params("x"))
    fake.messages_latency = 0.0
    assert text_of(message(client, params("x"))) == str(judge_score("x"))


# ---------------------------------------------------------------------- faults


FAULTS: list[tuple[str, type[Exception], int | None]] = [
    ("rate_limit_error", anthropic.RateLimitError, 429),
    ("overloaded_error", anthropic.OverloadedError, 529),
    ("api_error", anthropic.InternalServerError, 500),
    ("reset", anthropic.APIConnectionError, 0),
    ("truncated", anthropic.APIConnectionError, 200),
]


@pytest.mark.parametrize(("kind", "error", "status"), FAULTS, ids=[f[0] for f in FAULTS])
def test_fault_kinds(
    client: Anthropic,
    fake: FakeAnthropicAPI,
    kind: str,
    error: type[Exception],
    status: int | None,
) -> None:
    """Each fault reaches the SDK (max_retries=0) as the matching exception, once."""
    batch = create(client, [row("a", "x")])
    fake.fail_next("retrieve", kind)

    with pytest.raises(error) as raised:
        client.messages.batches.retrieve(batch.id)

    if isinstance(raised.value, anthropic.APIStatusError):
        assert raised.value.type == kind
        assert raised.value.request_id is not None
    if kind == "rate_limit_error":
        assert isinstance(raised.value, anthropic.APIStatusError)
        assert raised.value.response.headers["retry-after"] == "1"
    assert fake.calls[-1].status == status
    assert client.messages.batches.retrieve(batch.id).id == batch.id  # consumed


def test_lost_create(client: Anthropic, fake: FakeAnthropicAPI) -> None:
    """A create whose answer is lost: the client sees an error, but the batch exists."""
    fake.fail_next("create", "lost")

    with pytest.raises(anthropic.APIConnectionError):
        create(client, [row("a", "x")])

    assert fake.batches_created == 1
    assert [call.status for call in fake.calls if call.route == "create"] == [0]
    listed = list(client.messages.batches.list())
    assert [b.request_counts.processing for b in listed] == [1]


def test_lost_create_retried_by_the_sdk_duplicates(
    retrying_client: Anthropic, fake: FakeAnthropicAPI
) -> None:
    """The SDK's own retry of a lost create makes a second batch: clients must guard creates."""
    fake.fail_next("create", "lost")

    create(retrying_client, [row("a", "x")])

    assert fake.batches_created == 2
    calls = [call for call in fake.calls if call.route == "create"]
    assert [call.status for call in calls] == [0, 200]
    assert [call.headers["x-stainless-retry-count"] for call in calls] == ["0", "1"]


def test_error_after_effect(client: Anthropic, fake: FakeAnthropicAPI) -> None:
    """after_effect=True: the create happens, yet the client gets the 500."""
    fake.fail_next("create", "api_error", after_effect=True)
    with pytest.raises(anthropic.InternalServerError):
        create(client, [row("a", "x")])
    assert fake.batches_created == 1


def test_retries_honour_retry_after(retrying_client: Anthropic, fake: FakeAnthropicAPI) -> None:
    """429 then 529 are retried by the SDK; the calls record each attempt."""
    fake.fail_next("messages", "rate_limit_error", retry_after_ms=1)
    fake.fail_next("messages", "overloaded_error")

    msg = message(retrying_client, params("x"))

    assert text_of(msg) == str(judge_score("x"))
    calls = [call for call in fake.calls if call.route == "messages"]
    assert [call.status for call in calls] == [429, 529, 200]
    assert calls[0].payload == params("x")


def test_timeout_fault(client: Anthropic, fake: FakeAnthropicAPI) -> None:
    """A held request makes the SDK time out; the next one is answered."""
    fake.fail_next("list", "timeout", delay=1.0)
    with pytest.raises(anthropic.APITimeoutError):
        client.with_options(timeout=0.2).messages.batches.list()
    assert client.messages.batches.list().data == []


def test_hold_fault_waits_for_release(client: Anthropic, fake: FakeAnthropicAPI) -> None:
    """A ``hold`` fault keeps the request (counted in ``held``) until released, then
    performs it; requests after it are served at once."""
    fake.fail_next("create", "hold")
    done: list[str] = []
    worker = threading.Thread(target=lambda: done.append(create(client, [row("a", "x")]).id))
    worker.start()
    deadline = time.monotonic() + 10
    while fake.held == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake.held == 1 and not done
    assert create(client, [row("b", "x")]).id
    fake.release_held()
    worker.join(timeout=10)
    assert len(done) == 1 and done[0] in fake.batch_ids()
    assert fake.batches_created == 2


def test_a_request_held_at_reset_is_dropped(client: Anthropic, fake: FakeAnthropicAPI) -> None:
    """A request still held at ``reset()`` is never performed nor recorded."""
    fake.fail_next("create", "hold")
    failed: list[BaseException] = []

    def create_one() -> None:
        try:
            create(client, [row("a", "x")])
        except anthropic.APIConnectionError as error:
            failed.append(error)

    worker = threading.Thread(target=create_one)
    worker.start()
    deadline = time.monotonic() + 10
    while fake.held == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake.held == 1
    fake.reset()
    worker.join(timeout=10)
    assert not worker.is_alive() and len(failed) == 1
    assert (fake.batches_created, fake.calls, fake.held) == (0, [], 0)


def test_truncated_results_stream(client: Anthropic, fake: FakeAnthropicAPI) -> None:
    """A results stream cut short raises while iterating; the next download is whole."""
    fake.results_chunk_bytes = 50
    batch = create(client, [row(f"r{i}", "x") for i in range(10)])
    fake.run_to_completion(batch.id)
    fake.fail_next("results", "truncated")

    with pytest.raises((httpx2.HTTPError, json.JSONDecodeError)):
        results(client, batch.id)

    assert len(results(client, batch.id)) == 10


def test_fail_next_rejects_unknown_names(fake: FakeAnthropicAPI) -> None:
    """Typos in routes, fault kinds and scenario knobs fail loudly."""
    with pytest.raises(ValueError, match="unknown route"):
        fake.fail_next("retreive", "reset")
    with pytest.raises(ValueError, match="unknown fault kind"):
        fake.fail_next("retrieve", "503")
    with pytest.raises(ValueError, match="unknown scenario knobs"):
        fake.next_batch(outcom="expire")
    with pytest.raises(ValueError, match="outcome must be one of"):
        fake.next_batch(outcome="explode")


def test_reset(client: Anthropic, fake: FakeAnthropicAPI) -> None:
    """reset() forgets batches, calls, faults, the cache and knobs, and drops held requests."""
    create(client, [row("a", "x")])
    fake.fail_next("create", "timeout", delay=30)
    with pytest.raises(anthropic.APITimeoutError):
        create(client.with_options(timeout=0.1), [row("b", "x")])
    fake.fail_next("list", "api_error")
    fake.polls_per_state = 5
    fake.add_model("claude-test-9")

    fake.reset()  # the held create is released as stale: never performed, never recorded

    assert (fake.calls, fake.batches_created, fake.polls_per_state) == ([], 0, 1)
    assert "claude-test-9" not in fake.models
    assert client.messages.batches.list().data == []
    assert [call.route for call in fake.calls] == ["list"]


def test_messages_report_and_enforce_the_requests_limit(
    client: Anthropic, fake: FakeAnthropicAPI
) -> None:
    """As Anthropic: anthropic-ratelimit-requests-* on every answer (the reset an RFC 3339
    time); over the limit, 429 rate_limit_error with retry-after."""
    fake.messages_rpm, fake.messages_window = 2, 3600  # hours: no window ends mid-test
    seen = [
        client.messages.with_raw_response.create(**params("Rate this.")).headers for _ in range(2)
    ]
    assert [h["anthropic-ratelimit-requests-remaining"] for h in seen] == ["1", "0"]
    assert all(h["anthropic-ratelimit-requests-limit"] == "2" for h in seen)
    reset = datetime.fromisoformat(seen[1]["anthropic-ratelimit-requests-reset"])
    assert 0 < (reset - datetime.now(UTC)).total_seconds() <= 3600
    with pytest.raises(anthropic.RateLimitError) as refused:
        client.messages.create(**params("Rate this."))
    response = refused.value.response
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert 1 <= int(response.headers["retry-after"]) <= 3600
    assert response.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert fake.rate_limited == 1
