"""Never pay twice with Claude: lost creates without metadata, crashes, Ctrl-C.

Anthropic batches carry no metadata, so a create whose answer was lost is found by what
identifies it (its request count, a creation time since the intent, an id the ledger
does not know); when several batches could be it, the run stops and names them. The
crash tests run ``batchgrader grade`` as a real subprocess against the fake, hold the
fake at a chosen stage, kill the process there, then finish the job in-process.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from anthropic import Anthropic

from tests.anthropic_cli import (
    MODEL,
    Invoke,
    assert_scores,
    graded,
    job_id,
    texts,
    write_input,
)
from tests.conftest import FAKE_ANTHROPIC_KEY
from tests.fakes.anthropic_api import FakeAnthropicAPI
from tests.helpers import child_env

HOLD = 10**6  # polls per lifecycle step: a batch that never moves on its own


def _foreign_batch(fake: FakeAnthropicAPI, requests: int) -> str:
    """A batch someone else creates in the same workspace, with as many requests."""
    with Anthropic(api_key=FAKE_ANTHROPIC_KEY, base_url=fake.base_url, max_retries=0) as client:
        batch = client.messages.batches.create(
            requests=[
                {
                    "custom_id": f"other-{i}",
                    "params": {
                        "model": MODEL,
                        "max_tokens": 16,
                        "messages": [{"role": "user", "content": f"other {i}"}],
                    },
                }
                for i in range(requests)
            ]
        )
    return batch.id


def test_ambiguous_lost_create_stops_and_adopt_resolves_it(
    bg: Invoke, fake_anthropic: FakeAnthropicAPI, isolated_env: Path
) -> None:
    """Two batches could be a lost create's: nothing more is created, both are named with
    the command to adopt one; jobs adopt and resume then finish without a third batch."""
    rows = texts(4)
    src = write_input(isolated_env, rows)
    foreign = _foreign_batch(fake_anthropic, 4)
    fake_anthropic.fail_next("create", "lost")
    result = bg("grade", src, "--model", MODEL)
    assert result.exit_code == 1, result.output
    ours = fake_anthropic.batch_ids()[-1]
    assert foreign in result.stderr and ours in result.stderr
    assert "batchgrader jobs adopt" in result.stderr
    assert fake_anthropic.batches_created == 2
    job = job_id(bg)
    adopted = bg("jobs", "adopt", job, "--chunk", "1", "--batch", ours)
    assert adopted.exit_code == 0, adopted.output
    resumed = bg("jobs", "resume", job)
    assert resumed.exit_code == 0, resumed.output
    assert_scores(graded(isolated_env), rows)
    assert fake_anthropic.batches_created == 2


def test_batches_of_another_size_or_known_are_never_adopted(
    bg: Invoke, fake_anthropic: FakeAnthropicAPI, isolated_env: Path
) -> None:
    """A lost create ignores batches of another request count and the ledger's own."""
    first = write_input(isolated_env, texts(4, tag="a"), "a.csv")
    assert bg("grade", first, "--model", MODEL).exit_code == 0  # a known batch of 4
    _foreign_batch(fake_anthropic, 3)
    rows = texts(4)
    src = write_input(isolated_env, rows)
    fake_anthropic.fail_next("create", "lost")
    result = bg("grade", src, "--model", MODEL)
    assert result.exit_code == 0, result.output
    assert_scores(graded(isolated_env), rows)
    assert fake_anthropic.batches_created == 3


