"""The model catalogue: what batchgrader knows about each model, in one place.

The data is ``models.csv``, packaged beside ``pricing.csv`` and generated with it by
``scripts/gen_pricing.py`` (genai-prices where it has the data, a small kept table with
a source per entry for the rest; see ``docs/models.md``). It is read once, on the first
lookup; nothing happens at import time.

Every way of writing a model name is resolved here and nowhere else (:func:`lookup`,
:func:`normalise`, :func:`pricing_keys`):

* case and surrounding whitespace are ignored;
* an ``openai/`` or ``anthropic/`` prefix is dropped;
* a fine-tuned name, ``ft:BASE:org:name:id`` or ``ft:BASE:org::id``, follows BASE's
  entry for every decision (endpoint, tokenizer, reasoning, temperature, structured
  output); the request still names the fine-tuned model (``ModelInfo.requested``).
  Fine-tuned models are billed at their own, higher rates, so :func:`normalise` never
  maps one to its base's price;
* a dated snapshot (``gpt-4o-2024-08-06``, ``gpt-3.5-turbo-0125``,
  ``claude-sonnet-4-5-20250929``, ``claude-opus-4-5@20251101``) is its base model;
* an alias (``claude-3-5-haiku-latest``, ``gpt-5.6``) is the model it names.

A model the catalogue does not know gets a default entry flagged ``known=False``. Its
provider is guessed from the name (``claude...`` is Anthropic, anything else OpenAI) and
its values are the cautious ones for that provider:

* OpenAI: ``o200k_base``, endpoints chat and responses, native JSON-schema output, a
  system message allowed, no flex; reasoning when the name starts with ``o1``, ``o3``,
  ``o4``, ``gpt-5`` or ``gpt-6`` (then no temperature); context window and max output
  unknown (None).
* Anthropic: no offline tokenizer (``encoding`` None, as for every Claude model), the
  messages endpoint, native JSON-schema output (a forced tool call fails on the newest
  models), a system message allowed, reasoning on and no temperature (what current
  models do; omitting temperature is accepted by every model), limits unknown.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from typing import Literal, cast

from batchgrader.errors import PricingFileError

Provider = Literal["openai", "anthropic"]
StructuredOutput = Literal["json_schema", "tool", "none"]

COLUMNS = (
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
PROVIDER_PREFIXES = ("openai/", "anthropic/")
#: OpenAI models whose name starts with one of these reason (max_completion_tokens,
#: reasoning_effort, no temperature); the rule for models the catalogue lacks.
REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5", "gpt-6")
_SNAPSHOT = re.compile(r"[-@](?:\d{4}-\d{2}-\d{2}|\d{8}|\d{4})$")
_FINE_TUNED = re.compile(r"^ft:([^:]+):")
_PROVIDERS: frozenset[str] = frozenset({"openai", "anthropic"})
_STRUCTURED: frozenset[str] = frozenset({"json_schema", "tool", "none"})


@dataclass(frozen=True)
class ModelInfo:
    """What batchgrader knows about one model (one row of models.csv)."""

    model: str  # catalogue name; for a known model also its pricing.csv key
    provider: Provider
    aliases: tuple[str, ...]
    encoding: str | None  # tiktoken encoding; None: no offline tokenizer (Claude)
    context_window: int | None  # tokens, as the provider publishes it; None: unknown
    max_output: int | None  # output tokens per request; None: unknown
    reasoning: bool  # reasoning/thinking tokens count against max output
    endpoints: frozenset[str]  # "chat", "responses" (OpenAI); "messages" (Anthropic)
    structured_output: StructuredOutput  # json_schema | tool | none
    system_message: bool  # accepts a system/developer message
    temperature: bool  # accepts a non-default temperature
    flex: bool  # OpenAI flex processing (service_tier="flex")
    cache_min_tokens: int | None  # Anthropic: shortest cacheable prompt
    known: bool = True  # False: a default entry for a model the catalogue lacks
    requested: str = ""  # the name to send in requests (the user's, prefix dropped)
    fine_tuned: bool = False  # requested is a fine-tuned model of this entry


@dataclass(frozen=True)
class _Catalogue:
    entries: dict[str, ModelInfo]
    aliases: dict[str, str]


def _clean(model: str) -> str:
    """Lower case, no surrounding whitespace, no provider prefix."""
    name = model.strip().lower()
    for prefix in PROVIDER_PREFIXES:
        if name.startswith(prefix):
            return name.removeprefix(prefix)
    return name


def _requested(model: str) -> str:
    """The user's name as it goes into a request: stripped, provider prefix dropped."""
    name = model.strip()
    prefix = name.split("/", 1)[0].lower() + "/"
    return name[len(prefix) :] if prefix in PROVIDER_PREFIXES else name


def _unsnapshotted(name: str) -> Iterator[str]:
    """``name``, then each form with one more snapshot suffix removed."""
    while True:
        yield name
        stripped = _SNAPSHOT.sub("", name)
        if stripped == name:
            return
        name = stripped


