"""The run board: a live table of chunks on a terminal, plain lines elsewhere.

It is fed ``ChunkEvent``s by the executors and ``tick()``s by their poll loops, and
knows nothing else about the run. On a terminal the table is redrawn as it changes and
fits the terminal's width (render/fit.py). Elsewhere (a pipe, CI), each state change is
one line, and a long quiet wait prints a heartbeat line at most every
``heartbeat_seconds`` (status, done/total, elapsed), so a log never stays silent for
hours. Time comes from an injected clock.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from types import TracebackType

from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.live import Live
from rich.text import Text

from batchgrader.execution.events import ChunkEvent
from batchgrader.render.fit import FitTable
from batchgrader.render.values import duration, money, name

#: Statuses after which a chunk's clock stops.
FINAL = frozenset({"completed", "ended", "failed", "expired", "cancelled", "halted", "stuck"})
#: Seconds of silence after which a board without a terminal prints a heartbeat.
HEARTBEAT_SECONDS = 180.0
#: Width of a chunk's progress bar on the live board.
BAR = 12

STATUS_STYLE = {
    "validating": "cyan",
    "in_progress": "blue",
    "finalizing": "magenta",
    "completed": "green",
    "failed": "bold red",
    "expired": "yellow",
    "cancelled": "yellow",
    "cancelling": "yellow",
    "waiting": "yellow",
    "halted": "dim",
}


@dataclass
class _Chunk:
    event: ChunkEvent
    #: Board-clock time the batch was created at the provider (None: not created).
    created: float | None
    #: Board-clock time the chunk reached a final status (its clock stops there).
    ended: float | None


class RunBoard:
    """Live chunk table (terminal) or one log line per state change (pipes, CI)."""

    def __init__(
        self,
        console: Console,
        *,
        quiet: bool = False,
        clock: Callable[[], float] = time.monotonic,
        heartbeat_seconds: float = HEARTBEAT_SECONDS,
    ) -> None:
        self.console = console
        self.quiet = quiet
        self.clock = clock
        self.heartbeat_seconds = heartbeat_seconds
        self.live_mode = console.is_terminal and not quiet
        self._chunks: dict[tuple[str, int], _Chunk] = {}
        self._jobs: dict[str, int] = {}  # file -> requests of the whole job
        self._first_seen: dict[str, float] = {}
        self._last_line = clock()
        self._live: Live | None = None

    def __enter__(self) -> RunBoard:
        return self  # the live table starts with the first event (after any question)

    def _start(self) -> None:
        self._live = Live(_View(self), console=self.console, refresh_per_second=4)
        self._live.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.refresh()
            self._live.__exit__(exc_type, exc, tb)
            self._live = None

    # --- input ----------------------------------------------------------------------

    def handle(self, event: ChunkEvent) -> None:
        """Take one chunk event: redraw the table, or print a line if the state changed."""
        now = self.clock()
        key = (event.file, event.chunk)
        previous = self._chunks.get(key)
        self._first_seen.setdefault(event.file, now)
        if event.job_requests:
            self._jobs[event.file] = event.job_requests
        created = previous.created if previous else None
        if event.waited is not None:
            created = now - event.waited
        elif created is None and event.batch_id:
            created = now
        ended = None
        if event.status in FINAL:
            ended = previous.ended if previous and previous.ended is not None else now
        self._chunks[key] = _Chunk(event, created, ended)
        if self.live_mode and self._live is None:
            self._start()
        if self._live is not None:
            self._live.refresh()
        elif self.quiet:
            return
        elif previous is None or previous.event.status != event.status or event.error:
            self._print(self.line(event))
        elif event.mode == "direct" and now - self._last_line >= DIRECT_LINE_SECONDS:
            self._print(self.line(event))  # direct answers arrive steadily: a line a while

    def tick(self) -> None:
        """A poll round ended: without a terminal, print a heartbeat after long silence."""
        if self._live is not None:
            self._live.refresh()
            return
        if self.quiet or self.live_mode:
            return
        if self.clock() - self._last_line < self.heartbeat_seconds:
            return
        for file in self._first_seen:
            line = self.heartbeat(file)
            if line is not None:
                self._print(line)
        self._last_line = self.clock()

    def _print(self, line: str) -> None:
        self.console.print(line, highlight=False, markup=False, soft_wrap=True)
        self._last_line = self.clock()

    # --- what is shown --------------------------------------------------------------

    def line(self, e: ChunkEvent) -> str:
        """One chunk's state change as a plain line."""
        parts = [f"{name(e.file)} chunk {e.chunk + 1}/{e.chunks}", e.status]
        if e.batch_id:
            parts.append(e.batch_id)
        if e.total:
            parts.append(f"{e.completed:,}/{e.total:,} done, {e.failed:,} failed")
        if e.mode == "direct" and e.status == "running":
            parts.append(direct_rate(e))
        if e.cost is not None:
            parts.append(money(Decimal(e.cost)))
        if e.error:
            parts.append(e.error)
        return " | ".join(parts)

    def heartbeat(self, file: str) -> str | None:
        """``answers.csv: still waiting: 2 in_progress, 1 validating | 1,200/5,000 done,
        0 failed | 2h03m elapsed``; None once every chunk of the file is final."""
        chunks = [c for (f, _), c in list(self._chunks.items()) if f == file]
        running = Counter(c.event.status for c in chunks if c.ended is None)
        if not running:
            return None
        done, failed, total = self._totals([c.event for c in chunks], file)
        statuses = ", ".join(f"{n} {status}" for status, n in running.most_common())
        elapsed = duration(self.clock() - self._first_seen[file])
        return (
            f"{name(file)}: still waiting: {statuses} | {done:,}/{total:,} done, "
            f"{failed:,} failed | {elapsed} elapsed"
        )

    def _totals(self, events: list[ChunkEvent], file: str | None = None) -> tuple[int, int, int]:
        done = sum(e.completed for e in events)
        failed = sum(e.failed for e in events)
        files = [file] if file is not None else list(self._first_seen)  # a snapshot
        total = 0
        for f in files:
            seen = sum(e.total for e in events if e.file == f)
            total += max(self._jobs.get(f, 0), seen)
        return done, failed, total

    def waited(self, chunk: _Chunk) -> str:
        if chunk.created is None:
            return "-"
        return duration((chunk.ended or self.clock()) - chunk.created)

    def table(self) -> FitTable:
        """The live table as it stands (its caption: the totals of the whole files)."""
        chunks = list(self._chunks.values())  # a snapshot: Live redraws from its own thread
        events = [c.event for c in chunks]
        done, failed, total = self._totals(events)
        spent = sum((Decimal(e.cost) for e in events if e.cost is not None), Decimal(0))
        files = list(self._first_seen)
        several = len(files) > 1
        modes = {e.mode for e in events}
        # Chunks: batches and direct calls in one run (a pilot, a deadline's tail).
        what = (
            "Direct calls" if modes == {"direct"} else "Batches" if modes <= {"batch"} else "Chunks"
        )
        title = what + ("" if several or not files else f": {name(files[0])}")
        # A batch's spend is known once collected; a direct call's as it is answered.
        spent_so_far = "collected so far" if what == "Batches" else "spent so far"
        caption = Text(
            f"{done:,} of {total:,} requests done, {failed:,} failed; "
            f"{spent_so_far} {money(spent)}",
        )
        direct = [e for e in events if e.mode == "direct" and e.status == "running"]
        captions: list[Text] = [caption]
        if direct:
            captions.append(Text("direct: " + "; ".join(direct_rate(e) for e in direct)))
        table = FitTable(
            title,
            caption=captions,
            # batch ids are dropped, not moved under the table: a board of many chunks
            # would double its height (jobs show lists them).
            shrink=("progress", "batch", "tokens", "cost", "failed", "waited", "file", "error"),
        )
        if several:
            table.column("file", "path")
        table.column("chunk", "num")
        table.column("batch")
        table.column("status")
        table.column("progress")
        table.column("done", "num")
        table.column("failed", "num")
        table.column("waited", "num")
        table.column("tokens", "num")
        table.column("cost", "num")
        table.column("error", "wrap", style="red")
        for chunk in chunks:
            e = chunk.event
            cells = [name(e.file)] if several else []
            table.row(
                *cells,
                f"{e.chunk + 1}/{e.chunks}",
                e.batch_id or ("direct" if e.mode == "direct" else "-"),
                Text(e.status, style=STATUS_STYLE.get(e.status, "")),
                _bar(e.completed + e.failed, e.total),
                f"{e.completed:,}/{e.total:,}",
                f"{e.failed:,}",
                self.waited(chunk),
                f"{e.tokens:,}" if e.tokens else "-",
                money(Decimal(e.cost)) if e.cost is not None else "-",
                e.error or "",
            )
        return table


#: Seconds between two plain progress lines of a direct chunk (no terminal).
DIRECT_LINE_SECONDS = 30.0


def direct_rate(e: ChunkEvent) -> str:
    """``12 in flight, 41.2 rows/s, 3,400 tokens/s, ETA 1m32s`` of a direct chunk."""
    parts = [f"{e.in_flight:,} in flight"]
    rate = e.rows_per_second or 0.0
    if rate > 0:
        parts.append(f"{rate:,.1f} rows/s")
        if e.tokens_per_second:
            parts.append(f"{e.tokens_per_second:,.0f} tokens/s")
        left = max(0, e.total - e.completed - e.failed)
        if left:
            parts.append(f"ETA {duration(left / rate)}")
    return ", ".join(parts)


def _bar(done: int, total: int) -> Text:
    filled = round(BAR * done / total) if total else 0
    return Text.assemble(("━" * filled, "green"), ("━" * (BAR - filled), "grey30"))


class _View:
    """The board's live renderable: rebuilt at each refresh, so its clocks move."""

    def __init__(self, board: RunBoard) -> None:
        self.board = board

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield Group(self.board.table())
