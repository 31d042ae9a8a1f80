"""One job, one process; one budget, one ledger: concurrent runs as real processes.

Each test starts ``python -m batchgrader`` subprocesses against the fake Batch API (it
runs in the test process over real HTTP) and holds the fake at a chosen point, so the
processes overlap exactly where the issue saw them collide (issue 13, items 1 and 2):
a second run of the same job waits (or, with ``--no-wait``, exits 2), two runs cannot
pass a budget together, and no committed spend is left behind.
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from filelock import FileLock
from typer.testing import Result

from batchgrader.execution.jobs import identity_of
from batchgrader.execution.locks import locks_dir
from batchgrader.planning.spec import request_spec
from batchgrader.planning.workload import Workload
from batchgrader.settings.loading import load_settings
from tests.fakes.batch_api import FakeBatchAPI
from tests.fakes.judge import judge_score
from tests.helpers import child_env, write_table

Invoke = Callable[..., Result]
USER = "Please evaluate the following text: "
HOLD = 10**6  # polls per lifecycle step: a batch that never moves on its own
DEADLINE = 60.0  # seconds any wait in these tests may take before it fails


def _texts(n: int, tag: str = "") -> list[str]:
    return [f"Note {tag}{i}: tides rise about {i + 2} metres at spring tide." for i in range(n)]


def _input(folder: Path, texts: list[str], name: str = "d.csv") -> Path:
    frame = pl.DataFrame({"id": list(range(len(texts))), "response": texts})
    return write_table(folder / name, frame)


def _scores(path: Path, texts: list[str]) -> None:
    frame = pl.read_csv(path)
    assert frame["llm_score"].to_list() == [judge_score(USER + t) for t in texts]
    assert frame["llm_error"].null_count() == len(texts)


@dataclass
class Proc:
    """A batchgrader subprocess whose stdout and stderr go to files (readable while it runs)."""

    popen: subprocess.Popen[bytes]
    out: Path
    err: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stderr(self) -> str:
        """Its stderr so far, with the terminal's line wrapping undone."""
        return re.sub(r"\s+", " ", self.err.read_text(encoding="utf-8", errors="replace"))

    def finish(self) -> tuple[int, str, str]:
        """Wait (bounded) for it to exit: (exit code, stdout, stderr)."""
        try:
            code = self.popen.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            pytest.fail(f"process {self.pid} did not finish:\n{self.stderr()}")
        return code, self.out.read_text(), self.stderr()


@pytest.fixture
def start() -> Callable[..., Proc]:
    """Start ``batchgrader ARGS`` in a folder, with this test's environment (and the
    suite's bytecode cache, set in ``conftest.py``)."""

    def run(cwd: Path, *args: object) -> Proc:
        n = len(list(cwd.glob("proc-*.err")))
        out, err = cwd / f"proc-{n}.out", cwd / f"proc-{n}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            popen = subprocess.Popen(
                [sys.executable, "-m", "batchgrader", *map(str, args)],
                cwd=cwd,
                env=child_env(),
                stdout=stdout,
                stderr=stderr,
            )
        return Proc(popen, out, err)

    return run


def _until(condition: Callable[[], bool], procs: list[Proc], what: str) -> None:
    """Poll ``condition`` (bounded) while every process of ``procs`` still runs."""
    deadline = time.monotonic() + DEADLINE
    while not condition():
        for proc in procs:
            if proc.popen.poll() is not None:
                pytest.fail(f"process {proc.pid} exited before {what}:\n{proc.stderr()}")
        if time.monotonic() > deadline:
            for proc in procs:
                proc.popen.kill()
            pytest.fail(f"timed out waiting for {what}:\n" + "\n".join(p.stderr() for p in procs))
        time.sleep(0.02)


