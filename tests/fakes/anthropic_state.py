"""Server-side state of the fake Anthropic API: message batches and their poll-driven lifecycle.

No HTTP here (see ``anthropic_api.py``). Lifecycle, one *step* at a time::

    in_progress ──(processing_steps steps)──▶ ended        outcome "succeed": every row ran
                                              ended        outcome "expire": the first
                                                           ``finished`` rows ran, the rest expired
                                              ended        outcome "cancel" (canceled elsewhere,
                                                           e.g. in the Console): rest canceled
    in_progress ──cancel──▶ canceling ──(cancel_steps)──▶ ended   rows that ran are kept, the
                                                           rest (beyond ``finished``) canceled
    any non-ended batch at or past ``expires_at`` (the clock) ends on its next step: rest expired

Rows run in request order, ``processing_steps`` slices of them per step; their results stay
hidden (``request_counts.processing``) until the batch ends. ``request_counts`` tallies the
result types once it has ended. Results exist only once ended, and not once a batch is
older than 29 days (``archived_at``).
"""

from __future__ import annotations

import itertools
import json
import random
import re
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, Protocol

from tests.fakes.anthropic_judge import execute
from tests.fakes.anthropic_models import (
    DEFAULT_MODELS,
    ApiError,
    ModelInfo,
    count_input_tokens,
    invalid,
)
from tests.fakes.anthropic_params import Context, validate_params

DAY = 86_400.0
RESULTS_RETENTION = 29 * DAY  # results are served for 29 days after creation
CUSTOM_ID_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
OUTCOMES = ("succeed", "expire", "cancel")


class ClockLike(Protocol):
    """What the fake needs of a clock: the current time in epoch seconds."""

    def now(self) -> float: ...


class Clock:
    """Wall time plus an offset that tests move with ``advance`` (never sleeps)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        """Current time in epoch seconds."""
        return time.time() + self.offset

    def advance(self, seconds: float = 0.0, *, days: float = 0.0) -> None:
        """Move time forward."""
        self.offset += seconds + days * DAY


def rfc3339(epoch: float | None) -> str | None:
    """``2026-11-02T10:00:00.123456Z`` for an epoch time, ``None`` for ``None``."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


@dataclass
class Scenario:
    """Per-batch knobs (the fake has a live default attribute for each)."""

    outcome: str = "succeed"  # "succeed" | "expire" | "cancel" (see the module docstring)
    processing_steps: int = 1  # in_progress steps before the batch ends
    finished: int | None = None  # rows with a result when an expiry / cancel lands
    errored: int = 0  # the first N rows are errored with ``error_type``
    error_type: str = "api_error"
    cancel_steps: int = 1  # steps spent in ``canceling`` (0: ended at once)


def _check_knobs(knobs: Mapping[str, Any]) -> None:
    unknown = set(knobs) - {f.name for f in fields(Scenario)}
    if unknown:
        raise ValueError(f"unknown scenario knobs: {sorted(unknown)}")
    if knobs.get("outcome", "succeed") not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}")


@dataclass
class BatchRun:
    """Server-side state of one message batch."""

    seq: int
    batch_id: str
    requests: list[dict[str, Any]]
    api_version: str
    betas: frozenset[str]
    created_at: float
    overrides: dict[str, Any] = field(default_factory=dict)
    status: str = "in_progress"
    results: list[dict[str, Any] | None] = field(default_factory=list)
    steps: int = 0
    polls: int = 0
    cancel_steps_left: int = 0
    ended_at: float | None = None
    cancel_initiated_at: float | None = None

    @property
    def expires_at(self) -> float:
        """24 hours after creation."""
        return self.created_at + DAY

    @property
    def done(self) -> int:
        """Rows that have a result so far (rows run in request order)."""
        return sum(1 for result in self.results if result is not None)


def _shuffled(lines: list[str], seed: str) -> list[str]:
    """Deterministic shuffle that never keeps the original order of two or more lines."""
    shuffled = list(lines)
    random.Random(seed).shuffle(shuffled)
    if len(shuffled) > 1 and shuffled == lines:
        shuffled = shuffled[1:] + shuffled[:1]
    return shuffled


