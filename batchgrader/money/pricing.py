"""Model prices (USD per 1M tokens) and cost math in ``Decimal``.

The table is ``pricing.csv``, packaged with batchgrader and generated from the
``genai-prices`` data by ``scripts/gen_pricing.py``; ``paths.pricing_file`` points at a
user's own table instead. A missing or malformed table is a hard error: a cost is never
silently zero.

Columns: ``model,provider,input,cached_input,cache_write,output,batch_input,
batch_cached_input,batch_cache_write,batch_output``. ``cached_input`` is the cache-read
price, ``cache_write`` the price of writing the prompt cache (Anthropic's 5-minute write;
the input price where a provider charges no premium). A user's table in the older
7-column format (``model,input,cached_input,output,batch_input,batch_cached_input,
batch_output``) still loads: cache writes cost the input price and the provider is
guessed from the model name. Model names are resolved by the model catalogue
(``batchgrader.prompting.catalogue``): case, provider prefixes, snapshots, aliases.
"""

from __future__ import annotations

import csv
import difflib
import io
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Protocol

from batchgrader.errors import PricingFileError, UnknownModelError
from batchgrader.prompting import catalogue

COLUMNS = (
    "model",
    "provider",
    "input",
    "cached_input",
    "cache_write",
    "output",
    "batch_input",
    "batch_cached_input",
    "batch_cache_write",
    "batch_output",
)
#: The format before cache writes and providers; still accepted for a user's own table.
LEGACY_COLUMNS = (
    "model",
    "input",
    "cached_input",
    "output",
    "batch_input",
    "batch_cached_input",
    "batch_output",
)
PER_TOKENS = Decimal(1_000_000)


@dataclass(frozen=True)
class Rates:
    """USD per 1M tokens for one kind of call."""

    input: Decimal
    cached_input: Decimal  # cache read
    cache_write: Decimal  # writing the prompt cache (Anthropic 5-minute TTL)
    output: Decimal


@dataclass(frozen=True)
class Price:
    """A model's standard and Batch API rates."""

    model: str
    provider: str
    standard: Rates
    batch: Rates

    def rates(self, *, batch: bool) -> Rates:
        return self.batch if batch else self.standard


class ModelPriceLike(Protocol):
    """A price given in the settings (``settings.ModelPrice``)."""

    input: Decimal
    output: Decimal
    cached_input: Decimal | None
    batch_discount: bool


class Tier(StrEnum):
    """How requests are billed: Batch API rates, standard synchronous rates, or flex.

    OpenAI's flex processing is billed at Batch API rates.
    """

    BATCH = "batch"
    STANDARD = "standard"
    FLEX = "flex"

    @property
    def batch_rates(self) -> bool:
        return self is not Tier.STANDARD

    @classmethod
    def direct(cls, service_tier: str | None) -> Tier:
        """What direct (synchronous) calls are billed at: flex at Batch API rates, any
        other tier at the standard rates (``planning.spec`` refuses tiers it cannot price)."""
        return cls.FLEX if service_tier == "flex" else cls.STANDARD


@dataclass(frozen=True)
class Usage:
    """Tokens of one or many requests.

    ``input_tokens`` is every input token, cached or not (Anthropic's uncached,
    cache-read and cache-write tokens are added up by its provider);
    ``cached_input_tokens`` (cache reads) and ``cache_write_tokens`` are parts of it,
    ``reasoning_tokens`` a part of ``output_tokens``.
    """

    input_tokens: int = 0
    cached_input_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.input_tokens + other.input_tokens,
            self.cached_input_tokens + other.cached_input_tokens,
            self.output_tokens + other.output_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
        )


def cost(price: Price, usage: Usage, *, tier: Tier = Tier.BATCH) -> Decimal:
    """Exact cost of ``usage`` at ``tier``; cache reads and writes at their own rates."""
    rates = price.rates(batch=tier.batch_rates)
    cached = min(usage.cached_input_tokens, usage.input_tokens)
    written = min(usage.cache_write_tokens, usage.input_tokens - cached)
    total = (
        (usage.input_tokens - cached - written) * rates.input
        + cached * rates.cached_input
        + written * rates.cache_write
        + usage.output_tokens * rates.output
    )
    return total / PER_TOKENS


