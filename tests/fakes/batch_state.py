"""Server-side model of the fake Batch API: files, batches and their poll-driven lifecycle.

No HTTP here (see ``batch_api.py``). Shapes follow OpenAI's Batch API reference
(https://platform.openai.com/docs/api-reference/batch) as summarised in BatchGrader's
batch-api.md notes: §4 create errors, §5 batch object, §6 lifecycle, §7 validation errors,
§8/§9 output and error files. What a line may hold is ``validation.py``.

Lifecycle, one *step* at a time (``BatchStore.step``):

    validating → failed | in_progress → (requests run, ``requests_per_step`` per step)
    → finalizing → completed;   in_progress → expired (``expire_after``);
    non-terminal → cancelling → cancelled (after ``cancel_polls`` steps).
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from openai.types import batch_create_params

from tests.fakes.judge import (
    Executed,
    FailSpec,
    Usage,
    api_error_body,
    count_prompt_tokens,
    error_type_for,
    execute_request,
)
from tests.fakes.validation import (
    BATCH_ENDPOINTS,
    batch_error,
    invalid_value_message,
    line_error,
    request_refusal,
)

# Arguments POST /v1/batches takes (openai SDK ``batch_create_params.py``).
CREATE_PARAMS = frozenset(
    batch_create_params.BatchCreateParams.__required_keys__
    | batch_create_params.BatchCreateParams.__optional_keys__
)
UNKNOWN_FILE_MODES = ("validation", "create")
TERMINAL_STATUSES = frozenset({"completed", "failed", "expired", "cancelled"})
NON_CANCELLABLE = ("completed", "failed", "expired")
ORGANIZATION = "org-fake"
DAY = 86_400
THIRTY_DAYS = 30 * DAY

EXPIRED_MESSAGE = "This request could not be executed before the completion window expired."
CANCELLED_MESSAGE = "This request could not be executed before the batch was cancelled."
EMPTY_FILE_MESSAGE = (
    "The input file is empty. Please ensure that the batch contains at least one request."
)


class ApiError(Exception):
    """An HTTP error, answered with the OpenAI error envelope ``body``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str | None = None,
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = api_error_body(message, type_ or error_type_for(status), param, code)


def missing_parameter(name: str) -> ApiError:
    """400 ``missing_required_parameter`` for ``name``."""
    message = f"Missing required parameter: '{name}'."
    return ApiError(400, message, param=name, code="missing_required_parameter")


def invalid_value(param: str, value: object, supported: tuple[str, ...]) -> ApiError:
    """400 ``invalid_value`` listing the ``supported`` values (§4.2)."""
    message = invalid_value_message(value, supported)
    return ApiError(400, message, param=param, code="invalid_value")


def unrecognized_argument(name: str) -> ApiError:
    """400 for an argument the endpoint does not take (param and code null)."""
    return ApiError(400, f"Unrecognized request argument supplied: {name}")


def cannot_find_file(file_id: object) -> ApiError:
    """400 at create for an unknown ``input_file_id`` (§2.10, §4.3)."""
    message = f"Cannot find file {file_id}, or project proj_fake does not have access to it."
    return ApiError(400, message, param="file_id")


def missing_file_error(file_id: object) -> dict[str, Any]:
    """The ``errors.data`` entry of a batch whose input file does not exist (§4.3, §7.2)."""
    message = (
        f"Cannot find file {file_id}, or organization {ORGANIZATION} does not have access to it."
    )
    return batch_error("invalid_request", message, "file_id")


def file_not_found(file_id: str) -> ApiError:
    """404 for an unknown file (§2.9)."""
    return ApiError(404, f"No such File object: {file_id}", param="id")


def token_limit_message(model: str, limit: int) -> str:
    """The enqueued-token-limit message (§7.2), limit formatted with thousands separators."""
    return (
        f"Enqueued token limit reached for {model} in organization {ORGANIZATION}. "
        f"Limit: {limit:,} enqueued tokens. "
        "Please try again once some in_progress batches have been completed."
    )