def _resolve(name: str) -> str | None:
    """The catalogue name of a cleaned ``name``, or None when unknown."""
    catalogue = _load()
    for candidate in _unsnapshotted(name):
        if candidate in catalogue.entries:
            return candidate
        if candidate in catalogue.aliases:
            return catalogue.aliases[candidate]
    return None


def normalise(model: str) -> str:
    """The pricing key of ``model``: the catalogue name of a known model.

    A fine-tuned model or one the catalogue lacks keeps its cleaned name (lower case,
    no provider prefix), so it never borrows another model's price.
    """
    name = _clean(model)
    if _FINE_TUNED.match(name):
        return name
    return _resolve(name) or name


def pricing_keys(model: str) -> tuple[str, ...]:
    """The names a price table may list ``model`` under, most specific first.

    The cleaned name, its snapshot-stripped forms (a user's own table may price a
    dated snapshot apart from its base), then :func:`normalise` (an alias's model).
    """
    name = _clean(model)
    if _FINE_TUNED.match(name):
        return (name,)
    keys = list(_unsnapshotted(name))
    canonical = normalise(model)
    if canonical not in keys:
        keys.append(canonical)
    return tuple(keys)


def lookup(model: str) -> ModelInfo:
    """The catalogue entry of ``model``, or a default entry with ``known=False``."""
    name = _clean(model)
    fine_tuned = _FINE_TUNED.match(name)
    if fine_tuned:
        name = fine_tuned.group(1)
    key = _resolve(name)
    entry = _load().entries[key] if key is not None else _default(name)
    return replace(entry, requested=_requested(model), fine_tuned=fine_tuned is not None)


def models() -> list[str]:
    """Every catalogue name, sorted."""
    return sorted(_load().entries)


def _default(name: str) -> ModelInfo:
    """The cautious entry of a model the catalogue lacks (see the module docstring)."""
    if name.startswith("claude"):
        return ModelInfo(
            model=name,
            provider="anthropic",
            aliases=(),
            encoding=None,
            context_window=None,
            max_output=None,
            reasoning=True,
            endpoints=frozenset({"messages"}),
            structured_output="json_schema",
            system_message=True,
            temperature=False,
            flex=False,
            cache_min_tokens=None,
            known=False,
        )
    reasoning = name.startswith(REASONING_PREFIXES)
    return ModelInfo(
        model=name,
        provider="openai",
        aliases=(),
        encoding="o200k_base",
        context_window=None,
        max_output=None,
        reasoning=reasoning,
        endpoints=frozenset({"chat", "responses"}),
        structured_output="json_schema",
        system_message=True,
        temperature=not reasoning,
        flex=False,
        cache_min_tokens=None,
        known=False,
    )


@cache
def _load() -> _Catalogue:
    """The packaged models.csv, parsed once."""
    resource = resources.files("batchgrader") / "models.csv"
    try:
        text = resource.read_text(encoding="utf-8")
    except OSError as exc:
        raise PricingFileError(
            f"The packaged models.csv cannot be read: {exc}", hint="Reinstall batchgrader."
        ) from None
    return parse(text)


def parse(text: str) -> _Catalogue:
    """Entries and aliases of a models.csv text; ValueError names a bad line."""
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise ValueError(f"models.csv: the header must be {','.join(COLUMNS)}")
    entries: dict[str, ModelInfo] = {}
    aliases: dict[str, str] = {}
    for line, row in enumerate(reader, start=2):
        try:
            entry = _entry(row)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"models.csv, line {line}: {exc}") from None
        for name in (entry.model, *entry.aliases):
            if name in entries or name in aliases:
                raise ValueError(f"models.csv, line {line}: {name} is listed twice")
        entries[entry.model] = entry
        aliases.update(dict.fromkeys(entry.aliases, entry.model))
    return _Catalogue(entries, aliases)


def _entry(row: dict[str, str]) -> ModelInfo:
    provider, structured = row["provider"], row["structured_output"]
    if provider not in _PROVIDERS or structured not in _STRUCTURED:
        raise ValueError(f"bad provider {provider!r} or structured_output {structured!r}")
    return ModelInfo(
        model=row["model"],
        provider=cast(Provider, provider),
        aliases=tuple(a for a in row["aliases"].split(";") if a),
        encoding=row["encoding"] or None,
        context_window=_count(row["context_window"]),
        max_output=_count(row["max_output"]),
        reasoning=_flag(row["reasoning"]),
        endpoints=frozenset(e for e in row["endpoints"].split(";") if e),
        structured_output=cast(StructuredOutput, structured),
        system_message=_flag(row["system_message"]),
        temperature=_flag(row["temperature"]),
        flex=_flag(row["flex"]),
        cache_min_tokens=_count(row["cache_min_tokens"]),
        requested=row["model"],
    )


def _count(text: str) -> int | None:
    return int(text) if text else None


def _flag(text: str) -> bool:
    if text not in ("true", "false"):
        raise ValueError(f"expected true or false, got {text!r}")
    return text == "true"
