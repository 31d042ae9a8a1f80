"""What shapes each request apart from its messages, in the core's words.

Each provider turns these into its own request body (``batchgrader.providers``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class AnswerMode(StrEnum):
    """How the judge is asked for a structured answer, and so how its answer is read."""

    SCHEMA = "json_schema"  # the provider enforces the JSON schema
    TOOL = "tool"  # a forced tool call whose input is the answer
    JSON_TEXT = "json_text"  # the prompt asks for a JSON object; it is read from the text
    TEXT = "text"  # the prompt asks for the score alone; it is read from the text

    @property
    def json(self) -> bool:
        """True when the answer is a JSON object (every mode but a plain score)."""
        return self is not AnswerMode.TEXT


@dataclass(frozen=True)
class RequestOptions:
    """The parts of every request body that do not depend on the row."""

    model: str
    endpoint: str
    max_tokens: int
    temperature: float | None
    answer_mode: AnswerMode = AnswerMode.SCHEMA
    #: Sent only to reasoning models (None: the model's default).
    reasoning_effort: str | None = None
    service_tier: str | None = None
    #: True when the model refuses a system message: it is folded into the user's.
    fold_system: bool = False
    reasoning: bool = False

    @property
    def structured(self) -> bool:
        """True when the answer is a JSON object (kept for the job's stored settings)."""
        return self.answer_mode.json
