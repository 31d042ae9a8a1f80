"""Checks on the committed pricing.csv and models.csv and the script that generates them."""

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
MODELS_CSV = ROOT / "models.csv"
SCRIPT = ROOT / "scripts" / "gen_pricing.py"

COLUMNS = [
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
]
MODEL_COLUMNS = [
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
]
PRICE_COLUMNS = COLUMNS[2:]
BATCH_OF = {
    "input": "batch_input",
    "cached_input": "batch_cached_input",
    "cache_write": "batch_cache_write",
    "output": "batch_output",
}
REQUIRED = ["gpt-4.1-mini", "gpt-4o-mini", "gpt-4o", "o3", "o4-mini"]
CLAUDE_REQUIRED = [
    "claude-haiku-4-5",
    "claude-sonnet-4-5",
    "claude-opus-4-5",
    "claude-sonnet-4-6",
    "claude-opus-4-6",
    "claude-3-5-haiku",
    "claude-3-haiku",
]


@pytest.fixture(scope="module")
def gen_pricing() -> ModuleType:
    """Load scripts/gen_pricing.py (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location("gen_pricing", SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _read(path: Path) -> str:
    return path.read_bytes().decode()


@pytest.fixture(scope="module")
def committed_text() -> str:
    """Raw text of the committed pricing.csv."""
    return _read(PRICING_CSV)


@pytest.fixture(scope="module")
def rows(committed_text: str) -> list[dict[str, str]]:
    """Rows of the committed pricing.csv."""
    return list(csv.DictReader(io.StringIO(committed_text)))


@pytest.fixture(scope="module")
def model_rows() -> list[dict[str, str]]:
    """Rows of the committed models.csv."""
    return list(csv.DictReader(io.StringIO(_read(MODELS_CSV))))


def test_committed_csv_matches_generated(gen_pricing: ModuleType, committed_text: str) -> None:
    """pricing.csv equals what scripts/gen_pricing.py builds from genai-prices."""
    assert committed_text == gen_pricing.render_csv(gen_pricing.build_rows())


def test_committed_models_csv_matches_generated(gen_pricing: ModuleType) -> None:
    """models.csv equals what scripts/gen_pricing.py builds."""
    expected = gen_pricing.render_csv(
        gen_pricing.build_catalogue(), gen_pricing.facts.CATALOGUE_COLUMNS
    )
    assert _read(MODELS_CSV) == expected


@pytest.mark.parametrize("name", ["pricing.csv", "models.csv"])
def test_packaged_symlink_points_at_top_level_csv(name: str) -> None:
    """batchgrader/<name> resolves to the top-level file."""
    assert (ROOT / "batchgrader" / name).resolve() == (ROOT / name).resolve()


@pytest.mark.parametrize(("path", "columns"), [(PRICING_CSV, COLUMNS), (MODELS_CSV, MODEL_COLUMNS)])
def test_layout(path: Path, columns: list[str]) -> None:
    """Exact header, LF line ends, one trailing newline, unique sorted models."""
    text = _read(path)
    assert text.splitlines()[0] == ",".join(columns)
    assert "\r" not in text
    assert text.endswith("\n")
    assert not text.endswith("\n\n")
    models = [row["model"] for row in csv.DictReader(io.StringIO(text))]
    assert models == sorted(set(models))


def test_files_agree(rows: list[dict[str, str]], model_rows: list[dict[str, str]]) -> None:
    """models.csv has one row per priced model, with the same provider."""
    assert [(r["model"], r["provider"]) for r in rows] == [
        (r["model"], r["provider"]) for r in model_rows
    ]


def test_prices_are_plain_positive_decimals(rows: list[dict[str, str]]) -> None:
    """Every price is a normalized plain decimal greater than zero."""
    for row in rows:
        for column in PRICE_COLUMNS:
            text = row[column]
            value = Decimal(text)
            assert value > 0, (row["model"], column, text)
            assert text == format(value.normalize(), "f"), (row["model"], column)


def test_batch_is_exactly_half_of_standard(rows: list[dict[str, str]]) -> None:
    """Each batch column is exactly 50% of its standard column (OpenAI and Claude)."""
    for row in rows:
        for standard, batch in BATCH_OF.items():
            assert Decimal(row[batch]) * 2 == Decimal(row[standard]), (row["model"], batch)


def test_cached_input_not_above_input(rows: list[dict[str, str]]) -> None:
    """Cached input never costs more than uncached input."""
    for row in rows:
        assert Decimal(row["cached_input"]) <= Decimal(row["input"]), row["model"]


def test_cache_write(rows: list[dict[str, str]]) -> None:
    """Claude writes cost a premium (1.25x input; 1.2x on Haiku 3); OpenAI writes cost
    the input price, or 1.25x where genai-prices lists a write price (gpt-5.6+)."""
    for row in rows:
        ratio = Decimal(row["cache_write"]) / Decimal(row["input"])
        if row["provider"] == "anthropic":
            assert ratio == (
                Decimal("1.2") if row["model"] == "claude-3-haiku" else Decimal("1.25")
            )
        else:
            assert ratio in (1, Decimal("1.25")), row["model"]
    by_model = {row["model"]: row for row in rows}
    assert by_model["gpt-4o"]["cache_write"] == by_model["gpt-4o"]["input"]


def test_claude_rows(rows: list[dict[str, str]]) -> None:
    """Current Claude models are priced, with Anthropic's Batch discount of 50%."""
    claude = {row["model"]: row for row in rows if row["provider"] == "anthropic"}
    assert set(CLAUDE_REQUIRED) <= set(claude)
    assert all(name.startswith("claude-") for name in claude)
    assert not {"claude-2", "claude-v1", "claude-instant"} & set(claude)
    haiku = claude["claude-haiku-4-5"]
    assert [haiku[c] for c in PRICE_COLUMNS] == [
        "1",
        "0.1",
        "1.25",
        "5",
        "0.5",
        "0.05",
        "0.625",
        "2.5",
    ]
    assert claude["claude-sonnet-4-5"]["batch_output"] == "7.5"  # base tier of the tiers
    assert claude["claude-3-haiku"]["batch_input"] == "0.125"


