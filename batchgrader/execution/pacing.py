"""How fast a direct run sends: a concurrency gate that halves on a rate limit and
grows back, token buckets for requests and tokens a minute, and what a 429 says (a
used-up quota, or when the limit resets).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

#: Error codes of an account with no quota or credits left (OpenAI, Anthropic).
QUOTA_CODES = ("insufficient_quota", "credit_balance_exhausted", "billing_error")


@dataclass
class Gate:
    """Concurrency that halves on a rate limit and grows back one slot at a time."""

    ceiling: int
    limit: int
    active: int = 0
    pause_until: float = 0.0
    successes: int = 0
    why: str = ""  # what last narrowed or paused it
    _cond: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def state(self) -> str:
        """``rate limited: 8 at once, paused 1.5s`` while narrowed or paused, else ""."""
        parts = [f"{self.limit} at once"] if self.limit < self.ceiling else []
        left = self.pause_until - time.monotonic()
        if left > 0:
            parts.append(f"paused {_seconds(left)}")
        return f"{self.why}: {', '.join(parts)}" if parts else ""

    async def acquire(self) -> None:
        async with self._cond:
            try:
                await self._cond.wait_for(lambda: self.active < self.limit)
            except asyncio.CancelledError:
                self._wake()  # a wake-up this waiter may have taken goes to another
                raise
            self.active += 1
        delay = self.pause_until - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)

    async def release(self) -> None:
        async with self._cond:
            self.active -= 1
            self._wake()

    def _wake(self) -> None:
        """Wake one waiter for the slot just freed (a release, a slot grown back).

        Not all of them: a chunk's every row waits here, and waking them all on each
        release costs time quadratic in the chunk's rows.
        """
        if self.active < self.limit:
            self._cond.notify(1)

    def throttled(self, wait: float, why: str) -> None:
        """A limit was exceeded (429): half as many at once, none sent for ``wait`` s."""
        self.limit = max(1, self.limit // 2)
        self.pause_until = max(self.pause_until, time.monotonic() + wait)
        self.successes = 0
        self.why = why

    def pause(self, wait: float, why: str) -> None:
        """A limit is used up, not exceeded: none sent for ``wait`` s, as many at once."""
        self.pause_until = max(self.pause_until, time.monotonic() + wait)
        if self.limit == self.ceiling:  # a narrowing says more
            self.why = why

    async def succeeded(self) -> None:
        self.successes += 1
        if self.limit < self.ceiling and self.successes >= self.limit:
            async with self._cond:
                self.limit += 1
                self.successes = 0
                self._wake()


@dataclass
class Pace:
    """At most ``per_minute`` requests (or tokens) a minute (None: no pacing).

    A token bucket holding one second's worth, not a minute's: providers enforce their
    per-minute limits over shorter periods (OpenAI: "60,000 requests/minute may be
    enforced as 1,000 requests/second"), so a minute's worth sent at once is refused.
    """

    per_minute: int | None
    tokens: float = 0.0
    stamp: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        self.tokens = self._capacity(0.0)

    def _capacity(self, amount: float) -> float:
        """One second's worth, or one ``amount`` if that is more (it must fit)."""
        return max(float(self.per_minute or 0) / 60, 1.0, amount)

    async def take(self, amount: float) -> None:
        if self.per_minute is None:
            return
        amount = min(amount, float(self.per_minute))
        capacity = self._capacity(amount)
        while True:
            now = time.monotonic()
            self.tokens = min(capacity, self.tokens + (now - self.stamp) * self.per_minute / 60)
            self.stamp = now
            if self.tokens >= amount:
                self.tokens -= amount
                return
            await asyncio.sleep((amount - self.tokens) * 60 / self.per_minute)


def quota_exhausted(body: Any) -> bool:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return False
    return error.get("code") in QUOTA_CODES or error.get("type") in QUOTA_CODES


def _seconds(wait: float) -> str:
    return f"{wait:.1f}s" if wait < 10 else f"{wait:.0f}s"


def reset_seconds(limits: dict[str, str] | Any) -> float | None:
    """Seconds until a rate limit that is used up resets (x-ratelimit-* headers)."""
    for kind in ("requests", "tokens"):
        remaining = limits.get(f"x-ratelimit-remaining-{kind}")
        reset = limits.get(f"x-ratelimit-reset-{kind}")
        if remaining == "0" and reset:
            return _duration(reset)
    return None


def _duration(text: str) -> float | None:
    """OpenAI's reset durations: ``1s``, ``6m0s``, ``250ms``, ``1h2m3.5s``."""
    total, number = 0.0, ""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    i = 0
    while i < len(text):
        ch = text[i]
        if ch.isdigit() or ch == ".":
            number += ch
            i += 1
            continue
        unit = "ms" if text[i : i + 2] == "ms" else ch
        if unit not in units or not number:
            return None
        total += float(number) * units[unit]
        number = ""
        i += len(unit)
    return total if not number else None
