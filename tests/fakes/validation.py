"""What OpenAI refuses in a Batch API input line, as pure functions (no HTTP, no state).

A line can be refused at two places, as at OpenAI (Batch API reference,
https://platform.openai.com/docs/api-reference/batch; "§" numbers are sections of
BatchGrader's batch-api.md research notes):

- **validation** (§7): a malformed line (not JSON, a missing key, a ``url`` that is not
  the batch endpoint, ``stream``, an unknown model) fails the whole batch before anything
  runs; ``line_error`` gives its ``errors.data`` entry.
- **request** (§8.4): a well-formed line whose request the endpoint itself refuses
  (an unknown argument, a parameter the model does not take) runs and lands in the error
  file with the endpoint's HTTP status and error body; ``request_refusal`` gives it. The
  model rules behind these live in ``models.py``, with their sources.

``validate_request_line(line, endpoint)`` runs both on one line, so a test can check every
line a client builds without a server. Checks that need the whole file (duplicate
``custom_id``, one model per batch, the request cap) stay in ``batch_state.validate_input``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from openai.types import (
    completion_create_params,
    embedding_create_params,
    moderation_create_params,
)
from openai.types.chat import completion_create_params as chat_create_params
from openai.types.responses import response_create_params

from tests.fakes.judge import (
    CHAT_ENDPOINT,
    COMPLETIONS_ENDPOINT,
    EMBEDDINGS_ENDPOINT,
    MODERATIONS_ENDPOINT,
    RESPONSES_ENDPOINT,
    api_error_body,
)
from tests.fakes.models import CHAT, RESPONSES, base_model, rules_for

RUNNABLE_ENDPOINTS = (
    CHAT_ENDPOINT,
    COMPLETIONS_ENDPOINT,
    EMBEDDINGS_ENDPOINT,
    MODERATIONS_ENDPOINT,
    RESPONSES_ENDPOINT,
)
# Every endpoint POST /v1/batches takes (openai SDK ``batch_create_params.py``), sorted as
# the live "Invalid value" message lists them (batch-api.md §4.2). The fake has no judge
# for images and videos: such batches fail validation with a message saying so.
BATCH_ENDPOINTS = tuple(
    sorted((*RUNNABLE_ENDPOINTS, "/v1/images/generations", "/v1/images/edits", "/v1/videos"))
)
REQUIRED_LINE_KEYS = ("custom_id", "method", "url", "body")
CONTENT_KEYS = {
    CHAT_ENDPOINT: "messages",
    RESPONSES_ENDPOINT: "input",
    EMBEDDINGS_ENDPOINT: "input",
    COMPLETIONS_ENDPOINT: "prompt",
    MODERATIONS_ENDPOINT: "input",
}
# Model name prefixes the fake serves (plus a store's ``extra_models``).
KNOWN_MODEL_PREFIXES = (
    "gpt-",
    "o1",
    "o3",
    "o4",
    "chatgpt-",
    "codex-",
    "computer-use-",
    "text-embedding-",
    "omni-moderation-",
    "text-moderation-",
    "davinci-",
    "babbage-",
)


def _params(*typed_dicts: Any) -> frozenset[str]:
    return frozenset().union(*(t.__required_keys__ | t.__optional_keys__ for t in typed_dicts))


# Body arguments each endpoint takes: the openai SDK's request types, generated from the API
# spec (``stream`` lives in the streaming variants).
BODY_PARAMS: dict[str, frozenset[str]] = {
    CHAT_ENDPOINT: _params(chat_create_params.CompletionCreateParamsBase) | {"stream"},
    RESPONSES_ENDPOINT: _params(response_create_params.ResponseCreateParamsBase) | {"stream"},
    EMBEDDINGS_ENDPOINT: _params(embedding_create_params.EmbeddingCreateParams),
    COMPLETIONS_ENDPOINT: _params(completion_create_params.CompletionCreateParamsBase) | {"stream"},
    MODERATIONS_ENDPOINT: _params(moderation_create_params.ModerationCreateParams),
}
# Chat arguments the Responses API renamed; sending the old name gets a pointer to the new
# one (github.com/OpenHands/software-agent-sdk issue 755, github.com/mkht/PSOpenAI issue 44).
MOVED_IN_RESPONSES = {"reasoning_effort": "reasoning.effort", "response_format": "text.format"}
REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")  # SDK literal
SERVICE_TIERS = ("auto", "default", "flex", "scale", "priority", "fast")  # SDK literal
MAX_TOKENS_MESSAGE = (
    "Unsupported parameter: 'max_tokens' is not supported with this model. "
    "Use 'max_completion_tokens' instead."
)
STRUCTURED_OUTPUTS_GUIDE = "https://platform.openai.com/docs/guides/structured-outputs"
RESPONSES_REFERENCE = "https://platform.openai.com/docs/api-reference/responses/create"


def batch_error(
    code: str, message: str, param: str | None = None, line: int | None = None
) -> dict[str, Any]:
    """One ``errors.data[]`` entry of a failed batch (§5.2)."""
    return {"code": code, "message": message, "param": param, "line": line}


def supported_values(values: tuple[str, ...] | list[str]) -> str:
    """``'a', 'b', and 'c'`` as OpenAI's messages list allowed values."""
    quoted = [f"'{v}'" for v in values]
    if len(quoted) < 3:
        return " and ".join(quoted)
    return ", ".join(quoted[:-1]) + ", and " + quoted[-1]


