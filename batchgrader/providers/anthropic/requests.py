"""Anthropic request lines and bodies: ``{"custom_id", "params"}`` per row.

``params`` is a Messages API body: the prompt's system message becomes the top-level
``system``, the user template the one user message, and ``max_tokens`` is always sent
(the API requires it). The answer's shape follows the model's catalogue entry:

* ``json_schema`` models: structured output, ``output_config.format`` with the answer
  schema made strict for Anthropic (every object closed; the numeric and length
  constraints Anthropic does not enforce move into the description, as the SDK's own
  ``transform_schema`` does, and the answer is still checked against the scale);
* ``tool`` models: a forced call of a ``grade`` tool whose input is the answer;
* otherwise the prompt asks for the answer and it is read from the text.

No temperature is sent: the current API version refuses sampling parameters
(``planning.spec`` says so once when ``request.temperature`` is set).

A system message the same in every request and long enough to be cached gets a
``cache_control`` breakpoint, so every request after the first reads it at the
cache-read rate (best effort in batches). "Long enough" is the model's minimum
cacheable prompt (``cache_min_tokens`` in models.csv) against the approximate count
lowered by its error band: a breakpoint on a prompt that turns out too short is
silently ignored by the API and costs nothing.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from batchgrader.prompting import catalogue
from batchgrader.prompting.options import AnswerMode, RequestOptions
from batchgrader.prompting.prompts import Prompt
from batchgrader.providers.anthropic import results
from batchgrader.providers.base import Answer, LineResult
from batchgrader.providers.frames import SLOT_ID, SLOT_SYSTEM, SLOT_USER, Frame, fill

MESSAGES = "/v1/messages"
TOOL_NAME = "grade"
TOOL_DESCRIPTION = "Record the grade."
#: The shortest cacheable prompt of a model the catalogue gives no minimum for.
DEFAULT_CACHE_MIN_TOKENS = 512
#: JSON-schema keywords Anthropic's structured outputs do not take (moved to the description).
UNSUPPORTED_KEYWORDS = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
)


def strict_schema(schema: Any) -> Any:
    """``schema`` as Anthropic's structured outputs take it (a new object)."""
    if isinstance(schema, list):
        return [strict_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    moved: dict[str, Any] = {}
    for key, value in schema.items():
        if key in UNSUPPORTED_KEYWORDS:
            moved[key] = value
        elif key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {name: strict_schema(sub) for name, sub in value.items()}
        elif key in ("items", "anyOf", "allOf", "oneOf"):
            out[key] = strict_schema(value)
        else:
            out[key] = value
    if out.get("type") == "object":
        out["additionalProperties"] = False
    if moved:
        note = "{" + ", ".join(f"{k}: {json.dumps(v)}" for k, v in moved.items()) + "}"
        description = out.get("description")
        out["description"] = f"{description}\n\n{note}" if description else note
    return out


class AnthropicCodec:
    """Builds Message Batches request lines for one prompt and set of options."""

    def __init__(
        self,
        options: RequestOptions,
        prompt: Prompt,
        *,
        tokens: Callable[[str], int],
        error_band: float,
        max_usage: int | None = None,
    ) -> None:
        self.options = options
        self.prompt = prompt
        self._tokens = tokens
        self._error_band = error_band
        self._max_usage = max_usage
        info = catalogue.lookup(options.model)
        self.cache_min_tokens = info.cache_min_tokens or DEFAULT_CACHE_MIN_TOKENS
        self._params = self._params_frame()
        self._prefix_tokens = self._tokens(json.dumps(self._answer_format()))
        self._frames = {
            mode: Frame({"custom_id": SLOT_ID, "params": self._with_system(mode)})
            for mode in ("plain", "cached", "none")
        }

    # --- requests ---------------------------------------------------------------------

    def cached(self, system: str) -> bool:
        """Whether a system message shared by every request gets a cache breakpoint."""
        if not system:
            return False
        approx = self._prefix_tokens + self._tokens(system)
        return approx * (1 + self._error_band) >= self.cache_min_tokens

    def body(self, system: str, user: str) -> dict[str, Any]:
        """The Messages API body of one row (a direct call)."""
        body: dict[str, Any] = fill(self._with_system(self._mode(system)), system, user)
        return body

    def lines(self, ids: Sequence[str], systems: Sequence[str], users: Sequence[str]) -> list[str]:
        """Rows with their own system message: no cache breakpoint (no shared prefix)."""
        return self._frames["plain"].lines(ids, systems, users)

    def constant_system_lines(
        self, ids: Sequence[str], system: str, users: Sequence[str]
    ) -> list[str]:
        return self._frames[self._mode(system)].constant_system_lines(ids, system, users)

    def split_line(self, line: str) -> tuple[str, dict[str, Any]]:
        data = json.loads(line)
        return str(data["custom_id"]), dict(data["params"])

    # --- results ----------------------------------------------------------------------

    def parse_line(self, raw: bytes) -> LineResult:
        return results.parse_line(raw, max_usage=self._max_usage)

    def parse_reply(self, status: int, body: Any) -> Answer:
        return results.parse_reply(status, body, max_usage=self._max_usage)

    # --- the frame ----------------------------------------------------------------------

    def _mode(self, system: str) -> str:
        if not system:
            return "none"
        return "cached" if self.cached(system) else "plain"

    def _with_system(self, mode: str) -> dict[str, Any]:
        """The params with the system slot as a string, a cached block, or absent."""
        params: dict[str, Any] = {}
        for key, value in self._params.items():
            if key != "system":
                params[key] = value
            elif mode == "plain":
                params[key] = SLOT_SYSTEM
            elif mode == "cached":
                params[key] = [
                    {"type": "text", "text": SLOT_SYSTEM, "cache_control": {"type": "ephemeral"}}
                ]
        return params

    def _answer_format(self) -> dict[str, Any]:
        mode = self.options.answer_mode
        schema = self.prompt.answer_schema()
        if mode is AnswerMode.SCHEMA:
            strict = strict_schema(schema)
            return {"output_config": {"format": {"type": "json_schema", "schema": strict}}}
        if mode is AnswerMode.TOOL:
            return {
                "tools": [
                    {"name": TOOL_NAME, "description": TOOL_DESCRIPTION, "input_schema": schema}
                ],
                "tool_choice": {"type": "tool", "name": TOOL_NAME},
            }
        return {}

    def _params_frame(self) -> dict[str, Any]:
        o = self.options
        params: dict[str, Any] = {
            "model": catalogue.lookup(o.model).requested or o.model,
            "max_tokens": o.max_tokens,
            "system": SLOT_SYSTEM,
            "messages": [{"role": "user", "content": SLOT_USER}],
        }
        params.update(self._answer_format())
        return params
