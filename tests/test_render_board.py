"""The run board: fits 80 and 60 columns, counts whole files, shows the time since each
batch was created, and prints heartbeat lines without a terminal."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from batchgrader.execution.batch import BatchExecutor
from batchgrader.execution.events import ChunkEvent
from batchgrader.render.board import HEARTBEAT_SECONDS, RunBoard
from tests.fakes.batch_api import FakeBatchAPI
from tests.test_batch_executor import IDENTITY, Setup
from tests.test_render_tables import assert_fits, draw

FILE = "/home/researcher/essay-grading/data/2026/answers_01.csv"
BATCH = "batch_6801f2a3b4c5d6e7f8091a2b3c4d5e6f"


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


def event(chunk: int, status: str, **fields: object) -> ChunkEvent:
    values: dict[str, object] = {
        "job_id": "20261201-024512-a1b2c3",
        "file": FILE,
        "chunk": chunk,
        "chunks": 236,
        "status": status,
        "batch_id": BATCH[:-1] + str(chunk % 10),
        "completed": 49_990,
        "failed": 10,
        "total": 50_000,
        "job_requests": 11_783_456,
    }
    return ChunkEvent(**(values | fields))  # type: ignore[arg-type]


def board_of(console: Console, clock: Clock) -> RunBoard:
    return RunBoard(console, clock=clock)


@pytest.mark.parametrize("width", [80, 60])
def test_live_table_fits(width: int) -> None:
    """The live table fits 80 and 60 columns; batch ids, counts and the file stay whole."""
    clock = Clock()
    board = board_of(Console(file=io.StringIO(), force_terminal=False), clock)
    board.handle(event(0, "completed", tokens=9_876_543, cost="1234.5678"))
    board.handle(event(1, "in_progress", error="enqueued-token limit: will resubmit"))
    text = draw(board.table(), width)
    assert_fits(text, width, ["answers_01.csv", "49,990/50,000", "will"])
    if "batch" in text.splitlines()[1]:
        assert_fits(text, width, [BATCH[:-1] + "0", BATCH[:-1] + "1"])
    assert "[1]" not in text  # batch ids are dropped, not listed: jobs show has them
    assert "99,980 of 11,783,456 requests done, 20 failed" in text


def test_footer_counts_the_whole_file() -> None:
    """The totals count every request of the file, not only the chunks submitted so far."""
    board = board_of(Console(file=io.StringIO(), force_terminal=False), Clock())
    sizes = {"total": 60, "job_requests": 120}  # two chunks of 60 of a file's 120 requests
    board.handle(event(0, "in_progress", completed=10, failed=0, **sizes))
    board.handle(event(1, "validating", completed=0, failed=0, **sizes))
    assert "10 of 120 requests done, 0 failed" in draw(board.table(), 100)


def test_waited_is_the_time_since_the_batch_was_created() -> None:
    """The waited column counts from the batch's creation, and stops when it finishes."""
    clock = Clock()
    board = board_of(Console(file=io.StringIO(), force_terminal=False), clock)
    board.handle(event(0, "in_progress", waited=120.0))
    clock.t += 65
    assert "3m05s" in draw(board.table(), 100)
    board.handle(event(0, "completed"))
    clock.t += 3_600
    assert "3m05s" in draw(board.table(), 100)


def test_heartbeat_after_silence_without_a_terminal() -> None:
    """Off a terminal a long wait prints one heartbeat line per interval, then stops."""
    out = io.StringIO()
    clock = Clock()
    board = board_of(Console(file=out, force_terminal=False, width=200), clock)
    sizes = {"total": 5_000, "job_requests": 5_000}
    board.handle(event(0, "in_progress", completed=1_200, failed=0, **sizes))
    printed = len(out.getvalue().splitlines())
    clock.t += HEARTBEAT_SECONDS - 1
    board.tick()
    assert len(out.getvalue().splitlines()) == printed  # not yet
    clock.t += 2
    board.tick()
    beat = out.getvalue().splitlines()[-1]
    assert beat == (
        "answers_01.csv: still waiting: 1 in_progress | 1,200/5,000 done, 0 failed | 3m01s elapsed"
    )
    board.tick()
    assert out.getvalue().splitlines()[-1] == beat and out.getvalue().count(beat) == 1
    board.handle(event(0, "completed", completed=5_000, failed=0, **sizes))
    clock.t += 10 * HEARTBEAT_SECONDS
    board.tick()
    assert "still waiting" not in out.getvalue().splitlines()[-1]  # nothing is running


