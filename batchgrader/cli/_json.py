"""``--json`` output: one convention for every command (docs/json.md).

- money: USD as JSON numbers written from ``Decimal`` digit for digit (``0.0000616``,
  never a float's rounding and never an exponent);
- timestamps: ISO 8601 in UTC to the second with a ``Z`` (``2026-11-01T09:30:00Z``);
- durations: seconds, in keys ending ``_seconds``;
- rows, chunks and parts: numbered from 1, as the tables and messages number them;
- paths: strings; absent values: ``null``.

The standard ``json`` module cannot write a ``Decimal`` as a number without going
through ``float``, so results are written by this small encoder (two-space indent,
UTF-8 text as is).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import PurePath
from typing import Any

from pydantic import BaseModel


def dumps(value: Any) -> str:
    """``value`` (a model, or plain data) as indented JSON text."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="python")
    return _encode(value, 0)


def timestamp(moment: datetime) -> str:
    """``2026-11-01T09:30:00Z``: UTC (a naive time is taken as UTC), to the second."""
    utc = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%SZ")


def number(amount: Decimal) -> str:
    """An exact decimal as JSON number text, without an exponent."""
    if not amount.is_finite():
        raise ValueError(f"{amount} has no JSON number")
    text = format(amount, "f")
    return "0" if text in ("-0", "0") else text


def _encode(value: Any, level: int) -> str:
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, Decimal):
        return number(value)
    if isinstance(value, float):
        return json.dumps(value) if math.isfinite(value) else "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Enum):
        return _encode(value.value, level)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, datetime):
        return json.dumps(timestamp(value))
    if isinstance(value, date):
        return json.dumps(value.isoformat())
    if isinstance(value, PurePath):
        return json.dumps(str(value), ensure_ascii=False)
    if isinstance(value, BaseModel):
        return _encode(value.model_dump(mode="python"), level)
    inner = "  " * (level + 1)
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        items = [
            f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {_encode(v, level + 1)}"
            for k, v in value.items()
        ]
    elif isinstance(value, (list, tuple, set, frozenset)):
        if not value:
            return "[]"
        items = [f"{inner}{_encode(v, level + 1)}" for v in value]
    else:
        raise TypeError(f"no JSON form for {type(value).__name__}")
    close = "[]" if not isinstance(value, Mapping) else "{}"
    return close[0] + "\n" + ",\n".join(items) + "\n" + "  " * level + close[1]
