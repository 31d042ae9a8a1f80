"""The run board: a live table on a terminal, one plain line per change elsewhere."""

from __future__ import annotations

import io

from rich.console import Console

from batchgrader.execution.events import ChunkEvent
from batchgrader.render.board import RunBoard


def _event(status: str, done: int = 0, cost: str | None = None, chunk: int = 0) -> ChunkEvent:
    return ChunkEvent(
        job_id="j",
        file="/data/answers.csv",
        chunk=chunk,
        chunks=2,
        status=status,
        batch_id=f"batch_{chunk}",
        completed=done,
        total=10,
        cost=cost,
    )


def test_plain_lines_when_not_a_terminal() -> None:
    """Without a terminal each state change is one line and repeats are not printed."""
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    with RunBoard(console) as board:
        board.handle(_event("validating"))
        board.handle(_event("in_progress", 3))
        board.handle(_event("in_progress", 6))
        board.handle(_event("completed", 10, cost="0.0004742"))
    lines = out.getvalue().splitlines()
    assert lines == [
        "answers.csv chunk 1/2 | validating | batch_0 | 0/10 done, 0 failed",
        "answers.csv chunk 1/2 | in_progress | batch_0 | 3/10 done, 0 failed",
        "answers.csv chunk 1/2 | completed | batch_0 | 10/10 done, 0 failed | $0.000474",
    ]
    assert "\x1b[" not in out.getvalue()


def test_live_table_on_a_terminal() -> None:
    """On a terminal the board draws one row per chunk with totals in the caption."""
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200, color_system=None)
    with RunBoard(console) as board:
        board.handle(_event("completed", 10, cost="0.5", chunk=0))
        board.handle(_event("in_progress", 4, chunk=1))
    text = out.getvalue()
    assert "batch_0" in text
    assert "batch_1" in text
    assert "14 of 20 requests done, 0 failed; collected so far $0.5000" in text


def test_quiet_board_prints_nothing() -> None:
    """A quiet board (--json, --quiet) prints nothing."""
    out = io.StringIO()
    with RunBoard(Console(file=out, force_terminal=False), quiet=True) as board:
        board.handle(_event("completed", 10))
    assert out.getvalue() == ""
