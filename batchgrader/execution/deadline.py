"""The deadline: batches that will not finish in time are finished directly.

``grade --deadline 2h`` runs the batches as usual. While they run, the rows still
outstanding are compared with what direct mode can do before the deadline, at the
measured direct throughput (the pilot's, or a cautious default): once waiting longer
would leave too little time, the unfinished batches are cancelled, every row they
finished is kept, and the rest is finished directly (within the budget).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from batchgrader.errors import UsageError

#: Seconds per direct request assumed when nothing was measured (conservative).
DEFAULT_SECONDS_PER_REQUEST = 4.0
#: Extra time kept before the deadline, as a share of the direct finish's duration.
MARGIN = 0.25
#: At least this long is kept for the switch itself (cancelling, collecting).
MIN_SWITCH_SECONDS = 120.0
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_deadline(text: str, *, now: datetime) -> datetime:
    """A deadline from a duration (``40s``, ``90m``, ``2h``, ``1d``) or an ISO 8601 time."""
    value = text.strip()
    match = _DURATION.fullmatch(value)
    if match:
        return now + timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"--deadline {text!r} is neither a duration (40s, 90m, 2h, 1d) nor a time "
            "(2026-12-01T18:00:00+01:00).",
            hint="A time without an offset is read as UTC.",
        ) from None
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    if moment <= now:
        raise UsageError(f"--deadline {text!r} is already past ({moment.isoformat()}).")
    return moment


@dataclass(frozen=True)
class DeadlinePlan:
    """When to give up waiting on batches, for a given amount of outstanding work."""

    deadline: datetime
    rows_per_second: float

    def finish_seconds(self, outstanding: int) -> float:
        """Seconds direct mode needs for ``outstanding`` rows, margin included."""
        work = outstanding / max(self.rows_per_second, 1e-6)
        return max(work * (1 + MARGIN), MIN_SWITCH_SECONDS)

    def switch_at(self, outstanding: int) -> datetime:
        return self.deadline - timedelta(seconds=self.finish_seconds(outstanding))

    def due(self, now: datetime, outstanding: int) -> bool:
        return outstanding > 0 and now >= self.switch_at(outstanding)


def default_rate(concurrency: int) -> float:
    """Direct rows per second assumed when no pilot measured it."""
    return concurrency / DEFAULT_SECONDS_PER_REQUEST