def _spawn(cwd: Path, *args: object) -> subprocess.Popen[str]:
    """``batchgrader grade ARGS`` as a subprocess with this test's environment."""
    return subprocess.Popen(
        [sys.executable, "-m", "batchgrader", "grade", *map(str, args), "--model", MODEL],
        cwd=cwd,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    """Poll ``condition`` while ``proc`` runs (bounded); fail with its output otherwise."""
    deadline = time.monotonic() + 60
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"grade exited {proc.returncode} before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"timed out waiting for {what}:\n{out}\n{err}")
        time.sleep(0.02)


def _creating(home: Path) -> bool:
    """True once a chunk's intent to create is in the ledger (create is next)."""
    path = home / "data" / "ledger.sqlite3"
    if not path.exists():
        return False
    try:
        with sqlite3.connect(path, timeout=5) as db:
            found = db.execute("SELECT 1 FROM chunks WHERE status = 'creating'").fetchone()
    except sqlite3.OperationalError:  # not migrated yet
        return False
    return found is not None


def _kill(proc: subprocess.Popen[str], sig: int = signal.SIGKILL) -> tuple[int, str, str]:
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def test_sigkill_mid_poll_then_rerun(
    bg: Invoke, fake_anthropic: FakeAnthropicAPI, isolated_env: Path
) -> None:
    """Killed while polling: the re-run re-attaches to the batch and writes the output."""
    rows = texts(5)
    src = write_input(isolated_env, rows)
    fake_anthropic.polls_per_state = HOLD
    proc = _spawn(isolated_env, src)
    _wait_for(lambda: fake_anthropic.request_count("retrieve") >= 2, proc, "polling")
    code, _, _ = _kill(proc)
    assert code == -signal.SIGKILL
    fake_anthropic.polls_per_state = 1
    result = bg("grade", src, "--model", MODEL)
    assert result.exit_code == 0, result.output
    assert fake_anthropic.batches_created == 1
    assert_scores(graded(isolated_env), rows)


def test_sigkill_during_create_adopts_the_batch(
    bg: Invoke, fake_anthropic: FakeAnthropicAPI, isolated_env: Path, home: Path
) -> None:
    """Killed while create was in flight (the batch exists, the answer never came): the
    re-run finds it by its size and time and adopts it."""
    rows = texts(3)
    src = write_input(isolated_env, rows)
    fake_anthropic.fail_next("create", "hold")  # holds create until released, then performs it
    proc = _spawn(isolated_env, src)
    _wait_for(lambda: fake_anthropic.held == 1, proc, "the create request")
    _kill(proc)
    assert _creating(home) and fake_anthropic.batches_created == 0
    fake_anthropic.release_held()  # the server goes on with the create of a dead client
    deadline = time.monotonic() + 30
    while fake_anthropic.batches_created == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake_anthropic.batches_created == 1
    result = bg("grade", src, "--model", MODEL)
    assert result.exit_code == 0, result.output
    assert fake_anthropic.batches_created == 1
    assert_scores(graded(isolated_env), rows)


def test_sigkill_before_create_creates_once(
    bg: Invoke, fake_anthropic: FakeAnthropicAPI, isolated_env: Path, home: Path
) -> None:
    """Killed before create reached the API: the re-run looks, finds nothing, creates once."""
    rows = texts(3)
    src = write_input(isolated_env, rows)
    # create is held, never performed: the process dies before it reaches the API
    fake_anthropic.fail_next("create", "hold")
    proc = _spawn(isolated_env, src)
    _wait_for(lambda: fake_anthropic.held == 1, proc, "the create request")
    _kill(proc)
    assert _creating(home) and fake_anthropic.batches_created == 0
    result = bg("grade", src, "--model", MODEL)
    assert result.exit_code == 0, result.output
    assert fake_anthropic.batches_created == 1
    assert_scores(graded(isolated_env), rows)


def test_sigkill_mid_download_downloads_again_without_paying(
    bg: Invoke, fake_anthropic: FakeAnthropicAPI, isolated_env: Path, home: Path
) -> None:
    """Killed while streaming results: the re-run streams them again; usage counts once."""
    rows = texts(5)
    src = write_input(isolated_env, rows)
    fake_anthropic.fail_next("results", "hold")  # the results stream, never answered
    proc = _spawn(isolated_env, src)
    _wait_for(lambda: fake_anthropic.held == 1, proc, "the results request")
    _kill(proc)
    (batch_id,) = fake_anthropic.batch_ids()
    assert fake_anthropic.batch(batch_id)["processing_status"] == "ended"
    assert not (isolated_env / "output" / "d.graded.csv").exists()
    result = bg("grade", src, "--model", MODEL)
    assert result.exit_code == 0, result.output
    assert fake_anthropic.batches_created == 1
    assert_scores(graded(isolated_env), rows)
    with sqlite3.connect(home / "data" / "ledger.sqlite3") as db:
        rows_by_kind = db.execute("SELECT committed, COUNT(*) FROM usage_events GROUP BY committed")
        assert dict(rows_by_kind.fetchall()) == {0: 1}


def test_sigint_exits_130_without_cancelling(
    bg: Invoke, fake_anthropic: FakeAnthropicAPI, isolated_env: Path
) -> None:
    """Ctrl-C mid-poll: exit 130, says how to resume, cancels nothing; the re-run finishes."""
    rows = texts(4)
    src = write_input(isolated_env, rows)
    fake_anthropic.polls_per_state = HOLD
    proc = _spawn(isolated_env, src)
    _wait_for(lambda: fake_anthropic.request_count("retrieve") >= 2, proc, "polling")
    code, out, err = _kill(proc, signal.SIGINT)
    assert code == 130, out + err
    assert "Interrupted" in err and "same command again" in err
    assert "Traceback" not in err
    assert fake_anthropic.request_count("cancel") == 0
    (batch_id,) = fake_anthropic.batch_ids()
    assert fake_anthropic.batch(batch_id)["processing_status"] == "in_progress"
    fake_anthropic.polls_per_state = 1
    result = bg("grade", src, "--model", MODEL)
    assert result.exit_code == 0, result.output
    assert fake_anthropic.batches_created == 1
    assert_scores(graded(isolated_env), rows)
