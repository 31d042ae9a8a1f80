"""The fake Batch API, driven over HTTP by the real openai SDK."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Final, Literal, NamedTuple

import openai
import pytest
from openai import OpenAI
from openai.types import Batch
from openai.types.chat import ChatCompletion
from openai.types.responses import Response
from openai.types.shared_params import ResponseFormatJSONSchema

from tests.fakes.batch_api import FakeBatchAPI
from tests.fakes.judge import (
    GARBAGE_ANSWER,
    REFUSAL_TEXT,
    count_prompt_tokens,
    judge_answer,
    judge_score,
    schema_answer,
)
from tests.fakes.validation import validate_request_line

Endpoint = Literal["/v1/chat/completions", "/v1/responses"]
CHAT: Final = "/v1/chat/completions"
RESPONSES: Final = "/v1/responses"
MODEL = "gpt-4o-mini"
TERMINAL = ("completed", "failed", "expired", "cancelled")


@pytest.fixture(scope="module")
def server() -> Iterator[FakeBatchAPI]:
    with FakeBatchAPI() as fake:
        yield fake


@pytest.fixture
def fake(server: FakeBatchAPI) -> FakeBatchAPI:
    server.reset()
    return server


@pytest.fixture
def client(fake: FakeBatchAPI) -> Iterator[OpenAI]:
    with OpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0) as sdk:
        yield sdk


@pytest.fixture
def retrying_client(fake: FakeBatchAPI) -> Iterator[OpenAI]:
    with OpenAI(api_key="sk-test", base_url=fake.base_url) as sdk:  # SDK default: 2 retries
        yield sdk


def chat_line(custom_id: str, text: str, model: str = MODEL, **body: Any) -> dict[str, Any]:
    messages = [
        {"role": "system", "content": "You are a judge."},
        {"role": "user", "content": text},
    ]
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": CHAT,
        "body": {"model": model, "messages": messages, **body},
    }


def responses_line(custom_id: str, model: str = MODEL, **body: Any) -> dict[str, Any]:
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": RESPONSES,
        "body": {"model": model, **body},
    }


def jsonl(lines: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(line) + "\n" for line in lines).encode()


def submit(client: OpenAI, data: bytes, endpoint: Endpoint = CHAT, **kwargs: Any) -> Batch:
    uploaded = client.files.create(file=("input.jsonl", data), purpose="batch")
    return client.batches.create(
        input_file_id=uploaded.id, endpoint=endpoint, completion_window="24h", **kwargs
    )


def poll(client: OpenAI, batch_id: str) -> tuple[Batch, list[str]]:
    statuses: list[str] = []
    for _ in range(20):
        batch = client.batches.retrieve(batch_id)
        statuses.append(batch.status)
        if batch.status in TERMINAL:
            return batch, statuses
    raise AssertionError(f"batch not terminal after 20 polls: {statuses}")


def read_jsonl(client: OpenAI, file_id: str | None) -> list[dict[str, Any]]:
    assert file_id
    return [json.loads(line) for line in client.files.content(file_id).text.splitlines()]


def by_custom_id(lines: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {line["custom_id"]: line for line in lines}


TEXTS = ["first answer", "second answer [[score:4]]", "third", "fourth one", "fifth!", "sixth é"]


def test_chat_batch_end_to_end(client: OpenAI, fake: FakeBatchAPI) -> None:
    """Upload, create, poll to completed and download: exact scores, shuffled order, usage."""
    lines = [chat_line(f"row-{i}", text) for i, text in enumerate(TEXTS)]
    batch = submit(client, jsonl(lines), metadata={"job": "j1"})
    assert batch.status == "validating"
    assert batch.request_counts is not None
    assert batch.request_counts.total == 0
    assert batch.metadata == {"job": "j1"}
    assert batch.expires_at == batch.created_at + 86_400

    batch, statuses = poll(client, batch.id)

    assert statuses == ["in_progress", "finalizing", "completed"]
    assert batch.request_counts is not None
    assert (batch.request_counts.total, batch.request_counts.completed) == (6, 6)
    assert batch.model == MODEL
    assert batch.error_file_id is None
    assert batch.in_progress_at
    assert batch.finalizing_at
    assert batch.completed_at
    output = read_jsonl(client, batch.output_file_id)
    assert [line["custom_id"] for line in output] != [line["custom_id"] for line in lines]
    results = by_custom_id(output)
    for i, text in enumerate(TEXTS):
        line = results[f"row-{i}"]
        assert line["error"] is None
        assert line["id"].startswith("batch_req_")
        assert line["response"]["status_code"] == 200
        completion = ChatCompletion.model_validate(line["response"]["body"])
        assert completion.choices[0].message.content == str(judge_score(text))
    assert results["row-1"]["response"]["body"]["choices"][0]["message"]["content"] == "4"
    prompt_tokens = sum(count_prompt_tokens(line["body"]) for line in lines)
    assert batch.usage is not None
    assert batch.usage.input_tokens == prompt_tokens
    assert batch.usage.output_tokens == 2 * len(TEXTS)
    meta = client.files.retrieve(batch.output_file_id or "")
    assert meta.purpose == "batch_output"
    assert fake.batches_created == 1


def test_judge_functions() -> None:
    """judge_score uses the marker (clamped) or the UTF-8 byte sum; answers follow the rules."""
    assert judge_score("hello") == 1 + 532 % 5
    assert judge_score("hello", 0, 10) == 532 % 11
    assert judge_score("x [[score:9]]") == 5
    assert judge_score("x [[score:-2]]", 0, 10) == 0
    chat_body = {"model": MODEL, "messages": [{"role": "user", "content": "hello [[garbage]]"}]}
    assert judge_answer(chat_body) == GARBAGE_ANSWER
    assert count_prompt_tokens({"messages": [{"role": "user", "content": "a b c"}]}) == 9
    assert count_prompt_tokens({"instructions": "be fair", "input": "a b"}) == 5 + 5 + 3


def test_structured_output_chat(client: OpenAI, fake: FakeBatchAPI) -> None:
    """A json_schema response_format yields a JSON object filling every property."""
    schema = {
        "type": "object",
        "properties": {
            "score": {"type": "integer", "minimum": 0, "maximum": 10},
            "also": {"type": "integer"},
            "ratio": {"type": "number"},
            "reason": {"type": "string"},
            "label": {"type": "string", "enum": ["bad", "ok", "good"]},
            "pass": {"type": "boolean"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "extra": {"type": "object"},
        },
        "required": ["score", "also", "ratio", "reason", "label", "pass", "tags", "extra"],
        "additionalProperties": False,
    }
    fmt = {
        "type": "json_schema",
        "json_schema": {"name": "grade", "schema": schema, "strict": True},
    }
    text = "hello"
    lines = [
        chat_line("a", text, response_format=fmt),
        chat_line("b", "noise [[garbage]]", response_format=fmt),
    ]
    batch = submit(client, jsonl(lines))
    fake.run_to_completion(batch.id)

    results = by_custom_id(read_jsonl(client, client.batches.retrieve(batch.id).output_file_id))
    content = results["a"]["response"]["body"]["choices"][0]["message"]["content"]
    score = 1 + 532 % 5
    assert json.loads(content) == {
        "score": 532 % 11,
        "also": score,
        "ratio": float(score),
        "reason": "reasoning for hello",
        "label": ["bad", "ok", "good"][score % 3],
        "pass": score >= 3,
        "tags": [],
        "extra": {},
    }
    assert json.loads(content) == schema_answer(schema, text)
    assert results["b"]["response"]["body"]["choices"][0]["message"]["content"] == GARBAGE_ANSWER


def test_responses_endpoint(client: OpenAI, fake: FakeBatchAPI) -> None:
    """/v1/responses lines get response objects, structured text.format and reasoning usage."""
    schema = {"type": "object", "properties": {"score": {"type": "integer"}}}
    fmt = {"format": {"type": "json_schema", "name": "grade", "schema": schema, "strict": True}}
    items = [
        {"role": "user", "content": "old"},
        {"role": "user", "content": [{"type": "input_text", "text": "newest"}]},
    ]
    lines = [
        responses_line("plain", input="judge this", instructions="Be strict."),
        responses_line("items", input=items, text=fmt),
    ]
    batch = submit(client, jsonl(lines), endpoint=RESPONSES)
    fake.run_to_completion(batch.id)
    done = client.batches.retrieve(batch.id)

    results = by_custom_id(read_jsonl(client, done.output_file_id))
    plain = results["plain"]["response"]["body"]
    assert Response.model_validate(plain).output_text == str(judge_score("judge this"))
    assert plain["status"] == "completed"
    assert plain["output"][0]["content"][0] == {
        "type": "output_text",
        "text": str(judge_score("judge this")),
        "annotations": [],
    }
    assert plain["usage"]["input_tokens"] == (2 + 3) + (2 + 3) + 3
    assert plain["usage"]["output_tokens_details"]["reasoning_tokens"] == 0
    structured = results["items"]["response"]["body"]["output"][0]["content"][0]["text"]
    assert json.loads(structured) == {"score": judge_score("newest")}

    reasoning = submit(
        client, jsonl([responses_line("r", model="o4-mini", input="x y")]), RESPONSES
    )
    fake.run_to_completion(reasoning.id)
    body = read_jsonl(client, client.batches.retrieve(reasoning.id).output_file_id)[0]["response"][
        "body"
    ]
    assert [item["type"] for item in body["output"]] == ["reasoning", "message"]
    assert body["usage"]["output_tokens_details"]["reasoning_tokens"] == 8
    assert body["usage"]["output_tokens"] == 2 + 8


def test_http_failures_go_to_error_file(client: OpenAI, fake: FakeBatchAPI) -> None:
    """Forced and marker failures are error-file lines with the error in response.body."""
    fake.fail_requests["boom"] = (500, "server_error", "The server had an error.")
    lines = [
        chat_line("ok", "fine"),
        chat_line("boom", "fine too"),
        chat_line("long", "too long [[fail:context_length_exceeded]]"),
    ]
    batch = submit(client, jsonl(lines))
    fake.run_to_completion(batch.id)
    done = client.batches.retrieve(batch.id)

    assert done.status == "completed"
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (1, 2)
    assert [line["custom_id"] for line in read_jsonl(client, done.output_file_id)] == ["ok"]
    errors = by_custom_id(read_jsonl(client, done.error_file_id))
    assert errors["boom"]["error"] is None
    assert errors["boom"]["response"]["status_code"] == 500
    assert errors["boom"]["response"]["body"]["error"]["code"] == "server_error"
    long_error = errors["long"]["response"]["body"]["error"]
    assert errors["long"]["response"]["status_code"] == 400
    assert long_error["code"] == "context_length_exceeded"
    assert set(long_error) == {"message", "type", "param", "code"}


def test_reasoning_model_max_tokens_fails_every_line(client: OpenAI, fake: FakeBatchAPI) -> None:
    """max_tokens on a reasoning model is a per-line 400; no success means no output file."""
    lines = [chat_line(f"r{i}", "x", model="o3-mini", max_tokens=50) for i in range(2)]
    batch = submit(client, jsonl(lines))
    fake.run_to_completion(batch.id)
    done = client.batches.retrieve(batch.id)

    assert done.status == "completed"
    assert done.output_file_id is None
    error = read_jsonl(client, done.error_file_id)[0]["response"]["body"]["error"]
    assert (error["code"], error["param"]) == ("unsupported_parameter", "max_tokens")


def test_empty_error_file_id_knob(client: OpenAI, fake: FakeBatchAPI) -> None:
    """The knob reports a missing error file as "" instead of null."""
    fake.empty_error_file_id_as_empty_string = True
    batch = submit(client, jsonl([chat_line("a", "x")]))
    fake.run_to_completion(batch.id)

    assert client.batches.retrieve(batch.id).error_file_id == ""


def test_expired_batch_keeps_partial_results(client: OpenAI, fake: FakeBatchAPI) -> None:
    """expire_after=K: K results in the output file, batch_expired lines for the rest."""
    fake.expire_after = 2
    batch = submit(client, jsonl([chat_line(f"r{i}", f"t{i}") for i in range(5)]))

    done, statuses = poll(client, batch.id)

    assert statuses == ["in_progress", "expired"]
    assert done.expired_at is not None
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (2, 3)
    assert {line["custom_id"] for line in read_jsonl(client, done.output_file_id)} == {"r0", "r1"}
    errors = by_custom_id(read_jsonl(client, done.error_file_id))
    assert set(errors) == {"r2", "r3", "r4"}
    assert errors["r2"]["response"] is None
    assert errors["r2"]["error"]["code"] == "batch_expired"


@pytest.mark.parametrize("error_lines", [False, True])
def test_cancel_flow(client: OpenAI, fake: FakeBatchAPI, error_lines: bool) -> None:
    """Cancel mid-run: cancelling, then cancelled with partial output; unrun lines per knob."""
    fake.requests_per_step = 2
    fake.cancelled_error_lines = error_lines
    batch = submit(client, jsonl([chat_line(f"r{i}", f"t{i}") for i in range(5)]))
    assert client.batches.retrieve(batch.id).status == "in_progress"
    running = client.batches.retrieve(batch.id)
    assert running.request_counts is not None
    assert running.request_counts.completed == 2

    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status == "cancelling"
    assert cancelling.cancelling_at is not None
    done = client.batches.retrieve(batch.id)

    assert done.status == "cancelled"
    assert done.cancelled_at is not None
    assert len(read_jsonl(client, done.output_file_id)) == 2
    if error_lines:
        errors = read_jsonl(client, done.error_file_id)
        assert {line["error"]["code"] for line in errors} == {"batch_cancelled"}
        assert len(errors) == 3
    else:
        assert done.error_file_id is None
    assert client.batches.cancel(batch.id).status == "cancelled"


def test_cancel_terminal_batch_conflicts(client: OpenAI, fake: FakeBatchAPI) -> None:
    """Cancelling a completed batch is a 409 ConflictError (the SDK would retry it)."""
    batch = submit(client, jsonl([chat_line("a", "x")]))
    fake.run_to_completion(batch.id)

    with pytest.raises(
        openai.ConflictError, match=re.escape("Cannot cancel a batch with status 'completed'.")
    ):
        client.batches.cancel(batch.id)


def test_cancel_polls_knob(client: OpenAI, fake: FakeBatchAPI) -> None:
    """cancel_polls sets how many polls a batch stays cancelling; 0 cancels at once."""
    fake.cancel_polls = 2
    slow = submit(client, jsonl([chat_line("a", "x")]))
    client.batches.cancel(slow.id)
    assert client.batches.retrieve(slow.id).status == "cancelling"
    assert client.batches.retrieve(slow.id).status == "cancelled"

    fake.next_batch(cancel_polls=0)
    instant = submit(client, jsonl([chat_line("a", "x")]))
    assert client.batches.cancel(instant.id).status == "cancelled"


def _line(text: str) -> dict[str, Any]:
    return chat_line(text, text)


VALIDATION_CASES: dict[str, tuple[bytes, str, int | None, str | None]] = {
    "duplicate_custom_id": (
        jsonl([_line("a"), _line("b"), _line("a")]),
        "duplicate_custom_id",
        3,
        "custom_id",
    ),
    "bad_json_line": (jsonl([_line("a")]) + b"{not json\n", "invalid_json_line", 2, None),
    "blank_interior_line": (
        jsonl([_line("a")]) + b"\n" + jsonl([_line("b")]),
        "invalid_json_line",
        2,
        None,
    ),
    "empty_file": (b"", "empty_file", None, None),
    "mixed_models": (
        jsonl([_line("a"), chat_line("b", "b", model="gpt-4.1")]),
        "model_mismatch",
        2,
        "body.model",
    ),
    "unknown_model": (
        jsonl([chat_line("a", "a", model="llama-3")]),
        "model_not_found",
        1,
        "body.model",
    ),
    "url_mismatch": (jsonl([{**_line("a"), "url": RESPONSES}]), "invalid_url", 1, "url"),
    "streaming": (
        jsonl([chat_line("a", "a", stream=True)]),
        "streaming_unsupported",
        1,
        "body.stream",
    ),
    "missing_method": (
        jsonl([{k: v for k, v in _line("a").items() if k != "method"}]),
        "missing_required_parameter",
        1,
        "method",
    ),
}


@pytest.mark.parametrize("case", sorted(VALIDATION_CASES))
def test_validation_failures(client: OpenAI, fake: FakeBatchAPI, case: str) -> None:
    """A bad input file fails the batch at validating with the §7 error; nothing runs."""
    data, code, line, param = VALIDATION_CASES[case]
    batch = submit(client, data)

    done, statuses = poll(client, batch.id)

    assert statuses == ["failed"]
    assert done.failed_at is not None
    assert done.errors is not None
    assert done.errors.data is not None
    first = done.errors.data[0]
    assert (first.code, first.line, first.param) == (code, line, param)
    assert done.request_counts is not None
    assert done.request_counts.model_dump() == {"total": 0, "completed": 0, "failed": 0}
    assert done.output_file_id is None
    assert done.error_file_id is None


def test_validation_lists_every_bad_line_and_too_many_tasks(
    client: OpenAI, fake: FakeBatchAPI
) -> None:
    """Every bad line gets its own error in line order; the request cap is a knob."""
    data = b"nope\n" + jsonl([_line("a")]) + b"[1]\n"
    batch = submit(client, data)
    fake.run_to_completion(batch.id)
    errors = client.batches.retrieve(batch.id).errors
    assert errors is not None
    assert errors.data is not None
    assert [(e.code, e.line) for e in errors.data] == [
        ("invalid_json_line", 1),
        ("invalid_json_line", 3),
    ]

    fake.max_requests_per_batch = 2
    capped = submit(client, jsonl([_line("a"), _line("b"), _line("c")]))
    fake.run_to_completion(capped.id)
    errors = client.batches.retrieve(capped.id).errors
    assert errors is not None
    assert errors.data is not None
    assert [(e.code, e.line) for e in errors.data] == [("too_many_tasks", None)]


def big_lines(prefix: str, count: int) -> bytes:
    """Lines of 213 prompt tokens each (200-word user message + 4-word system message)."""
    return jsonl([chat_line(f"{prefix}{i}", " ".join(["word"] * 200)) for i in range(count)])


def test_enqueued_token_limit(client: OpenAI, fake: FakeBatchAPI) -> None:
    """A batch pushing the model's enqueued tokens over the limit fails with the exact message."""
    fake.enqueued_token_limit = {MODEL: 1_000}
    first = submit(client, big_lines("a", 3))  # 639 tokens
    assert client.batches.retrieve(first.id).status == "in_progress"
    second = submit(client, big_lines("b", 3))

    failed = client.batches.retrieve(second.id)

    assert failed.status == "failed"
    assert failed.errors is not None
    assert failed.errors.data is not None
    [error] = failed.errors.data
    assert error.code == "token_limit_exceeded"
    assert error.message == (
        "Enqueued token limit reached for gpt-4o-mini in organization org-fake. "
        "Limit: 1,000 enqueued tokens. "
        "Please try again once some in_progress batches have been completed."
    )
    assert failed.request_counts is not None
    assert failed.request_counts.total == 0
    fake.run_to_completion(first.id)
    retry = submit(client, big_lines("b", 3))
    assert client.batches.retrieve(retry.id).status == "in_progress"
    assert fake.max_in_flight == 2
    assert fake.max_in_flight_enqueued_tokens == {MODEL: 639}


