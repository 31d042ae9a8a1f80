"""Batch API request lines: one ``{"custom_id", "method", "url", "body"}`` per row.

The body is fixed for a whole run except for the row's messages, so it is serialised
once into a frame with slots and each line is the frame with the row's JSON strings
put in: byte-for-byte what ``json.dumps`` of the full object gives, at a fraction of
the cost. custom_ids are ``row-<index>`` with the row's 0-based index in the input
file, so every result maps back to its row.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from batchgrader.prompting.prompts import Prompt

_SLOT_ID = "\x1fBG_ID\x1f"
_SLOT_SYSTEM = "\x1fBG_SYSTEM\x1f"
_SLOT_USER = "\x1fBG_USER\x1f"
_CUSTOM_ID = re.compile(r"^row-(\d+)$")
#: Reasoning models take max_completion_tokens and reject temperature.
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5", "gpt-6")


def is_reasoning_model(model: str) -> bool:
    return model.lower().removeprefix("openai/").startswith(_REASONING_PREFIXES)


def custom_id(row: int, width: int) -> str:
    """The custom_id of a 0-based input row."""
    return f"row-{row:0{width}d}"


def id_width(rows: int) -> int:
    """Digits of the custom_ids of a file with ``rows`` rows (at least 6)."""
    return max(6, len(str(max(rows - 1, 0))))


def row_of(custom_id: str) -> int | None:
    """The input row a custom_id names, or None if it is not one of ours."""
    match = _CUSTOM_ID.match(custom_id)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class RequestOptions:
    """What shapes each request body apart from its messages."""

    model: str
    endpoint: str
    max_tokens: int
    temperature: float | None
    structured: bool = True


class LineBuilder:
    """Builds request lines for one prompt and set of options."""

    def __init__(self, options: RequestOptions, prompt: Prompt) -> None:
        self.options = options
        self.prompt = prompt
        body = self._body()
        line = json.dumps(
            {"custom_id": _SLOT_ID, "method": "POST", "url": options.endpoint, "body": body},
            ensure_ascii=False,
            separators=(",", ":"),
        )
        # Each slot appears exactly once, as a JSON string: split the frame around them.
        before_id, rest = line.split(json.dumps(_SLOT_ID), 1)
        between, rest = rest.split(json.dumps(_SLOT_SYSTEM), 1)
        middle, after = rest.split(json.dumps(_SLOT_USER), 1)
        self._parts = (before_id, between, middle, after)

    def body(self, system: str, user: str) -> dict[str, Any]:
        """The request body for one row (the plain, slow way; used by tests and docs)."""
        body = self._body()
        if self.options.endpoint == "/v1/responses":
            body["instructions"] = system
            body["input"][0]["content"] = user
        else:
            body["messages"][0]["content"] = system
            body["messages"][1]["content"] = user
        return body

    def line(self, cid: str, system: str, user: str) -> str:
        """One JSONL line (without the newline)."""
        a, b, c, d = self._parts
        return (
            a
            + json.dumps(cid)
            + b
            + json.dumps(system, ensure_ascii=False)
            + c
            + json.dumps(user, ensure_ascii=False)
            + d
        )

    def lines(self, ids: list[str], systems: list[str], users: list[str]) -> list[str]:
        """Lines for many rows."""
        a, b, c, d = self._parts
        dumps = json.dumps
        return [
            f"{a}{dumps(i)}{b}{dumps(s, ensure_ascii=False)}{c}{dumps(u, ensure_ascii=False)}{d}"
            for i, s, u in zip(ids, systems, users, strict=True)
        ]

    def constant_system_lines(self, ids: list[str], system: str, users: list[str]) -> list[str]:
        """Lines for many rows sharing one system message (the usual case)."""
        a, b, c, d = self._parts
        prefix_tail = b + json.dumps(system, ensure_ascii=False) + c
        dumps = json.dumps
        return [
            f"{a}{dumps(i)}{prefix_tail}{dumps(u, ensure_ascii=False)}{d}"
            for i, u in zip(ids, users, strict=True)
        ]

    def _body(self) -> dict[str, Any]:
        o = self.options
        reasoning = is_reasoning_model(o.model)
        body: dict[str, Any] = {"model": o.model}
        schema = self.prompt.answer_schema() if o.structured else None
        if o.endpoint == "/v1/responses":
            body["instructions"] = _SLOT_SYSTEM
            body["input"] = [{"role": "user", "content": _SLOT_USER}]
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
        else:
            body["messages"] = [
                {"role": "system", "content": _SLOT_SYSTEM},
                {"role": "user", "content": _SLOT_USER},
            ]
            body["max_completion_tokens"] = o.max_tokens
            if schema is not None:
                body["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": "grade", "schema": schema, "strict": True},
                }
        if o.temperature is not None and not reasoning:
            body["temperature"] = o.temperature
        return body
