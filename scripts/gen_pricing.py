"""Generate ``pricing.csv`` and ``models.csv`` from the genai-prices package data.

Usage::

    uv run python scripts/gen_pricing.py          # rewrite pricing.csv and models.csv
    uv run python scripts/gen_pricing.py --check  # exit 1 with a diff if either is stale

Data source
-----------
The bundled snapshot of the ``genai-prices`` dev dependency
(``genai_prices.data.providers``, the providers whose ``id`` is ``"openai"`` and
``"anthropic"``). Each ``ModelInfo`` there has ``prices`` (a ``ModelPrice`` with
``input_mtok``, ``cache_read_mtok``, ``cache_write_mtok`` and ``output_mtok`` in USD per
1M tokens, or a list of date-constrained ``ConditionalPrice``), ``context_window``, plus
optional ``price_variants`` (service tier / Batch overrides). Nothing in ``pricing.csv``
is typed by hand. ``models.csv`` takes from genai-prices what it has (context windows,
flex availability) and the rest from the one kept table in ``scripts/model_facts.py``,
each entry with its source page.

Columns of pricing.csv
----------------------
``model,provider,input,cached_input,cache_write,output,batch_input,batch_cached_input,
batch_cache_write,batch_output``, USD per 1M tokens. ``cached_input`` is the cache-read
price. ``cache_write`` is the price of writing a prompt to the cache: Anthropic's
5-minute cache write (1.25x input; the 1-hour write, 2x, is not carried). OpenAI caches
automatically and charges no write premium on most models, so there ``cache_write``
equals ``input``; genai-prices does list a write price (1.25x input) for gpt-5.6-* and
gpt-6* (OpenAI's prompt-caching guide bills ``cache_write_tokens`` apart on those), and
that price is used where it is listed.

Models
------
One row per base model id (dated snapshots such as ``gpt-4o-mini-2024-07-18`` or
``claude-sonnet-4-5-20250929`` are resolved to their base id by batchgrader itself, in
``batchgrader.prompting.catalogue``). A model that genai-prices lists only under a dated
id (``name-YYYY-MM-DD``) is emitted under the undated name. OpenAI rows are:

* the general-purpose gpt-5.x / gpt-6.x models genai-prices knows
  (``gpt-5``, ``gpt-5.4-mini``, ``gpt-5.6-sol``, ...), skipping the specialised
  ``-image``, ``-codex``, ``-cyber``, ``-rosalind``, ``-search-api``, ``-chat``
  and ``-audio`` variants;
* gpt-4.1 / gpt-4.1-mini / gpt-4.1-nano, gpt-4o / gpt-4o-mini;
* the o-series ``o1``, ``o3``, ``o4`` with optional ``-mini`` / ``-pro``;
* gpt-3.5-turbo, gpt-4, gpt-4-turbo;
* every model of the seed project's ``docs/pricing.csv`` (see below).

Anthropic rows are every Claude 3 and later model genai-prices knows (Claude 3, 3.5,
3.7, 4.x, 5.x, Fable, Mythos); the obsolete ``claude-2`` and ``claude-v1`` entries are
left out. An id ending in ``-latest`` (``claude-3-5-haiku-latest``) gives the row its
name without the suffix, and the ``-latest`` name becomes an alias in models.csv.
Several Claude 3.x and 4.0 models are retired at Anthropic; their rows stay so that past
usage in the ledger keeps a price.

Price rules
-----------
* Conditional (date-constrained) prices: the most recent dated price is used,
  i.e. what the provider charges now; genai-prices keeps superseded prices as earlier
  entries (e.g. o3 was 10/40 before its 2025-06-10 cut to 2/8; Claude Opus 4.6 and
  Sonnet 4.6 dropped their long-context tier on 2026-03-13).
* Tiered prices (long-context tiers above 272K input tokens on gpt-5.4+, gpt-5.5,
  gpt-5.6-*, gpt-6*; above 200K on Claude Sonnet 4.5; above 100K on Claude Haiku 5.5):
  only the base tier is used.
* No cached-input price in genai-prices (e.g. ``o1-pro``, ``o3-pro``,
  the ``-pro`` gpt-5.x models, gpt-4, gpt-4-turbo, gpt-3.5-turbo,
  computer-use-preview): ``cached_input`` is the input price (no discount).
  No cache-write price: ``cache_write`` is the input price (no premium).
* OpenAI Batch API columns are exactly 50% of the standard ones, including
  ``batch_cached_input = cached_input / 2``. genai-prices 0.2.3 does carry
  ``processing=batch`` price variants, which agree with the 50% rule for input
  and output, but differ for cached input in two ways: for gpt-4.1*, gpt-4o*,
  o1, o3, o3-mini and o4-mini it keeps the *standard* cached rate in Batch
  ("The Batch table publishes no cached-input rate"), and for gpt-5.4 it lists
  a rounded 0.13 where half of 0.25 is 0.125. computer-use-preview,
  gpt-4.5-preview, gpt-5.3 and o1-mini have no Batch variant at all. Those
  variants are not used for OpenAI.
* Anthropic Batch columns: "All usage is charged at 50% of the standard API prices"
  (https://platform.claude.com/docs/en/build-with-claude/batch-processing), cache
  reads and writes included. Where genai-prices has a ``processing=batch`` variant its
  prices are used, whatever its start date (like conditional prices, the latest price
  wins); a price the variant does not list is half the standard one. In genai-prices
  0.2.3 the variant covers claude-haiku-4-5, claude-haiku-5-5, claude-opus-4-5 to 4-8,
  claude-opus-5, claude-opus-5-5, claude-sonnet-4-5, claude-sonnet-4-6,
  claude-sonnet-5, claude-sonnet-5-5, claude-fable-5, 5-1 and 5-2 and
  claude-mythos-5-2, and equals the 50% rule on every price; the Claude 3.x, Opus 4.0,
  4.1 and Sonnet 4.0 rows have no variant and take the 50% rule. The script prints which
  rows used which on every run.
* Service-tier variants (flex / priority / fast) are not prices here: default tier
  only. A flex variant does mark the model ``flex=true`` in models.csv.

Seed reconciliation
-------------------
The seed project (github.com/afunyun/BatchGrader, ``docs/pricing.csv`` at
commit b8fceaaea048b6cef3c228c5bc6ff77ff3cbc1d4) had columns
``Model,Input,Output`` for 13 dated models; its figures are the Batch API
rates (half the standard ones). All 13 are present in genai-prices
(``computer-use-preview`` is priced from genai-prices' ``computer-use`` entry,
whose match rule covers it), so ``SEED_EXTRA`` is empty. Where the seed and
genai-prices disagree, genai-prices wins:

* ``gpt-4o-mini``: seed batch input 0.08, genai-prices 0.15 standard, i.e.
  0.075 batch (the seed rounded to two decimals);
* ``o3``: seed batch 5.00 / 20.00 (pre-2025-06-10 price), genai-prices
  2 / 8 standard, i.e. 1 / 4 batch.

All other seed figures equal this file's ``batch_input`` / ``batch_output``.
"""

