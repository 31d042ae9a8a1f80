"""Input tokens of a file whose provider has no exact offline tokenizer (Claude).

The offline counter's figures are approximate (``kind`` approximate, ``error_band``
set). Before anything is planned or estimated, ``measure`` turns them into one figure
for the file, labelled as what it is:

* ``exact``: with a key, when the file's distinct requests fit the provider's counting
  budget (``RequestCounter.capacity``: calls per minute x the seconds allowed), every
  distinct request is counted by the provider (identical requests once);
* ``sampled ±x%``: a bigger file gets a uniform random sample of its requests counted
  (``capacity`` of them, at least ``MIN_SAMPLE``; the same sample for the same file),
  and the total is the ratio estimate ``X * sum(y) / sum(x)`` (``x``: the offline
  count of a request, ``X``: the file's offline total, ``y``: the provider's count),
  with a 95% interval from the ratio estimator's standard error (finite population
  corrected): ``1.96 * N * sqrt((1 - n/N) / n * s_e^2)``, ``e = y - R x``;
* ``approximate ±x%``: without a key (or when counting fails), the offline total with
  the counter's error band.

``calibrate`` then scales the workload's per-row counts so they add up to a bound of
the figure: the upper bound for plans and budgets (a budget is checked against the
most the run can cost), the figure itself for the per-row statistics of ``count``.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel

from batchgrader.errors import ProviderError
from batchgrader.planning.spec import RequestSpec
from batchgrader.planning.workload import Workload
from batchgrader.providers.base import RequestCounter, TokenCounter, custom_id

log = logging.getLogger(__name__)

#: A sample is never smaller than this (the interval needs it), whatever the budget.
MIN_SAMPLE = 30
#: z of a two-sided 95% interval.
Z95 = 1.96
Kind = Literal["exact", "sampled", "approximate"]


class TokenFigure(BaseModel):
    """A file's input tokens and how sure they are."""

    kind: Kind
    #: How the tokens were counted (the provider's endpoint, or the offline counter).
    method: str
    total: int
    #: Relative half-width of the interval (0 when exact).
    error: float = 0.0
    #: Requests the provider counted (distinct ones, or the sample).
    counted: int = 0
    requests: int = 0
    #: The offline counter's total (what the per-row counts are scaled from).
    offline: int = 0
    low: int = 0
    high: int = 0
    label: str = ""

    @classmethod
    def of(
        cls,
        kind: Kind,
        method: str,
        total: int,
        error: float,
        *,
        counted: int,
        requests: int,
        offline: int,
    ) -> TokenFigure:
        error = 0.0 if kind == "exact" else max(error, 0.001)
        label = "exact" if kind == "exact" else f"{kind} ±{error * 100:.1f}%"
        return cls(
            kind=kind,
            method=method,
            total=total,
            error=round(error, 4),
            counted=counted,
            requests=requests,
            offline=offline,
            low=math.floor(total * (1 - error)),
            high=math.ceil(total * (1 + error)),
            label=label,
        )


def measure(workload: Workload, spec: RequestSpec, *, online: bool = True) -> TokenFigure | None:
    """The file's input-token figure; None when the offline counter is exact already."""
    if workload.counter.kind == "exact":
        return None
    exact = spec.provider.request_counter(spec.options.model) if online else None
    if exact is None:
        return _approximate(workload)
    try:
        return _measure(workload, exact)
    except ProviderError as exc:
        log.warning(
            "Exact token counting failed (%s): the approximate figures are used.", exc.message
        )
        return _approximate(workload)
    finally:
        exact.close()


def calibrate(workload: Workload, figure: TokenFigure | None, *, upper: bool) -> None:
    """Scale the workload's per-row counts to add up to the figure (or its upper bound)."""
    if figure is None or figure.offline <= 0:
        return
    target = figure.high if upper else figure.total
    workload.counter = ScaledCounter(_unscaled(workload.counter), target / figure.offline, figure)


