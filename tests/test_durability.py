"""Never pay twice, never lose a result: re-runs, crashes, Ctrl-C, shared ledgers, migrations.

The crash tests run ``batchgrader grade`` as a real subprocess against the fake server,
hold the fake at a chosen stage, kill the process there, then finish the job in-process.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from typer.testing import Result

from batchgrader.ledger.migrations import MIGRATIONS, migrate
from batchgrader.ledger.store import Ledger
from tests.fakes.batch_api import FakeBatchAPI
from tests.fakes.judge import judge_score
from tests.helpers import child_env, write_table

Invoke = Callable[..., Result]
USER = "Please evaluate the following text: "
HOLD = 10**6  # polls per lifecycle step: a batch that never moves on its own
TABLES = {"jobs", "chunks", "batches", "usage_events", "learned_limits", "answers"}


def _texts(n: int, tag: str = "") -> list[str]:
    return [f"Note {tag}{i}: bridges expand in summer by {i + 2} millimetres." for i in range(n)]


def _input(folder: Path, texts: list[str], name: str = "d.csv") -> Path:
    return write_table(
        folder / name, pl.DataFrame({"id": list(range(len(texts))), "response": texts})
    )


def _two_chunks(folder: Path) -> None:
    (folder / "batchgrader.toml").write_text(
        "[chunking]\nsplit_row_limit = 3\n[run]\nmax_simultaneous_batches = 2\n"
    )


def _graded(folder: Path, name: str = "d.graded.csv") -> pl.DataFrame:
    return pl.read_csv(folder / "output" / name)


def _assert_scores(frame: pl.DataFrame, texts: list[str]) -> None:
    assert frame["id"].to_list() == list(range(len(texts)))
    assert frame["llm_score"].to_list() == [judge_score(USER + t) for t in texts]
    assert frame["llm_error"].null_count() == len(texts)


def _spawn(cwd: Path, *args: object) -> subprocess.Popen[str]:
    """``batchgrader grade ARGS`` as a subprocess with this test's environment."""
    return subprocess.Popen(
        [sys.executable, "-m", "batchgrader", "grade", *map(str, args)],
        cwd=cwd,
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen[str], what: str) -> None:
    """Poll ``condition`` while ``proc`` runs (bounded); fail with its output otherwise."""
    deadline = time.monotonic() + 30
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"grade exited {proc.returncode} before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"timed out waiting for {what}:\n{out}\n{err}")
        time.sleep(0.02)


def _kill(proc: subprocess.Popen[str], sig: int = signal.SIGKILL) -> tuple[int, str, str]:
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=30)
    return proc.returncode, out, err


# --- re-runs ----------------------------------------------------------------------------


