"""Token counts and cost estimates of input files, before anything is spent.

Input tokens are exact (the requests as they would be sent), except for providers
without an offline tokenizer (Claude): their figure is labelled ``exact`` (every
request counted by the provider), ``sampled ±x%`` or ``approximate ±x%``
(``planning.measure``), and the worst case uses its upper bound. Output tokens are an
estimate: the expected answer's size (from the answer format, or
``request.expected_output_tokens``) and the worst case (``max_tokens_per_response``).
Costs are at Batch API rates with the synchronous price beside them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from batchgrader.money.pricing import Tier, Usage, cost
from batchgrader.planning.measure import TokenFigure, calibrate, measure
from batchgrader.planning.spec import RequestSpec
from batchgrader.planning.workload import RowBlock, Workload
from batchgrader.prompting import rules
from batchgrader.prompting.rules import expected_reasoning_tokens

#: Tokens assumed per free-text field of the answer (reasoning, comments).
TOKENS_PER_TEXT_FIELD = 60


class CostEstimate(BaseModel):
    """USD, exact for input, estimated for output; None when the model has no price."""

    input: Decimal
    output_expected: Decimal
    output_worst: Decimal
    total_expected: Decimal
    total_worst: Decimal
    sync_total_expected: Decimal
    sync_total_worst: Decimal


class FileCount(BaseModel):
    """Counts of one file (or the total of several)."""

    path: str
    rows: int
    skipped: int
    requests: int
    input_tokens: int
    mean_tokens: float
    max_tokens: int
    max_row: int | None
    over_context: int
    expected_output_tokens: int
    worst_output_tokens: int
    cost: CostEstimate | None
    #: ``exact``, ``sampled ±x%`` or ``approximate ±x%`` (the input tokens).
    input_tokens_label: str = "exact"
    #: How a provider without an offline tokenizer's figure was made (None: exact offline).
    input_figure: TokenFigure | None = None


class CountReport(BaseModel):
    """What ``batchgrader count`` prints."""

    model: str
    priced_as: str | None
    encoding: str
    endpoint: str
    prompt: str
    context_window: int | None
    files: list[FileCount]
    total: FileCount | None


def expected_output_tokens(spec: RequestSpec, override: int | None) -> int:
    """Tokens of a typical answer, capped by max_tokens_per_response."""
    if override is not None:
        return min(override, spec.options.max_tokens)
    counter = spec.counter
    if not spec.options.structured:
        plain = counter.count(str(spec.prompt.scale.max)) + _reasoning(spec)
        return min(plain, spec.options.max_tokens)
    schema = spec.prompt.answer_schema()
    sample: dict[str, Any] = {}
    text_fields = 0
    for name, prop in schema["properties"].items():
        kind = prop.get("type")
        if kind == "string":
            sample[name] = prop["enum"][0] if prop.get("enum") else ""
            text_fields += 0 if prop.get("enum") else 1
        elif kind == "boolean":
            sample[name] = True
        elif kind in ("integer", "number"):
            sample[name] = prop.get("maximum", spec.prompt.scale.max)
        else:
            sample[name] = None
    tokens = counter.count(json.dumps(sample)) + text_fields * TOKENS_PER_TEXT_FIELD
    return min(tokens + _reasoning(spec), spec.options.max_tokens)


def _reasoning(spec: RequestSpec) -> int:
    """Reasoning tokens a reasoning model typically spends on one answer (they bill as
    output)."""
    return expected_reasoning_tokens(rules.of(spec.options.model), spec.options.reasoning_effort)


class _Tally:
    """Accumulates one file's counts across streamed batches."""

    def __init__(self, window: int | None, max_output: int) -> None:
        self.rows = self.skipped = self.requests = self.tokens = 0
        self.max_tokens = 0
        self.max_row: int | None = None
        self.over_context = 0
        self._limit = None if window is None else window - max_output

    def add(self, batch: RowBlock) -> None:
        self.rows += batch.n_rows
        self.skipped += len(batch.skipped)
        self.requests += len(batch.rows)
        self.tokens += sum(batch.tokens)
        if batch.tokens:
            top = max(range(len(batch.tokens)), key=batch.tokens.__getitem__)
            if batch.tokens[top] > self.max_tokens:
                self.max_tokens = batch.tokens[top]
                self.max_row = batch.rows[top] + 1
        if self._limit is not None:
            self.over_context += sum(1 for t in batch.tokens if t > self._limit)


