"""pricing.py: loading, snapshot resolution, cost math and failure modes."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from batchgrader.errors import PricingFileError, UnknownModelError
from batchgrader.money.pricing import COLUMNS, PriceTable, Tier, Usage, cost

HEADER = ",".join(COLUMNS)


def _table(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "prices.csv"
    path.write_text(f"{HEADER}\n{body}", encoding="utf-8")
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
        ],
    )
    def test_aliases_and_snapshots(self, name: str, expected: str) -> None:
        """Dated snapshots and provider prefixes resolve to the base model."""
        assert PriceTable.load().resolve(name).model == expected

    def test_unknown_model_lists_close_matches(self) -> None:
        """An unknown model is an error naming close matches."""
        with pytest.raises(UnknownModelError) as info:
            PriceTable.load().resolve("gpt-4o-mimi")
        assert "gpt-4o-mini" in info.value.message
        assert info.value.hint is not None and "--allow-unpriced" in info.value.hint


class TestCost:
    def test_cached_input_priced_apart(self, tmp_path: Path) -> None:
        """Cached input tokens use the cached rate; the rest the input rate."""
        table = PriceTable.load(_table(tmp_path, "m,2,1,8,1,0.5,4\n"))
        usage = Usage(input_tokens=1_000_000, cached_input_tokens=400_000, output_tokens=500_000)
        # batch: 600k * 1 + 400k * 0.5 + 500k * 4 = 0.6 + 0.2 + 2.0
        assert cost(table.resolve("m"), usage) == Decimal("2.8")
        # standard: 600k * 2 + 400k * 1 + 500k * 8 = 1.2 + 0.4 + 4.0
        assert cost(table.resolve("m"), usage, tier=Tier.STANDARD) == Decimal("5.6")

    def test_money_is_exact(self, tmp_path: Path) -> None:
        """Costs are Decimal with no float rounding."""
        table = PriceTable.load(_table(tmp_path, "m,0.15,0.075,0.6,0.075,0.0375,0.3\n"))
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
            (f"{HEADER}\nm,1,1,1\n", "line 2"),
            (f"{HEADER}\nm,1,x,1,1,1,1\n", "not a number"),
            (f"{HEADER}\nm,1,-1,1,1,1,1\n", ">= 0"),
            (f"{HEADER}\nm,1,1,1,1,1,1\nm,1,1,1,1,1,1\n", "twice"),
            (f"{HEADER}\n", "no models"),
            ("", "header"),
        ],
    )
    def test_malformed_file(self, tmp_path: Path, text: str, needle: str) -> None:
        """Malformed tables fail with a message naming the problem."""
        path = tmp_path / "bad.csv"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(PricingFileError, match=needle):
            PriceTable.load(path)
