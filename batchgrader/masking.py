"""Showing secrets without revealing them."""

from __future__ import annotations

#: Values shorter than this are not hidden inside text. A local server takes any key
#: (the docs suggest ``OPENAI_API_KEY=none``), and masking ``none`` or ``x`` wherever it
#: appears would garble every word it is part of ("e****ists") while hiding nothing.
MIN_HIDDEN = 8


def mask(secret: str | None) -> str:
    """``sk-...a1b2``: the first three and last four characters, never the whole key."""
    if not secret:
        return "(not set)"
    if len(secret) <= 12:
        return "****"
    return f"{secret[:3]}...{secret[-4:]}"


def hide(text: str, secret: str | None) -> str:
    """``text`` with every occurrence of ``secret`` masked (unless it is too short to be
    one: ``MIN_HIDDEN``)."""
    if not secret or len(secret) < MIN_HIDDEN or secret not in text:
        return text
    return text.replace(secret, mask(secret))
