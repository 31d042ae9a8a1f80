"""Models, API versions, errors and token counting of the fake Anthropic API.

No HTTP and no batches here (``anthropic_api.py``, ``anthropic_state.py``); request
validation and the judge's answers are in ``anthropic_judge.py``.

Token-count rule (``count_input_tokens``): ``POST /v1/messages/count_tokens`` returns it, and
``usage`` bills it as ``input_tokens + cache_creation_input_tokens + cache_read_input_tokens``::

    tokens(s)      = len(tiktoken o200k_base encode of s)
    canonical(x)   = json.dumps(x, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    block(b)       = tokens(b["text"]) for a text block,
                     else tokens(canonical(b without its cache_control))
    total = BASE_TOKENS (1)
          + Σ tools:        tokens(canonical(tool without its cache_control))
          + output schema:  tokens(canonical(schema))  (output_config.format or beta output_format)
          + system:         SYSTEM_OVERHEAD (3) + Σ block(b)  (a string system is one text block)
          + Σ messages:     MESSAGE_OVERHEAD (3) + Σ block(b)  (a string content is one text block)

``tool_choice``, ``thinking`` and the other params are free. Prompt caching works on the
same pieces, in that order (``BASE_TOKENS`` is never cached): see ``cache_usage``.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import tiktoken

BASE_TOKENS = 1
SYSTEM_OVERHEAD = 3
MESSAGE_OVERHEAD = 3

# anthropic-version values the fake accepts. SDK 2.x sends 2026-10-21, which removed
# temperature/top_p/top_k (a 400 even at default values); 2023-06-01 still takes them.
API_VERSIONS = frozenset({"2023-01-01", "2023-06-01", "2026-10-21"})
SAMPLING_PARAMS = ("temperature", "top_p", "top_k")
# Beta header under which the deprecated top-level ``output_format`` is still accepted.
STRUCTURED_OUTPUTS_BETA = "structured-outputs-2025-11-13"

# Error type → HTTP status (https://platform.claude.com/docs/en/api/errors).
ERROR_STATUS: dict[str, int] = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "billing_error": 402,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
}


class ApiError(Exception):
    """An Anthropic error: HTTP ``status`` and ``{"type":"error","error":{type,message}}``."""

    def __init__(self, error_type: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.status = status if status is not None else ERROR_STATUS.get(error_type, 400)

    def body(self, request_id: str | None) -> dict[str, Any]:
        """The error envelope, as answered over HTTP and as ``result.error`` of a batch row."""
        return error_body(self.error_type, self.message, request_id)


def error_body(error_type: str, message: str, request_id: str | None) -> dict[str, Any]:
    """``{"type": "error", "error": {"type", "message"}, "request_id"}``."""
    return {
        "type": "error",
        "error": {"type": error_type, "message": message},
        "request_id": request_id,
    }


def invalid(message: str) -> ApiError:
    """400 ``invalid_request_error``."""
    return ApiError("invalid_request_error", message)


@dataclass(frozen=True)
class ModelInfo:
    """What the fake knows of one model id (an alias and its dated snapshot share one)."""

    model_id: str  # what ``Message.model`` reports
    max_output_tokens: int = 64_000
    cache_min_tokens: int = 1024  # shorter cache_control prefixes are silently not cached
    structured_outputs: bool = True  # output_config.format
    sampling_params: bool = True  # temperature/top_p/top_k under anthropic-version 2023-06-01
    system_messages: bool = False  # role "system" inside ``messages``


_OPUS_4_5 = ModelInfo("claude-opus-4-5-20251101", cache_min_tokens=4096)
_SONNET_4_5 = ModelInfo("claude-sonnet-4-5-20250929")
_HAIKU_4_5 = ModelInfo("claude-haiku-4-5-20251001", cache_min_tokens=4096)
_SONNET_4 = ModelInfo("claude-sonnet-4-20250514", structured_outputs=False)

# Cache minimums from the prompt-caching docs (4096 for Opus 4.5/4.6 and Haiku 4.5, 2048
# for Sonnet 4.6, 1024 for Sonnet 4.5/4); Opus 4.7+ reject sampling params; role "system"
# inside messages was first accepted by Opus 4.8 (assumed absent on older models).
DEFAULT_MODELS: dict[str, ModelInfo] = {
    "claude-opus-4-5": _OPUS_4_5,
    "claude-opus-4-5-20251101": _OPUS_4_5,
    "claude-sonnet-4-5": _SONNET_4_5,
    "claude-sonnet-4-5-20250929": _SONNET_4_5,
    "claude-haiku-4-5": _HAIKU_4_5,
    "claude-haiku-4-5-20251001": _HAIKU_4_5,
    "claude-opus-4-6": ModelInfo("claude-opus-4-6", 128_000, 4096),
    "claude-sonnet-4-6": ModelInfo("claude-sonnet-4-6", cache_min_tokens=2048),
    "claude-opus-4-7": ModelInfo("claude-opus-4-7", 128_000, 4096, sampling_params=False),
    "claude-opus-4-8": ModelInfo(
        "claude-opus-4-8", 128_000, 4096, sampling_params=False, system_messages=True
    ),
    # Still served (deprecated); the one known model without structured outputs.
    "claude-sonnet-4-0": _SONNET_4,
    "claude-sonnet-4-20250514": _SONNET_4,
}
# Retired: the real API answers 404 for them (Haiku 3.5 retired Feb 2026, Haiku 3 Apr 2026).
RETIRED_MODELS = frozenset(
    {
        "claude-3-5-haiku-20241022",
        "claude-3-5-haiku-latest",
        "claude-3-haiku-20240307",
        "claude-3-5-sonnet-20241022",
        "claude-3-7-sonnet-20250219",
    }
)


# ---------------------------------------------------------------------- token counting


@functools.cache
def _encoding() -> tiktoken.Encoding:
    return tiktoken.get_encoding("o200k_base")


def tokens(text: str) -> int:
    """Tokens of ``text`` (tiktoken o200k_base)."""
    return len(_encoding().encode(text, disallowed_special=()))


def encode(text: str) -> list[int]:
    """The o200k_base token ids of ``text``."""
    return _encoding().encode(text, disallowed_special=())


def decode(ids: list[int]) -> str:
    """Text of o200k_base token ids (used to cut answers at ``max_tokens``)."""
    return _encoding().decode(ids)


def canonical(value: Any) -> str:
    """Canonical JSON of ``value``: sorted keys, no spaces, UTF-8 kept."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _without_cache_control(block: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in block.items() if key != "cache_control"}