def invalid_value_message(value: object, supported: tuple[str, ...] | list[str]) -> str:
    """``Invalid value: 'x'. Supported values are: ...`` (§4.2)."""
    return f"Invalid value: '{value}'. Supported values are: {supported_values(supported)}."


def is_known_model(model: str, extra_models: frozenset[str] | set[str] = frozenset()) -> bool:
    """Models the fake serves: OpenAI's name families (fine-tuned by base) and ``extra_models``."""
    return base_model(model).startswith(KNOWN_MODEL_PREFIXES) or model in extra_models


@dataclass(frozen=True)
class Refusal:
    """An endpoint's HTTP error for one request: status and the error object."""

    status: int
    message: str
    param: str | None = None
    code: str | None = None
    type: str = "invalid_request_error"

    def error(self) -> dict[str, Any]:
        """The ``error`` object ``{message, type, param, code}``."""
        error: dict[str, Any] = api_error_body(self.message, self.type, self.param, self.code)[
            "error"
        ]
        return error

    def body(self) -> dict[str, Any]:
        """The response body ``{"error": {...}}``."""
        return {"error": self.error()}


# ---------------------------------------------------------------------------- validation


def line_error(
    request: Any, line: int, endpoint: str, extra_models: frozenset[str] | set[str] = frozenset()
) -> dict[str, Any] | None:
    """The first §7.2 problem of one parsed line (None: it passes validation).

    ``request`` is the parsed JSON (anything else than an object is ``invalid_json_line``).
    """
    if not isinstance(request, dict):
        return batch_error(
            "invalid_json_line", "This line is not parseable as valid JSON.", None, line
        )
    for key in REQUIRED_LINE_KEYS:
        if key not in request:
            return batch_error(
                "missing_required_parameter", f"Missing required parameter: '{key}'.", key, line
            )
    if not isinstance(request["custom_id"], str) or not request["custom_id"]:
        return batch_error(
            "invalid_request", "custom_id must be a non-empty string.", "custom_id", line
        )
    if request["method"] != "POST":
        return batch_error(
            "invalid_method", "Only the POST method is supported in the Batch API.", "method", line
        )
    if request["url"] != endpoint:
        return batch_error(
            "invalid_url",
            "The URL provided for this request does not match the batch endpoint.",
            "url",
            line,
        )
    if endpoint not in RUNNABLE_ENDPOINTS:
        message = f"The fake Batch API does not run {endpoint} requests."
        return batch_error("invalid_request", message, "url", line)
    body = request["body"]
    if not isinstance(body, dict):
        return batch_error(
            "invalid_request", "The request body must be a JSON object.", "body", line
        )
    if body.get("stream") is True:
        api = "Responses" if endpoint == RESPONSES_ENDPOINT else "Chat Completions"
        return batch_error(
            "streaming_unsupported",
            f"{api}: Streaming is not supported in the Batch API.",
            "body.stream",
            line,
        )
    model = body.get("model")
    if endpoint != MODERATIONS_ENDPOINT and not isinstance(model, str):
        return batch_error("invalid_request", "Model parameter is required.", "body.model", line)
    content_key = CONTENT_KEYS[endpoint]
    if content_key not in body:
        return batch_error(
            "invalid_request",
            f"{content_key.capitalize()} parameter is required.",
            f"body.{content_key}",
            line,
        )
    if isinstance(model, str) and not is_known_model(model, extra_models):
        message = f"The provided model '{model}' is not supported by the Batch API."
        return batch_error("model_not_found", message, "body.model", line)
    return None


