"""Reading Anthropic result lines and replies: one ``Answer`` per request.

A Message Batches result line is ``{"custom_id", "result": {"type", ...}}`` where the
type is ``succeeded`` (``result.message`` is a Message), ``errored`` (``result.error``
is the API's error envelope), ``canceled`` or ``expired`` (the request never ran and
is not billed). A Message's answer is its text blocks, or the input of the forced
``grade`` tool call as JSON text; ``stop_reason`` ``max_tokens`` keeps the text with a
``truncated`` error, ``refusal`` is ``refused``. Usage is normalised to the core's
``Usage``: ``input_tokens`` counts every input token (uncached + cache read + cache
write), ``cached_input_tokens`` the cache reads, ``cache_write_tokens`` the writes.

Every line is read defensively: a line that cannot be read becomes its row's
``malformed_line`` error and never stops the collection.
"""

from __future__ import annotations

import json
from typing import Any

from batchgrader.money.pricing import Usage
from batchgrader.providers.base import Answer, LineResult, RowError

MALFORMED = "malformed_line"
CANCELLED = RowError("batch_cancelled", "not run: the batch was canceled before this request ran")
EXPIRED = RowError("batch_expired", "not run before the batch expired (24 hours)")


class Unreadable(Exception):
    """What in a line or body could not be read (the message names it)."""


def parse_line(raw: bytes, *, max_usage: int | None = None) -> LineResult:
    """One line of a batch's results."""
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
        return LineResult(cid, _result_answer(_object(line.get("result"), "result"), max_usage))
    except Unreadable as exc:
        return LineResult(cid, _malformed(str(exc)))


def parse_reply(status: int, body: Any, *, max_usage: int | None = None) -> Answer:
    """A direct Messages API call's reply: a Message, or the error of any other status."""
    try:
        if 200 <= status < 300:
            return message_answer(_object(body, "the reply body"), max_usage)
        return Answer(None, _status_error(status, body))
    except Unreadable as exc:
        return _malformed(str(exc))


def _result_answer(result: dict[str, Any], max_usage: int | None) -> Answer:
    kind = result.get("type")
    if kind == "succeeded":
        return message_answer(_object(result.get("message"), "result.message"), max_usage)
    if kind == "errored":
        return Answer(None, _envelope_error(result.get("error")))
    if kind == "canceled":
        return Answer(None, CANCELLED)
    if kind == "expired":
        return Answer(None, EXPIRED)
    raise Unreadable(f"result.type is {_kind(kind)}, not succeeded/errored/canceled/expired")


def _envelope_error(error: Any) -> RowError:
    """``{"type": "error", "error": {"type", "message"}}`` (or the inner object alone)."""
    if isinstance(error, dict) and isinstance(error.get("error"), dict):
        error = error["error"]
    if not isinstance(error, dict):
        raise Unreadable(f"result.error is {_kind(error)}, not an object")
    return RowError(str(error.get("type") or "error"), str(error.get("message") or ""))


def _status_error(status: int, body: Any) -> RowError:
    inner = body.get("error") if isinstance(body, dict) else None
    if isinstance(inner, dict):
        return RowError(str(inner.get("type") or f"http_{status}"), str(inner.get("message") or ""))
    return RowError(f"http_{status}", "")


def message_answer(message: dict[str, Any], max_usage: int | None) -> Answer:
    """A Message: its text (or forced tool input), stop reason and usage."""
    usage = _usage(message.get("usage"), max_usage)
    content = message.get("content")
    if content is None:
        content = []
    if not isinstance(content, list):
        raise Unreadable(f"message.content is {_kind(content)}, not a list")
    texts: list[str] = []
    tool_inputs: list[str] = []
    for index, block in enumerate(content):
        if not isinstance(block, dict):
            raise Unreadable(f"message.content[{index}] is {_kind(block)}, not an object")
        kind = block.get("type")
        if kind == "text":
            value = block.get("text")
            if not isinstance(value, str):
                raise Unreadable(f"message.content[{index}].text is {_kind(value)}")
            texts.append(value)
        elif kind == "tool_use":
            tool_inputs.append(json.dumps(block.get("input"), ensure_ascii=False))
    # A forced tool call's input is the answer; otherwise the text blocks are.
    text = tool_inputs[0] if tool_inputs else ("".join(texts) if texts else None)
    stop = message.get("stop_reason")
    if stop == "refusal":
        return Answer(None, RowError("refused", "the model declined to answer"), usage)
    if stop == "max_tokens":
        return Answer(text, _truncated(usage), usage)
    return Answer(text, None, usage)


def _truncated(usage: Usage) -> RowError:
    return RowError(
        "truncated",
        f"the answer stopped at the output limit ({usage.output_tokens:,} tokens); "
        "raise request.max_tokens_per_response (--max-tokens)",
    )


def _usage(raw: Any, max_usage: int | None) -> Usage:
    """Anthropic usage: uncached input, cache reads and cache writes are added up."""
    if raw is None:
        return Usage()
    u = _object(raw, "usage")
    uncached = _count(u, "input_tokens")
    read = _count(u, "cache_read_input_tokens")
    written = _count(u, "cache_creation_input_tokens")
    usage = Usage(
        input_tokens=uncached + read + written,
        cached_input_tokens=read,
        output_tokens=_count(u, "output_tokens"),
        cache_write_tokens=written,
    )
    if max_usage is not None and usage.total_tokens > max_usage:
        raise Unreadable(
            f"usage of {usage.total_tokens:,} tokens is impossible for one request "
            f"(over {max_usage:,})"
        )
    return usage


def _count(obj: dict[str, Any], name: str) -> int:
    value = obj.get(name)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int):
        raise Unreadable(f"usage.{name} is {value!r}, not a whole number")
    if value < 0:
        raise Unreadable(f"usage.{name} is negative ({value})")
    return value


def _malformed(what: str) -> Answer:
    return Answer(None, RowError(MALFORMED, what))


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