@pytest.mark.parametrize(
    ("mode", "error"), [("sync_400", openai.BadRequestError), ("sync_429", openai.RateLimitError)]
)
def test_synchronous_token_limit(
    client: OpenAI, fake: FakeBatchAPI, mode: str, error: type[openai.APIStatusError]
) -> None:
    """In a sync mode, create itself answers 400/429 token_limit_exceeded; no batch is made."""
    fake.enqueued_token_limit = {MODEL: 1_000}
    fake.token_limit_mode = mode
    first = submit(client, big_lines("a", 3))
    client.batches.retrieve(first.id)

    with pytest.raises(error) as raised:
        submit(client, big_lines("b", 3))

    assert raised.value.code == "token_limit_exceeded"
    assert fake.batches_created == 1


def test_list_pagination(client: OpenAI, fake: FakeBatchAPI) -> None:
    """client.batches.list auto-paginates newest first with after=<last id>."""
    uploaded = client.files.create(file=("in.jsonl", jsonl([_line("a")])), purpose="batch")
    created = [
        client.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h").id
        for _ in range(12)
    ]

    listed = [batch.id for batch in client.batches.list(limit=5)]

    assert listed == created[::-1]
    list_calls = [call for call in fake.calls if call.route == "list"]
    assert [call.query.get("after") for call in list_calls] == [None, created[-5], created[-10]]
    page = client.batches.list(limit=5)
    assert page.has_more is True
    with pytest.raises(openai.BadRequestError):
        client.batches.list(limit=101)


