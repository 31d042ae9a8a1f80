"""The only module that imports ``openai``: files and batches on any compatible server.

Every SDK error is translated into a batchgrader error the executor can act on:
``TransientApiError`` (retry later), ``EnqueuedTokenLimit`` (wait and resubmit),
``QuotaExhausted`` (stop now) or ``ProviderError`` (a refusal worth reporting). The
SDK's own retries are off: the executor's one retry policy decides (a ``create`` in
particular is never retried blindly, because the API has no idempotency key).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import httpx2
import openai
from openai import OpenAI

from batchgrader.errors import (
    BatchApiMissing,
    EnqueuedTokenLimit,
    FileMissing,
    MissingApiKey,
    ProviderError,
    QuotaExhausted,
    TransientApiError,
)
from batchgrader.masking import hide
from batchgrader.money.pricing import Usage
from batchgrader.providers.base import (
    INPUT_MISSING,
    TOKEN_LIMIT,
    BatchError,
    BatchInfo,
    BatchState,
    BatchTag,
)
from batchgrader.providers.http import retry_after
from batchgrader.settings import ApiSettings

log = logging.getLogger(__name__)

STATES: dict[str, BatchState] = {
    "validating": BatchState.RUNNING,
    "in_progress": BatchState.RUNNING,
    "finalizing": BatchState.RUNNING,
    "cancelling": BatchState.CANCELLING,
    "completed": BatchState.COMPLETED,
    "failed": BatchState.FAILED,
    "expired": BatchState.EXPIRED,
    "cancelled": BatchState.CANCELLED,
}
_LIMIT_RE = re.compile(r"Limit:\s*([\d,]+)\s*enqueued tokens", re.IGNORECASE)
_ENQUEUED_RE = re.compile(r"enqueued token|token_limit_exceeded", re.IGNORECASE)
_MISSING_FILE_RE = re.compile(
    r"cannot find (the )?file|file .{0,80}(not found|does not exist|could not be found)|"
    r"no such file|input file .{0,40}(missing|unavailable)",
    re.IGNORECASE,
)


def parse_enqueued_limit(message: str) -> int | None:
    """The limit stated in an enqueued-token message ("Limit: 2,000,000 enqueued tokens")."""
    match = _LIMIT_RE.search(message)
    return int(match.group(1).replace(",", "")) if match else None


def is_enqueued_limit(code: str | None, message: str) -> bool:
    return code == "token_limit_exceeded" or bool(_ENQUEUED_RE.search(message or ""))


def state_of(status: str, seen: set[str]) -> BatchState:
    """The core's state of an OpenAI status; an unknown one is still running, and logged
    the first time ``seen`` (the statuses a run has already reported) meets it."""
    state = STATES.get(status)
    if state is None:
        if status not in seen:
            seen.add(status)
            log.warning("Unknown batch status %r: treated as still running.", status)
        return BatchState.RUNNING
    return state


def _batch_error(code: str | None, message: str | None, line: int | None) -> BatchError:
    message = message or ""
    if is_enqueued_limit(code, message):
        return BatchError(TOKEN_LIMIT, message, line, parse_enqueued_limit(message))
    if _MISSING_FILE_RE.search(message) or code in ("file_not_found", "input_file_not_found"):
        return BatchError(INPUT_MISSING, message, line)
    return BatchError(code or "error", message, line)


def _usage(batch: Any) -> Usage | None:
    usage = getattr(batch, "usage", None)
    if usage is None:
        return None
    try:
        in_details = getattr(usage, "input_tokens_details", None)
        out_details = getattr(usage, "output_tokens_details", None)
        found = Usage(
            input_tokens=int(usage.input_tokens),
            cached_input_tokens=int(getattr(in_details, "cached_tokens", 0) or 0),
            output_tokens=int(usage.output_tokens),
            reasoning_tokens=int(getattr(out_details, "reasoning_tokens", 0) or 0),
        )
    except (TypeError, ValueError, AttributeError):
        return None
    values = (found.input_tokens, found.cached_input_tokens, found.output_tokens)
    return None if min(values) < 0 else found


def _info(batch: Any, seen: set[str]) -> BatchInfo:
    counts = batch.request_counts
    errors = tuple(
        _batch_error(err.code, err.message, err.line)
        for err in ((batch.errors.data or []) if batch.errors is not None else [])
    )
    status = str(batch.status)
    return BatchInfo(
        id=batch.id,
        status=status,
        state=state_of(status, seen),
        created_at=int(batch.created_at or 0),
        total=int(counts.total or 0) if counts else 0,
        completed=int(counts.completed or 0) if counts else 0,
        failed=int(counts.failed or 0) if counts else 0,
        errors=errors,
        expires_at=int(batch.expires_at) if getattr(batch, "expires_at", None) else None,
        usage=_usage(batch),
        results=tuple(f for f in (batch.output_file_id, batch.error_file_id) if f),
        input_ref=batch.input_file_id or None,
        tag=dict(batch.metadata or {}),
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
        if exc.status_code == 400 and _MISSING_FILE_RE.search(message):
            # The file was uploaded but is not visible to batches yet: worth retrying.
            return TransientApiError(f"{what}: HTTP 400: {message}")
        if exc.status_code in (408, 409, 429) or exc.status_code >= 500:
            return TransientApiError(
                f"{what}: HTTP {exc.status_code}: {message}",
                retry_after=retry_after(exc.response),
            )
        if exc.status_code in (401, 403):
            return ProviderError(
                f"{what}: HTTP {exc.status_code}: {message}",
                hint="Check the API key (OPENAI_API_KEY) and its project's permissions.",
            )
        return ProviderError(f"{what}: HTTP {exc.status_code}: {message}")
    if isinstance(exc, openai.APIConnectionError):
        refused = isinstance(exc.__cause__, httpx2.ConnectError)
        return TransientApiError(f"{what}: {type(exc).__name__}: {exc}", refused=refused)
    if isinstance(exc, openai.APIResponseValidationError):
        return TransientApiError(f"{what}: {type(exc).__name__}: {exc}")
    if isinstance(exc, ValueError):  # malformed JSON body in a 200 answer
        return TransientApiError(f"{what}: malformed answer: {exc}")
    raise exc


class OpenAIBatches:
    """Files and batches through the official SDK, pointed at any base URL."""

    exact_find = True  # a batch's metadata names its job, chunk and attempt

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
            max_retries=0,  # one retry policy, in the executor
        )
        self._secret = api.key.get_secret_value()
        self._unknown: set[str] = set()  # statuses this run did not know (logged once)
        self.base_url = str(self._client.base_url)

    def _translate(self, exc: Exception, what: str) -> ProviderError:
        """``translate``, with the key masked: some servers quote it back in a 401."""
        err = translate(exc, what)
        err.message = hide(err.message, self._secret)
        err.args = (err.message,)
        return err

    def close(self) -> None:
        self._client.close()

    def prepare(self, request_file: Path) -> str | None:
        """Upload a request file (purpose batch); returns its file id."""
        try:
            with request_file.open("rb") as handle:
                created = self._client.files.create(
                    file=(request_file.name, handle), purpose="batch"
                )
        except (openai.OpenAIError, ValueError) as exc:
            self._no_batch_api(exc, "/files")
            raise self._translate(exc, f"upload of {request_file.name}") from None
        return str(created.id)

    def _no_batch_api(self, exc: Exception, route: str) -> None:
        """A 404 or 405 on the files or batches routes: the server has no Batch API."""
        if isinstance(exc, openai.APIStatusError) and exc.status_code in (404, 405):
            if exc.status_code == 404 and route == "/batches" and _mentions_file(exc):
                return  # an unknown input file id: a real answer of a real Batch API
            raise BatchApiMissing(self.base_url.rstrip("/"), route, exc.status_code) from None

    def create(
        self, request_file: Path, prepared: str | None, endpoint: str, tag: BatchTag
    ) -> BatchInfo:
        """Create a batch, once (no automatic retry: see ``candidates``)."""
        assert prepared is not None, "an OpenAI batch is created from an uploaded file"
        try:
            batch = self._client.batches.create(
                input_file_id=prepared,
                endpoint=endpoint,  # type: ignore[arg-type]
                completion_window="24h",
                metadata=_metadata(tag),
            )
        except (openai.OpenAIError, ValueError) as exc:
            self._no_batch_api(exc, "/batches")
            raise self._translate(exc, "batch create") from None
        return _info(batch, self._unknown)

    def retrieve(self, batch_id: str) -> BatchInfo:
        try:
            return _info(self._client.batches.retrieve(batch_id), self._unknown)
        except (openai.OpenAIError, ValueError) as exc:
            raise self._translate(exc, f"batch {batch_id}") from None

    def candidates(self, tag: BatchTag, known: frozenset[str]) -> list[BatchInfo]:
        """The newest batch whose metadata is this tag's, created since the intent."""
        wanted = _metadata(tag)
        since = tag.intent_at - 300  # clocks differ: five minutes of slack
        try:
            for batch in self._client.batches.list(limit=100):
                if batch.created_at < since:
                    return []
                meta = batch.metadata or {}
                if all(meta.get(k) == v for k, v in wanted.items()) and batch.id not in known:
                    return [_info(batch, self._unknown)]
        except (openai.OpenAIError, ValueError) as exc:
            raise self._translate(exc, "batch list") from None
        return []

    def cancel(self, batch_id: str) -> BatchInfo:
        try:
            return _info(self._client.batches.cancel(batch_id), self._unknown)
        except openai.ConflictError:
            return self.retrieve(batch_id)
        except (openai.OpenAIError, ValueError) as exc:
            raise self._translate(exc, f"cancel of {batch_id}") from None

    def download(self, info: BatchInfo, folder: Path, stem: str) -> list[Path]:
        """The batch's output and error files under ``folder`` (kept ones are not fetched)."""
        paths = []
        for index, file_id in enumerate(info.results):
            dest = folder / f"{stem}.{index}.jsonl"
            if not dest.exists():
                self._download(file_id, dest)
            paths.append(dest)
        return paths

    def _download(self, file_id: str, dest: Path) -> None:
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

    def delete(self, info: BatchInfo | None, prepared: str | None) -> bool:
        """Delete the batch's input, output and error files (a failure is only logged);
        True when none is left (a file already gone counts as deleted)."""
        ids = [prepared] if prepared else []
        if info is not None:
            ids.extend(f for f in (info.input_ref, *info.results) if f and f not in ids)
        gone = True
        for file_id in ids:
            try:
                self._client.files.delete(file_id)
            except openai.NotFoundError:
                continue
            except (openai.OpenAIError, ValueError) as exc:
                gone = False
                log.warning(
                    "Could not delete file %s at the provider: %s (batchgrader jobs clean "
                    "tries again)",
                    file_id,
                    self._translate(exc, "delete").message,
                )
        return gone


def _mentions_file(exc: Any) -> bool:
    body = exc.body if isinstance(exc.body, dict) else {}
    err = body.get("error", body)
    message = err.get("message", "") if isinstance(err, dict) else ""
    return bool(_MISSING_FILE_RE.search(str(message)))


def _metadata(tag: BatchTag) -> dict[str, str]:
    return {
        "batchgrader_job": tag.job_id,
        "chunk": str(tag.chunk),
        "attempt": str(tag.attempt),
        "source_file": tag.source_name[:500],
    }
