"""The judge's answers for the fake Anthropic Messages API (validation: ``anthropic_params``).

Pure functions of a request's ``params`` (the ``/v1/messages`` body, or one batch row's
``params``), so tests can compute exactly what the fake answers.

Judge (the scoring rules of ``judge.py`` on the text of the last ``user`` message):

- ``[[score:N]]`` forces the score (clamped to 1..5), else the UTF-8 byte sum mod 5, plus 1.
- ``[[garbage]]``: a plain text answer ``"I cannot decide"`` whatever was asked for.
- ``[[fail:TYPE]]``: the request fails with that error type (``overloaded_error`` → 529,
  ``api_error`` → 500, ...; an unknown TYPE is an ``invalid_request_error``).
- ``[[refuse]]``: ``stop_reason: "refusal"``, no content.
- Structured output (``output_config.format`` json_schema, or the beta top-level
  ``output_format``): one text block holding ``json.dumps(schema_answer(schema, text))``.
- Forced tool (``tool_choice: {"type": "tool", "name": N}``, or ``"any"``, which picks the
  first tool): one ``tool_use`` block whose ``input`` is ``schema_answer(input_schema, text)``,
  ``stop_reason: "tool_use"``.
- Otherwise the score as text, ``stop_reason: "end_turn"``.
- ``output_tokens`` = tokens of the answer (the text, or ``canonical(input)`` of a tool use)
  + 1. Over ``max_tokens``: the text is cut to ``max_tokens`` tokens (a tool use keeps an
  empty ``input``), ``output_tokens = max_tokens``, ``stop_reason: "max_tokens"``.
- A ``stop_sequences`` entry found in a text answer cuts it there (``"stop_sequence"``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from tests.fakes.anthropic_models import (
    ERROR_STATUS,
    ApiError,
    ModelInfo,
    cache_usage,
    canonical,
    decode,
    encode,
    output_schema,
)
from tests.fakes.anthropic_params import Context, forced_tool
from tests.fakes.judge import GARBAGE_ANSWER, GARBAGE_MARKER, content_text, judge_score
from tests.fakes.judge import schema_answer as schema_answer

REFUSE_MARKER = "[[refuse]]"
_FAIL_RE = re.compile(r"\[\[fail:([A-Za-z0-9_]+)\]\]")


def last_user_text(params: Mapping[str, Any]) -> str:
    """The judged text: content of the last ``user`` message (text blocks joined by newlines)."""
    messages = params.get("messages")
    if not isinstance(messages, list):
        return ""
    users = [m for m in messages if isinstance(m, Mapping) and m.get("role") == "user"]
    return content_text(users[-1].get("content")) if users else ""


# ---------------------------------------------------------------------- answers


def _fail(text: str) -> ApiError | None:
    match = _FAIL_RE.search(text)
    if match is None:
        return None
    kind = match.group(1)
    if kind not in ERROR_STATUS or kind == "request_too_large":
        kind = "invalid_request_error"
    return ApiError(kind, f"Simulated failure: {match.group(1)}")


def _cut(answer: str, max_tokens: int) -> tuple[str, int, bool]:
    """(text, output tokens, cut) of ``answer`` under ``max_tokens``."""
    ids = encode(answer)
    if len(ids) + 1 <= max_tokens:
        return answer, len(ids) + 1, False
    return decode(ids[:max_tokens]), max_tokens, True


def execute(
    params: Mapping[str, Any], model: ModelInfo, ctx: Context, *, message_id: str
) -> dict[str, Any]:
    """The ``Message`` the judge returns for validated ``params``, or raises ``ApiError``.

    Updates ``ctx.cache`` (prompt caching) as a real call would.
    """
    text = last_user_text(params)
    failure = _fail(text)
    if failure is not None:
        raise failure
    max_tokens = int(params["max_tokens"])
    usage = cache_usage(params, model, ctx.cache)
    content: list[dict[str, Any]] = []
    stop_reason, stop_sequence, stop_details = "end_turn", None, None
    output_tokens = 0
    tool = forced_tool(params)
    schema = output_schema(params)
    if max_tokens == 0:
        stop_reason = "max_tokens"
    elif REFUSE_MARKER in text:
        stop_reason, output_tokens = "refusal", 1
        stop_details = {"type": "refusal", "category": None, "explanation": None}
    elif tool is not None and GARBAGE_MARKER not in text:
        tool_input = schema_answer(tool.get("input_schema") or {}, text)
        _, output_tokens, cut = _cut(canonical(tool_input), max_tokens)
        stop_reason = "max_tokens" if cut else "tool_use"
        block_id = "toolu_" + message_id.removeprefix("msg_")
        content.append(
            {
                "type": "tool_use",
                "id": block_id,
                "name": tool["name"],
                "input": {} if cut else tool_input,
            }
        )
    else:
        if GARBAGE_MARKER in text:
            answer = GARBAGE_ANSWER
        elif schema is not None:
            answer = json.dumps(schema_answer(schema, text))
        else:
            answer = str(judge_score(text))
        for stop in params.get("stop_sequences") or []:
            if stop in answer:
                answer, stop_reason, stop_sequence = (
                    answer[: answer.index(stop)],
                    "stop_sequence",
                    stop,
                )
                break
        answer, output_tokens, cut = _cut(answer, max_tokens)
        if cut:
            stop_reason, stop_sequence = "max_tokens", None
        content.append({"type": "text", "text": answer})
    creation = {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}
    creation[f"ephemeral_{usage.ttl}_input_tokens"] = usage.cache_creation_input_tokens
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model.model_id,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": stop_sequence,
        "stop_details": stop_details,
        "container": None,
        "usage": {
            "input_tokens": usage.input_tokens,
            "output_tokens": output_tokens,
            "cache_creation_input_tokens": usage.cache_creation_input_tokens,
            "cache_read_input_tokens": usage.cache_read_input_tokens,
            "cache_creation": creation,
            "server_tool_use": None,
            "service_tier": "batch" if ctx.in_batch else "standard",
        },
    }
