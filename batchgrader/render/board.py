"""The run board: a live table of chunks on a terminal, plain lines elsewhere.

It is fed ``ChunkEvent``s by the runner and knows nothing else about the run.
"""

from __future__ import annotations

import time
from decimal import Decimal
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from batchgrader.execution.events import ChunkEvent
from batchgrader.render.tables import money

#: Statuses after which a chunk's clock stops.
FINAL = frozenset({"completed", "failed", "expired", "cancelled", "halted"})

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


class RunBoard:
    """Live chunk table (TTY) or one log line per state change (pipes, CI)."""

    def __init__(self, console: Console, *, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self.live_mode = console.is_terminal and not quiet
        self._rows: dict[tuple[str, int], ChunkEvent] = {}
        self._started: dict[tuple[str, int], float] = {}
        self._ended: dict[tuple[str, int], float] = {}
        self._live: Live | None = None

    def __enter__(self) -> RunBoard:
        return self  # the live table starts with the first event (after any question)

    def _start(self) -> None:
        self._live = Live(self._table(), console=self.console, refresh_per_second=4)
        self._live.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.update(self._table())
            self._live.__exit__(exc_type, exc, tb)
            self._live = None

    def handle(self, event: ChunkEvent) -> None:
        key = (event.file, event.chunk)
        previous = self._rows.get(key)
        self._started.setdefault(key, time.monotonic())
        if event.status in FINAL:
            self._ended.setdefault(key, time.monotonic())
        else:
            self._ended.pop(key, None)
        self._rows[key] = event
        if self.live_mode and self._live is None:
            self._start()
        if self._live is not None:
            self._live.update(self._table())
        elif self.quiet:
            return
        elif previous is None or previous.status != event.status or event.error:
            self.console.print(self._line(event), highlight=False, soft_wrap=True)

    def _line(self, e: ChunkEvent) -> str:
        parts = [f"{_name(e.file)} chunk {e.chunk + 1}/{e.chunks}", e.status]
        if e.batch_id:
            parts.append(e.batch_id)
        if e.total:
            parts.append(f"{e.completed}/{e.total} done, {e.failed} failed")
        if e.cost is not None:
            parts.append(money(Decimal(e.cost)))
        if e.error:
            parts.append(e.error)
        return " | ".join(parts)

    def _table(self) -> Table:
        events = list(self._rows.values())
        done = sum(e.completed for e in events)
        failed = sum(e.failed for e in events)
        total = sum(e.total for e in events)
        spent = sum((Decimal(e.cost) for e in events if e.cost is not None), Decimal(0))
        table = Table(
            title="Batches",
            title_justify="left",
            expand=False,
            caption=f"{done:,} of {total:,} requests done, {failed:,} failed; "
            f"collected so far {money(spent)}",
            caption_justify="left",
        )
        for name in (
            "file",
            "chunk",
            "batch",
            "status",
            "progress",
            "done/failed/total",
            "elapsed",
            "tokens",
            "cost",
            "error",
        ):
            table.add_column(name, no_wrap=name != "error", overflow="fold")
        for key, e in self._rows.items():
            total = e.total or 1
            table.add_row(
                _name(e.file),
                f"{e.chunk + 1}/{e.chunks}",
                e.batch_id or "-",
                Text(e.status, style=STATUS_STYLE.get(e.status, "")),
                ProgressBar(total=total, completed=e.completed + e.failed, width=16),
                f"{e.completed}/{e.failed}/{e.total}",
                f"{self._ended.get(key, time.monotonic()) - self._started[key]:.0f}s",
                f"{e.tokens:,}" if e.tokens else "-",
                money(Decimal(e.cost)) if e.cost is not None else "-",
                Text(e.error or "", style="red"),
            )
        return table


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]