def _check_metadata(metadata: object) -> None:
    """Synchronous 400s for ``metadata``: an object of ≤ 16 string values (§4.1, §4.2)."""
    if metadata is None:
        return
    if not isinstance(metadata, dict):
        message = "Invalid type for 'metadata': expected an object."
        raise ApiError(400, message, param="metadata", code="invalid_type")
    if len(metadata) > 16:
        message = f"Invalid 'metadata': expected at most 16 properties, got {len(metadata)}."
        raise ApiError(400, message, param="metadata", code="object_above_max_properties")
    for key, value in metadata.items():
        param = f"metadata.{key}"
        if not isinstance(value, str):
            kind = {list: "an array", dict: "an object", bool: "a boolean"}.get(type(value))
            got = kind or ("null" if value is None else "a number")
            message = f"Invalid type for '{param}': expected a string, but got {got} instead."
            raise ApiError(400, message, param=param, code="invalid_type")
        if len(key) > 64 or len(value) > 512:
            message = f"Invalid '{param}': keys hold at most 64 characters, values 512."
            raise ApiError(400, message, param=param, code="string_above_max_length")


def _parse_line(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None


def split_lines(data: bytes) -> list[bytes]:
    """JSONL lines of a file; one trailing newline is not a line."""
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def validate_input(
    data: bytes, endpoint: str, *, max_requests: int, extra_models: frozenset[str] | set[str]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Validate a batch input file: (parsed requests, ``errors.data`` entries — empty when valid).

    One error per bad line (1-based), in line order; blank interior lines are ``invalid_json_line``.
    """
    lines = split_lines(data)
    if not lines:
        return [], [batch_error("empty_file", EMPTY_FILE_MESSAGE)]
    if len(lines) > max_requests:
        message = (
            f"The input file contains {len(lines):,} requests, which exceeds the maximum of "
            f"{max_requests:,} requests per batch."
        )
        return [], [batch_error("too_many_tasks", message)]
    requests: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    batch_model: str | None = None
    seen_ids: set[str] = set()
    for number, raw in enumerate(lines, start=1):
        request = _parse_line(raw)
        error = line_error(request, number, endpoint, extra_models)
        if error is None:
            model = request["body"].get("model")
            batch_model = batch_model or model
            if model != batch_model:
                message = f"A batch must use one model: expected '{batch_model}', got '{model}'."
                error = batch_error("model_mismatch", message, "body.model", number)
            elif request["custom_id"] in seen_ids:
                message = f"The custom_id '{request['custom_id']}' is not unique in the batch."
                error = batch_error("duplicate_custom_id", message, "custom_id", number)
            else:
                seen_ids.add(request["custom_id"])
        if error is None:
            requests.append(request)
        else:
            errors.append(error)
    return requests, errors


@dataclass
class Scenario:
    """Per-batch scenario knobs (``FakeBatchAPI`` has a live default attribute for each)."""

    expire_after: int | None = None  # expire once this many requests ran
    stuck_in_finalizing: bool = False  # never leave ``finalizing``
    cancel_polls: int = 1  # steps spent in ``cancelling`` (0: cancelled at once)
    requests_per_step: int | None = None  # requests run per ``in_progress`` step (None: all)
    malformed_output_lines: int = 0  # output lines cut to invalid JSON
    drop_custom_id_lines: int = 0  # output lines without ``custom_id``
    cancelled_error_lines: bool = False  # write ``batch_cancelled`` lines for unrun requests
    # custom_id → a ``LINE_CORRUPTIONS`` name: that request's result line as a broken or
    # non-conforming server writes it (the rest of the file is intact).
    corrupt_lines: dict[str, str] = field(default_factory=dict)
    # "openai", or "llama_stack": result lines as llama-stack 0.7 writes them
    # (docs/servers/llama-stack.md: body a JSON string, errors ``{type, message}``, no
    # trailing newline).
    line_style: str = "openai"
    report_usage: bool = True  # the batch object's ``usage`` (False: null, as before 2025-09)
    unknown_status: str | None = None  # a status name the batch shows instead of in_progress


@dataclass
class BatchRun:
    """Server-side state of one batch next to its public ``batch`` object."""

    seq: int
    batch: dict[str, Any]
    overrides: dict[str, Any] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    executed: list[Executed] = field(default_factory=list)  # results of requests[: len(executed)]
    usage: Usage = field(default_factory=Usage)
    enqueued_tokens: int = 0
    polls: int = 0
    cancel_polls_left: int = 0

    @property
    def status(self) -> str:
        """Current public status."""
        return str(self.batch["status"])

    @property
    def terminal(self) -> bool:
        """True once the batch reached a final status."""
        return self.status in TERMINAL_STATUSES


def _shuffled(lines: list[str], seed: str) -> list[str]:
    """Deterministic shuffle that never keeps the original order of two or more lines."""
    shuffled = list(lines)
    random.Random(seed).shuffle(shuffled)
    if len(shuffled) > 1 and shuffled == lines:
        shuffled = shuffled[1:] + shuffled[:1]
    return shuffled


def _dump(line: dict[str, Any]) -> str:
    return json.dumps(line, separators=(",", ":"))


def _corrupt_body(key: str) -> Callable[[dict[str, Any]], None]:
    def corrupt(line: dict[str, Any]) -> None:
        body = line["response"]["body"]
        usage = body["usage"]
        if key == "prompt_tokens_text":
            usage["prompt_tokens"] = "abc"
        elif key == "negative_usage":
            usage["completion_tokens"] = -7_227
        elif key == "huge_usage":
            usage["prompt_tokens"] = 2 * 10**15
        elif key == "usage_list":
            body["usage"] = [usage]
        elif key == "details_string":
            usage["prompt_tokens_details"] = "cached: 0"
        elif key == "choices_object":
            body["choices"] = {"0": body["choices"][0]}

    return corrupt


#: How a server can break one result line (``Scenario.corrupt_lines``). Each takes the
#: parsed line and changes it in place; ``not_utf8`` and the duplicates are applied to
#: the line text by ``result_files``.
LINE_CORRUPTIONS: dict[str, Callable[[dict[str, Any]], None] | None] = {
    "prompt_tokens_text": _corrupt_body("prompt_tokens_text"),  # usage.prompt_tokens "abc"
    "negative_usage": _corrupt_body("negative_usage"),  # completion_tokens −7,227
    "huge_usage": _corrupt_body("huge_usage"),  # prompt_tokens 2×10¹⁵
    "usage_list": _corrupt_body("usage_list"),  # usage is a list
    "details_string": _corrupt_body("details_string"),  # prompt_tokens_details a string
    "choices_object": _corrupt_body("choices_object"),  # choices is an object
    "not_utf8": None,  # a byte 0xff inside the answer text
    "missing": None,  # the line is not in the file (request_counts still count it)
    "duplicate_same": None,  # the line twice, identical
    "duplicate_differs": None,  # the line twice, the second with another answer
}


def _llama_stack_line(line: dict[str, Any]) -> dict[str, Any]:
    """A result line as llama-stack 0.7 writes it (docs/servers/llama-stack.md, rows 1-2)."""
    response = line["response"]
    if response is None:
        error = line["error"]
        return {"id": line["id"], "custom_id": line["custom_id"], "error": error}
    status, body = response["status_code"], response["body"]
    if status == 200:
        response = {**response, "body": json.dumps(body, separators=(",", ":"))}
        return {"id": line["id"], "custom_id": line["custom_id"], "response": response}
    message = f"Error code: {status} - {body['error']['message']}"
    error = {"type": "request_failed", "message": message}
    return {"id": line["id"], "custom_id": line["custom_id"], "error": error}


def _line_text(line: dict[str, Any], corruption: str | None) -> list[str]:
    """The text of one result line (none, one or two lines), corrupted as asked."""
    if corruption is None:
        return [_dump(line)]
    if corruption not in LINE_CORRUPTIONS:
        raise ValueError(f"unknown line corruption {corruption!r}")
    if corruption == "missing":
        return []
    change = LINE_CORRUPTIONS[corruption]
    if change is not None:
        line = json.loads(_dump(line))
        change(line)
    text = _dump(line)
    if corruption == "not_utf8":  # surrogateescape: written as the raw byte 0xff
        return [text.replace('"content":"', '"content":"\udcff', 1)]
    if corruption == "duplicate_differs":
        other = text.replace('"content":"', '"content":"Actually: ', 1)
        return [text, other]
    if corruption == "duplicate_same":
        return [text, text]
    return [text]


def result_files(
    run: BatchRun,
    *,
    unrun_error_code: str | None,
    malformed_lines: int,
    drop_custom_id_lines: int,
    corrupt_lines: dict[str, str] | None = None,
    line_style: str = "openai",
) -> tuple[list[str], list[str]]:
    """(output lines, error lines) of a terminal batch, both shuffled.

    Successes go to the output file, HTTP failures to the error file (error inside
    ``response.body``); requests that never ran get a ``response: null`` line with
    ``unrun_error_code`` when it is set, else appear in neither file. The first
    ``malformed_lines`` output lines are cut to invalid JSON, the next
    ``drop_custom_id_lines`` lose their ``custom_id`` key; ``corrupt_lines`` breaks the
    lines of chosen requests (``LINE_CORRUPTIONS``), and ``line_style`` writes them as a
    compatible server does. A line may hold a lone surrogate: the file is written with
    ``surrogateescape``, so it becomes a raw (non-UTF-8) byte.
    """
    if line_style not in ("openai", "llama_stack"):
        raise ValueError(f"unknown line_style {line_style!r}")
    if line_style != "openai" and corrupt_lines:
        raise ValueError("corrupt_lines applies to OpenAI-style lines only")
    corrupt = corrupt_lines or {}
    message = EXPIRED_MESSAGE if unrun_error_code == "batch_expired" else CANCELLED_MESSAGE
    output: list[str] = []
    errors: list[str] = []
    for index, request in enumerate(run.requests):
        line_id = f"batch_req_{run.seq:06d}{index:06d}"
        custom_id = request["custom_id"]
        if index >= len(run.executed):
            if unrun_error_code is not None:
                error = {"code": unrun_error_code, "message": message}
                unrun = {"id": line_id, "custom_id": custom_id, "response": None, "error": error}
                if line_style == "llama_stack":
                    unrun = _llama_stack_line(unrun)
                errors.append(_dump(unrun))
            continue
        executed = run.executed[index]
        response = {
            "status_code": executed.status_code,
            "request_id": f"req_{line_id}",
            "body": executed.body,
        }
        line = {"id": line_id, "custom_id": custom_id, "response": response, "error": None}
        if line_style == "llama_stack":
            texts = [_dump(_llama_stack_line(line))]
        else:
            texts = _line_text(line, corrupt.get(custom_id))
        (output if executed.status_code == 200 else errors).extend(texts)
    output = _shuffled(output, run.batch["id"])
    for index in range(min(malformed_lines, len(output))):
        output[index] = output[index][: len(output[index]) // 2]
    for index in range(malformed_lines, min(malformed_lines + drop_custom_id_lines, len(output))):
        line = json.loads(output[index])
        del line["custom_id"]
        output[index] = _dump(line)
    return output, _shuffled(errors, run.batch["id"] + ":errors")


class BatchStore:
    """Files and batches of the fake with their lifecycle; thread-safe (one re-entrant lock).

    Knobs are plain attributes (see ``reset``). The scenario knobs (``Scenario`` fields) are
    read live when a batch needs them, unless overridden for that batch by ``next_batch``
    or ``configure_batch``.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._ids = itertools.count(1)  # never reset: ids stay unique across tests
        self.reset()

    def reset(self) -> None:
        """Forget all files and batches and restore every knob to its default."""
        with self._lock:
            self.polls_per_state = 1  # polls of GET /batches/{id} per lifecycle step
            self.max_file_bytes = 200 * 1024 * 1024  # purpose=batch upload cap
            self.max_requests_per_batch = 50_000  # more lines: too_many_tasks
            self.extra_models: set[str] = set()  # known besides validation.KNOWN_MODEL_PREFIXES
            # Unknown input_file_id (§4.3, both seen live): "validation" creates the batch and
            # fails it at validation; "create" answers the create with a 400.
            self.unknown_file_mode = "validation"
            # Eventual consistency (§2.10): the next N batch uploads succeed but stay
            # invisible to batches, which treat them as unknown files (per the mode above).
            self.invisible_uploads = 0
            self.invisible_files: set[str] = set()
            self.enqueued_token_limit: dict[str, int] = {}  # model → prompt-token limit
            self.token_limit_mode = "async"  # "async" (batch fails) | "sync_400" | "sync_429"
            self.cached_tokens_per_request = 0  # capped at each request's prompt tokens
            self.fail_requests: dict[str, FailSpec] = {}  # custom_id → (status, code, message)
            self.file_content_gone: set[str] = set()  # file ids whose content is a 404
            self.empty_error_file_id_as_empty_string = False  # "" instead of null
            # Scenario knobs (see Scenario)
            self.expire_after: int | None = None
            self.stuck_in_finalizing = False
            self.cancel_polls = 1
            self.requests_per_step: int | None = None
            self.malformed_output_lines = 0
            self.drop_custom_id_lines = 0
            self.cancelled_error_lines = False
            self.corrupt_lines: dict[str, str] = {}
            self.line_style = "openai"
            self.report_usage = True
            self.unknown_status: str | None = None
            # State and records
            self.files: dict[str, tuple[dict[str, Any], bytes]] = {}  # id → (File object, bytes)
            self.batches_created = 0  # batch objects ever created
            self.max_in_flight = 0  # peak number of non-terminal batches
            self.max_in_flight_enqueued_tokens: dict[str, int] = {}  # model → peak admitted tokens
            self._runs: dict[str, BatchRun] = {}
            self._next_batch_overrides: deque[dict[str, Any]] = deque()

    # ------------------------------------------------------------------ test controls

    @property
    def batches(self) -> dict[str, dict[str, Any]]:
        """Batch id → the live batch object (``error_file_id`` knob not applied)."""
        with self._lock:
            return {batch_id: run.batch for batch_id, run in self._runs.items()}

    def next_batch(self, **knobs: Any) -> None:
        """Override scenario knobs for the next created batch (several calls queue up)."""
        _check_knobs(knobs)
        with self._lock:
            self._next_batch_overrides.append(knobs)

    def configure_batch(self, batch_id: str, **knobs: Any) -> None:
        """Override scenario knobs of an existing batch (e.g. release a stuck one)."""
        _check_knobs(knobs)
        with self._lock:
            self._runs[batch_id].overrides.update(knobs)

    def advance(self, batch_id: str | None = None) -> None:
        """Take one step for ``batch_id`` (None: every non-terminal batch), without polling."""
        with self._lock:
            for run in self._selected_runs(batch_id):
                self._step(run)

    def run_to_completion(self, batch_id: str | None = None) -> None:
        """Step ``batch_id`` (None: every batch) until terminal or stuck in ``finalizing``."""
        with self._lock:
            for run in self._selected_runs(batch_id):
                while self._step(run):
                    pass

    def _selected_runs(self, batch_id: str | None) -> list[BatchRun]:
        if batch_id is not None:
            return [self._run(batch_id)]
        return [run for run in self._runs.values() if not run.terminal]

    def _scenario(self, run: BatchRun) -> Scenario:
        knobs = {f.name: run.overrides.get(f.name, getattr(self, f.name)) for f in fields(Scenario)}
        return Scenario(**knobs)

    # ------------------------------------------------------------------ files

    def store_file(
        self, filename: str, purpose: str, data: bytes, expires_after: int | None
    ) -> dict[str, Any]:
        """Store a file; returns its File object (§2.4)."""
        with self._lock:
            now = int(time.time())
            meta: dict[str, Any] = {
                "id": f"file-fake{next(self._ids):06d}",
                "object": "file",
                "bytes": len(data),
                "created_at": now,
                "filename": filename,
                "purpose": purpose,
                "status": "processed",
                "expires_at": None if expires_after is None else now + expires_after,
                "status_details": None,
            }
            self.files[meta["id"]] = (meta, data)
            if purpose == "batch" and self.invisible_uploads > 0:
                self.invisible_uploads -= 1
                self.invisible_files.add(meta["id"])
            return meta

    def _visible(self, file_id: str) -> bool:
        return file_id in self.files and file_id not in self.invisible_files

    def file(self, file_id: str) -> tuple[dict[str, Any], bytes]:
        """(File object, content) of a stored file, or a 404 ``ApiError``."""
        stored = self.files.get(file_id)
        if stored is None:
            raise file_not_found(file_id)
        return stored

    # ------------------------------------------------------------------ batches

    def view(self, run: BatchRun) -> dict[str, Any]:
        """The batch object as the API returns it."""
        batch = dict(run.batch)
        if batch["error_file_id"] is None and self.empty_error_file_id_as_empty_string:
            batch["error_file_id"] = ""
        scenario = self._scenario(run)
        if not scenario.report_usage:
            batch["usage"] = None
        if scenario.unknown_status is not None and batch["status"] == "in_progress":
            batch["status"] = scenario.unknown_status
        return batch

    def _run(self, batch_id: str) -> BatchRun:
        run = self._runs.get(batch_id)
        if run is None:
            raise ApiError(404, f"No batch found with id '{batch_id}'.")
        return run

    def newest_first(self) -> list[dict[str, Any]]:
        """Every batch object, newest first."""
        return [self.view(run) for run in reversed(self._runs.values())]

    def create_batch(self, payload: dict[str, Any]) -> dict[str, Any]:
        """``POST /batches``: synchronous 400s (§4.2), else a new ``validating`` batch."""
        for name in payload:
            if name not in CREATE_PARAMS:
                raise unrecognized_argument(name)
        for key in ("input_file_id", "endpoint", "completion_window"):
            if key not in payload:
                raise missing_parameter(key)
        endpoint, window = payload["endpoint"], payload["completion_window"]
        if endpoint not in BATCH_ENDPOINTS:
            raise invalid_value("endpoint", endpoint, BATCH_ENDPOINTS)
        if window != "24h":
            raise invalid_value("completion_window", window, ("24h",))
        _check_metadata(payload.get("metadata"))
        file_id = payload["input_file_id"]
        if self.unknown_file_mode not in UNKNOWN_FILE_MODES:
            raise ValueError(f"unknown_file_mode must be one of {UNKNOWN_FILE_MODES}")
        if not self._visible(file_id) and self.unknown_file_mode == "create":
            raise cannot_find_file(file_id)
        if file_id in self.files and self.token_limit_mode != "async":
            self._check_sync_token_limit(self.files[file_id][1], endpoint)
        seq = next(self._ids)
        now = int(time.time())
        batch: dict[str, Any] = {
            "id": f"batch_fake{seq:06d}",
            "object": "batch",
            "endpoint": endpoint,
            "model": None,
            "errors": None,
            "input_file_id": file_id,
            "completion_window": window,
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "in_progress_at": None,
            "expires_at": now + DAY,
            "finalizing_at": None,
            "completed_at": None,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": payload.get("metadata"),
            "usage": Usage().batch_usage(),
        }
        overrides = self._next_batch_overrides.popleft() if self._next_batch_overrides else {}
        run = BatchRun(seq, batch, overrides)
        self._runs[batch["id"]] = run
        self.batches_created += 1
        self._track_in_flight()
        return self.view(run)

    def poll(self, batch_id: str) -> dict[str, Any]:
        """``GET /batches/{id}``: counts a poll; every ``polls_per_state`` polls take a step."""
        run = self._run(batch_id)
        if not run.terminal:
            run.polls += 1
            if run.polls >= self.polls_per_state:
                self._step(run)
        return self.view(run)

    def cancel(self, batch_id: str) -> dict[str, Any]:
        """``POST /batches/{id}/cancel`` (§6.4, §6.5)."""
        run = self._run(batch_id)
        if run.status in NON_CANCELLABLE:
            raise ApiError(409, f"Cannot cancel a batch with status '{run.status}'.")
        if run.status not in ("cancelling", "cancelled"):
            scenario = self._scenario(run)
            run.batch.update(status="cancelling", cancelling_at=int(time.time()))
            run.polls = 0
            run.cancel_polls_left = scenario.cancel_polls
            if scenario.cancel_polls <= 0:
                self._finish(run, "cancelled")
        return self.view(run)

    def execute(
        self, endpoint: str, body: dict[str, Any], *, failure: FailSpec | None, response_id: str
    ) -> Executed:
        """One request as the endpoint answers it: a forced ``failure``, the endpoint's
        refusal (``validation.request_refusal``), else the judge's answer."""
        refusal = None if failure is not None else request_refusal(endpoint, body)
        if refusal is not None:
            return Executed(refusal.status, refusal.body())
        return execute_request(
            endpoint,
            body,
            failure=failure,
            cached_tokens=self.cached_tokens_per_request,
            response_id=response_id,
            now=int(time.time()),
        )

    def _enqueued(self, model: str | None) -> int:
        active = (r for r in self._runs.values() if not r.terminal and r.batch["model"] == model)
        return sum(r.enqueued_tokens for r in active)

    def _over_token_limit(self, requests: list[dict[str, Any]]) -> tuple[str, int] | None:
        """(model, limit) if admitting ``requests`` exceeds the model's enqueued-token limit."""
        model = requests[0]["body"].get("model")
        limit = self.enqueued_token_limit.get(model)
        tokens = sum(count_prompt_tokens(r["body"]) for r in requests)
        if limit is not None and self._enqueued(model) + tokens > limit:
            return model, limit
        return None

    def _check_sync_token_limit(self, data: bytes, endpoint: str) -> None:
        requests, errors = validate_input(
            data, endpoint, max_requests=self.max_requests_per_batch, extra_models=self.extra_models
        )
        over = None if errors else self._over_token_limit(requests)
        if over is not None:
            status = 429 if self.token_limit_mode == "sync_429" else 400
            message = token_limit_message(*over)
            raise ApiError(
                status, message, type_="invalid_request_error", code="token_limit_exceeded"
            )

    # ------------------------------------------------------------------ state machine

    def _step(self, run: BatchRun) -> bool:
        """Move ``run`` one step forward; False when it cannot move (terminal or stuck)."""
        run.polls = 0
        status = run.status
        if status == "validating":
            self._validate(run)
        elif status == "in_progress":
            self._run_requests(run)
        elif status == "finalizing":
            if self._scenario(run).stuck_in_finalizing:
                return False
            self._finish(run, "completed")
        elif status == "cancelling":
            run.cancel_polls_left -= 1
            if run.cancel_polls_left <= 0:
                self._finish(run, "cancelled")
        else:
            return False
        self._track_in_flight()
        return True

    def _validate(self, run: BatchRun) -> None:
        file_id = run.batch["input_file_id"]
        if not self._visible(file_id):
            self._fail(run, [missing_file_error(file_id)])
            return
        requests, errors = validate_input(
            self.files[file_id][1],
            run.batch["endpoint"],
            max_requests=self.max_requests_per_batch,
            extra_models=self.extra_models,
        )
        over = None if errors else self._over_token_limit(requests)
        if over is not None:
            errors = [batch_error("token_limit_exceeded", token_limit_message(*over))]
        if errors:
            self._fail(run, errors)
            return
        run.requests = requests
        run.enqueued_tokens = sum(count_prompt_tokens(r["body"]) for r in requests)
        model = requests[0]["body"].get("model")
        run.batch.update(status="in_progress", in_progress_at=int(time.time()), model=model)
        run.batch["request_counts"]["total"] = len(requests)

    def _fail(self, run: BatchRun, errors: list[dict[str, Any]]) -> None:
        errors_list = {"object": "list", "data": errors}
        run.batch.update(status="failed", failed_at=int(time.time()), errors=errors_list)

    def _run_requests(self, run: BatchRun) -> None:
        scenario = self._scenario(run)
        done = len(run.executed)
        stop = len(run.requests)
        if scenario.requests_per_step is not None:
            stop = min(stop, done + scenario.requests_per_step)
        if scenario.expire_after is not None:
            stop = min(stop, max(done, scenario.expire_after))
        counts = run.batch["request_counts"]
        for index in range(done, stop):
            request = run.requests[index]
            executed = self.execute(
                run.batch["endpoint"],
                request["body"],
                failure=self.fail_requests.get(request["custom_id"]),
                response_id=f"{run.seq:06d}{index:06d}",
            )
            run.executed.append(executed)
            counts["completed" if executed.status_code == 200 else "failed"] += 1
            if executed.usage is not None:
                run.usage.add(executed.usage)
        run.batch["usage"] = run.usage.batch_usage()
        if len(run.executed) == len(run.requests):
            run.batch.update(status="finalizing", finalizing_at=int(time.time()))
        elif scenario.expire_after is not None and len(run.executed) >= scenario.expire_after:
            self._finish(run, "expired")

    def _finish(self, run: BatchRun, status: str) -> None:
        """Enter ``completed`` / ``expired`` / ``cancelled`` and write the result files."""
        scenario = self._scenario(run)
        unrun_code = {"expired": "batch_expired", "cancelled": "batch_cancelled"}.get(status)
        if status == "cancelled" and not scenario.cancelled_error_lines:
            unrun_code = None
        output, errors = result_files(
            run,
            unrun_error_code=unrun_code,
            malformed_lines=scenario.malformed_output_lines,
            drop_custom_id_lines=scenario.drop_custom_id_lines,
            corrupt_lines=scenario.corrupt_lines,
            line_style=scenario.line_style,
        )
        if unrun_code is not None:
            run.batch["request_counts"]["failed"] += len(run.requests) - len(run.executed)
        succeeded = any(e.status_code == 200 for e in run.executed)
        end = "" if scenario.line_style == "llama_stack" else "\n"  # llama-stack: none
        for key, lines, kind, wanted in (
            ("output_file_id", output, "output", succeeded),
            ("error_file_id", errors, "error", False),
        ):
            if lines or wanted:  # every line "missing": the server wrote a 0-byte file
                name = f"{run.batch['id']}_{kind}.jsonl"
                data = ("\n".join(lines) + end if lines else "").encode("utf-8", "surrogateescape")
                run.batch[key] = self.store_file(name, "batch_output", data, THIRTY_DAYS)["id"]
        run.batch.update({"status": status, f"{status}_at": int(time.time())})

    def _track_in_flight(self) -> None:
        active = [run for run in self._runs.values() if not run.terminal]
        self.max_in_flight = max(self.max_in_flight, len(active))
        peaks = self.max_in_flight_enqueued_tokens
        for model in {run.batch["model"] for run in active if run.batch["model"]}:
            peaks[model] = max(peaks.get(model, 0), self._enqueued(model))


def _check_knobs(knobs: dict[str, Any]) -> None:
    unknown = set(knobs) - {f.name for f in fields(Scenario)}
    if unknown:
        raise ValueError(f"unknown scenario knobs: {sorted(unknown)}")
