"""The breakdowns a costs report offers (a leaf: ``costs --by`` declares it at start-up)."""

from __future__ import annotations

from typing import Literal

GroupBy = Literal["model", "provider", "day", "file", "job"]
