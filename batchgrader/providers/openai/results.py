"""Reading OpenAI result lines and replies, whatever a compatible server writes.

A batch output or error line is ``{"custom_id", "response": {"status_code", "body"},
"error"}``. Servers that are compatible but not identical differ: llama-stack writes
``response.body`` as a JSON-encoded string, and its per-request errors carry a
``type`` and no ``code``. Every line is read defensively: a line that cannot be read
(bad bytes, wrong types, impossible usage) becomes its row's ``malformed_line`` error
and never stops the collection; a 2xx answer is either read or its error says exactly
what could not be read (never ``http_200``).
"""

from __future__ import annotations

import json
from typing import Any

from batchgrader.money.pricing import Usage
from batchgrader.providers.base import Answer, LineResult, RowError

MALFORMED = "malformed_line"


class Unreadable(Exception):
    """What in a line or body could not be read (the message names it)."""


def parse_line(raw: bytes, *, max_usage: int | None = None) -> LineResult:
    """One line of an output or error file."""
    try:
        text = raw.decode("utf-8")
        bad_bytes = None
    except UnicodeDecodeError as exc:
        text = raw.decode("utf-8", errors="replace")
        bad_bytes = f"the line is not valid UTF-8 (byte {raw[exc.start]:#04x} at {exc.start})"
    try:
        line = json.loads(text)
    except json.JSONDecodeError:
        return LineResult(None, None)
    if not isinstance(line, dict) or not isinstance(line.get("custom_id"), str):
        return LineResult(None, None)
    cid = line["custom_id"]
    if bad_bytes is not None:
        return LineResult(cid, _malformed(bad_bytes))
    try:
        return LineResult(cid, _line_answer(line, max_usage))
    except Unreadable as exc:
        return LineResult(cid, _malformed(str(exc)))


def parse_reply(status: int, body: Any, *, max_usage: int | None = None) -> Answer:
    """A direct call's reply: the body of a 2xx answer, or the error of any other."""
    try:
        if 200 <= status < 300:
            return _body_answer(_object(body, "the reply body"), max_usage)
        return Answer(None, _status_error(status, body, None))
    except Unreadable as exc:
        return _malformed(str(exc))


def _malformed(what: str) -> Answer:
    return Answer(None, RowError(MALFORMED, what))


def _line_answer(line: dict[str, Any], max_usage: int | None) -> Answer:
    error = line.get("error")
    response = line.get("response")
    if response is not None and not isinstance(response, dict):
        raise Unreadable(f"response is {_kind(response)}, not an object")
    status = response.get("status_code") if response else None
    if status is not None and (isinstance(status, bool) or not isinstance(status, int)):
        raise Unreadable(f"response.status_code is {status!r}")
    body = response.get("body") if response else None
    if isinstance(body, str):  # llama-stack: the body as a JSON-encoded string
        try:
            body = json.loads(body)
        except json.JSONDecodeError:
            raise Unreadable("response.body is a string that is not JSON") from None
    if error is None and status is not None and 200 <= status < 300:
        return _body_answer(_object(body, "response.body"), max_usage)
    if error is not None:
        return Answer(None, _error_field(error))
    if status is None:
        raise Unreadable("the line has neither a response status nor an error")
    return Answer(None, _status_error(status, body, None))


def _error_field(error: Any) -> RowError:
    """The line's ``error``: OpenAI ``{code, message}``, llama-stack ``{type, message}``."""
    if isinstance(error, str):
        return RowError("error", error)
    if not isinstance(error, dict):
        raise Unreadable(f"error is {_kind(error)}, not an object")
    code = error.get("code") or error.get("type") or "error"
    return RowError(str(code), str(error.get("message") or ""))


def _status_error(status: int, body: Any, fallback: str | None) -> RowError:
    """The error of a non-2xx answer: the body's ``error`` code or type, else ``http_N``."""
    inner = body.get("error") if isinstance(body, dict) else None
    if isinstance(inner, dict):
        code = inner.get("code") or inner.get("type") or f"http_{status}"
        return RowError(str(code), str(inner.get("message") or ""))
    if isinstance(inner, str):
        return RowError(f"http_{status}", inner)
    if isinstance(body, dict) and isinstance(body.get("detail"), str):  # FastAPI servers
        return RowError(f"http_{status}", body["detail"])
    return RowError(f"http_{status}", fallback or "")


