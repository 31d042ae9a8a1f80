"""Every provider call × every fault, with each case's outcome pinned.

A **burst** of three faults on one route (fewer than ``api.max_retries``) must be ridden
out: the run finishes with the correct output. An **outage** (the same faults outlasting
the retries, ``api.max_retries`` = 1) must stop the run with exit 1 and one clear message,
and leave a job that ``jobs resume`` completes once the fault is gone. Either way no
batch is created twice. ``OUTAGE`` pins which routes stop and which the run rides out
anyway, so a change from one outcome to the other fails here.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import Result

from batchgrader.execution.events import SystemClock
from tests.fakes.batch_api import FakeBatchAPI
from tests.fakes.judge import judge_score
from tests.helpers import fault_outcome, write_table

Invoke = Callable[..., Result]
USER = "Please evaluate the following text: "
ROUTES = ["upload", "create", "retrieve", "list", "cancel", "file_content", "file_delete"]
KINDS: dict[str, dict[str, Any]] = {
    "429-retry-after": {"kind": "429", "retry_after_ms": 20},
    "429": {"kind": "429"},
    "500": {"kind": "500"},
    "503": {"kind": "503"},
    "reset": {"kind": "reset"},
    "timeout": {"kind": "timeout", "delay": 1.0},
    "truncated": {"kind": "truncated"},
    "malformed_json": {"kind": "malformed_json"},
}
BURST = 3
#: An outage of each route, and what the run does: "stops" (exit 1, resumable) or
#: "recovers" (it does not depend on that call succeeding now).
OUTAGE_KINDS = ["500", "reset"]
OUTAGE: dict[str, str] = {
    "upload": "stops",
    "create": "stops",
    "retrieve": "stops",
    "list": "stops",
    "cancel": "stops",
    "file_content": "stops",
    "file_delete": "recovers",  # the results are stored; jobs clean deletes the file later
}


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Shorten the runner's own backoff, except where real time must pass (lost creates)."""
    monkeypatch.setenv("BATCHGRADER_API__TIMEOUT_SECONDS", "0.5")
    if "create-timeout" in request.node.name:
        return  # the fake performs the held create after 1 s: the runner must wait for it
    monkeypatch.setattr(SystemClock, "sleep", lambda self, s: time.sleep(min(s, 0.01)))


def _texts(n: int) -> list[str]:
    return [f"Row {i}: glaciers move a few metres a day, sample {i}." for i in range(n)]


def _assert_graded(folder: Path, texts: list[str]) -> None:
    out = pl.read_csv(folder / "output" / "d.graded.csv")
    assert out["llm_score"].to_list() == [judge_score(USER + t) for t in texts]
    assert out["llm_error"].null_count() == len(texts)


def _job_id(bg: Invoke) -> str:
    listed = bg("jobs", "list", "--all", "--json")
    return str(json.loads(listed.stdout)["jobs"][0]["id"])


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("route", ROUTES)
def test_a_burst_of_faults_is_ridden_out(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, route: str, kind: str
) -> None:
    """A burst of faults on one call: the command completes; no duplicates."""
    _case(bg, fake_api, isolated_env, route, kind, expected="recovers")


@pytest.mark.parametrize("kind", OUTAGE_KINDS)
@pytest.mark.parametrize("route", ROUTES)
def test_an_outage_stops_clearly_and_resumes(
    bg: Invoke,
    fake_api: FakeBatchAPI,
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    route: str,
    kind: str,
) -> None:
    """Faults outlasting the retries: the pinned outcome, then resume; no duplicates."""
    monkeypatch.setenv("BATCHGRADER_API__MAX_RETRIES", "1")
    _case(bg, fake_api, isolated_env, route, kind, expected=OUTAGE[route])


def _case(
    bg: Invoke, fake_api: FakeBatchAPI, folder: Path, route: str, kind: str, *, expected: str
) -> None:
    texts = _texts(4)
    frame = pl.DataFrame({"id": list(range(4)), "response": texts})
    src = write_table(folder / "d.csv", frame)
    opts = dict(KINDS[kind])
    fault_kind = opts.pop("kind")
    if route == "cancel":
        assert bg("grade", src, "--detach").exit_code == 0
        job = _job_id(bg)
        fake_api.inject_fault(route, fault_kind, times=BURST, **opts)
        result = bg("jobs", "cancel", job)
        assert fake_api.faults_met(route) >= 1  # the fault was met
        assert fault_outcome(result) == expected, result.output
        if expected == "stops":
            fake_api.clear_faults()
            assert bg("jobs", "cancel", job).exit_code == 0
        final = bg("jobs", "resume", job)
        assert final.exit_code in (0, 1), final.output  # cancelled rows are marked, not lost
        out = pl.read_csv(folder / "output" / "d.graded.csv")
        assert out["id"].to_list() == list(range(4))
        assert fake_api.batches_created == 1
        return
    if route == "list":  # listing only happens to resolve a create whose answer was lost
        fake_api.inject_fault("create", "500", after_effect=True)
    fake_api.inject_fault(route, fault_kind, times=BURST, **opts)
    result = bg("grade", src)
    assert fake_api.faults_met(route) >= 1  # the fault was met
    assert fault_outcome(result) == expected, result.output
    if expected == "stops":
        fake_api.clear_faults()
        resumed = bg("jobs", "resume", _job_id(bg))
        assert resumed.exit_code == 0, resumed.output
    _assert_graded(folder, texts)
    assert fake_api.batches_created == 1
