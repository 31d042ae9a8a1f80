"""Direct mode's concurrency gate: a release wakes as many rows as there are free slots.

A chunk's every row waits at the gate; waking them all on each release made a 1,400-row
chunk cost hundreds of thousands of wake-ups (benchmarks/bench_direct.py, issue 17).
"""

from __future__ import annotations

import asyncio
from typing import Literal

import pytest

from batchgrader.execution.pacing import Gate, reset_seconds


class _CountingCondition(asyncio.Condition):
    """A condition that counts how often a waiter went to sleep."""

    def __init__(self) -> None:
        super().__init__()
        self.waits = 0

    async def wait(self) -> Literal[True]:
        self.waits += 1
        return await super().wait()


def test_every_row_passes_within_the_limit_with_few_wake_ups() -> None:
    """400 rows through 4 slots: never more than 4 at once, about one sleep a row."""
    rows, slots = 400, 4
    cond = _CountingCondition()
    gate = Gate(ceiling=slots, limit=slots, _cond=cond)
    most = done = 0

    async def one() -> None:
        nonlocal most, done
        await gate.acquire()
        try:
            most = max(most, gate.active)
            await asyncio.sleep(0)
            done += 1
        finally:
            await gate.release()

    async def main() -> None:
        await asyncio.gather(*(one() for _ in range(rows)))

    asyncio.run(main())
    assert done == rows and most == slots and gate.active == 0
    assert cond.waits <= rows  # waking every waiter on each release: 19,800 here


def test_a_slot_that_grows_back_wakes_a_waiter() -> None:
    """After a rate limit halves the gate, each slot it grows back lets one more row in."""

    async def main() -> None:
        gate = Gate(ceiling=2, limit=1)
        await gate.acquire()
        second = asyncio.create_task(gate.acquire())
        await asyncio.sleep(0.01)
        assert not second.done()
        await gate.succeeded()  # limit 1 -> 2: one free slot
        await asyncio.wait_for(second, 1.0)
        assert gate.active == 2

    asyncio.run(main())


def test_a_woken_row_cancelled_passes_its_wake_up_on() -> None:
    """A waiter woken for a free slot but cancelled before taking it: the next one gets it."""

    async def main() -> None:
        gate = Gate(ceiling=1, limit=1)
        await gate.acquire()
        first = asyncio.create_task(gate.acquire())
        second = asyncio.create_task(gate.acquire())
        await asyncio.sleep(0.01)
        await gate.release()  # wakes `first` only
        first.cancel()  # before it runs
        await asyncio.gather(first, return_exceptions=True)
        await asyncio.wait_for(second, 1.0)
        assert gate.active == 1

    asyncio.run(main())


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "250ms"}, 0.25),
        ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "8.64s"}, 8.64),
        ({"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "6m0s"}, 360.0),
        ({"x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "1h2m3.5s"}, 3723.5),
        ({"x-ratelimit-remaining-requests": "2", "x-ratelimit-reset-requests": "1s"}, None),
        ({"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "soon"}, None),
        ({}, None),
    ],
)
def test_a_used_up_limit_says_when_it_resets(
    headers: dict[str, str], seconds: float | None
) -> None:
    """OpenAI's reset durations (Anthropic's are mapped to them), only for a limit at 0."""
    assert reset_seconds(headers) == seconds


def test_the_rate_limit_state_is_current() -> None:
    """The board's rate-limit state says what holds the run now: narrowed, paused, or
    nothing once the slots have grown back and the pause is over."""

    async def scenario() -> list[str]:
        gate = Gate(ceiling=4, limit=4)
        seen = [gate.state]
        gate.throttled(0.05, "rate limited")
        seen.append(gate.state)
        await asyncio.sleep(0.06)
        seen.append(gate.state)
        for _ in range(2 + 3):  # 2 successes grow 2 to 3, 3 more grow 3 to 4
            await gate.succeeded()
        seen.append(gate.state)
        gate.pause(0.05, "rate limit used up")
        seen.append(gate.state)
        await asyncio.sleep(0.06)
        seen.append(gate.state)
        return seen

    seen = asyncio.run(scenario())
    assert seen[0] == "" and seen[3] == "" and seen[5] == ""
    assert seen[1].startswith("rate limited: 2 at once, paused 0.")
    assert seen[2] == "rate limited: 2 at once"
    assert seen[4].startswith("rate limit used up: paused 0.")
