"""Direct mode: the same durable jobs with bounded concurrent calls (no Batch API).

Every test drives the real CLI against the fake server's synchronous chat endpoint over
real HTTP (direct mode sends with plain httpx2, not the SDK: providers/http.py).
"""

from __future__ import annotations

import itertools
import json
import os
import shlex
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from typer.testing import Result

from batchgrader import paths
from batchgrader.cli._run import _where
from batchgrader.execution.answers import read_answers
from batchgrader.ledger.records import ChunkStatus
from batchgrader.ledger.store import Ledger
from batchgrader.providers.registry import provider_for
from batchgrader.settings.loading import load_settings
from tests.anthropic_cli import MODEL as ANTHROPIC_MODEL
from tests.anthropic_cli import assert_scores
from tests.anthropic_cli import texts as anthropic_texts
from tests.anthropic_cli import write_input as anthropic_input
from tests.conftest import FAKE_KEY
from tests.fakes.anthropic_api import FakeAnthropicAPI
from tests.fakes.batch_api import Call, FakeBatchAPI
from tests.fakes.judge import judge_score

Invoke = Callable[..., Result]
USER = "Please evaluate the following text: "


def _texts(n: int) -> list[str]:
    return [f"Answer {i}: the tide turns twice a day near the harbour." for i in range(n)]


def _csv(folder: Path, texts: list[str], name: str = "d.csv") -> Path:
    path = folder / name
    pl.DataFrame({"id": list(range(len(texts))), "response": texts}).write_csv(path)
    return path


def _out(folder: Path, name: str = "d.graded.csv") -> pl.DataFrame:
    return pl.read_csv(folder / "output" / name)


def _sent(fake: FakeBatchAPI) -> Counter[str]:
    """How many times each row's text was sent to the chat endpoint."""
    sent: Counter[str] = Counter()
    for call in fake.calls:
        if call.route == "chat" and isinstance(call.payload, dict):
            sent[call.payload["messages"][-1]["content"]] += 1
    return sent


def _ledger(home: Path) -> Ledger:
    return Ledger.open(paths.ledger_db(home / "data"))


def test_direct_mode_grades_every_row_within_the_concurrency(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path
) -> None:
    """--mode direct: every row scored once, never more requests at once than asked."""
    fake_api.chat_latency = 0.05
    texts = _texts(40)
    src = _csv(isolated_env, texts)
    result = bg("grade", src, "--mode", "direct", "--concurrency", "4", "--json")
    assert result.exit_code == 0, result.output
    out = _out(isolated_env)
    assert out["llm_score"].to_list() == [judge_score(USER + t) for t in texts]
    assert out["llm_error"].null_count() == len(texts)
    assert fake_api.max_chat_in_flight == 4
    assert set(_sent(fake_api).values()) == {1}
    assert fake_api.batches_created == 0 and fake_api.request_count("upload") == 0
    with _ledger(home) as ledger:
        events = ledger.usage_events()
    assert {e.executor for e in events} == {"direct"}
    assert {e.tier for e in events} == {"standard"}
    assert sum(e.requests_completed for e in events) == len(texts)
    assert all(not e.committed for e in events)  # no reservation left behind
    summary = json.loads(result.stdout)["files"][0]
    assert summary["graded"] == len(texts) and Decimal(summary["cost"]) > 0


