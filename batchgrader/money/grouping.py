"""The breakdowns a costs report offers (a leaf: ``costs --by`` declares it at start-up)."""

from __future__ import annotations

from typing import Literal

GroupBy = Literal["model", "day", "file", "job"]
GROUP_BY: tuple[GroupBy, ...] = ("model", "day", "file", "job")
