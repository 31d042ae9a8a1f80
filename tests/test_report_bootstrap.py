"""The seeded bootstrap: its binomial sampler, its resampling, its intervals."""

from __future__ import annotations

import random
import sys
from collections import Counter
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from batchgrader.report import agreement as m
from batchgrader.report import bootstrap

Table = dict[tuple[m.Exact, m.Exact], int]

STATISTICS: dict[str, Callable[[Table], float | None]] = {
    "exact": m.exact_agreement,
    "quadratic_weighted_kappa": m.quadratic_weighted_kappa,
}


def noisy_table(n: int, seed: int, noise: float = 0.4) -> Table:
    """A (label, judge) table of n rows where the judge is the label plus some noise."""
    rng = random.Random(seed)
    pairs: list[tuple[m.Exact, m.Exact]] = []
    for _ in range(n):
        label = rng.randint(1, 5)
        judge = label if rng.random() > noise else rng.randint(1, 5)
        pairs.append((label, judge))
    return dict(Counter(pairs))


class TestBinomial:
    @pytest.mark.skipif(
        sys.version_info < (3, 12), reason="random.binomialvariate is new in Python 3.12"
    )
    @pytest.mark.parametrize(
        ("n", "p"), [(1, 0.3), (7, 0.9), (50, 0.1), (1000, 0.3), (100_000, 0.02), (20, 1.0)]
    )
    def test_same_draws_as_the_standard_library(self, n: int, p: float) -> None:
        """With the same seed, the port draws exactly what random.binomialvariate draws."""
        ours, theirs = random.Random(42), random.Random(42)
        assert [bootstrap.binomial(ours, n, p) for _ in range(500)] == [
            theirs.binomialvariate(n, p)  # type: ignore[attr-defined]
            for _ in range(500)
        ]

    @pytest.mark.parametrize(("n", "p"), [(12, 0.3), (40, 0.1), (60, 0.5), (500, 0.7)])
    def test_draws_follow_the_binomial_distribution(self, n: int, p: float) -> None:
        """20,000 draws pass a chi-square test against scipy's binomial probabilities."""
        rng = random.Random(3)
        draws = Counter(bootstrap.binomial(rng, n, p) for _ in range(20_000))
        expected = stats.binom(n, p)
        lo, hi = int(expected.ppf(0.001)), int(expected.ppf(0.999))
        ks = range(lo, hi + 1)
        observed = [draws.get(k, 0) for k in ks]
        probs = np.array([expected.pmf(k) for k in ks])
        probs = probs / probs.sum()
        inside = sum(observed)
        _, p_value = stats.chisquare(observed, probs * inside)
        assert p_value > 0.001
        assert np.mean(list(draws.elements())) == pytest.approx(n * p, rel=0.02)

    def test_edge_probabilities(self) -> None:
        """p = 0 gives 0, p = 1 gives n, n = 0 gives 0."""
        rng = random.Random(1)
        assert bootstrap.binomial(rng, 10, 0.0) == 0
        assert bootstrap.binomial(rng, 10, 1.0) == 10
        assert bootstrap.binomial(rng, 0, 0.5) == 0


class TestMultinomial:
    @given(st.lists(st.integers(0, 500), min_size=1, max_size=30), st.integers(0, 2**32))
    @settings(max_examples=100, deadline=None)
    def test_a_resample_has_as_many_rows_in_the_same_cells(
        self, counts: list[int], seed: int
    ) -> None:
        """A resample keeps the total and never fills a cell the table has empty."""
        drawn = bootstrap.multinomial(random.Random(seed), counts)
        assert sum(drawn) == sum(counts)
        assert all(d >= 0 for d in drawn)
        assert all(d == 0 for d, c in zip(drawn, counts, strict=True) if c == 0)

    def test_cell_shares_match_the_table(self) -> None:
        """Averaged over resamples, each cell holds its share of the rows."""
        counts = [50, 0, 30, 15, 5]
        rng = random.Random(5)
        total = np.zeros(len(counts))
        for _ in range(4000):
            total += bootstrap.multinomial(rng, counts)
        assert total / 4000 == pytest.approx(counts, abs=0.5)


