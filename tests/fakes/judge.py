"""Deterministic LLM judge behind the fake OpenAI API, and the response bodies it returns.

Pure functions, so tests can compute the exact answer, score and token usage
the fake returns for any request body (``/v1/chat/completions`` or ``/v1/responses``).

Rules:
- The judged text is the content of the last ``user`` message (chat) or the
  ``input`` string / the content of the last ``input`` item (responses); list
  contents are the ``text`` of their parts joined by newlines.
- ``judge_score``: ``[[score:N]]`` in the text forces N (clamped), otherwise the
  UTF-8 byte sum of the text modulo the range.
- Structured output (a json_schema response format) gets a JSON object with
  every schema property filled (see ``schema_answer``), otherwise ``str(score)``.
- ``[[garbage]]`` in the text makes the answer the unparseable ``"I cannot decide"``.
- ``[[fail:CODE]]`` in the text makes the request fail with HTTP 400 and that code.
- ``[[refuse]]`` makes the model refuse: chat ``message.content`` null and ``message.refusal``
  set (``REFUSAL_TEXT``); responses a ``refusal`` content part.
- ``[[truncate]]`` makes the answer run into the request's output limit
  (``max_completion_tokens`` / ``max_tokens`` / ``max_output_tokens``): the text is the
  first half of the answer, ``completion_tokens`` is the limit, and the finish reason is
  ``length`` (responses: ``status: incomplete``, reason ``max_output_tokens``).
- Tokens: prompt = per message words + 3, plus 3 (``count_prompt_tokens``); completion =
  answer words + 1 + reasoning tokens (8 for reasoning models, per ``models.py``, else 0),
  since reasoning tokens are a subset of completion tokens.
- ``/v1/completions`` judges its ``prompt`` like a user message; ``/v1/embeddings`` returns
  a small deterministic vector per input and ``/v1/moderations`` flags nothing.

Whether a request is refused (HTTP 4xx) is decided before the judge runs, by
``validation.request_refusal``.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tests.fakes.models import rules_for

CHAT_ENDPOINT = "/v1/chat/completions"
RESPONSES_ENDPOINT = "/v1/responses"
EMBEDDINGS_ENDPOINT = "/v1/embeddings"
COMPLETIONS_ENDPOINT = "/v1/completions"
MODERATIONS_ENDPOINT = "/v1/moderations"
REASONING_TOKENS = 8
EMBEDDING_DIMENSIONS = 8
GARBAGE_MARKER = "[[garbage]]"
GARBAGE_ANSWER = "I cannot decide"
REFUSE_MARKER = "[[refuse]]"
REFUSAL_TEXT = "I'm sorry, but I can't help with that."
TRUNCATE_MARKER = "[[truncate]]"
#: The output limit of a request that names none (the models' usual default).
DEFAULT_OUTPUT_LIMIT = 4096
DEFAULT_LO = 1
DEFAULT_HI = 5

# A forced per-request failure: (HTTP status, error code, message).
FailSpec = tuple[int, str, str]

_SCORE_RE = re.compile(r"\[\[score:(-?\d+)\]\]")
_FAIL_RE = re.compile(r"\[\[fail:([A-Za-z0-9_.\-]+)\]\]")


def is_reasoning_model(model: str) -> bool:
    """True for models that report reasoning tokens (``models.py``)."""
    return rules_for(model).reasoning


def judge_score(text: str, lo: int = DEFAULT_LO, hi: int = DEFAULT_HI) -> int:
    """Score of ``text`` in ``lo..hi``: a ``[[score:N]]`` marker (clamped) or the byte sum."""
    match = _SCORE_RE.search(text)
    if match:
        return max(lo, min(hi, int(match.group(1))))
    return lo + sum(text.encode("utf-8")) % (hi - lo + 1)


def fail_marker(text: str) -> str | None:
    """The error code of a ``[[fail:CODE]]`` marker in ``text``, if any."""
    match = _FAIL_RE.search(text)
    return match.group(1) if match else None


def content_text(content: Any) -> str:
    """Text of a message content: a string, or the ``text`` of its parts joined by newlines."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            part["text"]
            for part in content
            if isinstance(part, Mapping) and isinstance(part.get("text"), str)
        )
    return ""


