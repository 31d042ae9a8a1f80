"""What the providers' clients share about HTTP answers (both SDKs sit on httpx2):
the wait a server asks for, and a synchronous call's ``Reply``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx2

from batchgrader.masking import mask
from batchgrader.providers.base import Reply


def retry_after(response: Any) -> float | None:
    """Seconds a 429/503/529 asks to wait (``retry-after-ms`` or ``retry-after``)."""
    headers = getattr(response, "headers", None) or {}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            seconds = float(value) * scale
        except ValueError:
            continue
        if 0 <= seconds <= 3600:
            return seconds
    return None


def answered(response: Any, limits: Mapping[str, str], *, failed: bool = False) -> Reply:
    """The reply of a call the server answered (``failed``: with an error status, whose
    wait, if it asks for one, is kept)."""
    try:
        body = response.json()
    except ValueError:
        body = getattr(response, "text", None)
    return Reply(
        status=response.status_code,
        body=body,
        retry_after=retry_after(response) if failed else None,
        limits=limits,
    )


def unanswered(exc: BaseException, secret: str) -> Reply:
    """The reply of a call no answer came back to; not sent only when the connection was
    refused (a dropped one may have been executed and billed)."""
    refused = isinstance(exc.__cause__, httpx2.ConnectError)
    text = str(exc).replace(secret, mask(secret))
    return Reply(status=0, error=f"{type(exc).__name__}: {text}", sent=not refused)
