"""Exact input tokens of whole requests, through Anthropic's free ``count_tokens``.

``ExactCounter.count_bodies`` counts each distinct request body once (identical
requests are one call), on a few threads at once (``CONCURRENCY``), with call starts
spaced to stay under ``anthropic.count_tokens_rpm``. A 429 or 529 waits what the server
asks (every thread waits: the limit is shared) and tries again, up to ``api.max_retries``
times. ``capacity`` is how many requests fit in ``anthropic.count_tokens_seconds`` at
that rate: the core counts every request when they fit, else a random sample
(``batchgrader.planning.measure``).

The SDK is imported (by ``client``) only when the first request is counted.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from batchgrader.errors import TransientApiError
from batchgrader.settings import AnthropicSettings, ApiSettings

log = logging.getLogger(__name__)

#: count_tokens calls in flight at once.
CONCURRENCY = 4


class _Client(Protocol):
    def count(self, body: dict[str, Any]) -> int: ...
    def close(self) -> None: ...


class RateGate:
    """Spaces call starts ``interval`` seconds apart across threads; a pause moves all."""

    def __init__(
        self,
        interval: float,
        *,
        now: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = interval
        self._now = now
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self) -> None:
        """Block until this call may start."""
        with self._lock:
            now = self._now()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            self._sleep(start - now)

    def pause(self, seconds: float) -> None:
        """Hold every later start for ``seconds`` (the server asked to wait)."""
        with self._lock:
            self._next = max(self._next, self._now() + seconds)


class ExactCounter:
    """``RequestCounter`` over Anthropic's count_tokens endpoint."""

    name = "count_tokens (Anthropic)"

    def __init__(
        self,
        settings: AnthropicSettings,
        api: ApiSettings,
    ) -> None:
        self.capacity = max(1, int(settings.count_tokens_rpm * settings.count_tokens_seconds / 60))
        self._gate = RateGate(60.0 / settings.count_tokens_rpm)
        self._retries = api.max_retries
        self._max_wait = api.retry_max_wait_seconds
        self._settings = settings
        self._api = api
        self._client: _Client | None = None

    def count_bodies(self, bodies: Sequence[Mapping[str, Any]]) -> list[int]:
        """Input tokens of each body; identical bodies are counted once."""
        keys = [json.dumps(body, sort_keys=True, ensure_ascii=False) for body in bodies]
        distinct = {key: dict(body) for key, body in zip(keys, bodies, strict=True)}
        if not distinct:
            return []
        if self._client is None:
            self._client = _sdk_client(self._settings, self._api)
        client = self._client
        failed: list[BaseException] = []
        pool = ThreadPoolExecutor(min(CONCURRENCY, len(distinct)))
        try:
            futures = {
                key: pool.submit(self._count_one, client, body, failed)
                for key, body in distinct.items()
            }
            counts = {key: future.result() for key, future in futures.items()}
        except BaseException as exc:
            failed.append(exc)  # the other calls stop at once
            raise
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # Ctrl-C does not wait for the queue
        return [counts[key] for key in keys]

    def _count_one(self, client: _Client, body: dict[str, Any], failed: list[BaseException]) -> int:
        """One body's count, retried after 429/529/5xx; stops when another call failed."""
        attempt = 0
        while True:
            if failed:
                raise failed[0]
            self._gate.wait()
            try:
                return client.count(body)
            except TransientApiError as exc:
                attempt += 1
                if attempt > self._retries:
                    failed.append(exc)
                    raise
                wait = exc.retry_after if exc.retry_after is not None else 2.0 ** (attempt - 1)
                log.info("count_tokens: %s; waiting %.1f s", exc.message, wait)
                self._gate.pause(min(wait, self._max_wait))
            except Exception as exc:
                failed.append(exc)
                raise

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _sdk_client(settings: AnthropicSettings, api: ApiSettings) -> _Client:
    from batchgrader.providers.anthropic.client import TokenCountClient

    return TokenCountClient(settings, api)
