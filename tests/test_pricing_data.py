"""Checks on the committed pricing.csv and the script that generates it."""

from __future__ import annotations

import csv
import importlib.util
import io
import re
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRICING_CSV = ROOT / "pricing.csv"
SCRIPT = ROOT / "scripts" / "gen_pricing.py"

COLUMNS = [
    "model",
    "input",
    "cached_input",
    "output",
    "batch_input",
    "batch_cached_input",
    "batch_output",
]
PRICE_COLUMNS = COLUMNS[1:]
BATCH_OF = {
    "input": "batch_input",
    "cached_input": "batch_cached_input",
    "output": "batch_output",
}
REQUIRED = ["gpt-4.1-mini", "gpt-4o-mini", "gpt-4o", "o3", "o4-mini"]


@pytest.fixture(scope="module")
def gen_pricing() -> ModuleType:
    """Load scripts/gen_pricing.py (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("gen_pricing", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def committed_text() -> str:
    """Raw text of the committed pricing.csv."""
    return PRICING_CSV.read_bytes().decode()


@pytest.fixture(scope="module")
def rows(committed_text: str) -> list[dict[str, str]]:
    """Rows of the committed pricing.csv."""
    return list(csv.DictReader(io.StringIO(committed_text)))


def test_committed_csv_matches_generated(gen_pricing: ModuleType, committed_text: str) -> None:
    """pricing.csv equals what scripts/gen_pricing.py builds from genai-prices."""
    assert committed_text == gen_pricing.render_csv(gen_pricing.build_rows())


def test_packaged_symlink_points_at_top_level_csv() -> None:
    """batchgrader/pricing.csv resolves to the top-level pricing.csv."""
    assert (ROOT / "batchgrader" / "pricing.csv").resolve() == PRICING_CSV.resolve()


def test_layout(committed_text: str, rows: list[dict[str, str]]) -> None:
    """Exact header, LF line ends, one trailing newline, unique sorted models."""
    assert committed_text.splitlines()[0] == ",".join(COLUMNS)
    assert "\r" not in committed_text
    assert committed_text.endswith("\n")
    assert not committed_text.endswith("\n\n")
    models = [row["model"] for row in rows]
    assert models == sorted(set(models))


def test_prices_are_plain_positive_decimals(rows: list[dict[str, str]]) -> None:
    """Every price is a normalized plain decimal greater than zero."""
    for row in rows:
        for column in PRICE_COLUMNS:
            text = row[column]
            value = Decimal(text)
            assert value > 0, (row["model"], column, text)
            assert text == format(value.normalize(), "f"), (row["model"], column)


def test_batch_is_exactly_half_of_standard(rows: list[dict[str, str]]) -> None:
    """Each batch column is exactly 50% of its standard column."""
    for row in rows:
        for standard, batch in BATCH_OF.items():
            assert Decimal(row[batch]) * 2 == Decimal(row[standard]), (
                row["model"],
                batch,
            )


def test_cached_input_not_above_input(rows: list[dict[str, str]]) -> None:
    """Cached input never costs more than uncached input."""
    for row in rows:
        assert Decimal(row["cached_input"]) <= Decimal(row["input"]), row["model"]


def test_required_families_present(rows: list[dict[str, str]]) -> None:
    """The core models and at least one gpt-5 model have a row."""
    models = {row["model"] for row in rows}
    assert set(REQUIRED) <= models
    assert any(model.startswith("gpt-5") for model in models)


def test_seed_models_present(gen_pricing: ModuleType, rows: list[dict[str, str]]) -> None:
    """Every model of the seed project's docs/pricing.csv has a row."""
    models = {row["model"] for row in rows}
    assert set(gen_pricing.SEED_MODELS) <= models


def test_only_base_model_ids(rows: list[dict[str, str]]) -> None:
    """No dated snapshot ids (YYYY-MM-DD suffix) appear as models."""
    for row in rows:
        assert not re.search(r"-\d{4}-\d{2}-\d{2}$", row["model"]), row["model"]


def test_check_mode_passes_on_committed_file(gen_pricing: ModuleType) -> None:
    """`gen_pricing.py --check` exits 0 for the committed file."""
    assert gen_pricing.main(["--check"]) == 0
