"""Rate limiting: token buckets, window budgets and the channel limiter, on a fake clock."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import math
from collections import Counter
from typing import Any

import pytest

from broadcaster.ports import ChannelLimits
from broadcaster.ratelimit import ChannelLimiter, Grant, TokenBucket, WindowBudget

EPOCH = 1_700_000_000.0
# The default safety factor, and the late-wake credit it allows (see TokenBucket).
SAFETY = 0.01
CREDIT = SAFETY / 2


class FakeClock:
    """A monotonic clock that only moves when told to, with a matching wall clock."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return EPOCH + self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        # Yield first, then move the clock to this sleeper's deadline: sleepers wake in
        # order, and concurrent ones to the same deadline do not add up their sleeps.
        deadline = self.now + seconds
        await asyncio.sleep(0)
        self.now = max(self.now, deadline)


def limiter(clock: FakeClock, **limits: Any) -> ChannelLimiter:
    return ChannelLimiter(
        ChannelLimits(**limits),
        clock=clock,
        wall=clock.wall,
        sleep=clock.sleep,
    )


def max_in_window(times: list[float], weights: list[int] | None = None) -> int:
    """The most units in any half-open window [t, t + 1); it suffices to start at a grant."""
    weights = weights or [1] * len(times)
    best = 0
    for i, start in enumerate(times):
        end = bisect.bisect_left(times, start + 1.0)
        best = max(best, sum(weights[i:end]))
    return best


async def acquire_many(
    clock: FakeClock, lim: ChannelLimiter, n: int, cost: int = 1
) -> list[tuple[float, Grant]]:
    out: list[tuple[float, Grant]] = []
    for _ in range(n):
        grant = await lim.acquire(cost)
        out.append((clock.now, grant))
    return out


def test_bucket_first_take_is_immediate_and_then_paced() -> None:
    """A fresh bucket grants at once; the next unit waits one emission interval."""
    clock = FakeClock()
    bucket = TokenBucket(10.0, clock=clock)
    assert bucket.delay() == 0.0
    bucket.take()
    # One interval, less the credit a take keeps for timers that wake late.
    assert bucket.delay() == pytest.approx(0.1 * (1 + SAFETY) - CREDIT)


def test_bucket_rejects_bad_arguments() -> None:
    """Non-positive rates, bursts and costs are refused."""
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(0.0)
    with pytest.raises(ValueError, match="burst"):
        TokenBucket(1.0, 0)
    with pytest.raises(ValueError, match="cost"):
        TokenBucket(1.0).delay(0)


async def test_200_per_second_never_exceeded_in_any_window() -> None:
    """1,000 grants at 200/s, burst 1: no half-open 1 s window holds more than 200; ~5 s."""
    clock = FakeClock()
    lim = limiter(clock, rate_per_second=200.0)
    grants = await acquire_many(clock, lim, 1000)
    times = [t for t, _ in grants]
    assert max_in_window(times) <= 200
    assert times[-1] == pytest.approx(999 / 200, rel=0.01)
    assert all(b >= a for a, b in itertools.pairwise(times))


async def test_burst_allows_n_at_once_then_paces() -> None:
    """Burst 5 at 10/s: five grants at t=0, then one per 0.1 s."""
    clock = FakeClock()
    lim = limiter(clock, rate_per_second=10.0, burst=5)
    times = [t for t, _ in await acquire_many(clock, lim, 8)]
    assert times[:5] == [0.0] * 5
    gaps = [b - a for a, b in itertools.pairwise(times[4:])]
    interval = 0.1 * (1 + SAFETY)
    assert gaps == pytest.approx([interval - CREDIT, interval, interval])


async def test_burst_refills_after_idle() -> None:
    """After an idle spell the bucket is full again, but never holds more than the burst."""
    clock = FakeClock()
    lim = limiter(clock, rate_per_second=10.0, burst=3)
    await acquire_many(clock, lim, 3)
    clock.now += 60.0
    times = [t for t, _ in await acquire_many(clock, lim, 4)]
    assert times[:3] == [60.0] * 3
    assert times[3] > 60.0