def request_text(body: Mapping[str, Any]) -> str:
    """The judged text of a chat (``messages``), responses (``input``) or completions
    (``prompt``) request body."""
    if "prompt" in body:
        prompt = body["prompt"]
        return prompt[-1] if isinstance(prompt, list) and prompt else content_text(prompt)
    messages = body.get("messages")
    if isinstance(messages, list):
        users = [m for m in messages if isinstance(m, Mapping) and m.get("role") == "user"]
        return content_text(users[-1].get("content")) if users else ""
    items = body.get("input")
    if isinstance(items, list):
        last = items[-1] if items else None
        return (
            content_text(last.get("content")) if isinstance(last, Mapping) else content_text(last)
        )
    return content_text(items)


def response_schema(body: Mapping[str, Any]) -> dict[str, Any] | None:
    """The JSON schema requested by ``response_format`` (chat) or ``text.format`` (responses)."""
    response_format = body.get("response_format")
    if isinstance(response_format, Mapping) and response_format.get("type") == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        return schema if isinstance(schema, dict) else {}
    text_config = body.get("text")
    text_format = text_config.get("format") if isinstance(text_config, Mapping) else None
    if isinstance(text_format, Mapping) and text_format.get("type") == "json_schema":
        schema = text_format.get("schema")
        return schema if isinstance(schema, dict) else {}
    return None


def _property_type(prop: Mapping[str, Any]) -> str | None:
    kind = prop.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    return kind if isinstance(kind, str) else None


def _bounds(prop: Mapping[str, Any]) -> tuple[int, int]:
    lo = prop.get("minimum")
    hi = prop.get("maximum")
    return (
        math.ceil(lo) if isinstance(lo, int | float) else DEFAULT_LO,
        math.floor(hi) if isinstance(hi, int | float) else DEFAULT_HI,
    )


def schema_answer(schema: Mapping[str, Any], text: str) -> dict[str, Any]:
    """The object the judge returns for ``schema``, one value per property (in schema order).

    ``integer`` → ``judge_score(text, minimum, maximum)`` (defaults 1..5), ``number`` → the
    same as a float, ``string`` → ``"reasoning for " + text[:20]`` or, with ``enum``,
    ``enum[score % len(enum)]``, ``boolean`` → ``score >= 3``, ``array`` → ``[]``,
    ``object`` → ``{}``, anything else → ``None`` (``score`` = ``judge_score(text)``).
    """
    score = judge_score(text)
    answer: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        kind = _property_type(prop)
        if kind == "integer":
            answer[name] = judge_score(text, *_bounds(prop))
        elif kind == "number":
            answer[name] = float(judge_score(text, *_bounds(prop)))
        elif kind == "string":
            enum = prop.get("enum")
            answer[name] = enum[score % len(enum)] if enum else "reasoning for " + text[:20]
        elif kind == "boolean":
            answer[name] = score >= 3
        elif kind == "array":
            answer[name] = []
        elif kind == "object":
            answer[name] = {}
        else:
            answer[name] = None
    return answer


def judge_answer(body: Mapping[str, Any]) -> str:
    """The assistant text the judge returns for a request body."""
    text = request_text(body)
    if GARBAGE_MARKER in text:
        return GARBAGE_ANSWER
    schema = response_schema(body)
    if schema is not None:
        return json.dumps(schema_answer(schema, text))
    return str(judge_score(text))


def _message_tokens(text: str) -> int:
    return len(text.split()) + 3


def count_prompt_tokens(body: Mapping[str, Any]) -> int:
    """Prompt tokens: per message (and ``instructions``/``input`` item) words + 3, plus 3."""
    texts: list[str] = []
    messages = body.get("messages")
    if isinstance(messages, list):
        texts += [content_text(m.get("content")) for m in messages if isinstance(m, Mapping)]
    instructions = body.get("instructions")
    if isinstance(instructions, str):
        texts.append(instructions)
    items = body.get("input")
    if isinstance(items, list):
        texts += [
            content_text(i.get("content")) if isinstance(i, Mapping) else content_text(i)
            for i in items
        ]
    elif items is not None:
        texts.append(content_text(items))
    prompt = body.get("prompt")
    if prompt is not None:
        texts.append(request_text({"prompt": prompt}))
    return sum(_message_tokens(t) for t in texts) + 3


