"""A fake OpenAI Files + Batches (+ chat completions) API over real HTTP, for the real SDK.

    with FakeBatchAPI() as fake:
        client = OpenAI(api_key="sk-test", base_url=fake.base_url)

Behaviour follows OpenAI's Batch API reference
(https://platform.openai.com/docs/api-reference/batch) and what the live service was seen
to do, as collected in BatchGrader's batch-api.md research notes (their §19 checklist).
What a request line may hold is ``validation.py`` and the per-model rules are
``models.py``, each with its sources. Batches advance by polls, never by wall time: each
``GET /v1/batches/{id}`` of a non-terminal batch is one poll and every ``polls_per_state``
polls the batch takes one step (lifecycle in ``batch_state.py``); ``advance()`` /
``run_to_completion()`` take steps without HTTP. The judge is ``judge.py``.

This module is the HTTP layer: routing, multipart uploads, fault injection and the record
of calls. Files, batches, knobs and the lifecycle live in ``BatchStore``.
"""

from __future__ import annotations

import functools
import json
import math
import re
import socket
import sys
import threading
import time
import traceback
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import HeaderParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

from tests.fakes.batch_state import (
    THIRTY_DAYS,
    ApiError,
    BatchStore,
    cannot_find_file,
    file_not_found,
    invalid_value,
    missing_parameter,
    token_limit_message,
)
from tests.fakes.judge import (
    CHAT_ENDPOINT,
    RESPONSES_ENDPOINT,
    api_error_body,
    count_prompt_tokens,
)
from tests.fakes.validation import is_known_model

FILE_PURPOSES = ("assistants", "batch", "batch_output", "fine-tune", "vision", "user_data", "evals")
QUOTA_MESSAGE = "You exceeded your current quota, please check your plan and billing details."

