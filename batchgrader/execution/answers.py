"""Answers recorded row by row, by an executor without batches (direct mode, pilots,
deadline tails): each chunk's answers file, one JSON line per final reply
(``{"custom_id", "status", "body"}``, or ``"error"`` when the request never got a
reply), and the end of such a chunk: its results file and status in the ledger.

Any executor that answers rows one by one records them here; the merge and a resumed run
then treat its rows like the direct executor's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from batchgrader.execution.layout import JobFiles
from batchgrader.execution.results import ChunkResults
from batchgrader.ledger.records import ChunkRow, ChunkStatus, JobRow
from batchgrader.ledger.store import Ledger
from batchgrader.money.pricing import Tier
from batchgrader.planning.spec import RequestSpec
from batchgrader.providers.base import Answer, Reply, RowError, row_of
from batchgrader.settings import Settings


def direct_tier(spec: RequestSpec) -> Tier:
    """Direct requests are billed at synchronous rates; flex at Batch API rates."""
    return Tier.direct(spec.options.service_tier)


def usage_id(job_id: str, chunk: int) -> str:
    """The id of the usage event of a chunk answered row by row: one event per chunk,
    replaced as answers arrive, covering every answer in its answers file (whichever
    executor wrote them)."""
    return f"direct:{job_id}:{chunk}"


def answers_file(files: JobFiles, chunk: ChunkRow) -> Path:
    return files.results / f"{files.result_stem(chunk.request_file)}.direct.jsonl"


def read_answers(path: Path) -> dict[str, dict[str, Any]]:
    """The final answers recorded so far (a line torn by a crash is ignored)."""
    found: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return found
    with path.open("rb") as handle:
        for raw in handle:
            try:
                record = json.loads(raw)
            except ValueError:
                continue  # the last line of a killed writer
            if isinstance(record, dict) and isinstance(record.get("custom_id"), str):
                found[record["custom_id"]] = record
    return found


def answer_of(record: dict[str, Any], spec: RequestSpec) -> Answer:
    """The answer a recorded reply holds (a transport failure is the row's error)."""
    status = record.get("status")
    if not isinstance(status, int) or status == 0:
        return Answer(None, RowError("connection_error", str(record.get("error") or "")))
    return spec.codec.parse_reply(status, record.get("body"))


def answer_record(cid: str, reply: Reply) -> dict[str, Any]:
    """The record of ``reply`` as the final answer of ``cid``."""
    record: dict[str, Any] = {"custom_id": cid, "status": reply.status}
    if reply.status:
        record["body"] = reply.body
    else:
        record["error"] = reply.error
    return record


def record_line(record: dict[str, Any]) -> bytes:
    """One line of an answers file."""
    return (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")


def pending(
    files: JobFiles, chunk: ChunkRow, spec: RequestSpec, answered: set[str]
) -> list[tuple[str, dict[str, Any]]]:
    """The chunk's requests (custom_id, body) that have no final answer yet."""
    todo = []
    with files.request_file(chunk.request_file).open(encoding="utf-8") as handle:
        for line in handle:
            cid, body = spec.codec.split_line(line)
            if cid not in answered:
                todo.append((cid, body))
    return todo


def finish_chunk(
    ledger: Ledger, settings: Settings, spec: RequestSpec, job: JobRow, chunk: ChunkRow
) -> ChunkStatus:
    """Write the chunk's results file from its answers and mark it done (or failed when
    no row succeeded)."""
    files = JobFiles(settings, job.id)
    results = ChunkResults()
    mode = spec.options.answer_mode
    for cid, record in sorted(read_answers(answers_file(files, chunk)).items()):
        row = row_of(cid)
        if row is not None:
            results.add_answer(row, answer_of(record, spec), spec.prompt, mode)
    result_file = files.results / f"{files.result_stem(chunk.request_file)}.parquet"
    results.write(result_file)
    error = None
    status = ChunkStatus.DONE
    if results.succeeded == 0 and chunk.requests:
        code, count = results.error_codes.most_common(1)[0]
        error = f"no successful request; most common error {code} ({count} of {chunk.requests})"
        status = ChunkStatus.FAILED
    ledger.set_chunk(job.id, chunk.idx, status=status, result_file=result_file.name, error=error)
    return status
