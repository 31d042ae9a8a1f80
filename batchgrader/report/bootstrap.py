"""Seeded percentile bootstrap intervals for agreement figures.

Resampling ``n`` rows with replacement only changes how many rows fall in each cell of
the (label, judge) table, and those counts follow a multinomial distribution with the
table's shares. So each resample is drawn as one multinomial sample of the table (a
binomial draw per cell), and its cost depends on the number of cells, not on the rows:
1,000 resamples of a 1,000,000-row table take as long as of a 100-row one.

The interval is the 2.5th and 97.5th percentiles of the 1,000 resampled figures
(linear interpolation between order statistics, numpy's default). The generator is
``random.Random(seed)``, so the same table gives the same interval on every run.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

K = TypeVar("K")

RESAMPLES = 1_000
SEED = 19
LEVEL = 0.95


def binomial(rng: random.Random, n: int, p: float) -> int:
    """One Binomial(n, p) draw.

    The algorithm of CPython 3.12's ``random.binomialvariate`` (Python Software
    Foundation License), which Python 3.11 lacks: Devroye's geometric method when
    ``n*p < 10``, else Hörmann's BTRS transformed rejection with squeeze (1993).
    """
    if n < 0:
        raise ValueError("n must be non-negative")
    if p <= 0.0 or p >= 1.0:
        if p == 0.0:
            return 0
        if p == 1.0:
            return n
        raise ValueError("p must be in the range 0.0 <= p <= 1.0")
    if n == 1:
        return int(rng.random() < p)
    if p > 0.5:  # symmetry: p <= 0.5 below
        return n - binomial(rng, n, 1.0 - p)
    if n * p < 10.0:
        x = y = 0
        c = math.log2(1.0 - p)
        if not c:
            return x
        while True:
            y += math.floor(math.log2(rng.random()) / c) + 1
            if y > n:
                return x
            x += 1
    spq = math.sqrt(n * p * (1.0 - p))
    b = 1.15 + 2.53 * spq
    a = -0.0873 + 0.0248 * b + 0.01 * p
    c = n * p + 0.5
    vr = 0.92 - 4.2 / b
    setup = False
    alpha = lpq = h = 0.0
    m = 0
    while True:
        u = rng.random() - 0.5
        us = 0.5 - math.fabs(u)
        k = math.floor((2.0 * a / us + b) * u + c)
        if k < 0 or k > n:
            continue
        v = rng.random()
        if us >= 0.07 and v <= vr:
            return k
        if not setup:
            alpha = (2.83 + 5.1 / b) * spq
            lpq = math.log(p / (1.0 - p))
            m = math.floor((n + 1) * p)
            h = math.lgamma(m + 1) + math.lgamma(n - m + 1)
            setup = True
        v *= alpha / (a / (us * us) + b)
        if math.log(v) <= h - math.lgamma(k + 1) - math.lgamma(n - k + 1) + (k - m) * lpq:
            return k


def multinomial(rng: random.Random, counts: Sequence[int]) -> list[int]:
    """Resampled counts: ``sum(counts)`` draws with replacement from the cells,
    each cell chosen with probability ``count / total`` (conditional binomials)."""
    left = total = sum(counts)
    drawn: list[int] = []
    for i, count in enumerate(counts):
        if i == len(counts) - 1 or left == 0:
            drawn.append(left)
            left = 0
            continue
        x = binomial(rng, left, min(1.0, count / total)) if count else 0
        drawn.append(x)
        left -= x
        total -= count
    return drawn


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, interpolating linearly (numpy's default)."""
    ordered = sorted(values)
    h = (len(ordered) - 1) * q
    low = math.floor(h)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (h - low) * (ordered[high] - ordered[low])


def intervals(
    table: Mapping[K, int],
    statistics: Mapping[str, Callable[[dict[K, int]], float | None]],
    *,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    level: float = LEVEL,
) -> dict[str, tuple[float, float] | None]:
    """Percentile bootstrap interval of each statistic of ``table``.

    A resample where a statistic is undefined (``None``) is left out of that
    statistic's interval; a statistic undefined in every resample has no interval.
    """
    rng = random.Random(seed)
    cells = list(table)
    counts = [table[c] for c in cells]
    found: dict[str, list[float]] = {name: [] for name in statistics}
    for _ in range(resamples):
        sample = {c: k for c, k in zip(cells, multinomial(rng, counts), strict=True) if k}
        for name, statistic in statistics.items():
            value = statistic(sample)
            if value is not None:
                found[name].append(value)
    tail = (1.0 - level) / 2
    return {
        name: (percentile(values, tail), percentile(values, 1.0 - tail)) if values else None
        for name, values in found.items()
    }
