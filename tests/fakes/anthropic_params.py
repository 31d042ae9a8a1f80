"""Validation of Messages API params for the fake Anthropic API, as the real API refuses them.

``validate_params`` checks a ``/v1/messages`` body, one batch row's ``params`` or (with
``count_only``) a ``count_tokens`` body, and raises ``ApiError`` with the API's error type and a
message in the API's style (``"max_tokens: Field required"``). What it checks: unknown params
(sampling params only under anthropic-version 2023-06-01), required ``model`` /
``messages`` / ``max_tokens``, known models (404 ``not_found_error``), ``max_tokens`` bounds,
message roles and content, ``system``, tools and ``tool_choice``, structured outputs
(supported model, ``additionalProperties: false``), ``thinking``, ``cache_control`` (at most 4),
``temperature``/``top_p``/``top_k`` ranges, ``stream``, ``stop_sequences``, ``metadata``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.anthropic_models import (
    API_VERSIONS,
    SAMPLING_PARAMS,
    STRUCTURED_OUTPUTS_BETA,
    ApiError,
    ModelInfo,
    blocks_of,
    invalid,
)

CREATE_PARAMS = frozenset(
    {
        "model",
        "messages",
        "max_tokens",
        "system",
        "metadata",
        "stop_sequences",
        "stream",
        "tools",
        "tool_choice",
        "thinking",
        "output_config",
        "cache_control",
        "container",
        "diagnostics",
        "inference_geo",
        "service_tier",
        "speed",
    }
)
COUNT_PARAMS = frozenset(
    {
        "model",
        "messages",
        "system",
        "tools",
        "tool_choice",
        "thinking",
        "output_config",
        "cache_control",
        "speed",
    }
)
_TOOL_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,128}$")
_ROLES = ("user", "assistant", "system")
SYSTEM_ROLE_MESSAGE = (
    'messages: Unexpected role "system". The Messages API accepts a top-level `system` '
    'parameter, not "system" as an input message role.'
)


@dataclass
class Context:
    """What a request is judged against besides its params."""

    models: Mapping[str, ModelInfo]
    api_version: str = "2026-10-21"
    betas: frozenset[str] = frozenset()
    in_batch: bool = False
    cache: set[str] = field(default_factory=set)


def forced_tool(params: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The tool a ``tool_choice`` of type ``tool`` (or ``any``) makes the model call."""
    choice = params.get("tool_choice")
    tools = [t for t in params.get("tools") or [] if isinstance(t, Mapping)]
    if not isinstance(choice, Mapping) or not tools:
        return None
    if choice.get("type") == "any":
        return tools[0]
    if choice.get("type") == "tool":
        return next((t for t in tools if t.get("name") == choice.get("name")), None)
    return None


# ---------------------------------------------------------------------- validation


def _require_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"{name}: Input should be a valid integer")
    return value


def _check_number(params: Mapping[str, Any], name: str, lo: float, hi: float | None) -> None:
    value = params.get(name)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(f"{name}: Input should be a valid number")
    if value < lo or (hi is not None and value > hi):
        raise invalid(f"{name}: range: {lo:g}..{hi:g}" if hi is not None else f"{name}: >= {lo}")


def check_version(version: str | None) -> str:
    """The ``anthropic-version`` header value, or a 400."""
    if not version:
        raise invalid("anthropic-version: header is required")
    if version not in API_VERSIONS:
        raise invalid(f"anthropic-version: invalid version '{version}'")
    return version


def resolve_model(params: Mapping[str, Any], ctx: Context) -> ModelInfo:
    """The known model of ``params`` (required), else a ``not_found_error``."""
    model = params.get("model")
    if model is None:
        raise invalid("model: Field required")
    if not isinstance(model, str):
        raise invalid("model: Input should be a valid string")
    info = ctx.models.get(model)
    if info is None:
        raise ApiError("not_found_error", f"model: {model}")
    return info


def _check_extra(params: Mapping[str, Any], count_only: bool, ctx: Context) -> None:
    allowed = COUNT_PARAMS if count_only else CREATE_PARAMS
    sampling_ok = not count_only and ctx.api_version != "2026-10-21"
    for key in params:
        if key in allowed or (key in SAMPLING_PARAMS and sampling_ok):
            continue
        if key == "output_format" and STRUCTURED_OUTPUTS_BETA in ctx.betas:
            continue
        if key in SAMPLING_PARAMS:
            raise invalid(
                f"{key}: Extra inputs are not permitted. Sampling parameters were removed in "
                f"anthropic-version {ctx.api_version}."
            )
        raise invalid(f"{key}: Extra inputs are not permitted")


def _check_content(content: Any, where: str) -> int:
    if isinstance(content, str):
        return 1
    if not isinstance(content, list):
        raise invalid(f"{where}.content: Input should be a valid string or list")
    for index, block in enumerate(content):
        if not isinstance(block, Mapping) or not isinstance(block.get("type"), str):
            raise invalid(f"{where}.content.{index}.type: Field required")
        if block["type"] == "text" and not isinstance(block.get("text"), str):
            raise invalid(f"{where}.content.{index}.text: Field required")
    return len(content)