from __future__ import annotations

import argparse
import csv
import difflib
import importlib.util
import io
import re
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

from genai_prices.data import providers
from genai_prices.types import (
    ConditionalPrice,
    ModelInfo,
    ModelPrice,
    Provider,
    StartDateConstraint,
    TieredPrices,
)

ROOT = Path(__file__).resolve().parent.parent
PRICING_CSV = ROOT / "pricing.csv"
MODELS_CSV = ROOT / "models.csv"

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

# Column of each standard rate -> its Batch API column.
BATCH_COLUMNS = {
    "input": "batch_input",
    "cached_input": "batch_cached_input",
    "cache_write": "batch_cache_write",
    "output": "batch_output",
}
# genai-prices ModelPrice attribute of each standard rate.
PRICE_KEYS = {
    "input": "input_mtok",
    "cached_input": "cache_read_mtok",
    "cache_write": "cache_write_mtok",
    "output": "output_mtok",
}

# Must be present in genai-prices (or SEED_EXTRA); the script fails otherwise.
REQUIRED_MODELS = (
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-4o",
    "gpt-4o-mini",
    "gpt-5",
    "gpt-5-mini",
    "gpt-5-nano",
    "o3",
    "o3-mini",
    "o4-mini",
    "claude-haiku-4-5",
    "claude-sonnet-4-5",
    "claude-opus-4-5",
)

# Models of the seed's docs/pricing.csv (afunyun/BatchGrader @ b8fceaa), dated
# snapshot suffix removed. Used only to make sure they are all present; prices
# come from genai-prices (see the module docstring for the differences).
SEED_MODELS = (
    "computer-use-preview",
    "gpt-4.1",
    "gpt-4.1-mini",
    "gpt-4.1-nano",
    "gpt-4.5-preview",
    "gpt-4o",
    "gpt-4o-mini",
    "o1",
    "o1-mini",
    "o1-pro",
    "o3",
    "o3-mini",
    "o4-mini",
)

# Standard (input, cached_input, output) USD/1M for seed models genai-prices
# lacks, taken from the seed's docs/pricing.csv (whose figures are Batch rates,
# so doubled). Empty: genai-prices 0.2.3 has every seed model.
SEED_EXTRA: dict[str, tuple[str, str, str]] = {}