def test_rerun_after_output_deleted_rewrites_without_paying(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """A finished job whose graded file was deleted is rewritten from stored results."""
    texts = _texts(6)
    src = _input(isolated_env, texts)
    _two_chunks(isolated_env)
    assert bg("grade", src).exit_code == 0
    out = isolated_env / "output" / "d.graded.csv"
    out.unlink()
    again = bg("grade", src)
    assert again.exit_code == 0, again.output
    _assert_scores(_graded(isolated_env), texts)
    assert fake_api.batches_created == 2
    assert fake_api.request_count("upload") == 2


def test_force_starts_a_new_job(bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path) -> None:
    """--force grades again with new batches, even after a finished job."""
    texts = _texts(4)
    src = _input(isolated_env, texts)
    assert bg("grade", src).exit_code == 0
    forced = bg("grade", src, "--force", "--overwrite")
    assert forced.exit_code == 0, forced.output
    assert fake_api.batches_created == 2
    _assert_scores(_graded(isolated_env), texts)
    again = bg("grade", src)  # the newest job is the one a re-run attaches to
    assert again.exit_code == 0, again.output
    assert fake_api.batches_created == 2


# --- crashes ----------------------------------------------------------------------------


def test_sigkill_mid_poll_then_rerun(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """Killed while polling: the re-run adopts both batches and writes the same file."""
    texts = _texts(6)
    src = _input(isolated_env, texts)
    _two_chunks(isolated_env)
    fake_api.polls_per_state = HOLD
    proc = _spawn(isolated_env, src)
    _wait_for(
        lambda: fake_api.batches_created == 2 and fake_api.request_count("retrieve") >= 4,
        proc,
        "both batches polled",
    )
    code, _, _ = _kill(proc)
    assert code == -signal.SIGKILL
    assert not (isolated_env / "output" / "d.graded.csv").exists()
    fake_api.polls_per_state = 1
    result = bg("grade", src)
    assert result.exit_code == 0, result.output
    assert fake_api.batches_created == 2
    _assert_scores(_graded(isolated_env), texts)
    reference = bg("grade", src, "--force", "--output", isolated_env / "reference.csv")
    assert reference.exit_code == 0, reference.output
    assert _graded(isolated_env).equals(pl.read_csv(isolated_env / "reference.csv"))


def test_sigkill_during_create_adopts_the_batch(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """Killed while create was in flight (the batch exists, the answer never came): adopted."""
    texts = _texts(3)
    src = _input(isolated_env, texts)
    fake_api.inject_fault("create", "hold")  # holds create until released, then performs it
    proc = _spawn(isolated_env, src)
    _wait_for(lambda: fake_api.held == 1, proc, "the create request")
    _kill(proc)
    assert fake_api.batches_created == 0
    fake_api.release_held()  # the server goes on with the create of a dead client
    deadline = time.monotonic() + 30
    while fake_api.batches_created == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fake_api.batches_created == 1
    result = bg("grade", src)
    assert result.exit_code == 0, result.output
    assert fake_api.batches_created == 1
    _assert_scores(_graded(isolated_env), texts)


def test_sigint_exits_130_without_cancelling(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """Ctrl-C mid-poll: exit 130, says how to resume, cancels nothing; the re-run finishes."""
    texts = _texts(4)
    src = _input(isolated_env, texts)
    fake_api.polls_per_state = HOLD
    proc = _spawn(isolated_env, src)
    _wait_for(lambda: fake_api.request_count("retrieve") >= 2, proc, "polling")
    code, out, err = _kill(proc, signal.SIGINT)
    assert code == 130, out + err
    assert "Interrupted" in err
    assert "same command again" in err
    assert "Traceback" not in err
    assert fake_api.request_count("cancel") == 0
    (batch,) = fake_api.batches.values()
    assert batch["status"] == "validating"
    fake_api.polls_per_state = 1
    result = bg("grade", src)
    assert result.exit_code == 0, result.output
    assert fake_api.batches_created == 1
    _assert_scores(_graded(isolated_env), texts)


def test_two_processes_share_one_ledger(
    fake_api: FakeBatchAPI, isolated_env: Path, home: Path
) -> None:
    """Two grade processes on different files at once: both finish, the ledger is coherent."""
    texts = {name: _texts(5, tag=name) for name in ("a", "b")}
    sources = {name: _input(isolated_env, t, f"{name}.csv") for name, t in texts.items()}
    fake_api.polls_per_state = HOLD
    procs = [_spawn(isolated_env, src) for src in sources.values()]
    for proc in procs:
        _wait_for(lambda: fake_api.batches_created == 2, proc, "both batches")
    fake_api.polls_per_state = 1
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, out + err
    for name, t in texts.items():
        _assert_scores(_graded(isolated_env, f"{name}.graded.csv"), t)
    assert fake_api.batches_created == 2
    with sqlite3.connect(home / "data" / "ledger.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        jobs = db.execute("SELECT id, status FROM jobs").fetchall()
        assert [status for _, status in jobs] == ["done", "done"]
        batches = db.execute("SELECT id, job_id, status FROM batches").fetchall()
        assert sorted(b[0] for b in batches) == sorted(fake_api.batches)
        assert {b[1] for b in batches} == {j[0] for j in jobs}
        assert {b[2] for b in batches} == {"completed"}
        usage = db.execute("SELECT batch_id, committed FROM usage_events").fetchall()
        assert sorted(u[0] for u in usage) == sorted(fake_api.batches)
        assert {u[1] for u in usage} == {0}


# --- schema migrations ------------------------------------------------------------------


def _tables(db: sqlite3.Connection) -> set[str]:
    rows = db.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    return {r[0] for r in rows} - {"sqlite_sequence"}


def test_migrate_blank_database(tmp_path: Path) -> None:
    """A ledger without tables (an older, empty _migrations) gets every table, once."""
    db = sqlite3.connect(tmp_path / "old.sqlite3", isolation_level=None)
    db.execute("CREATE TABLE _migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    assert migrate(db) == [name for name, _ in MIGRATIONS]
    assert _tables(db) == TABLES | {"_migrations"}
    assert migrate(db) == []
    db.close()


def test_reopened_ledger_keeps_its_rows(tmp_path: Path) -> None:
    """Opening a ledger again applies nothing new and keeps what it holds."""
    path = tmp_path / "ledger.sqlite3"
    ledger = Ledger.open(path)
    ledger.learn_limit("gpt-4o", 90_000)
    ledger.close()
    again = Ledger.open(path)
    assert again.learned_limit("gpt-4o") == 90_000
    applied = again.db.execute("SELECT COUNT(*) FROM _migrations").fetchone()[0]
    assert applied == len(MIGRATIONS)
    again.close()
    assert oct(path.stat().st_mode & 0o777) == oct(0o600)
