"""Split input files into parts within row and token limits (``batchgrader split``).

Two streaming passes per file. The first is ``count``'s: ``Workload`` renders every
request and counts its tokens exactly, and each row is fed to a ``ChunkPlanner`` (a
blank row with 0 tokens: it is never sent, but it still belongs to a part). The plan
is a list of contiguous row ranges, and every input is read in full before anything is
written. The second pass writes the parts in the input's format: CSV, TSV and JSONL
are streamed once, each batch of rows routed to the part it belongs to; Parquet parts
are streamed from slices of a lazy scan, JSON parts are slices of the parsed array.
Every part of every file is first written to a temporary file beside its target, and
the targets appear only when all parts are written: a failure leaves nothing behind.

Parts are input files, not batch files, so the Batch API's 50,000-request and 200 MB
caps do not apply to them (``grade`` cuts each part into batches under those caps
anyway). ``--rows`` counts every row of a part, blank ones included.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pydantic import BaseModel

from batchgrader.data.atomic import atomic_path
from batchgrader.data.formats import Format
from batchgrader.data.reading import InputFile, open_input
from batchgrader.data.writing import APPENDABLE, append_rows, sink_rows
from batchgrader.errors import InputFileError, OutputExistsError, UsageError
from batchgrader.planning.chunking import Chunk, ChunkPlanner, Limits
from batchgrader.planning.measure import ScaledCounter, calibrate, measure
from batchgrader.planning.spec import RequestSpec
from batchgrader.planning.workload import Workload
from batchgrader.settings import ChunkingSettings

log = logging.getLogger(__name__)

#: Input bytes aimed at per streamed batch; rows per batch follow from the mean row size.
_BATCH_BYTES = 8 * 1024 * 1024
_MIN_BATCH_ROWS = 1_000
_MAX_BATCH_ROWS = 50_000


class SplitLimits(BaseModel):
    """The limits each part is held to (None: no limit of that kind)."""

    rows: int | None
    tokens: int | None


class PartSpec(BaseModel):
    """One part file."""

    part: int  # 1-based, as in the file name
    file: str
    first_row: int  # input rows numbered from 1, inclusive
    last_row: int
    rows: int
    #: Rows that hold text to grade, and their request tokens (None: not counted, a
    #: split by rows alone reads no text and needs no tokenizer).
    requests: int | None
    tokens: int | None
    bytes: int | None  # None in a dry run


class FileSplit(BaseModel):
    """One input file and its parts (none when it is already within the limits)."""

    input: str
    format: str
    rows: int
    requests: int | None
    tokens: int | None
    within_limits: bool
    out_dir: str | None
    parts: list[PartSpec]
    #: ``exact``; for Claude the measured figure's label (``sampled ±x%``, ...): the
    #: tokens of each part are then the upper bound of its estimate.
    tokens_label: str | None = "exact"


class SplitReport(BaseModel):
    """What ``batchgrader split`` did (or, in a dry run, would do)."""

    #: The request settings the tokens were counted with (None: a split by rows alone).
    model: str | None
    encoding: str | None
    prompt: str | None
    limits: SplitLimits
    dry_run: bool
    files: list[FileSplit]


def split_limits(settings: ChunkingSettings, *, rows: int | None, tokens: int | None) -> Limits:
    """The limits of each part: the flags given (``--rows`` alone: rows alone), else the
    configured split limits."""
    if rows is None and tokens is None:
        rows, tokens = settings.split_row_limit, settings.split_token_limit
    return Limits(tokens=tokens, rows=rows, max_requests=sys.maxsize, max_bytes=sys.maxsize)


def part_paths(source: Path, out_dir: Path, parts: int) -> list[Path]:
    """``{stem}_part{N}{ext}`` for N = 1..parts, zero-padded when there are 10 or more."""
    width = len(str(parts))
    return [
        out_dir / f"{source.stem}_part{n:0{width}d}{source.suffix}" for n in range(1, parts + 1)
    ]


def default_out_dir(source: Path) -> Path:
    """The ``{stem}_parts/`` folder beside the input."""
    return source.parent / f"{source.stem}_parts"


@dataclass
class _Plan:
    """One input's parts: row ranges, requests per part and target paths."""

    source: InputFile
    chunks: list[Chunk]
    requests: list[int] | None  # None: cut by rows alone, no text read
    targets: list[Path]  # empty when the file is within the limits
    tokens_label: str | None = "exact"


