"""Generate ``pricing.csv`` (USD per 1M tokens) from the genai-prices package data.

Usage::

    uv run python scripts/gen_pricing.py          # rewrite pricing.csv
    uv run python scripts/gen_pricing.py --check  # exit 1 with a diff if stale

Data source
-----------
The bundled snapshot of the ``genai-prices`` dev dependency
(``genai_prices.data.providers``, the provider whose ``id`` is ``"openai"``).
Each ``ModelInfo`` there has ``prices`` (a ``ModelPrice`` with ``input_mtok``,
``cache_read_mtok`` and ``output_mtok`` in USD per 1M tokens, or a list of
date-constrained ``ConditionalPrice``) plus optional ``price_variants`` (service
tier / Batch overrides). Nothing in ``pricing.csv`` is typed by hand.

Models
------
One row per base model id (dated snapshots such as ``gpt-4o-mini-2024-07-18``
are resolved to their base id by batchgrader itself). A model that genai-prices
lists only under a dated id (``name-YYYY-MM-DD``) is emitted under the undated
name. Rows are:

* the general-purpose gpt-5.x / gpt-6.x models genai-prices knows
  (``gpt-5``, ``gpt-5.4-mini``, ``gpt-5.6-sol``, ...), skipping the specialised
  ``-image``, ``-codex``, ``-cyber``, ``-rosalind``, ``-search-api``, ``-chat``
  and ``-audio`` variants;
* gpt-4.1 / gpt-4.1-mini / gpt-4.1-nano, gpt-4o / gpt-4o-mini;
* the o-series ``o1``, ``o3``, ``o4`` with optional ``-mini`` / ``-pro``;
* gpt-3.5-turbo, gpt-4, gpt-4-turbo;
* every model of the seed project's ``docs/pricing.csv`` (see below).

Price rules
-----------
* Conditional (date-constrained) prices: the most recent dated price is used,
  i.e. what OpenAI charges now; genai-prices keeps superseded prices as earlier
  entries (e.g. o3 was 10/40 before its 2025-06-10 cut to 2/8).
* Tiered prices (long-context tiers above 272K input tokens on gpt-5.4+,
  gpt-5.5, gpt-5.6-*, gpt-6*): only the base tier is used.
* No cached-input price in genai-prices (e.g. ``o1-pro``, ``o3-pro``,
  the ``-pro`` gpt-5.x models, gpt-4, gpt-4-turbo, gpt-3.5-turbo,
  computer-use-preview): ``cached_input`` is the input price (no discount).
* Batch API columns are exactly 50% of the standard ones, including
  ``batch_cached_input = cached_input / 2``. genai-prices 0.2.3 does carry
  ``processing=batch`` price variants, which agree with the 50% rule for input
  and output, but differ for cached input in two ways: for gpt-4.1*, gpt-4o*,
  o1, o3, o3-mini and o4-mini it keeps the *standard* cached rate in Batch
  ("The Batch table publishes no cached-input rate"), and for gpt-5.4 it lists
  a rounded 0.13 where half of 0.25 is 0.125. computer-use-preview,
  gpt-4.5-preview, gpt-5.3 and o1-mini have no Batch variant at all. Those
  variants are not used here.
* Service-tier variants (flex / priority / fast) are ignored: default tier only.

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
import io
import re
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from genai_prices.data import providers
from genai_prices.types import (
    ConditionalPrice,
    ModelInfo,
    ModelPrice,
    Provider,
    StartDateConstraint,
    TieredPrices,
)

PRICING_CSV = Path(__file__).resolve().parent.parent / "pricing.csv"

COLUMNS = (
    "model",
    "input",
    "cached_input",
    "output",
    "batch_input",
    "batch_cached_input",
    "batch_output",
)

# Column of each standard rate -> its Batch API column (always half).
BATCH_COLUMNS = {
    "input": "batch_input",
    "cached_input": "batch_cached_input",
    "output": "batch_output",
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

# Base model ids (snapshot date removed) that get a row when genai-prices
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

_DATED_RE = re.compile(r"-\d{4}-\d{2}-\d{2}$")


def _undated(model_id: str) -> str:
    return _DATED_RE.sub("", model_id)


def _openai_provider() -> Provider:
    return next(p for p in providers if p.id == "openai")


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


def _standard_price(model: ModelInfo) -> ModelPrice:
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
    if start > datetime.now(tz=UTC).date():
        print(
            f"warning: {model.id}: using price starting {start} (in the future)",
            file=sys.stderr,
        )
    return latest.prices


def _base(value: Decimal | TieredPrices | None) -> Decimal | None:
    """Plain price; for tiered (long-context) prices, the base tier."""
    if isinstance(value, TieredPrices):
        return value.base
    return value


def _fmt(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _row(name: str, input_: Decimal, cached: Decimal, output: Decimal) -> dict[str, str]:
    for label, value in (
        ("input", input_),
        ("cached_input", cached),
        ("output", output),
    ):
        if value <= 0:
            raise ValueError(f"{name}: {label} price {value} is not positive")
    standard = {"input": input_, "cached_input": cached, "output": output}
    row = {"model": name}
    for column, value in standard.items():
        row[column] = _fmt(value)
        row[BATCH_COLUMNS[column]] = _fmt(value / 2)
    return {column: row[column] for column in COLUMNS}


def _row_from_model(name: str, model: ModelInfo) -> dict[str, str]:
    price = _standard_price(model)
    input_ = _base(price.input_mtok)
    output = _base(price.output_mtok)
    if input_ is None or output is None:
        raise ValueError(f"{name}: genai-prices model {model.id!r} lacks a token price")
    cached = _base(price.cache_read_mtok)
    # No cached-input price: cached tokens cost the full input price.
    return _row(name, input_, input_ if cached is None else cached, output)


def build_rows() -> list[dict[str, str]]:
    """Rows of pricing.csv (all values as strings), sorted by model name."""
    provider = _openai_provider()
    names = {_undated(m.id) for m in provider.models}
    names = {name for name in names if _wanted(name)}
    names |= set(REQUIRED_MODELS) | set(SEED_MODELS)

    rows: list[dict[str, str]] = []
    missing: list[str] = []
    for name in sorted(names):
        model = _lookup(provider, name)
        if model is not None:
            rows.append(_row_from_model(name, model))
        elif name in SEED_EXTRA:
            input_, cached, output = (Decimal(v) for v in SEED_EXTRA[name])
            rows.append(_row(name, input_, cached, output))
        else:
            missing.append(name)
    if missing:
        raise LookupError(f"genai-prices has no OpenAI price for: {', '.join(missing)}")
    return rows


def render_csv(rows: list[dict[str, str]]) -> str:
    """CSV text with a header, LF line ends and a trailing newline."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    """Rewrite pricing.csv, or with ``--check`` report whether it is stale."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="do not write; exit 1 with a diff if pricing.csv is out of date",
    )
    args = parser.parse_args(argv)

    expected = render_csv(build_rows())
    if args.check:
        current = PRICING_CSV.read_bytes().decode() if PRICING_CSV.exists() else ""
        if current == expected:
            print(f"{PRICING_CSV.name} is up to date")
            return 0
        diff = difflib.unified_diff(
            current.splitlines(keepends=True),
            expected.splitlines(keepends=True),
            fromfile=f"{PRICING_CSV.name} (committed)",
            tofile=f"{PRICING_CSV.name} (generated)",
        )
        sys.stdout.writelines(diff)
        print(f"{PRICING_CSV.name} is out of date: run scripts/gen_pricing.py")
        return 1
    PRICING_CSV.write_bytes(expected.encode())
    print(f"wrote {PRICING_CSV} ({expected.count(chr(10)) - 1} models)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