def test_the_next_chunks_rows_are_sent_while_the_last_of_a_chunk_are_in_flight(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Chunks of 3 rows at 4 at once: every chunk's rows flow into the slots the chunk
    before leaves (4 in flight, not 3), over the same connections, and every chunk is
    finished with its own results."""
    monkeypatch.setenv("BATCHGRADER_CHUNKING__SPLIT_ROW_LIMIT", "3")
    fake_api.chat_latency = 0.2
    texts = _texts(12)
    result = bg("grade", _csv(isolated_env, texts), "--mode", "direct", "--concurrency", "4")
    assert result.exit_code == 0, result.output
    assert _out(isolated_env)["llm_score"].to_list() == [judge_score(USER + t) for t in texts]
    assert fake_api.max_chat_in_flight == 4
    assert fake_api.connections_opened <= 4
    assert set(_sent(fake_api).values()) == {1}
    with _ledger(home) as ledger:
        (job,) = ledger.jobs()
        chunks = ledger.chunks(job.id)
        events = ledger.usage_events()
    assert [(c.requests, c.status) for c in chunks] == [(3, ChunkStatus.DONE)] * 4
    assert sorted(e.requests_completed for e in events) == [3] * 4


@pytest.mark.parametrize("style", ["json", "detail", "text", "method"])
def test_auto_switches_to_direct_without_a_batch_api(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, style: str
) -> None:
    """--mode auto: a 404/405 on the files route (any body) switches to direct, saying so."""
    fake_api.no_batch_api = style
    texts = _texts(6)
    src = _csv(isolated_env, texts)
    result = bg("grade", src)
    assert result.exit_code == 0, result.output
    status = 405 if style == "method" else 404
    said = " ".join(result.stderr.split())
    assert f"{fake_api.base_url}: requests are being made." in said  # not "OpenAI"
    assert (
        f"{fake_api.base_url} has no Batch API (/files answered HTTP {status}): grading "
        "directly, 16 requests at a time (--mode auto)."
    ) in said
    assert _out(isolated_env)["llm_score"].to_list() == [judge_score(USER + t) for t in texts]
    assert fake_api.batches_created == 0
    assert set(_sent(fake_api).values()) == {1}


def test_batch_mode_without_a_batch_api_is_a_usage_error(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """--mode batch against a server with no Batch API: exit 2, nothing sent, the fix named."""
    fake_api.no_batch_api = "detail"
    result = bg("grade", _csv(isolated_env, _texts(3)), "--mode", "batch")
    assert result.exit_code == 2, result.output
    assert "no Batch API" in result.stderr and "--mode direct" in result.stderr
    assert fake_api.request_count("chat") == 0


def test_rate_limits_slow_the_run_and_every_row_is_answered_once(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """429s with Retry-After: the run waits as asked, then every row has its one answer."""
    fake_api.inject_fault("chat", "429", times=5, retry_after_ms=20)
    texts = _texts(12)
    result = bg("grade", _csv(isolated_env, texts), "--mode", "direct", "--concurrency", "4")
    assert result.exit_code == 0, result.output
    assert _out(isolated_env)["llm_score"].to_list() == [judge_score(USER + t) for t in texts]
    answered = [c for c in fake_api.calls if c.route == "chat" and c.status == 200]
    assert len(answered) == len(texts)


@pytest.mark.parametrize("at_once", [1, 4])
def test_rate_limit_headers_pace_the_run(
    at_once: int, bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """OpenAI's x-ratelimit-* headers, with no Retry-After: an answer that uses the limit
    up holds the next requests until the reset it names (one at a time: no request is
    refused), and a request refused over the limit is sent again only once the window
    that refused it has ended (4 at once with 3 allowed a window)."""
    fake_api.chat_rpm, fake_api.chat_window = 3, 1.0
    texts = _texts(7)
    result = bg(
        "grade", _csv(isolated_env, texts), "--mode", "direct", "--concurrency", str(at_once)
    )
    assert result.exit_code == 0, result.output
    assert _out(isolated_env)["llm_score"].to_list() == [judge_score(USER + t) for t in texts]
    attempts: dict[str, list[Call]] = {}
    for call in fake_api.calls:
        if call.route == "chat":
            attempts.setdefault(call.payload["messages"][-1]["content"], []).append(call)
    assert [[c.status for c in a].count(200) for a in attempts.values()] == [1] * len(texts)
    refused = [c for a in attempts.values() for c in a if c.status == 429]
    assert fake_api.rate_limited == len(refused)
    if at_once == 1:
        assert not refused
    for calls in attempts.values():
        for call, again in itertools.pairwise(sorted(calls, key=lambda c: c.at)):
            if call.status == 429:
                began = max((t for t in fake_api.rate_windows if t <= call.at), default=0.0)
                assert again.at >= began + fake_api.chat_window
    # The board names the state: a limit used up; with 4 at once a refusal may come first,
    # and the narrowing it causes is what the board shows then.
    shown = "rate limit used up: paused" if at_once == 1 else "rate limit"
    assert shown in result.stderr


def _most_in_a_second(fake: FakeBatchAPI) -> int:
    """The most chat requests that arrived within any one second."""
    times = sorted(c.at for c in fake.calls if c.route == "chat")
    return max(sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times))


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("BATCHGRADER_RUN__REQUESTS_PER_MINUTE", "480"),  # 8 a second
        # ~8 a second: each request counts its input tokens and max_tokens_per_response.
        ("BATCHGRADER_RUN__TOKENS_PER_MINUTE", str(8 * 60 * (64 + 27))),
    ],
)
def test_requests_and_tokens_a_minute_pace_the_sending(
    setting: str,
    value: str,
    bg: Invoke,
    fake_api: FakeBatchAPI,
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """run.requests_per_minute / run.tokens_per_minute: never more in a second than one
    second's worth and the burst of one more (a minute's worth at once is refused by
    providers that enforce per-minute limits per second); every row answered once."""
    monkeypatch.setenv(setting, value)
    texts = _texts(24)
    result = bg(
        "grade", _csv(isolated_env, texts), "--mode", "direct", "--concurrency", "16",
        "--max-tokens", "64",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert set(_sent(fake_api).values()) == {1} and len(_sent(fake_api)) == len(texts)
    assert _most_in_a_second(fake_api) <= 8 + 8


def test_server_errors_and_timeouts_are_retried(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """500 bursts, dropped connections and a timeout: retried; the possibly-run one said."""
    monkeypatch.setenv("BATCHGRADER_API__TIMEOUT_SECONDS", "0.3")
    fake_api.inject_fault("chat", "500", times=3)
    fake_api.inject_fault("chat", "reset", times=1)
    fake_api.inject_fault("chat", "timeout", times=1, delay=1.0)
    texts = _texts(8)
    result = bg("grade", _csv(isolated_env, texts), "--mode", "direct", "--concurrency", "2")
    assert result.exit_code == 0, result.output
    assert _out(isolated_env)["llm_error"].null_count() == len(texts)
    assert "may have run and been billed" in " ".join(result.stderr.split())


def test_client_errors_are_the_rows_errors_and_retry_failed_resends_only_them(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """A 400 is that row's error (not retried); --retry-failed=all resends only it."""
    texts = _texts(5)
    texts[2] = "This one breaks [[fail:invalid_prompt]]"
    src = _csv(isolated_env, texts)
    first = bg("grade", src, "--mode", "direct")
    assert first.exit_code == 1, first.output
    errors = _out(isolated_env)["llm_error"].to_list()
    assert errors[2].startswith("invalid_prompt")
    assert "--retry-failed=all" in first.stderr  # permanent: a plain retry would not help
    again = bg("grade", src, "--mode", "direct", "--retry-failed=all")
    assert again.exit_code == 1  # the same request: the same refusal
    assert _sent(fake_api)[USER + texts[2]] == 2
    assert sum(_sent(fake_api).values()) == len(texts) + 1


