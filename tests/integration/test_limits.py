"""The attempt-limit primitive (store/limits.py) on the in-memory bus and real Redis: counted
before the work, atomic under concurrency, refunds only on success."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from store import limits
from store.bus import Bus, MemoryBus, RedisBus
from tests.conftest import REDIS_URL


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest) -> AsyncIterator[Bus]:
    if request.param == "memory":
        yield MemoryBus()
        return
    b = RedisBus(REDIS_URL, prefix=f"test-limits-{uuid.uuid4().hex[:8]}:")
    yield b
    await b.close()


GUESS = limits.Limit("test:guess", max_attempts=5, window_seconds=60)
WIDE = limits.Limit("test:wide", max_attempts=8, window_seconds=60)


async def test_300_parallel_attempts_let_exactly_the_limit_through(bus) -> None:
    results = await asyncio.gather(*(limits.attempt(bus, [(GUESS, "a")]) for _ in range(300)))
    assert sum(r.allowed for r in results) == GUESS.max_attempts
    assert sorted(r.counts[0] for r in results if r.allowed) == [1, 2, 3, 4, 5]
    assert await limits.exhausted(bus, GUESS, "a")
    assert not await limits.exhausted(bus, GUESS, "b")  # other subjects are untouched


async def test_a_refused_attempt_is_counted_nowhere(bus) -> None:
    for _ in range(GUESS.max_attempts):
        assert (await limits.attempt(bus, [(GUESS, "x"), (WIDE, "shared")])).allowed
    # "x" is used up; attempts refused because of it must not eat the shared budget.
    for _ in range(20):
        assert not (await limits.attempt(bus, [(GUESS, "x"), (WIDE, "shared")])).allowed
    allowed = [
        (await limits.attempt(bus, [(GUESS, "y"), (WIDE, "shared")])).allowed for _ in range(5)
    ]
    assert allowed == [True, True, True, False, False]  # 8 on "shared": 5 + 3


async def test_success_takes_its_count_back_but_failures_stay(bus) -> None:
    for _ in range(GUESS.max_attempts - 1):
        await limits.attempt(bus, [(GUESS, "s")])  # four failures
    for _ in range(10):  # successes cost nothing
        ok = await limits.attempt(bus, [(GUESS, "s")])
        assert ok.allowed and ok.counts == (GUESS.max_attempts,)
        await ok.succeeded()
        await ok.succeeded()  # settling twice refunds once
    assert (await limits.attempt(bus, [(GUESS, "s")])).allowed  # the fifth failure
    assert not (await limits.attempt(bus, [(GUESS, "s")])).allowed


async def test_window_ends_and_a_late_refund_leaves_no_key(bus) -> None:
    short = limits.Limit("test:short", max_attempts=1, window_seconds=0.3)
    first = await limits.attempt(bus, [(short, "w")])
    assert first.allowed and not (await limits.attempt(bus, [(short, "w")])).allowed
    await asyncio.sleep(0.45)
    await first.succeeded()  # after the window: must not create a counter without expiry
    assert await bus.get(short.key("w")) is None
    assert (await limits.attempt(bus, [(short, "w")])).allowed


async def test_reset_forgets_one_subject(bus) -> None:
    for _ in range(GUESS.max_attempts):
        await limits.attempt(bus, [(GUESS, "r")])
    assert await limits.exhausted(bus, GUESS, "r")
    await limits.reset(bus, GUESS, "r")
    assert (await limits.attempt(bus, [(GUESS, "r")])).allowed


async def test_the_refusal_names_its_limit_and_one_attempt_takes_the_last_count(bus) -> None:
    checks = [(GUESS, "n"), (WIDE, "wide-n")]
    results = await asyncio.gather(*(limits.attempt(bus, checks) for _ in range(50)))
    assert [r.used_up for r in results].count((GUESS,)) == 1  # exactly one took the 5th count
    refused = [r for r in results if not r.allowed]
    assert len(refused) == 45 and all(r.exceeded == (GUESS,) for r in refused)
    assert all(r.used_up == () for r in refused)
    for subject in ("m1", "m2", "m3"):  # WIDE runs out first for other guess subjects
        assert (await limits.attempt(bus, [(GUESS, subject), (WIDE, "wide-m")])).allowed
    for _ in range(5):
        await limits.attempt(bus, [(GUESS, "m4"), (WIDE, "wide-m")])
    late = await limits.attempt(bus, [(GUESS, "m5"), (WIDE, "wide-m")])
    assert not late.allowed and late.exceeded == (WIDE,)