def _ledger(home: Path, query: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(home / "data" / "ledger.sqlite3") as db:
        return db.execute(query).fetchall()


def _committed(home: Path) -> int:
    """Usage events still held as committed spend (estimates and reservations)."""
    (count,) = _ledger(home, "SELECT COUNT(*) FROM usage_events WHERE committed = 1")[0]
    assert isinstance(count, int)
    return count


def _waiting(proc: Proc) -> bool:
    return "waiting (Ctrl-C to leave it)" in proc.stderr()


# --- one job, one process (item 1) ------------------------------------------------------


def test_same_file_three_times_at_once_makes_one_batch_per_chunk(
    fake_api: FakeBatchAPI, isolated_env: Path, home: Path, start: Callable[..., Proc]
) -> None:
    """Three ``grade`` runs of one file at once: one batch per chunk, the later runs wait
    naming the running process, ``--no-wait`` exits 2, and every run exits 0 with no
    committed spend left and one graded file."""
    texts = _texts(6)
    src = _input(isolated_env, texts)
    (isolated_env / "batchgrader.toml").write_text("[chunking]\nsplit_row_limit = 3\n")
    fake_api.polls_per_state = HOLD
    first = start(isolated_env, "grade", src)
    _until(lambda: fake_api.batches_created == 2, [first], "both batches")
    later = [start(isolated_env, "grade", src) for _ in range(2)]
    _until(lambda: all(_waiting(p) for p in later), [first, *later], "the waiting lines")
    for proc in later:
        assert f"The job of d.csv is being run by process {first.pid}; waiting" in proc.stderr()

    code, _, err = start(isolated_env, "grade", src, "--no-wait").finish()
    assert code == 2, err
    assert f"is being run by process {first.pid}; nothing was done" in err
    assert "Traceback" not in err

    fake_api.polls_per_state = 1
    for proc in [first, *later]:
        code, _, err = proc.finish()
        assert code == 0, err
        assert "Traceback" not in err
    assert fake_api.batches_created == 2
    assert _committed(home) == 0
    assert sorted(p.name for p in (isolated_env / "output").iterdir()) == ["d.graded.csv"]
    _scores(isolated_env / "output" / "d.graded.csv", texts)
    usage = _ledger(home, "SELECT batch_id FROM usage_events")
    assert sorted(str(u[0]) for u in usage) == sorted(fake_api.batches)


def test_jobs_resume_twice_at_once(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path, start: Callable[..., Proc]
) -> None:
    """Two ``jobs resume ID`` at once: the second waits (``jobs retry --no-wait`` exits
    2), both exit 0, nothing is created again and the usage is recorded once."""
    texts = _texts(4)
    src = _input(isolated_env, texts)
    assert bg("grade", src, "--detach").exit_code == 0
    (job_id,) = (str(r[0]) for r in _ledger(home, "SELECT id FROM jobs"))
    fake_api.polls_per_state = HOLD
    first = start(isolated_env, "jobs", "resume", job_id)
    _until(lambda: fake_api.request_count("retrieve") >= 1, [first], "the first poll")
    second = start(isolated_env, "jobs", "resume", job_id)
    _until(lambda: _waiting(second), [first, second], "the waiting line")
    assert f"Job {job_id} is being run by process {first.pid}" in second.stderr()
    code, _, err = start(isolated_env, "jobs", "retry", job_id, "--no-wait").finish()
    assert code == 2, err
    assert f"Job {job_id} is being run by process {first.pid}; nothing was done" in err
    fake_api.polls_per_state = 1
    for proc in (first, second):
        code, _, err = proc.finish()
        assert code == 0, err
    assert fake_api.batches_created == 1
    assert _committed(home) == 0
    assert _ledger(home, "SELECT COUNT(*) FROM usage_events")[0][0] == 1
    _scores(isolated_env / "output" / "d.graded.csv", texts)


def test_a_waiting_run_holds_no_later_lock(
    fake_api: FakeBatchAPI, isolated_env: Path, home: Path, start: Callable[..., Proc]
) -> None:
    """Locks are taken in one order (the fingerprints') whatever the order of the files,
    so a run waiting for one job holds none that sorts after it: two runs of the same
    files in opposite orders can never wait for each other in a circle."""
    texts = {name: _texts(3, name) for name in ("p", "q")}
    sources = {name: _input(isolated_env, t, f"{name}.csv") for name, t in texts.items()}
    spec = request_spec(load_settings().settings)
    fps = {name: identity_of(Workload.of(path, spec), spec)[1] for name, path in sources.items()}
    low, high = sorted(fps, key=fps.__getitem__)
    folder = locks_dir(home / "data")
    folder.mkdir(parents=True)
    held = FileLock(folder / f"{fps[low][:32]}.lock")  # another process runs the first job
    held.acquire()
    try:
        # Files in the other order: taking locks as given would take `high`, then wait.
        proc = start(isolated_env, "grade", sources[high], sources[low], "--detach")
        _until(lambda: _waiting(proc), [proc], "the waiting line")
        assert not (folder / f"{fps[high][:32]}.pid").exists()
        probe = FileLock(folder / f"{fps[high][:32]}.lock")
        probe.acquire(timeout=0)  # free: the waiting run does not hold it
        probe.release()
    finally:
        held.release()
    code, _, err = proc.finish()
    assert code == 0, err
    assert fake_api.batches_created == 2


def test_a_file_and_its_copy_in_one_run(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """A file given twice, or with a byte-identical copy, in one command is one job: one
    batch, both graded files written, no self-deadlock."""
    texts = _texts(3)
    src = _input(isolated_env, texts, "a.csv")
    copy = isolated_env / "b.csv"
    copy.write_bytes(src.read_bytes())
    result = bg("grade", src, copy, src, "--force")
    assert result.exit_code == 0, result.output
    assert fake_api.batches_created == 1
    for name in ("a", "b"):
        _scores(isolated_env / "output" / f"{name}.graded.csv", texts)


# --- one budget (item 2) ----------------------------------------------------------------


def test_two_runs_cannot_pass_a_monthly_budget_together(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path, start: Callable[..., Proc]
) -> None:
    """While one run (its upload held by the server) has passed the monthly budget, a
    second run of another file is refused: the check and the reservation are one ledger
    transaction. A run killed with its reservation is no one's: the next run drops it."""
    texts = {name: _texts(4, name) for name in ("a", "b")}
    sources = {name: _input(isolated_env, t, f"{name}.csv") for name, t in texts.items()}
    dry = bg("grade", sources["a"], "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    worst = Decimal(json.loads(dry.stdout)["estimate"]["total_worst"])
    budget = worst * Decimal("1.5")  # room for one run's worst case, not two
    (isolated_env / "batchgrader.toml").write_text(f'[budget]\nmonthly_budget_usd = "{budget}"\n')

    fake_api.inject_fault("upload", "hold")
    first = start(isolated_env, "grade", sources["a"])
    _until(lambda: fake_api.held == 1, [first], "the first run's upload")
    code, _, err = start(isolated_env, "grade", sources["b"]).finish()
    assert code == 2, err
    assert "budget.monthly_budget_usd" in err and "Nothing was submitted" in err
    assert fake_api.batches_created == 0

    first.popen.send_signal(signal.SIGKILL)  # dies holding its reservation
    first.popen.wait(timeout=DEADLINE)
    fake_api.release_held()
    assert _committed(home) == 1  # the dead run's reservation
    second = bg("grade", sources["b"])
    assert second.exit_code == 0, second.output
    resumed = bg("grade", sources["a"])
    assert resumed.exit_code == 0, resumed.output
    assert fake_api.batches_created == 2
    assert _committed(home) == 0
    spent = sum(Decimal(str(r[0])) for r in _ledger(home, "SELECT cost FROM usage_events"))
    assert 0 < spent < budget
    for name, t in texts.items():
        _scores(isolated_env / "output" / f"{name}.graded.csv", t)
