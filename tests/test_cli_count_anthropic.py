"""Claude input tokens before spending: exact, sampled or approximate, each labelled."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from batchgrader.money.pricing import PriceTable
from tests.anthropic_cli import MODEL, Invoke, texts, write_input
from tests.fakes.anthropic_api import FakeAnthropicAPI
from tests.fakes.anthropic_models import count_input_tokens


def _count(bg: Invoke, *args: object) -> dict[str, Any]:
    result = bg("count", *args, "--model", MODEL, "--json")
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _exact_total(bg: Invoke, isolated_env: Path, src: Path) -> int:
    """The fake's own count of every request a dry run writes (what it would bill)."""
    dry = bg("grade", src, "--model", MODEL, "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    total = 0
    for plan in json.loads(dry.stdout)["plans"]:
        for path in sorted(Path(plan["folder"]).glob("chunk-*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                total += count_input_tokens(json.loads(line)["params"])
    return total


def _budget_of_40(monkeypatch: pytest.MonkeyPatch) -> None:
    """A counting budget of 40 calls (60,000 a minute for 0.04 s)."""
    monkeypatch.setenv("BATCHGRADER_ANTHROPIC__COUNT_TOKENS_RPM", "60000")
    monkeypatch.setenv("BATCHGRADER_ANTHROPIC__COUNT_TOKENS_SECONDS", "0.04")


def test_exact_with_a_key(bg: Invoke, fake_anthropic: FakeAnthropicAPI, isolated_env: Path) -> None:
    """With a key every request is counted by count_tokens: the figure is exact."""
    src = write_input(isolated_env, texts(12))
    report = _count(bg, src)
    (file,) = report["files"]
    assert file["input_tokens_label"] == "exact"
    assert file["input_tokens"] == _exact_total(bg, isolated_env, src)
    assert file["input_figure"]["counted"] == 12
    assert report["encoding"] == "count_tokens (Anthropic)"
    assert fake_anthropic.request_count("count_tokens") == 12
    assert fake_anthropic.batches_created == 0


def test_identical_requests_are_counted_once(
    bg: Invoke, fake_anthropic: FakeAnthropicAPI, isolated_env: Path
) -> None:
    """Rows that make the same request cost one count_tokens call between them."""
    rows = texts(3) * 4
    src = write_input(isolated_env, rows)
    (file,) = _count(bg, src)["files"]
    assert file["input_tokens_label"] == "exact"
    assert fake_anthropic.request_count("count_tokens") == 3
    assert file["input_tokens"] == _exact_total(bg, isolated_env, src)


def test_big_file_is_sampled_with_an_interval(
    bg: Invoke,
    fake_anthropic: FakeAnthropicAPI,
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Over the counting budget a random sample is counted; the stated interval holds the
    exact total, and the worst case uses its upper bound."""
    _budget_of_40(monkeypatch)
    rows = [f"Review {i}: " + "good service and kind people " * (1 + i % 9) for i in range(300)]
    src = write_input(isolated_env, rows)
    (file,) = _count(bg, src)["files"]
    figure = file["input_figure"]
    assert figure["kind"] == "sampled"
    assert file["input_tokens_label"].startswith("sampled ±")
    assert figure["counted"] == 40
    assert fake_anthropic.request_count("count_tokens") <= 40
    exact = _exact_total(bg, isolated_env, src)
    assert figure["low"] <= exact <= figure["high"], (figure, exact)
    assert figure["error"] < 0.05
    again = _count(bg, src)["files"][0]
    assert again["input_tokens"] == file["input_tokens"]  # the same sample for the same file
    assert Decimal(file["cost"]["total_worst"]) > Decimal(file["cost"]["input"])


def test_without_a_key_the_figure_is_approximate(
    bg: Invoke, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offline the figure is approximate with its band, in the table and in --json."""
    src = write_input(isolated_env, texts(5))
    report = _count(bg, src)
    (file,) = report["files"]
    assert file["input_tokens_label"] == "approximate ±25.0%"
    figure = file["input_figure"]
    assert figure["low"] < file["input_tokens"] < figure["high"]
    table = bg("count", src, "--model", MODEL)
    assert table.exit_code == 0, table.output
    assert "approximate ±25.0%" in table.stdout
    assert "no requests are made" in table.stderr


def test_count_tokens_failure_falls_back_to_the_approximation(
    bg: Invoke, fake_anthropic: FakeAnthropicAPI, isolated_env: Path
) -> None:
    """count_tokens failing past its retries leaves the approximate figure and a warning."""
    src = write_input(isolated_env, texts(3))
    fake_anthropic.fail_next("count_tokens", "overloaded_error", times=50)
    result = bg("count", src, "--model", MODEL, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["files"][0]["input_tokens_label"].startswith("approximate")
    assert "Exact token counting failed" in result.stderr


def test_budget_uses_the_upper_bound(
    bg: Invoke,
    fake_anthropic: FakeAnthropicAPI,
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """--max-cost is checked against the worst case at the upper bound of a sampled
    figure: a cap between the central and the upper worst case refuses the run."""
    _budget_of_40(monkeypatch)
    rows = [f"Review {i}: " + "slow delivery but fair price " * (1 + i % 7) for i in range(120)]
    src = write_input(isolated_env, rows)
    (file,) = _count(bg, src)["files"]
    figure = file["input_figure"]
    assert figure["kind"] == "sampled"
    rate = PriceTable.load().resolve(MODEL).batch.input / Decimal(1_000_000)
    upper_worst = Decimal(file["cost"]["total_worst"])
    central_worst = upper_worst - (figure["high"] - figure["total"]) * rate
    cap = (central_worst + upper_worst) / 2
    refused = bg("grade", src, "--model", MODEL, "--max-cost", str(cap))
    assert refused.exit_code == 2, refused.output
    assert "upper bound" in refused.stderr
    assert fake_anthropic.batches_created == 0
    assert json.loads(bg("jobs", "list", "--all", "--json").stdout)["jobs"] == []
    allowed = bg("grade", src, "--model", MODEL, "--max-cost", str(upper_worst + rate * 1000))
    assert allowed.exit_code == 0, allowed.output
    assert fake_anthropic.batches_created == 1


def test_split_tokens_uses_the_claude_figures(
    bg: Invoke, fake_anthropic: FakeAnthropicAPI, isolated_env: Path
) -> None:
    """split --tokens cuts with the measured Claude figures; each part is within the limit."""
    rows = texts(20)
    src = write_input(isolated_env, rows)
    result = bg("split", src, "--tokens", "600", "--model", MODEL, "--json")
    assert result.exit_code == 0, result.output
    (file,) = json.loads(result.stdout)["files"]
    assert file["tokens_label"] == "exact"
    assert len(file["parts"]) > 1
    assert all(p["tokens"] <= 600 for p in file["parts"])
    assert sum(p["rows"] for p in file["parts"]) == 20
