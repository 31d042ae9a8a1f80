"""The only module that imports ``openai``: files and batches on any compatible server.

Every SDK error is translated into a batchgrader error the runner can act on:
``TransientApiError`` (retry later), ``EnqueuedTokenLimit`` (wait and resubmit),
``QuotaExhausted`` (stop now) or ``ProviderError`` (a refusal worth reporting).
``create`` runs without the SDK's automatic retries, because the API has no idempotency
key: the runner decides, after a lost answer, whether the batch exists (``find``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx2
import openai
from openai import OpenAI

from batchgrader.errors import (
    EnqueuedTokenLimit,
    FileMissing,
    MissingApiKey,
    ProviderError,
    QuotaExhausted,
    TransientApiError,
)
from batchgrader.masking import mask
from batchgrader.providers.base import (
    BatchError,
    BatchInfo,
    is_enqueued_limit,
    parse_enqueued_limit,
)
from batchgrader.settings import ApiSettings

log = logging.getLogger(__name__)


def _file_id(value: str | None) -> str | None:
    """Empty-string file ids mean "no file"."""
    return value or None


def _info(batch: Any) -> BatchInfo:
    counts = batch.request_counts
    errors: list[BatchError] = []
    if batch.errors is not None and batch.errors.data:
        for err in batch.errors.data:
            errors.append(BatchError(err.code or "error", err.message or "", err.line))
    return BatchInfo(
        id=batch.id,
        status=batch.status,
        created_at=int(batch.created_at or 0),
        input_file_id=_file_id(batch.input_file_id),
        output_file_id=_file_id(batch.output_file_id),
        error_file_id=_file_id(batch.error_file_id),
        total=int(counts.total or 0) if counts else 0,
        completed=int(counts.completed or 0) if counts else 0,
        failed=int(counts.failed or 0) if counts else 0,
        errors=tuple(errors),
        metadata=dict(batch.metadata or {}),
    )


def translate(exc: Exception, what: str) -> ProviderError:
    """An SDK exception as a batchgrader error."""
    if isinstance(exc, openai.APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}
        err = body.get("error", body) if isinstance(body, dict) else {}
        code = err.get("code") if isinstance(err, dict) else None
        etype = err.get("type") if isinstance(err, dict) else None
        message = (err.get("message") if isinstance(err, dict) else None) or str(exc)
        if code in ("insufficient_quota", "credit_balance_exhausted") or etype == (
            "insufficient_quota"
        ):
            return QuotaExhausted(
                f"{what}: the account has no quota or credits left ({message}).",
                hint="Add credits or raise the quota, then run the same command again to resume.",
            )
        if exc.status_code in (400, 429) and is_enqueued_limit(code, message):
            return EnqueuedTokenLimit(f"{what}: {message}", parse_enqueued_limit(message))
        if exc.status_code == 404:
            return FileMissing(f"{what}: {message}")
        if exc.status_code in (408, 409, 429) or exc.status_code >= 500:
            return TransientApiError(f"{what}: HTTP {exc.status_code}: {message}")
        if exc.status_code in (401, 403):
            return ProviderError(
                f"{what}: HTTP {exc.status_code}: {message}",
                hint="Check the API key (OPENAI_API_KEY) and its project's permissions.",
            )
        return ProviderError(f"{what}: HTTP {exc.status_code}: {message}")
    if isinstance(exc, (openai.APIConnectionError, openai.APIResponseValidationError)):
        return TransientApiError(f"{what}: {type(exc).__name__}: {exc}")
    if isinstance(exc, ValueError):  # malformed JSON body in a 200 answer
        return TransientApiError(f"{what}: malformed answer: {exc}")
    raise exc


class BatchClient:
    """Files and batches through the official SDK, pointed at any base URL."""

    def __init__(self, api: ApiSettings) -> None:
        if api.key is None or not api.key.get_secret_value():
            raise MissingApiKey(
                "No API key: set OPENAI_API_KEY (or api.key in a settings file).",
                hint="A dry run needs no key: grade --dry-run.",
            )
        self._client = OpenAI(
            api_key=api.key.get_secret_value(),
            base_url=api.base_url,
            organization=api.organization,
            project=api.project,
            timeout=api.timeout_seconds,
            max_retries=api.max_retries,
        )
        self._once = self._client.with_options(max_retries=0)
        self._secret = api.key.get_secret_value()

    def _translate(self, exc: Exception, what: str) -> ProviderError:
        """``translate``, with the key masked: some servers quote it back in a 401."""
        err = translate(exc, what)
        if self._secret in err.message:
            err.message = err.message.replace(self._secret, mask(self._secret))
            err.args = (err.message,)
        return err

    def close(self) -> None:
        """Close the HTTP connections (the retry-free view shares them)."""
        self._client.close()

    def upload(self, path: Path) -> str:
        """Upload a request file (purpose batch); returns its file id."""
        try:
            with path.open("rb") as handle:
                created = self._client.files.create(file=(path.name, handle), purpose="batch")
        except (openai.OpenAIError, ValueError) as exc:
            raise self._translate(exc, f"upload of {path.name}") from None
        return str(created.id)

    def create(self, file_id: str, endpoint: str, metadata: Mapping[str, str]) -> BatchInfo:
        """Create a batch, once (no automatic retry: see ``find``)."""
        try:
            batch = self._once.batches.create(
                input_file_id=file_id,
                endpoint=endpoint,  # type: ignore[arg-type]
                completion_window="24h",
                metadata=dict(metadata),
            )
        except (openai.OpenAIError, ValueError) as exc:
            raise self._translate(exc, "batch create") from None
        return _info(batch)

    def retrieve(self, batch_id: str) -> BatchInfo:
        try:
            return _info(self._client.batches.retrieve(batch_id))
        except (openai.OpenAIError, ValueError) as exc:
            raise self._translate(exc, f"batch {batch_id}") from None

    def find(self, metadata: Mapping[str, str], since: int) -> BatchInfo | None:
        """The newest batch whose metadata holds ``metadata``, created at or after ``since``."""
        try:
            for batch in self._client.batches.list(limit=100):
                if batch.created_at < since:
                    return None
                meta = batch.metadata or {}
                if all(meta.get(k) == v for k, v in metadata.items()):
                    return _info(batch)
        except (openai.OpenAIError, ValueError) as exc:
            raise self._translate(exc, "batch list") from None
        return None

    def cancel(self, batch_id: str) -> BatchInfo:
        try:
            return _info(self._client.batches.cancel(batch_id))
        except openai.ConflictError:
            return self.retrieve(batch_id)
        except (openai.OpenAIError, ValueError) as exc:
            raise self._translate(exc, f"cancel of {batch_id}") from None

    def download(self, file_id: str, dest: Path) -> None:
        """Stream a file's content to ``dest`` (atomically; never held whole in memory)."""
        tmp = dest.with_name(dest.name + ".part")
        try:
            tmp.touch(mode=0o600)  # results are the user's data: readable by them only
            with (
                self._client.files.with_streaming_response.content(file_id) as response,
                tmp.open("wb") as out,
            ):
                for block in response.iter_bytes(1 << 20):
                    out.write(block)
            tmp.replace(dest)
        except (openai.OpenAIError, ValueError) as exc:
            raise self._translate(exc, f"download of {file_id}") from None
        except (httpx2.HTTPError, ConnectionError, TimeoutError) as exc:
            # The answer broke off mid-stream: the SDK does not retry that.
            raise TransientApiError(f"download of {file_id}: {exc}") from None
        finally:
            tmp.unlink(missing_ok=True)

    def delete_file(self, file_id: str) -> None:
        try:
            self._client.files.delete(file_id)
        except (openai.OpenAIError, ValueError) as exc:
            log.info("Could not delete %s: %s", file_id, self._translate(exc, "delete"))
