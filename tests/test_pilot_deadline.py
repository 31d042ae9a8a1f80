"""The pilot before the batches, and the deadline after them (issue 18), against the fake."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from typer.testing import Result

from tests.fakes.batch_api import FakeBatchAPI
from tests.fakes.judge import judge_score

Invoke = Callable[..., Result]
USER = "Please evaluate the following text: "


def _texts(n: int, garbage: frozenset[int] = frozenset()) -> list[str]:
    return [
        f"Answer {i}: the tide turns twice a day." + (" [[garbage]]" if i in garbage else "")
        for i in range(n)
    ]


def _csv(folder: Path, texts: list[str]) -> Path:
    path = folder / "d.csv"
    pl.DataFrame({"id": list(range(len(texts))), "response": texts}).write_csv(path)
    return path


def _direct_texts(fake: FakeBatchAPI) -> Counter[str]:
    sent: Counter[str] = Counter()
    for call in fake.calls:
        if call.route == "chat" and isinstance(call.payload, dict):
            sent[call.payload["messages"][-1]["content"]] += 1
    return sent


def _batch_ids(fake: FakeBatchAPI) -> list[str]:
    """custom_ids of every request line uploaded for a batch."""
    ids = []
    for meta, data in fake.files.values():
        if meta["purpose"] == "batch":
            ids += [json.loads(line)["custom_id"] for line in data.decode().splitlines() if line]
    return ids


def test_pilot_passes_then_the_batch_sends_only_the_other_rows(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--pilot 10: ten sampled rows go direct, the batch holds the other rows, all scored."""
    monkeypatch.setenv("BATCHGRADER_RUN__DELETE_REMOTE_FILES", "false")  # to read them here
    texts = _texts(50)
    result = bg("grade", _csv(isolated_env, texts), "--pilot", "10", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)["files"][0]
    pilot = summary["pilot"]
    assert pilot["rows"] == 10 and pilot["parse_rate"] == 1.0 and pilot["passed"]
    assert set(pilot["output_tokens"]) >= {"mean", "p95", "max"}
    assert set(pilot["estimate"]) == {"expected_usd", "low_usd", "high_usd"}
    assert pilot["seconds"] > 0
    direct = _direct_texts(fake_api)
    assert sum(direct.values()) == 10 and set(direct.values()) == {1}
    batched = _batch_ids(fake_api)
    assert len(batched) == 40
    direct_rows = {texts.index(t.removeprefix(USER)) for t in direct}
    assert not direct_rows & {int(cid.removeprefix("row-")) for cid in batched}
    out = pl.read_csv(isolated_env / "output" / "d.graded.csv")
    assert out["llm_score"].to_list() == [judge_score(USER + t) for t in texts]