def _check_messages(messages: Any, model: ModelInfo) -> None:
    if messages is None:
        raise invalid("messages: Field required")
    if not isinstance(messages, list):
        raise invalid("messages: Input should be a valid list")
    if not messages:
        raise invalid("messages: at least one message is required")
    for index, message in enumerate(messages):
        where = f"messages.{index}"
        if not isinstance(message, Mapping):
            raise invalid(f"{where}: Input should be a valid dictionary")
        role = message.get("role")
        if role is None:
            raise invalid(f"{where}.role: Field required")
        if role not in _ROLES:
            raise invalid(f"{where}.role: Input should be 'user', 'assistant' or 'system'")
        if role == "system" and not model.system_messages:
            raise invalid(SYSTEM_ROLE_MESSAGE)
        if "content" not in message:
            raise invalid(f"{where}.content: Field required")
        last = index == len(messages) - 1
        if not _check_content(message["content"], where) or (
            message["content"] == "" and not (last and role == "assistant")
        ):
            raise invalid(
                f"{where}: all messages must have non-empty content except for the optional "
                "final assistant message"
            )
        extra = set(message) - {"role", "content"}
        if extra:
            raise invalid(f"{where}.{sorted(extra)[0]}: Extra inputs are not permitted")


def _check_system(system: Any) -> None:
    if system is None or isinstance(system, str):
        return
    if not isinstance(system, list):
        raise invalid("system: Input should be a valid string or list")
    for index, block in enumerate(system):
        if not (isinstance(block, Mapping) and block.get("type") == "text"):
            raise invalid(f"system.{index}.type: Input should be 'text'")
        if not isinstance(block.get("text"), str):
            raise invalid(f"system.{index}.text: Field required")


def _check_tools(params: Mapping[str, Any]) -> None:
    tools = params.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise invalid("tools: Input should be a valid list")
    names: list[str] = []
    for index, tool in enumerate(tools or []):
        if not isinstance(tool, Mapping):
            raise invalid(f"tools.{index}: Input should be a valid dictionary")
        name = tool.get("name")
        if not isinstance(name, str) or not _TOOL_NAME_RE.match(name):
            raise invalid(
                f"tools.{index}.name: String should match pattern '^[a-zA-Z0-9_-]{{1,128}}$'"
            )
        if tool.get("type", "custom") == "custom" and not isinstance(
            tool.get("input_schema"), Mapping
        ):
            raise invalid(f"tools.{index}.custom.input_schema: Field required")
        names.append(name)
    if len(set(names)) != len(names):
        raise invalid("tools: Tool names must be unique.")
    choice = params.get("tool_choice")
    if choice is None:
        return
    if not isinstance(choice, Mapping) or choice.get("type") not in ("auto", "any", "tool", "none"):
        raise invalid("tool_choice.type: Input should be 'auto', 'any', 'tool' or 'none'")
    if choice["type"] == "tool" and choice.get("name") not in names:
        raise invalid(f"tool_choice: Tool '{choice.get('name')}' not found in tools")
    if choice["type"] in ("any", "tool") and not names:
        raise invalid("tool_choice: tools must be provided when tool_choice forces tool use")


def _check_schema_objects(schema: Any, where: str) -> None:
    """Structured outputs need ``additionalProperties: false`` on every object schema."""
    if isinstance(schema, list):
        for index, item in enumerate(schema):
            _check_schema_objects(item, f"{where}.{index}")
        return
    if not isinstance(schema, Mapping):
        return
    if schema.get("type") == "object" and schema.get("additionalProperties") is not False:
        raise invalid(
            f"{where}: For 'object' type, 'additionalProperties' must be explicitly set to false"
        )
    for key, value in schema.items():
        if key in ("properties", "$defs", "definitions") and isinstance(value, Mapping):
            for name, sub in value.items():
                _check_schema_objects(sub, f"{where}.{key}.{name}")
        elif key in ("items", "anyOf", "allOf", "oneOf"):
            _check_schema_objects(value, f"{where}.{key}")


def _check_output(params: Mapping[str, Any], model: ModelInfo) -> None:
    config = params.get("output_config")
    if config is not None:
        if not isinstance(config, Mapping):
            raise invalid("output_config: Input should be a valid dictionary")
        extra = set(config) - {"effort", "format"}
        if extra:
            raise invalid(f"output_config.{sorted(extra)[0]}: Extra inputs are not permitted")
        effort = config.get("effort")
        if effort is not None and effort not in ("low", "medium", "high", "xhigh", "max"):
            raise invalid(
                "output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'"
            )
    fmt = config.get("format") if isinstance(config, Mapping) else None
    if fmt is not None and params.get("output_format") is not None:
        raise invalid("output_format: cannot be used together with output_config.format")
    fmt = fmt if fmt is not None else params.get("output_format")
    if fmt is None:
        return
    where = "output_config.format" if params.get("output_format") is None else "output_format"
    if not isinstance(fmt, Mapping) or fmt.get("type") != "json_schema":
        raise invalid(f"{where}.type: Input should be 'json_schema'")
    if not isinstance(fmt.get("schema"), Mapping):
        raise invalid(f"{where}.schema: Field required")
    if not model.structured_outputs:
        raise invalid(f"'{model.model_id}' does not support output format (structured outputs).")
    _check_schema_objects(fmt["schema"], f"{where}.schema")