def test_files_api(client: OpenAI, fake: FakeBatchAPI) -> None:
    """Uploads keep exact bytes, batch rules apply, and unknown or deleted files are 404."""
    data = jsonl([_line("a")])
    uploaded = client.files.create(
        file=("in.jsonl", data),
        purpose="batch",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert (uploaded.bytes, uploaded.status, uploaded.purpose) == (len(data), "processed", "batch")
    assert uploaded.expires_at == uploaded.created_at + 3600
    default = client.files.create(file=("x.jsonl", data), purpose="batch")
    assert default.expires_at == default.created_at + 2_592_000
    assert client.files.content(uploaded.id).content == data
    assert [f.id for f in client.files.list()] == [default.id, uploaded.id]

    with pytest.raises(openai.BadRequestError, match=re.escape("Must be .jsonl")):
        client.files.create(file=("in.csv", data), purpose="batch")
    fake.max_file_bytes = 10
    with pytest.raises(openai.BadRequestError, match=re.escape("File is too large.")):
        client.files.create(file=("big.jsonl", data), purpose="batch")

    fake.file_content_gone.add(default.id)
    with pytest.raises(openai.NotFoundError):
        client.files.content(default.id)
    assert client.files.delete(uploaded.id).deleted is True
    with pytest.raises(openai.NotFoundError) as raised:
        client.files.retrieve(uploaded.id)
    assert raised.value.param == "id"
    assert raised.value.body == {
        "message": f"No such File object: {uploaded.id}",
        "type": "invalid_request_error",
        "param": "id",
        "code": None,
    }


def test_create_synchronous_errors(client: OpenAI, fake: FakeBatchAPI) -> None:
    """Bad endpoint, window, metadata or (in "create" mode) file id are 400s at create."""
    fake.unknown_file_mode = "create"
    uploaded = client.files.create(file=("in.jsonl", jsonl([_line("a")])), purpose="batch")
    bad: list[tuple[dict[str, Any], str | None, str]] = [
        ({"endpoint": "/v1/x"}, "invalid_value", "endpoint"),
        ({"completion_window": "1h"}, "invalid_value", "completion_window"),
        ({"metadata": {"tags": ["a"]}}, "invalid_type", "metadata.tags"),
        ({"input_file_id": "file-nope"}, None, "file_id"),
    ]
    for override, code, param in bad:
        request = {"input_file_id": uploaded.id, "endpoint": CHAT, "completion_window": "24h"}
        with pytest.raises(openai.BadRequestError) as raised:
            client.batches.create(**{**request, **override})
        assert (raised.value.code, raised.value.param) == (code, param)
    assert fake.batches_created == 0
    with pytest.raises(
        openai.NotFoundError, match=re.escape("No batch found with id 'batch_nope'.")
    ):
        client.batches.retrieve("batch_nope")


FAULT_CASES: list[tuple[str, str, type[Exception], str | None]] = [
    ("retrieve", "429", openai.RateLimitError, "rate_limit_exceeded"),
    ("retrieve", "500", openai.InternalServerError, None),
    ("retrieve", "503", openai.InternalServerError, None),
    ("retrieve", "reset", openai.APIConnectionError, None),
    ("retrieve", "truncated", openai.APIConnectionError, None),
    ("retrieve", "malformed_json", ValueError, None),
    ("create", "insufficient_quota", openai.RateLimitError, "insufficient_quota"),
    ("create", "token_limit", openai.BadRequestError, "token_limit_exceeded"),
    ("create", "token_limit_429", openai.RateLimitError, "token_limit_exceeded"),
    ("create", "cannot_find_file", openai.BadRequestError, None),
]


@pytest.mark.parametrize(("route", "kind", "error", "code"), FAULT_CASES)
def test_fault_kinds(
    client: OpenAI,
    fake: FakeBatchAPI,
    route: str,
    kind: str,
    error: type[Exception],
    code: str | None,
) -> None:
    """Each injected fault reaches the SDK (max_retries=0) as the matching exception, once."""
    uploaded = client.files.create(file=("in.jsonl", jsonl([_line("a")])), purpose="batch")
    batch = client.batches.create(input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h")
    fake.inject_fault(route, kind)

    calls: dict[str, Callable[[], Batch]] = {
        "create": lambda: client.batches.create(
            input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h"
        ),
        "retrieve": lambda: client.batches.retrieve(batch.id),
    }

    with pytest.raises(error) as raised:
        calls[route]()

    if code is not None:
        assert isinstance(raised.value, openai.APIStatusError)
        assert raised.value.code == code
    assert fake.batches_created == 1
    assert client.batches.retrieve(batch.id).id == batch.id  # the fault was consumed


def test_timeout_fault(fake: FakeBatchAPI) -> None:
    """A held request makes the SDK time out."""
    fake.inject_fault("list", "timeout", delay=1.0)
    with OpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0, timeout=0.2) as sdk:
        with pytest.raises(openai.APITimeoutError):
            sdk.batches.list()
        assert sdk.batches.list().data == []


def test_hold_fault_waits_for_release(client: OpenAI, fake: FakeBatchAPI) -> None:
    """A ``hold`` fault keeps the request (counted in ``held``) until released, then
    performs it; requests after it are served at once."""
    fake.inject_fault("upload", "hold")
    done: list[str] = []
    worker = threading.Thread(
        target=lambda: done.append(
            client.files.create(file=("a.jsonl", b"{}\n"), purpose="batch").id
        )
    )
    worker.start()
    deadline = time.monotonic() + 10
    while fake.held == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake.held == 1 and not done
    assert client.files.create(file=("b.jsonl", b"{}\n"), purpose="batch").id
    fake.release_held()
    worker.join(timeout=10)
    assert len(done) == 1 and done[0] in fake.files


def test_a_request_held_at_reset_is_dropped(client: OpenAI, fake: FakeBatchAPI) -> None:
    """A request still held by a ``hold`` fault at ``reset()`` is an earlier test's: its
    connection is closed and it is never performed nor recorded."""
    fake.inject_fault("upload", "hold")
    failed: list[BaseException] = []

    def upload() -> None:
        try:
            client.files.create(file=("a.jsonl", b"{}\n"), purpose="batch")
        except openai.APIConnectionError as error:
            failed.append(error)

    worker = threading.Thread(target=upload)
    worker.start()
    deadline = time.monotonic() + 10
    while fake.held == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake.held == 1
    fake.reset()
    worker.join(timeout=10)
    assert not worker.is_alive() and len(failed) == 1
    assert (fake.files, fake.calls, fake.held) == ({}, [], 0)


def test_retry_after_500_counts_retries(retrying_client: OpenAI, fake: FakeBatchAPI) -> None:
    """SDK retries of a 500 are visible in x-stainless-retry-count; retry-after-ms is honoured."""
    batch = submit(retrying_client, jsonl([_line("a")]))
    fake.inject_fault("retrieve", "500", retry_after_ms=1)

    assert retrying_client.batches.retrieve(batch.id).id == batch.id

    calls = [call for call in fake.calls if call.route == "retrieve"]
    assert [call.status for call in calls] == [500, 200]
    assert [call.headers["x-stainless-retry-count"] for call in calls] == ["0", "1"]


def test_long_retry_after_stops_sdk_retries(retrying_client: OpenAI, fake: FakeBatchAPI) -> None:
    """A 429 asking for more than 120 s is not retried by the SDK."""
    fake.inject_fault("list", "429", retry_after=300)

    with pytest.raises(openai.RateLimitError):
        retrying_client.batches.list()

    assert fake.request_count("list") == 1


def test_after_effect_create_duplicates(retrying_client: OpenAI, fake: FakeBatchAPI) -> None:
    """A create whose answer is lost is retried by the SDK and yields two batches."""
    uploaded = retrying_client.files.create(file=("in.jsonl", jsonl([_line("a")])), purpose="batch")
    fake.inject_fault("create", "reset", after_effect=True)

    retrying_client.batches.create(
        input_file_id=uploaded.id, endpoint=CHAT, completion_window="24h"
    )

    assert fake.batches_created == 2
    assert [call.status for call in fake.calls if call.route == "create"] == [0, 200]


def test_upload_and_content_faults(retrying_client: OpenAI, fake: FakeBatchAPI) -> None:
    """Faults on upload and file content are retried by the SDK with the same bytes."""
    data = jsonl([_line("a")])
    fake.inject_fault("upload", "503", retry_after_ms=1)
    uploaded = retrying_client.files.create(file=("in.jsonl", data), purpose="batch")
    fake.inject_fault("file_content", "truncated")

    assert retrying_client.files.content(uploaded.id).content == data
    assert len(fake.files) == 1
    assert fake.request_count("upload") == 2
    assert fake.request_count("file_content") == 2


def test_direct_chat_completion(retrying_client: OpenAI, fake: FakeBatchAPI) -> None:
    """POST /v1/chat/completions answers from the same judge; reasoning + max_tokens is a 400."""
    fake.inject_fault("chat", "429", retry_after_ms=1)
    messages: Any = [{"role": "user", "content": "grade me"}]

    completion = retrying_client.chat.completions.create(model=MODEL, messages=messages)

    assert completion.choices[0].message.content == str(judge_score("grade me"))
    assert completion.usage is not None
    assert completion.usage.prompt_tokens == count_prompt_tokens({"messages": messages})
    with pytest.raises(openai.BadRequestError) as raised:
        retrying_client.chat.completions.create(model="o3-mini", messages=messages, max_tokens=5)
    assert raised.value.code == "unsupported_parameter"


def test_malformed_and_missing_custom_id_output_lines(client: OpenAI, fake: FakeBatchAPI) -> None:
    """Output corruption knobs cut lines to invalid JSON and drop custom_id keys."""
    fake.malformed_output_lines = 1
    fake.drop_custom_id_lines = 1
    batch = submit(client, jsonl([_line(f"r{i}") for i in range(4)]))
    fake.run_to_completion(batch.id)

    text = client.files.content(client.batches.retrieve(batch.id).output_file_id or "").text
    raw_lines = text.splitlines()
    parsed = []
    for raw in raw_lines:
        try:
            parsed.append(json.loads(raw))
        except ValueError:
            continue
    assert len(raw_lines) == 4
    assert len(parsed) == 3
    assert sum("custom_id" not in line for line in parsed) == 1


def test_progress_controls(client: OpenAI, fake: FakeBatchAPI) -> None:
    """polls_per_state, requests_per_step, advance, stuck finalizing and per-batch overrides."""
    fake.polls_per_state = 2
    fake.requests_per_step = 1
    batch = submit(client, jsonl([_line("a"), _line("b")]))
    assert [client.batches.retrieve(batch.id).status for _ in range(2)] == [
        "validating",
        "in_progress",
    ]

    fake.advance(batch.id)
    assert fake.batches[batch.id]["request_counts"]["completed"] == 1
    fake.stuck_in_finalizing = True
    fake.run_to_completion(batch.id)
    assert client.batches.retrieve(batch.id).status == "finalizing"
    fake.configure_batch(batch.id, stuck_in_finalizing=False)
    fake.run_to_completion()
    assert client.batches.retrieve(batch.id).status == "completed"

    fake.next_batch(expire_after=0)
    expiring = submit(client, jsonl([_line("a")]))
    fake.run_to_completion()
    assert client.batches.retrieve(expiring.id).status == "expired"


def test_cached_tokens_and_reset(client: OpenAI, fake: FakeBatchAPI) -> None:
    """cached_tokens_per_request is capped at the prompt; reset() clears state and knobs."""
    fake.cached_tokens_per_request = 1_000
    batch = submit(client, jsonl([_line("a"), _line("b")]))
    fake.run_to_completion(batch.id)
    usage = client.batches.retrieve(batch.id).usage
    assert usage is not None
    assert usage.input_tokens_details.cached_tokens == usage.input_tokens

    fake.reset()

    assert (fake.batches, fake.files, fake.calls) == ({}, {}, [])
    assert (fake.cached_tokens_per_request, fake.batches_created) == (0, 0)


# --------------------------------------------------------------------------- refusals
# What OpenAI refuses per request (tests/fakes/validation.py and models.py cite the
# sources): the line runs and lands in the error file with the endpoint's status and error.

SCHEMA_FORMAT: Final[ResponseFormatJSONSchema] = {
    "type": "json_schema",
    "json_schema": {"name": "grade", "schema": {"type": "object"}, "strict": True},
}
TEXT_SCHEMA: Final = {
    "format": {"type": "json_schema", "name": "grade", "schema": {"type": "object"}}
}
RESPONSES_ONLY_MESSAGE: Final = (
    "This model is only supported in v1/responses and not in v1/chat/completions."
)
JSON_SCHEMA_MESSAGE: Final = (
    "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this "
    "model. Learn more about supported models at the Structured Outputs guide: "
    "https://platform.openai.com/docs/guides/structured-outputs"
)


class Refused(NamedTuple):
    """A request line and the error the endpoint answers it with."""

    endpoint: Endpoint
    model: str
    body: dict[str, Any]
    status: int
    message: str
    param: str | None
    code: str | None


def refused_line(case: Refused) -> dict[str, Any]:
    if case.endpoint == CHAT:
        return chat_line("r", "grade me", model=case.model, **case.body)
    return responses_line("r", model=case.model, **{"input": "grade me", **case.body})


REFUSED: dict[str, Refused] = {
    "message_without_role": Refused(
        CHAT,
        MODEL,
        {"messages": [{"role": "system", "content": "Judge."}, {"content": "grade me"}]},
        400,
        "Missing required parameter: 'messages[1].role'.",
        "messages[1].role",
        "missing_required_parameter",
    ),
    "unknown_chat_argument": Refused(
        CHAT, MODEL, {"thinking": True}, 400,
        "Unrecognized request argument supplied: thinking", None, None,
    ),
    "unknown_responses_argument": Refused(
        RESPONSES, MODEL, {"max_completion_tokens": 5}, 400,
        "Unknown parameter: 'max_completion_tokens'.", "max_completion_tokens",
        "unknown_parameter",
    ),
    "chat_response_format_on_responses": Refused(
        RESPONSES, MODEL, {"response_format": SCHEMA_FORMAT}, 400,
        "Unsupported parameter: 'response_format'. In the Responses API, this parameter has "
        "moved to 'text.format'. Try again with the new parameter. See the API documentation "
        "for more information: https://platform.openai.com/docs/api-reference/responses/create.",
        None, "unsupported_parameter",
    ),
    "gpt-5-pro_on_chat": Refused(CHAT, "gpt-5-pro", {}, 404, RESPONSES_ONLY_MESSAGE, "model", None),
    "o3-pro_on_chat": Refused(CHAT, "o3-pro", {}, 404, RESPONSES_ONLY_MESSAGE, "model", None),
    "o1-pro_on_chat": Refused(CHAT, "o1-pro", {}, 404, RESPONSES_ONLY_MESSAGE, "model", None),
    "gpt-5.2-pro_on_chat": Refused(
        CHAT, "gpt-5.2-pro", {}, 404, RESPONSES_ONLY_MESSAGE, "model", None
    ),
    "computer-use-preview_on_chat": Refused(
        CHAT, "computer-use-preview", {}, 404, RESPONSES_ONLY_MESSAGE, "model", None
    ),
    "json_schema_on_gpt-3.5-turbo": Refused(
        CHAT, "gpt-3.5-turbo", {"response_format": SCHEMA_FORMAT}, 400,
        JSON_SCHEMA_MESSAGE, None, None,
    ),
    "json_schema_on_gpt-4-turbo": Refused(
        CHAT, "gpt-4-turbo-2024-04-09", {"response_format": SCHEMA_FORMAT}, 400,
        JSON_SCHEMA_MESSAGE, None, None,
    ),
    "text_format_json_schema_on_gpt-4": Refused(
        RESPONSES, "gpt-4", {"text": TEXT_SCHEMA}, 400,
        "Invalid parameter: 'text.format' of type 'json_schema' is not supported with model "
        "version `gpt-4`.",
        None, None,
    ),
    "max_tokens_on_o4-mini": Refused(
        CHAT, "o4-mini", {"max_tokens": 50}, 400,
        "Unsupported parameter: 'max_tokens' is not supported with this model. "
        "Use 'max_completion_tokens' instead.",
        "max_tokens", "unsupported_parameter",
    ),
    "temperature_on_gpt-5-mini": Refused(
        CHAT, "gpt-5-mini", {"temperature": 0.2}, 400,
        "Unsupported value: 'temperature' does not support 0.2 with this model. "
        "Only the default (1) value is supported.",
        "temperature", "unsupported_value",
    ),
    "temperature_on_o3_responses": Refused(
        RESPONSES, "o3", {"temperature": 0}, 400,
        "Unsupported parameter: 'temperature' is not supported with this model.",
        "temperature", "unsupported_parameter",
    ),
    "temperature_with_effort_on_gpt-5.2": Refused(
        CHAT, "gpt-5.2", {"temperature": 0.5, "reasoning_effort": "high"}, 400,
        "Unsupported value: 'temperature' does not support 0.5 with this model. "
        "Only the default (1) value is supported.",
        "temperature", "unsupported_value",
    ),
    "system_message_on_o1-mini": Refused(
        CHAT, "o1-mini", {}, 400,
        "Unsupported value: 'messages[0].role' does not support 'system' with this model.",
        "messages[0].role", "unsupported_value",
    ),
    "reasoning_effort_on_gpt-4o": Refused(
        CHAT, "gpt-4o", {"reasoning_effort": "low"}, 400,
        "Unrecognized request argument supplied: reasoning_effort", None, None,
    ),
    "reasoning_effort_on_o1-mini": Refused(
        CHAT, "o1-mini", {"messages": [{"role": "user", "content": "x"}],
                          "reasoning_effort": "low"}, 400,
        "Unsupported parameter: 'reasoning_effort' is not supported with this model.",
        "reasoning_effort", "unsupported_parameter",
    ),
    "reasoning.effort_on_gpt-4.1": Refused(
        RESPONSES, "gpt-4.1", {"reasoning": {"effort": "low"}}, 400,
        "Unsupported parameter: 'reasoning.effort' is not supported with this model.",
        "reasoning.effort", "unsupported_parameter",
    ),
    "minimal_effort_on_gpt-5.1": Refused(
        CHAT, "gpt-5.1", {"reasoning_effort": "minimal"}, 400,
        "Unsupported value: 'reasoning_effort' does not support 'minimal' with this model. "
        "Supported values are: 'none', 'low', 'medium', and 'high'.",
        "reasoning_effort", "unsupported_value",
    ),
    "none_effort_on_gpt-5": Refused(
        CHAT, "gpt-5", {"reasoning_effort": "none"}, 400,
        "Unsupported value: 'reasoning_effort' does not support 'none' with this model. "
        "Supported values are: 'minimal', 'low', 'medium', and 'high'.",
        "reasoning_effort", "unsupported_value",
    ),
    "low_effort_on_gpt-5-pro": Refused(
        RESPONSES, "gpt-5-pro", {"reasoning": {"effort": "low"}}, 400,
        "Unsupported value: 'low' is not supported with the 'gpt-5-pro' model. "
        "Supported values are: 'high'.",
        "reasoning.effort", "unsupported_value",
    ),
    "flex_on_gpt-4o": Refused(
        CHAT, "gpt-4o", {"service_tier": "flex"}, 400,
        "Unsupported service_tier: flex", None, None,
    ),
    "unknown_service_tier": Refused(
        CHAT, "gpt-4o", {"service_tier": "turbo"}, 400,
        "Invalid value: 'turbo'. Supported values are: 'auto', 'default', 'flex', 'scale', "
        "'priority', and 'fast'.",
        "service_tier", "invalid_value",
    ),
    "fine_tuned_o4-mini_like_its_base": Refused(
        CHAT, "ft:o4-mini-2025-04-16:acme::AbC123", {"temperature": 0}, 400,
        "Unsupported value: 'temperature' does not support 0 with this model. "
        "Only the default (1) value is supported.",
        "temperature", "unsupported_value",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_requests_land_in_the_error_file(
    client: OpenAI, fake: FakeBatchAPI, case: str
) -> None:
    """A request the endpoint refuses runs, fails alone, and its error is OpenAI's own."""
    refused = REFUSED[case]
    batch = submit(client, jsonl([refused_line(refused)]), refused.endpoint)
    fake.run_to_completion(batch.id)
    done = client.batches.retrieve(batch.id)

    assert done.status == "completed"
    assert done.request_counts is not None
    assert (done.request_counts.completed, done.request_counts.failed) == (0, 1)
    assert done.output_file_id is None
    (line,) = read_jsonl(client, done.error_file_id)
    assert line["error"] is None
    assert line["response"]["status_code"] == refused.status
    assert line["response"]["body"] == {
        "error": {
            "message": refused.message,
            "type": "invalid_request_error",
            "param": refused.param,
            "code": refused.code,
        }
    }


ACCEPTED: dict[str, tuple[Endpoint, str, dict[str, Any]]] = {
    "minimal_effort_on_gpt-5": (CHAT, "gpt-5", {"reasoning_effort": "minimal"}),
    "none_effort_on_gpt-5.1": (CHAT, "gpt-5.1", {"reasoning_effort": "none"}),
    "xhigh_effort_on_gpt-5.2": (CHAT, "gpt-5.2", {"reasoning_effort": "xhigh"}),
    "max_effort_on_gpt-6-luna": (RESPONSES, "gpt-6-luna", {"reasoning": {"effort": "max"}}),
    "high_effort_on_o3": (RESPONSES, "o3", {"reasoning": {"effort": "high"}}),
    "high_effort_on_gpt-5-pro": (RESPONSES, "gpt-5-pro", {"reasoning": {"effort": "high"}}),
    "null_effort_on_gpt-4o": (CHAT, "gpt-4o", {"reasoning_effort": None}),
    "temperature_1_on_o4-mini": (CHAT, "o4-mini", {"temperature": 1}),
    "temperature_at_effort_none_on_gpt-5.2": (
        CHAT,
        "gpt-5.2",
        {"temperature": 0.2, "reasoning_effort": "none"},
    ),
    "temperature_on_gpt-4.1": (RESPONSES, "gpt-4.1", {"temperature": 0}),
    "json_schema_on_gpt-4o-mini": (CHAT, "gpt-4o-mini", {"response_format": SCHEMA_FORMAT}),
    "json_schema_on_fine_tuned_gpt-4o-mini": (
        CHAT,
        "ft:gpt-4o-mini-2024-07-18:acme:grader:9xYz",
        {"response_format": SCHEMA_FORMAT},
    ),
    "text_format_on_gpt-5-pro": (RESPONSES, "gpt-5-pro", {"text": TEXT_SCHEMA}),
    "system_message_on_o1": (CHAT, "o1", {}),
    "auto_tier": (CHAT, "gpt-4.1", {"service_tier": "auto"}),
    "default_tier": (CHAT, "gpt-4.1", {"service_tier": "default"}),
    "priority_tier": (RESPONSES, "gpt-4o", {"service_tier": "priority"}),
    "flex_on_o3": (CHAT, "o3", {"service_tier": "flex"}),
    "flex_on_gpt-5-mini": (RESPONSES, "gpt-5-mini", {"service_tier": "flex"}),
}


@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_accepted_requests_run(client: OpenAI, fake: FakeBatchAPI, case: str) -> None:
    """Efforts, temperatures, formats and tiers a model takes run to a 200 answer."""
    endpoint, model, body = ACCEPTED[case]
    line = (
        chat_line("a", "grade me", model=model, **body)
        if endpoint == CHAT
        else responses_line("a", model=model, input="grade me", **body)
    )
    batch = submit(client, jsonl([line]), endpoint)
    fake.run_to_completion(batch.id)
    done = client.batches.retrieve(batch.id)

    assert done.error_file_id is None
    (result,) = read_jsonl(client, done.output_file_id)
    assert result["response"]["status_code"] == 200


def test_direct_chat_refuses_like_the_batch(retrying_client: OpenAI, fake: FakeBatchAPI) -> None:
    """The synchronous chat route answers the same refusals: 404 for a responses-only model."""
    messages: Any = [{"role": "user", "content": "grade me"}]

    with pytest.raises(openai.NotFoundError) as not_found:
        retrying_client.chat.completions.create(model="o3-pro", messages=messages)
    with pytest.raises(openai.BadRequestError) as bad:
        retrying_client.chat.completions.create(
            model="gpt-3.5-turbo", messages=messages, response_format=SCHEMA_FORMAT
        )

    assert not_found.value.body == {
        "message": RESPONSES_ONLY_MESSAGE,
        "type": "invalid_request_error",
        "param": "model",
        "code": None,
    }
    assert bad.value.body == {
        "message": JSON_SCHEMA_MESSAGE,
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    assert fake.request_count("chat") == 2  # 4xx other than 408/409/429: no SDK retry


def test_create_refuses_unknown_arguments(client: OpenAI, fake: FakeBatchAPI) -> None:
    """An argument POST /v1/batches does not take is a 400 naming it; no batch is made."""
    uploaded = client.files.create(file=("in.jsonl", jsonl([_line("a")])), purpose="batch")

    with pytest.raises(openai.BadRequestError) as raised:
        client.batches.create(
            input_file_id=uploaded.id,
            endpoint=CHAT,
            completion_window="24h",
            extra_body={"priority": "high"},
        )

    assert raised.value.body == {
        "message": "Unrecognized request argument supplied: priority",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    assert fake.batches_created == 0
    expiring = client.batches.create(
        input_file_id=uploaded.id,
        endpoint=CHAT,
        completion_window="24h",
        output_expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert expiring.status == "validating"


def test_bad_endpoint_lists_every_batch_endpoint(client: OpenAI, fake: FakeBatchAPI) -> None:
    """The invalid_value message lists the endpoints the SDK knows, as the service words it."""
    uploaded = client.files.create(file=("in.jsonl", jsonl([_line("a")])), purpose="batch")

    with pytest.raises(openai.BadRequestError) as raised:
        client.batches.create(
            input_file_id=uploaded.id,
            endpoint="/v1/x",  # type: ignore[arg-type]
            completion_window="24h",
        )

    assert raised.value.body == {
        "message": "Invalid value: '/v1/x'. Supported values are: '/v1/chat/completions', "
        "'/v1/completions', '/v1/embeddings', '/v1/images/edits', '/v1/images/generations', "
        "'/v1/moderations', '/v1/responses', and '/v1/videos'.",
        "type": "invalid_request_error",
        "param": "endpoint",
        "code": "invalid_value",
    }


@pytest.mark.parametrize("mode", ["validation", "create"])
def test_unknown_input_file(client: OpenAI, fake: FakeBatchAPI, mode: str) -> None:
    """An unknown input_file_id fails the batch at validation, or (knob) the create itself."""
    fake.unknown_file_mode = mode
    create = {"input_file_id": "file-nope", "endpoint": CHAT, "completion_window": "24h"}

    if mode == "create":
        with pytest.raises(openai.BadRequestError) as raised:
            client.batches.create(**create)  # type: ignore[arg-type]
        assert raised.value.param == "file_id"
        assert "Cannot find file file-nope" in raised.value.message
        assert fake.batches_created == 0
        return
    batch = client.batches.create(**create)  # type: ignore[arg-type]
    assert batch.status == "validating"
    done, statuses = poll(client, batch.id)

    assert statuses == ["failed"]
    assert done.errors is not None
    assert done.errors.data is not None
    assert [error.model_dump() for error in done.errors.data] == [
        {
            "code": "invalid_request",
            "line": None,
            "message": "Cannot find file file-nope, or organization org-fake does not have "
            "access to it.",
            "param": "file_id",
        }
    ]
    assert (done.output_file_id, done.error_file_id) == (None, None)


def test_other_endpoints_run(client: OpenAI, fake: FakeBatchAPI) -> None:
    """Embeddings, completions and moderations batches run; a line's url must match."""
    jobs: list[tuple[Endpoint | str, dict[str, Any], str]] = [
        ("/v1/embeddings", {"model": "text-embedding-3-small", "input": "a b"}, "list"),
        ("/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "x"}, "text_completion"),
        ("/v1/moderations", {"input": "hello"}, "results"),
    ]
    for endpoint, body, marker in jobs:
        line = {"custom_id": "a", "method": "POST", "url": endpoint, "body": body}
        batch = submit(client, jsonl([line]), endpoint)  # type: ignore[arg-type]
        fake.run_to_completion(batch.id)
        done = client.batches.retrieve(batch.id)
        (result,) = read_jsonl(client, done.output_file_id)
        answer = result["response"]["body"]
        assert marker in (answer.get("object"), *answer), (endpoint, answer)
    assert answer["results"][0]["flagged"] is False

    chat_url = {"custom_id": "a", "method": "POST", "url": CHAT, "body": jobs[0][1]}
    mismatch = submit(client, jsonl([chat_url]), "/v1/embeddings")  # type: ignore[arg-type]
    done, _ = poll(client, mismatch.id)
    assert done.errors is not None
    assert done.errors.data is not None
    assert [(e.code, e.line, e.param) for e in done.errors.data] == [("invalid_url", 1, "url")]


def test_validate_request_line_without_http() -> None:
    """The pure validator tells validation failures from per-request refusals."""
    good = chat_line("a", "x")

    assert validate_request_line(good, CHAT) is None
    assert validate_request_line(good, RESPONSES, line_number=7) == {
        "stage": "validation",
        "error": {
            "code": "invalid_url",
            "message": "The URL provided for this request does not match the batch endpoint.",
            "param": "url",
            "line": 7,
        },
    }
    assert validate_request_line(chat_line("a", "x", model="gpt-5-pro"), CHAT) == {
        "stage": "request",
        "status_code": 404,
        "error": {
            "message": RESPONSES_ONLY_MESSAGE,
            "type": "invalid_request_error",
            "param": "model",
            "code": None,
        },
    }


# --- servers that break or bend the result lines (issue 13 items 6-7, issue 12) ---------


def _raw_lines(client: OpenAI, file_id: str | None) -> list[bytes]:
    assert file_id
    return client.files.content(file_id).content.split(b"\n")


def test_corrupt_lines_break_only_their_line(client: OpenAI, fake: FakeBatchAPI) -> None:
    """Each corruption changes only the named request's line, as a broken server writes it;
    the batch's own usage stays the true total."""
    kinds = {
        "r1": "not_utf8",
        "r2": "prompt_tokens_text",
        "r3": "negative_usage",
        "r4": "usage_list",
        "r5": "details_string",
        "r6": "choices_object",
        "r7": "missing",
        "r8": "duplicate_differs",
        "r9": "huge_usage",
    }
    fake.corrupt_lines = kinds
    batch = submit(client, jsonl([_line(f"r{i}") for i in range(10)]))
    fake.run_to_completion(batch.id)
    done = client.batches.retrieve(batch.id)
    raw = [line for line in _raw_lines(client, done.output_file_id) if line]
    assert len(raw) == 10  # r7 missing, r8 twice
    with pytest.raises(UnicodeDecodeError):
        b"\n".join(raw).decode("utf-8")
    lines = [json.loads(line.decode("utf-8", "replace")) for line in raw]
    by_id: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        by_id.setdefault(line["custom_id"], []).append(line["response"]["body"])
    assert "r7" not in by_id
    assert by_id["r0"][0]["usage"]["prompt_tokens"] > 0
    assert by_id["r2"][0]["usage"]["prompt_tokens"] == "abc"
    assert by_id["r3"][0]["usage"]["completion_tokens"] == -7_227
    assert isinstance(by_id["r4"][0]["usage"], list)
    assert by_id["r5"][0]["usage"]["prompt_tokens_details"] == "cached: 0"
    assert isinstance(by_id["r6"][0]["choices"], dict)
    first, second = by_id["r8"]
    assert first["choices"][0]["message"]["content"] != second["choices"][0]["message"]["content"]
    assert by_id["r9"][0]["usage"]["prompt_tokens"] == 2 * 10**15
    assert done.usage is not None
    assert done.usage.input_tokens == 10 * by_id["r0"][0]["usage"]["prompt_tokens"]
    assert done.request_counts is not None and done.request_counts.completed == 10


def test_every_line_missing_leaves_a_zero_byte_output_file(
    client: OpenAI, fake: FakeBatchAPI
) -> None:
    """A batch whose output lines are all lost still names its (empty) output file."""
    fake.corrupt_lines = {"r0": "missing", "r1": "missing"}
    batch = submit(client, jsonl([_line("r0"), _line("r1")]))
    fake.run_to_completion(batch.id)
    done = client.batches.retrieve(batch.id)
    assert done.output_file_id
    assert client.files.content(done.output_file_id).content == b""


def test_llama_stack_line_style_and_no_batch_usage(client: OpenAI, fake: FakeBatchAPI) -> None:
    """llama-stack's lines: the body as a JSON string, errors as ``{type, message}`` with no
    response, no trailing newline; ``report_usage`` off gives a null batch usage."""
    fake.line_style = "llama_stack"
    fake.report_usage = False
    failing = chat_line("r1", "x [[fail:context_length_exceeded]]")
    batch = submit(client, jsonl([_line("r0"), failing]))
    fake.run_to_completion(batch.id)
    done = client.batches.retrieve(batch.id)
    assert done.usage is None
    output = client.files.content(done.output_file_id or "").content
    assert not output.endswith(b"\n")
    (success,) = [json.loads(line) for line in output.split(b"\n")]
    assert isinstance(success["response"]["body"], str)
    assert json.loads(success["response"]["body"])["object"] == "chat.completion"
    (error,) = [json.loads(line) for line in _raw_lines(client, done.error_file_id)]
    assert "response" not in error
    assert error["error"] == {
        "type": "request_failed",
        "message": "Error code: 400 - Simulated failure: context_length_exceeded",
    }


def test_unknown_status_and_invisible_uploads(client: OpenAI, fake: FakeBatchAPI) -> None:
    """``unknown_status`` replaces in_progress; an invisible upload fails its batch like an
    unknown file (§2.10), then uploads are visible again."""
    fake.unknown_status = "queued_for_capacity"
    fake.invisible_uploads = 1
    hidden = submit(client, jsonl([_line("a")]))
    done, statuses = poll(client, hidden.id)
    assert statuses == ["failed"]
    assert done.errors is not None and done.errors.data is not None
    assert "Cannot find file" in (done.errors.data[0].message or "")
    fake.requests_per_step = 1
    batch = submit(client, jsonl([_line("a"), _line("b")]))
    done, statuses = poll(client, batch.id)
    assert statuses[:2] == ["queued_for_capacity", "queued_for_capacity"]
    assert done.status == "completed"


@pytest.mark.parametrize("endpoint", [CHAT, RESPONSES])
def test_refusal_and_truncation_markers(
    client: OpenAI, fake: FakeBatchAPI, endpoint: Endpoint
) -> None:
    """``[[refuse]]`` gives the model's refusal; ``[[truncate]]`` an answer cut at the
    request's output limit (finish_reason length, or an incomplete response)."""
    if endpoint == CHAT:
        lines = [chat_line(cid, text, max_completion_tokens=40) for cid, text in _MARKED]
    else:
        lines = [responses_line(cid, input=text, max_output_tokens=40) for cid, text in _MARKED]
    batch = submit(client, jsonl(lines), endpoint)
    fake.run_to_completion(batch.id)
    bodies = {
        line["custom_id"]: line["response"]["body"]
        for line in read_jsonl(client, client.batches.retrieve(batch.id).output_file_id)
    }
    refused, cut = bodies["refuse"], bodies["cut"]
    if endpoint == CHAT:
        assert refused["choices"][0]["message"]["content"] is None
        assert refused["choices"][0]["message"]["refusal"] == REFUSAL_TEXT
        assert cut["choices"][0]["finish_reason"] == "length"
        assert cut["usage"]["completion_tokens"] == 40
    else:
        parts = next(i for i in refused["output"] if i["type"] == "message")["content"]
        assert parts == [{"type": "refusal", "refusal": REFUSAL_TEXT}]
        assert cut["status"] == "incomplete"
        assert cut["incomplete_details"] == {"reason": "max_output_tokens"}
        assert cut["usage"]["output_tokens"] == 40


_MARKED = [("refuse", "say something awful [[refuse]]"), ("cut", "go on forever [[truncate]]")]


def test_direct_chat_reports_and_enforces_its_rate_limits(
    client: OpenAI, fake: FakeBatchAPI
) -> None:
    """As OpenAI: x-ratelimit-* on every answer; over the requests a window allows, a 429
    rate_limit_exceeded without Retry-After, its reset in the headers and the message."""
    fake.chat_rpm, fake.chat_window = 2, 30.0
    messages: Any = [{"role": "user", "content": "Rate this."}]
    seen = []
    for _ in range(2):
        raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=messages)
        seen.append(raw.headers)
    assert [h["x-ratelimit-remaining-requests"] for h in seen] == ["1", "0"]
    assert all(h["x-ratelimit-limit-requests"] == "2" for h in seen)
    assert re.fullmatch(r"\d+(\.\d+)?s", seen[1]["x-ratelimit-reset-requests"])
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model=MODEL, messages=messages)
    error = refused.value
    assert error.code == "rate_limit_exceeded" and error.type == "requests"
    assert "retry-after" not in error.response.headers
    assert error.response.headers["x-ratelimit-remaining-requests"] == "0"
    assert "on requests per min (RPM): Limit 2, Used 2, Requested 1" in error.message
    assert fake.rate_limited == 1
