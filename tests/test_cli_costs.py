"""``costs`` and the budgets of ``grade``, end to end against the fake Batch API."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import Result

from batchgrader import paths
from batchgrader.cli import _run
from batchgrader.ledger.store import Ledger
from batchgrader.masking import mask
from batchgrader.money.pricing import PriceTable
from tests.conftest import FAKE_KEY
from tests.fakes.batch_api import FakeBatchAPI
from tests.test_costs import usage_event

Invoke = Callable[..., Result]
MODEL = "gpt-4.1-mini"


def write_input(folder: Path, rows: int, name: str = "answers.csv") -> Path:
    """A CSV of ``rows`` distinct answers to grade."""
    texts = [f"Answer {i}: water boils at {90 + i} degrees at this altitude." for i in range(rows)]
    path = folder / name
    pl.DataFrame({"id": list(range(rows)), "response": texts}).write_csv(path)
    return path


def ok(result: Result) -> Result:
    """Assert exit 0, showing the output otherwise."""
    assert result.exit_code == 0, result.output
    return result


def costs_json(bg: Invoke, *args: object) -> dict[str, Any]:
    """``costs --json``: stdout is JSON alone."""
    result = ok(bg("costs", "--json", *args))
    data: dict[str, Any] = json.loads(result.stdout, parse_float=Decimal)  # money is exact
    return data


def fake_usage(fake: FakeBatchAPI) -> dict[str, int]:
    """The sum of the fake's batch-level usage objects."""
    total = {"input": 0, "cached": 0, "output": 0, "total": 0}
    for batch in fake.batches.values():
        usage = batch["usage"]
        total["input"] += usage["input_tokens"]
        total["cached"] += usage["input_tokens_details"]["cached_tokens"]
        total["output"] += usage["output_tokens"]
        total["total"] += usage["total_tokens"]
    return total


def hand_cost(usage: dict[str, int]) -> Decimal:
    """Batch API dollars of ``usage``, cached input at its own rate, from pricing.csv."""
    rates = PriceTable.load().resolve(MODEL).batch
    return (
        (usage["input"] - usage["cached"]) * rates.input
        + usage["cached"] * rates.cached_input
        + usage["output"] * rates.output
    ) / Decimal(1_000_000)


def ledger_path(home: Path) -> Path:
    """The ledger of this test's BATCHGRADER_HOME."""
    return paths.ledger_db(home / "data")


class TestEmpty:
    """No usage yet."""

    def test_friendly_message_and_no_ledger_created(self, bg: Invoke, home: Path) -> None:
        """A fresh install says so, exits 0, and does not create a ledger to read it."""
        result = ok(bg("costs"))
        assert "No usage recorded yet." in result.stdout
        assert not ledger_path(home).exists()

    def test_json_is_still_a_report(self, bg: Invoke) -> None:
        """--json gives the zero figures, for scripts."""
        data = costs_json(bg, "--by", "day")
        assert data["recorded_events"] == 0
        assert data["windows"][0]["spent"]["cost_usd"] == 0
        assert data["groups"] == []