class AnthropicStore:
    """Batches, models, prompt cache and knobs; thread-safe (one re-entrant lock).

    Knobs are plain attributes (see ``reset``). The ``Scenario`` knobs are read live when a
    batch needs them, unless overridden for that batch by ``next_batch`` / ``configure_batch``.
    """

    def __init__(self, clock: ClockLike | None = None) -> None:
        self._lock = threading.RLock()
        self._ids = itertools.count(1)  # never reset: ids stay unique across tests
        self.clock: ClockLike = clock if clock is not None else Clock()
        self.public_url = "https://api.anthropic.com"  # results_url base; set by the server
        self.reset()

    def reset(self) -> None:
        """Forget batches and the prompt cache; restore every knob to its default."""
        with self._lock:
            self.polls_per_state = 1  # retrieves of a non-ended batch per step
            self.max_requests_per_batch = 100_000
            self.max_batch_bytes = 256 * 1024 * 1024  # create body; over: 413
            self.max_message_bytes = 32 * 1024 * 1024  # /v1/messages (+ count_tokens) body
            self.models: dict[str, ModelInfo] = dict(DEFAULT_MODELS)
            self.fail_requests: dict[str, str] = {}  # custom_id → error type of its row
            self.results_chunk_bytes = 64 * 1024  # size of the chunks results stream in
            self.api_keys: set[str] | None = None  # accepted keys (None: any non-empty key)
            self.messages_latency = 0.0  # seconds each /v1/messages request is held
            # Scenario knobs (see Scenario)
            self.outcome = "succeed"
            self.processing_steps = 1
            self.finished: int | None = None
            self.errored = 0
            self.error_type = "api_error"
            self.cancel_steps = 1
            # State and records
            self.prompt_cache: set[str] = set()
            self.batches_created = 0
            self.deleted: set[str] = set()
            self._runs: dict[str, BatchRun] = {}
            self._next_batch_overrides: deque[dict[str, Any]] = deque()

    # ------------------------------------------------------------------ test controls

    def add_model(self, name: str, *, model_id: str | None = None, **caps: Any) -> None:
        """Serve ``name`` (capabilities as ``ModelInfo`` fields; defaults: a 4.5-era model)."""
        with self._lock:
            self.models[name] = ModelInfo(model_id or name, **caps)

    def next_batch(self, **knobs: Any) -> None:
        """Override ``Scenario`` knobs for the next created batch (several calls queue up)."""
        _check_knobs(knobs)
        with self._lock:
            self._next_batch_overrides.append(knobs)

    def configure_batch(self, batch_id: str, **knobs: Any) -> None:
        """Override ``Scenario`` knobs of an existing batch."""
        _check_knobs(knobs)
        with self._lock:
            self._run(batch_id).overrides.update(knobs)

    def advance(self, batch_id: str | None = None) -> None:
        """Take one step for ``batch_id`` (None: every batch not ended), without polling."""
        with self._lock:
            for run in self._selected(batch_id):
                self._step(run)

    def run_to_completion(self, batch_id: str | None = None) -> None:
        """Step ``batch_id`` (None: every batch) until it has ended."""
        with self._lock:
            for run in self._selected(batch_id):
                while self._step(run):
                    pass

    def age_batch(self, batch_id: str, days: float) -> None:
        """Make a batch ``days`` older (its times move back), e.g. past the 29-day retention."""
        with self._lock:
            run = self._run(batch_id)
            run.created_at -= days * DAY
            if run.ended_at is not None:
                run.ended_at -= days * DAY
            if run.cancel_initiated_at is not None:
                run.cancel_initiated_at -= days * DAY

    def batch(self, batch_id: str) -> dict[str, Any]:
        """The batch object as the API would return it now (no poll counted)."""
        with self._lock:
            return self.view(self._run(batch_id))

    def batch_ids(self) -> list[str]:
        """Ids of the stored batches, oldest first."""
        with self._lock:
            return list(self._runs)

    def clear_prompt_cache(self) -> None:
        """Forget every cached prompt prefix (as if the cache TTL passed)."""
        with self._lock:
            self.prompt_cache.clear()

    def _selected(self, batch_id: str | None) -> list[BatchRun]:
        if batch_id is not None:
            return [self._run(batch_id)]
        return [run for run in self._runs.values() if run.status != "ended"]

    def _scenario(self, run: BatchRun) -> Scenario:
        knobs = {f.name: run.overrides.get(f.name, getattr(self, f.name)) for f in fields(Scenario)}
        return Scenario(**knobs)

    def _run(self, batch_id: str) -> BatchRun:
        run = self._runs.get(batch_id)
        if run is None:
            raise ApiError("not_found_error", f"Message batch {batch_id} not found.")
        return run

    def next_id(self) -> int:
        """A fresh sequence number (ids of messages, batches and requests)."""
        return next(self._ids)

    # ------------------------------------------------------------------ messages

    def context(self, api_version: str, betas: frozenset[str], *, in_batch: bool) -> Context:
        """The judge's context for a request under these headers."""
        return Context(self.models, api_version, betas, in_batch, self.prompt_cache)

    def create_message(
        self, params: Any, api_version: str, betas: frozenset[str]
    ) -> dict[str, Any]:
        """``POST /v1/messages``: validate synchronously (``ApiError``), then answer."""
        with self._lock:
            ctx = self.context(api_version, betas, in_batch=False)
            model = validate_params(params, ctx)
            return execute(params, model, ctx, message_id=f"msg_fake{self.next_id():018d}")

    def count_tokens(self, params: Any, api_version: str, betas: frozenset[str]) -> dict[str, Any]:
        """``POST /v1/messages/count_tokens``: ``{"input_tokens": N}`` (no caching)."""
        with self._lock:
            validate_params(
                params, self.context(api_version, betas, in_batch=False), count_only=True
            )
            return {"input_tokens": count_input_tokens(params)}

    # ------------------------------------------------------------------ batches

    def view(self, run: BatchRun) -> dict[str, Any]:
        """The ``message_batch`` object."""
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if run.status == "ended":
            for result in run.results:
                counts[str((result or {}).get("type", "expired"))] += 1
        else:
            counts["processing"] = len(run.requests)
        archive_at = run.created_at + RESULTS_RETENTION
        ended = run.status == "ended"
        return {
            "id": run.batch_id,
            "type": "message_batch",
            "processing_status": run.status,
            "request_counts": counts,
            "ended_at": rfc3339(run.ended_at),
            "created_at": rfc3339(run.created_at),
            "expires_at": rfc3339(run.expires_at),
            "archived_at": rfc3339(archive_at) if self.clock.now() >= archive_at else None,
            "cancel_initiated_at": rfc3339(run.cancel_initiated_at),
            "results_url": (
                f"{self.public_url}/v1/messages/batches/{run.batch_id}/results" if ended else None
            ),
        }

    def create_batch(self, payload: Any, api_version: str, betas: frozenset[str]) -> dict[str, Any]:
        """``POST /v1/messages/batches``: synchronous 400s; ``params`` are judged later."""
        if not isinstance(payload, Mapping):
            raise invalid("Input should be a valid dictionary")
        for key in payload:
            if key != "requests":
                raise invalid(f"{key}: Extra inputs are not permitted")
        requests = payload.get("requests")
        if requests is None:
            raise invalid("requests: Field required")
        if not isinstance(requests, list):
            raise invalid("requests: Input should be a valid list")
        if not requests:
            raise invalid("requests: List should have at least 1 item after validation, not 0")
        if len(requests) > self.max_requests_per_batch:
            raise invalid(
                f"requests: List should have at most {self.max_requests_per_batch} items "
                f"after validation, not {len(requests)}"
            )
        seen: set[str] = set()
        for index, request in enumerate(requests):
            where = f"requests.{index}"
            if not isinstance(request, Mapping):
                raise invalid(f"{where}: Input should be a valid dictionary")
            for key in request:
                if key not in ("custom_id", "params"):
                    raise invalid(f"{where}.{key}: Extra inputs are not permitted")
            custom_id = request.get("custom_id")
            if custom_id is None:
                raise invalid(f"{where}.custom_id: Field required")
            if not isinstance(custom_id, str) or not CUSTOM_ID_RE.match(custom_id):
                raise invalid(
                    f"{where}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
                )
            if custom_id in seen:
                raise invalid(f"{where}.custom_id: Duplicate custom_id '{custom_id}' in batch")
            seen.add(custom_id)
            if "params" not in request:
                raise invalid(f"{where}.params: Field required")
            if not isinstance(request["params"], Mapping):
                raise invalid(f"{where}.params: Input should be a valid dictionary")
        with self._lock:
            seq = self.next_id()
            overrides = self._next_batch_overrides.popleft() if self._next_batch_overrides else {}
            run = BatchRun(
                seq=seq,
                batch_id=f"msgbatch_fake{seq:018d}",
                requests=[dict(r) for r in requests],
                api_version=api_version,
                betas=betas,
                created_at=self.clock.now(),
                overrides=overrides,
                results=[None] * len(requests),
            )
            self._runs[run.batch_id] = run
            self.batches_created += 1
            return self.view(run)

    def poll(self, batch_id: str) -> dict[str, Any]:
        """``GET /v1/messages/batches/{id}``: a poll; ``polls_per_state`` polls take a step."""
        with self._lock:
            run = self._run(batch_id)
            if run.status != "ended":
                run.polls += 1
                if run.polls >= self.polls_per_state or self.clock.now() >= run.expires_at:
                    self._step(run)
            return self.view(run)

    def newest_first(self) -> list[dict[str, Any]]:
        """Every batch object, newest first."""
        with self._lock:
            return [self.view(run) for run in reversed(self._runs.values())]

    def cancel(self, batch_id: str) -> dict[str, Any]:
        """``POST .../{id}/cancel``: ``in_progress`` → ``canceling``; idempotent while canceling."""
        with self._lock:
            run = self._run(batch_id)
            if run.status == "ended":
                raise invalid(f"Message batch {batch_id} has already ended and cannot be canceled.")
            if run.status == "in_progress":
                run.status = "canceling"
                run.cancel_initiated_at = self.clock.now()
                run.polls = 0
                run.cancel_steps_left = self._scenario(run).cancel_steps
                if run.cancel_steps_left <= 0:
                    self._finish_cancel(run)
            return self.view(run)

    def delete(self, batch_id: str) -> dict[str, Any]:
        """``DELETE .../{id}``: only once ended (cancel first)."""
        with self._lock:
            run = self._run(batch_id)
            if run.status != "ended":
                raise invalid(
                    f"Message batch {batch_id} cannot be deleted while it is processing; "
                    "cancel it first."
                )
            del self._runs[batch_id]
            self.deleted.add(batch_id)
            return {"id": batch_id, "type": "message_batch_deleted"}

    def results_lines(self, batch_id: str) -> list[str]:
        """The JSONL lines of an ended batch's results, shuffled (one per request)."""
        with self._lock:
            run = self._run(batch_id)
            if run.status != "ended":
                # Assumed: the real API gives no results before the end (the SDK checks
                # results_url first); we answer the 404 a missing resource gets.
                raise ApiError("not_found_error", f"Results for {batch_id} are not available yet.")
            if self.clock.now() >= run.created_at + RESULTS_RETENTION:
                # Assumed (no documented answer found): results older than 29 days are gone,
                # so the download is a 404 not_found_error while the batch object remains.
                raise ApiError(
                    "not_found_error", f"Results for {batch_id} are no longer available."
                )
            lines = [
                json.dumps({"custom_id": request["custom_id"], "result": result})
                for request, result in zip(run.requests, run.results, strict=True)
            ]
            return _shuffled(lines, run.batch_id)

    # ------------------------------------------------------------------ state machine

    def _step(self, run: BatchRun) -> bool:
        """Move ``run`` one step forward; False once it has ended."""
        run.polls = 0
        if run.status == "ended":
            return False
        scenario = self._scenario(run)
        total = len(run.requests)
        if self.clock.now() >= run.expires_at:
            self._end(run, "expired")
        elif run.status == "canceling":
            run.cancel_steps_left -= 1
            if run.cancel_steps_left <= 0:
                self._finish_cancel(run)
        else:
            run.steps += 1
            steps = max(1, scenario.processing_steps)
            if run.steps < steps:
                self._run_rows(run, total * run.steps // steps)
            elif scenario.outcome == "succeed":
                self._run_rows(run, total)
                self._end(run, "expired")
            else:
                default = total * (steps - 1) // steps
                self._run_rows(run, default if scenario.finished is None else scenario.finished)
                if scenario.outcome == "cancel":
                    run.cancel_initiated_at = self.clock.now()
                self._end(run, "expired" if scenario.outcome == "expire" else "canceled")
        return True

    def _finish_cancel(self, run: BatchRun) -> None:
        finished = self._scenario(run).finished
        self._run_rows(run, max(run.done, finished or 0))
        self._end(run, "canceled")

    def _run_rows(self, run: BatchRun, upto: int) -> None:
        """Run rows ``done..upto`` (clamped to the batch) in request order."""
        scenario = self._scenario(run)
        ctx = self.context(run.api_version, run.betas, in_batch=True)
        for index in range(run.done, min(upto, len(run.requests))):
            request = run.requests[index]
            request_id = f"req_fake{self.next_id():018d}"
            forced = self.fail_requests.get(request["custom_id"])
            if forced is None and index < scenario.errored:
                forced = scenario.error_type
            try:
                if forced is not None:
                    raise ApiError(forced, f"Simulated {forced} for this request.")
                try:
                    model = validate_params(request["params"], ctx)
                except ApiError as error:  # in a batch every bad param is an invalid request
                    raise invalid(error.message) from error
                message_id = f"msg_fake{self.next_id():018d}"
                message = execute(request["params"], model, ctx, message_id=message_id)
                run.results[index] = {"type": "succeeded", "message": message}
            except ApiError as error:
                run.results[index] = {"type": "errored", "error": error.body(request_id)}

    def _end(self, run: BatchRun, unfinished: str) -> None:
        """End ``run``: rows without a result get ``{"type": unfinished}``."""
        run.results = [result or {"type": unfinished} for result in run.results]
        run.status = "ended"
        run.ended_at = self.clock.now()
