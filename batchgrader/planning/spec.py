"""Everything that shapes a run's requests, resolved once from the settings.

The model's rules (reasoning or not, endpoints, structured output, system message,
context window) decide the request: a responses-only model goes to ``/v1/responses``,
a model without JSON-schema output is asked for its answer in the prompt, a reasoning
model gets a reasoning effort and room for its reasoning tokens. A job stores what was
resolved (``StoredRequest``), so resuming it later sends exactly the same requests.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from batchgrader.data.formats import Format
from batchgrader.errors import UsageError
from batchgrader.money.pricing import Price, PriceTable
from batchgrader.prompting import catalogue, rules
from batchgrader.prompting.answers import answer_instruction
from batchgrader.prompting.options import AnswerMode, RequestOptions
from batchgrader.prompting.prompts import Prompt, Scale, Template, load_prompt
from batchgrader.providers.base import Provider, RequestCodec, TokenCounter
from batchgrader.providers.registry import provider_for
from batchgrader.settings import DEFAULT_REASONING_EFFORT, Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RequestSpec:
    """The prompt, request options, provider, tokenizer and price of a run."""

    prompt: Prompt
    options: RequestOptions
    provider: Provider
    codec: RequestCodec
    counter: TokenCounter
    price: Price | None
    text_column: str
    format: Format | None
    fail_on_empty: bool
    context_window: int | None = None
    #: What was decided for the user that they should hear about (one line each).
    notes: tuple[str, ...] = ()

    @property
    def max_usage(self) -> int | None:
        """The most tokens one request can use (a usage above is impossible)."""
        return self.context_window


class StoredRequest(BaseModel):
    """What a job records of its requests, to resume them identically."""

    model: str
    endpoint: str
    max_tokens: int
    temperature: float | None
    answer_mode: AnswerMode
    reasoning_effort: str | None = None
    service_tier: str | None = None
    fold_system: bool = False
    reasoning: bool = False
    system: str
    user: str
    examples_sha256: str
    scale: tuple[int, int]
    prompt_reasoning: bool
    schema_: dict[str, Any] | None = None
    column: str
    format: Format | None
    provider: str = "openai"

    @classmethod
    def of(cls, spec: RequestSpec) -> StoredRequest:
        o, p = spec.options, spec.prompt
        return cls(
            model=o.model,
            endpoint=o.endpoint,
            max_tokens=o.max_tokens,
            temperature=o.temperature,
            answer_mode=o.answer_mode,
            reasoning_effort=o.reasoning_effort,
            service_tier=o.service_tier,
            fold_system=o.fold_system,
            reasoning=o.reasoning,
            system=p.system.source,
            user=p.user.source,
            examples_sha256=hashlib.sha256(p.examples.encode()).hexdigest(),
            scale=(p.scale.min, p.scale.max),
            prompt_reasoning=p.reasoning,
            schema_=p.schema,
            column=spec.text_column,
            format=spec.format,
            provider=spec.provider.name,
        )

    @classmethod
    def parse(cls, text: str) -> StoredRequest:
        """A job's stored settings (also those of jobs made by earlier versions)."""
        data = json.loads(text)
        if "answer_mode" not in data:  # before 0.2: a "structured" flag
            mode = AnswerMode.SCHEMA if data.get("structured", True) else AnswerMode.TEXT
            data = {
                "model": data["model"],
                "endpoint": data["endpoint"],
                "max_tokens": data["max_tokens"],
                "temperature": data["temperature"],
                "answer_mode": mode,
                "reasoning": rules.of(data["model"]).reasoning,
                "system": data["system"],
                "user": data["user"],
                "examples_sha256": data.get("examples", ""),
                "scale": data["scale"],
                "prompt_reasoning": data["reasoning"],
                "schema_": data["schema"],
                "column": data["column"],
                "format": data["format"],
            }
        return cls.model_validate(data)


def request_spec(
    settings: Settings,
    *,
    schema_file: Path | None = None,
    fmt: Format | None = None,
    fail_on_empty: bool = False,
    allow_unpriced: bool = False,
) -> RequestSpec:
    """Resolve prompt, model rules, provider, pricing and tokenizer; failures are usage errors."""
    req = settings.request
    model = rules.of(req.model)
    table = PriceTable.load(settings.paths.pricing_file).with_overrides(settings.pricing)
    price = table.find(req.model) if allow_unpriced else table.resolve(req.model)
    prompt = load_prompt(req.prompt, req.examples_file, schema_file)
    notes: list[str] = []
    provider = provider_for(settings)
    endpoint, why = provider.endpoint(req.model, model, req.endpoint)
    notes.extend([why] if why else [])
    _check_tier(req.model, model, provider.name, req.service_tier)
    mode = _answer_mode(prompt, req.structured_output, model)
    instruction = answer_instruction(prompt, mode)
    if instruction is not None:
        prompt = prompt.with_instruction(instruction)
        notes.append(
            f"{req.model} has no JSON-schema output: the prompt asks for the JSON answer "
            "and it is read from the text."
        )
    try:
        effort, note = rules.resolve_effort(
            model, req.reasoning_effort, default=DEFAULT_REASONING_EFFORT
        )
    except ValueError as exc:
        raise UsageError(f"{exc}.", hint="Set request.reasoning_effort to one of those.") from None
    if note:
        notes.append(note)
    max_tokens = req.max_tokens_per_response or rules.default_max_tokens(model, effort)
    _check_room(req.model, model, max_tokens)
    notes.extend(provider.notes())
    temperature = req.temperature
    if temperature is not None and not provider.sampling:
        notes.append(
            f"The {provider.name} API refuses sampling parameters: request.temperature is not sent."
        )
        temperature = None
    elif temperature is not None and not model.temperature:
        notes.append(f"{req.model} takes no temperature: request.temperature is not sent.")
        temperature = None
    options = RequestOptions(
        model=req.model,
        endpoint=endpoint,
        max_tokens=max_tokens,
        temperature=temperature,
        answer_mode=mode,
        reasoning_effort=effort,
        service_tier=req.service_tier,
        fold_system=not model.system_message,
        reasoning=model.reasoning,
    )
    return _spec(
        settings, prompt, options, price, req.response_field, fmt, fail_on_empty, notes, provider
    )


