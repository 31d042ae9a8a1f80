"""Fixtures of the integration tests: a real llama-stack server in front of the fake.

One llama-stack server per session (``llama_stack_server.py``), its inference routed to the
session's ``FakeBatchAPI``. Without its venv the tests are skipped, unless
``BATCHGRADER_REQUIRE_INTEGRATION=1`` (as in ``.ci/run``): then that is a failure. A failed
test gets the end of the server's log in its report.
"""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

from tests.conftest import FAKE_KEY
from tests.fakes.batch_api import FakeBatchAPI
from tests.integration import llama_stack_server
from tests.integration.llama_stack_server import LlamaStack

REQUIRE_VARIABLE = "BATCHGRADER_REQUIRE_INTEGRATION"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "integration: runs against a real third-party server; skipped when it is not "
        f"installed, a failure then when {REQUIRE_VARIABLE}=1",
    )


@pytest.fixture(scope="session")
def llama_stack(_fake_server: FakeBatchAPI) -> Iterator[LlamaStack]:
    """The llama-stack server of this session, stopped and its folder removed at the end."""
    yield from _serve(_fake_server, llama_stack_server.RUN_CONFIG)


@pytest.fixture(scope="session")
def llama_stack_without_batches(_fake_server: FakeBatchAPI) -> Iterator[LlamaStack]:
    """A llama-stack server with chat completions and no Batch API (as vLLM, Ollama)."""
    yield from _serve(_fake_server, llama_stack_server.INFERENCE_ONLY_CONFIG)


def _serve(fake: FakeBatchAPI, config: Path) -> Iterator[LlamaStack]:
    if not llama_stack_server.installed():
        reason = (
            f"llama-stack is not installed at {llama_stack_server.venv_location()} "
            "(run .ci/llama_stack.sh)"
        )
        if os.environ.get(REQUIRE_VARIABLE) == "1":
            pytest.fail(f"{REQUIRE_VARIABLE}=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    try:
        server = llama_stack_server.start(fake.base_url, config)
    except llama_stack_server.StartError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def llama_api(
    fake_api: FakeBatchAPI, llama_stack: LlamaStack, monkeypatch: pytest.MonkeyPatch
) -> LlamaStack:
    """batchgrader pointed at llama-stack (the fake behind it reset), polling briskly."""
    monkeypatch.setenv("BATCHGRADER_RUN__POLL_INTERVAL_SECONDS", "0.05")
    monkeypatch.setenv("BATCHGRADER_RUN__POLL_MAX_INTERVAL_SECONDS", "0.25")
    return _point_at(llama_stack, monkeypatch)


@pytest.fixture
def llama_chat_only_api(
    fake_api: FakeBatchAPI, llama_stack_without_batches: LlamaStack, monkeypatch: pytest.MonkeyPatch
) -> LlamaStack:
    """batchgrader pointed at the llama-stack without a Batch API (the fake behind it reset)."""
    return _point_at(llama_stack_without_batches, monkeypatch)


def _point_at(server: LlamaStack, monkeypatch: pytest.MonkeyPatch) -> LlamaStack:
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    return server


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach the end of the server's log to a failed test that used it."""
    report = yield
    for name in ("llama_stack", "llama_stack_without_batches"):
        server = getattr(item, "funcargs", {}).get(name)
        if report.failed and isinstance(server, LlamaStack):
            report.sections.append((f"{name} log (end)", server.log_tail()))
    return report
