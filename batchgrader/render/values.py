"""How figures are written for people: dollars, durations, file names.

Tables, the live board and the report share these; exact values are in ``--json``.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import PurePath


def name(path: str) -> str:
    """The file name of a path (what a table shows; the full path is printed apart)."""
    return PurePath(path).name or path


def money(value: Decimal | None) -> str:
    """Dollars for people, rounded by size (exact values are in --json)."""
    if value is None:
        return "unknown"
    if value == 0:
        return "$0.00"
    if value < Decimal("0.01"):
        return f"${value:.6f}"
    if value < 1:
        return f"${value:.4f}"
    return f"${value:,.2f}"


def duration(seconds: float) -> str:
    """``45s``, ``12m05s``, ``3h07m``, ``2d04h``: the two largest units."""
    s = max(0, int(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"