async def test_cost_counts_segments() -> None:
    """At 1 segment/s, a 3-segment SMS goes at once and the next waits 3 s (debt)."""
    clock = FakeClock()
    lim = limiter(clock, sender_rate_per_second=1.0)
    first = await lim.acquire(3)
    assert first.waited == 0.0
    second = await lim.acquire(1)
    assert second.waited == pytest.approx(3 * (1 + SAFETY) - CREDIT)


async def test_segment_costs_hold_the_rate_in_the_long_run() -> None:
    """Mixed 1-3 segment messages at 10 segments/s: any window holds at most 10 + debt."""
    clock = FakeClock()
    lim = limiter(clock, rate_per_second=10.0)
    costs = [1, 2, 3] * 40
    times: list[float] = []
    for cost in costs:
        await lim.acquire(cost)
        times.append(clock.now)
    # A single message may overshoot by its own extra segments, never more.
    assert max_in_window(times, costs) <= 10 + 2
    assert times[-1] == pytest.approx((sum(costs) - costs[-1]) / 10, rel=0.01)


async def test_two_senders_share_load_evenly() -> None:
    """Two senders at r each: combined 2r, each sender at most r per window, round-robin."""
    clock = FakeClock()
    lim = limiter(clock, senders=("+15550001", "+15550002"), sender_rate_per_second=20.0)
    grants = await acquire_many(clock, lim, 400)
    by_sender: dict[str, list[float]] = {"+15550001": [], "+15550002": []}
    for t, grant in grants:
        by_sender[grant.sender].append(t)
    assert [g.sender for _, g in grants[:4]] == ["+15550001", "+15550002"] * 2
    assert len(by_sender["+15550001"]) == len(by_sender["+15550002"]) == 200
    for times in by_sender.values():
        assert max_in_window(times) <= 20
    all_times = [t for t, _ in grants]
    assert max_in_window(all_times) <= 40
    assert all_times[-1] == pytest.approx(199 / 20, rel=0.01)


async def test_round_robin_without_sender_buckets() -> None:
    """With no per-sender rate, senders are still picked round-robin."""
    clock = FakeClock()
    lim = limiter(clock, senders=("a", "b", "c"))
    grants = await acquire_many(clock, lim, 9)
    assert [g.sender for _, g in grants] == ["a", "b", "c"] * 3
    assert clock.now == 0.0


async def test_channel_rate_caps_the_sum_of_senders() -> None:
    """Three senders at 10/s each under a 15/s channel limit: at most 15 per window."""
    clock = FakeClock()
    lim = limiter(clock, rate_per_second=15.0, senders=("a", "b", "c"), sender_rate_per_second=10.0)
    grants = await acquire_many(clock, lim, 300)
    assert max_in_window([t for t, _ in grants]) <= 15
    counts = Counter(g.sender for _, g in grants)
    assert set(counts.values()) == {100}


async def test_pause_for_delays_and_never_shortens() -> None:
    """A pause holds the next grant back; a shorter pause does not cut a longer one."""
    clock = FakeClock()
    lim = limiter(clock)
    lim.pause_for(10.0)
    lim.pause_for(2.0)
    assert lim.paused_until == 10.0
    grant = await lim.acquire()
    assert clock.now == pytest.approx(10.0)
    assert grant.waited == pytest.approx(10.0)
    assert lim.paused_until == 0.0


async def test_pause_extended_while_waiting_is_honoured() -> None:
    """A pause extended while a caller sleeps is re-checked after the sleep."""
    clock = FakeClock()
    lim = limiter(clock)
    lim.pause_for(5.0)
    task = asyncio.create_task(lim.acquire())
    await asyncio.sleep(0)  # the task sleeps 5 s on the fake clock and yields
    lim.pause_for(20.0)
    grant = await task
    assert grant.waited >= 20.0


async def test_observe_exhausted_pauses_until_reset_and_budget_recovers() -> None:
    """observe(remaining=0, reset in 30 s) holds sends 30 s; the window budget then refills."""
    clock = FakeClock()
    lim = limiter(clock, window_limit=3, window_seconds=900.0)
    await lim.acquire()
    lim.observe(0, clock.wall() + 30.0)
    grants = await acquire_many(clock, lim, 3)
    assert [t for t, _ in grants] == pytest.approx([30.0] * 3)
    # Three more sends used the fresh window; the fourth waits for its end.
    await lim.acquire()
    assert clock.now == pytest.approx(30.0 + 900.0)


