"""The kept table: what ``models.csv`` needs and genai-prices does not carry.

``scripts/gen_pricing.py`` builds ``models.csv`` from this table plus genai-prices
(context windows, flex availability) and a few derived rules. One ``Kept`` entry per
model that ``pricing.csv`` prices, each with the public page it was read from
(``source``); the script fails when an entry is missing or left over.

Derived, not kept (the rules live in ``catalogue_row`` below):

* ``encoding``: OpenAI ``cl100k_base`` for gpt-3.5-turbo, gpt-4 and gpt-4-turbo,
  ``o200k_base`` for every other OpenAI model; empty for Claude (no offline tokenizer).
* ``reasoning`` (OpenAI): the model id starts with ``o1``, ``o3``, ``o4``, ``gpt-5`` or
  ``gpt-6`` (the rule batchgrader used before the catalogue). Claude: ``Kept.thinks``,
  true where thinking is on by default (adaptive thinking that is always on, or on
  unless turned off), so thinking tokens eat into ``max_tokens``.
* ``temperature`` (OpenAI): false for reasoning models, which reject a non-default
  temperature. Claude: ``Kept.temperature``, false where the model page says sampling
  parameters are removed or a non-default value returns 400 (Opus 4.7 and later,
  Sonnet 5 and later, Haiku 5.5, Fable, Mythos).
* ``flex`` (OpenAI): genai-prices lists a ``service_tier=flex`` price for the model
  (the flex guide, https://developers.openai.com/api/docs/guides/flex-processing, names
  no model list of its own; it points at the pricing page genai-prices is read from).
  Claude: false.
* ``aliases``: only those kept here. genai-prices' match rules are *price* aliases
  (e.g. ``gpt-5-chat-latest`` and ``gpt-5-codex`` match ``gpt-5``) and different models
  for every other decision, so they are not used.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

CATALOGUE_COLUMNS = (
    "model",
    "provider",
    "aliases",
    "encoding",
    "context_window",
    "max_output",
    "reasoning",
    "endpoints",
    "structured_output",
    "system_message",
    "temperature",
    "flex",
    "cache_min_tokens",
)
STRUCTURED = frozenset({"json_schema", "tool", "none"})
ENDPOINTS = {"openai": frozenset({"chat", "responses"}), "anthropic": frozenset({"messages"})}
REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5", "gpt-6")
CL100K_MODELS = frozenset({"gpt-3.5-turbo", "gpt-4", "gpt-4-turbo"})


class Kept(NamedTuple):
    """Facts about one model that genai-prices lacks."""

    source: str  # the public page the entry was read from
    max_output: int
    endpoints: str = ""  # ';'-separated; empty: the provider's default (ENDPOINTS)
    structured: str = "json_schema"  # json_schema | tool | none
    system: bool = True  # accepts a system/developer message
    context: int | None = None  # only where genai-prices has no context window
    aliases: str = ""  # ';'-separated other API names of the same model
    cache_min: int | None = None  # Anthropic: minimum cacheable prompt (tokens)
    thinks: bool = False  # Anthropic: thinking on by default
    temperature: bool = True  # Anthropic: a non-default temperature is accepted


_OAI = "https://developers.openai.com/api/docs/models/"
_CLAUDE = "https://platform.claude.com/docs/en/models/"
# Minimum cacheable prompt per Claude model: the "Cache limitations" list of
# https://platform.claude.com/docs/en/build-with-claude/prompt-caching#cache-limitations
# (512: Opus 5/5.5, Sonnet 5.5, Haiku 5.5, Fable 5/5.1, Mythos 5/5.1; 1024: Opus 4.8,
# Sonnet 5, Sonnet 4.6/4.5, Opus 4.1/4, Sonnet 4, and Sonnet 3.7/3.5, Opus 3, Sonnet 3
# in the older revisions; 2048: Opus 4.7, Haiku 3.5, Haiku 3; 4096: Opus 4.6/4.5,
# Haiku 4.5). Fable 5.2 and Mythos 5.2 are newer than every stored revision of that
# page: 512 is assumed from Fable 5.1 and marked below.
_RETIRED = "https://platform.claude.com/docs/en/about-claude/model-deprecations"
# Claude's structured outputs (output_config.format, native JSON schema) are generally
# available on Sonnet 4.5, Haiku 4.5, Opus 4.5 and every later model
# (https://platform.claude.com/docs/en/build-with-claude/structured-outputs); older
# models get a forced tool call ("tool"). Opus 5.5, Sonnet 5.5 and Fable 5.1 reject a
# forced tool call, so json_schema is the only structured mode there.

KEPT: dict[str, Kept] = {
    # --- OpenAI: max output tokens and endpoints from each model's page --------------
    "computer-use-preview": Kept(
        _OAI + "computer-use-preview", 1_024, endpoints="responses", structured="none"
    ),
    # No JSON-schema response_format before gpt-4o-2024-08-06; function calling works.
    "gpt-3.5-turbo": Kept(_OAI + "gpt-3.5-turbo", 4_096, structured="tool"),
    "gpt-4": Kept(_OAI + "gpt-4", 8_192, structured="tool"),
    "gpt-4-turbo": Kept(
        _OAI + "gpt-4-turbo",
        4_096,
        structured="tool",
        aliases="gpt-4-turbo-preview;gpt-4-0125-preview;gpt-4-1106-preview",
    ),
    "gpt-4.1": Kept(_OAI + "gpt-4.1", 32_768),
    "gpt-4.1-mini": Kept(_OAI + "gpt-4.1-mini", 32_768),
    "gpt-4.1-nano": Kept(_OAI + "gpt-4.1-nano", 32_768),
    "gpt-4.5-preview": Kept(_OAI + "gpt-4.5-preview", 16_384, context=128_000),
    "gpt-4o": Kept(_OAI + "gpt-4o", 16_384),
    "gpt-4o-mini": Kept(_OAI + "gpt-4o-mini", 16_384),
    "gpt-5": Kept(_OAI + "gpt-5", 128_000),
    "gpt-5-mini": Kept(_OAI + "gpt-5-mini", 128_000),
    "gpt-5-nano": Kept(_OAI + "gpt-5-nano", 128_000),
    # "GPT-5 pro is available in the Responses API only"; 272,000 max output tokens.
    "gpt-5-pro": Kept(_OAI + "gpt-5-pro", 272_000, endpoints="responses"),
    "gpt-5.1": Kept(_OAI + "gpt-5.1", 128_000),
    "gpt-5.2": Kept(_OAI + "gpt-5.2", 128_000),
    "gpt-5.2-pro": Kept(_OAI + "gpt-5.2-pro", 128_000, endpoints="responses"),
    # genai-prices' "gpt-5.3" is GPT-5.3 Instant, API id gpt-5.3-chat-latest.
    "gpt-5.3": Kept(_OAI + "gpt-5.3-chat-latest", 16_384, aliases="gpt-5.3-chat-latest"),
    "gpt-5.4": Kept(_OAI + "gpt-5.4", 128_000),
    "gpt-5.4-mini": Kept(_OAI + "gpt-5.4-mini", 128_000),
    "gpt-5.4-nano": Kept(_OAI + "gpt-5.4-nano", 128_000),
    "gpt-5.4-pro": Kept(_OAI + "gpt-5.4-pro", 128_000, endpoints="responses"),
    "gpt-5.5": Kept(_OAI + "gpt-5.5", 128_000),
    "gpt-5.5-pro": Kept(_OAI + "gpt-5.5-pro", 128_000, endpoints="responses"),
    "gpt-5.6-luna": Kept(_OAI + "gpt-5.6-luna", 128_000),
    "gpt-5.6-sol": Kept(_OAI + "gpt-5.6-sol", 128_000, aliases="gpt-5.6"),
    "gpt-5.6-terra": Kept(_OAI + "gpt-5.6-terra", 128_000),
    "gpt-6-astra": Kept(_OAI + "gpt-6-astra", 128_000),
    "gpt-6-luna": Kept(_OAI + "gpt-6-luna", 128_000),
    "gpt-6-sol": Kept(_OAI + "gpt-6-sol", 128_000),
    "gpt-6.1-sol": Kept(_OAI + "gpt-6.1-sol", 128_000),
    "gpt-6.1-terra": Kept(_OAI + "gpt-6.1-terra", 128_000),
    "o1": Kept(_OAI + "o1", 100_000),
    # o1-mini: Chat Completions only, no structured outputs or tools, and it rejects a
    # system or developer message.
    "o1-mini": Kept(_OAI + "o1-mini", 65_536, endpoints="chat", structured="none", system=False),
    "o1-pro": Kept(_OAI + "o1-pro", 100_000, endpoints="responses"),
    "o3": Kept(_OAI + "o3", 100_000),
    "o3-mini": Kept(_OAI + "o3-mini", 100_000),
    "o3-pro": Kept(_OAI + "o3-pro", 100_000, endpoints="responses"),
    "o4-mini": Kept(_OAI + "o4-mini", 100_000),
    # --- Anthropic: max output from the models overview and each model's page ---------
    # Retired models keep a row so past usage stays priced (see _RETIRED).
    "claude-3-haiku": Kept(_RETIRED, 4_096, structured="tool", cache_min=2_048),
    "claude-3-sonnet": Kept(_RETIRED, 4_096, structured="tool", cache_min=1_024),
    "claude-3-opus": Kept(
        _RETIRED, 4_096, structured="tool", cache_min=1_024, aliases="claude-3-opus-latest"
    ),
    "claude-3-5-haiku": Kept(
        _RETIRED, 8_192, structured="tool", cache_min=2_048, aliases="claude-3-5-haiku-latest"
    ),
    "claude-3-5-sonnet": Kept(
        _RETIRED, 8_192, structured="tool", cache_min=1_024, aliases="claude-3-5-sonnet-latest"
    ),
    "claude-3-7-sonnet": Kept(
        _RETIRED, 64_000, structured="tool", cache_min=1_024, aliases="claude-3-7-sonnet-latest"
    ),
    "claude-sonnet-4-0": Kept(
        _CLAUDE + "sonnet-4/overview",
        64_000,
        structured="tool",
        cache_min=1_024,
        aliases="claude-sonnet-4",
    ),
    "claude-opus-4-0": Kept(
        _CLAUDE + "opus-4/overview",
        32_000,
        structured="tool",
        cache_min=1_024,
        aliases="claude-opus-4",
    ),
    "claude-opus-4-1": Kept(
        _CLAUDE + "opus-4-1/overview", 32_000, structured="tool", cache_min=1_024
    ),
    "claude-sonnet-4-5": Kept(_CLAUDE + "sonnet-4-5/overview", 64_000, cache_min=1_024),
    "claude-haiku-4-5": Kept(_CLAUDE + "haiku-4-5/overview", 64_000, cache_min=4_096),
    "claude-opus-4-5": Kept(_CLAUDE + "opus-4-5/overview", 64_000, cache_min=4_096),
    "claude-opus-4-6": Kept(_CLAUDE + "opus-4-6/overview", 128_000, cache_min=4_096),
    "claude-sonnet-4-6": Kept(_CLAUDE + "sonnet-4-6/overview", 128_000, cache_min=1_024),
    # Opus 4.7 and 4.8: adaptive thinking only (off unless asked), sampling removed.
    "claude-opus-4-7": Kept(
        _CLAUDE + "opus-4-7/overview", 128_000, cache_min=2_048, temperature=False
    ),
    "claude-opus-4-8": Kept(
        _CLAUDE + "opus-4-8/overview", 128_000, cache_min=1_024, temperature=False
    ),
    # Claude 5: thinking on by default (always on for Opus 5.5 and Fable/Mythos).
    "claude-opus-5": Kept(
        _CLAUDE + "opus-5/overview",
        128_000,
        cache_min=512,
        thinks=True,
        temperature=False,
        aliases="claude-opus-5-latest",
    ),
    "claude-opus-5-5": Kept(
        _CLAUDE + "opus-5-5/overview", 128_000, cache_min=512, thinks=True, temperature=False
    ),
    "claude-sonnet-5": Kept(
        _CLAUDE + "sonnet-5/overview", 128_000, cache_min=1_024, thinks=True, temperature=False
    ),
    "claude-sonnet-5-5": Kept(
        _CLAUDE + "sonnet-5-5/overview", 128_000, cache_min=512, thinks=True, temperature=False
    ),
    "claude-haiku-5-5": Kept(
        _CLAUDE + "haiku-5-5/overview", 128_000, cache_min=512, thinks=True, temperature=False
    ),
    "claude-fable-5": Kept(
        _CLAUDE + "fable-5/overview", 128_000, cache_min=512, thinks=True, temperature=False
    ),
    "claude-fable-5-1": Kept(
        _CLAUDE + "fable-5-1/overview", 128_000, cache_min=512, thinks=True, temperature=False
    ),
    # cache_min assumed (see above).
    "claude-fable-5-2": Kept(
        _CLAUDE + "fable-5-2/overview", 128_000, cache_min=512, thinks=True, temperature=False
    ),
    "claude-mythos-5-2": Kept(
        _CLAUDE + "fable-5-2/overview", 128_000, cache_min=512, thinks=True, temperature=False
    ),
}


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _has_flex(model: Any) -> bool:
    """genai-prices lists a flex service-tier price for ``model``."""
    return any(
        variant.when.get("service_tier") == "flex" for variant in (model.price_variants or ())
    )


def catalogue_row(name: str, provider: str, model: Any) -> dict[str, str]:
    """The models.csv row of ``name`` (``model`` is its genai-prices ``ModelInfo``)."""
    kept = KEPT[name]
    openai = provider == "openai"
    reasoning = name.startswith(REASONING_PREFIXES) if openai else kept.thinks
    context = model.context_window or kept.context
    if context is None:
        raise ValueError(f"{name}: no context window in genai-prices or the kept table")
    endpoints = kept.endpoints or ";".join(sorted(ENDPOINTS[provider]))
    unknown = set(endpoints.split(";")) - ENDPOINTS[provider]
    if unknown or kept.structured not in STRUCTURED:
        raise ValueError(f"{name}: bad endpoints {endpoints!r} or mode {kept.structured!r}")
    encoding = ""  # Claude: no offline tokenizer
    if openai:
        encoding = "cl100k_base" if name in CL100K_MODELS else "o200k_base"
    row = {
        "model": name,
        "provider": provider,
        "aliases": kept.aliases,
        "encoding": encoding,
        "context_window": str(context),
        "max_output": str(kept.max_output),
        "reasoning": _flag(reasoning),
        "endpoints": endpoints,
        "structured_output": kept.structured,
        "system_message": _flag(kept.system),
        "temperature": _flag(not reasoning if openai else kept.temperature),
        "flex": _flag(openai and _has_flex(model)),
        "cache_min_tokens": "" if kept.cache_min is None else str(kept.cache_min),
    }
    return {column: row[column] for column in CATALOGUE_COLUMNS}


_DATED = re.compile(r"[-@](\d{4}-\d{2}-\d{2}|\d{8}|\d{4})$")


def check_table(names: set[str]) -> None:
    """Every priced model has one entry, none is left over, aliases are unambiguous."""
    missing = sorted(names - set(KEPT))
    extra = sorted(set(KEPT) - names)
    if missing or extra:
        raise LookupError(f"kept table out of step: missing {missing}, not priced {extra}")
    owner: dict[str, str] = {}
    for name, kept in KEPT.items():
        if not kept.source.startswith("https://"):
            raise ValueError(f"{name}: the kept entry has no source URL")
        for alias in filter(None, kept.aliases.split(";")):
            if alias in names or alias in owner or _DATED.search(alias):
                raise ValueError(f"{name}: alias {alias!r} is a model, taken, or dated")
            owner[alias] = name
