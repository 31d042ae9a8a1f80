"""pricing.py: loading, name resolution, cost math, the two file formats, failures."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from batchgrader.errors import PricingFileError, UnknownModelError
from batchgrader.money.pricing import COLUMNS, LEGACY_COLUMNS, PriceTable, Rates, Tier, Usage, cost

HEADER = ",".join(COLUMNS)
LEGACY_HEADER = ",".join(LEGACY_COLUMNS)


# input, cached_input, cache_write, output, then the same four for the Batch API.
ROW_PRICES = "2,1,2.5,8,1,0.5,1.25,4"


def _table(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "prices.csv"
    path.write_text(f"{header}\n{body}", encoding="utf-8")
    return path


class TestResolve:
    def test_packaged_table_loads(self) -> None:
        """The packaged pricing.csv loads and knows the default model."""
        table = PriceTable.load()
        assert table.resolve("gpt-4.1-mini").model == "gpt-4.1-mini"

    @pytest.mark.parametrize(
        ("name", "expected"),
        [
            ("gpt-4o-mini", "gpt-4o-mini"),
            ("gpt-4o-mini-2024-07-18", "gpt-4o-mini"),
            ("GPT-4o-mini", "gpt-4o-mini"),
            ("openai/gpt-4.1", "gpt-4.1"),
            ("gpt-4.1-2025-04-14", "gpt-4.1"),
            ("gpt-3.5-turbo-0125", "gpt-3.5-turbo"),
            ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
            ("anthropic/claude-3-5-haiku-latest", "claude-3-5-haiku"),
            ("claude-opus-4-20250514", "claude-opus-4-0"),
            ("gpt-5.6", "gpt-5.6-sol"),
        ],
    )
    def test_aliases_and_snapshots(self, name: str, expected: str) -> None:
        """Dated snapshots, aliases and provider prefixes resolve to the base model."""
        assert PriceTable.load().resolve(name).model == expected

    def test_fine_tuned_model_is_not_priced_as_its_base(self) -> None:
        """A fine-tuned model bills at its own rates: no packaged price, no borrowing."""
        assert PriceTable.load().find("ft:gpt-4o-mini-2024-07-18:acme::abc123") is None

    def test_fine_tuned_model_in_own_table(self, tmp_path: Path) -> None:
        """A user's table can price a fine-tuned model under its own name."""
        name = "ft:gpt-4o-mini-2024-07-18:acme::abc123"
        table = PriceTable.load(_table(tmp_path, f"{name},openai,{ROW_PRICES}\n"))
        assert table.resolve(name.upper()).model == name

    def test_own_table_prices_a_snapshot_apart(self, tmp_path: Path) -> None:
        """A dated row in a user's table wins over its base row; others fall back."""
        body = f"gpt-4o,openai,{ROW_PRICES}\ngpt-4o-2024-05-13,openai,5,5,5,15,2.5,2.5,2.5,7.5\n"
        table = PriceTable.load(_table(tmp_path, body))
        assert table.resolve("gpt-4o-2024-05-13").standard.input == Decimal(5)
        assert table.resolve("gpt-4o-2024-08-06").model == "gpt-4o"

    def test_unknown_model_lists_close_matches(self) -> None:
        """An unknown model is an error naming close matches."""
        with pytest.raises(UnknownModelError) as info:
            PriceTable.load().resolve("gpt-4o-mimi")
        assert "gpt-4o-mini" in info.value.message
        assert info.value.hint is not None and "--allow-unpriced" in info.value.hint


class TestCost:
    def test_cached_input_priced_apart(self, tmp_path: Path) -> None:
        """Cached input tokens use the cached rate; the rest the input rate."""
        table = PriceTable.load(_table(tmp_path, f"m,openai,{ROW_PRICES}\n"))
        usage = Usage(input_tokens=1_000_000, cached_input_tokens=400_000, output_tokens=500_000)
        # batch: 600k * 1 + 400k * 0.5 + 500k * 4 = 0.6 + 0.2 + 2.0
        assert cost(table.resolve("m"), usage) == Decimal("2.8")
        # standard: 600k * 2 + 400k * 1 + 500k * 8 = 1.2 + 0.4 + 4.0
        assert cost(table.resolve("m"), usage, tier=Tier.STANDARD) == Decimal("5.6")

    def test_money_is_exact(self, tmp_path: Path) -> None:
        """Costs are Decimal with no float rounding."""
        body = "m,openai,0.15,0.075,0.15,0.6,0.075,0.0375,0.075,0.3\n"
        table = PriceTable.load(_table(tmp_path, body))
        assert cost(table.resolve("m"), Usage(input_tokens=3)) == Decimal("0.000000225")

    def test_usage_adds(self) -> None:
        """Usages sum field by field."""
        total = Usage(1, 0, 2, 1) + Usage(3, 1, 4, 0)
        assert total == Usage(4, 1, 6, 1)
        assert total.total_tokens == 10