def _body_answer(body: dict[str, Any], max_usage: int | None) -> Answer:
    """A chat.completion or a response object."""
    usage = _usage(body.get("usage"), max_usage)
    if body.get("object") == "response" or "output" in body:
        return _response_answer(body, usage)
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise Unreadable(f"choices is {_kind(choices)}, not a non-empty list")
    choice = _object(choices[0], "choices[0]")
    message = _object(choice.get("message"), "choices[0].message")
    content = message.get("content")
    refusal = message.get("refusal")
    if isinstance(content, list):  # content parts (some compatible servers)
        content = "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    if content is not None and not isinstance(content, str):
        raise Unreadable(f"choices[0].message.content is {_kind(content)}")
    if isinstance(refusal, str) and refusal and not content:
        return Answer(None, RowError("refused", refusal), usage)
    finish = choice.get("finish_reason")
    if finish == "length":
        return Answer(content, _truncated(usage), usage)
    if finish == "content_filter" and not content:
        return Answer(None, RowError("refused", "stopped by the content filter"), usage)
    return Answer(content, None, usage)


def _response_answer(body: dict[str, Any], usage: Usage) -> Answer:
    output = body.get("output") or []
    if not isinstance(output, list):
        raise Unreadable(f"output is {_kind(output)}, not a list")
    texts: list[str] = []
    refusals: list[str] = []
    for item in output:
        if not isinstance(item, dict) or item.get("type") != "message":
            continue
        for part in item.get("content") or []:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "output_text":
                texts.append(str(part.get("text", "")))
            elif part.get("type") == "refusal":
                refusals.append(str(part.get("refusal", "")))
    text = "".join(texts) if texts else None
    if refusals and not text:
        return Answer(None, RowError("refused", " ".join(refusals)), usage)
    details = body.get("incomplete_details")
    if body.get("status") == "incomplete":
        reason = details.get("reason") if isinstance(details, dict) else None
        if reason == "max_output_tokens":
            return Answer(text, _truncated(usage), usage)
        if reason == "content_filter" and not text:
            return Answer(None, RowError("refused", "stopped by the content filter"), usage)
    return Answer(text, None, usage)


def _truncated(usage: Usage) -> RowError:
    reasoning = f", {usage.reasoning_tokens:,} of them reasoning" if usage.reasoning_tokens else ""
    return RowError(
        "truncated",
        f"the answer stopped at the output limit ({usage.output_tokens:,} tokens{reasoning}); "
        "raise request.max_tokens_per_response (--max-tokens)",
    )


def _usage(raw: Any, max_usage: int | None) -> Usage:
    """Usage of a chat.completion (prompt/completion) or a response (input/output)."""
    if raw is None:
        return Usage()
    u = _object(raw, "usage")
    if "prompt_tokens" in u or "completion_tokens" in u:
        names = ("prompt_tokens", "prompt_tokens_details", "completion_tokens",
                 "completion_tokens_details")  # fmt: skip
    else:
        names = ("input_tokens", "input_tokens_details", "output_tokens", "output_tokens_details")
    inp, in_details, out, out_details = names
    cached = _count(
        _object(u.get(in_details) or {}, f"usage.{in_details}"), "cached_tokens", in_details
    )
    reasoning = _count(
        _object(u.get(out_details) or {}, f"usage.{out_details}"), "reasoning_tokens", out_details
    )
    usage = Usage(
        input_tokens=_count(u, inp, None),
        cached_input_tokens=cached,
        output_tokens=_count(u, out, None),
        reasoning_tokens=reasoning,
    )
    if max_usage is not None and usage.total_tokens > max_usage:
        raise Unreadable(
            f"usage of {usage.total_tokens:,} tokens is impossible for one request "
            f"(over {max_usage:,})"
        )
    return usage


def _count(obj: dict[str, Any], name: str, parent: str | None) -> int:
    value = obj.get(name)
    where = f"usage.{parent}.{name}" if parent else f"usage.{name}"
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise Unreadable(f"{where} is {value!r}, not a whole number")
    if value < 0:
        raise Unreadable(f"{where} is negative ({value})")
    return value


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Unreadable(f"{where} is {_kind(value)}, not an object")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "missing"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return {bool: "a boolean", int: "a number", float: "a number", list: "a list"}.get(
        type(value), type(value).__name__
    )