def count_files(
    paths: Iterable[Path], spec: RequestSpec, expected_override: int | None
) -> CountReport:
    """Count every file; each is fully validated before the next is opened."""
    window = spec.context_window
    expected = expected_output_tokens(spec, expected_override)
    files: list[FileCount] = []
    method = spec.counter.name
    for path in paths:
        workload = Workload.of(path, spec)
        figure = measure(workload, spec)
        calibrate(workload, figure, upper=False)
        tally = _Tally(window, spec.options.max_tokens)
        for batch in workload.blocks():
            tally.add(batch)
        files.append(_file_count(str(path), tally, expected, spec, figure))
        method = figure.method if figure is not None else method
    total = _total(files, spec) if len(files) > 1 else None
    return CountReport(
        model=spec.options.model,
        priced_as=spec.price.model if spec.price else None,
        encoding=method,
        endpoint=spec.options.endpoint,
        prompt=spec.prompt.name,
        context_window=window,
        files=files,
        total=total,
    )


def estimate_cost(
    spec: RequestSpec,
    input_tokens: int,
    output_expected: int,
    output_worst: int,
    *,
    input_worst: int | None = None,
) -> CostEstimate | None:
    """Batch and synchronous cost of a workload; None when the model is unpriced.

    ``input_worst`` is the upper bound of an estimated input figure (the worst case
    uses it); by default the input tokens are exact.
    """
    if spec.price is None:
        return None
    price = spec.price
    worst_in = input_tokens if input_worst is None else input_worst
    batch_in = cost(price, Usage(input_tokens=input_tokens))
    batch_worst_in = cost(price, Usage(input_tokens=worst_in))
    exp_out = cost(price, Usage(output_tokens=output_expected))
    worst_out = cost(price, Usage(output_tokens=output_worst))
    sync_in = cost(price, Usage(input_tokens=input_tokens), tier=Tier.STANDARD)
    sync_worst_in = cost(price, Usage(input_tokens=worst_in), tier=Tier.STANDARD)
    return CostEstimate(
        input=batch_in,
        output_expected=exp_out,
        output_worst=worst_out,
        total_expected=batch_in + exp_out,
        total_worst=batch_worst_in + worst_out,
        sync_total_expected=sync_in
        + cost(price, Usage(output_tokens=output_expected), tier=Tier.STANDARD),
        sync_total_worst=sync_worst_in
        + cost(price, Usage(output_tokens=output_worst), tier=Tier.STANDARD),
    )


def _file_count(
    path: str, tally: _Tally, expected: int, spec: RequestSpec, figure: TokenFigure | None
) -> FileCount:
    exp_out = tally.requests * expected
    worst_out = tally.requests * spec.options.max_tokens
    tokens = figure.total if figure is not None else tally.tokens
    high = figure.high if figure is not None else None
    return FileCount(
        path=path,
        rows=tally.rows,
        skipped=tally.skipped,
        requests=tally.requests,
        input_tokens=tokens,
        mean_tokens=round(tokens / tally.requests, 1) if tally.requests else 0.0,
        max_tokens=tally.max_tokens,
        max_row=tally.max_row,
        over_context=tally.over_context,
        expected_output_tokens=exp_out,
        worst_output_tokens=worst_out,
        cost=estimate_cost(spec, tokens, exp_out, worst_out, input_worst=high),
        input_tokens_label=figure.label if figure is not None else "exact",
        input_figure=figure,
    )


def _total(files: list[FileCount], spec: RequestSpec) -> FileCount:
    requests = sum(f.requests for f in files)
    tokens = sum(f.input_tokens for f in files)
    top = max(files, key=lambda f: f.max_tokens)
    exp_out = sum(f.expected_output_tokens for f in files)
    worst_out = sum(f.worst_output_tokens for f in files)
    figure = _total_figure([f.input_figure for f in files if f.input_figure is not None])
    return FileCount(
        path="total",
        rows=sum(f.rows for f in files),
        skipped=sum(f.skipped for f in files),
        requests=requests,
        input_tokens=tokens,
        mean_tokens=round(tokens / requests, 1) if requests else 0.0,
        max_tokens=top.max_tokens,
        max_row=None,
        over_context=sum(f.over_context for f in files),
        expected_output_tokens=exp_out,
        worst_output_tokens=worst_out,
        cost=estimate_cost(
            spec, tokens, exp_out, worst_out, input_worst=figure.high if figure else None
        ),
        input_tokens_label=figure.label if figure is not None else "exact",
        input_figure=figure,
    )


def _total_figure(figures: list[TokenFigure]) -> TokenFigure | None:
    """Several files' figures added up: the least sure kind, the bounds added (no
    cancelling of errors is assumed)."""
    if not figures:
        return None
    kinds = [f.kind for f in figures]
    kind = next(k for k in ("approximate", "sampled", "exact") if k in kinds)
    total = sum(f.total for f in figures)
    high = sum(f.high for f in figures)
    figure = TokenFigure.of(
        kind,
        figures[0].method,
        total,
        (high - total) / total if total else 0.0,
        counted=sum(f.counted for f in figures),
        requests=sum(f.requests for f in figures),
        offline=sum(f.offline for f in figures),
    )
    return figure
