"""The only module that imports ``anthropic``: Message Batches and token counting.

Every SDK error is translated into a batchgrader error the executor can act on:
``TransientApiError`` (429 ``rate_limit_error``, 529 ``overloaded_error``, 5xx, network:
retry later, after the wait the server asks for), ``QuotaExhausted`` (402 billing),
``FileMissing`` (404) or ``ProviderError`` (a refusal worth reporting, such as a bad
key). The SDK's own retries are off: the executor's one retry policy decides, and a
``create`` is never retried blindly (the API has no idempotency key and batches carry
no metadata: a lost answer is resolved by ``candidates``).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anthropic
import httpx2
from anthropic import Anthropic
from anthropic.types import MessageTokensCount
from anthropic.types.messages import MessageBatch

from batchgrader.errors import (
    BatchApiMissing,
    FileMissing,
    MissingApiKey,
    ProviderError,
    QuotaExhausted,
    TransientApiError,
)
from batchgrader.masking import hide
from batchgrader.providers.base import BatchInfo, BatchState, BatchTag
from batchgrader.providers.http import retry_after
from batchgrader.settings import AnthropicSettings, ApiSettings

log = logging.getLogger(__name__)

#: Days Anthropic keeps a batch's results after its creation.
RESULTS_DAYS = 29
#: Seconds of clock difference allowed between this machine and the API when a lost
#: create's batch is looked for.
CLOCK_SLACK = 300
#: Params ``count_tokens`` takes (the rest of a Messages body does not change the count).
COUNT_PARAMS = (
    "model",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "thinking",
    "output_config",
    "cache_control",
)
_DAY = 86_400


def _epoch(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


def state_of(batch: MessageBatch) -> BatchState:
    """The core's state: ``ended`` is completed, expired or cancelled by its counts (a
    cancel that came after every request had run leaves a completed batch)."""
    status = batch.processing_status
    if status == "in_progress":
        return BatchState.RUNNING
    if status == "canceling":
        return BatchState.CANCELLING
    counts = batch.request_counts
    if counts.canceled:
        return BatchState.CANCELLED
    if counts.expired:
        return BatchState.EXPIRED
    return BatchState.COMPLETED


_WORDS = {
    BatchState.COMPLETED: "ended",
    BatchState.CANCELLED: "canceled",
    BatchState.EXPIRED: "expired",
}


def info_of(batch: MessageBatch) -> BatchInfo:
    """What the core uses of a message batch."""
    counts = batch.request_counts
    state = state_of(batch)
    total = counts.processing + counts.succeeded + counts.errored + counts.canceled + counts.expired
    return BatchInfo(
        id=batch.id,
        status=_WORDS.get(state, batch.processing_status),
        state=state,
        created_at=_epoch(batch.created_at) or 0,
        total=total,
        completed=counts.succeeded,
        failed=counts.errored,
        expires_at=_epoch(batch.expires_at),
        results=(batch.results_url,) if batch.results_url else (),
    )


def translate(exc: Exception, what: str) -> ProviderError:
    """An SDK exception as a batchgrader error."""
    if isinstance(exc, anthropic.APIStatusError):
        kind = exc.type or ""
        message = exc.api_message or str(exc)
        status = exc.status_code
        if status == 402 or kind == "billing_error":
            return QuotaExhausted(
                f"{what}: the account has no credits left ({message}).",
                hint="Add credits, then run the same command again to resume.",
            )
        if status in (408, 409, 429) or status >= 500 or kind == "overloaded_error":
            return TransientApiError(
                f"{what}: HTTP {status} {kind}: {message}".replace("  ", " "),
                retry_after=retry_after(exc.response),
            )
        if status in (401, 403):
            return ProviderError(
                f"{what}: HTTP {status} {kind}: {message}",
                hint="Check the Anthropic API key (ANTHROPIC_API_KEY or anthropic.key) and "
                "its workspace's permissions.",
            )
        if status == 404:
            return FileMissing(f"{what}: {message}")
        if status == 413:
            return ProviderError(
                f"{what}: HTTP 413 {kind}: {message}",
                hint="A batch may hold at most 256 MB: lower chunking.split_token_limit "
                "or chunking.split_row_limit and grade again.",
            )
        return ProviderError(f"{what}: HTTP {status} {kind}: {message}")
    if isinstance(exc, anthropic.APIConnectionError):
        refused = isinstance(exc.__cause__, httpx2.ConnectError)
        return TransientApiError(f"{what}: {type(exc).__name__}: {exc}", refused=refused)
    if isinstance(exc, anthropic.APIResponseValidationError):
        return TransientApiError(f"{what}: {type(exc).__name__}: {exc}")
    if isinstance(exc, ValueError):  # malformed JSON body in a 200 answer
        return TransientApiError(f"{what}: malformed answer: {exc}")
    if isinstance(exc, anthropic.AnthropicError):
        return ProviderError(f"{what}: {exc}")
    raise exc


class AnthropicClient:
    """The SDK client, built once from the settings (no SDK retries), errors translated."""

    def __init__(self, settings: AnthropicSettings, api: ApiSettings) -> None:
        if settings.key is None or not settings.key.get_secret_value():
            raise MissingApiKey(
                "No Anthropic API key: set ANTHROPIC_API_KEY (or anthropic.key in a settings "
                "file).",
                hint="A dry run needs no key: grade --dry-run.",
            )
        self._secret = settings.key.get_secret_value()
        self.sdk = Anthropic(
            api_key=self._secret,
            base_url=settings.base_url,
            timeout=api.timeout_seconds,
            max_retries=0,  # one retry policy, in the executor
        )
        self.base_url = str(self.sdk.base_url)

    def translate(self, exc: Exception, what: str) -> ProviderError:
        """``translate``, with the key masked (a server may quote it back)."""
        err = translate(exc, what)
        err.message = hide(err.message, self._secret)
        err.args = (err.message,)
        return err

    def close(self) -> None:
        self.sdk.close()


class AnthropicBatches:
    """Message Batches through the official SDK: requests inline, no metadata."""

    exact_find = False  # a lost create is found by its size and creation time only

    def __init__(self, settings: AnthropicSettings, api: ApiSettings) -> None:
        self._client = AnthropicClient(settings, api)
        self._sdk = self._client.sdk
        self.base_url = self._client.base_url

    def close(self) -> None:
        self._client.close()

    def prepare(self, request_file: Path) -> str | None:
        """Nothing: the requests go inline with the create."""
        return None

    def create(
        self, request_file: Path, prepared: str | None, endpoint: str, tag: BatchTag
    ) -> BatchInfo:
        """Create a batch from a chunk's request file, once (its lines sent as they are)."""
        body = b'{"requests":[' + b",".join(_lines(request_file)) + b"]}"
        try:
            batch = self._sdk.post(
                "/v1/messages/batches",
                content=body,
                cast_to=MessageBatch,
                options={"headers": {"Content-Type": "application/json"}},
            )
        except (anthropic.AnthropicError, ValueError) as exc:
            if isinstance(exc, anthropic.APIStatusError) and exc.status_code in (404, 405):
                # A server that speaks the Messages API without Message Batches (Ollama,
                # vLLM, a proxy): nothing was created; --mode auto calls it directly.
                raise BatchApiMissing(
                    self.base_url.rstrip("/"), "/v1/messages/batches", exc.status_code
                ) from None
            raise self._client.translate(exc, "batch create") from None
        return info_of(batch)

    def retrieve(self, batch_id: str) -> BatchInfo:
        try:
            return info_of(self._sdk.messages.batches.retrieve(batch_id))
        except (anthropic.AnthropicError, ValueError) as exc:
            raise self._client.translate(exc, f"batch {batch_id}") from None

    def candidates(self, tag: BatchTag, known: frozenset[str]) -> list[BatchInfo]:
        """Batches that may be a lost create's: created since the intent (with slack),
        holding exactly the chunk's number of requests, unknown to the ledger."""
        since = tag.intent_at - CLOCK_SLACK
        found: list[BatchInfo] = []
        try:
            for batch in self._sdk.messages.batches.list(limit=100):
                info = info_of(batch)
                if info.created_at < since:
                    break  # newest first: the rest are older still
                if info.total == tag.requests and info.id not in known:
                    found.append(info)
        except (anthropic.AnthropicError, ValueError) as exc:
            raise self._client.translate(exc, "batch list") from None
        return found

    def cancel(self, batch_id: str) -> BatchInfo:
        try:
            return info_of(self._sdk.messages.batches.cancel(batch_id))
        except anthropic.BadRequestError:  # it has already ended
            return self.retrieve(batch_id)
        except (anthropic.AnthropicError, ValueError) as exc:
            raise self._client.translate(exc, f"cancel of {batch_id}") from None

    def download(self, info: BatchInfo, folder: Path, stem: str) -> list[Path]:
        """Stream the batch's results to ``folder`` (a kept file is not fetched again)."""
        dest = folder / f"{stem}.0.jsonl"
        if dest.exists():
            return [dest]
        age_days = (time.time() - info.created_at) / _DAY
        if info.created_at and age_days > RESULTS_DAYS:
            raise _results_gone(info)
        tmp = dest.with_name(dest.name + ".part")
        try:
            tmp.touch(mode=0o600)  # results are the user's data: readable by them only
            with (
                self._sdk.messages.batches.with_streaming_response.results(info.id) as response,
                tmp.open("wb") as out,
            ):
                for block in response.iter_bytes(1 << 20):
                    out.write(block)
            tmp.replace(dest)
        except anthropic.NotFoundError:
            raise _results_gone(info) from None
        except (anthropic.AnthropicError, ValueError) as exc:
            raise self._client.translate(exc, f"results of {info.id}") from None
        except (httpx2.HTTPError, ConnectionError, TimeoutError) as exc:
            # The answer broke off mid-stream: the SDK does not retry that.
            raise TransientApiError(f"results of {info.id}: {exc}") from None
        finally:
            tmp.unlink(missing_ok=True)
        return [dest]

    def delete(self, info: BatchInfo | None, prepared: str | None) -> bool:
        """Delete an ended batch and its results (a failure is only logged); True when
        it is gone (a batch already deleted counts)."""
        if info is None:
            return True
        try:
            self._sdk.messages.batches.delete(info.id)
        except anthropic.NotFoundError:
            return True
        except (anthropic.AnthropicError, ValueError) as exc:
            log.warning(
                "Could not delete batch %s at Anthropic: %s (batchgrader jobs clean tries again)",
                info.id,
                self._client.translate(exc, "delete").message,
            )
            return False
        return True