def _check_thinking(params: Mapping[str, Any], max_tokens: int | None) -> None:
    thinking = params.get("thinking")
    if thinking is None:
        return
    kind = thinking.get("type") if isinstance(thinking, Mapping) else None
    if kind not in ("enabled", "adaptive", "disabled"):
        raise invalid("thinking.type: Input should be 'enabled', 'adaptive' or 'disabled'")
    if kind == "enabled":
        budget = _require_int(thinking.get("budget_tokens"), "thinking.enabled.budget_tokens")
        if budget < 1024:
            raise invalid(
                "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
            )
        if max_tokens is not None and budget >= max_tokens:
            raise invalid("`max_tokens` must be greater than `thinking.budget_tokens`.")
    if kind != "disabled" and forced_tool(params) is not None:
        raise invalid("Thinking may not be enabled when tool_choice forces tool use.")


def _cache_controls(params: Mapping[str, Any]) -> list[Any]:
    found: list[Any] = []
    blocks = list(params.get("tools") or [])
    system = params.get("system")
    if isinstance(system, list):
        blocks += system
    for message in params.get("messages") or []:
        if isinstance(message, Mapping):
            blocks += blocks_of(message.get("content"))
    for block in blocks:
        if isinstance(block, Mapping) and block.get("cache_control") is not None:
            found.append(block["cache_control"])
    if params.get("cache_control") is not None:
        found.append(params["cache_control"])
    return found


def _check_cache_control(params: Mapping[str, Any]) -> None:
    controls = _cache_controls(params)
    for control in controls:
        if not isinstance(control, Mapping) or control.get("type") != "ephemeral":
            raise invalid("cache_control.type: Input should be 'ephemeral'")
        if control.get("ttl", "5m") not in ("5m", "1h"):
            raise invalid("cache_control.ttl: Input should be '5m' or '1h'")
    if len(controls) > 4:
        raise invalid(
            f"A maximum of 4 blocks with cache_control may be provided. Found {len(controls)}."
        )


def _check_sampling(params: Mapping[str, Any], model: ModelInfo) -> None:
    given = [name for name in SAMPLING_PARAMS if params.get(name) is not None]
    if not given:
        return
    if not model.sampling_params:
        raise invalid(f"`{given[0]}` is deprecated for this model.")
    _check_number(params, "temperature", 0.0, 1.0)
    _check_number(params, "top_p", 0.0, 1.0)
    if params.get("top_k") is not None:
        _require_int(params["top_k"], "top_k")
        _check_number(params, "top_k", 0, None)
    if params.get("temperature") is not None and params.get("top_p") is not None:
        raise invalid(
            "`temperature` and `top_p` cannot both be specified for this model. "
            "Please use only one."
        )


def validate_params(params: Any, ctx: Context, *, count_only: bool = False) -> ModelInfo:
    """Check a Messages request as the API does; returns its model or raises ``ApiError``.

    ``count_only`` checks a ``count_tokens`` body (no ``max_tokens``, fewer params). Unknown
    models are a 404 ``not_found_error`` (``anthropic_state`` turns that into an
    ``invalid_request_error`` row in a batch).
    """
    if not isinstance(params, Mapping):
        raise invalid("Input should be a valid dictionary")
    _check_extra(params, count_only, ctx)
    max_tokens: int | None = None
    if not count_only:
        if "max_tokens" not in params:
            raise invalid("max_tokens: Field required")
        max_tokens = _require_int(params["max_tokens"], "max_tokens")
    if "messages" not in params:
        raise invalid("messages: Field required")
    model = resolve_model(params, ctx)
    if max_tokens is not None:
        low = 1 if ctx.in_batch else 0  # 0 pre-warms the cache; not in batches (assumed)
        if max_tokens < low:
            raise invalid(f"max_tokens: Input should be greater than or equal to {low}")
        if max_tokens > model.max_output_tokens:
            raise invalid(
                f"max_tokens: {max_tokens} > {model.max_output_tokens}, which is the maximum "
                f"allowed number of output tokens for {model.model_id}"
            )
    _check_messages(params["messages"], model)
    _check_system(params.get("system"))
    _check_tools(params)
    _check_output(params, model)
    _check_thinking(params, max_tokens)
    _check_cache_control(params)
    _check_sampling(params, model)
    if params.get("stream"):
        where = "batches" if ctx.in_batch else "this fake (it does not stream)"
        raise invalid(f"stream: streaming is not supported in {where}")
    stops = params.get("stop_sequences")
    if stops is not None and not (
        isinstance(stops, list) and all(isinstance(s, str) and s for s in stops)
    ):
        raise invalid("stop_sequences: Input should be a list of non-empty strings")
    metadata = params.get("metadata")
    if metadata is not None and (not isinstance(metadata, Mapping) or set(metadata) - {"user_id"}):
        raise invalid("metadata: only 'user_id' is permitted")
    return model
