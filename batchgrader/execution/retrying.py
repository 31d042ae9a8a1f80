"""The one retry policy for transient provider errors (tenacity, waits injectable).

Every provider call an executor makes goes through ``RetryPolicy.call``: a transient
error (network, 408/409/429/5xx) is tried again after an exponential, jittered wait
(or the wait the server asked for), up to ``api.max_retries`` more times; then the run
stops with a ``ProviderError`` that says how to resume. The SDKs' own retries are off,
so one call is never tried more often than this policy says.

A connection refused before the run has talked to the server at all is not retried:
it is a configuration error (a wrong base URL), reported at once.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import TypeVar

from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from batchgrader.errors import ProviderError, ServerUnreachable, TransientApiError

log = logging.getLogger(__name__)

T = TypeVar("T")


class RetryPolicy:
    """Bounded retries of transient failures, with an injected sleep."""

    def __init__(
        self,
        *,
        retries: int,
        max_wait: float,
        sleep: Callable[[float], None],
        base_url: str | None = None,
        on_first_call: Callable[[], None] = lambda: None,
        rng: random.Random | None = None,
    ) -> None:
        self.retries = retries
        self.max_wait = max_wait
        self.sleep = sleep
        self.base_url = base_url
        self.contacted = False
        self._on_first_call: Callable[[], None] | None = on_first_call
        self._rng = rng or random.Random()

    def call(self, fn: Callable[[], T], what: str = "call") -> T:
        """``fn()``, tried again after transient failures; raises the last as final."""
        attempts = self.retries + 1
        retrying = Retrying(
            retry=retry_if_exception_type(TransientApiError),
            stop=stop_after_attempt(attempts),
            wait=self._wait,
            sleep=self.sleep,
            before_sleep=self._log,
            reraise=True,
        )
        try:
            result: T = retrying(self._first_contact, fn)
        except TransientApiError as exc:
            raise ProviderError(
                f"Giving up after {attempts} attempt{'s' if attempts > 1 else ''}: {exc.message}",
                hint="Nothing is lost: run the same command again (or batchgrader jobs resume) "
                "once the service answers; api.max_retries sets the attempts.",
            ) from None
        self.contacted = True
        return result

    def check_reachable(self, exc: TransientApiError) -> None:
        """Raise ``ServerUnreachable`` for a refused connection before any contact."""
        if exc.refused and not self.contacted:
            where = self.base_url or "the API base URL"
            raise ServerUnreachable(
                f"Cannot connect to {where}: the connection was refused. Nothing was submitted.",
                hint="Check the base URL setting (OPENAI_BASE_URL / api.base_url, or "
                "ANTHROPIC_BASE_URL), or start the server it names.",
            ) from None

    def backoff(self, attempt: int, exc: BaseException | None = None) -> float:
        """Seconds to wait before try ``attempt + 1``: what the server asked, else an
        exponential, jittered wait up to ``max_wait``."""
        asked = exc.retry_after if isinstance(exc, TransientApiError) else None
        if asked is not None:
            return min(asked, self.max_wait)
        return min(2.0 ** (attempt - 1), self.max_wait) * self._rng.uniform(0.5, 1.0)

    def first_call(self) -> None:
        """Say (once) that requests are about to be made."""
        if self._on_first_call is not None:
            announce, self._on_first_call = self._on_first_call, None
            announce()

    def _first_contact(self, fn: Callable[[], T]) -> T:
        self.first_call()
        try:
            return fn()
        except TransientApiError as exc:
            self.check_reachable(exc)
            raise

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        return self.backoff(state.attempt_number, exc)

    def _log(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome is not None else None
        message = exc.message if isinstance(exc, TransientApiError) else str(exc)
        log.warning("%s (attempt %d of %d)", message, state.attempt_number, self.retries + 1)
