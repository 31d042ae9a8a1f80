"""What each OpenAI model family accepts, for the fake's per-request checks (``validation.py``).

One row per family: which of the two text endpoints serve it, structured outputs
(``json_schema``), reasoning (and the ``reasoning_effort`` values it takes), system /
developer messages, and the flex service tier. ``rules_for`` maps any model name to its row:
a fine-tuned name ``ft:BASE:org:suffix:id`` uses BASE, a dated snapshot (``-2025-04-16``,
``-0613``) uses its alias. Names that match no row get ``DEFAULT``, a permissive
non-reasoning chat model, so a test's made-up model is never refused for being new.

Sources (public; "[U]" marks a choice no source confirmed):
- Responses-only models answer chat completions with HTTP 404 "This model is only supported
  in v1/responses and not in v1/chat/completions." (param ``model``): observed for
  gpt-4o-deep-research (github.com/n8n-io/n8n issue 18352), o3-pro
  (github.com/HeyPuter/puter issue 1303), gpt-5-pro (github.com/pgadmin-org/pgadmin4
  issue 9795), codex-mini-latest. The openai SDK lists responses-only models in
  ``openai/types/shared/responses_model.py`` (o1-pro, o3-pro, *-deep-research,
  computer-use-preview, gpt-5-pro, gpt-5.5-pro, gpt-5-codex, gpt-5.1-codex-max).
  gpt-5-pro "is available in the Responses API only" and "only supports
  reasoning.effort: high" (OpenAI model page, quoted at api.koog.ai). gpt-5.2-pro and
  gpt-5.4-pro: Responses only like every pro model (github.com/andyzengmath/
  Quiver-Math-Research-Agent release v0.1.4 for 5.4-pro); their efforts are [U].
- o1-mini is the one chat model without the Responses API (OpenAI's per-model endpoint
  tables, audited in github.com/truefoundry/models PR 2006); o1-preview is its sibling [U].
- Structured outputs: "Invalid parameter: 'response_format' of type 'json_schema' is not
  supported with this model." for gpt-4 / gpt-3.5-turbo (github.com/langchain-ai/langchain
  issue 31490), and in the Responses API "... 'text.format' ... with model version `M`."
  for gpt-3.5-turbo, gpt-4, o3-deep-research (quoted verbatim in several public client
  test suites). gpt-4o-2024-05-13 predates structured outputs (OpenAI Structured Outputs
  guide: gpt-4o-2024-08-06 and later). computer-use-preview: [U].
- System messages: o1-mini and o1-preview refuse them with "Unsupported value:
  'messages[0].role' does not support 'system' with this model." (github.com/
  microsoft/agent-framework issue 1077 tested every chat model: only o1-mini failed).
- Reasoning efforts: o-series low/medium/high; o1-mini takes no ``reasoning_effort`` at
  all (github.com/dzhng/deep-research PR 89); gpt-5/-mini/-nano minimal..high, and nothing
  before gpt-5.1 takes "none"; gpt-5.1 none..high, default none; xhigh from gpt-5.2 on (Azure SDK
  ``ReasoningEffort`` docs, learn.microsoft.com/javascript/api/@azure/ai-projects/
  reasoningeffort); gpt-5.4 none..xhigh (github.com/RayBytes/ChatMock PR 101); GPT-5.6 and
  gpt-6-sol/-luna, gpt-6.1-terra none..max; gpt-6-astra, gpt-6.2-astra, gpt-6.2-sol
  low..max (developers.openai.com/api/docs/models; docs.litellm.ai/blog/gpt_6_sol_luna,
  "defaulting to medium"; docs.oxen.ai model pages). ``max`` is in the SDK's
  ``ReasoningEffort`` literal (openai 3.57).
- Sampling: reasoning models take only the default temperature (1); GPT-5.1/5.2 take
  temperature only with reasoning effort "none" (OpenAI's latest-model guide,
  developers.openai.com/api/docs/guides/latest-model, for GPT-5.2); later
  families with "none" are assumed to follow it [U].
- Flex (``service_tier: "flex"``): o3, o4-mini, then the gpt-5 families (OpenAI flex
  processing guide, developers.openai.com/api/docs/guides/flex-processing; github.com/
  vercel/ai PR 7892; github.com/openai/codex issue 31562 for gpt-5.5/5.6); GPT-6 [U].
  Where genai-prices prices a model's flex tier (batchgrader's models.csv), it has one:
  gpt-5.4-pro, gpt-5.5-pro and gpt-6-astra too; gpt-5.2-pro and gpt-5.3 have no flex price
  and no flex.
  tests/test_catalogue.py keeps the two lists equal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

CHAT = "chat"
RESPONSES = "responses"
BOTH = frozenset({CHAT, RESPONSES})

O_SERIES_EFFORTS = ("low", "medium", "high")
GPT5_EFFORTS = ("minimal", "low", "medium", "high")
GPT51_EFFORTS = ("none", "low", "medium", "high")
GPT52_EFFORTS = ("none", "low", "medium", "high", "xhigh")
NONE_TO_MAX = ("none", "low", "medium", "high", "xhigh", "max")
LOW_TO_MAX = ("low", "medium", "high", "xhigh", "max")
PRO_EFFORTS = ("medium", "high", "xhigh")  # [U] for gpt-5.2-pro and later pro models

_SNAPSHOT = re.compile(r"-(\d{4}-\d{2}-\d{2}|\d{4})$")


@dataclass(frozen=True)
class ModelRules:
    """What one model family accepts."""

    family: str
    apis: frozenset[str] = BOTH  # of CHAT, RESPONSES
    structured_outputs: bool = True  # json_schema response_format / text.format
    reasoning: bool = False  # reasoning tokens; max_tokens and temperature refused
    efforts: tuple[str, ...] = ()  # reasoning effort values taken (empty: parameter refused)
    default_effort: str | None = None
    system_message: bool = True  # system / developer messages
    flex: bool = False  # service_tier "flex"

    @property
    def responses_only(self) -> bool:
        """Served by /v1/responses only."""
        return self.apis == frozenset({RESPONSES})

    def takes_temperature(self, effort: str | None) -> bool:
        """Whether a non-default temperature is accepted at reasoning ``effort`` (None: default)."""
        if not self.reasoning:
            return True
        return (effort or self.default_effort) == "none"


def _reasoning(
    family: str,
    efforts: tuple[str, ...],
    default: str | None = "medium",
    *,
    apis: frozenset[str] = BOTH,
    structured_outputs: bool = True,
    system_message: bool = True,
    flex: bool = False,
) -> ModelRules:
    return ModelRules(
        family, apis, structured_outputs, True, efforts, default, system_message, flex
    )


# First full match wins: specific names before the families they would otherwise fall in.
FAMILIES: tuple[tuple[re.Pattern[str], ModelRules], ...] = tuple(
    (re.compile(pattern), rules)
    for pattern, rules in (
        (
            r"computer-use-preview",
            ModelRules(
                "computer-use-preview", apis=frozenset({RESPONSES}), structured_outputs=False
            ),
        ),
        (r"o1-pro|o3-pro", _reasoning("o-pro", O_SERIES_EFFORTS, apis=frozenset({RESPONSES}))),
        (
            r"o3-deep-research|o4-mini-deep-research",
            _reasoning(
                "deep-research", ("medium",), apis=frozenset({RESPONSES}), structured_outputs=False
            ),
        ),
        (
            r"o1-mini|o1-preview",
            _reasoning(
                "o1-mini",
                (),
                default=None,
                apis=frozenset({CHAT}),
                structured_outputs=False,
                system_message=False,
            ),
        ),
        (r"o1", _reasoning("o1", O_SERIES_EFFORTS)),
        (r"o3|o4-mini", _reasoning("o3", O_SERIES_EFFORTS, flex=True)),
        (r"o3-mini", _reasoning("o3-mini", O_SERIES_EFFORTS)),
        (r"gpt-5-pro", _reasoning("gpt-5-pro", ("high",), "high", apis=frozenset({RESPONSES}))),
        (
            r"gpt-5\.[0-3]-pro",
            _reasoning("gpt-5.x-pro", PRO_EFFORTS, "high", apis=frozenset({RESPONSES})),
        ),
        (
            r"gpt-5\.\d+-pro",
            _reasoning("gpt-5.x-pro", PRO_EFFORTS, "high", apis=frozenset({RESPONSES}), flex=True),
        ),
        (
            r"gpt-5(\.\d+)?-codex(-\w+)?|codex-mini-latest",
            _reasoning("codex", GPT52_EFFORTS, apis=frozenset({RESPONSES})),
        ),
        (r"gpt-5(\.\d+)?-chat-latest", ModelRules("gpt-5-chat")),
        (r"gpt-5(-mini|-nano)?", _reasoning("gpt-5", GPT5_EFFORTS, flex=True)),
        (r"gpt-5\.1(-mini)?", _reasoning("gpt-5.1", GPT51_EFFORTS, "none", flex=True)),
        (r"gpt-5\.3", _reasoning("gpt-5.3", GPT52_EFFORTS, "none")),  # no flex price
        (
            r"gpt-5\.[2-5](-mini|-nano)?",
            _reasoning("gpt-5.2..5.5", GPT52_EFFORTS, "none", flex=True),
        ),
        (r"gpt-6(\.\d+)?-astra|gpt-6\.2-sol", _reasoning("gpt-6-astra", LOW_TO_MAX, flex=True)),
        # gpt-5.6-*, gpt-6-sol/-luna, gpt-6.1-* and later gpt-5.x / gpt-6.x names.
        (r"gpt-[56](\.\d+)?(-[a-z]+)?", _reasoning("gpt-5.6 / gpt-6", NONE_TO_MAX, flex=True)),
        (r"gpt-4\.5-preview|gpt-4\.1(-mini|-nano)?|gpt-4o(-mini)?", ModelRules("gpt-4o / gpt-4.1")),
        (
            r"gpt-4(-[\w-]+)?|gpt-3\.5-turbo(-16k)?",
            ModelRules("gpt-4 / gpt-3.5", structured_outputs=False),
        ),
    )
)
DEFAULT = ModelRules("default")
# Snapshots that differ from their alias.
SNAPSHOTS: dict[str, ModelRules] = {
    "gpt-4o-2024-05-13": replace(ModelRules("gpt-4o"), structured_outputs=False),
}


def base_model(model: str) -> str:
    """The model a fine-tuned name is trained from (``ft:o4-mini-2025-04-16:org::id`` → the
    snapshot), else ``model`` itself."""
    if model.startswith("ft:"):
        parts = model.split(":")
        return parts[1] if len(parts) > 1 and parts[1] else model
    return model


def rules_for(model: str) -> ModelRules:
    """The family row of ``model`` (fine-tuned names by base, snapshots by alias)."""
    name = base_model(model)
    if name in SNAPSHOTS:
        return SNAPSHOTS[name]
    alias = _SNAPSHOT.sub("", name)
    for pattern, rules in FAMILIES:
        if pattern.fullmatch(alias) or pattern.fullmatch(name):
            return rules
    return DEFAULT