def split_files(
    paths: list[Path],
    spec: RequestSpec | None,
    limits: Limits,
    *,
    out_dir: Path | None = None,
    overwrite: bool = False,
    dry_run: bool = False,
    fmt: Format | None = None,
) -> SplitReport:
    """Plan every file, check every target, then write all parts (unless ``dry_run``).

    Without a ``spec`` the parts are cut by rows alone: no prompt, graded column or
    tokenizer is needed (``split --rows N``).
    """
    if spec is None:
        plans = [_row_plan(open_input(path, fmt), limits, out_dir) for path in paths]
    else:
        plans = [_plan(_measured(path, spec, limits), limits, out_dir) for path in paths]
    _check_targets(plans, overwrite)
    for plan in plans:
        _warn_stale(plan)
    sizes = None if dry_run else _write_all(plans)
    return SplitReport(
        model=spec.options.model if spec else None,
        encoding=spec.counter.name if spec else None,
        prompt=spec.prompt.name if spec else None,
        limits=SplitLimits(rows=limits.rows, tokens=limits.tokens),
        dry_run=dry_run,
        files=[
            _file_split(plan, None if sizes is None else sizes[i]) for i, plan in enumerate(plans)
        ],
    )


def _measured(path: Path, spec: RequestSpec, limits: Limits) -> Workload:
    """The file's workload; with a token limit, a Claude file's row tokens are scaled to
    the upper bound of its measured figure (``planning.measure``): no part is over it."""
    workload = Workload.of(path, spec)
    if limits.tokens is not None:
        calibrate(workload, measure(workload, spec), upper=True)
    return workload


