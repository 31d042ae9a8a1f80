"""Chunk plans under the Batch API's limits (chunking.py)."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchgrader.errors import PlanError
from batchgrader.planning.chunking import (
    MAX_REQUESTS_PER_BATCH,
    Chunk,
    ChunkPlanner,
    Limits,
    forced_boundaries,
)


def plan_chunks(
    tokens: Sequence[int],
    nbytes: Sequence[int],
    limits: Limits,
    *,
    force_chunk_count: int = 0,
) -> list[Chunk]:
    """Plan chunks for rows ``0..n-1`` with the given per-row tokens and line bytes
    (the streaming planner fed whole lists)."""
    n = len(tokens)
    planner = ChunkPlanner(limits, forced_boundaries(n, force_chunk_count))
    for row in range(n):
        planner.add(row, tokens[row], nbytes[row])
    return planner.finish(n)


def assert_partition(chunks: Sequence[Chunk], n: int) -> None:
    """Chunks are non-empty, numbered, contiguous, in order and cover rows 0..n-1 once."""
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert chunks[0].first_row == 0
    assert chunks[-1].last_row == n - 1
    for before, after in itertools.pairwise(chunks):
        assert after.first_row == before.last_row + 1
    assert all(c.requests >= 1 and c.last_row >= c.first_row for c in chunks)
    assert [r for c in chunks for r in c.rows] == list(range(n))


def assert_within_limits(
    chunks: Sequence[Chunk], tokens: Sequence[int], nbytes: Sequence[int], limits: Limits
) -> None:
    """Every chunk's sums are right and within every limit (a lone big row excepted)."""
    for c in chunks:
        assert c.requests == len(c.rows)
        assert c.tokens == sum(tokens[r] for r in c.rows)
        assert c.bytes == sum(nbytes[r] for r in c.rows)
        assert c.requests <= limits.max_requests
        assert c.requests <= (limits.rows or limits.max_requests)
        assert c.bytes <= limits.max_bytes
        cap = limits.token_cap
        if cap is not None and c.tokens > cap:
            assert c.requests == 1, f"chunk {c} over the token cap holds more than one row"


@st.composite
def workloads(draw: st.DrawFn) -> tuple[list[int], list[int], Limits]:
    """Random per-row token and byte sizes with limits every single row fits (bar tokens)."""
    n = draw(st.integers(1, 60))
    tokens = draw(st.lists(st.integers(1, 300), min_size=n, max_size=n))
    nbytes = draw(st.lists(st.integers(1, 400), min_size=n, max_size=n))
    limits = Limits(
        tokens=draw(st.none() | st.integers(1, 1_500)),
        rows=draw(st.none() | st.integers(1, 25)),
        enqueued_tokens=draw(st.none() | st.integers(max(tokens), 3_000)),
        max_requests=draw(st.integers(1, 30)),
        max_bytes=draw(st.integers(max(nbytes), 3_000)),
    )
    return tokens, nbytes, limits


class TestProperties:
    """Properties of every plan, over random row sizes and limits."""

    @given(workloads())
    def test_partition_within_limits(self, work: tuple[list[int], list[int], Limits]) -> None:
        """Chunks partition the rows in order and respect every limit."""
        tokens, nbytes, limits = work
        chunks = plan_chunks(tokens, nbytes, limits)
        assert_partition(chunks, len(tokens))
        assert_within_limits(chunks, tokens, nbytes, limits)

    @given(workloads())
    def test_greedy_chunks_are_full(self, work: tuple[list[int], list[int], Limits]) -> None:
        """A chunk closes only when its next row would break a limit (no needless chunks)."""
        tokens, nbytes, limits = work
        chunks = plan_chunks(tokens, nbytes, limits)
        for c in chunks[:-1]:
            nxt = c.last_row + 1
            cap = limits.token_cap
            assert (
                c.requests + 1 > limits.row_cap
                or c.bytes + nbytes[nxt] > limits.max_bytes
                or (cap is not None and c.tokens + tokens[nxt] > cap)
            )

    @given(workloads(), st.integers(2, 12))
    def test_forced_chunk_count(
        self, work: tuple[list[int], list[int], Limits], force: int
    ) -> None:
        """A forced count gives at least that many chunks (capped by rows), limits kept."""
        tokens, nbytes, limits = work
        n = len(tokens)
        chunks = plan_chunks(tokens, nbytes, limits, force_chunk_count=force)
        assert_partition(chunks, n)
        assert_within_limits(chunks, tokens, nbytes, limits)
        assert len(chunks) >= min(force, n)
        starts = {c.first_row for c in chunks}
        assert forced_boundaries(n, force) <= starts

    @given(
        st.data(),
        st.lists(st.booleans(), min_size=1, max_size=60),
        st.integers(0, 6),
    )
    def test_skipped_rows_join_chunks(
        self, data: st.DataObject, skipped: list[bool], force: int
    ) -> None:
        """Skipped rows belong to a chunk's range but are not requests; none are lost."""
        n = len(skipped)
        limits = Limits(tokens=data.draw(st.integers(1, 50)), max_requests=7)
        planner = ChunkPlanner(limits, forced_boundaries(n, force))
        for row, skip in enumerate(skipped):
            if skip:
                planner.skip(row)
            else:
                planner.add(row, data.draw(st.integers(1, 20)), 10)
        chunks = planner.finish(n)
        sent = n - sum(skipped)
        if sent == 0:
            assert chunks == []
            return
        assert_partition(chunks, n)
        assert sum(c.requests for c in chunks) == sent
        for c in chunks:
            assert c.requests == sum(not skipped[r] for r in c.rows)
            assert c.requests <= 7


