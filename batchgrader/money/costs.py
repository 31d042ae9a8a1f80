"""Usage reports from the ledger: time windows, groups, ``--since``/``--until`` parsing.

Every figure comes from the ledger's usage events (one per provider batch). An event is
*committed* while its batch is in flight (the estimate recorded at submission: exact input,
worst-case output) and *spent* once the batch is collected (the provider's own usage
numbers, priced with cached input at its own rate). Reports keep the two apart.

Times are UTC throughout: "today" and "this month" are UTC calendar periods, a naive
date or timestamp given by a user is read as UTC, and ``--by day`` groups by UTC date.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, Field

from batchgrader.errors import UsageError
from batchgrader.ledger.store import Ledger, UsageEvent
from batchgrader.money.grouping import GroupBy

#: Units of a ``--since`` / ``--until`` duration, in the order they are documented.
DURATION_UNITS: dict[str, timedelta] = {
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
_DURATION = re.compile(r"(\d+)\s*([smhdw])")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
#: Days a ``--by day`` breakdown fills with empty days (longer spans list active days only).
MAX_FILLED_DAYS = 400


# --- parsing --------------------------------------------------------------------------


def parse_moment(text: str, *, now: datetime, flag: str = "--since", end: bool = False) -> datetime:
    """A point in time (UTC) from a duration back from ``now`` or a date/timestamp.

    Durations: ``30m``, ``24h``, ``7d``, ``4w`` (also ``90s``). Dates: ``2026-11-01``
    (midnight UTC; with ``end``, the end of that day, so ``--until 2026-11-30`` includes
    the 30th). Timestamps: ISO 8601 with or without an offset (naive = UTC). Also
    ``today``, ``yesterday`` and ``now``. Raises ``UsageError`` naming ``flag``.
    """
    value = text.strip()
    duration = _DURATION.fullmatch(value)
    if duration:
        return now - int(duration.group(1)) * DURATION_UNITS[duration.group(2)]
    keyword = value.lower()
    midnight = day_start(now)
    if keyword == "now":
        return now
    if keyword in ("today", "yesterday"):
        start = midnight - timedelta(days=1 if keyword == "yesterday" else 0)
        return start + timedelta(days=1) if end else start
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(
            f"{flag} {text!r} is neither a duration (30m, 24h, 7d, 4w) nor a date or time "
            "(2026-11-01, 2026-11-01T09:30:00+02:00).",
            hint="A naive date or time is read as UTC.",
        ) from None
    moment = as_utc(moment)
    if end and _DATE.fullmatch(value):
        moment += timedelta(days=1)
    return moment


def parse_window(
    since: str | None, until: str | None, *, now: datetime
) -> tuple[datetime | None, datetime | None]:
    """The ``[since, until)`` window of the flags (None: open on that side)."""
    start = parse_moment(since, now=now, flag="--since") if since is not None else None
    stop = parse_moment(until, now=now, flag="--until", end=True) if until is not None else None
    if start is not None and stop is not None and start >= stop:
        raise UsageError(
            f"--since ({start.isoformat()}) must be before --until ({stop.isoformat()})."
        )
    return start, stop


def as_utc(moment: datetime) -> datetime:
    """``moment`` in UTC; a naive datetime is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def day_start(now: datetime) -> datetime:
    """Midnight UTC of ``now``'s day."""
    return as_utc(now).replace(hour=0, minute=0, second=0, microsecond=0)


def month_start(now: datetime) -> datetime:
    """Midnight UTC of the first day of ``now``'s month."""
    return day_start(now).replace(day=1)


def event_time(event: UsageEvent) -> datetime:
    """When an event was recorded, in UTC."""
    return as_utc(datetime.fromisoformat(event.timestamp))


def in_window(event: UsageEvent, since: datetime | None, until: datetime | None) -> bool:
    """Whether ``event`` falls in ``[since, until)``."""
    moment = event_time(event)
    return (since is None or moment >= since) and (until is None or moment < until)


# --- report models --------------------------------------------------------------------


