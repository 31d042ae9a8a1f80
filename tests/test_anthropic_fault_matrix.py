"""Every Anthropic call × every fault, with each case's outcome pinned.

The same matrix the OpenAI path passes (``test_fault_matrix.py``) on the routes of the
fake Anthropic API: a **burst** of three faults (fewer than ``api.max_retries``) is
ridden out and the run finishes with the correct output; an **outage** (the faults
outlast ``api.max_retries`` = 1) stops with exit 1 and one clear message, or is ridden
out where the run does not need that call now, as ``OUTAGE`` pins; a stopped job
completes with ``jobs resume`` once the fault is gone. No batch is created twice.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from batchgrader.execution.events import SystemClock
from tests.anthropic_cli import (
    MODEL,
    Invoke,
    assert_scores,
    graded,
    job_id,
    texts,
    write_input,
)
from tests.fakes.anthropic_api import FakeAnthropicAPI
from tests.helpers import fault_outcome

ROUTES = ["count_tokens", "create", "retrieve", "list", "cancel", "results", "delete"]
KINDS: dict[str, dict[str, Any]] = {
    "429-retry-after": {"kind": "rate_limit_error", "retry_after_ms": 20},
    "529": {"kind": "overloaded_error"},
    "500": {"kind": "api_error"},
    "reset": {"kind": "reset"},
    "timeout": {"kind": "timeout", "delay": 1.0},
    "truncated": {"kind": "truncated"},
    "lost": {"kind": "lost"},  # performed, then the connection drops before the answer
}
BURST = 3
#: An outage of each route, and what the run does: "stops" (exit 1, resumable) or
#: "recovers" (it does not depend on that call succeeding now).
OUTAGE_KINDS = ["500", "reset"]
OUTAGE: dict[str, str] = {
    "count_tokens": "recovers",  # planned on the offline upper bound, said so
    "create": "stops",
    "retrieve": "stops",
    "list": "stops",
    "cancel": "stops",
    "results": "stops",
    "delete": "recovers",  # the results are stored; jobs clean deletes the batch later
}


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Shorten the runner's own backoff, except where real time must pass (a held create)."""
    monkeypatch.setenv("BATCHGRADER_API__TIMEOUT_SECONDS", "0.5")
    if "create-timeout" in request.node.name:
        # The fake performs the held create after 1 s: the runner's one extra wait for a
        # lost create to show up (min(30 s, api.retry_max_wait_seconds)) must cover it.
        monkeypatch.setenv("BATCHGRADER_API__RETRY_MAX_WAIT_SECONDS", "2")
        return
    monkeypatch.setenv("BATCHGRADER_API__RETRY_MAX_WAIT_SECONDS", "0.01")
    monkeypatch.setattr(SystemClock, "sleep", lambda self, s: time.sleep(min(s, 0.01)))


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("route", ROUTES)
def test_a_burst_of_faults_is_ridden_out(
    bg: Invoke, fake_anthropic: FakeAnthropicAPI, isolated_env: Path, route: str, kind: str
) -> None:
    """A burst of faults on one call: the command completes; no duplicates."""
    _case(bg, fake_anthropic, isolated_env, route, kind, expected="recovers")


@pytest.mark.parametrize("kind", OUTAGE_KINDS)
@pytest.mark.parametrize("route", ROUTES)
def test_an_outage_stops_clearly_and_resumes(
    bg: Invoke,
    fake_anthropic: FakeAnthropicAPI,
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    route: str,
    kind: str,
) -> None:
    """Faults outlasting the retries: the pinned outcome, then resume; no duplicates."""
    monkeypatch.setenv("BATCHGRADER_API__MAX_RETRIES", "1")
    _case(bg, fake_anthropic, isolated_env, route, kind, expected=OUTAGE[route])


def _case(
    bg: Invoke,
    fake_anthropic: FakeAnthropicAPI,
    folder: Path,
    route: str,
    kind: str,
    *,
    expected: str,
) -> None:
    rows = texts(4)
    src = write_input(folder, rows)
    opts = dict(KINDS[kind])
    fault_kind = opts.pop("kind")
    if route == "cancel":
        fake_anthropic.polls_per_state = 10**6  # still running when cancelled
        assert bg("grade", src, "--model", MODEL, "--detach").exit_code == 0
        job = job_id(bg)
        fake_anthropic.fail_next(route, fault_kind, times=BURST, **opts)
        result = bg("jobs", "cancel", job)
        assert fake_anthropic.faults_met(route) >= 1  # the fault was met
        assert fault_outcome(result) == expected, result.output
        if expected == "stops":
            fake_anthropic.clear_faults()
            assert bg("jobs", "cancel", job).exit_code == 0
        fake_anthropic.polls_per_state = 1
        final = bg("jobs", "resume", job)
        assert final.exit_code in (0, 1), final.output  # cancelled rows are marked, not lost
        assert graded(folder)["id"].to_list() == list(range(4))
        assert fake_anthropic.batches_created == 1
        return
    if route == "list":  # listing only happens to resolve a create whose answer was lost
        fake_anthropic.fail_next("create", "api_error", after_effect=True)
    fake_anthropic.fail_next(route, fault_kind, times=BURST, **opts)
    result = bg("grade", src, "--model", MODEL)
    assert fake_anthropic.faults_met(route) >= 1  # the fault was met
    assert fault_outcome(result) == expected, result.output
    if expected == "stops":
        fake_anthropic.clear_faults()
        resumed = bg("jobs", "resume", job_id(bg))
        assert resumed.exit_code == 0, resumed.output
    assert_scores(graded(folder), rows)
    assert fake_anthropic.batches_created == 1


def test_lost_create_answer_adopts_the_batch(
    bg: Invoke, fake_anthropic: FakeAnthropicAPI, isolated_env: Path
) -> None:
    """The create is performed, then the connection drops: the batch is found and adopted."""
    rows = texts(5)
    src = write_input(isolated_env, rows)
    fake_anthropic.fail_next("create", "lost")
    result = bg("grade", src, "--model", MODEL)
    assert result.exit_code == 0, result.output
    assert fake_anthropic.request_count("create") == 1
    assert fake_anthropic.request_count("list") >= 1
    assert fake_anthropic.batches_created == 1
    assert_scores(graded(isolated_env), rows)
