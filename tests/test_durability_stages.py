"""Killed at more stages (SIGKILL): after the upload, and mid-download. Nothing is paid twice.

Each test holds the fake at one stage with a ``hold`` fault (the fake keeps the request
open, counted in ``held``, and drops it unperformed at the next test's reset), kills the
``grade`` subprocess once the request is held, then re-runs the same command in-process
and checks that no upload or batch was repeated and the output is complete.
"""

from __future__ import annotations

import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path

from typer.testing import Result

from tests.fakes.batch_api import FakeBatchAPI
from tests.test_durability import _assert_scores, _graded, _input, _kill, _spawn, _texts, _wait_for

Invoke = Callable[..., Result]


def test_sigkill_after_upload_reuses_the_file(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path
) -> None:
    """Killed after the upload, before create: the re-run reuses the uploaded file."""
    texts = _texts(4)
    src = _input(isolated_env, texts)
    # create is held, never performed: the process dies before it reaches the API
    fake_api.inject_fault("create", "hold")
    proc = _spawn(isolated_env, src)
    _wait_for(lambda: fake_api.held == 1, proc, "the create request")
    code, _, _ = _kill(proc)
    assert code == -signal.SIGKILL
    assert fake_api.request_count("upload") == 1
    assert fake_api.batches_created == 0
    result = bg("grade", src)
    assert result.exit_code == 0, result.output
    assert fake_api.request_count("upload") == 1
    assert fake_api.batches_created == 1
    _assert_scores(_graded(isolated_env), texts)


def test_sigkill_mid_download_downloads_again_without_paying(
    bg: Invoke, fake_api: FakeBatchAPI, isolated_env: Path, home: Path
) -> None:
    """Killed while downloading results: the re-run downloads again; usage counts once."""
    texts = _texts(5)
    src = _input(isolated_env, texts)
    fake_api.inject_fault("file_content", "hold")  # the download, never answered
    proc = _spawn(isolated_env, src)
    _wait_for(lambda: fake_api.held == 1, proc, "the download")
    _kill(proc)
    assert any(b["status"] == "completed" for b in fake_api.batches.values())
    assert fake_api.batches_created == 1
    assert not (isolated_env / "output" / "d.graded.csv").exists()
    result = bg("grade", src)
    assert result.exit_code == 0, result.output
    assert fake_api.batches_created == 1
    _assert_scores(_graded(isolated_env), texts)
    with sqlite3.connect(home / "data" / "ledger.sqlite3") as db:
        rows = db.execute("SELECT committed, COUNT(*) FROM usage_events GROUP BY committed")
        assert dict(rows.fetchall()) == {0: 1}