# ---------------------------------------------------------------------------- requests


def _unknown_argument(endpoint: str, body: dict[str, Any]) -> Refusal | None:
    allowed = BODY_PARAMS[endpoint]
    for name in body:
        if name in allowed:
            continue
        if endpoint != RESPONSES_ENDPOINT:
            # github.com/davidmigloz/langchain_dart issue 712, github.com/coroot/coroot 698.
            return Refusal(400, f"Unrecognized request argument supplied: {name}")
        if name in MOVED_IN_RESPONSES:
            message = (
                f"Unsupported parameter: '{name}'. In the Responses API, this parameter has "
                f"moved to '{MOVED_IN_RESPONSES[name]}'. Try again with the new parameter. "
                f"See the API documentation for more information: {RESPONSES_REFERENCE}."
            )
            return Refusal(400, message, None, "unsupported_parameter")
        # github.com/1jehuang/jcode issue 1028, github.com/cogwheel0/conduit issue 258.
        return Refusal(400, f"Unknown parameter: '{name}'.", name, "unknown_parameter")
    return None


def _messages_refusal(messages: Any, system_allowed: bool) -> Refusal | None:
    if not isinstance(messages, list):
        kind = "a string" if isinstance(messages, str) else "an object"
        message = f"Invalid type for 'messages': expected an array, but got {kind} instead."
        return Refusal(400, message, "messages", "invalid_type")
    for index, item in enumerate(messages):
        param = f"messages[{index}].role"
        if not isinstance(item, dict) or "role" not in item:
            message = f"Missing required parameter: '{param}'."
            return Refusal(400, message, param, "missing_required_parameter")
        if item["role"] in ("system", "developer") and not system_allowed:
            message = (
                f"Unsupported value: '{param}' does not support '{item['role']}' with this model."
            )
            return Refusal(400, message, param, "unsupported_value")
    return None


def _effort(endpoint: str, body: dict[str, Any]) -> tuple[str, Any]:
    """(param name, value) of the reasoning effort asked for (value None: not asked)."""
    if endpoint == CHAT_ENDPOINT:
        return "reasoning_effort", body.get("reasoning_effort")
    reasoning = body.get("reasoning")
    return "reasoning.effort", reasoning.get("effort") if isinstance(reasoning, dict) else None


def _effort_refusal(endpoint: str, body: dict[str, Any]) -> Refusal | None:
    model = body["model"]
    rules = rules_for(model)
    param, effort = _effort(endpoint, body)
    if effort is None:
        return None
    if endpoint == CHAT_ENDPOINT and not rules.reasoning:
        # A non-reasoning chat model does not know the argument at all (github.com/
        # davidmigloz/langchain_dart issue 712, github.com/umputun/tg-spam issue 304).
        return Refusal(400, "Unrecognized request argument supplied: reasoning_effort")
    if not rules.efforts:
        # Responses: github.com/RageAgainstThePixel/OpenAI-DotNet issue 500 (gpt-4o),
        # github.com/BoundaryML/baml PR 2708 (gpt-4.1). Chat on o1-mini: same shape [U].
        message = f"Unsupported parameter: '{param}' is not supported with this model."
        return Refusal(400, message, param, "unsupported_parameter")
    if effort not in REASONING_EFFORTS:
        return Refusal(
            400, invalid_value_message(effort, REASONING_EFFORTS), param, "invalid_value"
        )
    if effort not in rules.efforts:
        allowed = supported_values(rules.efforts)
        if endpoint == CHAT_ENDPOINT:  # github.com/Kilo-Org/cloud PR 3807
            message = (
                f"Unsupported value: 'reasoning_effort' does not support '{effort}' with this "
                f"model. Supported values are: {allowed}."
            )
        else:  # gpt-5-pro, quoted in a public client's tests
            message = (
                f"Unsupported value: '{effort}' is not supported with the '{model}' model. "
                f"Supported values are: {allowed}."
            )
        return Refusal(400, message, param, "unsupported_value")
    return None