@pytest.mark.parametrize(
    ("model", "args"),
    [("gpt-4.1-mini", ("--endpoint", "/v1/responses")), ("gpt-5-pro", ())],
)
def test_direct_mode_on_the_responses_api(
    model: str, args: tuple[str, ...], bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """--endpoint /v1/responses, or a model served only there: each row one synchronous
    Responses call, read as in a batch."""
    texts = _texts(5)
    result = bg("grade", _csv(isolated_env, texts), "--mode", "direct", "--model", model, *args)
    assert result.exit_code == 0, result.output
    assert _out(isolated_env)["llm_score"].to_list() == [judge_score(USER + t) for t in texts]
    routes = Counter(c.route for c in fake_api.calls)
    assert routes == {"responses": len(texts)}


@pytest.mark.parametrize(
    ("chunk_rows", "at_once", "cap", "answered_between", "chunks_done"),
    [(None, "1", "0.0013", (0, 30), 0), ("12", "4", "0.004", (12, 24), 1)],
    ids=["one-chunk", "across-chunks"],
)
def test_budget_stops_sending_mid_run_and_a_rerun_sends_only_the_rest(
    chunk_rows: str | None, at_once: str, cap: str, answered_between: tuple[int, int],
    chunks_done: int, bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """--max-cost: sending stops before the cap (exit 1), also when it is reached in a
    run's second chunk of 12 rows (4 at once): the spend the ledger has (the finished
    chunk's and the open ones') stays under the cap, a finished chunk is done, and the
    re-run sends only the rows without an answer."""
    if chunk_rows is not None:
        monkeypatch.setenv("BATCHGRADER_CHUNKING__SPLIT_ROW_LIMIT", chunk_rows)
        fake_api.chat_latency = 0.02
    texts = _texts(30)
    src = _csv(isolated_env, texts)
    stopped = bg(
        "grade", src, "--mode", "direct", "--concurrency", at_once, "--max-cost", cap, "--yes"
    )
    assert stopped.exit_code == 1, stopped.output
    assert "Stopped sending" in stopped.stderr
    answered = sum(_sent(fake_api).values())
    fewest, most = answered_between
    assert fewest < answered < most
    with _ledger(home) as ledger:
        (job,) = ledger.jobs()
        events = ledger.usage_events()
        chunks = ledger.chunks(job.id)
    assert sum(e.requests_completed for e in events) == answered
    assert sum((e.cost or Decimal(0) for e in events), Decimal(0)) <= Decimal(cap)
    assert [c.status is ChunkStatus.DONE for c in chunks] == [
        i < chunks_done for i in range(len(chunks))
    ]
    resumed = bg("grade", src, "--mode", "direct")
    assert resumed.exit_code == 0, resumed.output
    assert set(_sent(fake_api).values()) == {1}  # no answered row sent twice
    assert _out(isolated_env)["llm_score"].to_list() == [judge_score(USER + t) for t in texts]


def test_a_request_that_may_have_run_counts_at_its_worst_against_the_budget(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """Two requests run by the server whose connections then dropped (usage unknown)
    count at their worst case: under the same --max-cost the run answers fewer rows than
    one without drops, and the stop says why."""

    def answered_under_the_cap(name: str) -> tuple[int, str]:
        texts = [f"{t} ({name})" for t in _texts(30)]
        before = fake_api.request_count("chat")
        result = bg(
            "grade", _csv(isolated_env, texts, f"{name}.csv"), "--mode", "direct",
            "--concurrency", "1", "--max-cost", "0.0013", "--yes",
        )  # fmt: skip
        assert result.exit_code == 1, result.output
        ok = [c for c in fake_api.calls[before:] if c.route == "chat" and c.status == 200]
        return len(ok), " ".join(result.stderr.split())

    plain, _ = answered_under_the_cap("plain")
    fake_api.inject_fault("chat", "reset", times=2, after_effect=True)
    dropped, said = answered_under_the_cap("dropped")
    assert dropped < plain - 1
    assert "for 2 request(s) whose connection dropped (usage unknown)" in said
    assert "2 request(s) lost their connection after being sent" in said


def test_flex_tier_is_sent_and_priced_at_batch_rates(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path
) -> None:
    """--service-tier flex: every request carries it, usage is priced at Batch rates."""
    fake_api.inject_fault("chat", "429", times=2, retry_after_ms=10)  # capacity short
    texts = _texts(4)
    result = bg(
        "grade", _csv(isolated_env, texts), "--mode", "direct", "--model", "o4-mini",
        "--service-tier", "flex",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    bodies = [c.payload for c in fake_api.calls if c.route == "chat" and c.status == 200]
    assert {b["service_tier"] for b in bodies} == {"flex"}
    with _ledger(home) as ledger:
        (event,) = ledger.usage_events()
    assert event.tier == "flex"


@pytest.mark.parametrize(
    ("model", "tier", "said"),
    [
        ("gpt-4.1-mini", "flex", "gpt-4.1-mini does not offer flex processing"),
        (ANTHROPIC_MODEL, "flex", "--service-tier flex is OpenAI's: Anthropic's API has no"),
        ("gpt-5-mini", "priority", "Priority processing is billed above the standard rates"),
    ],
)
@pytest.mark.parametrize("mode", ["direct", "batch"])
def test_a_tier_the_model_lacks_or_that_has_no_price_is_refused_before_sending(
    model: str,
    tier: str,
    said: str,
    mode: str,
    bg: Invoke,
    fake_api: FakeBatchAPI,
    fake_anthropic: FakeAnthropicAPI,
    isolated_env: Path,
    home: Path,
) -> None:
    """Flex on a model without it (every row would be refused), any tier on Claude (not
    sent, yet priced at Batch rates), priority (billed above the prices batchgrader has):
    exit 2, nothing sent, no job."""
    result = bg(
        "grade", _csv(isolated_env, _texts(3)), "--model", model, "--mode", mode,
        "--service-tier", tier,
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert said in " ".join(result.stderr.split())
    assert fake_api.calls == [] and fake_anthropic.calls == []
    assert not (home / "data" / "jobs").exists() or not any((home / "data" / "jobs").iterdir())


def test_insufficient_quota_stops_at_once(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """An exhausted quota stops the run (no row keeps retrying it), exit 1, resumable."""
    fake_api.inject_fault("chat", "insufficient_quota", times=100)
    result = bg("grade", _csv(isolated_env, _texts(20)), "--mode", "direct", "--concurrency", "2")
    assert result.exit_code == 1, result.output
    assert "no quota" in result.stderr
    assert fake_api.request_count("chat") <= 4


def _grade_in_background(
    fake: FakeBatchAPI, home: Path, src: Path, *, concurrency: int
) -> subprocess.Popen[str]:
    """``grade SRC --mode direct`` in a process of its own (to be killed or interrupted)."""
    env = {
        **os.environ,
        "OPENAI_API_KEY": FAKE_KEY,
        "OPENAI_BASE_URL": fake.base_url,
        "BATCHGRADER_HOME": str(home),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "batchgrader", "grade", str(src), "--mode", "direct",
         "--concurrency", str(concurrency)],
        cwd=src.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def _durable_ids(home: Path) -> set[str]:
    """The rows with an answer in any direct answers file under ``home``."""
    files = (home / "data" / "jobs").glob("*/results/chunk-*.direct.jsonl")
    return {cid for path in files for cid in read_answers(path)}


def _wait_for_answers(home: Path, at_least: int) -> Path:
    """The first direct answers file of the one job under ``home``, once the job's
    answers files hold ``at_least`` answers."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = sorted((home / "data" / "jobs").glob("*/results/chunk-*.direct.jsonl"))
        if found and len(_durable_ids(home)) >= at_least:
            return found[0]
        time.sleep(0.02)
    raise AssertionError(f"fewer than {at_least} answers after 60 s")


@pytest.mark.parametrize("chunk_rows", [None, "30"])
def test_killed_run_resumes_without_sending_an_answered_row_again(
    chunk_rows: str | None, fake_api: FakeBatchAPI, isolated_env: Path, home: Path,
    bg: Invoke, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """kill -9 half-way, in one chunk or across chunks of 30 rows (two answers files
    written at once): the re-run sends only rows without a durable answer."""
    if chunk_rows is not None:
        monkeypatch.setenv("BATCHGRADER_CHUNKING__SPLIT_ROW_LIMIT", chunk_rows)
    fake_api.chat_latency = 0.02
    texts = _texts(200)
    src = _csv(isolated_env, texts)
    proc = _grade_in_background(fake_api, home, src, concurrency=4)
    _wait_for_answers(home, 40)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()  # reaped, its pipes closed
    durable = _durable_ids(home)
    assert 40 <= len(durable) < len(texts)
    before = _sent(fake_api)
    result = bg("grade", src, "--mode", "direct")
    assert result.exit_code == 0, result.output
    after = _sent(fake_api)
    for cid in durable:
        text = USER + texts[int(cid.removeprefix("row-"))]
        assert after[text] == before[text] == 1, cid
    assert _out(isolated_env)["llm_score"].to_list() == [judge_score(USER + t) for t in texts]


def test_while_a_run_sends_the_ledger_counts_every_durable_answer(
    fake_api: FakeBatchAPI, isolated_env: Path, home: Path
) -> None:
    """The ledger is written at most every half second, not per answer; in between, what
    it has not yet counted as spent is still reserved at its worst case. So another
    process's budget check, whenever it reads, covers every answer already on disk."""
    fake_api.chat_latency = 0.02
    src = _csv(isolated_env, _texts(300))
    proc = _grade_in_background(fake_api, home, src, concurrency=4)
    answers = _wait_for_answers(home, 1)
    ledger, looks = _ledger(home), 0
    try:
        while proc.poll() is None:
            events = ledger.usage_events()  # read first: the answers file only grows
            try:
                raw = answers.read_bytes()
            except FileNotFoundError:
                break  # the job finished and tidied up
            lines = [json.loads(line) for line in raw.splitlines()[:-1]]  # whole lines
            paid_in = sum(line["body"]["usage"]["prompt_tokens"] for line in lines)
            paid_out = sum(line["body"]["usage"]["completion_tokens"] for line in lines)
            assert sum(e.input_tokens for e in events) >= paid_in
            assert sum(e.output_tokens for e in events) >= paid_out
            looks += 1
            time.sleep(0.01)
    finally:
        ledger.close()
        proc.communicate()
    assert proc.returncode == 0
    assert looks > 10


@pytest.mark.parametrize("stop", ["ctrl-c", "jobs cancel"])
def test_a_stopped_run_keeps_its_answers_and_resume_sends_only_the_rest(
    stop: str, fake_api: FakeBatchAPI, isolated_env: Path, home: Path, bg: Invoke
) -> None:
    """Ctrl-C, or `jobs cancel` from another process: sending stops, every answer that
    arrived is kept, and `jobs resume` sends only the rows without one."""
    fake_api.chat_latency = 0.05  # ~40 rows/s at 2: the run outlasts the stop (checked each 1 s)
    texts = _texts(200)
    src = _csv(isolated_env, texts)
    proc = _grade_in_background(fake_api, home, src, concurrency=2)
    answers = _wait_for_answers(home, 40)
    job_id = answers.parents[1].name
    if stop == "ctrl-c":
        proc.send_signal(signal.SIGINT)
    else:
        cancelled = bg("jobs", "cancel", job_id)
        assert cancelled.exit_code == 0, cancelled.output
        assert "stops within a second" in " ".join(cancelled.stderr.split())
    _, err = proc.communicate(timeout=60)
    if stop == "ctrl-c":
        assert proc.returncode == 130, err
        said = " ".join(err.split())
        assert "Interrupted. Every answer received is kept; the direct requests" in said
        assert "Batches already submitted" not in said  # there are none
    else:
        assert proc.returncode == 1, err
        assert "was cancelled: sending stopped" in " ".join(err.split())
    durable = {json.loads(line)["custom_id"] for line in answers.read_text().splitlines() if line}
    before = _sent(fake_api)
    assert len(durable) >= 40 and sum(before.values()) < len(texts)  # it stopped sending
    shown = bg("jobs", "show", job_id, "--json")
    (chunk,) = json.loads(shown.stdout)["chunks"]
    assert (chunk["mode"], chunk["batch_id"]) == ("direct", None)
    assert (chunk["completed"], chunk["failed"]) == (len(durable), 0)
    resumed = bg("jobs", "resume", job_id)
    assert resumed.exit_code == 0, resumed.output
    after = _sent(fake_api)
    for cid in durable:
        text = USER + texts[int(cid.removeprefix("row-"))]
        assert after[text] == before[text] == 1, cid
    assert _out(isolated_env)["llm_score"].to_list() == [judge_score(USER + t) for t in texts]


def test_claude_direct_through_the_messages_api(
    bg: Invoke, fake_anthropic: FakeAnthropicAPI, isolated_env: Path, home: Path
) -> None:
    """--mode direct with a Claude model: Anthropic's Messages API, bounded, priced at
    synchronous rates, the same score columns."""
    fake_anthropic.messages_latency = 0.02
    rows = anthropic_texts(10)
    src = anthropic_input(isolated_env, rows)
    result = bg("grade", src, "--model", ANTHROPIC_MODEL, "--mode", "direct", "--concurrency", "3")
    assert result.exit_code == 0, result.output
    assert_scores(_out(isolated_env), rows)
    assert fake_anthropic.max_concurrent_messages <= 3
    assert fake_anthropic.batches_created == 0
    with _ledger(home) as ledger:
        events = ledger.usage_events()
    assert {(e.provider, e.executor, e.tier) for e in events} == {
        ("anthropic", "direct", "standard")
    }


@pytest.mark.parametrize("style", ["detail", "text", "method"])
def test_auto_grades_claude_directly_on_a_server_without_message_batches(
    style: str, bg: Invoke, fake_anthropic: FakeAnthropicAPI, isolated_env: Path
) -> None:
    """A server that speaks only the Messages API (Ollama, vLLM, a proxy): its 404/405 on
    the batch create switches --mode auto to direct calls, saying so; --mode batch is
    exit 2 with nothing sent."""
    fake_anthropic.messages_only = style
    rows = anthropic_texts(6)
    src = anthropic_input(isolated_env, rows)
    refused = bg("grade", src, "--model", ANTHROPIC_MODEL, "--mode", "batch")
    assert refused.exit_code == 2, refused.output
    assert "--mode direct" in refused.stderr
    result = bg("grade", src, "--model", ANTHROPIC_MODEL)
    assert result.exit_code == 0, result.output
    status = 405 if style == "method" else 404
    said = " ".join(result.stderr.split())
    assert (
        f"{fake_anthropic.base_url} has no Batch API (/v1/messages/batches answered HTTP "
        f"{status}): grading directly"
    ) in said
    assert_scores(_out(isolated_env), rows)
    routes = Counter(c.route for c in fake_anthropic.calls if c.status == 200)
    assert routes == {"messages": len(rows)}


def test_claude_direct_waits_for_anthropics_rate_limit_reset(
    bg: Invoke, fake_anthropic: FakeAnthropicAPI, isolated_env: Path
) -> None:
    """anthropic-ratelimit-requests-remaining at 0: the next request waits for the RFC 3339
    reset beside it, so none is refused."""
    fake_anthropic.messages_rpm, fake_anthropic.messages_window = 3, 1
    rows = anthropic_texts(7)
    src = anthropic_input(isolated_env, rows)
    result = bg("grade", src, "--model", ANTHROPIC_MODEL, "--mode", "direct", "--concurrency", "1")
    assert result.exit_code == 0, result.output
    assert_scores(_out(isolated_env), rows)
    assert fake_anthropic.rate_limited == 0
    assert "rate limit used up: paused" in result.stderr


@pytest.mark.parametrize(
    ("provider", "base_url", "where"),
    [
        ("openai", None, "OpenAI"),
        ("anthropic", None, "Anthropic"),
        ("openai", "http://localhost:8000/v1/", "http://localhost:8000/v1"),
        ("openai", "http://localhost:11434/v1", "http://localhost:11434/v1"),
    ],
)
def test_the_first_request_line_names_the_server(
    provider: str,
    base_url: str | None,
    where: str,
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ "OpenAI: requests are being made." only when they go to OpenAI: a local server
    (vLLM, Ollama) is named by its URL."""
    for name in ("OPENAI_BASE_URL", "ANTHROPIC_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    if base_url:
        monkeypatch.setenv("OPENAI_BASE_URL", base_url)
    settings = load_settings().settings
    assert _where(provider_for(settings, provider)) == where


def _readme_local_commands() -> list[tuple[dict[str, str], list[str]]]:
    """The README's local-server commands: their environment and their arguments."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    text = readme.replace("\\\n", " ")
    commands = []
    for line in text.splitlines():
        if line.startswith("OPENAI_BASE_URL=http://localhost"):
            words = shlex.split(line)
            env = dict(w.split("=", 1) for w in words if "=" in w and not w.startswith("-"))
            commands.append((env, words[len(env) :]))
    return commands


@pytest.mark.parametrize("command", _readme_local_commands(), ids=["ollama", "vllm"])
def test_the_readmes_local_server_commands_grade_as_written(
    command: tuple[dict[str, str], list[str]],
    bg: Invoke,
    fake_api: FakeBatchAPI,
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ollama's and vLLM's command, against a server like theirs (chat, no Batch API)."""
    env, args = command
    assert args[:3] == ["batchgrader", "grade", "data.csv"]
    model = args[args.index("--model") + 1]
    fake_api.no_batch_api = "detail"  # FastAPI's 404 (vLLM); Ollama's is plain text
    fake_api.extra_models = {model}
    monkeypatch.setenv("OPENAI_API_KEY", env["OPENAI_API_KEY"])
    texts = _texts(5)
    _csv(isolated_env, texts, name="data.csv")
    result = bg(*args[1:])
    assert result.exit_code == 0, result.output
    assert "has no Batch API" in result.stderr
    out = _out(isolated_env, "data.graded.csv")
    assert out["llm_score"].to_list() == [judge_score(USER + t) for t in texts]
    assert {c.payload["model"] for c in fake_api.calls if c.route == "chat"} == {model}