class TestFailures:
    def test_missing_file(self, tmp_path: Path) -> None:
        """A pricing_file that does not exist is a hard error."""
        with pytest.raises(PricingFileError, match="does not exist"):
            PriceTable.load(tmp_path / "nope.csv")

    @pytest.mark.parametrize(
        ("text", "needle"),
        [
            ("model,input\nm,1\n", "header"),
            (f"{HEADER}\nm,openai,1,1,1\n", "line 2"),
            (f"{HEADER}\nm,openai,1,x,1,1,1,1,1,1\n", "not a number"),
            (f"{HEADER}\nm,openai,1,1,-1,1,1,1,1,1\n", ">= 0"),
            (f"{HEADER}\nm,openai,{ROW_PRICES}\nM,openai,{ROW_PRICES}\n", "twice"),
            (f"{HEADER}\n,openai,{ROW_PRICES}\n", "empty"),
            (f"{HEADER}\n", "no models"),
            (f"{LEGACY_HEADER}\nm,1,1,1,1,1,1,1,1,1\n", "expected 7 fields"),
            (f"{LEGACY_HEADER}\nm,1,1,1,1,1,nan\n", ">= 0"),
            ("", "header"),
        ],
    )
    def test_malformed_file(self, tmp_path: Path, text: str, needle: str) -> None:
        """Malformed tables fail with a message naming the problem."""
        path = tmp_path / "bad.csv"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(PricingFileError, match=needle):
            PriceTable.load(path)


class TestFormats:
    def test_new_columns_are_parsed(self, tmp_path: Path) -> None:
        """Provider and cache-write prices land on the Price and its Rates."""
        price = PriceTable.load(_table(tmp_path, f"m,Anthropic,{ROW_PRICES}\n")).resolve("m")
        assert price.provider == "anthropic"
        assert price.standard == Rates(Decimal(2), Decimal(1), Decimal("2.5"), Decimal(8))
        assert price.batch == Rates(Decimal(1), Decimal("0.5"), Decimal("1.25"), Decimal(4))
        assert price.rates(batch=True) is price.batch
        assert price.rates(batch=False) is price.standard

    def test_empty_provider_is_guessed(self, tmp_path: Path) -> None:
        """A blank provider cell is guessed from the model name."""
        body = f"claude-next,,{ROW_PRICES}\nmy-model,,{ROW_PRICES}\n"
        table = PriceTable.load(_table(tmp_path, body))
        assert table.resolve("claude-next").provider == "anthropic"
        assert table.resolve("my-model").provider == "openai"

    def test_legacy_seven_column_file_loads(self, tmp_path: Path) -> None:
        """A user's table in the old format loads: cache writes cost the input price."""
        body = "m,2,1,8,1,0.5,4\nclaude-x-1,3,0.3,15,1.5,0.15,7.5\n"
        table = PriceTable.load(_table(tmp_path, body, LEGACY_HEADER))
        price = table.resolve("m")
        assert price.provider == "openai"
        assert price.standard == Rates(Decimal(2), Decimal(1), Decimal(2), Decimal(8))
        assert price.batch == Rates(Decimal(1), Decimal("0.5"), Decimal(1), Decimal(4))
        claude = table.resolve("claude-x-1")
        assert claude.provider == "anthropic"
        assert claude.standard.cache_write == Decimal(3)
        assert claude.batch.cache_write == Decimal("1.5")
        usage = Usage(input_tokens=1_000_000, cached_input_tokens=400_000, output_tokens=500_000)
        assert cost(price, usage) == Decimal("2.8")

    def test_packaged_claude_prices(self) -> None:
        """The packaged table carries Claude's cache-write and Batch prices."""
        price = PriceTable.load().resolve("claude-haiku-4-5-20251001")
        assert price.provider == "anthropic"
        assert price.standard == Rates(Decimal(1), Decimal("0.1"), Decimal("1.25"), Decimal(5))
        assert price.batch == Rates(
            Decimal("0.5"), Decimal("0.05"), Decimal("0.625"), Decimal("2.5")
        )

    def test_packaged_openai_cache_write_is_input(self) -> None:
        """OpenAI models without a write premium have cache_write equal to input."""
        price = PriceTable.load().resolve("gpt-4.1-mini")
        assert price.provider == "openai"
        assert price.standard.cache_write == price.standard.input
        assert price.batch.cache_write == price.batch.input