def spec_of_job(stored_json: str, settings: Settings) -> RequestSpec:
    """The request spec a job was created with (to resume it without its flags)."""
    stored = StoredRequest.parse(stored_json)
    prompt = Prompt(
        name="(stored)",
        system=Template.parse(stored.system, "stored system template"),
        user=Template.parse(stored.user, "stored user template"),
        scale=Scale(*stored.scale),
        reasoning=stored.prompt_reasoning,
        schema=stored.schema_,
    )
    options = RequestOptions(
        model=stored.model,
        endpoint=stored.endpoint,
        max_tokens=stored.max_tokens,
        temperature=stored.temperature,
        answer_mode=stored.answer_mode,
        reasoning_effort=stored.reasoning_effort,
        service_tier=stored.service_tier,
        fold_system=stored.fold_system,
        reasoning=stored.reasoning,
    )
    table = PriceTable.load(settings.paths.pricing_file).with_overrides(settings.pricing)
    price = table.find(stored.model)
    return _spec(
        settings,
        prompt,
        options,
        price,
        stored.column,
        stored.format,
        False,
        [],
        provider_for(settings, stored.provider),
    )


def _spec(
    settings: Settings,
    prompt: Prompt,
    options: RequestOptions,
    price: Price | None,
    column: str,
    fmt: Format | None,
    fail_on_empty: bool,
    notes: list[str],
    provider: Provider,
) -> RequestSpec:
    model = rules.of(options.model)
    window = model.context_window
    return RequestSpec(
        prompt=prompt,
        options=options,
        provider=provider,
        codec=provider.codec(options, prompt, max_usage=window),
        counter=provider.counter(options, prompt),
        price=price,
        text_column=column,
        format=fmt,
        fail_on_empty=fail_on_empty,
        context_window=window,
        notes=tuple(notes),
    )


def _check_tier(name: str, model: rules.ModelRules, provider: str, tier: str | None) -> None:
    """A service tier the provider would refuse, or bill at rates batchgrader has no
    price for, is refused before anything is sent."""
    if tier is None:
        return
    if provider != "openai":
        raise UsageError(
            f"--service-tier {tier} is OpenAI's: {provider.capitalize()}'s API has no such tier.",
            hint="Drop --service-tier (request.service_tier).",
        )
    if tier == "priority":
        raise UsageError(
            "Priority processing is billed above the standard rates, and batchgrader has no "
            "price for it: its spend would be recorded too low.",
            hint="Drop --service-tier, or use flex (Batch API rates, answered synchronously).",
        )
    if tier == "flex" and model.known and not model.flex:
        offered = [m for m in catalogue.models() if catalogue.lookup(m).flex]
        among = ", ".join(offered[-2:] + offered[:3])  # o3, o4-mini, gpt-5, ...
        raise UsageError(
            f"{name} does not offer flex processing: OpenAI would refuse every row.",
            hint=f"Use a model that does ({among}, ...: the flex column of models.csv), "
            "or drop --service-tier.",
        )


def _check_room(name: str, model: rules.ModelRules, max_tokens: int) -> None:
    """Output tokens must fit the model's output limit and leave room for input."""
    if model.max_output is not None and max_tokens > model.max_output:
        raise UsageError(
            f"max_tokens_per_response ({max_tokens:,}) is more than {name} can write in one "
            f"answer ({model.max_output:,} tokens).",
            hint="Lower --max-tokens (request.max_tokens_per_response).",
        )
    if model.context_window is not None and max_tokens >= model.context_window:
        raise UsageError(
            f"max_tokens_per_response ({max_tokens:,}) leaves no room for the input in "
            f"{name}'s context window ({model.context_window:,} tokens).",
            hint="Lower --max-tokens (request.max_tokens_per_response).",
        )


def _answer_mode(prompt: Prompt, structured: bool, model: rules.ModelRules) -> AnswerMode:
    """How the answer is asked for: the provider's schema enforcement where the model has
    it, a forced tool call (Anthropic), else the prompt asks and the text is read."""
    wants_json = prompt.schema is not None or prompt.reasoning
    if structured and model.structured_output == "json_schema":
        return AnswerMode.SCHEMA
    if structured and model.structured_output == "tool" and model.provider == "anthropic":
        return AnswerMode.TOOL
    return AnswerMode.JSON_TEXT if wants_json else AnswerMode.TEXT