class PriceTable:
    """Prices by model, with snapshot and alias resolution."""

    def __init__(self, prices: dict[str, Price], source: str) -> None:
        self._prices = prices
        self.source = source

    @classmethod
    def load(cls, path: Path | None = None) -> PriceTable:
        """Load ``path``, or the packaged table when ``path`` is None."""
        if path is None:
            resource = resources.files("batchgrader") / "pricing.csv"
            try:
                text = resource.read_text(encoding="utf-8")
            except OSError as exc:
                raise PricingFileError(
                    f"The packaged pricing.csv cannot be read: {exc}",
                    hint="Reinstall batchgrader, or set paths.pricing_file.",
                ) from None
            return cls(_parse(text, "packaged pricing.csv"), "packaged pricing.csv")
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise PricingFileError(
                f"Pricing file {path} does not exist.",
                hint="Fix paths.pricing_file, or unset it to use the packaged prices.",
            ) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise PricingFileError(f"Pricing file {path} cannot be read: {exc}") from None
        return cls(_parse(text, str(path)), str(path))

    @property
    def models(self) -> list[str]:
        return sorted(self._prices)

    def with_overrides(self, overrides: Mapping[str, ModelPriceLike]) -> PriceTable:
        """This table with the settings' ``[pricing."model"]`` prices added (they win)."""
        prices = dict(self._prices)
        for name, given in overrides.items():
            cached = given.cached_input if given.cached_input is not None else given.input
            standard = Rates(given.input, cached, given.input, given.output)
            factor = Decimal("0.5") if given.batch_discount else Decimal(1)
            batch = Rates(
                given.input * factor, cached * factor, given.input * factor, given.output * factor
            )
            key = name.strip().lower()
            prices[key] = Price(key, catalogue.lookup(key).provider, standard, batch)
        return PriceTable(prices, self.source + " and the [pricing] settings")

    def find(self, model: str) -> Price | None:
        """The price of ``model`` (snapshots and aliases resolved); None when unknown."""
        exact = model.strip().lower()
        if exact in self._prices:  # a name priced as given (a [pricing] setting, a local model)
            return self._prices[exact]
        for name in catalogue.pricing_keys(model):
            if name in self._prices:
                return self._prices[name]
        return None

    def resolve(self, model: str) -> Price:
        """The price of ``model``, or ``UnknownModelError`` listing close matches."""
        price = self.find(model)
        if price is not None:
            return price
        close = difflib.get_close_matches(model.lower(), self.models, n=4, cutoff=0.5)
        suggestion = f" Close matches: {', '.join(close)}." if close else ""
        raise UnknownModelError(
            f"No price for model '{model}' in {self.source}.{suggestion}",
            hint="Pass --allow-unpriced to run without a cost estimate, or price it in a "
            'settings file: [pricing."NAME"] with input and output in USD per 1M tokens '
            "(0 for a local server).",
        )


def _parse(text: str, source: str) -> dict[str, Price]:
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    columns = tuple(h.strip() for h in header or ())
    if columns not in (COLUMNS, LEGACY_COLUMNS):
        raise PricingFileError(
            f"{source}: the header must be {','.join(COLUMNS)}, got {','.join(header or [])!r}."
        )
    prices: dict[str, Price] = {}
    for line, row in enumerate(reader, start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) != len(columns):
            raise PricingFileError(
                f"{source}, line {line}: expected {len(columns)} fields, got {len(row)}."
            )
        fields = dict(zip(columns, (cell.strip() for cell in row), strict=True))
        model = fields["model"].lower()
        if not model:
            raise PricingFileError(f"{source}, line {line}: the model name is empty.")
        values = {
            name: _price(raw, name, model, source, line)
            for name, raw in fields.items()
            if name not in ("model", "provider")
        }
        if model in prices:
            raise PricingFileError(f"{source}, line {line}: {model} is listed twice.")
        values.setdefault("cache_write", values["input"])
        values.setdefault("batch_cache_write", values["batch_input"])
        provider = fields.get("provider", "").lower() or catalogue.lookup(model).provider
        prices[model] = Price(
            model,
            provider,
            Rates(values["input"], values["cached_input"], values["cache_write"], values["output"]),
            Rates(
                values["batch_input"],
                values["batch_cached_input"],
                values["batch_cache_write"],
                values["batch_output"],
            ),
        )
    if not prices:
        raise PricingFileError(f"{source} lists no models.")
    return prices


def _price(raw: str, name: str, model: str, source: str, line: int) -> Decimal:
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise PricingFileError(
            f"{source}, line {line}: {name} of {model} is not a number: {raw!r}."
        ) from None
    if not value.is_finite() or value < 0:
        raise PricingFileError(f"{source}, line {line}: {name} of {model} must be a price >= 0.")
    return value