def _results_gone(info: BatchInfo) -> ProviderError:
    created = (
        datetime.fromtimestamp(info.created_at, UTC).strftime("%Y-%m-%d")
        if info.created_at
        else "an unknown date"
    )
    return ProviderError(
        f"The results of batch {info.id} are gone: it was created on {created}, and "
        f"Anthropic keeps a batch's results for {RESULTS_DAYS} days after its creation.",
        hint="Its rows cannot be collected any more. Grade again with --force to pay for "
        "them again (rows of other chunks already collected are kept in the job).",
    )


def _lines(path: Path) -> list[bytes]:
    """The request lines of a chunk file, without their newlines."""
    with path.open("rb") as handle:
        return [line.rstrip(b"\r\n") for line in handle if line.strip()]


class TokenCountClient:
    """``POST /v1/messages/count_tokens`` for one request body (free, rate limited)."""

    def __init__(self, settings: AnthropicSettings, api: ApiSettings) -> None:
        self._client = AnthropicClient(settings, api)

    def count(self, body: dict[str, Any]) -> int:
        params = {key: body[key] for key in COUNT_PARAMS if key in body}
        try:
            counted = self._client.sdk.post(
                "/v1/messages/count_tokens", body=params, cast_to=MessageTokensCount
            )
        except (anthropic.AnthropicError, ValueError) as exc:
            raise self._client.translate(exc, "count_tokens") from None
        return int(counted.input_tokens)

    def close(self) -> None:
        self._client.close()
