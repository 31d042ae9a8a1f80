"""A fake Anthropic Messages + Message Batches API over real HTTP, for the real SDK.

    with FakeAnthropicAPI() as fake:
        client = Anthropic(api_key="sk-ant-test", base_url=fake.base_url, max_retries=0)

Routes (names for ``fail_next`` and ``request_count``): ``messages`` (POST /v1/messages),
``count_tokens``, ``create``, ``list``, ``retrieve``, ``cancel``, ``delete``, ``results``.

Every request needs a key (``x-api-key``, or ``Authorization: Bearer``, which is how SDK 2.x
sends ``api_key``) else 401 ``authentication_error``, and an ``anthropic-version`` header
(400 if missing or unknown). Errors are ``{"type": "error", "error": {"type", "message"},
"request_id"}`` with a ``request-id`` header. Batches advance by polls, never by wall time
(``anthropic_state.py``); answers and validation are ``anthropic_judge.py``; models and the
token-count rule are ``anthropic_models.py``.

This module is the HTTP layer: routing, auth, fault injection, the record of calls,
results streaming and the concurrency probe of ``/v1/messages``.
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
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

from tests.fakes.anthropic_models import ApiError, invalid
from tests.fakes.anthropic_params import check_version
from tests.fakes.anthropic_state import AnthropicStore, ClockLike

_BATCH = r"/v1/messages/batches/(?P<id>[^/]+)"
ROUTES: tuple[tuple[str, re.Pattern[str], str], ...] = tuple(
    (method, re.compile(pattern), name)
    for method, pattern, name in (
        ("POST", r"/v1/messages", "messages"),
        ("POST", r"/v1/messages/count_tokens", "count_tokens"),
        ("POST", r"/v1/messages/batches", "create"),
        ("GET", r"/v1/messages/batches", "list"),
        ("GET", _BATCH, "retrieve"),
        ("DELETE", _BATCH, "delete"),
        ("POST", _BATCH + "/cancel", "cancel"),
        ("GET", _BATCH + "/results", "results"),
    )
)
ROUTE_NAMES = frozenset(name for _, _, name in ROUTES)
# Fault kinds answered with an Anthropic error: kind → (status, message).
ERROR_FAULTS: dict[str, tuple[int, str]] = {
    "rate_limit_error": (429, "Number of request tokens has exceeded your per-minute rate limit."),
    "overloaded_error": (529, "Overloaded"),
    "api_error": (500, "Internal server error"),
}
FAULT_KINDS = frozenset(ERROR_FAULTS) | {"reset", "timeout", "lost", "truncated", "hold"}


class Call(NamedTuple):
    """One HTTP request seen by the fake."""

    method: str
    path: str
    status: int  # 0: the connection was closed without a response
    headers: dict[str, str]  # every request header, lower-cased names
    route: str  # a ROUTES name, or "unknown"
    query: dict[str, str]
    payload: Any  # parsed JSON body; None when there is none or it is not JSON


@dataclass
class _Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    generation: int  # of the fake when the request arrived (reset() starts a new one)
    released: threading.Event  # set when the requests of this generation must stop waiting
    params: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None

    def json_body(self) -> Any:
        """The parsed body, or a 400 when it is not JSON."""
        try:
            return json.loads(self.body)
        except ValueError:
            raise invalid("There was an issue with your request body: invalid JSON") from None

    @property
    def version(self) -> str:
        return self.headers.get("anthropic-version", "")

    @property
    def betas(self) -> frozenset[str]:
        raw = self.headers.get("anthropic-beta", "")
        return frozenset(beta.strip() for beta in raw.split(",") if beta.strip())


@dataclass
class _Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    lines: list[str] | None = None  # a streamed JSONL body (results)
    delivery: str = "normal"  # "normal" | "reset" (no response) | "truncated" (cut short)
    content_type: str = "application/json"

    @classmethod
    def of_json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> _Response:
        return cls(status, json.dumps(payload).encode(), headers or {})


@dataclass
class _Fault:
    kind: str
    remaining: int
    opts: dict[str, Any]


def _not_served(style: str) -> _Response:
    """What a server without the route answers (``messages_only``)."""
    if style == "method":
        return _Response.of_json(405, {"detail": "Method Not Allowed"})
    if style == "text":
        return _Response(404, b"404 page not found\n", content_type="text/plain; charset=utf-8")
    return _Response.of_json(404, {"detail": "Not Found"})


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


def _page(items: list[dict[str, Any]], query: dict[str, str]) -> dict[str, Any]:
    """A page of ``items`` (newest first) by ``limit`` / ``after_id`` / ``before_id``."""
    raw = query.get("limit", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise invalid(f"limit: Input should be between 1 and 1000, got '{raw}'")
    limit = int(raw)
    after, before = query.get("after_id"), query.get("before_id")
    if after is not None and before is not None:
        raise invalid("Only one of after_id and before_id may be given.")
    ids = [item["id"] for item in items]
    if before is not None:
        # The `limit` items just before `before_id`; has_more: still newer ones.
        stop = ids.index(before) if before in ids else 0
        data = items[max(0, stop - limit) : stop]
        has_more = stop - limit > 0
    else:
        start = ids.index(after) + 1 if after in ids else (len(ids) if after else 0)
        data = items[start : start + limit]
        has_more = start + limit < len(items)
    return {
        "data": data,
        "has_more": has_more,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle + delayed ACK cost 40 ms.
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

    def __init__(self, fake: FakeAnthropicAPI) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.fake = fake

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Ignore clients that hung up (e.g. on an injected timeout); report anything else."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FakeAnthropicAPI(AnthropicStore):
    """The fake Anthropic API server. Knobs, state and batch controls: see ``AnthropicStore``.

    Adds: ``start``/``stop``/``base_url``/context manager, ``fail_next`` (and
    ``release_held``), the ``calls`` record, ``request_count`` and the ``/v1/messages``
    concurrency probe
    (``max_concurrent_messages``, ``hold_messages``/``release_messages``,
    ``wait_for_in_flight``); ``reset()`` also clears calls, faults and the probe.
    """

    def __init__(self, clock: ClockLike | None = None) -> None:
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._flight = threading.Condition()
        self._gate = threading.Event()
        self._released = threading.Event()
        self._generation = 0
        super().__init__(clock)

    def reset(self) -> None:
        """Forget batches, calls and faults; restore every knob to its default."""
        with self._lock:
            super().reset()
            self.calls: list[Call] = []
            self._faults: dict[str, deque[_Fault]] = {}
            self._faults_met: Counter[str] = Counter()
            # Requests still held (timeout faults, latency) belong to an earlier test: release
            # them; they see they are stale, are not performed and not recorded.
            self._generation += 1
            self._released.set()
            self._released = threading.Event()
            self._release_held = threading.Event()
            self.held = 0  # requests a ``hold`` fault is holding (or has held)
        with self._flight:
            self.in_flight_messages = 0
            self.max_concurrent_messages = 0  # peak of /v1/messages requests seen at once
            self._gate.set()
            # The Messages API's requests limit, reported on every answer as Anthropic
            # does (anthropic-ratelimit-requests-{limit,remaining,reset}, the reset an
            # RFC 3339 time): ``messages_rpm`` requests a window of ``messages_window``
            # seconds, windows aligned to the clock (a minute; tests shrink it). Over it:
            # 429 rate_limit_error with retry-after.
            # A server that speaks the Messages API and nothing else (Ollama, vLLM, a
            # proxy): batches and count_tokens answer 404 as FastAPI does ("detail"), as
            # Go's net/http does ("text", Ollama), or 405 ("method").
            self.messages_only: str | None = None
            self.messages_rpm = 4_000
            self.messages_window = 60
            self._window = (0.0, 0)  # start (epoch seconds), requests
            self.rate_limited = 0  # messages refused over the limit

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Serve on 127.0.0.1 (a free port) from a daemon thread."""
        if self._server is not None:
            return
        self._released = threading.Event()
        self._server = _Server(self)
        self.public_url = self.base_url
        serve = functools.partial(self._server.serve_forever, poll_interval=0.05)  # quick stop()
        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving; held requests are released."""
        if self._server is None:
            return
        self._released.set()
        self._gate.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> FakeAnthropicAPI:
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
        """``http://127.0.0.1:PORT`` of the running server (the SDK adds ``/v1/...``)."""
        if self._server is None:
            raise RuntimeError("FakeAnthropicAPI is not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

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

    def fail_next(self, route: str, kind: str, times: int = 1, **opts: Any) -> None:
        """Answer the next ``times`` requests on ``route`` with fault ``kind`` (faults queue).

        Kinds: ``rate_limit_error`` (429 + ``retry-after``), ``overloaded_error`` (529),
        ``api_error`` (500); ``reset`` (connection closed, request not performed);
        ``lost`` (performed, then the connection is closed: e.g. a create whose answer is
        lost); ``truncated`` (performed, body cut short); ``timeout`` (held ``delay`` s,
        default 2, then performed unless ``perform=False``); ``hold`` (counted in ``held``
        and kept until ``release_held()``, then performed; one still held at ``reset()``
        is dropped unperformed: a request the test kills its client during, at a point it
        chooses, without waiting out a delay). Options of the error kinds:
        ``retry_after`` (s, default 1 on 429), ``retry_after_ms``, ``after_effect=True``
        (perform the request, then answer the error).
        """
        if route not in ROUTE_NAMES:
            raise ValueError(f"unknown route {route!r}; expected one of {sorted(ROUTE_NAMES)}")
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {sorted(FAULT_KINDS)}")
        with self._lock:
            self._faults.setdefault(route, deque()).append(_Fault(kind, times, opts))

    def release_held(self) -> None:
        """Let every request a ``hold`` fault keeps (and later ones) go on, performed."""
        self._release_held.set()

    def clear_faults(self) -> None:
        """Drop every fault not yet served."""
        with self._lock:
            self._faults = {}

    def hold_messages(self) -> None:
        """Hold every ``/v1/messages`` request (after it counts as in flight) until released."""
        self._gate.clear()

    def release_messages(self) -> None:
        """Let held ``/v1/messages`` requests proceed."""
        self._gate.set()

    def wait_for_in_flight(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until ``count`` ``/v1/messages`` requests are in flight; False on timeout."""
        with self._flight:
            return self._flight.wait_for(lambda: self.in_flight_messages >= count, timeout)

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
        body = _read_body(handler)
        with self._lock:
            generation, released = self._generation, self._released
        request = _Request(
            method=handler.command,
            path=url.path,
            query={key: values[-1] for key, values in parse_qs(url.query).items()},
            headers={key.lower(): value for key, value in handler.headers.items()},
            body=body,
            generation=generation,
            released=released,
        )
        route = "unknown"
        for method, pattern, name in ROUTES:
            match = pattern.fullmatch(request.path)
            if match and method == request.method:
                route, request.params = name, match.groupdict()
                break
        response = self._respond(route, request)
        status = 0 if response.delivery == "reset" else response.status
        payload = request.json() if request.body else None
        with self._lock:
            call = Call(
                request.method, request.path, status, request.headers, route, request.query, payload
            )
            if request.generation == self._generation:
                self.calls.append(call)
        self._send(handler, response)

    def _respond(self, route: str, request: _Request) -> _Response:
        if self.messages_only is not None and route not in ("messages", "unknown"):
            return _not_served(self.messages_only)
        denied = self._check_headers(route, request)
        if denied is not None:
            return denied
        fault = self._take_fault(route)
        if fault is not None and fault.kind == "timeout":
            request.released.wait(float(fault.opts.get("delay", 2.0)))
            if self._stale(request) or not fault.opts.get("perform", True):
                return _Response(0, delivery="reset")  # stale, or lost on the way
        if fault is not None and fault.kind == "hold":
            with self._lock:
                release = self._release_held
                self.held += 1
            while not release.wait(0.05) and not request.released.is_set():
                pass
            if self._stale(request):
                return _Response(0, delivery="reset")  # still held at reset(): never seen
        if fault is not None and fault.kind == "reset":
            return _Response(0, delivery="reset")
        if fault is not None and fault.kind in ERROR_FAULTS and not fault.opts.get("after_effect"):
            return self._error_fault(fault)
        response = self._perform(route, request)
        if fault is None or fault.kind in ("timeout", "hold"):
            return response
        if fault.kind == "lost":
            return _Response(0, delivery="reset")
        if fault.kind == "truncated":
            response.delivery = "truncated"
            return response
        return self._error_fault(fault)

    def _check_headers(self, route: str, request: _Request) -> _Response | None:
        key = request.headers.get("x-api-key")
        bearer = request.headers.get("authorization", "")
        if not key and bearer.lower().startswith("bearer "):
            key = bearer[7:].strip()
        if not key:
            return self._error(ApiError("authentication_error", "x-api-key header is required"))
        if self.api_keys is not None and key not in self.api_keys:
            return self._error(ApiError("authentication_error", "invalid x-api-key"))
        try:
            check_version(request.version)
        except ApiError as error:
            return self._error(error)
        limit = self.max_batch_bytes if route == "create" else self.max_message_bytes
        if route in ("create", "messages", "count_tokens") and len(request.body) > limit:
            message = f"Request exceeds the maximum allowed number of bytes ({limit})."
            return self._error(ApiError("request_too_large", message))
        return None

    def _perform(self, route: str, request: _Request) -> _Response:
        if route != "messages":
            return self._handle(route, request)
        with self._flight:
            self.in_flight_messages += 1
            self.max_concurrent_messages = max(
                self.max_concurrent_messages, self.in_flight_messages
            )
            self._flight.notify_all()
        try:
            self._gate.wait()
            if self.messages_latency > 0:
                request.released.wait(self.messages_latency)
            if self._stale(request):
                return _Response(0, delivery="reset")
            refused, limits = self._rate_limit()
            response = refused or self._handle(route, request)
            response.headers.update(limits)
            return response
        finally:
            with self._flight:
                if not self._stale(request):
                    self.in_flight_messages -= 1
                self._flight.notify_all()

    def _rate_limit(self) -> tuple[_Response | None, dict[str, str]]:
        """Count one Messages request against its window: the 429 if it is over the
        limit (None if not), and the rate-limit headers either way."""
        with self._flight:
            now = time.time()
            start = math.floor(now / self.messages_window) * self.messages_window
            begun, used = self._window
            if start != begun:
                used = 0
            over = used >= self.messages_rpm
            used += not over
            self._window = (start, used)
            self.rate_limited += over
        end = start + self.messages_window
        headers = {
            "anthropic-ratelimit-requests-limit": str(self.messages_rpm),
            "anthropic-ratelimit-requests-remaining": str(self.messages_rpm - used),
            "anthropic-ratelimit-requests-reset": datetime.fromtimestamp(end, UTC).strftime(
                "%Y-%m-%dT%H:%M:%SZ"
            ),
        }
        if not over:
            return None, headers
        message = (
            f"This request would exceed the rate limit for your organization of "
            f"{self.messages_rpm} requests per minute. For details, refer to: "
            "https://docs.claude.com/en/api/rate-limits."
        )
        wait = {"retry-after": str(max(1, math.ceil(end - now)))}
        return self._error(ApiError("rate_limit_error", message, 429), wait), headers

    def _stale(self, request: _Request) -> bool:
        """True for a request that arrived before the last ``reset()`` (or ``stop()``)."""
        return request.generation != self._generation or request.released.is_set()

    def _handle(self, route: str, request: _Request) -> _Response:
        version, betas = request.version, request.betas

        def batch_id() -> str:
            return request.params["id"]

        handlers: dict[str, Callable[[], Any]] = {
            "messages": lambda: self.create_message(request.json_body(), version, betas),
            "count_tokens": lambda: self.count_tokens(request.json_body(), version, betas),
            "create": lambda: self.create_batch(request.json_body(), version, betas),
            "list": lambda: _page(self.newest_first(), request.query),
            "retrieve": lambda: self.poll(batch_id()),
            "cancel": lambda: self.cancel(batch_id()),
            "delete": lambda: self.delete(batch_id()),
        }
        try:
            if route == "unknown":
                raise ApiError("not_found_error", "Not Found")
            if route == "results":
                return _Response(200, lines=self.results_lines(batch_id()))
            return _Response.of_json(200, handlers[route]())
        except ApiError as error:
            return self._error(error)
        except Exception as error:  # noqa: BLE001 - a bug in the fake must reach the test as a 500
            traceback.print_exc()
            return self._error(ApiError("api_error", f"Fake bug: {error!r}"))

    def _request_id(self) -> str:
        return f"req_fake{self.next_id():018d}"

    def _error(self, error: ApiError, headers: dict[str, str] | None = None) -> _Response:
        request_id = self._request_id()
        response = _Response.of_json(error.status, error.body(request_id), headers)
        response.headers["request-id"] = request_id
        return response

    def _error_fault(self, fault: _Fault) -> _Response:
        status, message = ERROR_FAULTS[fault.kind]
        headers: dict[str, str] = {}
        retry_after = fault.opts.get("retry_after", 1 if status == 429 else None)
        if retry_after is not None:
            headers["retry-after"] = str(retry_after)
        if fault.opts.get("retry_after_ms") is not None:
            headers["retry-after-ms"] = str(fault.opts["retry_after_ms"])
        return self._error(ApiError(fault.kind, message, status), headers)

    def _send(self, handler: _Handler, response: _Response) -> None:
        if response.delivery == "reset":
            handler.close_connection = True
            return
        truncated = response.delivery == "truncated"
        handler.send_response(response.status)
        handler.send_header(
            "request-id", response.headers.pop("request-id", "") or self._request_id()
        )
        for name, value in response.headers.items():
            handler.send_header(name, value)
        if response.lines is not None:
            self._send_stream(handler, response.lines, truncated)
            return
        handler.send_header("Content-Type", response.content_type)
        handler.send_header("Content-Length", str(len(response.body) + (64 if truncated else 0)))
        if truncated:
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.end_headers()
        handler.wfile.write(response.body)

    def _send_stream(self, handler: _Handler, lines: list[str], truncated: bool) -> None:
        """Stream JSONL in ``results_chunk_bytes`` chunks (lines may straddle chunks)."""
        handler.send_header("Content-Type", "application/x-jsonl")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        data = "".join(line + "\n" for line in lines).encode()
        size = max(1, self.results_chunk_bytes)
        chunks = [data[i : i + size] for i in range(0, len(data), size)]
        if truncated:  # half the chunks (at least one byte short), then the connection drops
            chunks = chunks[: len(chunks) // 2] or [data[: len(data) // 2]]
        for chunk in chunks:
            handler.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        if truncated:
            handler.close_connection = True
            return
        handler.wfile.write(b"0\r\n\r\n")
