"""The pilot: a random sample of the job's rows sent directly before the batches.

A prompt the judge misreads costs a day and real money when found after a 100,000-row
batch. ``grade --pilot N`` first takes N rows (sampled with a fixed seed across the
whole file) out of the job's batch chunks into a direct chunk of their own, runs it,
and measures: the parse rate, the score distribution, refusals and truncations, the
output tokens per row, and the time. Those figures replace the ``max_tokens`` worst
case in the estimate of the rest. The pilot's rows are part of the job: their answers
land in the graded file and are never sent again.
"""

from __future__ import annotations

import math
import os
import random
from collections import Counter
from decimal import Decimal

import polars as pl
from pydantic import BaseModel

from batchgrader.data.atomic import atomic_path
from batchgrader.execution.layout import JobFiles
from batchgrader.ledger.records import ChunkMode, ChunkRow, ChunkStatus, JobRow
from batchgrader.ledger.store import Ledger, now_iso
from batchgrader.money.pricing import Tier, Usage, cost
from batchgrader.planning.estimate import CountReport
from batchgrader.planning.plans import DryRun
from batchgrader.planning.spec import RequestSpec
from batchgrader.providers.base import RequestCodec, row_of

#: The pilot's request file, and the seed of its sample (fixed: the same rows each time).
PILOT_FILE = "pilot.jsonl"
SEED = 20261201
#: Failed answers shown verbatim.
SHOWN_FAILURES = 5


class OutputTokens(BaseModel):
    mean: float
    p95: int
    max: int


class PilotEstimate(BaseModel):
    """The whole job's cost re-estimated from the pilot's measured output tokens."""

    expected_usd: Decimal | None
    low_usd: Decimal | None
    high_usd: Decimal | None


class PilotReport(BaseModel):
    """What the pilot found."""

    rows: int
    parse_rate: float
    scores: dict[str, int]
    refused: int
    truncated: int
    failed_answers: list[str]
    output_tokens: OutputTokens
    estimate: PilotEstimate
    seconds: float
    rows_per_second: float
    passed: bool


def pilot_chunk(chunks: list[ChunkRow]) -> ChunkRow | None:
    return next((c for c in chunks if c.request_file == PILOT_FILE), None)


