"""``grade`` with Claude: Anthropic's Message Batches over real HTTP, the real SDK."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from tests.anthropic_cli import (
    MODEL,
    USER,
    Invoke,
    assert_scores,
    created_requests,
    graded,
    job_id,
    scores,
    summary,
    texts,
    write_input,
)
from tests.conftest import FAKE_ANTHROPIC_KEY
from tests.fakes.anthropic_api import FakeAnthropicAPI
from tests.fakes.judge import judge_score
from tests.helpers import write_prompt


def _usage_events(home: Path) -> list[dict[str, object]]:
    with sqlite3.connect(home / "data" / "ledger.sqlite3") as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM usage_events ORDER BY timestamp").fetchall()
    return [dict(r) for r in rows]


def test_claude_model_runs_through_message_batches(
    bg: Invoke, fake_anthropic: FakeAnthropicAPI, isolated_env: Path, home: Path
) -> None:
    """--model claude-... picks Anthropic: one batch, the judge's scores, a provider ledger."""
    rows = texts(7)
    src = write_input(isolated_env, rows)
    result = bg("grade", src, "--model", MODEL)
    assert result.exit_code == 0, result.output
    assert_scores(graded(isolated_env), rows)
    assert fake_anthropic.batches_created == 1
    (requests,) = created_requests(fake_anthropic)
    assert [r["custom_id"] for r in requests] == [f"row-{i:06d}" for i in range(7)]
    params = requests[0]["params"]
    assert params["messages"] == [{"role": "user", "content": USER + rows[0]}]
    assert isinstance(params["system"], str) and params["max_tokens"] > 0
    assert "output_config" in params and "temperature" not in params
    (event,) = _usage_events(home)
    assert event["provider"] == "anthropic"
    assert event["committed"] == 0
    assert event["model"] == MODEL
    assert event["base_url_host"] == "127.0.0.1"
    assert str(event["api_key_prefix"]).startswith("sk-") and FAKE_ANTHROPIC_KEY not in str(event)
    assert fake_anthropic.request_count("delete") == 1  # run.delete_remote_files


def test_explicit_provider_and_endpoint(
    bg: Invoke, fake_anthropic: FakeAnthropicAPI, isolated_env: Path
) -> None:
    """--provider anthropic is honoured; an OpenAI endpoint with it is a usage error."""
    src = write_input(isolated_env, texts(2))
    refused = bg("grade", src, "--model", MODEL, "--endpoint", "/v1/responses")
    assert refused.exit_code == 2
    assert "Messages API" in refused.stderr
    assert fake_anthropic.calls == []
    chosen = bg("grade", src, "--model", MODEL, "--provider", "anthropic")
    assert chosen.exit_code == 0, chosen.output
    assert fake_anthropic.batches_created == 1