def test_claude_batch_origins(gen_pricing: ModuleType) -> None:
    """Batch variants are used where genai-prices has them, the 50% rule elsewhere."""
    origins = gen_pricing.batch_origins()
    assert origins["claude-sonnet-4-5"] == "batch variant"
    assert origins["claude-3-5-haiku"] == "50% rule"
    assert all(origins[name] == "50% rule" for name in origins if name.startswith(("gpt", "o")))


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
    """No dated snapshot ids (YYYY-MM-DD or YYYYMMDD suffix) or -latest appear as models."""
    for row in rows:
        assert not re.search(r"-(\d{4}-\d{2}-\d{2}|\d{8}|latest)$", row["model"]), row["model"]


def test_kept_table_entries_have_sources(gen_pricing: ModuleType) -> None:
    """Every kept entry names its public source page, and covers exactly the priced models."""
    kept = gen_pricing.facts.KEPT
    assert set(kept) == {row["model"] for row in gen_pricing.build_rows()}
    for name, entry in kept.items():
        assert entry.source.startswith("https://"), name


def test_model_rows_are_well_formed(model_rows: list[dict[str, str]]) -> None:
    """Values are in their vocabularies; numbers are plain integers."""
    for row in model_rows:
        name = row["model"]
        assert row["provider"] in ("openai", "anthropic"), name
        assert row["structured_output"] in ("json_schema", "tool", "none"), name
        for flag in ("reasoning", "system_message", "temperature", "flex"):
            assert row[flag] in ("true", "false"), (name, flag)
        assert int(row["context_window"]) >= int(row["max_output"]) > 0, name
        endpoints = set(row["endpoints"].split(";"))
        if row["provider"] == "openai":
            assert endpoints <= {"chat", "responses"}, name
            assert row["encoding"] in ("o200k_base", "cl100k_base"), name
            assert row["cache_min_tokens"] == "", name
        else:
            assert endpoints == {"messages"}, name
            assert row["encoding"] == "", name
            assert int(row["cache_min_tokens"]) in (512, 1024, 2048, 4096), name
            assert row["flex"] == "false", name


def test_check_mode_passes_on_committed_file(gen_pricing: ModuleType) -> None:
    """`gen_pricing.py --check` exits 0 for the committed files."""
    assert gen_pricing.main(["--check"]) == 0