# (method, path pattern, route name); path parameters are named groups.
ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (method, re.compile(pattern), name)
    for method, pattern, name in (
        ("POST", r"/v1/files", "upload"),
        ("GET", r"/v1/files", "file_list"),
        ("GET", r"/v1/files/(?P<id>[^/]+)", "file_retrieve"),
        ("DELETE", r"/v1/files/(?P<id>[^/]+)", "file_delete"),
        ("GET", r"/v1/files/(?P<id>[^/]+)/content", "file_content"),
        ("POST", r"/v1/batches", "create"),
        ("GET", r"/v1/batches", "list"),
        ("GET", r"/v1/batches/(?P<id>[^/]+)", "retrieve"),
        ("POST", r"/v1/batches/(?P<id>[^/]+)/cancel", "cancel"),
        ("POST", r"/v1/chat/completions", "chat"),
        ("POST", r"/v1/responses", "responses"),
    )
)
ROUTE_NAMES = frozenset(name for _, _, name in ROUTES)
# Fault kinds answered with an error envelope: kind → (status, type, code, message or None).
ERROR_FAULTS: dict[str, tuple[int, str, str | None, str | None]] = {
    "429": (429, "requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    "500": (500, "server_error", None, "The server had an error while processing your request."),
    "503": (503, "server_error", None, "The engine is currently overloaded, please try again."),
    "insufficient_quota": (429, "insufficient_quota", "insufficient_quota", QUOTA_MESSAGE),
    "token_limit": (400, "invalid_request_error", "token_limit_exceeded", None),
    "token_limit_429": (429, "invalid_request_error", "token_limit_exceeded", None),
}
FAULT_KINDS = frozenset(ERROR_FAULTS) | {
    "reset",
    "timeout",
    "truncated",
    "malformed_json",
    "cannot_find_file",
    "hold",
}


class Call(NamedTuple):
    """One HTTP request seen by the fake."""

    method: str
    path: str
    status: int  # 0: the connection was closed without a response
    headers: dict[str, str]  # every request header, lower-cased names
    route: str  # a ROUTES name, or "unknown"
    query: dict[str, str]
    payload: Any  # parsed JSON body; None when the body is not JSON
    at: float = 0.0  # when it arrived (time.monotonic())


@dataclass
class _Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    params: dict[str, str] = field(default_factory=dict)
    received: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def json_object(self) -> dict[str, Any]:
        payload = self.json()
        if not isinstance(payload, dict):
            raise ApiError(400, "We could not parse the JSON body of your request.")
        return payload


@dataclass
class _Response:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    delivery: str = "normal"  # "normal" | "reset" (no response) | "truncated" (short body)

    @classmethod
    def of_json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> _Response:
        return cls(status, json.dumps(payload).encode(), headers=headers or {})


@dataclass
class _Fault:
    kind: str
    remaining: int
    opts: dict[str, Any]


def _reset_text(seconds: float) -> str:
    """A duration as OpenAI's reset headers write it: ``250ms``, ``8.64s``, ``6m0s``."""
    seconds = max(0.0, seconds)  # rounded up: a client waiting that long finds it reset
    if seconds < 1:
        return f"{max(1, math.ceil(seconds * 1000))}ms"
    if seconds < 60:
        return f"{math.ceil(seconds * 100) / 100:g}s"
    minutes, rest = divmod(math.ceil(seconds), 60)
    return f"{minutes}m{rest}s"


def _no_batch_api(style: str, request: _Request) -> _Response:
    """What a server without files/batches routes answers (as vLLM, Ollama, llama.cpp do)."""
    if style == "method":
        return _Response.of_json(405, {"detail": "Method Not Allowed"})
    if style == "detail":  # FastAPI (vLLM, SGLang)
        return _Response.of_json(404, {"detail": "Not Found"})
    if style == "text":  # Go's net/http (Ollama)
        return _Response(404, b"404 page not found", content_type="text/plain")
    return _Response.of_json(
        404, {"error": {"message": f"File Not Found: {request.path}", "type": "not_found"}}
    )


def _int_query(query: dict[str, str], name: str, default: int, hi: int) -> int:
    raw = query.get(name, str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= hi:
        message = f"Invalid '{name}': expected an integer between 1 and {hi}, got '{raw}'."
        raise ApiError(400, message, param=name, code="invalid_value")
    return int(raw)


def _page(items: list[dict[str, Any]], after: str | None, limit: int) -> dict[str, Any]:
    """A cursor page of ``items`` (already ordered) after the item with id ``after``."""
    if after is not None:
        ids = [item["id"] for item in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    data = items[:limit]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": len(items) > limit,
    }


def _read_body(handler: BaseHTTPRequestHandler) -> bytes:
    if handler.headers.get("Transfer-Encoding", "").lower() != "chunked":
        return handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
    chunks = []
    while size := int(handler.rfile.readline().split(b";")[0], 16):
        chunks.append(handler.rfile.read(size))
        handler.rfile.readline()
    while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
        pass  # trailers
    return b"".join(chunks)


def _parse_multipart(
    content_type: str, body: bytes
) -> tuple[dict[str, str], dict[str, tuple[str, bytes]]]:
    """(form fields, files as name → (filename, bytes)) of a multipart/form-data body."""
    boundary = HeaderParser().parsestr(f"Content-Type: {content_type}\n\n").get_param("boundary")
    if not isinstance(boundary, str):
        raise ApiError(400, "The request must be multipart/form-data with a boundary.")
    form: dict[str, str] = {}
    files: dict[str, tuple[str, bytes]] = {}
    for part in (b"\r\n" + body).split(b"\r\n--" + boundary.encode())[1:]:
        if part.startswith(b"--"):
            break
        head, _, content = part.partition(b"\r\n\r\n")
        headers = HeaderParser().parsestr(head.decode("utf-8").strip() + "\n\n")
        name = headers.get_param("name", header="content-disposition")
        filename = headers.get_filename()
        if not isinstance(name, str):
            continue
        if filename is None:
            form[name] = content.decode("utf-8")
        else:
            files[name] = (filename, content)
    return form, files


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes: without this, Nagle + delayed ACK cost 40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self) -> None:
        self.server.fake._serve(self)

    do_POST = do_GET
    do_DELETE = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output quiet."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # A real server's listen backlog (uvicorn 2048, nginx 511), not socketserver's 5: with
    # more connections opened at once than that, Linux stalls them for a SYN retransmit
    # (1 s) or resets them, which no real service does to a client opening 64.
    request_queue_size = 1024

    def __init__(self, fake: FakeBatchAPI) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.fake._lock:
            self.fake.connections_opened += 1
        super().process_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that hung up (e.g. on an injected timeout); report anything else."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeBatchAPI(BatchStore):
    """The fake OpenAI API server. Knobs, state and test controls: see ``BatchStore``.

    Adds: ``start``/``stop``/``base_url``/context manager, ``inject_fault``, the ``calls``
    record and ``request_count``; ``reset()`` also clears calls and pending faults.
    """

    def __init__(self) -> None:
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._generation = 0
        super().__init__()

    def reset(self) -> None:
        """Forget files, batches, calls and faults; restore every knob to its default."""
        with self._lock:
            super().reset()
            self.calls: list[Call] = []
            self._faults: dict[str, deque[_Fault]] = {}
            self._faults_met: Counter[str] = Counter()
            # Direct (synchronous) calls: seconds each answer takes, and the most seen at once.
            self.chat_latency = 0.0
            self.chat_in_flight = 0
            self.max_chat_in_flight = 0
            self.connections_opened = 0  # TCP connections accepted (keep-alive reuse shows)
            # The direct routes' rate limits, as OpenAI reports them on every answer
            # (x-ratelimit-{limit,remaining,reset}-{requests,tokens}): at most ``chat_rpm``
            # requests and ``chat_tpm`` prompt tokens a window of ``chat_window`` seconds
            # (a minute; tests shrink it). Over them: OpenAI's 429 "Rate limit reached",
            # without Retry-After (the reset headers say when).
            self.chat_rpm = 30_000
            self.chat_tpm = 150_000_000
            self.chat_window = 60.0
            self._window = (0.0, 0, 0)  # start (monotonic), requests, tokens
            self.rate_limited = 0  # chat requests refused over the limits
            self.rate_windows: list[float] = []  # when each window began (time.monotonic())
            # A server without a Batch API (vLLM, Ollama, llama.cpp): its files and batches
            # routes answer 404 with a JSON error ("json"), FastAPI's {"detail": ...}
            # ("detail") or plain text ("text"), or 405 ("method").
            self.no_batch_api: str | None = None
            self._generation += 1  # requests held by ``timeout`` faults see they are stale
            old_release = getattr(self, "_release", None)
            if old_release is not None:
                old_release.set()  # requests held by ``hold`` faults of an earlier test
            self._release = threading.Event()
            self.held = 0  # requests a ``hold`` fault is holding (or has held)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Serve on 127.0.0.1 (a free port) from a daemon thread."""
        if self._server is not None:
            return
        self._stopping.clear()
        self._server = _Server(self)
        serve = functools.partial(self._server.serve_forever, poll_interval=0.05)  # quick stop()
        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving; requests held by ``timeout`` faults are released."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> FakeBatchAPI:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1`` of the running server."""
        if self._server is None:
            raise RuntimeError("FakeBatchAPI is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    # ------------------------------------------------------------------ test controls

    def request_count(self, route: str) -> int:
        """Number of HTTP requests received on ``route`` (faulted ones included)."""
        with self._lock:
            return sum(1 for call in self.calls if call.route == route)

    def faults_met(self, route: str) -> int:
        """Requests on ``route`` that were answered with an injected fault (counted on
        arrival, so a request still held by a ``timeout`` fault counts)."""
        with self._lock:
            return self._faults_met[route]

    def inject_fault(self, route: str, kind: str, times: int = 1, **opts: Any) -> None:
        """Answer the next ``times`` requests on ``route`` with fault ``kind`` (faults queue).

        Options: ``retry_after`` (s) / ``retry_after_ms`` headers on error kinds; ``delay``
        (s, default 2) for ``timeout``, and ``perform=False`` to drop the held request
        unperformed; ``after_effect=True`` performs the request and then
        sends the fault instead of its answer; ``model`` / ``limit`` for ``token_limit*``.
        ``hold`` keeps the request (counted in ``held``) until ``release_held()``, then
        performs it: a slow server, paused at a point the test chooses. A request still
        held at ``reset()`` belongs to an earlier test and is dropped unperformed.
        """
        if route not in ROUTE_NAMES:
            raise ValueError(f"unknown route {route!r}; expected one of {sorted(ROUTE_NAMES)}")
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        with self._lock:
            self._faults.setdefault(route, deque()).append(_Fault(kind, times, opts))

    def release_held(self) -> None:
        """Let every request a ``hold`` fault keeps (and later ones) go on."""
        self._release.set()

    def clear_faults(self) -> None:
        """Drop every fault not yet served (the service is healthy again)."""
        with self._lock:
            self._faults = {}

    def _take_fault(self, route: str) -> _Fault | None:
        with self._lock:
            queue = self._faults.get(route)
            if not queue:
                return None
            fault = queue[0]
            self._faults_met[route] += 1
            fault.remaining -= 1
            if fault.remaining <= 0:
                queue.popleft()
            return fault

    # ------------------------------------------------------------------ HTTP plumbing

    def _serve(self, handler: _Handler) -> None:
        url = urlsplit(handler.path)
        request = _Request(
            method=handler.command,
            path=url.path,
            query={key: values[-1] for key, values in parse_qs(url.query).items()},
            headers={key.lower(): value for key, value in handler.headers.items()},
            body=_read_body(handler),
        )
        route = "unknown"
        for method, pattern, name in ROUTES:
            match = pattern.fullmatch(request.path)
            if match and method == request.method:
                route, request.params = name, match.groupdict()
                break
        if self.no_batch_api is not None and route not in ("chat", "responses", "unknown"):
            response = _no_batch_api(self.no_batch_api, request)
            with self._lock:
                self.calls.append(
                    Call(request.method, request.path, response.status, request.headers, route,
                         request.query, None, request.received)
                )  # fmt: skip
            self._send(handler, response)
            return
        if route in ("chat", "responses"):  # direct calls
            with self._lock:
                self.chat_in_flight += 1
                self.max_chat_in_flight = max(self.max_chat_in_flight, self.chat_in_flight)
            try:
                if self.chat_latency:
                    self._stopping.wait(self.chat_latency)
                self._serve_route(handler, route, request)
            finally:
                with self._lock:
                    self.chat_in_flight -= 1
            return
        self._serve_route(handler, route, request)

    def _serve_route(self, handler: _Handler, route: str, request: _Request) -> None:
        generation = self._generation
        fault = self._take_fault(route)
        if fault is not None and fault.kind == "timeout":
            self._stopping.wait(float(fault.opts.get("delay", 2.0)))
            if generation != self._generation or not fault.opts.get("perform", True):
                # Held across reset() (it belongs to an old test), or asked to be lost on
                # the way: the service never sees the request.
                handler.close_connection = True
                return
        if fault is not None and fault.kind == "hold":
            release = self._release
            with self._lock:
                self.held += 1
            while not release.wait(0.05) and not self._stopping.is_set():
                pass
            if generation != self._generation:  # held across reset(): an earlier test's
                handler.close_connection = True
                return
        response = _Response(0, b"")
        if (
            fault is None
            or fault.kind in ("timeout", "truncated", "hold")
            or fault.opts.get("after_effect")
        ):
            response = self._handle(route, request)
        if fault is not None:
            response = self._fault_response(fault, request, response)
        status = 0 if response.delivery == "reset" else response.status
        payload = request.json() if "json" in request.headers.get("content-type", "") else None
        with self._lock:
            call = Call(
                request.method, request.path, status, request.headers, route, request.query,
                payload, request.received,
            )  # fmt: skip
            self.calls.append(call)
        self._send(handler, response)

    def _handle(self, route: str, request: _Request) -> _Response:
        handlers: dict[str, Callable[[_Request], _Response]] = {
            "upload": self._upload,
            "file_list": self._list_files,
            "file_retrieve": lambda r: _Response.of_json(200, self.file(r.params["id"])[0]),
            "file_delete": self._delete_file,
            "file_content": self._file_content,
            "create": lambda r: _Response.of_json(200, self.create_batch(r.json_object())),
            "list": self._list_batches,
            "retrieve": lambda r: _Response.of_json(200, self.poll(r.params["id"])),
            "cancel": lambda r: _Response.of_json(200, self.cancel(r.params["id"])),
            "chat": lambda r: self._direct(CHAT_ENDPOINT, r),
            "responses": lambda r: self._direct(RESPONSES_ENDPOINT, r),
        }
        try:
            with self._lock:
                if route == "unknown":
                    raise ApiError(404, f"Invalid URL ({request.method} {request.path})")
                return handlers[route](request)
        except ApiError as error:
            return _Response.of_json(error.status, error.body)
        except Exception as error:  # noqa: BLE001 - a bug in the fake must reach the test as a 500
            traceback.print_exc()
            return _Response.of_json(500, api_error_body(f"Fake bug: {error!r}", "server_error"))

    def _fault_response(self, fault: _Fault, request: _Request, response: _Response) -> _Response:
        kind, opts = fault.kind, fault.opts
        if kind in ("timeout", "hold"):
            return response
        if kind == "truncated":
            response.delivery = "truncated"
            return response
        if kind == "reset":
            return _Response(0, b"", delivery="reset")
        if kind == "malformed_json":
            return _Response(200, b'{"id": "batch_')
        if kind == "cannot_find_file":
            payload = request.json()
            file_id = payload.get("input_file_id") if isinstance(payload, dict) else None
            error = cannot_find_file(file_id or opts.get("file_id"))
            return _Response.of_json(error.status, error.body)
        status, type_, code, message = ERROR_FAULTS[kind]
        if message is None:
            message = token_limit_message(
                opts.get("model", "gpt-4o-mini"), opts.get("limit", 2_000_000)
            )
        headers = {}
        if opts.get("retry_after") is not None:
            headers["retry-after"] = str(opts["retry_after"])
        if opts.get("retry_after_ms") is not None:
            headers["retry-after-ms"] = str(opts["retry_after_ms"])
        return _Response.of_json(status, api_error_body(message, type_, None, code), headers)

    def _send(self, handler: _Handler, response: _Response) -> None:
        if response.delivery == "reset":
            handler.close_connection = True
            return
        extra = 64 if response.delivery == "truncated" else 0
        handler.send_response(response.status)
        handler.send_header("Content-Type", response.content_type)
        handler.send_header("Content-Length", str(len(response.body) + extra))
        handler.send_header("x-request-id", f"req_fake{next(self._ids):06d}")
        for name, value in response.headers.items():
            handler.send_header(name, value)
        if extra:
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.end_headers()
        handler.wfile.write(response.body)

    # ------------------------------------------------------------------ endpoints

    def _upload(self, request: _Request) -> _Response:
        form, files = _parse_multipart(request.headers.get("content-type", ""), request.body)
        if "file" not in files:
            raise missing_parameter("file")
        purpose = form.get("purpose")
        if not purpose:
            raise missing_parameter("purpose")
        if purpose not in FILE_PURPOSES:
            raise invalid_value("purpose", purpose, FILE_PURPOSES)
        filename, data = files["file"]
        expires_after = THIRTY_DAYS if purpose == "batch" else None
        if "expires_after[seconds]" in form:
            seconds = form["expires_after[seconds]"]
            if not seconds.isdigit() or not 3600 <= int(seconds) <= THIRTY_DAYS:
                message = f"Invalid 'expires_after.seconds': {seconds}."
                raise ApiError(400, message, param="expires_after.seconds")
            expires_after = int(seconds)
        if purpose == "batch":
            if not filename.lower().endswith(".jsonl"):
                raise ApiError(400, "Invalid file format for Batch API. Must be .jsonl")
            if len(data) > self.max_file_bytes:
                raise ApiError(400, "File is too large.")
        return _Response.of_json(200, self.store_file(filename, purpose, data, expires_after))

    def _list_files(self, request: _Request) -> _Response:
        purpose = request.query.get("purpose")
        metas = [m for m, _ in self.files.values() if purpose in (None, m["purpose"])]
        if request.query.get("order", "desc") == "desc":
            metas.reverse()
        limit = _int_query(request.query, "limit", 10_000, 10_000)
        return _Response.of_json(200, _page(metas, request.query.get("after"), limit))

    def _delete_file(self, request: _Request) -> _Response:
        file_id = request.params["id"]
        self.file(file_id)
        del self.files[file_id]
        return _Response.of_json(200, {"id": file_id, "object": "file", "deleted": True})

    def _file_content(self, request: _Request) -> _Response:
        file_id = request.params["id"]
        if file_id in self.file_content_gone:
            raise file_not_found(file_id)
        return _Response(200, self.file(file_id)[1], content_type="application/octet-stream")

    def _list_batches(self, request: _Request) -> _Response:
        limit = _int_query(request.query, "limit", 20, 100)
        return _Response.of_json(200, _page(self.newest_first(), request.query.get("after"), limit))

    def _direct(self, endpoint: str, request: _Request) -> _Response:
        """A direct (synchronous) chat completion or response from the same judge,
        refused as in a batch."""
        payload = request.json_object()
        model = payload.get("model")
        if not isinstance(model, str):
            raise missing_parameter("model")
        needed = "messages" if endpoint == CHAT_ENDPOINT else "input"
        if needed not in payload:
            raise missing_parameter(needed)
        if not is_known_model(model, self.extra_models):
            message = f"The model `{model}` does not exist or you do not have access to it."
            raise ApiError(404, message, code="model_not_found")
        if payload.get("stream"):
            raise ApiError(400, "The fake does not stream.", param="stream")
        refusal, headers = self._rate_limit(model, count_prompt_tokens(payload))
        if refusal is not None:
            return _Response.of_json(429, refusal, headers)
        executed = self.execute(
            endpoint, payload, failure=None, response_id=f"{next(self._ids):06d}"
        )
        return _Response.of_json(executed.status_code, executed.body, headers)

    def _rate_limit(self, model: str, tokens: int) -> tuple[dict[str, Any] | None, dict[str, str]]:
        """Count one chat request against the window: the 429 body if it is over a
        limit (None if not), and the x-ratelimit-* headers either way."""
        with self._lock:
            now = time.monotonic()
            start, used, used_tokens = self._window
            if now >= start + self.chat_window:
                start, used, used_tokens = now, 0, 0
                self.rate_windows.append(start)
            over = None
            if used + 1 > self.chat_rpm:
                over = ("requests per min (RPM)", self.chat_rpm, used, 1)
            elif used_tokens + tokens > self.chat_tpm:
                over = ("tokens per min (TPM)", self.chat_tpm, used_tokens, tokens)
            else:
                used, used_tokens = used + 1, used_tokens + tokens
            self._window = (start, used, used_tokens)
            reset = _reset_text(start + self.chat_window - now)
            headers = {
                "x-ratelimit-limit-requests": str(self.chat_rpm),
                "x-ratelimit-limit-tokens": str(self.chat_tpm),
                "x-ratelimit-remaining-requests": str(self.chat_rpm - used),
                "x-ratelimit-remaining-tokens": str(self.chat_tpm - used_tokens),
                "x-ratelimit-reset-requests": reset,
                "x-ratelimit-reset-tokens": reset,
            }
            if over is None:
                return None, headers
            self.rate_limited += 1
        what, limit, now_used, asked = over
        message = (
            f"Rate limit reached for {model} in organization org-fake on {what}: Limit "
            f"{limit}, Used {now_used}, Requested {asked}. Please try again in {reset}. Visit "
            "https://platform.openai.com/account/rate-limits to learn more."
        )
        kind = "requests" if what.startswith("requests") else "tokens"
        return api_error_body(message, kind, None, "rate_limit_exceeded"), headers
