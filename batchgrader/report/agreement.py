"""Agreement between the judge and a label column, from their table of pair counts.

Every metric is a function of the ``(label, judge) -> count`` table, so a file of any
size reduces to a table of at most a few hundred cells, and the bootstrap resamples the
table instead of the rows. Sums are exact (integers, or fractions for fractional
values); each metric is one division at the end.

Definitions (``x`` the judge, ``y`` the label, over the ``n`` rows that have both):

- exact agreement: the share of rows with ``x == y``; within one: ``|x - y| <= 1``.
- Cohen's kappa: ``(p_o - p_e) / (1 - p_e)``, ``p_e`` the agreement expected from the
  two marginal distributions (Cohen 1960).
- quadratic-weighted kappa: ``1 - sum (x - y)^2 / E[(x - y')^2]`` over independent
  pairs, weights by the distance between values (Cohen 1968); equal to
  ``2 cov(x, y) / (var x + var y + (mean x - mean y)^2)``.
- Spearman's rho: Pearson's correlation of the average ranks (ties share a rank).
- mean absolute error ``mean |x - y|`` and mean difference ``mean (x - y)``.

A kappa whose expected disagreement is zero (both sides give one and the same value)
and a rho with a constant side are undefined: ``None``, as scikit-learn and scipy
return ``nan``.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable, Mapping
from fractions import Fraction
from typing import TypeVar

#: A value on an ordinal scale as an exact number (an int, or a float's exact fraction).
Exact = int | Fraction
#: ``(label, judge) -> rows``.
Table = Mapping[tuple[Exact, Exact], int]
#: Any value that can be compared for equality (a number or a category).
V = TypeVar("V", bound=Hashable)

#: Landis & Koch (1977), "The measurement of observer agreement for categorical data",
#: Biometrics 33(1):159-174: upper bound of each band and its name.
#: Below 0 is "poor".
KAPPA_BANDS = (
    (0.20, "slight"),
    (0.40, "fair"),
    (0.60, "moderate"),
    (0.80, "substantial"),
    (1.0, "almost perfect"),
)


def exact(value: float) -> Exact:
    """A float as an exact number (whole numbers as ``int``)."""
    return int(value) if value.is_integer() else Fraction(value)


def rows(table: Mapping[tuple[V, V], int]) -> int:
    return sum(table.values())


def exact_agreement(table: Mapping[tuple[V, V], int]) -> float:
    """Share of rows where judge and label are equal."""
    return sum(c for (y, x), c in table.items() if x == y) / rows(table)


def within_one(table: Table) -> float:
    """Share of rows where judge and label are at most one point apart."""
    return sum(c for (y, x), c in table.items() if _distance(x, y) <= 1) / rows(table)


def _distance(x: Exact, y: Exact) -> Fraction:
    gap = Fraction(x) - Fraction(y)
    return gap if gap >= 0 else -gap


def cohen_kappa(table: Mapping[tuple[V, V], int]) -> float | None:
    """Unweighted Cohen's kappa, or None when expected disagreement is zero."""
    n = rows(table)
    label_counts: dict[V, int] = {}
    judge_counts: dict[V, int] = {}
    agree = 0
    for (y, x), c in table.items():
        label_counts[y] = label_counts.get(y, 0) + c
        judge_counts[x] = judge_counts.get(x, 0) + c
        agree += c if x == y else 0
    chance = sum(c * judge_counts.get(v, 0) for v, c in label_counts.items())
    denominator = n * n - chance
    if denominator == 0:
        return None
    return float(Fraction(n * agree - chance, denominator))


def moments(table: Table) -> tuple[int, Exact, Exact, Exact, Exact, Exact]:
    """``n, sum x, sum y, sum x^2, sum y^2, sum x*y`` (x the judge, y the label)."""
    n = 0
    sx: Exact = 0
    sy: Exact = 0
    sxx: Exact = 0
    syy: Exact = 0
    sxy: Exact = 0
    for (y, x), c in table.items():
        n += c
        sx += c * x
        sy += c * y
        sxx += c * x * x
        syy += c * y * y
        sxy += c * x * y
    return n, sx, sy, sxx, syy, sxy


def weighted_kappa_of(
    n: int, sx: Exact, sy: Exact, sxx: Exact, syy: Exact, sxy: Exact
) -> float | None:
    """Quadratic-weighted kappa from the sums; None when both sides are one same value."""
    denominator = (n * sxx - sx * sx) + (n * syy - sy * sy) + (sx - sy) ** 2
    if denominator == 0:
        return None
    return float(Fraction(2 * (n * sxy - sx * sy)) / Fraction(denominator))


def quadratic_weighted_kappa(table: Table) -> float | None:
    """Cohen's kappa with quadratic weights by the distance between the values."""
    return weighted_kappa_of(*moments(table))


def _doubled_ranks(counts: Mapping[Exact, int]) -> dict[Exact, int]:
    """Twice the average rank of each value (an integer: ties share a half rank)."""
    ranks: dict[Exact, int] = {}
    before = 0
    for value in sorted(counts):
        c = counts[value]
        ranks[value] = 2 * before + c + 1
        before += c
    return ranks


def spearman(table: Table) -> float | None:
    """Spearman's rho with average ranks for ties; None when a side is constant."""
    label_counts: dict[Exact, int] = {}
    judge_counts: dict[Exact, int] = {}
    for (y, x), c in table.items():
        label_counts[y] = label_counts.get(y, 0) + c
        judge_counts[x] = judge_counts.get(x, 0) + c
    ry, rx = _doubled_ranks(label_counts), _doubled_ranks(judge_counts)
    ranked: dict[tuple[Exact, Exact], int] = {(ry[y], rx[x]): c for (y, x), c in table.items()}
    n, sx, sy, sxx, syy, sxy = moments(ranked)
    vx, vy = n * sxx - sx * sx, n * syy - sy * sy
    if vx == 0 or vy == 0:
        return None
    rho = float(n * sxy - sx * sy) / (math.sqrt(float(vx)) * math.sqrt(float(vy)))
    return max(-1.0, min(1.0, rho))


def mean_absolute_error(table: Table) -> float:
    total = sum((c * _distance(x, y) for (y, x), c in table.items()), Fraction(0))
    return float(total / rows(table))


def mean_difference(table: Table) -> float:
    """Mean of judge minus label: positive when the judge is kinder."""
    total = sum((c * Fraction(x - y) for (y, x), c in table.items()), Fraction(0))
    return float(total / rows(table))


def confusion(table: Mapping[tuple[V, V], int], values: Iterable[V]) -> list[list[int]]:
    """Counts with rows = label value, columns = judge value, in the order of ``values``."""
    order = list(values)
    return [[table.get((y, x), 0) for x in order] for y in order]


def kappa_band(kappa: float) -> str:
    """The Landis & Koch name of a kappa: poor, slight, fair, moderate, substantial,
    almost perfect."""
    if kappa < 0:
        return "poor"
    for upper, name in KAPPA_BANDS:
        if kappa <= upper:
            return name
    return KAPPA_BANDS[-1][1]