class Tally(BaseModel):
    """Tokens and dollars of a set of usage events (cost exact; unpriced events apart)."""

    batches: int = 0
    input_tokens: int = 0
    cached_input_tokens: int = 0
    #: Input tokens written to the prompt cache (Anthropic), part of ``input_tokens``.
    cache_write_tokens: int = 0
    output_tokens: int = 0
    reasoning_tokens: int = 0
    total_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    unpriced_batches: int = 0
    requests_completed: int = 0
    requests_failed: int = 0

    def add(self, event: UsageEvent) -> None:
        """Count one more event."""
        self.batches += 1
        self.input_tokens += event.input_tokens
        self.cached_input_tokens += event.cached_input_tokens
        self.cache_write_tokens += event.cache_write_tokens
        self.output_tokens += event.output_tokens
        self.reasoning_tokens += event.reasoning_tokens
        self.total_tokens += event.total_tokens
        if event.cost is None:
            self.unpriced_batches += 1
        else:
            self.cost_usd += event.cost
        self.requests_completed += event.requests_completed
        self.requests_failed += event.requests_failed


class Usage(BaseModel):
    """Spent (collected batches) and committed (batches in flight) side by side."""

    spent: Tally = Field(default_factory=Tally)
    committed: Tally = Field(default_factory=Tally)

    def add(self, event: UsageEvent) -> None:
        """Count ``event`` on its side."""
        (self.committed if event.committed else self.spent).add(event)

    @property
    def cost_usd(self) -> Decimal:
        """Spent plus committed dollars."""
        return self.spent.cost_usd + self.committed.cost_usd

    @property
    def total_tokens(self) -> int:
        """Spent plus committed tokens."""
        return self.spent.total_tokens + self.committed.total_tokens


class Window(Usage):
    """The usage of one time window ``[since, until)``."""

    name: str
    since: datetime | None = None
    until: datetime | None = None


class Group(Usage):
    """The usage of one model, provider, UTC day, input file or job."""

    key: str


class CostReport(BaseModel):
    """What ``batchgrader costs`` prints."""

    generated_at: datetime
    model: str | None
    recorded_events: int
    windows: list[Window]
    by: GroupBy
    breakdown: Window
    groups: list[Group]


# --- building reports -----------------------------------------------------------------


def normalise_model(name: str) -> str:
    """A model name as ``--model`` compares it (case-insensitive, no ``openai/``)."""
    return name.strip().lower().removeprefix("openai/")


def select(
    events: Iterable[UsageEvent],
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    model: str | None = None,
) -> list[UsageEvent]:
    """The events in ``[since, until)`` of ``model`` (None: every model)."""
    wanted = normalise_model(model) if model else None
    return [
        e
        for e in events
        if in_window(e, since, until) and (wanted is None or normalise_model(e.model) == wanted)
    ]


def window(
    name: str, events: Iterable[UsageEvent], since: datetime | None, until: datetime | None
) -> Window:
    """The usage of ``events`` that fall in ``[since, until)``."""
    result = Window(name=name, since=since, until=until)
    for event in select(events, since=since, until=until):
        result.add(event)
    return result


def build_report(
    events: Sequence[UsageEvent],
    *,
    now: datetime,
    since: datetime | None = None,
    until: datetime | None = None,
    by: GroupBy = "model",
    model: str | None = None,
    name: str | None = None,
) -> CostReport:
    """All time, today, and the chosen window (default: the last 7 days), plus a breakdown.

    The breakdown covers the chosen window when ``since``/``until`` is given, else all
    time. ``model`` filters every figure of the report; ``name`` labels the chosen window
    (default: its bounds).
    """
    now = as_utc(now)
    chosen = select(events, model=model)
    custom = since is not None or until is not None
    selected = (
        window(name or _window_name(since, until), chosen, since, until)
        if custom
        else window("last 7 days", chosen, now - timedelta(days=7), None)
    )
    windows = [
        window("all time", chosen, None, None),
        window("today", chosen, day_start(now), None),
        selected,
    ]
    breakdown = selected if custom else windows[0]
    in_scope = select(chosen, since=breakdown.since, until=breakdown.until)
    return CostReport(
        generated_at=now,
        model=model,
        recorded_events=len(events),
        windows=windows,
        by=by,
        breakdown=breakdown,
        groups=group_usage(in_scope, by, now=now, since=breakdown.since, until=breakdown.until),
    )


