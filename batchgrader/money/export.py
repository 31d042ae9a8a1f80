"""Usage reports and events in machine-readable form: ``costs --csv`` and ``--export``."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from batchgrader.data.atomic import atomic_path
from batchgrader.errors import OutputExistsError
from batchgrader.ledger.store import UsageEvent
from batchgrader.money.costs import CostReport, Usage

#: Fields of an exported event: the seed's ``token_usage_events.jsonl`` first, then ours.
EXPORT_FIELDS = (
    "timestamp",
    "api_key_prefix",
    "model",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost",
    "request_id",
    "cached_input_tokens",
    "reasoning_tokens",
    "base_url_host",
    "endpoint",
    "job_id",
    "source_file",
    "requests_completed",
    "requests_failed",
    "committed",
    "cache_write_tokens",
    "provider",
)


class ExportResult(BaseModel):
    """What ``batchgrader costs --export`` wrote."""

    path: str
    events: int


CSV_COLUMNS = (
    "section",
    "key",
    "since",
    "until",
    "batches",
    "input_tokens",
    "cached_input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cost_usd",
    "unpriced_batches",
    "committed_batches",
    "committed_input_tokens",
    "committed_output_tokens",
    "committed_total_tokens",
    "committed_cost_usd",
    "cache_write_tokens",
)


def report_csv(report: CostReport) -> str:
    """The report as CSV: one row per window (section ``window``), then one per group
    (section = the ``--by`` key). Tokens are integers, dollars exact decimal strings."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for w in report.windows:
        writer.writerow(_csv_row("window", w.name, w.since, w.until, w))
    for g in report.groups:
        since, until = report.breakdown.since, report.breakdown.until
        writer.writerow(_csv_row(report.by, g.key, since, until, g))
    return buffer.getvalue()


def _csv_row(
    section: str, key: str, since: datetime | None, until: datetime | None, usage: Usage
) -> list[str | int]:
    s, c = usage.spent, usage.committed
    return [
        section,
        key,
        since.isoformat() if since else "",
        until.isoformat() if until else "",
        s.batches,
        s.input_tokens,
        s.cached_input_tokens,
        s.output_tokens,
        s.reasoning_tokens,
        s.total_tokens,
        str(s.cost_usd),
        s.unpriced_batches,
        c.batches,
        c.input_tokens,
        c.output_tokens,
        c.total_tokens,
        str(c.cost_usd),
        s.cache_write_tokens,
    ]


def export_record(event: UsageEvent) -> dict[str, Any]:
    """One event in the export's field order (``request_id`` is the batch id)."""
    values: dict[str, Any] = {
        "timestamp": event.timestamp,
        "api_key_prefix": event.api_key_prefix,
        "model": event.model,
        "input_tokens": event.input_tokens,
        "output_tokens": event.output_tokens,
        "total_tokens": event.total_tokens,
        "cost": event.cost,
        "request_id": event.batch_id,
        "cached_input_tokens": event.cached_input_tokens,
        "reasoning_tokens": event.reasoning_tokens,
        "base_url_host": event.base_url_host,
        "endpoint": event.endpoint,
        "job_id": event.job_id,
        "source_file": event.source_file,
        "requests_completed": event.requests_completed,
        "requests_failed": event.requests_failed,
        "committed": event.committed,
        "cache_write_tokens": event.cache_write_tokens,
        "provider": event.provider,
    }
    return {name: values[name] for name in EXPORT_FIELDS}


def export_line(event: UsageEvent) -> str:
    """One JSON line; ``cost`` is a JSON number written with its exact decimal digits."""
    parts = [f"{json.dumps(k)}: {_json_value(v)}" for k, v in export_record(event).items()]
    return "{" + ", ".join(parts) + "}"


def _json_value(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    return json.dumps(value, ensure_ascii=False)


def export_events(events: Sequence[UsageEvent], target: Path, *, overwrite: bool) -> ExportResult:
    """Write ``events`` as JSONL to ``target`` atomically (never over a file unless
    ``overwrite``). Only what the ledger holds is written: the key's masked prefix, never
    the key."""
    if target.exists() and not overwrite:
        raise OutputExistsError(
            f"{target} exists.", hint="Pass --overwrite, or choose another --export file."
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp, tmp.open("w", encoding="utf-8", newline="\n") as handle:
        for event in events:
            handle.write(export_line(event) + "\n")
    return ExportResult(path=str(target), events=len(events))