def test_pilot_re_estimates_from_measured_output_tokens(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """The re-estimate uses the measured output size, far under the max_tokens worst case."""
    result = bg("grade", _csv(isolated_env, _texts(40)), "--pilot", "8", "--json")
    assert result.exit_code == 0, result.output
    pilot = json.loads(result.stdout)["files"][0]["pilot"]
    tokens = pilot["output_tokens"]
    assert 0 < tokens["mean"] <= tokens["p95"] <= tokens["max"] < 512
    est = {k: Decimal(str(v)) for k, v in pilot["estimate"].items()}
    assert est["low_usd"] <= est["expected_usd"] <= est["high_usd"]
    count = bg("count", _csv(isolated_env, _texts(40)), "--json")
    worst = Decimal(str(json.loads(count.stdout)["files"][0]["cost"]["total_worst"]))
    assert est["high_usd"] < worst


def test_pilot_that_does_not_parse_stops_before_the_batch(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """A pilot whose answers mostly fail to parse: exit 2, no batch, the answers shown."""
    texts = _texts(30, garbage=frozenset(range(30)))
    result = bg("grade", _csv(isolated_env, texts), "--pilot", "5")
    assert result.exit_code == 2, result.output
    said = " ".join(result.stderr.split())
    assert "parsed 0% of the time" in said
    assert "I cannot decide" in said  # a failed answer, verbatim
    assert fake_api.batches_created == 0
    assert sum(_direct_texts(fake_api).values()) == 5


def test_pilot_rows_are_never_sent_again(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """Grading again after a run with a pilot sends nothing: the pilot's rows are the job's."""
    src = _csv(isolated_env, _texts(20))
    assert bg("grade", src, "--pilot", "4").exit_code == 0
    calls = len(fake_api.calls)
    again = bg("grade", src, "--pilot", "4")
    assert again.exit_code == 0, again.output
    assert [c.route for c in fake_api.calls[calls:]] == []


def test_deadline_switch_cancels_keeps_and_finishes_directly(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """Batches that cannot finish in time: cancelled, finished rows kept, the rest direct."""
    fake_api.polls_per_state = 10_000  # the batches crawl
    fake_api.cancel_polls = 0  # a cancel is answered at once
    texts = _texts(12)
    result = bg("grade", _csv(isolated_env, texts), "--deadline", "60s")
    assert result.exit_code == 0, result.output
    said = " ".join(result.stderr.split())
    assert "finishing those rows directly" in said
    summary = " ".join(result.stdout.split())
    assert "0 rows by batch, 12 finished directly for $" in summary
    assert "waiting for the batch would have cost" in summary
    out = pl.read_csv(isolated_env / "output" / "d.graded.csv")
    assert out["llm_score"].to_list() == [judge_score(USER + t) for t in texts]
    assert fake_api.request_count("cancel") >= 1
    direct = _direct_texts(fake_api)
    assert set(direct.values()) == {1} and len(direct) == len(texts)


def test_deadline_switch_over_the_budget_is_refused(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """A switch that would pass --max-cost is refused: exit 1, nothing sent directly."""
    fake_api.polls_per_state = 10_000
    fake_api.cancel_polls = 0
    src = _csv(isolated_env, _texts(12))
    result = bg("grade", src, "--deadline", "60s", "--max-cost", "0.0001", "--yes")
    assert result.exit_code == 1, result.output
    said = " ".join(result.stderr.split())
    assert "switch to direct mode was refused" in said and "jobs resume" in said
    assert sum(_direct_texts(fake_api).values()) == 0


def test_deadline_met_by_the_batches_switches_nothing(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """Batches that finish in time: no cancel, no direct request."""
    result = bg("grade", _csv(isolated_env, _texts(12)), "--deadline", "1d")
    assert result.exit_code == 0, result.output
    assert fake_api.request_count("cancel") == 0
    assert fake_api.request_count("chat") == 0


def test_count_and_dry_run_take_a_pilot_that_grade_then_reuses(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """count --pilot and --dry-run --pilot measure the answers; grade does not pay again."""
    src = _csv(isolated_env, _texts(30))
    counted = bg("count", src, "--pilot", "6", "--json")
    assert counted.exit_code == 0, counted.output
    data = json.loads(counted.stdout)
    assert data["files"][0]["requests"] == 30
    (pilot,) = data["pilot"]
    assert pilot["rows"] == 6 and pilot["parse_rate"] == 1.0
    dry = bg("grade", src, "--dry-run", "--pilot", "6", "--json")
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["pilot"][0]["rows"] == 6
    assert sum(_direct_texts(fake_api).values()) == 6  # the same job's pilot, run once
    graded = bg("grade", src, "--pilot", "6")
    assert graded.exit_code == 0, graded.output
    assert sum(_direct_texts(fake_api).values()) == 6
    assert fake_api.batches_created == 1


def test_count_with_a_pilot_needs_a_key(bg: Invoke, isolated_env: Path) -> None:
    """count --pilot without an API key: exit 2, saying a key is needed; no pilot run."""
    result = bg("count", _csv(isolated_env, _texts(5)), "--pilot", "2")
    assert result.exit_code == 2, result.output
    assert "API key" in result.stderr