class TestAfterGrade:
    """A real ``grade`` against the fake, then ``costs``."""

    @pytest.fixture
    def graded(
        self, bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
    ) -> tuple[Path, dict[str, int]]:
        """Ten rows in three batches with cached input; returns (input, the fake's usage)."""
        fake_api.cached_tokens_per_request = 7
        (isolated_env / "batchgrader.toml").write_text(
            "[chunking]\nsplit_row_limit = 4\n", encoding="utf-8"
        )
        src = write_input(isolated_env, 10)
        ok(bg("grade", src))
        assert fake_api.batches_created == 3
        return src, fake_usage(fake_api)

    def test_events_match_the_fake_usage(
        self, graded: tuple[Path, dict[str, int]], home: Path, fake_api: FakeBatchAPI
    ) -> None:
        """One spent event per batch with the provider's usage and cached input priced apart."""
        ledger = Ledger.open(ledger_path(home))
        events = ledger.usage_events()
        ledger.close()
        assert sorted(e.batch_id for e in events) == sorted(fake_api.batches)
        assert not any(e.committed for e in events)
        for e in events:
            usage = fake_api.batches[e.batch_id]["usage"]
            figures = {
                "input": usage["input_tokens"],
                "cached": usage["input_tokens_details"]["cached_tokens"],
                "output": usage["output_tokens"],
                "total": usage["total_tokens"],
            }
            assert (e.input_tokens, e.cached_input_tokens, e.output_tokens, e.total_tokens) == (
                figures["input"],
                figures["cached"],
                figures["output"],
                figures["total"],
            )
            assert figures["cached"] > 0
            assert e.cost == hand_cost(figures)
            assert e.model == MODEL and e.api_key_prefix == mask(FAKE_KEY)

    def test_json_totals_equal_the_fake_usage(
        self, bg: Invoke, graded: tuple[Path, dict[str, int]]
    ) -> None:
        """All time and today equal the sum of the fake's usage; dollars exact strings."""
        src, usage = graded
        data = costs_json(bg)
        for window in data["windows"]:
            spent = window["spent"]
            assert spent["batches"] == 3
            assert spent["input_tokens"] == usage["input"]
            assert spent["cached_input_tokens"] == usage["cached"]
            assert spent["output_tokens"] == usage["output"]
            assert spent["total_tokens"] == usage["total"]
            assert Decimal(spent["cost_usd"]) == hand_cost(usage)
            assert isinstance(spent["cost_usd"], Decimal)  # a JSON number, digit for digit
            assert window["committed"]["batches"] == 0
        assert [g["key"] for g in data["groups"]] == [MODEL]
        files = costs_json(bg, "--by", "file")["groups"]
        assert [g["key"] for g in files] == [str(src.resolve())]
        assert costs_json(bg, "--model", "gpt-4o")["windows"][0]["spent"]["batches"] == 0

    def test_table_and_day_bars(self, bg: Invoke, graded: tuple[Path, dict[str, int]]) -> None:
        """The default view shows the three windows and the model; --by day draws a bar."""
        table = ok(bg("costs")).stdout
        for label in ("all time", "today", "last 7 days", MODEL, "in-flight"):
            assert label in table
        days = ok(bg("costs", "--by", "day", "--since", "3d")).stdout
        today = datetime.now(UTC).date().isoformat()
        line = next(li for li in days.splitlines() if today in li)
        assert "█" * 20 in line
        assert "last 3d" in days

    def test_csv(self, bg: Invoke, graded: tuple[Path, dict[str, int]]) -> None:
        """--csv: exact figures, one row per window and group."""
        _, usage = graded
        rows = list(csv.DictReader(io.StringIO(ok(bg("costs", "--csv")).stdout)))
        assert [(r["section"], r["key"]) for r in rows] == [
            ("window", "all time"),
            ("window", "today"),
            ("window", "last 7 days"),
            ("model", MODEL),
        ]
        assert int(rows[0]["total_tokens"]) == usage["total"]
        assert Decimal(rows[0]["cost_usd"]) == hand_cost(usage)

    def test_export_and_no_secret_anywhere(
        self,
        bg: Invoke,
        graded: tuple[Path, dict[str, int]],
        home: Path,
        isolated_env: Path,
        fake_api: FakeBatchAPI,
    ) -> None:
        """The export has one seed-shaped line per batch; the key is in no ledger file."""
        target = isolated_env / "usage.jsonl"
        result = ok(bg("costs", "--export", target))
        assert "Wrote 3 usage events" in result.stdout
        lines = target.read_text(encoding="utf-8").splitlines()
        records = [json.loads(line, parse_float=Decimal) for line in lines]
        assert sorted(r["request_id"] for r in records) == sorted(fake_api.batches)
        assert {r["api_key_prefix"] for r in records} == {mask(FAKE_KEY)}
        assert sum(r["total_tokens"] for r in records) == graded[1]["total"]
        assert sum(r["cost"] for r in records) == hand_cost(graded[1])
        again = bg("costs", "--export", target)
        assert again.exit_code == 2 and "exists" in again.stderr
        secret_part = FAKE_KEY[3:-4]
        for path in [target, *ledger_path(home).parent.glob("ledger.sqlite3*")]:
            data = path.read_bytes()
            assert FAKE_KEY.encode() not in data and secret_part.encode() not in data, path