def window_label(since: str | None, until: str | None) -> str | None:
    """A window's name as the user gave it: ``last 3d``, ``2026-11-01 to 2026-11-30``."""
    if since is None and until is None:
        return None
    start = since.strip() if since is not None else "the start"
    if _DURATION.fullmatch(start) and until is None:
        return f"last {start}"
    start = f"{start} ago" if _DURATION.fullmatch(start) else start
    stop = until.strip() if until is not None else "now"
    stop = f"{stop} ago" if _DURATION.fullmatch(stop) else stop
    return f"{start} to {stop}"


def _window_name(since: datetime | None, until: datetime | None) -> str:
    start = since.isoformat(timespec="seconds") if since else "the start"
    stop = until.isoformat(timespec="seconds") if until else "now"
    return f"{start} to {stop}"


_KEYS: dict[GroupBy, Callable[[UsageEvent], str]] = {
    "model": lambda e: e.model,
    "provider": lambda e: e.provider,
    "day": lambda e: event_time(e).date().isoformat(),
    "file": lambda e: e.source_file or "(unknown)",
    "job": lambda e: e.job_id or "(none)",
}


def group_usage(
    events: Iterable[UsageEvent],
    by: GroupBy,
    *,
    now: datetime,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Group]:
    """Usage per ``by`` key. Days run in date order, with empty days filled in;
    other groups run from the most expensive (then most tokens) down."""
    groups: dict[str, Group] = {}
    key_of = _KEYS[by]
    for event in events:
        key = key_of(event)
        groups.setdefault(key, Group(key=key)).add(event)
    if by != "day":
        return sorted(groups.values(), key=lambda g: (-g.cost_usd, -g.total_tokens, g.key))
    if groups:
        for day in _days(set(groups), now=now, since=since, until=until):
            groups.setdefault(day, Group(key=day))
    return [groups[k] for k in sorted(groups)]


def _days(
    active: set[str], *, now: datetime, since: datetime | None, until: datetime | None
) -> list[str]:
    first = min([date.fromisoformat(min(active))] + ([since.date()] if since else []))
    last_moment = (until - timedelta(microseconds=1)) if until else now
    last = max(date.fromisoformat(max(active)), last_moment.date())
    span = (last - first).days + 1
    if span > MAX_FILLED_DAYS:
        return []
    return [(first + timedelta(days=i)).isoformat() for i in range(span)]


def load_report(
    ledger_path: Path,
    *,
    now: datetime,
    since: datetime | None = None,
    until: datetime | None = None,
    by: GroupBy = "model",
    model: str | None = None,
    name: str | None = None,
) -> CostReport:
    """The report of the ledger at ``ledger_path`` (an absent ledger is an empty one)."""
    return build_report(
        read_events(ledger_path), now=now, since=since, until=until, by=by, model=model, name=name
    )


def read_events(ledger_path: Path) -> list[UsageEvent]:
    """Every usage event of a ledger; none when the ledger does not exist (not created)."""
    if not ledger_path.exists():
        return []
    ledger = Ledger.open(ledger_path)
    try:
        return ledger.usage_events()
    finally:
        ledger.close()


def today_cost(ledger: Ledger, now: datetime | None = None) -> Decimal | None:
    """Dollars spent today (UTC) by every run sharing ``ledger``: collected batches only,
    as ``costs`` shows them; None when nothing priced was collected today."""
    moment = as_utc(now) if now is not None else datetime.now(UTC)
    events = select(ledger.usage_events(), since=day_start(moment))
    spent = [e.cost for e in events if not e.committed and e.cost is not None]
    return sum(spent, Decimal(0)) if spent else None