def _batch_rows(source: InputFile) -> int:
    """Rows per streamed batch: about ``_BATCH_BYTES`` of input."""
    row_bytes = max(1, source.path.stat().st_size // source.rows)
    return max(_MIN_BATCH_ROWS, min(_MAX_BATCH_ROWS, _BATCH_BYTES // row_bytes))


def _row_plan(source: InputFile, limits: Limits, out_dir: Path | None) -> _Plan:
    """Cut a file into parts of at most ``limits.rows`` rows (nothing else is read)."""
    size = limits.rows or source.rows
    chunks = [
        Chunk(i, start, min(start + size, source.rows) - 1, 0, 0, 0)
        for i, start in enumerate(range(0, source.rows, size))
    ]
    targets = (
        part_paths(source.path, out_dir or default_out_dir(source.path), len(chunks))
        if len(chunks) > 1
        else []
    )
    return _Plan(source, chunks, None, targets, None)


def _plan(workload: Workload, limits: Limits, out_dir: Path | None) -> _Plan:
    """Count every request and cut the rows into parts (the first, validating pass)."""
    planner = ChunkPlanner(limits)
    requests: list[int] = []
    for batch in workload.blocks(batch_rows=_batch_rows(workload.source)):
        tokens: list[int | None] = [None] * batch.n_rows  # None: a blank row, not sent
        for row, count in zip(batch.rows, batch.tokens, strict=True):
            tokens[row - batch.first_row] = count
        for offset, sent in enumerate(tokens):
            if planner.add(batch.first_row + offset, sent or 0, 0):
                requests.append(0)
            if sent is not None:
                requests[-1] += 1
    source = workload.source
    chunks = planner.finish(source.rows)
    targets = (
        part_paths(source.path, out_dir or default_out_dir(source.path), len(chunks))
        if len(chunks) > 1
        else []
    )
    counter = workload.counter
    label = counter.figure.label if isinstance(counter, ScaledCounter) else "exact"
    if label == "exact" and counter.kind != "exact":
        label = f"approximate ±{counter.error_band * 100:.1f}%"
    return _Plan(source, chunks, requests, targets, label)


def _check_targets(plans: list[_Plan], overwrite: bool) -> None:
    """Fail before writing anything if a part would clash with a file or another part."""
    inputs = {plan.source.path.resolve() for plan in plans}
    owners: dict[Path, Path] = {}
    for plan in plans:
        for target in plan.targets:
            key = target.resolve()
            if key in inputs:
                raise UsageError(
                    f"{target}: a part of {plan.source.path} would replace an input file.",
                    hint="Choose another --out-dir.",
                )
            if key in owners:
                raise UsageError(
                    f"{owners[key]} and {plan.source.path} would both write {target}.",
                    hint="Split them into different --out-dir folders.",
                )
            owners[key] = plan.source.path
            if target.is_dir():
                raise UsageError(f"{target}: a folder is in the way of a part file.")
        if plan.targets and plan.targets[0].parent.is_file():
            raise UsageError(f"{plan.targets[0].parent}: exists and is not a folder.")
    existing = [target for plan in plans for target in plan.targets if target.exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1:,} more part files)" if len(existing) > 1 else ""
        raise OutputExistsError(
            f"{existing[0]} already exists{more}; nothing was written.",
            hint="Pass --overwrite to replace it, or choose another --out-dir.",
        )


def _warn_stale(plan: _Plan) -> None:
    """Warn about older part files of the same input that this split will not replace."""
    if not plan.targets or not plan.targets[0].parent.is_dir():
        return
    folder, path = plan.targets[0].parent, plan.source.path
    pattern = re.compile(rf"{re.escape(path.stem)}_part\d+{re.escape(path.suffix)}")
    ours = {target.name for target in plan.targets}
    stale = sorted(
        p.name for p in folder.iterdir() if pattern.fullmatch(p.name) and p.name not in ours
    )
    if stale:
        log.warning(
            "%s also holds %d older part file(s) of %s that this split does not write: %s",
            folder,
            len(stale),
            path.name,
            ", ".join(stale[:3]) + (", ..." if len(stale) > 3 else ""),
        )


def _write_all(plans: list[_Plan]) -> list[list[int]]:
    """Write every part to a temporary file; replace the targets only when all are done."""
    created: list[Path] = []
    sizes: list[list[int]] = []
    try:
        with contextlib.ExitStack() as stack:
            for plan in plans:
                if not plan.targets:
                    sizes.append([])
                    continue
                created += _make_dirs(plan.targets[0].parent)
                temps = [stack.enter_context(atomic_path(t)) for t in plan.targets]
                sizes.append(_write_parts(plan.source, plan.chunks, temps))
    except BaseException:
        for folder in reversed(created):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    return sizes


def _make_dirs(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns those created, outermost first."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()][::-1]
    for path in missing:
        path.mkdir()
    return missing


def _write_parts(source: InputFile, chunks: list[Chunk], temps: list[Path]) -> list[int]:
    """Write each chunk's rows to its file; returns the files' sizes in bytes."""
    if source.format in APPENDABLE:
        return _stream_parts(source, chunks, temps)
    rows = source.scan()
    sizes = []
    for chunk, tmp in zip(chunks, temps, strict=True):
        sink_rows(rows.slice(chunk.first_row, len(chunk.rows)), tmp, source.format)
        sizes.append(tmp.stat().st_size)
    return sizes


def _stream_parts(source: InputFile, chunks: list[Chunk], temps: list[Path]) -> list[int]:
    """One pass over the file, each batch's rows appended to the parts they belong to."""
    parts: Iterator[tuple[Chunk, Path]] = zip(chunks, temps, strict=True)
    sizes: list[int] = []
    handle: IO[bytes] | None = None
    owed = 0  # rows the open part still needs
    header = True
    try:
        for df in source.iter_batches(list(source.columns), _batch_rows(source)):
            offset = 0
            while offset < df.height:
                if handle is None:
                    nxt = next(parts, None)
                    if nxt is None:
                        raise _changed(source)
                    handle, owed = nxt[1].open("wb"), len(nxt[0].rows)
                    header = True
                take = min(owed, df.height - offset)
                append_rows(df.slice(offset, take), handle, source.format, header=header)
                header = False
                offset += take
                owed -= take
                if owed == 0:
                    sizes.append(handle.tell())
                    handle.close()
                    handle = None
    finally:
        if handle is not None:
            handle.close()
    if len(sizes) != len(chunks):
        raise _changed(source)
    return sizes


def _changed(source: InputFile) -> InputFileError:
    return InputFileError(
        f"{source.path}: the file changed while it was being split; nothing was written.",
        hint="Split it again once nothing else is writing to it.",
    )


def _file_split(plan: _Plan, sizes: list[int] | None) -> FileSplit:
    parts: list[PartSpec] = []
    counted = plan.requests is not None
    if plan.targets:
        requests: list[int | None] = (
            list(plan.requests) if plan.requests is not None else [None] * len(plan.chunks)
        )
        for i, (chunk, sent, target) in enumerate(
            zip(plan.chunks, requests, plan.targets, strict=True)
        ):
            parts.append(
                PartSpec(
                    part=i + 1,
                    file=str(target),
                    first_row=chunk.first_row + 1,
                    last_row=chunk.last_row + 1,
                    rows=len(chunk.rows),
                    requests=sent,
                    tokens=chunk.tokens if counted else None,
                    bytes=None if sizes is None else sizes[i],
                )
            )
    return FileSplit(
        input=str(plan.source.path),
        format=plan.source.format,
        rows=plan.source.rows,
        requests=sum(plan.requests) if plan.requests is not None else None,
        tokens=sum(c.tokens for c in plan.chunks) if counted else None,
        within_limits=not plan.targets,
        out_dir=str(plan.targets[0].parent) if plan.targets else None,
        tokens_label=plan.tokens_label,
        parts=parts,
    )