class TestIntervals:
    def test_percentile_interpolates_like_numpy(self) -> None:
        """The percentile is numpy's default (linear) quantile."""
        rng = random.Random(2)
        values = [rng.random() for _ in range(997)]
        for q in (0.0, 0.025, 0.5, 0.975, 1.0):
            assert bootstrap.percentile(values, q) == pytest.approx(np.quantile(values, q))

    def test_reproducible_with_the_seed(self) -> None:
        """The same table and seed give the same intervals; another seed others."""
        t = noisy_table(300, seed=1)
        first = bootstrap.intervals(t, STATISTICS, seed=19)
        assert bootstrap.intervals(t, STATISTICS, seed=19) == first
        assert bootstrap.intervals(t, STATISTICS, seed=20) != first

    @given(st.integers(30, 600), st.integers(0, 10_000), st.floats(0.1, 0.9))
    @settings(max_examples=40, deadline=None)
    def test_the_interval_holds_the_estimate(self, n: int, seed: int, noise: float) -> None:
        """Each 95% interval contains the figure computed on the whole table."""
        t = noisy_table(n, seed, noise)
        found = bootstrap.intervals(t, STATISTICS, seed=seed)
        for name, statistic in STATISTICS.items():
            point, ci = statistic(t), found[name]
            assert point is not None and ci is not None
            assert ci[0] <= point <= ci[1], (name, point, ci)

    def test_more_rows_narrow_the_interval(self) -> None:
        """Sixteen times the rows (same shares) makes the intervals about four times narrower."""
        small = noisy_table(200, seed=4)
        large = {cell: 16 * c for cell, c in small.items()}
        narrow = bootstrap.intervals(large, STATISTICS)
        wide = bootstrap.intervals(small, STATISTICS)
        for name in STATISTICS:
            (a, b), (c, d) = wide[name] or (0, 0), narrow[name] or (0, 0)
            assert (d - c) == pytest.approx((b - a) / 4, rel=0.3)

    def test_same_interval_as_resampling_the_rows(self) -> None:
        """Resampling the table's cells equals resampling the rows: numpy's row bootstrap
        gives the same interval within Monte Carlo noise."""
        t = noisy_table(400, seed=8)
        rows = np.array([cell for cell, c in t.items() for _ in range(c)])
        rng = np.random.default_rng(0)
        exact, weighted = [], []
        for _ in range(4000):
            sample = rows[rng.integers(0, len(rows), len(rows))]
            y, x = sample[:, 0], sample[:, 1]
            exact.append(np.mean(x == y))
            cov = np.mean((x - x.mean()) * (y - y.mean()))
            weighted.append(2 * cov / (x.var() + y.var() + (x.mean() - y.mean()) ** 2))
        ours = bootstrap.intervals(t, STATISTICS)
        assert ours["exact"] == pytest.approx(np.quantile(exact, [0.025, 0.975]), abs=0.02)
        assert ours["quadratic_weighted_kappa"] == pytest.approx(
            np.quantile(weighted, [0.025, 0.975]), abs=0.02
        )

    def test_undefined_in_every_resample_has_no_interval(self) -> None:
        """One value on both sides: the weighted kappa has no interval, exact is [1, 1]."""
        one_value: Table = {(3, 3): 40}
        found = bootstrap.intervals(one_value, STATISTICS)
        assert found["quadratic_weighted_kappa"] is None
        assert found["exact"] == (1.0, 1.0)

    def test_a_million_rows_cost_what_a_hundred_do(self) -> None:
        """The resampling draws cells, not rows: a 1,000,000-row table bootstraps quickly."""
        t = {cell: c * 10_000 for cell, c in noisy_table(100, seed=9).items()}
        found = bootstrap.intervals(t, STATISTICS)
        low, high = found["exact"] or (0, 0)
        assert 0 < high - low < 0.01