def test_quiet_board_has_no_heartbeat() -> None:
    """A quiet board (--json, --quiet) prints nothing, heartbeats included."""
    out = io.StringIO()
    clock = Clock()
    board = RunBoard(Console(file=out, force_terminal=False), quiet=True, clock=clock)
    board.handle(event(0, "in_progress"))
    clock.t += 10 * HEARTBEAT_SECONDS
    board.tick()
    assert out.getvalue() == ""


def test_executor_ticks_every_poll_round(fake_api: FakeBatchAPI, isolated_env: Path) -> None:
    """The executor calls on_tick once per poll round, and its events carry the job's size."""
    setup = Setup(isolated_env, 4, {"chunking.split_row_limit": 2})
    fake_api.polls_per_state = 2
    ticks: list[int] = []
    executor = BatchExecutor(
        setup.client,
        setup.ledger,
        setup.settings,
        setup.spec,
        IDENTITY,
        on_event=setup.events.append,
        clock=setup.clock,
        on_tick=lambda: ticks.append(len(setup.clock.sleeps)),
    )
    chunks = executor.run(setup.job)
    assert [c.status for c in chunks] == ["done", "done"]
    assert len(ticks) == len(setup.clock.sleeps) >= 2
    assert ticks == list(range(len(ticks)))  # each before its round's sleep
    assert {e.job_requests for e in setup.events} == {4}


def test_direct_chunks_show_flight_rate_and_eta() -> None:
    """A direct chunk shows requests in flight, rows and tokens a second, and its ETA;
    without a terminal its progress is a line now and then, not one per answer."""
    out = io.StringIO()
    clock = Clock()
    board = board_of(Console(file=out, force_terminal=False, width=120), clock)
    running = {"batch_id": None, "mode": "direct", "completed": 400, "failed": 0, "total": 1_000}
    rates = {"in_flight": 16, "rows_per_second": 40.0, "tokens_per_second": 3_400.0}
    board.handle(event(0, "running", **running, **rates))
    clock.t += 1
    board.handle(event(0, "running", **(running | {"completed": 440}), **rates))
    lines = out.getvalue().splitlines()
    assert len(lines) == 1  # the second update came too soon for its own line
    assert "16 in flight, 40.0 rows/s, 3,400 tokens/s, ETA 15s" in lines[0]
    clock.t += 60
    board.handle(event(0, "running", **(running | {"completed": 900}), **rates))
    assert "ETA 2s" in out.getvalue().splitlines()[-1]
    drawn = " ".join(draw(board.table(), 120).split())
    assert "direct: 16 in flight" in drawn
    assert drawn.startswith("Direct calls: answers_01.csv")  # not "Batches"
    assert "900 of 11,783,456 requests done, 0 failed; spent so far $0.00" in drawn


def test_a_board_of_batches_and_direct_calls_is_of_chunks() -> None:
    """A pilot or a deadline's tail mixes the two: the board names neither alone."""
    board = board_of(Console(file=io.StringIO(), force_terminal=False), Clock())
    board.handle(event(0, "in_progress"))
    assert draw(board.table(), 80).startswith("Batches: answers_01.csv")
    board.handle(event(1, "running", batch_id=None, mode="direct"))
    assert draw(board.table(), 80).startswith("Chunks: answers_01.csv")