def test_temperature_is_not_sent(
    bg: Invoke,
    fake_anthropic: FakeAnthropicAPI,
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """request.temperature is dropped for Claude, and the user is told once."""
    monkeypatch.setenv("BATCHGRADER_REQUEST__TEMPERATURE", "0.2")
    rows = texts(3)
    src = write_input(isolated_env, rows)
    result = bg("grade", src, "--model", MODEL)
    assert result.exit_code == 0, result.output
    assert result.stderr.count("request.temperature is not sent") == 1
    (requests,) = created_requests(fake_anthropic)
    assert all("temperature" not in r["params"] for r in requests)
    assert_scores(graded(isolated_env), rows)


def test_forced_tool_model_gives_the_same_columns(
    bg: Invoke, fake_anthropic: FakeAnthropicAPI, isolated_env: Path
) -> None:
    """A tool-mode model (catalogue: tool) answers through a forced tool call: same scores."""
    rows = texts(4)
    src = write_input(isolated_env, rows)
    result = bg("grade", src, "--model", "claude-sonnet-4-0")
    assert result.exit_code == 0, result.output
    assert_scores(graded(isolated_env), rows)
    (requests,) = created_requests(fake_anthropic)
    assert requests[0]["params"]["tool_choice"] == {"type": "tool", "name": "grade"}


def test_schema_fields_become_columns(
    bg: Invoke, fake_anthropic: FakeAnthropicAPI, isolated_env: Path
) -> None:
    """--schema with structured output: every field becomes a column, as on OpenAI."""
    schema = {
        "type": "object",
        "properties": {
            "score": {"type": "integer", "minimum": 1, "maximum": 5},
            "label": {"type": "string", "enum": ["bad", "ok", "good"]},
        },
        "required": ["score", "label"],
    }
    path = isolated_env / "schema.json"
    path.write_text(json.dumps(schema))
    rows = texts(3)
    src = write_input(isolated_env, rows)
    result = bg("grade", src, "--model", MODEL, "--schema", path)
    assert result.exit_code == 0, result.output
    out = graded(isolated_env)
    assert out["llm_score"].to_list() == scores(rows)
    assert out["llm_label"].to_list() == [
        ["bad", "ok", "good"][judge_score(USER + t) % 3] for t in rows
    ]


def test_long_system_prompt_is_cached(
    bg: Invoke, fake_anthropic: FakeAnthropicAPI, isolated_env: Path, home: Path
) -> None:
    """A long shared system prompt gets one cache breakpoint; the ledger keeps the cache
    writes and reads apart, and the cost uses their rates."""
    prompt = write_prompt(
        isolated_env / "long.toml",
        system="Grade with care. Consider every rule below.\n" + "Rule: be fair. " * 1500,
        user="Please evaluate the following text: {text}",
    )
    rows = texts(5)
    src = write_input(isolated_env, rows)
    result = bg("grade", src, "--model", MODEL, "--prompt", prompt)
    assert result.exit_code == 0, result.output
    assert_scores(graded(isolated_env), rows)
    (requests,) = created_requests(fake_anthropic)
    systems = [r["params"]["system"] for r in requests]
    assert all(s == systems[0] for s in systems)
    assert systems[0][0]["cache_control"] == {"type": "ephemeral"}
    (event,) = _usage_events(home)
    writes, reads = int(str(event["cache_write_tokens"])), int(str(event["cached_input_tokens"]))
    assert writes > 0 and reads == 4 * writes  # the first row writes, the four others read
    costs = bg("costs", "--json")
    spent = json.loads(costs.stdout)["windows"][0]["spent"]
    assert (spent["cache_write_tokens"], spent["cached_input_tokens"]) == (writes, reads)


def test_errored_rows_are_failures_and_retried(
    bg: Invoke, fake_anthropic: FakeAnthropicAPI, isolated_env: Path
) -> None:
    """errored rows carry their error type; --retry-failed resends only them."""
    rows = texts(6)
    src = write_input(isolated_env, rows)
    fake_anthropic.next_batch(errored=2, error_type="overloaded_error")
    first = bg("grade", src, "--model", MODEL)
    assert first.exit_code == 1, first.output
    errors = graded(isolated_env)["llm_error"].to_list()
    assert all(e.startswith("overloaded_error") for e in errors[:2]), errors
    assert errors[2:] == [None] * 4
    retried = bg("grade", src, "--model", MODEL, "--retry-failed")
    assert retried.exit_code == 0, retried.output
    assert_scores(graded(isolated_env), rows)
    second = created_requests(fake_anthropic)[-1]
    assert [r["custom_id"] for r in second] == ["row-000000", "row-000001"]


def test_invalid_request_rows_are_permanent(
    bg: Invoke, fake_anthropic: FakeAnthropicAPI, isolated_env: Path
) -> None:
    """An invalid_request_error row is not resent by --retry-failed (a retry cannot fix it)."""
    rows = texts(3)
    src = write_input(isolated_env, rows)
    fake_anthropic.fail_requests["row-000001"] = "invalid_request_error"
    assert bg("grade", src, "--model", MODEL).exit_code == 1
    again = bg("grade", src, "--model", MODEL, "--retry-failed")
    assert "no failed rows to retry" in again.stderr
    assert fake_anthropic.batches_created == 1


def test_expired_rows_are_resubmitted(
    bg: Invoke, fake_anthropic: FakeAnthropicAPI, isolated_env: Path
) -> None:
    """A batch that expires with partial results: the expired rows alone are resubmitted."""
    rows = texts(8)
    src = write_input(isolated_env, rows)
    fake_anthropic.next_batch(outcome="expire", finished=3)
    result = bg("grade", src, "--model", MODEL)
    assert result.exit_code == 0, result.output
    assert_scores(graded(isolated_env), rows)
    assert fake_anthropic.batches_created == 2
    assert len(created_requests(fake_anthropic)[-1]) == 5


def test_expired_rows_are_marked_without_retries(
    bg: Invoke,
    fake_anthropic: FakeAnthropicAPI,
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With automatic retries off, expired rows are batch_expired and were not billed."""
    monkeypatch.setenv("BATCHGRADER_RUN__MAX_RETRIES_PER_ROW", "0")
    rows = texts(6)
    src = write_input(isolated_env, rows)
    fake_anthropic.next_batch(outcome="expire", finished=2)
    result = bg("grade", src, "--model", MODEL, "--json")
    assert result.exit_code == 1, result.output
    errors = graded(isolated_env)["llm_error"].to_list()
    assert errors[:2] == [None, None]
    assert all(e.startswith("batch_expired") for e in errors[2:])
    assert (summary(result)["graded"], summary(result)["failed"]) == (2, 4)


def test_cancel_keeps_partial_results_and_retry_resubmits(
    bg: Invoke, fake_anthropic: FakeAnthropicAPI, isolated_env: Path
) -> None:
    """jobs cancel mid-way: rows that ran are kept, the others are canceled (not billed);
    jobs retry resends exactly those."""
    rows = texts(6)
    src = write_input(isolated_env, rows)
    fake_anthropic.polls_per_state = 10**6  # the batch does not move on its own
    fake_anthropic.cancel_steps = 0
    fake_anthropic.next_batch(finished=2)
    assert bg("grade", src, "--model", MODEL, "--detach").exit_code == 0
    job = job_id(bg)
    cancelled = bg("jobs", "cancel", job)
    assert cancelled.exit_code == 0, cancelled.output
    assert fake_anthropic.request_count("cancel") == 1
    resumed = bg("jobs", "resume", job)
    assert resumed.exit_code == 1, resumed.output
    errors = graded(isolated_env)["llm_error"].to_list()
    assert errors[:2] == [None, None]
    assert all(e.startswith("batch_cancelled") for e in errors[2:]), errors
    fake_anthropic.polls_per_state = 1
    retried = bg("jobs", "retry", job)
    assert retried.exit_code == 0, retried.output
    assert_scores(graded(isolated_env), rows)
    assert [r["custom_id"] for r in created_requests(fake_anthropic)[-1]] == [
        f"row-{i:06d}" for i in range(2, 6)
    ]


def test_resumed_after_29_days_says_so(
    bg: Invoke, fake_anthropic: FakeAnthropicAPI, isolated_env: Path
) -> None:
    """A job resumed after its batch's results are gone (29 days) says so clearly."""
    src = write_input(isolated_env, texts(3))
    assert bg("grade", src, "--model", MODEL, "--detach").exit_code == 0
    (batch_id,) = fake_anthropic.batch_ids()
    fake_anthropic.run_to_completion(batch_id)
    fake_anthropic.age_batch(batch_id, 30)
    result = bg("jobs", "resume", job_id(bg))
    assert result.exit_code == 1, result.output
    assert "29 days" in result.stderr
    assert "Traceback" not in result.output
    assert fake_anthropic.batches_created == 1


def test_detach_board_and_jobs_show(
    bg: Invoke, fake_anthropic: FakeAnthropicAPI, isolated_env: Path
) -> None:
    """--detach submits; jobs show lists the message batch; resume collects it."""
    rows = texts(4)
    src = write_input(isolated_env, rows)
    submitted = bg("grade", src, "--model", MODEL, "--detach", "--json")
    assert submitted.exit_code == 0, submitted.output
    assert summary(submitted)["status"] == "submitted"
    job = job_id(bg)
    shown = json.loads(bg("jobs", "show", job, "--json").stdout)
    assert shown["job"]["provider"] == "anthropic"
    assert shown["chunks"][0]["batch_id"].startswith("msgbatch_")
    resumed = bg("jobs", "resume", job)
    assert resumed.exit_code == 0, resumed.output
    assert "in_progress" in resumed.stderr or "ended" in resumed.stderr
    assert_scores(graded(isolated_env), rows)
    assert fake_anthropic.batches_created == 1


def test_missing_key_stops_before_anything(
    bg: Invoke, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without ANTHROPIC_API_KEY grade stops at once (exit 2); a dry run needs no key."""
    src = write_input(isolated_env, texts(2))
    result = bg("grade", src, "--model", MODEL)
    assert result.exit_code == 2
    assert "ANTHROPIC_API_KEY" in result.stderr
    dry = bg("grade", src, "--model", MODEL, "--dry-run")
    assert dry.exit_code == 0, dry.output
    (folder,) = (isolated_env / "output").glob("dry-run-d-*")
    line = json.loads((folder / "chunk-0001.jsonl").read_text().splitlines()[0])
    assert set(line) == {"custom_id", "params"}
    assert "approximate" in dry.stdout


def test_config_show_lists_the_anthropic_key_masked(
    bg: Invoke, monkeypatch: pytest.MonkeyPatch
) -> None:
    """config show lists the Anthropic key and URL with their source, the key masked."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_ANTHROPIC_KEY)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9/")
    result = bg("config", "show", "--json")
    assert result.exit_code == 0, result.output
    rows = {r["key"]: r for r in json.loads(result.stdout)["settings"]}
    assert rows["anthropic.key"]["value"] == "sk-...qrst"
    assert rows["anthropic.key"]["source"] == "env"
    assert rows["anthropic.base_url"]["value"] == "http://127.0.0.1:9/"
    assert rows["request.provider"]["value"] == "auto"
    assert FAKE_ANTHROPIC_KEY not in result.output


def test_costs_by_provider(
    bg: Invoke,
    fake_anthropic: FakeAnthropicAPI,
    fake_api: object,
    isolated_env: Path,
) -> None:
    """costs --by provider splits OpenAI and Anthropic usage."""
    src = write_input(isolated_env, texts(3))
    assert bg("grade", src, "--model", MODEL).exit_code == 0
    other = write_input(isolated_env, texts(2, tag="b"), "e.csv")
    assert bg("grade", other).exit_code == 0
    result = bg("costs", "--by", "provider", "--json")
    assert result.exit_code == 0, result.output
    groups = {g["key"]: g for g in json.loads(result.stdout)["groups"]}
    assert set(groups) == {"anthropic", "openai"}
    assert groups["anthropic"]["spent"]["batches"] == 1


def test_key_never_leaks(
    bg: Invoke, fake_anthropic: FakeAnthropicAPI, isolated_env: Path, home: Path
) -> None:
    """The Anthropic key appears in no output, log, ledger or result file."""
    rows = texts(3)
    src = write_input(isolated_env, rows)
    fake_anthropic.api_keys = {"sk-ant-some-other-key-000000000000"}  # the fake refuses ours
    result = bg("--debug", "grade", src, "--model", MODEL)
    assert result.exit_code == 1, result.output
    assert "API key" in result.stderr
    fake_anthropic.api_keys = None
    assert bg("grade", src, "--model", MODEL).exit_code == 0
    for path in [*home.rglob("*"), *isolated_env.rglob("*")]:
        if path.is_file():
            assert FAKE_ANTHROPIC_KEY.encode() not in path.read_bytes(), path
    assert FAKE_ANTHROPIC_KEY not in result.output


def _two_chunks(folder: Path) -> None:
    (folder / "batchgrader.toml").write_text(
        "[chunking]\nsplit_row_limit = 3\n[run]\nmax_simultaneous_batches = 1\n"
    )


def test_failed_chunk_halts_the_rest(
    bg: Invoke, fake_anthropic: FakeAnthropicAPI, isolated_env: Path
) -> None:
    """A batch whose every row errored fails its chunk and halts the chunks not yet sent;
    --continue-on-failure sends them anyway."""
    rows = texts(6)
    src = write_input(isolated_env, rows)
    _two_chunks(isolated_env)
    fake_anthropic.next_batch(errored=3, error_type="api_error")
    halted = bg("grade", src, "--model", MODEL, "--json")
    assert halted.exit_code == 1, halted.output
    assert summary(halted)["chunks_failed"] >= 1
    assert fake_anthropic.batches_created == 1
    other = write_input(isolated_env, texts(6, tag="c"), "c.csv")
    fake_anthropic.next_batch(errored=3, error_type="api_error")
    both = bg("grade", other, "--model", MODEL, "--continue-on-failure", "--json")
    assert both.exit_code == 1, both.output
    assert fake_anthropic.batches_created == 3
    out = graded(isolated_env, "c.graded.csv")
    assert out["llm_score"].to_list()[3:] == scores(texts(6, tag="c"))[3:]


def test_jobs_clean_deletes_batches_left_at_anthropic(
    bg: Invoke,
    fake_anthropic: FakeAnthropicAPI,
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With run.delete_remote_files off the batch stays; jobs clean deletes it later."""
    monkeypatch.setenv("BATCHGRADER_RUN__DELETE_REMOTE_FILES", "false")
    src = write_input(isolated_env, texts(3))
    assert bg("grade", src, "--model", MODEL).exit_code == 0
    assert fake_anthropic.request_count("delete") == 0
    cleaned = bg("jobs", "clean", "--json")
    assert cleaned.exit_code == 0, cleaned.output
    assert fake_anthropic.request_count("delete") == 1
    assert fake_anthropic.batch_ids() == []
