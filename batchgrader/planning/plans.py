"""Turn a workload into chunk files of request JSONL under the batch limits.

One streaming pass: each prepared row is offered to the chunk planner and its line is
appended to the file of the chunk it landed in, so planning needs no second read and
memory stays flat. Files are built in a temporary folder that replaces the target only
when complete: a failure never leaves a partial plan behind.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from pydantic import BaseModel

from batchgrader.errors import PlanError, PromptError
from batchgrader.money.pricing import Tier
from batchgrader.planning.chunking import Chunk, ChunkPlanner, Limits, forced_boundaries
from batchgrader.planning.estimate import CostEstimate, estimate_cost, expected_output_tokens
from batchgrader.planning.measure import TokenFigure, calibrate, measure
from batchgrader.planning.spec import RequestSpec
from batchgrader.planning.workload import RowBlock, Workload
from batchgrader.settings import Settings


class ChunkSpec(BaseModel):
    """A planned chunk and its request file."""

    index: int
    first_row: int
    last_row: int
    requests: int
    tokens: int
    bytes: int
    file: str

    @classmethod
    def of(cls, chunk: Chunk, file: str) -> ChunkSpec:
        return cls(
            index=chunk.index,
            first_row=chunk.first_row,
            last_row=chunk.last_row,
            requests=chunk.requests,
            tokens=chunk.tokens,
            bytes=chunk.bytes,
            file=file,
        )


class Plan(BaseModel):
    """The chunk plan of one input file."""

    input: str
    rows: int
    requests: int
    skipped: int
    tokens: int
    folder: str
    chunks: list[ChunkSpec]


def chunk_file_name(index: int) -> str:
    """The request file of the chunk at 0-based ``index``, numbered from 1 as the tables
    and messages number chunks (jobs planned before kept their ``chunk-0000`` names: the
    ledger records each chunk's file)."""
    return f"chunk-{index + 1:04d}.jsonl"


def write_plan(
    workload: Workload,
    limits: Limits,
    folder: Path,
    *,
    force_chunk_count: int = 0,
    leave_out: Callable[[RowBlock], set[int]] | None = None,
) -> Plan:
    """Build every chunk's request file in ``folder`` (replaced atomically).

    ``leave_out`` sees each block of prepared rows and names the rows not to send (their
    answers come from elsewhere): they are kept out of the chunks' requests.
    """
    _check_prompt_fits(workload, limits)
    folder.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    planner = ChunkPlanner(limits, forced_boundaries(workload.source.rows, force_chunk_count))
    handle: IO[bytes] | None = None
    requests = tokens = skipped = 0
    try:
        for batch in workload.blocks(with_lines=True):
            assert batch.lines is not None
            left_out = leave_out(batch) if leave_out is not None else set()
            skip_iter = iter(batch.skipped)
            next_skip = next(skip_iter, None)
            for row, count, line in zip(batch.rows, batch.tokens, batch.lines, strict=True):
                while next_skip is not None and next_skip < row:
                    planner.skip(next_skip)
                    next_skip = next(skip_iter, None)
                if row in left_out:
                    planner.skip(row)
                    continue
                data = line.encode("utf-8") + b"\n"
                if planner.add(row, count, len(data)):
                    if handle is not None:
                        handle.close()
                    name = chunk_file_name(len(planner.chunks))
                    handle = open(staging / name, "wb")  # noqa: SIM115 - closed on rollover
                assert handle is not None  # the first row always opens a chunk
                handle.write(data)
                requests += 1
                tokens += count
            for rest in [next_skip, *skip_iter]:
                if rest is not None:
                    planner.skip(rest)
            skipped += len(batch.skipped)
        if handle is not None:
            handle.close()
            handle = None
        chunks = planner.finish(workload.source.rows)
        for path in staging.iterdir():
            os.chmod(path, 0o600)
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    except PlanError as exc:  # the planner knows rows, not files: name the file
        raise PlanError(f"{workload.source.path}: {exc.message}", hint=exc.hint) from None
    finally:
        if handle is not None:
            handle.close()
        shutil.rmtree(staging, ignore_errors=True)
    return Plan(
        input=str(workload.source.path),
        rows=workload.source.rows,
        requests=requests,
        skipped=skipped,
        tokens=tokens,
        folder=str(folder),
        chunks=[ChunkSpec.of(c, chunk_file_name(c.index)) for c in chunks],
    )


def _check_prompt_fits(workload: Workload, limits: Limits) -> None:
    """A system message too big for any request is the prompt's fault, not row 1's."""
    room = limits.context_tokens
    fixed = workload.fixed_tokens() if room is not None else None
    if room is not None and fixed is not None and fixed > room:
        raise PromptError(
            f"The prompt's system message alone needs {fixed:,} input tokens, over the "
            f"{room:,} the model's context window leaves beside the answer: no row of "
            f"{workload.source.path} can be sent.",
            hint="Shorten the system message (or its examples), or lower --max-tokens "
            "(request.max_tokens_per_response).",
        )


def enqueued_cap(settings: Settings, model: str, learned: int | None) -> int | None:
    """The enqueued-token cap in force: the configured one wins over a learned one."""
    configured = settings.run.max_enqueued_tokens.get(model)
    return configured if configured is not None else learned


def limits_for(
    settings: Settings, spec: RequestSpec, learned_enqueued: int | None = None
) -> Limits:
    """The chunk limits in force for the spec's model at its provider."""
    window = spec.context_window
    batch = spec.provider.limits
    return Limits(
        tokens=settings.chunking.split_token_limit,
        rows=settings.chunking.split_row_limit,
        enqueued_tokens=enqueued_cap(settings, spec.options.model, learned_enqueued),
        context_tokens=None if window is None else window - spec.options.max_tokens,
        max_requests=batch.max_requests,
        max_bytes=batch.max_bytes,
    )


class PlannedChunk(BaseModel):
    """A chunk of a dry run as reported: chunks and rows numbered from 1, as the table,
    the request file names and every message number them."""

    chunk: int
    first_row: int
    last_row: int
    requests: int
    tokens: int
    bytes: int
    file: str


class PlannedFile(BaseModel):
    """One input file's plan in a dry run."""

    input: str
    rows: int
    requests: int
    skipped: int
    tokens: int
    folder: str
    chunks: list[PlannedChunk]

    @classmethod
    def of(cls, plan: Plan) -> PlannedFile:
        chunks = [
            PlannedChunk(
                chunk=c.index + 1,
                first_row=c.first_row + 1,
                last_row=c.last_row + 1,
                requests=c.requests,
                tokens=c.tokens,
                bytes=c.bytes,
                file=c.file,
            )
            for c in plan.chunks
        ]
        return cls(**plan.model_dump(exclude={"chunks"}), chunks=chunks)


class DryRun(BaseModel):
    """What ``grade --dry-run`` did: the plans and request files, and the estimate."""

    model: str
    endpoint: str
    plans: list[PlannedFile]
    estimate: CostEstimate | None
    expected_output_tokens: int
    #: ``exact``, or ``approximate ±x%`` for a provider without an offline tokenizer (a
    #: dry run counts offline; chunk tokens are then the upper bound).
    input_tokens_label: str = "exact"
    #: How the run would send: ``batch``, ``direct`` or ``auto`` (``run.mode``), and
    #: ``request.service_tier``: together, the rates it pays (``tier``).
    mode: str = "auto"
    service_tier: str | None = None

    @property
    def tier(self) -> Tier:
        """The rates the run would pay: Batch API rates unless it calls directly."""
        return Tier.direct(self.service_tier) if self.mode == "direct" else Tier.BATCH


def dry_run(paths: list[Path], spec: RequestSpec, settings: Settings) -> DryRun:
    """Write the exact request files ``grade`` would upload, one folder per input."""
    limits = limits_for(settings, spec)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workloads = [Workload.of(path, spec) for path in paths]
    plans = []
    figures: list[TokenFigure | None] = []
    used: set[str] = set()
    for workload in workloads:
        figure = measure(workload, spec, online=False)
        calibrate(workload, figure, upper=True)
        figures.append(figure)
        # Inputs may share a stem (a/x.csv, b/x.csv, x.jsonl): each gets its own folder.
        name = base = f"dry-run-{workload.source.path.stem}-{stamp}"
        n = 1
        while name in used:
            n += 1
            name = f"{base}-{n}"
        used.add(name)
        folder = settings.paths.output_dir / name
        plans.append(
            write_plan(
                workload, limits, folder, force_chunk_count=settings.chunking.force_chunk_count
            )
        )
    expected = expected_output_tokens(spec, settings.request.expected_output_tokens)
    requests = sum(p.requests for p in plans)
    central = sum(f.total if f else p.tokens for f, p in zip(figures, plans, strict=True))
    estimate = estimate_cost(
        spec,
        central,
        requests * expected,
        requests * spec.options.max_tokens,
        input_worst=sum(p.tokens for p in plans),
    )
    labels = {f.label for f in figures if f is not None}
    return DryRun(
        model=spec.options.model,
        endpoint=spec.options.endpoint,
        plans=[PlannedFile.of(plan) for plan in plans],
        estimate=estimate,
        expected_output_tokens=expected,
        input_tokens_label=", ".join(sorted(labels)) if labels else "exact",
        mode=settings.run.mode,
        service_tier=spec.options.service_tier,
    )
