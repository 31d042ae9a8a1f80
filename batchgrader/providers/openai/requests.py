"""OpenAI request lines and bodies: ``{"custom_id", "method", "url", "body"}`` per row.

Chat Completions (``/v1/chat/completions``) and the Responses API (``/v1/responses``)
take different bodies; the model's catalogue entry decides the rest: reasoning models
take ``max_completion_tokens`` / ``max_output_tokens`` and ``reasoning_effort`` /
``reasoning.effort`` and no temperature; a model without JSON-schema output is asked
for its answer in the prompt instead of ``response_format``; a model that refuses a
system message (o1-mini) gets it folded into the user message.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from batchgrader.prompting.options import AnswerMode, RequestOptions
from batchgrader.prompting.prompts import Prompt
from batchgrader.providers.base import Answer, LineResult
from batchgrader.providers.frames import SLOT_ID, SLOT_SYSTEM, SLOT_USER, Frame, fill
from batchgrader.providers.openai import results

CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"
#: Joins a folded system message to the user message.
FOLD = "\n\n"


class OpenAICodec:
    """Builds request lines for one prompt and set of options, and reads their results."""

    def __init__(
        self, options: RequestOptions, prompt: Prompt, *, max_usage: int | None = None
    ) -> None:
        self.options = options
        self.prompt = prompt
        self.fold_system = options.fold_system
        self._body = self._body_frame()
        self._frame = Frame(
            {"custom_id": SLOT_ID, "method": "POST", "url": options.endpoint, "body": self._body}
        )
        self._max_usage = max_usage

    # --- requests ---------------------------------------------------------------------

    def body(self, system: str, user: str) -> dict[str, Any]:
        """The request body for one row."""
        if self.fold_system:
            user, system = system + FOLD + user, ""
        body: dict[str, Any] = fill(self._body, system, user)
        return body

    def lines(self, ids: Sequence[str], systems: Sequence[str], users: Sequence[str]) -> list[str]:
        if self.fold_system:
            users = [s + FOLD + u for s, u in zip(systems, users, strict=True)]
        return self._frame.lines(ids, systems, users)

    def constant_system_lines(
        self, ids: Sequence[str], system: str, users: Sequence[str]
    ) -> list[str]:
        if self.fold_system:
            return self._frame.lines(ids, [""] * len(users), [system + FOLD + u for u in users])
        return self._frame.constant_system_lines(ids, system, users)

    def split_line(self, line: str) -> tuple[str, dict[str, Any]]:
        data = json.loads(line)
        return str(data["custom_id"]), dict(data["body"])

    # --- results ----------------------------------------------------------------------

    def parse_line(self, raw: bytes) -> LineResult:
        return results.parse_line(raw, max_usage=self._max_usage)

    def parse_reply(self, status: int, body: Any) -> Answer:
        return results.parse_reply(status, body, max_usage=self._max_usage)

    # --- the frame ----------------------------------------------------------------------

    def _body_frame(self) -> dict[str, Any]:
        o = self.options
        body: dict[str, Any] = {"model": o.model}
        schema = self.prompt.answer_schema() if o.answer_mode is AnswerMode.SCHEMA else None
        if o.endpoint == RESPONSES:
            if not self.fold_system:
                body["instructions"] = SLOT_SYSTEM
            body["input"] = [{"role": "user", "content": SLOT_USER}]
            body["max_output_tokens"] = o.max_tokens
            if schema is not None:
                body["text"] = {
                    "format": {
                        "type": "json_schema",
                        "name": "grade",
                        "schema": schema,
                        "strict": True,
                    }
                }
            if o.reasoning and o.reasoning_effort is not None:
                body["reasoning"] = {"effort": o.reasoning_effort}
        else:
            messages: list[dict[str, str]] = []
            if not self.fold_system:
                messages.append({"role": "system", "content": SLOT_SYSTEM})
            messages.append({"role": "user", "content": SLOT_USER})
            body["messages"] = messages
            body["max_completion_tokens"] = o.max_tokens
            if schema is not None:
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "grade", "schema": schema, "strict": True},
                }
            if o.reasoning and o.reasoning_effort is not None:
                body["reasoning_effort"] = o.reasoning_effort
        if o.temperature is not None and not o.reasoning:
            body["temperature"] = o.temperature
        if o.service_tier is not None:
            body["service_tier"] = o.service_tier
        return body