def reasoning_tokens(model: str) -> int:
    """Reasoning tokens reported per request: 8 for reasoning models, else 0."""
    return REASONING_TOKENS if is_reasoning_model(model) else 0


def count_completion_tokens(answer: str, model: str) -> int:
    """Completion tokens: words of the answer + 1, plus the reasoning tokens (they are a subset)."""
    return len(answer.split()) + 1 + reasoning_tokens(model)


def api_error_body(
    message: str, type_: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """The OpenAI error envelope ``{"error": {message, type, param, code}}``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_type_for(status: int) -> str:
    """The ``error.type`` OpenAI uses for an HTTP status."""
    if status >= 500:
        return "server_error"
    if status == 429:
        return "requests"
    return "invalid_request_error"


@dataclass
class Usage:
    """Token usage of one response or of a whole batch."""

    input_tokens: int = 0
    cached_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0

    def add(self, other: Usage) -> None:
        """Accumulate ``other`` into this usage."""
        self.input_tokens += other.input_tokens
        self.cached_tokens += other.cached_tokens
        self.output_tokens += other.output_tokens
        self.reasoning_tokens += other.reasoning_tokens

    def batch_usage(self) -> dict[str, Any]:
        """The batch-level ``usage`` object (§5.3)."""
        return {
            "input_tokens": self.input_tokens,
            "input_tokens_details": {"cached_tokens": self.cached_tokens},
            "output_tokens": self.output_tokens,
            "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
            "total_tokens": self.input_tokens + self.output_tokens,
        }


@dataclass
class Executed:
    """Outcome of one executed request: an HTTP status and its JSON body."""

    status_code: int
    body: dict[str, Any]
    usage: Usage | None = None


def _chat_completion(
    body: dict[str, Any], answer: str, usage: Usage, response_id: str, now: int
) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{response_id}",
        "object": "chat.completion",
        "created": now,
        "model": body["model"],
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": answer,
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": usage.input_tokens,
            "completion_tokens": usage.output_tokens,
            "total_tokens": usage.input_tokens + usage.output_tokens,
            "prompt_tokens_details": {"cached_tokens": usage.cached_tokens, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": usage.reasoning_tokens,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_fake",
    }


def _response_object(
    body: dict[str, Any], answer: str, usage: Usage, response_id: str, now: int
) -> dict[str, Any]:
    output: list[dict[str, Any]] = []
    if is_reasoning_model(body["model"]):
        output.append({"type": "reasoning", "id": f"rs_{response_id}", "summary": []})
    output.append(
        {
            "type": "message",
            "id": f"msg_{response_id}",
            "status": "completed",
            "role": "assistant",
            "content": [{"type": "output_text", "text": answer, "annotations": []}],
        }
    )
    return {
        "id": f"resp_{response_id}",
        "object": "response",
        "created_at": now,
        "status": "completed",
        "error": None,
        "incomplete_details": None,
        "instructions": body.get("instructions"),
        "model": body["model"],
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "text": body.get("text") or {"format": {"type": "text"}},
        "usage": {
            "input_tokens": usage.input_tokens,
            "input_tokens_details": {"cached_tokens": usage.cached_tokens, "cache_write_tokens": 0},
            "output_tokens": usage.output_tokens,
            "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
            "total_tokens": usage.input_tokens + usage.output_tokens,
        },
    }


def _inputs(body: dict[str, Any]) -> list[str]:
    items = body.get("input")
    return [content_text(i) for i in items] if isinstance(items, list) else [content_text(items)]


def _embedding(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return [round(byte / 255 - 0.5, 4) for byte in digest[:EMBEDDING_DIMENSIONS]]


def _embeddings(body: dict[str, Any], usage: Usage) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": index, "embedding": _embedding(text)}
            for index, text in enumerate(_inputs(body))
        ],
        "model": body["model"],
        "usage": {"prompt_tokens": usage.input_tokens, "total_tokens": usage.input_tokens},
    }


def _moderation(body: dict[str, Any], response_id: str) -> dict[str, Any]:
    return {
        "id": f"modr-{response_id}",
        "model": body.get("model") or "omni-moderation-latest",
        "results": [
            {"flagged": False, "categories": {}, "category_scores": {}} for _ in _inputs(body)
        ],
    }


def _text_completion(
    body: dict[str, Any], answer: str, usage: Usage, response_id: str, now: int
) -> dict[str, Any]:
    return {
        "id": f"cmpl-{response_id}",
        "object": "text_completion",
        "created": now,
        "model": body["model"],
        "choices": [{"text": answer, "index": 0, "logprobs": None, "finish_reason": "stop"}],
        "usage": {
            "prompt_tokens": usage.input_tokens,
            "completion_tokens": usage.output_tokens,
            "total_tokens": usage.input_tokens + usage.output_tokens,
        },
    }


def execute_request(
    endpoint: str,
    body: dict[str, Any],
    *,
    failure: FailSpec | None,
    cached_tokens: int,
    response_id: str,
    now: int,
) -> Executed:
    """Run one request against the judge: a forced ``failure``, a ``[[fail:CODE]]`` marker,
    else 200 and the endpoint's body (the request was checked by ``request_refusal``)."""
    if failure is not None:
        status, code, message = failure
        return Executed(status, api_error_body(message, error_type_for(status), None, code))
    marker = fail_marker(request_text(body))
    if marker is not None:
        return Executed(
            400,
            api_error_body(f"Simulated failure: {marker}", "invalid_request_error", None, marker),
        )
    if endpoint == MODERATIONS_ENDPOINT:
        return Executed(200, _moderation(body, response_id), Usage())
    model = body["model"]
    if endpoint == EMBEDDINGS_ENDPOINT:
        usage = Usage(count_prompt_tokens(body))
        return Executed(200, _embeddings(body, usage), usage)
    text = request_text(body)
    refused = REFUSE_MARKER in text and endpoint in (CHAT_ENDPOINT, RESPONSES_ENDPOINT)
    truncated = TRUNCATE_MARKER in text and endpoint in (CHAT_ENDPOINT, RESPONSES_ENDPOINT)
    answer = REFUSAL_TEXT if refused else judge_answer(body)
    prompt = count_prompt_tokens(body)
    completion = count_completion_tokens(answer, model)
    if truncated:
        answer = answer[: len(answer) // 2]
        completion = output_limit(body)
    usage = Usage(prompt, min(cached_tokens, prompt), completion, reasoning_tokens(model))
    build = {RESPONSES_ENDPOINT: _response_object, COMPLETIONS_ENDPOINT: _text_completion}.get(
        endpoint, _chat_completion
    )
    built = build(body, answer, usage, response_id, now)
    if refused:
        _as_refusal(built)
    elif truncated:
        _as_truncated(built)
    return Executed(200, built, usage)


def output_limit(body: Mapping[str, Any]) -> int:
    """The output-token limit a request sets (``DEFAULT_OUTPUT_LIMIT`` when it sets none)."""
    for key in ("max_completion_tokens", "max_tokens", "max_output_tokens"):
        value = body.get(key)
        if isinstance(value, int):
            return value
    return DEFAULT_OUTPUT_LIMIT


def _as_refusal(built: dict[str, Any]) -> None:
    """A chat completion or response object turned into the model's refusal."""
    if built.get("object") == "response":
        message = next(item for item in built["output"] if item["type"] == "message")
        message["content"] = [{"type": "refusal", "refusal": REFUSAL_TEXT}]
        return
    message = built["choices"][0]["message"]
    message["content"] = None
    message["refusal"] = REFUSAL_TEXT


def _as_truncated(built: dict[str, Any]) -> None:
    """A chat completion or response object cut at the output limit."""
    if built.get("object") == "response":
        built["status"] = "incomplete"
        built["incomplete_details"] = {"reason": "max_output_tokens"}
        for item in built["output"]:
            if item["type"] == "message":
                item["status"] = "incomplete"
        return
    built["choices"][0]["finish_reason"] = "length"
