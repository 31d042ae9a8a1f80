"""The decisions a model's catalogue entry drives: endpoint, answer shape, token room.

``of(model)`` gives the rules the request builders and planners follow; the facts come
from the model catalogue (``catalogue.py``, generated beside ``pricing.csv``).
"""

from __future__ import annotations

from dataclasses import dataclass

from batchgrader.prompting.tokens import context_window, encoding_name

#: Models served only on /v1/responses.
_RESPONSES_ONLY = ("o1-pro", "o3-pro", "computer-use-preview", "codex-mini")
_NO_SCHEMA = ("gpt-3.5-turbo", "gpt-4", "o1-mini", "o1-preview")
_NO_SYSTEM = ("o1-mini", "o1-preview")
_REASONING = ("o1", "o3", "o4", "gpt-5", "gpt-6")

#: Output tokens a reasoning model gets by default, by reasoning effort: room for its
#: reasoning as well as the answer (reasoning tokens count as output).
DEFAULT_REASONING_MAX_TOKENS = {
    None: 8192,
    "none": 512,
    "minimal": 1024,
    "low": 4096,
    "medium": 16384,
    "high": 32768,
    "xhigh": 32768,
}
#: Reasoning tokens a reasoning model typically spends per grading answer, by effort
#: (a rough figure for the expected cost; the worst case uses max_tokens).
EXPECTED_REASONING_TOKENS = {
    None: 1024,
    "none": 0,
    "minimal": 64,
    "low": 512,
    "medium": 2048,
    "high": 8192,
    "xhigh": 12288,
}
DEFAULT_MAX_TOKENS = 512


@dataclass(frozen=True)
class ModelRules:
    """What a model accepts, as the request builders need it."""

    name: str
    reasoning: bool
    responses_only: bool
    structured_output: str  # json_schema | tool | none
    system_message: bool
    context_window: int | None
    max_output: int | None
    encoding: str | None


def base_name(model: str) -> str:
    """The model a name runs: no ``openai/`` prefix; a fine-tuned name's base model."""
    name = model.strip().lower().removeprefix("openai/")
    if name.startswith("ft:"):
        name = name[3:].split(":", 1)[0]
    return name


def of(model: str) -> ModelRules:
    """The rules of ``model`` (fine-tuned names follow their base model)."""
    name = base_name(model)

    def family(prefixes: tuple[str, ...]) -> bool:
        return any(name == p or name.startswith(p + "-") for p in prefixes)

    pro = name.startswith("gpt-5") and (name.endswith("-pro") or "-pro-" in name)
    return ModelRules(
        name=name,
        reasoning=name.startswith(_REASONING),
        responses_only=family(_RESPONSES_ONLY) or pro,
        structured_output="none" if family(_NO_SCHEMA) else "json_schema",
        system_message=not family(_NO_SYSTEM),
        context_window=context_window(name),
        max_output=None,
        encoding=encoding_name(name),
    )


def default_max_tokens(model: ModelRules, effort: str | None) -> int:
    """``max_tokens_per_response`` when not set: the answer, plus reasoning room."""
    tokens = (
        DEFAULT_REASONING_MAX_TOKENS.get(effort, 8192) if model.reasoning else DEFAULT_MAX_TOKENS
    )
    return min(tokens, model.max_output) if model.max_output else tokens


def expected_reasoning_tokens(model: ModelRules, effort: str | None) -> int:
    return EXPECTED_REASONING_TOKENS.get(effort, 1024) if model.reasoning else 0