def _temperature_refusal(endpoint: str, body: dict[str, Any]) -> Refusal | None:
    temperature = body.get("temperature")
    if temperature is None or temperature == 1:
        return None
    rules = rules_for(body["model"])
    if rules.takes_temperature(_effort(endpoint, body)[1]):
        return None
    if endpoint == CHAT_ENDPOINT:  # github.com/gabrii/Cursor-Azure-GPT-5 issue 33, many more
        message = (
            f"Unsupported value: 'temperature' does not support {json.dumps(temperature)} "
            "with this model. Only the default (1) value is supported."
        )
        return Refusal(400, message, "temperature", "unsupported_value")
    message = "Unsupported parameter: 'temperature' is not supported with this model."
    return Refusal(400, message, "temperature", "unsupported_parameter")


def _structured_refusal(endpoint: str, body: dict[str, Any]) -> Refusal | None:
    model = body["model"]
    if rules_for(model).structured_outputs:
        return None
    if endpoint == CHAT_ENDPOINT:
        response_format = body.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
            message = (
                "Invalid parameter: 'response_format' of type 'json_schema' is not supported "
                "with this model. Learn more about supported models at the Structured Outputs "
                f"guide: {STRUCTURED_OUTPUTS_GUIDE}"
            )
            return Refusal(400, message)
        return None
    text = body.get("text")
    text_format = text.get("format") if isinstance(text, dict) else None
    if isinstance(text_format, dict) and text_format.get("type") == "json_schema":
        message = (
            "Invalid parameter: 'text.format' of type 'json_schema' is not supported with "
            f"model version `{model}`."
        )
        return Refusal(400, message)
    return None


def _service_tier_refusal(body: dict[str, Any]) -> Refusal | None:
    tier = body.get("service_tier")
    if tier is None:
        return None
    if tier not in SERVICE_TIERS:
        message = invalid_value_message(tier, SERVICE_TIERS)
        return Refusal(400, message, "service_tier", "invalid_value")
    if tier == "flex" and not rules_for(body["model"]).flex:
        # github.com/openai/codex issue 15099 (body with type and message only).
        return Refusal(400, "Unsupported service_tier: flex")
    return None


def request_refusal(endpoint: str, body: dict[str, Any]) -> Refusal | None:
    """The HTTP error ``endpoint`` answers for ``body``, or None when it would run it.

    ``body`` must have passed ``line_error`` (a JSON object with a ``model`` string where
    the endpoint needs one). Checks, in order: the endpoint serves the model (404), every
    argument is one the endpoint knows, then the model's rules (``models.py``): messages
    and their roles, ``max_tokens``, reasoning effort, temperature, structured outputs and
    the service tier.
    """
    if endpoint not in (CHAT_ENDPOINT, RESPONSES_ENDPOINT):
        return _unknown_argument(endpoint, body) if endpoint in BODY_PARAMS else None
    model = body["model"]
    rules = rules_for(model)
    if endpoint == CHAT_ENDPOINT and CHAT not in rules.apis:
        message = "This model is only supported in v1/responses and not in v1/chat/completions."
        return Refusal(404, message, "model")
    if endpoint == RESPONSES_ENDPOINT and RESPONSES not in rules.apis:
        # The mirror of the message above [U]: seen in a public client's tests.
        message = "This model is only supported in v1/chat/completions and not in v1/responses."
        return Refusal(404, message, "model")
    refusal = _unknown_argument(endpoint, body)
    if refusal is None and endpoint == CHAT_ENDPOINT:
        refusal = _messages_refusal(body["messages"], rules.system_message)
        if refusal is None and "max_tokens" in body and rules.reasoning:
            refusal = Refusal(400, MAX_TOKENS_MESSAGE, "max_tokens", "unsupported_parameter")
    return (
        refusal
        or _effort_refusal(endpoint, body)
        or _temperature_refusal(endpoint, body)
        or _structured_refusal(endpoint, body)
        or _service_tier_refusal(body)
    )


def validate_request_line(
    line: Any,
    endpoint: str,
    *,
    line_number: int = 1,
    extra_models: frozenset[str] | set[str] = frozenset(),
) -> dict[str, Any] | None:
    """What the real service does with one parsed input line of a batch to ``endpoint``.

    None: the request runs. Otherwise a dict:
    ``{"stage": "validation", "error": {code, message, param, line}}`` when the line fails
    the batch at validation, or ``{"stage": "request", "status_code": N, "error":
    {message, type, param, code}}`` when it runs and lands in the error file.
    """
    error = line_error(line, line_number, endpoint, extra_models)
    if error is not None:
        return {"stage": "validation", "error": error}
    refusal = request_refusal(endpoint, line["body"])
    if refusal is not None:
        return {"stage": "request", "status_code": refusal.status, "error": refusal.error()}
    return None