class TestForcedCounts:
    """``chunking.force_chunk_count``: N near-equal chunks, more if the caps force it."""

    @pytest.mark.parametrize(("n", "force"), [(10, 3), (100, 7), (5, 5), (3, 8), (50_001, 2)])
    def test_near_equal_chunks(self, n: int, force: int) -> None:
        """With loose limits, N chunks whose sizes differ by at most one row."""
        chunks = plan_chunks([1] * n, [1] * n, Limits(tokens=None), force_chunk_count=force)
        assert len(chunks) == min(force, n)
        sizes = [c.requests for c in chunks]
        assert max(sizes) - min(sizes) <= 1

    def test_caps_can_force_more_chunks(self, caplog: pytest.LogCaptureFixture) -> None:
        """When a cap needs more chunks than asked for, the cap wins, with a warning."""
        with caplog.at_level(logging.WARNING, logger="batchgrader"):
            chunks = plan_chunks([1] * 20, [1] * 20, Limits(rows=4), force_chunk_count=2)
        assert [c.requests for c in chunks] == [4, 4, 2, 4, 4, 2]
        assert "2 chunks were asked for; the batch limits need 6" in caplog.text

    def test_skipped_boundary_row_still_splits(self) -> None:
        """A forced boundary on a skipped row starts the chunk at the next sent row."""
        planner = ChunkPlanner(Limits(), forced_boundaries(4, 2))
        planner.add(0, 1, 1)
        planner.add(1, 1, 1)
        planner.skip(2)
        planner.add(3, 1, 1)
        chunks = planner.finish(4)
        assert [(c.first_row, c.last_row, c.requests) for c in chunks] == [(0, 2, 2), (3, 3, 1)]


class TestCaps:
    """The Batch API's hard caps and the configured limits."""

    def test_default_request_cap_is_50000(self) -> None:
        """The real 50,000-request cap splits 50,001 tiny rows in two."""
        n = MAX_REQUESTS_PER_BATCH + 1
        chunks = plan_chunks([1] * n, [1] * n, Limits(tokens=None))
        assert [c.requests for c in chunks] == [MAX_REQUESTS_PER_BATCH, 1]

    def test_request_cap_override(self) -> None:
        """A small max_requests stands in for the 50,000 cap."""
        chunks = plan_chunks([1] * 7, [1] * 7, Limits(max_requests=3))
        assert [(c.first_row, c.last_row) for c in chunks] == [(0, 2), (3, 5), (6, 6)]

    def test_row_limit_below_the_cap(self) -> None:
        """split_row_limit applies when it is lower than the request cap."""
        chunks = plan_chunks([1] * 7, [1] * 7, Limits(rows=2, max_requests=3))
        assert [c.requests for c in chunks] == [2, 2, 2, 1]

    def test_byte_cap(self) -> None:
        """A chunk's request lines stay within max_bytes, newline included by the caller."""
        chunks = plan_chunks([1] * 5, [40, 40, 30, 50, 10], Limits(max_bytes=100))
        assert [c.bytes for c in chunks] == [80, 90]

    def test_token_limit(self) -> None:
        """split_token_limit closes a chunk before it would overflow."""
        chunks = plan_chunks([5, 5, 5, 5], [1] * 4, Limits(tokens=10))
        assert [c.tokens for c in chunks] == [10, 10]

    def test_enqueued_tokens_cap_chunks_too(self) -> None:
        """The enqueued-token cap bounds a chunk when lower than split_token_limit."""
        chunks = plan_chunks([5, 5, 5, 5], [1] * 4, Limits(tokens=100, enqueued_tokens=12))
        assert [c.tokens for c in chunks] == [10, 10]

    def test_row_over_token_limit_gets_own_chunk(self, caplog: pytest.LogCaptureFixture) -> None:
        """A single row over split_token_limit is sent alone in its own chunk, with a warning."""
        with caplog.at_level(logging.WARNING, logger="batchgrader"):
            chunks = plan_chunks([3, 50, 3, 3], [1] * 4, Limits(tokens=10))
        assert [(c.first_row, c.last_row, c.tokens) for c in chunks] == [
            (0, 0, 3),
            (1, 1, 50),
            (2, 3, 6),
        ]
        assert "Row 2 needs 50 tokens, over the 10-token chunk limit" in caplog.text

    def test_row_over_enqueued_limit_is_plan_error(self) -> None:
        """A row no batch can hold under the enqueued-token limit stops the plan."""
        with pytest.raises(PlanError, match=r"Row 3 alone needs 1,000 input tokens") as info:
            plan_chunks([1, 1, 1_000], [1] * 3, Limits(enqueued_tokens=999))
        assert info.value.exit_code == 2
        assert "999" in info.value.message

    def test_row_over_byte_cap_is_plan_error(self) -> None:
        """A row whose line alone exceeds the byte cap stops the plan."""
        with pytest.raises(PlanError, match=r"Row 2 alone needs 101 bytes"):
            plan_chunks([1, 1], [1, 101], Limits(max_bytes=100))