async def test_observe_without_budget_only_pauses() -> None:
    """A channel with no window budget still honours an exhausted provider budget."""
    clock = FakeClock()
    lim = limiter(clock)
    lim.observe(5, clock.wall() + 30.0)
    assert lim.paused_until == 0.0
    lim.observe(0, clock.wall() + 30.0)
    assert lim.paused_until == pytest.approx(30.0)


def test_a_reset_rounded_up_to_whole_seconds_costs_no_extra_wait() -> None:
    """Reset given in whole seconds, rounded up: the window still ends one window after the
    first answer that carried it, not at the rounded time."""
    clock = FakeClock()
    clock.now = 0.2  # the wall clock reads x.2 s: the provider rounds the reset up to x+2
    budget = WindowBudget(2, 1.0, clock=clock, wall=clock.wall)
    budget.take()
    budget.observe(1, math.ceil(clock.wall() + 1.0))
    budget.take()
    budget.observe(0, math.ceil(clock.wall() + 1.0))
    assert budget.delay() == pytest.approx(1.0)
    clock.now = 0.7  # a later answer with the same reset does not move the end
    budget.observe(0, math.ceil(clock.wall() + 0.5))
    assert budget.delay() == pytest.approx(0.5)


def test_window_budget_counts_down_and_blocks_until_window_end() -> None:
    """The budget counts down per send, blocks at 0, and refills when the window ends."""
    clock = FakeClock()
    budget = WindowBudget(3, 900.0, clock=clock, wall=clock.wall)
    for left in (2, 1, 0):
        assert budget.delay() == 0.0
        budget.take()
        assert budget.remaining == left
        clock.now += 10.0
    assert budget.delay() == pytest.approx(900.0 - 30.0)
    clock.now = 900.0
    assert budget.delay() == 0.0
    assert budget.remaining == 3


def test_window_budget_is_corrected_by_provider_headers() -> None:
    """Headers override the local count and move the reset; never above the limit."""
    clock = FakeClock()
    budget = WindowBudget(10, 900.0, clock=clock, wall=clock.wall)
    budget.take()
    budget.observe(2, clock.wall() + 100.0)
    assert budget.remaining == 2
    budget.take()
    budget.take()
    assert budget.delay() == pytest.approx(100.0)
    budget.observe(50, None)
    assert budget.remaining == 10
    clock.now = 100.0
    assert budget.remaining == 10


def test_window_budget_ignores_stale_remaining_after_reset() -> None:
    """A reset time already past means a fresh window: its stale remaining is ignored."""
    clock = FakeClock()
    clock.now = 50.0
    budget = WindowBudget(5, 900.0, clock=clock, wall=clock.wall)
    budget.take()
    budget.observe(0, clock.wall() - 1.0)
    assert budget.remaining == 5
    assert budget.delay() == 0.0


async def test_grants_follow_call_order() -> None:
    """FIFO: concurrent callers are granted in the order they called acquire."""
    clock = FakeClock()
    lim = limiter(clock, rate_per_second=5.0, burst=3)
    order: list[int] = []

    async def caller(i: int, cost: int) -> None:
        await lim.acquire(cost)
        order.append(i)

    # Costly callers early in the queue must not be overtaken by cheap ones behind them.
    costs = [1, 3, 1, 2, 1, 1, 3, 1]
    tasks = [asyncio.create_task(caller(i, c)) for i, c in enumerate(costs)]
    await asyncio.gather(*tasks)
    assert order == list(range(len(costs)))


async def test_cancelled_acquire_takes_nothing() -> None:
    """A caller cancelled while waiting consumes no token and frees the queue."""
    clock = FakeClock()
    blocked = asyncio.Event()

    async def never_wakes(seconds: float) -> None:
        blocked.set()
        await asyncio.Event().wait()

    slow = ChannelLimiter(ChannelLimits(rate_per_second=1.0), clock=clock, sleep=never_wakes)
    await slow.acquire()
    task = asyncio.create_task(slow.acquire())
    await blocked.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    clock.now += 1.01
    grant = await slow.acquire()
    assert grant.waited == 0.0
