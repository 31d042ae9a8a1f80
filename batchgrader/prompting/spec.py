"""Everything that shapes a run's requests, resolved once from the settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from batchgrader.data.files import Format
from batchgrader.money.pricing import Price, PriceTable
from batchgrader.prompting.prompts import Prompt, load_prompt
from batchgrader.prompting.tokens import Counter
from batchgrader.providers.openai.requests import RequestOptions
from batchgrader.settings import Settings


@dataclass(frozen=True)
class RequestSpec:
    """The prompt, request options, tokenizer and price of a run."""

    prompt: Prompt
    options: RequestOptions
    counter: Counter
    price: Price | None
    text_column: str
    format: Format | None
    fail_on_empty: bool


def request_spec(
    settings: Settings,
    *,
    schema_file: Path | None = None,
    fmt: Format | None = None,
    fail_on_empty: bool = False,
    allow_unpriced: bool = False,
) -> RequestSpec:
    """Resolve prompt, pricing and tokenizer; every failure here is a usage error."""
    req = settings.request
    table = PriceTable.load(settings.paths.pricing_file)
    price = table.find(req.model) if allow_unpriced else table.resolve(req.model)
    prompt = load_prompt(req.prompt, req.examples_file, schema_file)
    options = RequestOptions(
        model=req.model,
        endpoint=req.endpoint,
        max_tokens=req.max_tokens_per_response,
        temperature=req.temperature,
        structured=req.structured_output,
    )
    return RequestSpec(
        prompt=prompt,
        options=options,
        counter=Counter.for_model(req.model),
        price=price,
        text_column=req.response_field,
        format=fmt,
        fail_on_empty=fail_on_empty,
    )
