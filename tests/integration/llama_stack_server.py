"""Start and stop a real llama-stack server (its own venv) for the integration tests.

The server runs from its own venv (Python >= 3.12, made by ``.ci/llama_stack.sh``), found at
``$BATCHGRADER_LLAMA_STACK_VENV`` or else ``.ci/venvs/llama-stack``, with the run config
``llama_stack/run.yaml`` beside this file: its ``/v1/chat/completions`` goes to a fake OpenAI
server, its ``/v1/files`` and ``/v1/batches`` are llama-stack's own, its SQLite stores and
files live in a temporary folder, and it listens on a free loopback port.
``llama_stack/run-inference.yaml`` is the same server without files and batches.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx2

ROOT = Path(__file__).resolve().parents[2]
RUN_CONFIG = Path(__file__).resolve().parent / "llama_stack" / "run.yaml"
#: The same server without files and batches (a server with no Batch API, as vLLM).
INFERENCE_ONLY_CONFIG = RUN_CONFIG.with_name("run-inference.yaml")
DEFAULT_VENV = ROOT / ".ci" / "venvs" / "llama-stack"
VENV_VARIABLE = "BATCHGRADER_LLAMA_STACK_VENV"
#: The id a client sends. llama-stack 0.7.3 names a registered model
#: ``<provider_id>/<provider_model_id>`` (run.yaml registers ``gpt-4.1-mini`` on the provider
#: ``openai``); it refuses the bare ``gpt-4.1-mini``.
MODEL = "openai/gpt-4.1-mini"
START_TIMEOUT_SECONDS = 90.0
STOP_TIMEOUT_SECONDS = 15.0
LOG_TAIL_LINES = 150


def venv_location() -> Path:
    """Where the llama-stack venv is expected."""
    return Path(os.environ.get(VENV_VARIABLE) or DEFAULT_VENV)


def installed() -> bool:
    """True when the llama-stack venv has its ``llama`` command."""
    return (venv_location() / "bin" / "llama").is_file()


class StartError(RuntimeError):
    """The server did not become ready; the message carries the end of its log."""


@dataclass
class LlamaStack:
    """A running llama-stack server."""

    base_url: str  # http://127.0.0.1:PORT/v1
    state: Path  # temporary folder: stores, files and the log
    process: subprocess.Popen[bytes]

    @property
    def log_path(self) -> Path:
        return self.state / "server.log"

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the server's log."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            return f"(no log: {exc})"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        """Stop the server (its whole process group) and remove its folder."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        shutil.rmtree(self.state, ignore_errors=True)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _server_env(state: Path, upstream_url: str) -> dict[str, str]:
    """A clean environment: no proxies, no telemetry, no keys, state under ``state``."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(state),  # llama-stack's defaults live under ~/.llama
        "LANG": "C.UTF-8",
        "LLAMA_STACK_LOG_WIDTH": "200",  # fewer wrapped log lines
        "LLAMA_STACK_STATE_DIR": str(state),
        "BATCHGRADER_FAKE_BASE_URL": upstream_url,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        "OTEL_SDK_DISABLED": "true",
        "HF_HUB_OFFLINE": "1",
    }
    if "TIKTOKEN_CACHE_DIR" in os.environ:
        env["TIKTOKEN_CACHE_DIR"] = os.environ["TIKTOKEN_CACHE_DIR"]
    return env


def _wait_ready(server: LlamaStack, deadline: float) -> str | None:
    """None once the server answers /v1/health and lists the model, else why not."""
    problem = "it did not answer"
    with httpx2.Client(base_url=server.base_url, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                return f"it exited with code {server.process.returncode}"
            try:
                if client.get("/health").status_code == 200:
                    models = [m["id"] for m in client.get("/models").json()["data"]]
                    if MODEL in models:
                        return None
                    problem = f"it serves {models}, not {MODEL}"
            except httpx2.TransportError:
                pass
            time.sleep(0.2)
    return f"{problem} within {START_TIMEOUT_SECONDS:.0f} s"


def start(upstream_url: str, config: Path = RUN_CONFIG) -> LlamaStack:
    """Start llama-stack with its inference sent to ``upstream_url``; wait until it is ready."""
    state = Path(tempfile.mkdtemp(prefix="llama-stack-"))
    port = _free_port()
    llama = venv_location() / "bin" / "llama"
    command = [str(llama), "stack", "run", str(config), "--port", str(port)]
    with (state / "server.log").open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=state,
            env=_server_env(state, upstream_url),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as a whole
        )
    server = LlamaStack(f"http://127.0.0.1:{port}/v1", state, process)
    problem = _wait_ready(server, time.monotonic() + START_TIMEOUT_SECONDS)
    if problem is not None:
        tail = server.log_tail()
        server.stop()
        raise StartError(f"llama-stack did not start: {problem}.\n--- its log:\n{tail}")
    return server