class ScaledCounter:
    """An offline counter whose counts are multiplied by a file's measured ratio."""

    def __init__(self, base: TokenCounter, ratio: float, figure: TokenFigure) -> None:
        self.base = base
        self.ratio = ratio
        self.figure = figure

    @property
    def kind(self) -> str:
        return self.figure.kind

    @property
    def error_band(self) -> float:
        return self.figure.error

    @property
    def name(self) -> str:
        return self.figure.method

    def count(self, text: str) -> int:
        return math.ceil(self.base.count(text) * self.ratio)

    def count_many(self, texts: Sequence[str]) -> list[int]:
        ratio = self.ratio
        return [math.ceil(n * ratio) for n in self.base.count_many(texts)]

    def message_overhead(self, roles: Sequence[str]) -> int:
        return math.ceil(self.base.message_overhead(roles) * self.ratio)


def _unscaled(counter: TokenCounter) -> TokenCounter:
    return counter.base if isinstance(counter, ScaledCounter) else counter


def _approximate(workload: Workload) -> TokenFigure:
    counter = _unscaled(workload.counter)
    workload.counter = counter
    total = requests = 0
    for block in workload.blocks():
        total += sum(block.tokens)
        requests += len(block.rows)
    return TokenFigure.of(
        "approximate",
        counter.name,
        total,
        counter.error_band,
        counted=0,
        requests=requests,
        offline=total,
    )


def _measure(workload: Workload, exact: RequestCounter) -> TokenFigure:
    """One pass: distinct requests while they fit the budget, and a reservoir sample."""
    counter = _unscaled(workload.counter)
    workload.counter = counter
    codec = workload.codec
    capacity = exact.capacity
    size = max(capacity, MIN_SAMPLE)
    rng = random.Random(f"{workload.source.rows}:{workload.source.path.name}")
    distinct: dict[str, list[Any]] | None = {}  # key -> [body, rows]
    sample: list[tuple[int, str]] = []  # (offline tokens, line)
    total_x = seen = 0
    width = workload.id_width
    for block in workload.blocks(with_lines=True):
        assert block.lines is not None
        for row, tokens, line in zip(block.rows, block.tokens, block.lines, strict=True):
            total_x += tokens
            seen += 1
            if len(sample) < size:
                sample.append((tokens, line))
            else:
                slot = rng.randrange(seen)
                if slot < size:
                    sample[slot] = (tokens, line)
            if distinct is not None:
                key = line.replace('"' + custom_id(row, width) + '"', '""', 1)
                entry = distinct.get(key)
                if entry is not None:
                    entry[1] += 1
                elif len(distinct) < capacity:
                    distinct[key] = [line, 1]
                else:
                    distinct = None  # more distinct requests than the budget: sample
    method = exact.name
    if seen == 0:
        return TokenFigure.of("exact", method, 0, 0.0, counted=0, requests=0, offline=0)
    if distinct is not None:
        entries = list(distinct.values())
        counts = exact.count_bodies([codec.split_line(line)[1] for line, _ in entries])
        total = sum(n * rows for n, (_, rows) in zip(counts, entries, strict=True))
        return TokenFigure.of(
            "exact", method, total, 0.0, counted=len(entries), requests=seen, offline=total_x
        )
    counts = exact.count_bodies([codec.split_line(line)[1] for _, line in sample])
    if len(sample) == seen:  # the sample is every request
        return TokenFigure.of(
            "exact", method, sum(counts), 0.0, counted=seen, requests=seen, offline=total_x
        )
    xs = [float(x) for x, _ in sample]
    return _ratio_estimate(method, xs, [float(y) for y in counts], total_x, seen)


def _ratio_estimate(
    method: str, xs: list[float], ys: list[float], total_x: int, population: int
) -> TokenFigure:
    """The ratio estimate of the total and its 95% interval (see the module docstring)."""
    n = len(xs)
    sum_x, sum_y = sum(xs), sum(ys)
    sizes = {"counted": n, "requests": population, "offline": total_x}
    if sum_x <= 0 or n < 2:
        mean = sum_y / max(n, 1)
        return TokenFigure.of("sampled", method, round(mean * population), 1.0, **sizes)
    ratio = sum_y / sum_x
    total = ratio * total_x
    residual = sum((y - ratio * x) ** 2 for x, y in zip(xs, ys, strict=True)) / (n - 1)
    fpc = max(0.0, 1 - n / population)
    half = Z95 * population * math.sqrt(fpc / n * residual)
    error = half / total if total > 0 else 1.0
    return TokenFigure.of("sampled", method, round(total), error, **sizes)