def block_tokens(block: Any) -> int:
    """Tokens of one content block: a text block's text, else its canonical JSON."""
    if isinstance(block, Mapping) and block.get("type") == "text":
        return tokens(str(block.get("text", "")))
    if isinstance(block, Mapping):
        return tokens(canonical(_without_cache_control(block)))
    return tokens(canonical(block))


def blocks_of(content: Any) -> list[Any]:
    """Content blocks of a string or list content (a string is one text block)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return list(content) if isinstance(content, list) else []


def output_schema(params: Mapping[str, Any]) -> dict[str, Any] | None:
    """The JSON schema asked for by ``output_config.format`` or the beta ``output_format``."""
    config = params.get("output_config")
    fmt = config.get("format") if isinstance(config, Mapping) else None
    if fmt is None:
        fmt = params.get("output_format")
    if isinstance(fmt, Mapping) and fmt.get("type") == "json_schema":
        schema = fmt.get("schema")
        return dict(schema) if isinstance(schema, Mapping) else {}
    return None


@dataclass(frozen=True)
class Piece:
    """One cacheable piece of a prompt: its tokens, identity and ``cache_control``."""

    tokens: int
    identity: str
    cache_control: Mapping[str, Any] | None


def prompt_pieces(params: Mapping[str, Any]) -> list[Piece]:
    """The prompt as pieces in cache order: tools, output schema, system blocks, message blocks."""
    pieces: list[Piece] = []
    for tool in params.get("tools") or []:
        if isinstance(tool, Mapping):
            text = canonical(_without_cache_control(tool))
            pieces.append(Piece(tokens(text), "tool:" + text, tool.get("cache_control")))
    schema = output_schema(params)
    if schema is not None:
        text = canonical(schema)
        pieces.append(Piece(tokens(text), "schema:" + text, None))
    system = params.get("system")
    if system is not None:
        for index, block in enumerate(blocks_of(system)):
            overhead = SYSTEM_OVERHEAD if index == 0 else 0
            identity = "system:" + canonical(block)
            control = block.get("cache_control") if isinstance(block, Mapping) else None
            pieces.append(Piece(overhead + block_tokens(block), identity, control))
    for message in params.get("messages") or []:
        if not isinstance(message, Mapping):
            continue
        role = str(message.get("role"))
        for index, block in enumerate(blocks_of(message.get("content"))):
            overhead = MESSAGE_OVERHEAD if index == 0 else 0
            identity = f"{role}:{index}:" + canonical(block)
            control = block.get("cache_control") if isinstance(block, Mapping) else None
            pieces.append(Piece(overhead + block_tokens(block), identity, control))
    top = params.get("cache_control")
    if isinstance(top, Mapping) and pieces:  # automatic caching: breakpoint on the last block
        last = pieces[-1]
        pieces[-1] = Piece(last.tokens, last.identity, last.cache_control or top)
    return pieces


def count_input_tokens(params: Mapping[str, Any]) -> int:
    """Total input tokens of a request (the module docstring's rule)."""
    return BASE_TOKENS + sum(piece.tokens for piece in prompt_pieces(params))


@dataclass(frozen=True)
class CacheUsage:
    """The split of a request's input tokens by prompt caching."""

    input_tokens: int
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0
    ttl: str = "5m"  # of the cache write


def cache_usage(params: Mapping[str, Any], model: ModelInfo, cache: set[str]) -> CacheUsage:
    """Read the longest cached prefix ending on a breakpoint, write the last one; update ``cache``.

    A prefix (the pieces up to and including a ``cache_control`` piece) is cacheable when it
    holds at least ``model.cache_min_tokens`` tokens; shorter ones are silently not cached.
    Keys are per model and exact prefix (tools, schema, system and messages up to there).
    """
    pieces = prompt_pieces(params)
    total = BASE_TOKENS + sum(piece.tokens for piece in pieces)
    breakpoints = [i for i, piece in enumerate(pieces) if piece.cache_control is not None]
    if not breakpoints:
        return CacheUsage(total)
    digest = hashlib.sha256(model.model_id.encode())
    keys: list[str] = []
    sizes: list[int] = []
    size = 0
    for piece in pieces:
        digest.update(piece.identity.encode())
        keys.append(digest.copy().hexdigest())
        size += piece.tokens
        sizes.append(size)
    read = 0
    for index in reversed(breakpoints):
        if sizes[index] >= model.cache_min_tokens and keys[index] in cache:
            read = sizes[index]
            break
    last = breakpoints[-1]
    written = 0
    if sizes[last] >= model.cache_min_tokens and keys[last] not in cache:
        written = sizes[last] - read
        cache.add(keys[last])
    control = pieces[last].cache_control or {}
    ttl = "1h" if control.get("ttl") == "1h" else "5m"
    return CacheUsage(total - read - written, written, read, ttl)
