"""The decisions a model's catalogue entry drives: endpoint, answer shape, token room.

``of(model)`` gives the rules the request builders and planners follow; the facts come
from the model catalogue (``catalogue.py``, generated beside ``pricing.csv``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from batchgrader.prompting import catalogue

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

_O_SERIES = ("low", "medium", "high")
_GPT5 = ("minimal", "low", "medium", "high")
_GPT51 = ("none", "low", "medium", "high")
_GPT52 = ("none", "low", "medium", "high", "xhigh")
_NONE_TO_MAX = ("none", "low", "medium", "high", "xhigh", "max")
_LOW_TO_MAX = ("low", "medium", "high", "xhigh", "max")
#: The reasoning efforts each family takes, first match wins (() : no effort parameter).
#: Sources: OpenAI's model pages (developers.openai.com/api/docs/models), the reasoning
#: guide, and the SDK's ReasoningEffort literal; gpt-5-pro "only supports
#: reasoning.effort: high"; o1-mini takes no reasoning_effort.
EFFORTS: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = tuple(
    (re.compile(pattern), efforts)
    for pattern, efforts in (
        (r"o1-mini|o1-preview", ()),
        (r"o3-deep-research|o4-mini-deep-research", ("medium",)),
        (r"gpt-5-pro", ("high",)),
        (r"gpt-5\.\d+-pro", ("medium", "high", "xhigh")),
        (r"o\d(-mini|-pro)?", _O_SERIES),
        (r"gpt-5(\.\d+)?-codex(-\w+)?|codex-mini", _GPT52),
        (r"gpt-5(-mini|-nano)?", _GPT5),
        (r"gpt-5\.1(-mini)?", _GPT51),
        (r"gpt-5\.[2-5](-mini|-nano)?", _GPT52),
        (r"gpt-6(\.\d+)?-astra|gpt-6\.2-sol", _LOW_TO_MAX),
        (r"gpt-[56](\.\d+)?(-[a-z]+)?", _NONE_TO_MAX),
    )
)


@dataclass(frozen=True)
class ModelRules:
    """What a model accepts, as the request builders need it."""

    name: str
    provider: str
    reasoning: bool
    responses_only: bool
    chat_only: bool
    structured_output: str  # json_schema | tool | none
    system_message: bool
    temperature: bool
    context_window: int | None
    max_output: int | None
    encoding: str | None
    known: bool
    flex: bool = False  # OpenAI flex processing (service_tier "flex")


def of(model: str) -> ModelRules:
    """The rules of ``model``: its catalogue entry (fine-tuned names follow their base)."""
    info = catalogue.lookup(model)
    return ModelRules(
        name=info.model,
        provider=info.provider,
        reasoning=info.reasoning,
        responses_only="responses" in info.endpoints and "chat" not in info.endpoints,
        chat_only="chat" in info.endpoints and "responses" not in info.endpoints,
        structured_output=info.structured_output,
        system_message=info.system_message,
        temperature=info.temperature,
        context_window=info.context_window,
        max_output=info.max_output,
        encoding=info.encoding,
        known=info.known,
        flex=info.flex,
    )


def efforts(model: ModelRules) -> tuple[str, ...]:
    """The reasoning efforts ``model`` takes (empty: it takes none, or is not reasoning)."""
    if not model.reasoning or model.provider != "openai":
        return ()
    for pattern, values in EFFORTS:
        if pattern.fullmatch(model.name):
            return values
    return _O_SERIES


def resolve_effort(
    model: ModelRules, asked: str | None, *, default: str | None
) -> tuple[str | None, str | None]:
    """(the effort to send, a note for the user); an effort the model refuses that the
    user chose is ``ValueError``, the default one is replaced by the nearest it takes."""
    accepted = efforts(model)
    if asked is None or not accepted:
        return None, None
    if asked in accepted:
        return asked, None
    if asked != default:
        raise ValueError(
            f"{model.name} takes reasoning effort {', '.join(accepted)}, not {asked!r}"
        )
    order = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
    above = [e for e in accepted if order.index(e) >= order.index(asked)]
    chosen = above[0] if above else accepted[-1]
    return chosen, f"{model.name} takes reasoning effort {', '.join(accepted)}: sending {chosen}."


def default_max_tokens(model: ModelRules, effort: str | None) -> int:
    """``max_tokens_per_response`` when not set: the answer, plus reasoning room."""
    tokens = (
        DEFAULT_REASONING_MAX_TOKENS.get(effort, 8192) if model.reasoning else DEFAULT_MAX_TOKENS
    )
    return min(tokens, model.max_output) if model.max_output else tokens


def expected_reasoning_tokens(model: ModelRules, effort: str | None) -> int:
    return EXPECTED_REASONING_TOKENS.get(effort, 1024) if model.reasoning else 0
