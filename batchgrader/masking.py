"""Showing secrets without revealing them."""

from __future__ import annotations


def mask(secret: str | None) -> str:
    """``sk-...a1b2``: the first three and last four characters, never the whole key."""
    if not secret:
        return "(not set)"
    if len(secret) <= 12:
        return "****"
    return f"{secret[:3]}...{secret[-4:]}"