# Base OpenAI model ids (snapshot date removed) that get a row when genai-prices
# lists them.
FAMILY_RE = re.compile(
    r"""^(?:
        gpt-[56](?:\.\d+)?(?:-[a-z]+)?   # gpt-5, gpt-5-mini, gpt-5.4-nano, gpt-6-sol
      | gpt-4\.1(?:-mini|-nano)?
      | gpt-4o(?:-mini)?
      | o[134](?:-mini|-pro)?
      | gpt-4 | gpt-4-turbo | gpt-3\.5-turbo
    )$""",
    re.VERBOSE,
)
# Specialised gpt-5.x / gpt-6.x variants that are not general text models.
EXCLUDED_SUFFIXES = frozenset({"audio", "chat", "codex", "cyber", "image", "rosalind", "search"})
# Claude 3 and later; not claude-2 / claude-v1 / claude-instant.
CLAUDE_RE = re.compile(r"^claude-(?:3|haiku|sonnet|opus|fable|mythos)-")

_DATED_RE = re.compile(r"-\d{4}-\d{2}-\d{2}$")


def _sibling(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    if spec is None or spec.loader is None:
        raise ImportError(f"scripts/{name}.py cannot be loaded")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


facts = _sibling("model_facts")


class Selected(NamedTuple):
    """A model that gets a row: its CSV name, provider and genai-prices entry."""

    name: str
    provider: str
    model: ModelInfo


def _undated(model_id: str) -> str:
    return _DATED_RE.sub("", model_id)


def _provider(provider_id: str) -> Provider:
    return next(p for p in providers if p.id == provider_id)


def _wanted(name: str) -> bool:
    if not FAMILY_RE.match(name):
        return False
    return name.rsplit("-", 1)[-1] not in EXCLUDED_SUFFIXES


def _lookup(provider: Provider, name: str) -> ModelInfo | None:
    """Find the genai-prices model for a CSV model name.

    Model whose id is ``name`` (or ``name-YYYY-MM-DD``), else whose match rule
    accepts ``name`` (e.g. ``computer-use-preview`` -> ``computer-use``).
    """
    for model in provider.models:
        if model.id == name:
            return model
    for model in provider.models:
        if _undated(model.id) == name:
            return model
    return provider.find_model(name)


def _latest(model: ModelInfo) -> ModelPrice:
    """Default-tier prices; for date-conditional prices, the most recent one."""
    if isinstance(model.prices, ModelPrice):
        return model.prices
    dated: list[tuple[date, ConditionalPrice]] = []
    for conditional in model.prices:
        constraint = conditional.constraint
        if constraint is None:
            dated.append((date.min, conditional))
        elif isinstance(constraint, StartDateConstraint):
            dated.append((constraint.start_date, conditional))
        # TimeOfDateConstraint (off-peak discounts) is not a standard rate.
    start, latest = max(dated, key=lambda item: item[0])
    _warn_future(model.id, start)
    return latest.prices


def _warn_future(model_id: str, start: date) -> None:
    if start > datetime.now(tz=UTC).date():
        print(f"warning: {model_id}: using price starting {start} (in the future)", file=sys.stderr)


def _batch_variant(model: ModelInfo) -> ModelPrice | None:
    """The ``processing=batch`` price variant of ``model``, whatever its start date."""
    for variant in model.price_variants or ():
        if variant.when == {"processing": "batch"}:
            if isinstance(variant.constraint, StartDateConstraint):
                _warn_future(model.id, variant.constraint.start_date)
            return variant.prices
    return None


def _base(value: Decimal | TieredPrices | None) -> Decimal | None:
    """Plain price; for tiered (long-context) prices, the base tier."""
    if isinstance(value, TieredPrices):
        return value.base
    return value


def _fmt(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _standard(name: str, price: ModelPrice) -> dict[str, Decimal]:
    """Standard rates by CSV column; missing cache prices fall back to the input price."""
    rates = {column: _base(getattr(price, key)) for column, key in PRICE_KEYS.items()}
    input_, output = rates["input"], rates["output"]
    if input_ is None or output is None:
        raise ValueError(f"{name}: genai-prices lacks an input or output token price")
    return {
        "input": input_,
        "cached_input": rates["cached_input"] or input_,
        "cache_write": rates["cache_write"] or input_,
        "output": output,
    }


def _row(
    name: str, provider: str, standard: dict[str, Decimal], batch: dict[str, Decimal]
) -> dict[str, str]:
    row = {"model": name, "provider": provider}
    for column, value in standard.items():
        for label, figure in ((column, value), (BATCH_COLUMNS[column], batch[column])):
            if figure <= 0:
                raise ValueError(f"{name}: {label} price {figure} is not positive")
            row[label] = _fmt(figure)
    return {column: row[column] for column in COLUMNS}


def _half(standard: dict[str, Decimal]) -> dict[str, Decimal]:
    return {column: value / 2 for column, value in standard.items()}


def price_row(selected: Selected) -> tuple[dict[str, str], str]:
    """The pricing.csv row of a model, and where its batch prices came from."""
    standard = _standard(selected.name, _latest(selected.model))
    batch = _half(standard)
    origin = "50% rule"
    variant = _batch_variant(selected.model) if selected.provider == "anthropic" else None
    if variant is not None:
        origin = "batch variant"
        for column, key in PRICE_KEYS.items():
            value = _base(getattr(variant, key))
            if value is not None:
                batch[column] = value
    return _row(selected.name, selected.provider, standard, batch), origin


def _openai_models() -> list[Selected]:
    provider = _provider("openai")
    names = {_undated(m.id) for m in provider.models}
    names = {name for name in names if _wanted(name)}
    names |= {name for name in REQUIRED_MODELS if not name.startswith("claude")}
    names |= set(SEED_MODELS)
    selected: list[Selected] = []
    missing: list[str] = []
    for name in sorted(names):
        model = _lookup(provider, name)
        if model is not None:
            selected.append(Selected(name, "openai", model))
        elif name not in SEED_EXTRA:
            missing.append(name)
    if missing:
        raise LookupError(f"genai-prices has no OpenAI price for: {', '.join(missing)}")
    return selected


def _anthropic_models() -> list[Selected]:
    selected = [
        Selected(_undated(model.id).removesuffix("-latest"), "anthropic", model)
        for model in _provider("anthropic").models
        if CLAUDE_RE.match(model.id)
    ]
    names = {s.name for s in selected}
    missing = [n for n in REQUIRED_MODELS if n.startswith("claude") and n not in names]
    if missing or len(names) != len(selected):
        raise LookupError(f"genai-prices Claude models missing or doubled: {missing}")
    return selected


def selected_models() -> list[Selected]:
    """Every model that gets a row in both files, sorted by name."""
    return sorted(_openai_models() + _anthropic_models(), key=lambda s: s.name)


def build_rows() -> list[dict[str, str]]:
    """Rows of pricing.csv (all values as strings), sorted by model name."""
    rows = [price_row(selected)[0] for selected in selected_models()]
    for name, (input_, cached, output) in SEED_EXTRA.items():
        standard = {
            "input": Decimal(input_),
            "cached_input": Decimal(cached),
            "cache_write": Decimal(input_),
            "output": Decimal(output),
        }
        rows.append(_row(name, "openai", standard, _half(standard)))
    return sorted(rows, key=lambda row: row["model"])


def build_catalogue() -> list[dict[str, str]]:
    """Rows of models.csv, one per pricing.csv row, sorted by model name."""
    selected = selected_models()
    if SEED_EXTRA:
        raise LookupError("SEED_EXTRA models have no genai-prices entry for models.csv")
    facts.check_table({s.name for s in selected})
    return [facts.catalogue_row(s.name, s.provider, s.model) for s in selected]


def batch_origins() -> dict[str, str]:
    """Model -> where its batch prices came from ("batch variant" or "50% rule")."""
    return {s.name: price_row(s)[1] for s in selected_models()}


def render_csv(rows: list[dict[str, str]], columns: tuple[str, ...] = COLUMNS) -> str:
    """CSV text with a header, LF line ends and a trailing newline."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _stale(path: Path, expected: str) -> bool:
    """Print a diff and return True when ``path`` differs from ``expected``."""
    current = path.read_bytes().decode() if path.exists() else ""
    if current == expected:
        print(f"{path.name} is up to date")
        return False
    diff = difflib.unified_diff(
        current.splitlines(keepends=True),
        expected.splitlines(keepends=True),
        fromfile=f"{path.name} (committed)",
        tofile=f"{path.name} (generated)",
    )
    sys.stdout.writelines(diff)
    print(f"{path.name} is out of date: run scripts/gen_pricing.py")
    return True


def main(argv: list[str] | None = None) -> int:
    """Rewrite pricing.csv and models.csv, or with ``--check`` report staleness."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 with a diff if pricing.csv or models.csv is out of date",
    )
    args = parser.parse_args(argv)

    outputs = {
        PRICING_CSV: render_csv(build_rows()),
        MODELS_CSV: render_csv(build_catalogue(), facts.CATALOGUE_COLUMNS),
    }
    if args.check:
        stale = [path for path, text in outputs.items() if _stale(path, text)]
        return 1 if stale else 0
    for path, text in outputs.items():
        path.write_bytes(text.encode())
        print(f"wrote {path} ({text.count(chr(10)) - 1} models)")
    by_origin: dict[str, list[str]] = {}
    for name, origin in batch_origins().items():
        if name.startswith("claude"):
            by_origin.setdefault(origin, []).append(name)
    for origin, names in sorted(by_origin.items()):
        print(f"Claude batch prices from the {origin}: {', '.join(names)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
