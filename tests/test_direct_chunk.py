"""A direct chunk's group commit: what is in its answers file is in its tallies."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from pathlib import Path

import pytest

from batchgrader.execution.direct_chunk import DirectChunk
from batchgrader.ledger.records import ChunkMode, ChunkRow, ChunkStatus, JobRow, JobStatus
from batchgrader.planning.spec import request_spec
from batchgrader.providers.base import Reply
from batchgrader.settings import Settings

JOB = JobRow(
    id="j1", fingerprint="f", input_path="/x.csv", input_hash="h", model="gpt-4.1-mini",
    endpoint="/v1/chat/completions", request_settings="{}", output_path=None,
    status=JobStatus.RUNNING, rows=1, created_at="t", updated_at="t",
)  # fmt: skip
CHUNK = ChunkRow(
    job_id="j1", idx=0, first_row=0, last_row=0, requests=1, tokens=10, bytes=100,
    request_file="chunk-0001.jsonl", status=ChunkStatus.SUBMITTED, prepared_ref=None,
    batch_id=None, attempt=0, intent_at=None, error=None, result_file=None,
    updated_at="2026-12-01T00:00:00+00:00", mode=ChunkMode.DIRECT,
)  # fmt: skip
ANSWER = Reply(
    status=200,
    body={
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4.1-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": '{"reasoning": "ok", "score": 4}'},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19},
    },
)


def test_an_answer_written_when_ctrl_c_cuts_its_fsync_is_still_counted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ctrl-C while a group's fsync runs (in a worker thread: the disk is slow): the
    answer is in the file (a re-run will not send it again), so its usage reaches the
    ledger (``on_written``): paid and counted."""
    monkeypatch.setattr(os, "fsync", lambda fd: time.sleep(0.3))
    path = tmp_path / "chunk-0001.direct.jsonl"
    written: list[int] = []

    async def interrupted() -> DirectChunk:
        state = DirectChunk(
            JOB, CHUNK, 1, path, request_spec(Settings()),
            on_written=lambda s: written.append(s.done + s.failed),
            on_released=lambda s: None,
        )  # fmt: skip
        state.fsync_seconds = 0.3  # the last one was slow
        writer = asyncio.create_task(state.writer_loop())
        recorder = asyncio.create_task(state.record("row-1", ANSWER))
        await asyncio.sleep(0.1)  # the line is written, its fsync under way
        writer.cancel()
        recorder.cancel()
        await asyncio.gather(writer, recorder, return_exceptions=True)
        state.close()
        return state

    state = asyncio.run(interrupted())
    (line,) = path.read_text(encoding="utf-8").splitlines()
    assert json.loads(line)["custom_id"] == "row-1"
    assert (state.done, state.failed) == (1, 0)
    assert (state.usage.input_tokens, state.usage.output_tokens) == (12, 7)
    assert written == [1]


def test_a_fast_fsync_runs_in_the_event_loop_and_a_slow_one_moves_to_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next fsync runs in the loop while the last took at most
    ``INLINE_FSYNC_SECONDS``, else in a worker thread; each answer is durable before its
    ``record`` returns."""
    seconds = iter([0.0, 0.02, 0.0, 0.0])  # fast, slow, then fast again
    in_loop: list[bool] = []
    path = tmp_path / "chunk-0001.direct.jsonl"

    def fsync(fd: int) -> None:
        in_loop.append(threading.current_thread() is threading.main_thread())
        time.sleep(next(seconds))

    monkeypatch.setattr(os, "fsync", fsync)
    durable: list[int] = []

    async def four_answers() -> DirectChunk:
        state = DirectChunk(
            JOB, CHUNK, 1, path, request_spec(Settings()),
            on_written=lambda s: None, on_released=lambda s: None,
        )  # fmt: skip
        writer = asyncio.create_task(state.writer_loop())
        for i in range(4):
            await state.record(f"row-{i}", ANSWER)
            durable.append(len(in_loop))
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        state.close()
        return state

    state = asyncio.run(four_answers())
    assert in_loop == [True, True, False, True]
    assert durable == [1, 2, 3, 4]
    assert len(path.read_text(encoding="utf-8").splitlines()) == 4
    assert state.done == 4


def test_a_disk_that_refuses_the_answers_fails_the_rows_waiting_and_counts_their_cost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk: ``record`` raises the OSError (the run stops instead of hanging on a
    dead writer), and the answer, paid for, is in the tallies."""

    def full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)

    async def refused() -> tuple[DirectChunk, BaseException | None]:
        state = DirectChunk(
            JOB, CHUNK, 1, tmp_path / "chunk-0001.direct.jsonl", request_spec(Settings()),
            on_written=lambda s: None, on_released=lambda s: None,
        )  # fmt: skip
        writer = asyncio.create_task(state.writer_loop())
        try:
            await asyncio.wait_for(state.record("row-1", ANSWER), timeout=5)
        except OSError as exc:
            error: BaseException | None = exc
        else:
            error = None
        await asyncio.gather(writer, return_exceptions=True)
        state.close()
        return state, error

    state, error = asyncio.run(refused())
    assert isinstance(error, OSError) and error.errno == 28
    assert (state.done, state.usage.input_tokens) == (1, 12)