def test_resume_counts_each_batch_once(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """--detach commits an estimate; collecting replaces it; later runs add nothing."""
    src = write_input(isolated_env, 6)
    ok(bg("grade", src, "--detach"))
    in_flight = costs_json(bg)["windows"][0]
    assert in_flight["committed"]["batches"] == 1
    assert in_flight["spent"]["batches"] == 0
    assert int(in_flight["committed"]["output_tokens"]) == 6 * 512  # worst case
    ok(bg("grade", src))
    ok(bg("grade", src))
    every = costs_json(bg)["windows"][0]
    assert every["committed"]["batches"] == 0
    assert every["spent"]["batches"] == 1
    assert every["spent"]["total_tokens"] == fake_usage(fake_api)["total"]
    assert fake_api.batches_created == 1


class TestBadFlags:
    """Usage errors exit 2 with a clear message."""

    def test_bad_since(self, bg: Invoke) -> None:
        """An unreadable --since names the flag and the accepted forms."""
        result = bg("costs", "--since", "last tuesday")
        assert result.exit_code == 2
        assert "--since" in result.stderr and "7d" in result.stderr

    def test_json_and_csv(self, bg: Invoke) -> None:
        """--json and --csv are alternatives."""
        assert bg("costs", "--json", "--csv").exit_code == 2

    def test_unknown_group(self, bg: Invoke) -> None:
        """--by accepts model, day, file or job."""
        assert bg("costs", "--by", "week").exit_code == 2


class TestBudgets:
    """Budgets refuse before anything is submitted, unless --yes."""

    def test_daily_token_limit(
        self,
        bg: Invoke,
        fake_api: FakeBatchAPI,
        isolated_env: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Over the daily limit: exit 2 with the figures and nothing submitted; --yes runs."""
        monkeypatch.setenv("BATCHGRADER_BUDGET__DAILY_TOKEN_LIMIT", "50")
        src = write_input(isolated_env, 5)
        refused = bg("grade", src)
        assert refused.exit_code == 2, refused.output
        assert "daily_token_limit" in refused.stderr and "--yes" in refused.stderr
        assert fake_api.batches_created == 0
        ok(bg("grade", src, "--yes"))
        assert fake_api.batches_created == 1
        # the job is graded: running it again adds nothing new, so nothing is refused
        ok(bg("grade", src))
        assert fake_api.batches_created == 1

    def test_max_cost_flag(self, bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path) -> None:
        """--max-cost below the worst case refuses (exit 2, JSON envelope); --yes runs."""
        src = write_input(isolated_env, 5)
        refused = bg("grade", src, "--max-cost", "0.00001", "--json")
        assert refused.exit_code == 2
        assert json.loads(refused.stdout)["error"]["code"] == "budget"
        assert fake_api.batches_created == 0
        ok(bg("grade", src, "--max-cost", "$100"))
        assert fake_api.batches_created == 1

    def test_max_cost_must_be_money(self, bg: Invoke, isolated_env: Path) -> None:
        """A --max-cost that is not an amount is a usage error."""
        src = write_input(isolated_env, 2)
        result = bg("grade", src, "--max-cost", "lots")
        assert result.exit_code == 2 and "budget.max_cost_usd" in result.stderr

    def test_monthly_budget_counts_the_ledger(
        self,
        bg: Invoke,
        fake_api: FakeBatchAPI,
        isolated_env: Path,
        home: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """This month's spend plus the run's worst case over the budget: refused."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        ledger = Ledger.open(ledger_path(home))
        ledger.record_usage(usage_event("earlier", now, model=MODEL, cost="9.99999"))
        ledger.close()
        monkeypatch.setenv("BATCHGRADER_BUDGET__MONTHLY_BUDGET_USD", "10")
        refused = bg("grade", write_input(isolated_env, 5))
        assert refused.exit_code == 2
        assert "monthly_budget_usd" in refused.stderr and "$9.99999" in refused.stderr
        assert fake_api.batches_created == 0

    def test_confirmation_needs_a_terminal(
        self,
        bg: Invoke,
        fake_api: FakeBatchAPI,
        isolated_env: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Above confirm_above_usd: not interactive refuses, a "no" refuses, a "yes" runs."""
        monkeypatch.setenv("BATCHGRADER_BUDGET__CONFIRM_ABOVE_USD", "0")
        src = write_input(isolated_env, 5)
        refused = bg("grade", src)
        assert refused.exit_code == 2 and "interactive" in refused.stderr
        monkeypatch.setattr(_run, "_interactive", lambda: True)
        declined = bg("grade", src, input="n\n")
        assert declined.exit_code == 2 and "Not confirmed" in declined.stderr
        assert fake_api.batches_created == 0
        ok(bg("grade", src, input="y\n"))
        assert fake_api.batches_created == 1


def test_resume_checks_the_budget_of_what_it_would_submit(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """jobs resume submits queued chunks only within the budget, or with --yes."""
    monkeypatch.setenv("BATCHGRADER_CHUNKING__SPLIT_ROW_LIMIT", "2")
    monkeypatch.setenv("BATCHGRADER_RUN__MAX_SIMULTANEOUS_BATCHES", "1")
    src = write_input(isolated_env, 6)
    ok(bg("grade", src, "--detach"))
    assert fake_api.batches_created == 1  # two chunks still queued
    listed = json.loads(ok(bg("jobs", "list", "--all", "--json")).stdout)
    job_id = listed["jobs"][0]["id"]

    monkeypatch.setenv("BATCHGRADER_BUDGET__MAX_COST_USD", "0.0000001")
    refused = bg("jobs", "resume", job_id)
    assert refused.exit_code == 2, refused.output
    assert "max_cost_usd" in refused.stderr and "--yes" in refused.stderr
    assert fake_api.batches_created == 1
    ok(bg("jobs", "resume", job_id, "--yes"))
    assert fake_api.batches_created == 3
    assert (isolated_env / "output" / "answers.graded.csv").exists()
