"""What the providers' clients share about HTTP: the wait a server asks for, and
``JsonPoster``, the direct transport both providers send their synchronous calls with.

The SDKs serve the Batch APIs (files, batches, results, with their typed errors).
Direct mode's hot path is one POST and one JSON answer a row, many thousand times, and
goes around them: through an SDK a row costs about twice the CPU (request options,
typed response wrappers, header merging), and at ``--concurrency 64`` a client is
CPU-bound long before a 50 ms server is (docs/benchmarks.md).
"""

from __future__ import annotations

import functools
import ssl
from collections.abc import Callable, Mapping
from typing import Any

import httpx2

from batchgrader.masking import hide
from batchgrader.providers.base import Reply

#: What a direct transport reads rate limits from: response headers to the names the
#: direct executor knows (``x-ratelimit-remaining-requests``, ...).
LimitReader = Callable[[httpx2.Headers], dict[str, str]]


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """One for every client of the process (each chunk of a run makes its own clients):
    loading the CA bundle takes ~35 ms."""
    return httpx2.create_ssl_context()


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


class JsonPoster:
    """POSTs JSON bodies to one server, concurrently; every outcome is a ``Reply``.

    Each call borrows a client with a single keep-alive connection from a free list
    (the last one given back is lent first: its connection is the one least likely to
    have been closed by the server) instead of sharing one client's pool. httpcore's pool
    checks the socket of every idle connection each time a request enters or leaves it:
    at ``--concurrency 64`` that was 32 checks a row and the largest cost of a direct run
    (docs/benchmarks.md); a one-connection client checks its own. The direct executor
    bounds the calls in flight, so the clients made are as many as its concurrency.
    """

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        *,
        timeout: float,
        secret: str,
        limits: LimitReader,
        prefix: str = "",
    ) -> None:
        """``prefix``: the part of an endpoint that ``base_url`` already ends with
        (OpenAI's ``/v1``); ``secret`` is masked in every error message."""
        self.base_url = base_url.rstrip("/") + "/"
        self._headers = {"accept": "application/json", **headers}
        self._timeout = timeout
        self._secret = secret
        self._limits = limits
        self._prefix = prefix
        self._idle: list[httpx2.AsyncClient] = []
        self._made: list[httpx2.AsyncClient] = []
        # Each endpoint's absolute URL, parsed once: a relative path is parsed and merged
        # with the base URL on every request (two URL parses a row).
        self._urls: dict[str, httpx2.URL] = {}

    async def send(self, endpoint: str, body: dict[str, Any]) -> Reply:
        """POST ``body`` to ``endpoint``; never raises for an HTTP or network failure."""
        url = self._urls.get(endpoint)
        if url is None:
            path = endpoint.removeprefix(self._prefix).lstrip("/")
            url = self._urls[endpoint] = httpx2.URL(self.base_url + path)
        client = self._idle.pop() if self._idle else self._client()
        try:
            response = await client.post(url, json=body)
        except httpx2.TransportError as exc:
            return self._unanswered(exc)
        finally:
            self._idle.append(client)
        try:
            answer = response.json()
        except ValueError:
            answer = response.text
        failed = not response.is_success
        return Reply(
            status=response.status_code,
            body=answer,
            retry_after=retry_after(response) if failed else None,
            limits=self._limits(response.headers),
        )

    async def aclose(self) -> None:
        for client in self._made:
            await client.aclose()
        self._idle.clear()
        self._made.clear()

    def _client(self) -> httpx2.AsyncClient:
        client = httpx2.AsyncClient(
            base_url=self.base_url,
            headers=self._headers,
            timeout=self._timeout,
            verify=_ssl_context(),
            limits=httpx2.Limits(max_connections=1, max_keepalive_connections=1),
        )
        self._made.append(client)
        return client

    def _unanswered(self, exc: httpx2.TransportError) -> Reply:
        """No answer came back. Not sent only when the connection was refused: a request
        whose connection dropped (or timed out) may have run and been billed."""
        if isinstance(exc, httpx2.TimeoutException) and not str(exc):
            text = f"no answer within {self._timeout:g} s (api.timeout_seconds)"
        else:
            text = hide(str(exc), self._secret) or "the connection dropped"
        refused = isinstance(exc, httpx2.ConnectError)
        return Reply(status=0, error=f"{type(exc).__name__}: {text}", sent=not refused)