def add_pilot_chunk(
    files: JobFiles, ledger: Ledger, job: JobRow, rows: int, codec: RequestCodec
) -> ChunkRow | None:
    """Move ``rows`` sampled requests out of the job's pending batch chunks into a direct
    pilot chunk (once per job; a job already holding one keeps it)."""
    chunks = ledger.chunks(job.id)
    existing = pilot_chunk(chunks)
    if existing is not None:
        return existing
    sources = [c for c in chunks if c.status is ChunkStatus.PENDING and c.mode is ChunkMode.BATCH]
    total = sum(c.requests for c in sources)
    if rows <= 0 or total == 0:
        return None
    picked = set(random.Random(SEED).sample(range(total), min(rows, total)))
    lines: list[tuple[int, str]] = []
    position = 0
    updates: list[tuple[ChunkRow, int, int, int]] = []
    for chunk in sources:
        path = files.request_file(chunk.request_file)
        kept: list[str] = []
        taken = 0
        with path.open(encoding="utf-8") as handle:
            for line in handle:
                if position in picked:
                    row = row_of(codec.split_line(line)[0])
                    lines.append((row if row is not None else -1, line))
                    taken += 1
                else:
                    kept.append(line)
                position += 1
        if not taken:
            continue
        data = "".join(kept).encode("utf-8")
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
            os.chmod(tmp, 0o600)
        per_row = -(-chunk.tokens // max(chunk.requests, 1))
        updates.append((chunk, chunk.requests - taken, chunk.tokens - taken * per_row, len(data)))
    for chunk, requests, tokens, size in updates:
        ledger.set_chunk(job.id, chunk.idx, requests=requests, tokens=max(tokens, 0), bytes=size)
    lines.sort()
    data = "".join(line for _, line in lines).encode("utf-8")
    pilot = files.request_file(PILOT_FILE)
    with atomic_path(pilot) as tmp:
        tmp.write_bytes(data)
        os.chmod(tmp, 0o600)
    tokens = sum(-(-u[0].tokens // max(u[0].requests, 1)) * (u[0].requests - u[1]) for u in updates)
    chunk = ChunkRow(
        job_id=job.id,
        idx=len(chunks),
        first_row=lines[0][0],
        last_row=lines[-1][0],
        requests=len(lines),
        tokens=tokens,
        bytes=len(data),
        request_file=PILOT_FILE,
        status=ChunkStatus.PENDING,
        prepared_ref=None,
        batch_id=None,
        attempt=0,
        intent_at=None,
        error=None,
        result_file=None,
        updated_at=now_iso(),
        mode=ChunkMode.DIRECT,
    )
    ledger.add_chunks([chunk])
    return chunk


def pilot_report(
    files: JobFiles,
    chunk: ChunkRow,
    others: list[ChunkRow],
    spec: RequestSpec,
    seconds: float,
    min_parse_rate: float,
) -> PilotReport:
    """Measure the pilot's results and re-estimate the rest of the job from them."""
    assert chunk.result_file is not None
    results = pl.read_parquet(files.results / chunk.result_file)
    n = results.height
    codes = Counter(c for c in results["error_code"].to_list() if c is not None)
    graded = results.filter(pl.col("error_code").is_null())
    scores = Counter(str(s) for s in graded["score"].to_list() if s is not None)
    answered = results.filter(pl.col("output_tokens") > 0)["output_tokens"].to_list()
    tokens = sorted(int(t) for t in answered) or [0]
    mean = sum(tokens) / len(tokens)
    sd = math.sqrt(sum((t - mean) ** 2 for t in tokens) / max(len(tokens) - 1, 1))
    failures = results.filter(pl.col("error_code").is_not_null()).head(SHOWN_FAILURES)
    shown = [
        f"{code}: {message or ''}" + (f" | answer: {response[:300]!r}" if response else "")
        for code, message, response in failures.select(
            "error_code", "error_message", "response"
        ).iter_rows()
    ]
    parse_rate = graded.height / n if n else 0.0
    return PilotReport(
        rows=n,
        parse_rate=parse_rate,
        scores=dict(sorted(scores.items())),
        refused=codes.get("refused", 0),
        truncated=codes.get("truncated", 0),
        failed_answers=shown,
        output_tokens=OutputTokens(
            mean=round(mean, 1),
            p95=tokens[min(len(tokens) - 1, int(0.95 * len(tokens)))],
            max=tokens[-1],
        ),
        estimate=_estimate(others, spec, mean, sd, len(tokens)),
        seconds=round(seconds, 3),
        rows_per_second=n / seconds if seconds > 0 else 0.0,
        passed=parse_rate >= min_parse_rate,
    )


def _estimate(
    chunks: list[ChunkRow], spec: RequestSpec, mean: float, sd: float, n: int
) -> PilotEstimate:
    """The rest of the job at the measured output size: expected, and a 95% range of the
    mean output per row (never above the max_tokens worst case)."""
    price = spec.price
    if price is None:
        return PilotEstimate(expected_usd=None, low_usd=None, high_usd=None)
    margin = 1.96 * sd / math.sqrt(max(n, 1))
    cap = spec.options.max_tokens
    figures = []
    for per_row in (mean, max(0.0, mean - margin), min(float(cap), mean + margin)):
        total = Decimal(0)
        for chunk in chunks:
            tier = Tier.BATCH if chunk.mode is ChunkMode.BATCH else Tier.STANDARD
            usage = Usage(input_tokens=chunk.tokens, output_tokens=round(per_row * chunk.requests))
            total += cost(price, usage, tier=tier)
        figures.append(total)
    return PilotEstimate(expected_usd=figures[0], low_usd=figures[1], high_usd=figures[2])


class PilotedCount(CountReport):
    """``count --pilot N``: the exact counts, and what each file's pilot measured."""

    pilot: list[PilotReport]


class PilotedDryRun(DryRun):
    """``grade --dry-run --pilot N``: the plan, and what each file's pilot measured."""

    pilot: list[PilotReport]
