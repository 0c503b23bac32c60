"""Rate limiting for one channel: token buckets, a provider's window quota, and 429 pauses.

Contract:

- `TokenBucket` is the GCRA form of a token bucket. With `burst=1` and a caller that takes
  as soon as `delay()` is 0, every half-open one-second window `[t, t + 1)` holds at most
  `rate_per_second` units. A burst of N lets N units go at once after an idle spell.
- `WindowBudget` counts a provider quota of N sends per fixed window (X: posts per 15
  minutes) and lets the provider's own headers correct the local count.
- `ChannelLimiter` combines them for one channel: an optional channel-wide bucket, one
  bucket per sender key (SMS from-numbers share the load), an optional window budget, and
  pauses the provider orders (429 Retry-After, x-rate-limit-reset). `acquire` serves callers
  strictly in call order and takes every token synchronously just before it returns, so a
  caller that sends with no await in between never exceeds any limit.

Times are seconds on a float monotonic clock; only `reset_at` values from providers are
epoch seconds, converted through the wall clock. Nothing here does I/O.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from broadcaster.ports import ChannelLimits


class TokenBucket:
    """GCRA form of a token bucket over a float monotonic clock (seconds).

    The bucket keeps a theoretical arrival time `tat`: the moment it would be full again if
    nothing more were taken. A take of `cost` units is allowed once `min(cost, burst)` units
    are available, i.e. when `now >= tat - (burst - min(cost, burst)) * T`, and moves `tat`
    to `max(tat, now) + cost * T`, where T is the emission interval.

    T is `(1 / rate) * (1 + safety)`. The small safety factor (1 % by default) makes the
    pace a hair slower than the configured rate, so float rounding on the clock and the
    jitter between our timestamp and the moment the provider counts the request never make
    a measured half-open one-second window hold more than `rate` units.

    A take that comes late (timers oversleep: epoll counts whole milliseconds) keeps up to
    `credit = min(safety / 2, 5 ms)` of its lateness: `tat` moves to `max(tat, now - credit)`,
    not `max(tat, now)`, or every late wake-up would be lost and 200/s would run at ~170/s.
    The window bound still holds: `rate` intervals span `1 + safety` seconds, so `rate + 1`
    takes are at least `1 + safety - credit` seconds apart. That slack is what absorbs the
    jitter between our take and the provider's count; a channel whose provider counts on
    arrival over a busy network asks for a larger `safety` (SMS: 5 %, ~45 ms).

    A cost larger than the burst (an SMS of several segments) is allowed when the bucket is
    full and leaves it in debt: that one message goes out whole, and the long-run average
    still holds. An SMS of 3 segments at 1 segment/s waits 3 s before the next one.
    """

    def __init__(
        self,
        rate_per_second: float,
        burst: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        safety: float = 0.01,
    ) -> None:
        if not rate_per_second > 0 or math.isinf(rate_per_second):
            raise ValueError(f"rate_per_second must be a positive number, not {rate_per_second}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, not {burst}")
        if not safety >= 0:
            raise ValueError(f"safety must be >= 0, not {safety}")
        self.rate_per_second = rate_per_second
        self.burst = burst
        self.interval = (1.0 / rate_per_second) * (1.0 + safety)
        self._credit = min(safety / 2, 0.005)
        self._clock = clock
        # -inf: the bucket starts full, so the first take is immediate.
        self._tat = -math.inf

    def delay(self, cost: int = 1) -> float:
        """Seconds until `cost` units may be taken (0.0 = now). Changes nothing."""
        _check_cost(cost)
        needed = min(cost, self.burst)
        allowed_at = self._tat - (self.burst - needed) * self.interval
        return max(0.0, allowed_at - self._clock())

    def take(self, cost: int = 1) -> None:
        """Consume `cost` units. Call only when `delay(cost)` is 0."""
        _check_cost(cost)
        self._tat = max(self._tat, self._clock() - self._credit) + cost * self.interval


class WindowBudget:
    """A provider quota of `limit` sends per fixed window of `window_seconds` (X: N posts per
    15 min), counted locally and corrected by the provider's headers.

    A local window starts with the first send after the previous one ended. The provider's
    headers win over the local count: `observe` moves the window end to the provider's reset
    time and sets the remaining count (never above `limit`: the configured budget may be
    deliberately lower than the provider's).

    Providers give the reset in whole seconds, rounded up (X does). Waiting for it would cost
    up to a second per window, and each new window would then start just past a whole second
    and lose nearly a second again. But the provider's window began no later than the first
    answer that carried this reset value, so it ends no later than that moment plus
    `window_seconds`: the window ends at the earlier of the two. This is never early as long
    as `window_seconds` is not shorter than the provider's real window.
    """

    def __init__(
        self,
        limit: int,
        window_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        if not window_seconds > 0:
            raise ValueError(f"window_seconds must be positive, not {window_seconds}")
        self.limit = limit
        self.window_seconds = window_seconds
        self._clock = clock
        self._wall = wall
        self._remaining = limit
        # Monotonic end of the current window; None while no window is running.
        self._window_end: float | None = None
        # The provider's reset value last seen, and when (monotonic) it was first seen.
        self._seen_reset: float | None = None
        self._seen_at = 0.0

    def _roll(self, now: float) -> None:
        if self._window_end is not None and now >= self._window_end:
            self._window_end = None
            self._remaining = self.limit

    def delay(self) -> float:
        """0 when a send may go now, else seconds until the window resets."""
        now = self._clock()
        self._roll(now)
        if self._remaining > 0 or self._window_end is None:
            return 0.0
        return self._window_end - now

    def take(self) -> None:
        """Count one send. Call only when `delay()` is 0."""
        now = self._clock()
        self._roll(now)
        if self._window_end is None:
            self._window_end = now + self.window_seconds
        self._remaining = max(0, self._remaining - 1)

    def observe(self, remaining: int | None, reset_at: float | None) -> None:
        """Correct the local count from the provider's headers. `reset_at` is epoch seconds
        (wall clock); `remaining` overrides the local count for the current window."""
        now = self._clock()
        if reset_at is not None:
            if reset_at != self._seen_reset:
                self._seen_reset, self._seen_at = reset_at, now
            end = min(now + (reset_at - self._wall()), self._seen_at + self.window_seconds)
            if end <= now:
                # The provider's window is already over, so its `remaining` is stale.
                self._window_end = None
                self._remaining = self.limit
                return
            self._window_end = end
        if remaining is not None:
            if self._window_end is None:
                # The provider counts a window we did not see start: assume a full one.
                self._window_end = now + self.window_seconds
            self._remaining = max(0, min(remaining, self.limit))
        self._roll(now)

    @property
    def remaining(self) -> int:
        """Sends left in the current window."""
        self._roll(self._clock())
        return self._remaining


@dataclass(frozen=True, slots=True)
class Grant:
    """Permission for one send: the sender key to use and how long `acquire` waited."""

    sender: str
    waited: float


class ChannelLimiter:
    """Everything that paces one channel: an optional channel-wide TokenBucket, one
    TokenBucket per sender key, an optional WindowBudget, and pauses ordered by the
    provider (429).

    `acquire` serves callers strictly FIFO: it holds an asyncio.Lock (which is FIFO) while
    waiting, so the order of `acquire` calls is the order of grants; the dispatcher relies on
    this to send in priority order. Tokens are taken at the very end, with no await between
    the check and the takes, and the caller must send with no await after `acquire` returns.
    """

    def __init__(
        self,
        limits: ChannelLimits,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        senders = tuple(dict.fromkeys(limits.senders))
        if not senders:
            raise ValueError("a channel needs at least one sender key")
        self.limits = limits
        self._clock = clock
        self._wall = wall
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self._paused_until = 0.0
        self._channel: TokenBucket | None = None
        if limits.rate_per_second is not None:
            self._channel = TokenBucket(
                limits.rate_per_second, limits.burst, clock=clock, safety=limits.safety
            )
        self._senders: dict[str, TokenBucket | None] = {
            sender: (
                TokenBucket(
                    limits.sender_rate_per_second,
                    limits.sender_burst,
                    clock=clock,
                    safety=limits.safety,
                )
                if limits.sender_rate_per_second is not None
                else None
            )
            for sender in senders
        }
        # Senders, least recently used first (round-robin among the ready ones); the first
        # picks follow the configured order.
        self._order: OrderedDict[str, None] = OrderedDict.fromkeys(senders)
        self._window: WindowBudget | None = None
        if limits.window_limit is not None:
            self._window = WindowBudget(
                limits.window_limit, limits.window_seconds, clock=clock, wall=wall
            )
        unpaced = self._channel is None and self._window is None and len(senders) == 1
        self._free_grant = (
            Grant(sender=senders[0], waited=0.0)
            if unpaced and self._senders[senders[0]] is None
            else None
        )

    @property
    def paused_until(self) -> float:
        """Monotonic end of the provider-ordered pause; 0.0 when not paused."""
        return self._paused_until if self._paused_until > self._clock() else 0.0

    def pause_for(self, seconds: float) -> None:
        """No grant before now + seconds. Extends, never shortens, an existing pause."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    @property
    def _unlimited(self) -> Grant | None:
        """The grant for a channel with one sender and no limit of any kind, else None."""
        return self._free_grant

    def observe(self, remaining: int | None, reset_at: float | None) -> None:
        """Feed the provider's rate headers: forwarded to the window budget when there is
        one (which then holds sends until its window ends); without one, an exhausted budget
        (remaining 0) with a reset time pauses until then."""
        if self._window is not None:
            self._window.observe(remaining, reset_at)
        elif remaining == 0 and reset_at is not None:
            self.pause_for(reset_at - self._wall())

    def _pick(self, cost: int) -> tuple[str | None, float]:
        """The least recently used sender that may send `cost` now, with 0.0; else None
        and the shortest wait over all senders. With equal rates the least recently used
        one is nearly always ready, so this looks at one bucket, not all of them."""
        shortest = math.inf
        for sender in self._order:
            bucket = self._senders[sender]
            delay = bucket.delay(cost) if bucket is not None else 0.0
            if delay <= 0.0:
                return sender, 0.0
            shortest = min(shortest, delay)
        return None, shortest

    def _wait(self, cost: int, sender_wait: float) -> float:
        waits = [self._paused_until - self._clock(), sender_wait]
        if self._channel is not None:
            waits.append(self._channel.delay(cost))
        if self._window is not None:
            waits.append(self._window.delay())
        return max(0.0, *waits)

    async def acquire(self, cost: int = 1) -> Grant:
        """Wait until a send of `cost` units may go, take its tokens and name its sender."""
        _check_cost(cost)
        if (
            self._unlimited is not None
            and not self._lock.locked()
            and self._paused_until <= self._clock()
        ):
            # Nothing to pace and nobody queued: the common case of a webhook fan-out.
            return self._unlimited
        start = self._clock()
        async with self._lock:
            while True:
                sender, sender_wait = self._pick(cost)
                wait = self._wait(cost, sender_wait)
                if wait <= 0.0 and sender is not None:
                    return self._take(cost, sender, start)
                # Loop after the sleep: a pause may have been extended meanwhile.
                await self._sleep(wait)

    def _take(self, cost: int, sender: str, start: float) -> Grant:
        # Synchronous on purpose: nothing may run between the check and these takes.
        self._order.move_to_end(sender)
        bucket = self._senders[sender]
        if bucket is not None:
            bucket.take(cost)
        if self._channel is not None:
            self._channel.take(cost)
        if self._window is not None:
            self._window.take()
        return Grant(sender=sender, waited=self._clock() - start)


def _check_cost(cost: int) -> None:
    if cost < 1:
        raise ValueError(f"cost must be at least 1, not {cost}")
