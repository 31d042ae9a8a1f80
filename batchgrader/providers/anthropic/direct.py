"""Anthropic's synchronous Messages API for direct mode: plain HTTP through
``JsonPoster``, without the SDK (providers/http.py says why)."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx2

from batchgrader import __version__
from batchgrader.errors import MissingApiKey
from batchgrader.providers.http import JsonPoster
from batchgrader.settings import AnthropicSettings

#: The ``anthropic-version`` the SDK sends with the batch calls (its
#: ``ANTHROPIC_API_VERSION``): direct calls speak the same API, which refuses sampling
#: parameters (``AnthropicProvider.sampling``). tests/test_direct_http.py keeps the two equal.
API_VERSION = "2026-10-21"


def anthropic_direct(settings: AnthropicSettings, base_url: str, *, timeout: float) -> JsonPoster:
    """Calls to ``base_url`` (``anthropic.base_url`` or Anthropic's) with the key in force."""
    if settings.key is None or not settings.key.get_secret_value():
        raise MissingApiKey(
            "No Anthropic API key: set ANTHROPIC_API_KEY (or anthropic.key in a settings file)."
        )
    secret = settings.key.get_secret_value()
    headers = {
        "x-api-key": secret,
        "anthropic-version": API_VERSION,
        "user-agent": f"batchgrader/{__version__}",
    }
    return JsonPoster(
        base_url,
        headers,
        timeout=timeout,
        secret=secret,
        limits=rate_limits,
    )


def rate_limits(headers: httpx2.Headers) -> dict[str, str]:
    """Anthropic's rate-limit headers (``anthropic-ratelimit-*``), under the names the
    direct executor reads (``x-ratelimit-remaining-requests`` ...)."""
    found: dict[str, str] = {}
    for key, value in headers.items():
        name = key.lower()
        for kind in ("requests", "tokens"):
            if name == f"anthropic-ratelimit-{kind}-remaining":
                found[f"x-ratelimit-remaining-{kind}"] = value
            if name == f"anthropic-ratelimit-{kind}-reset":
                seconds = _until(value)
                if seconds is not None:
                    found[f"x-ratelimit-reset-{kind}"] = f"{seconds:.3f}s"
    return found


def _until(stamp: str) -> float | None:
    """Seconds from now until an RFC 3339 time (a reset header)."""
    try:
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())
